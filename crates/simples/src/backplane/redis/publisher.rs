//! The publisher task: takes what is in the bounded publish queue, up to
//! a batch at a time, and writes each batch as one pipeline of `PUBLISH`
//! (`SPUBLISH` on a cluster: each command goes to the shard of its
//! channel). One pipeline is in flight at a time, so messages reach Redis
//! in queue order. While the connection is down a batch fails at once and
//! is counted: nothing is kept to be delivered late. (fred cannot take
//! back a command it has accepted: a batch handed over in the instant the
//! connection breaks, before fred reports it, may time out here, be
//! counted as failed, and still be written, in order, after the
//! reconnection.)

use std::sync::Arc;

use bytes::Bytes;
use fred::clients::{Pipeline, WithOptions};
use fred::prelude::{Client, ClientLike as _, PubsubInterface as _, Value};
use fred::types::{ClusterHash, CustomCommand};
use tokio::sync::{mpsc, watch};

use super::connect::{Link, OutageLog};
use super::counters::Counters;
use crate::backplane::BackplaneError;

/// One message to publish, or a history script (which publishes).
pub(super) enum Outgoing {
    /// `PUBLISH channel payload` (the Redis channel: `{prefix}:{topic}`).
    Publish { channel: String, payload: Bytes },
    /// `EVAL script keys args` (a history append: see `history`).
    Script { script: String, keys: Vec<String>, args: Vec<Bytes> },
}

/// Starts the publisher task (`links`: the publishing connection, then
/// the subscribed one); it ends when the queue's senders are gone
/// or `stop` fires.
pub(super) fn spawn(
    links: [Arc<Link>; 2],
    cluster: bool,
    queue: mpsc::Receiver<Outgoing>,
    batch: usize,
    counters: Arc<Counters>,
    stop: watch::Receiver<bool>,
) {
    tokio::spawn(run(links, cluster, queue, batch, counters, stop));
}

async fn run(
    links: [Arc<Link>; 2],
    cluster: bool,
    mut queue: mpsc::Receiver<Outgoing>,
    batch_max: usize,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) {
    let mut log = OutageLog::new("publishing");
    let mut batch = Vec::with_capacity(batch_max);
    loop {
        let first = tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => break,
            m = queue.recv() => match m {
                Some(m) => m,
                None => break,
            },
        };
        batch.push(first);
        while batch.len() < batch_max {
            match queue.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        let client = match up(&links).and_then(|()| links[0].commands()) {
            Ok(client) => client,
            Err(e) => {
                batch.clear();
                Counters::add(&counters.failed, n);
                log.failed(n, &e);
                continue;
            }
        };
        let (ok, error) = publish_batch(client, cluster, &mut batch).await;
        Counters::add(&counters.published, ok);
        match error {
            None => log.succeeded(),
            Some(e) => {
                Counters::add(&counters.failed, n - ok);
                log.failed(n - ok, &e);
            }
        }
    }
    // Whatever is still queued at stop was never published.
    queue.close();
    let mut left = 0;
    while queue.try_recv().is_ok() {
        left += 1;
    }
    Counters::add(&counters.failed, left);
}

/// Whether the backplane is connected: both its connections. Publishing
/// fails while it is not (even if only the subscribed connection was lost:
/// an outage takes both, and `stats().connected == false` then means that
/// nothing published is held to be delivered late).
fn up(links: &[Arc<Link>; 2]) -> Result<(), BackplaneError> {
    if links.iter().all(|l| l.up()) {
        Ok(())
    } else {
        Err(BackplaneError::Unavailable("not connected to Redis".into()))
    }
}

/// Writes `batch` (emptied) as one pipeline: how many were accepted by
/// Redis, and the first error if some were not.
async fn publish_batch(
    client: WithOptions<Client>,
    cluster: bool,
    batch: &mut Vec<Outgoing>,
) -> (u64, Option<fred::error::Error>) {
    let pipeline = Pipeline::from(client);
    let n = batch.len();
    for m in batch.drain(..) {
        // Queuing into the pipeline is in memory: it cannot fail.
        let _: Result<(), _> = match m {
            Outgoing::Publish { channel, payload } if cluster => pipeline.spublish(channel, payload).await,
            Outgoing::Publish { channel, payload } => pipeline.publish(channel, payload).await,
            Outgoing::Script { script, keys, args } => {
                // EVAL through `custom`: fred's pipeline has no Lua methods.
                let mut all: Vec<Value> = vec![Value::from(script), Value::from(keys.len() as i64)];
                all.extend(keys.into_iter().map(Value::from));
                all.extend(args.into_iter().map(Value::Bytes));
                pipeline.custom(CustomCommand::new_static("EVAL", ClusterHash::FirstKey, false), all).await
            }
        };
    }
    let results = pipeline.try_all::<Value>().await;
    let ok = results.iter().filter(|r| r.is_ok()).count().min(n) as u64;
    let error = results.into_iter().find_map(|r| r.err());
    let error = match error {
        None if (ok as usize) < n => Some(fred::error::Error::new(fred::error::ErrorKind::Unknown, "missing replies")),
        e => e,
    };
    (ok, error)
}
