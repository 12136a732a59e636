//! RedisBackplane against real Redis: pub/sub on one server and sharded
//! pub/sub on a 3-master cluster (order, exactly once, interest-based
//! routing visible in PUBSUB NUMSUB / SHARDNUMSUB), an outage with
//! automatic resubscription, the full publish queue, presence with node
//! death, and start-up errors.

#![cfg(feature = "redis")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::redis::{cli, eventually, RedisCluster, RedisServer};
use serde_json::json;
use simples::backplane::{Backplane, BackplaneError, PresenceMember};
use simples::{RedisBackplane, RedisBackplaneOptions};

/// What a backplane delivered: (topic, payload as text).
#[derive(Clone, Default)]
struct Inbox(Arc<Mutex<Vec<(String, String)>>>);

impl Inbox {
    fn of(backplane: &RedisBackplane) -> Inbox {
        let inbox = Inbox::default();
        let sink = inbox.clone();
        backplane.set_receiver(Arc::new(move |topic: &str, payload: Bytes| {
            let text = String::from_utf8_lossy(&payload).into_owned();
            sink.0.lock().unwrap().push((topic.to_string(), text));
        }));
        inbox
    }

    fn all(&self) -> Vec<(String, String)> {
        self.0.lock().unwrap().clone()
    }

    fn has(&self, topic: &str, payload: &str) -> bool {
        self.0.lock().unwrap().iter().any(|(t, p)| t == topic && p == payload)
    }

    /// The payloads received on `topic`, in order.
    fn on(&self, topic: &str) -> Vec<String> {
        self.0.lock().unwrap().iter().filter(|(t, _)| t == topic).map(|(_, p)| p.clone()).collect()
    }
}

fn options(url: &str) -> RedisBackplaneOptions {
    RedisBackplaneOptions {
        reconnect_max: Duration::from_millis(300),
        connect_timeout: Duration::from_secs(2),
        ..RedisBackplaneOptions::new(url)
    }
}

async fn connect(url: &str) -> Arc<RedisBackplane> {
    RedisBackplane::connect(options(url)).await.expect("backplane connects")
}

/// The count in a `PUBSUB NUMSUB ch` / `SHARDNUMSUB ch` answer.
fn count(answer: &str) -> u64 {
    answer.lines().last().and_then(|l| l.trim().parse().ok()).unwrap_or_else(|| panic!("not a count: {answer:?}"))
}

