//! [`RedisSessionStore`]: sessions in Redis (feature `redis`), shared by
//! every node of an application.
//!
//! The design is documented on [`RedisSessionStore`] (public, unlike
//! this module).

use std::sync::Arc;
use std::time::Duration;

use fred::prelude::{Client, ClientLike as _, Expiration, KeysInterface as _};
use futures_util::future::BoxFuture;
use tokio::sync::watch;

use crate::backplane::redis::{connect_client, Counters, Link, RedisUrl};
use crate::backplane::{BackplaneError, RedisBackplaneOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::session::{SessionData, SessionStore};

/// Sessions in Redis, shared by every node of an application.
///
/// One key per session, `{prefix}:session:{id}`, holding the session's JSON
/// object, written with `SET ... PX ttl` so Redis itself expires it; `GET`
/// reads it back (a value that is not a JSON object is an error, never a
/// panic) and `DEL` destroys it. Every command names one key, so a Redis
/// Cluster works too. The connection is made like the backplane's (same
/// URL forms, timeouts and reconnection): it fails fast while Redis is known to be
/// down (the request gets a `500`; a command sent in the instant the
/// connection breaks fails after the command timeout, 5 s) and reconnects
/// in the background.
pub struct RedisSessionStore {
    link: Arc<Link>,
    prefix: String,
    /// Dropped with the store: stops the link's watcher.
    _stop: watch::Sender<bool>,
}

impl std::fmt::Debug for RedisSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessionStore").field("prefix", &self.prefix).finish()
    }
}

fn store_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::from_kind(ErrorKind::Session, format!("Redis session store: {what}: {e}"))
}

impl RedisSessionStore {
    /// Connects to the Redis at `url` (the forms of
    /// [`RedisBackplaneOptions::url`]); keys are `{prefix}:session:{id}`.
    /// Timeouts and reconnection are the defaults of
    /// [`RedisBackplaneOptions`]. Errors: a bad URL or prefix, Redis
    /// unreachable now.
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisSessionStore> {
        if prefix.is_empty() || prefix.contains(char::is_whitespace) {
            return Err(store_error("bad prefix", format!("{prefix:?} must be non-empty, without spaces")));
        }
        let url = RedisUrl::parse(url).map_err(|e| store_error("cannot connect", e))?;
        let settings = RedisBackplaneOptions::default().client_settings();
        let client =
            connect_client(&url, &settings).await.map_err(|e: BackplaneError| store_error("cannot connect", e))?;
        let (stop, stop_rx) = watch::channel(false);
        let link = Link::watch(client, Arc::new(Counters::default()), stop_rx);
        Ok(RedisSessionStore { link, prefix: prefix.to_string(), _stop: stop })
    }

    /// Whether the connection to Redis is up now (for health checks).
    pub fn is_connected(&self) -> bool {
        self.link.up()
    }

    /// The client for one command: fails at once while the connection is
    /// known to be down.
    fn client(&self) -> Result<fred::clients::WithOptions<Client>> {
        self.link.commands().map_err(|e| store_error("unavailable", e))
    }

    fn key(&self, id: &str) -> String {
        format!("{}:session:{id}", self.prefix)
    }
}

impl Drop for RedisSessionStore {
    fn drop(&mut self) {
        // fred's connection task runs until QUIT.
        let client = self.link.client().clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = client.quit().await;
            });
        }
    }
}

impl SessionStore for RedisSessionStore {
    fn load<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<SessionData>>> {
        Box::pin(async move {
            let value: Option<bytes::Bytes> =
                self.client()?.get(self.key(id)).await.map_err(|e| store_error("GET", e))?;
            match value {
                None => Ok(None),
                Some(bytes) => serde_json::from_slice::<SessionData>(&bytes)
                    .map(Some)
                    .map_err(|e| store_error(&format!("session {id:?} is not a JSON object"), e)),
            }
        })
    }

    fn save<'a>(&'a self, id: &'a str, data: SessionData, ttl: Duration) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let json = serde_json::to_string(&data).map_err(|e| store_error("cannot encode the session", e))?;
            let px = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
            let _: () = self
                .client()?
                .set(self.key(id), json, Some(Expiration::PX(px)), None, false)
                .await
                .map_err(|e| store_error("SET", e))?;
            Ok(())
        })
    }

    fn destroy<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let _: () = self.client()?.del(self.key(id)).await.map_err(|e| store_error("DEL", e))?;
            Ok(())
        })
    }
}