fn numbers(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| i.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_delivers_in_order_exactly_once_to_subscribers_only() {
    let Some(redis) = RedisServer::start() else { return };
    let (a, b, c) = (connect(&redis.url()).await, connect(&redis.url()).await, connect(&redis.url()).await);
    assert_ne!(a.node_id(), b.node_id());
    assert_eq!(a.node_id().len(), 16);
    let (ia, ib, ic) = (Inbox::of(&a), Inbox::of(&b), Inbox::of(&c));
    let numsub = |ch: &str| count(&redis.cli(&["PUBSUB", "NUMSUB", ch]));

    b.subscribe("room");
    b.subscribe("room");
    c.subscribe("other");
    eventually(Duration::from_secs(5), "the subscriptions on Redis", || {
        numsub("simples:room") == 1 && numsub("simples:other") == 1
    })
    .await;
    assert_eq!(b.stats().topics, 1);

    for i in 0..1000 {
        a.publish("room", Bytes::from(i.to_string())).expect("queued");
    }
    // Markers after the burst: once they are in, everything before is.
    a.publish("room", Bytes::from_static(b"end")).unwrap();
    a.publish("other", Bytes::from_static(b"end")).unwrap();
    eventually(Duration::from_secs(10), "the markers", || ib.has("room", "end") && ic.has("other", "end")).await;

    let mut expected = numbers(0..1000);
    expected.push("end".into());
    assert_eq!(ib.on("room"), expected, "all, in order, once");
    assert_eq!(ib.all().len(), 1001, "nothing on other topics");
    assert_eq!(ic.all(), vec![("other".to_string(), "end".to_string())], "C is not subscribed to room");
    assert!(ia.all().is_empty(), "A subscribed to nothing");
    eventually(Duration::from_secs(5), "the publish count", || a.stats().published == 1002).await;
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.failed, sa.dropped, sa.received, sa.topics), (0, 0, 0, 0));
    assert!(sa.connected && sb.connected);
    assert_eq!((sb.received, sb.lost, sb.disconnects), (1001, 0, 0));

    b.unsubscribe("room");
    b.unsubscribe("room");
    eventually(Duration::from_secs(5), "NUMSUB back to 0", || numsub("simples:room") == 0).await;
    assert_eq!(b.stats().topics, 0);
    assert_eq!(numsub("simples:other"), 1, "C's subscription is untouched");

    // Dropping the last Arc stops the tasks and closes the connections:
    // B's two and redis-cli's own are left.
    drop((a, c));
    eventually(Duration::from_secs(5), "the dropped backplanes' connections to close", || {
        redis.cli(&["CLIENT", "LIST"]).lines().count() == 3
    })
    .await;
    assert_eq!(numsub("simples:other"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_uses_sharded_pubsub_on_the_owning_shard() {
    let Some(cluster) = RedisCluster::start() else { return };
    let (a, b) = (connect(&cluster.url()).await, connect(&cluster.url()).await);
    let ib = Inbox::of(&b);
    let topics: Vec<String> = (0..9).map(|i| format!("t{i}")).collect();
    let shardnumsub =
        |node: &RedisServer, topic: &str| count(&node.cli(&["PUBSUB", "SHARDNUMSUB", &format!("simples:{topic}")]));
    let owners: Vec<u16> = topics.iter().map(|t| cluster.owner(&format!("simples:{t}")).port()).collect();
    let mut distinct = owners.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() >= 2, "the topics spread over shards: {owners:?}");

    for t in &topics {
        b.subscribe(t);
    }
    eventually(Duration::from_secs(10), "every sharded subscription on its owner", || {
        topics.iter().all(|t| shardnumsub(cluster.owner(&format!("simples:{t}")), t) == 1)
    })
    .await;
    for t in &topics {
        let owner = cluster.owner(&format!("simples:{t}")).port();
        for node in cluster.nodes.iter().filter(|n| n.port() != owner) {
            assert_eq!(shardnumsub(node, t), 0, "{t} is subscribed on its shard only");
        }
    }

    for i in 0..100 {
        for t in &topics {
            a.publish(t, Bytes::from(i.to_string())).expect("queued");
        }
    }
    for t in &topics {
        a.publish(t, Bytes::from_static(b"end")).unwrap();
    }
    eventually(Duration::from_secs(15), "every topic's marker", || topics.iter().all(|t| ib.has(t, "end"))).await;
    let mut expected = numbers(0..100);
    expected.push("end".into());
    for t in &topics {
        assert_eq!(ib.on(t), expected, "{t}: all, in order, once");
    }
    assert_eq!(b.stats().received, 9 * 101);

    b.unsubscribe("t0");
    let owner = cluster.owner("simples:t0");
    eventually(Duration::from_secs(5), "SHARDNUMSUB back to 0", || shardnumsub(owner, "t0") == 0).await;
    assert_eq!(b.stats().topics, 8);

    // Presence: single-key commands, the keys on different shards.
    for t in &topics {
        a.presence_join(t, member(1, "ana")).await.unwrap();
        b.presence_join(t, member(2, "bob")).await.unwrap();
    }
    for t in &topics {
        assert_eq!(nicks(&a.presence(t).await.unwrap()), ["ana", "bob"], "{t}");
    }
    b.presence_leave("t3", 2).await.unwrap();
    assert_eq!(nicks(&a.presence("t3").await.unwrap()), ["ana"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_counts_failures_and_resubscribes_by_itself() {
    let Some(mut redis) = RedisServer::start() else { return };
    let (a, b) = (connect(&redis.url()).await, connect(&redis.url()).await);
    let ib = Inbox::of(&b);
    let port = redis.port();
    let numsub = move || count(&cli(port, &["PUBSUB", "NUMSUB", "simples:t"]));
    b.subscribe("t");
    eventually(Duration::from_secs(5), "the subscription", || numsub() == 1).await;
    for i in 0..100 {
        a.publish("t", Bytes::from(i.to_string())).unwrap();
    }
    eventually(Duration::from_secs(5), "the first 100", || ib.on("t").len() == 100).await;
    b.presence_join("room", member(8, "dan")).await.unwrap();
    b.presence_join("room", member(9, "fay")).await.unwrap();
    // Snapshot: the restarted server loads the presence hash as it was.
    redis.cli(&["SET", "snapshot-marker", "1"]);
    assert_eq!(redis.cli(&["SAVE"]), "OK");

    redis.kill();
    // Each backplane has two connections (publishing, subscribed): both lost.
    eventually(Duration::from_secs(5), "both to see the outage", || {
        a.stats().disconnects == 2 && b.stats().disconnects == 2
    })
    .await;
    assert!(!a.stats().connected && !b.stats().connected);
    for i in 0..50 {
        a.publish("t", Bytes::from(format!("lost{i}"))).expect("queued even while Redis is down");
    }
    eventually(Duration::from_secs(5), "the 50 failures", || a.stats().failed == 50).await;
    // Interest and presence changed during the outage are not lost.
    b.subscribe("later");
    let down = |r: Result<(), BackplaneError>| matches!(r, Err(BackplaneError::Unavailable(_)));
    assert!(down(b.presence_join("room", member(7, "eve")).await));
    assert!(down(b.presence_leave("room", 9).await));

    redis.restart();
    assert_eq!(redis.cli(&["EXISTS", "snapshot-marker"]), "1", "the snapshot was loaded");
    eventually(Duration::from_secs(10), "the reconnection", || a.stats().connected && b.stats().connected).await;
    eventually(Duration::from_secs(10), "the automatic resubscription", || {
        numsub() == 1 && count(&cli(port, &["PUBSUB", "NUMSUB", "simples:later"])) == 1
    })
    .await;
    // B writes its presence again: the join made during the outage is
    // added, the leave removes the snapshot's entry.
    let entry = |conn: u64| cli(port, &["HEXISTS", "simples:presence:room", &format!("{}:{conn}", b.node_id())]);
    eventually(Duration::from_secs(10), "B's presence rewritten", || entry(7) == "1" && entry(9) == "0").await;
    assert_eq!(nicks(&a.presence("room").await.unwrap()), ["dan", "eve"]);
    for i in 100..200 {
        a.publish("t", Bytes::from(i.to_string())).unwrap();
    }
    a.publish("t", Bytes::from_static(b"end")).unwrap();
    eventually(Duration::from_secs(10), "the marker", || ib.has("t", "end")).await;

    let mut expected = numbers(0..200);
    expected.push("end".into());
    assert_eq!(ib.on("t"), expected, "nothing published during the outage arrives, late or otherwise");
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.published, sa.failed, sa.dropped), (201, 50, 0));
    assert_eq!((sa.disconnects, sb.disconnects), (2, 2), "each lost connection counted once");
    assert_eq!(sb.topics, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_the_newest_and_counts_them() {
    let Some(redis) = RedisServer::start() else { return };
    let a =
        RedisBackplane::connect(RedisBackplaneOptions { publish_queue: 8, publish_batch: 4, ..options(&redis.url()) })
            .await
            .unwrap();
    let b = connect(&redis.url()).await;
    let ib = Inbox::of(&b);
    b.subscribe("burst");
    eventually(Duration::from_secs(5), "the subscription", || {
        count(&redis.cli(&["PUBSUB", "NUMSUB", "simples:burst"])) == 1
    })
    .await;

    // Redis stalls for a second: the queue (8) fills at once.
    assert_eq!(redis.cli(&["CLIENT", "PAUSE", "1000", "ALL"]), "OK");
    let mut accepted = Vec::new();
    let mut full = 0;
    for i in 0..1000u32 {
        match a.publish("burst", Bytes::from(i.to_string())) {
            Ok(()) => accepted.push(i.to_string()),
            Err(BackplaneError::Full) => full += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(full > 900, "most of the burst is dropped: {full}");
    assert_eq!(a.stats().dropped, full);

    // Once Redis resumes, exactly what was accepted arrives, in order.
    eventually(Duration::from_secs(10), "the accepted messages", || ib.on("burst").len() == accepted.len()).await;
    a.publish("burst", Bytes::from_static(b"end")).unwrap();
    accepted.push("end".into());
    eventually(Duration::from_secs(5), "the marker", || ib.has("burst", "end")).await;
    assert_eq!(ib.on("burst"), accepted);
    let s = a.stats();
    assert_eq!((s.published, s.failed, s.dropped), (accepted.len() as u64, 0, full));
}

fn member(conn: u64, nick: &str) -> PresenceMember {
    PresenceMember { node: String::new(), conn, info: json!({ "nick": nick }) }
}

fn nicks(members: &[PresenceMember]) -> Vec<String> {
    let mut v: Vec<String> = members.iter().map(|m| m.info["nick"].as_str().unwrap().to_string()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_spans_nodes_and_forgets_dead_ones_within_the_ttl() {
    let Some(redis) = RedisServer::start() else { return };
    let short = |url: &str| RedisBackplaneOptions {
        heartbeat_interval: Duration::from_millis(250),
        presence_ttl: Duration::from_secs(1),
        ..options(url)
    };
    let a = RedisBackplane::connect(short(&redis.url())).await.unwrap();
    let b = RedisBackplane::connect(short(&redis.url())).await.unwrap();
    assert_eq!(a.presence_ttl(), Duration::from_secs(1));

    a.presence_join("room", member(1, "ana")).await.unwrap();
    b.presence_join("room", member(2, "bob")).await.unwrap();
    // Joining again replaces the entry.
    b.presence_join("room", member(2, "bob")).await.unwrap();
    for node in [&a, &b] {
        let members = node.presence("room").await.unwrap();
        assert_eq!(nicks(&members), ["ana", "bob"]);
        let ana = members.iter().find(|m| m.conn == 1).unwrap();
        assert_eq!(ana.node, a.node_id(), "the node is the joining backplane's");
    }
    assert!(a.presence("nobody-here").await.unwrap().is_empty());

    a.presence_leave("room", 1).await.unwrap();
    assert_eq!(nicks(&b.presence("room").await.unwrap()), ["bob"]);

    // A dies without a word: its heartbeat key expires within the TTL.
    a.presence_join("room", member(3, "cid")).await.unwrap();
    assert_eq!(nicks(&b.presence("room").await.unwrap()), ["bob", "cid"]);
    let dead_key = format!("simples:node:{}", a.node_id());
    drop(a);
    let died = Instant::now();
    let mut left = Vec::new();
    while died.elapsed() < Duration::from_secs(3) {
        left = b.presence("room").await.unwrap();
        if left.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(nicks(&left), ["bob"], "the dead node's member is left out");
    assert!(died.elapsed() < Duration::from_secs(2), "within the TTL (1 s) and a margin: {:?}", died.elapsed());
    assert_eq!(redis.cli(&["EXISTS", &dead_key]), "0");
    assert_eq!(redis.cli(&["HLEN", "simples:presence:room"]), "1", "and its entry is removed");
    let hash_ttl: i64 = redis.cli(&["PTTL", "simples:presence:room"]).parse().unwrap();
    assert!(hash_ttl > 0 && hash_ttl <= 4000, "the hash expires unless refreshed: {hash_ttl}");

    // A corrupt entry is removed, not a failure.
    redis.cli(&["HSET", "simples:presence:room", "x:1", "not json"]);
    assert_eq!(nicks(&b.presence("room").await.unwrap()), ["bob"]);
    assert_eq!(redis.cli(&["HLEN", "simples:presence:room"]), "1");

    // A clean shutdown removes the node's key and entries at once.
    let b_key = format!("simples:node:{}", b.node_id());
    assert_eq!(redis.cli(&["EXISTS", &b_key]), "1");
    b.shutdown().await.unwrap();
    assert_eq!(redis.cli(&["EXISTS", &b_key]), "0");
    assert_eq!(redis.cli(&["HLEN", "simples:presence:room"]), "0");
    eventually(Duration::from_secs(5), "publishing to refuse after shutdown", || {
        matches!(b.publish("room", Bytes::new()), Err(BackplaneError::Unavailable(_)))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_errors_are_clear() {
    for (url, says) in
        [("http://127.0.0.1:6379", "scheme"), ("redis://127.0.0.1", "no :port"), ("redis://a:1,b:2", "one server")]
    {
        let e = RedisBackplane::connect(options(url)).await.unwrap_err();
        assert!(matches!(&e, BackplaneError::Config(m) if m.contains(says)), "{url}: {e}");
    }
    let e = RedisBackplane::connect(RedisBackplaneOptions { publish_queue: 0, ..options("redis://127.0.0.1:1") })
        .await
        .unwrap_err();
    assert!(matches!(e, BackplaneError::Config(_)), "{e}");

    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let e = RedisBackplane::connect(options(&format!("redis://127.0.0.1:{port}"))).await.unwrap_err();
    assert!(matches!(&e, BackplaneError::Unavailable(m) if m.contains(&port.to_string())), "{e}");
    assert!(started.elapsed() < Duration::from_secs(4), "fails fast: {:?}", started.elapsed());

    // Something listens but never answers: an error too, not a hang.
    let mute = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", mute.local_addr().unwrap());
    let started = Instant::now();
    let quick = RedisBackplaneOptions {
        connect_timeout: Duration::from_secs(1),
        command_timeout: Duration::from_secs(1),
        ..options(&url)
    };
    let e = RedisBackplane::connect(quick).await.unwrap_err();
    assert!(matches!(e, BackplaneError::Unavailable(_)), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_arrive_byte_for_byte() {
    let Some(redis) = RedisServer::start() else { return };
    let (a, b) = (connect(&redis.url()).await, connect(&redis.url()).await);
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    b.set_receiver(Arc::new(move |_: &str, payload: Bytes| sink.lock().unwrap().push(payload)));
    b.subscribe("bin");
    eventually(Duration::from_secs(5), "the subscription", || {
        count(&redis.cli(&["PUBSUB", "NUMSUB", "simples:bin"])) == 1
    })
    .await;
    let payloads: Vec<Bytes> = vec![
        Bytes::from_static(&[0xff, 0x00, 0x80, 0xfe]),
        Bytes::new(),
        Bytes::from_static(b"123"),
        Bytes::from_static("é\r\n$-1\r\n".as_bytes()),
        Bytes::from(vec![7u8; 1 << 20]),
    ];
    for p in &payloads {
        a.publish("bin", p.clone()).unwrap();
    }
    eventually(Duration::from_secs(10), "every payload", || got.lock().unwrap().len() == payloads.len()).await;
    assert_eq!(*got.lock().unwrap(), payloads);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_loses_what_overflows_its_buffer_and_counts_it() {
    let Some(redis) = RedisServer::start() else { return };
    let a = connect(&redis.url()).await;
    let b =
        RedisBackplane::connect(RedisBackplaneOptions { receive_buffer: 16, ..options(&redis.url()) }).await.unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    // A receiver breaking the contract (it blocks) stands for a node that
    // cannot keep up.
    b.set_receiver(Arc::new(move |_: &str, payload: Bytes| {
        std::thread::sleep(Duration::from_micros(500));
        sink.lock().unwrap().push(String::from_utf8_lossy(&payload).into_owned());
    }));
    b.subscribe("fast");
    eventually(Duration::from_secs(5), "the subscription", || {
        count(&redis.cli(&["PUBSUB", "NUMSUB", "simples:fast"])) == 1
    })
    .await;
    for i in 0..2000 {
        a.publish("fast", Bytes::from(i.to_string())).unwrap();
    }
    eventually(Duration::from_secs(20), "every message received or lost", || {
        let s = b.stats();
        s.received + s.lost == 2000
    })
    .await;
    let s = b.stats();
    assert!(s.lost > 0, "the burst overflowed the 16-message buffer: {s:?}");
    // `received` counts a message as it is handed to the receiver, which
    // records it once its (slow) call returns.
    let delivered = got.clone();
    eventually(Duration::from_secs(5), "the last receiver call", move || {
        delivered.lock().unwrap().len() as u64 == s.received
    })
    .await;
    // What arrived is in order, with holes.
    let got: Vec<u32> = got.lock().unwrap().iter().map(|p| p.parse().unwrap()).collect();
    assert_eq!(got.len() as u64, s.received);
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order");
}

// A current-thread runtime, so the thread-local log capture sees the
// backplane's tasks.
#[tokio::test(flavor = "current_thread")]
async fn an_outage_is_logged_once_when_it_starts_and_once_when_it_ends() {
    let Some(mut redis) = RedisServer::start() else { return };
    let capture = common::shared::Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let a = connect(&redis.url()).await;
    redis.kill();
    eventually(Duration::from_secs(5), "the outage to be seen", || a.stats().disconnects == 2).await;
    for i in 0..30 {
        a.publish("t", Bytes::from(i.to_string())).unwrap();
        // Several batches, not one.
        tokio::task::yield_now().await;
    }
    eventually(Duration::from_secs(5), "the failures", || a.stats().failed == 30).await;
    redis.restart();
    eventually(Duration::from_secs(10), "the reconnection", || a.stats().connected).await;
    a.publish("t", Bytes::from_static(b"back")).unwrap();
    eventually(Duration::from_secs(5), "a publication", || a.stats().published == 1).await;

    let text = capture.text();
    let lines = |what: &str| text.lines().filter(|l| l.contains(what)).count();
    assert_eq!(lines("publishing fails"), 1, "one warning:\n{text}");
    assert_eq!(lines("WARN"), lines("fails"), "warnings are outage starts only:\n{text}");
    assert_eq!(lines("publishing works again; 30 operations failed meanwhile"), 1, "one end line:\n{text}");
}
