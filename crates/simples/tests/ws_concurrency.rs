//! Broadcast filters and hooks run with no lock held, and rooms have
//! independent locks: user code may consult any channel, and many rooms
//! broadcast while connections join and leave.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::ws::{connect, text, wait_for, Client};
use simples::ws::{Message, WsConn, WsOptions};

/// Runs `f` on a blocking thread and fails if it has not returned within
/// 10 s (a deadlock would block it forever).
async fn within_10s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::time::timeout(Duration::from_secs(10), tokio::task::spawn_blocking(f))
        .await
        .expect("returned within 10 s (no deadlock)")
        .expect("did not panic")
}

/// Before: filters ran under the channel table's mutex (or the registry's
/// read lock), so a filter calling `Channel::contains`/`len`/`members` or
/// binding a connection deadlocked the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_filter_consulting_channels_does_not_deadlock() {
    let mut server = common::server();
    let host = server.ws("/f", WsOptions::default(), |_| async {});
    let running = common::start(server).await;
    let addr = running.local_addr();
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(connect(addr, "/f").await);
    }
    wait_for(&host, 4).await;
    let conns = {
        let mut c = host.connections();
        c.sort_by_key(WsConn::id);
        c
    };
    let (x, vip) = (host.channel("x"), host.channel("vip"));
    for c in &conns {
        assert!(x.bind(c));
    }
    assert!(vip.bind(&conns[1]));

    // Channel broadcast whose filter reads other channels and binds.
    let h = host.clone();
    let sent = within_10s(move || {
        let (x, vip, seen) = (h.channel("x"), h.channel("vip"), h.channel("seen"));
        x.broadcast_filter(Message::text("vip only"), |c| {
            assert_eq!(x.len(), 4);
            assert!(!x.members().is_empty());
            seen.bind(c);
            vip.contains(c)
        })
    })
    .await;
    assert_eq!(sent, 1);
    assert_eq!(host.channel("seen").len(), 4, "the filter's binds took effect");
    // Host broadcast whose filter reads the registry and a channel.
    let h = host.clone();
    let sent = within_10s(move || {
        let vip = h.channel("vip");
        h.broadcast_filter(Message::text("not vip"), |c| h.len() == 4 && h.connection(c.id()).is_some() && !vip.contains(c))
    })
    .await;
    assert_eq!(sent, 3);

    assert_eq!(text(&mut clients[1]).await, "vip only");
    for (i, client) in clients.iter_mut().enumerate() {
        if i != 1 {
            assert_eq!(text(client).await, "not vip");
        }
    }
    drop(clients);
    running.stop().await;
}

/// The `on_channel` and `on_slow` hooks may call back into the host too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_hook_may_consult_channels() {
    let mut server = common::server();
    let host = server.ws("/h", WsOptions::default(), |_| async {});
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (h, log) = (host.clone(), seen.clone());
    host.on_channel(move |event| {
        if let simples::ws::ChannelEvent::Bind { channel, .. } = event {
            log.lock().unwrap().push((channel.clone(), h.channel(channel).len()));
        }
    });
    let running = common::start(server).await;
    let _a = connect(running.local_addr(), "/h").await;
    wait_for(&host, 1).await;
    let conn = host.connections().remove(0);
    let h = host.clone();
    assert!(within_10s(move || h.channel("r").bind(&conn)).await);
    assert_eq!(*seen.lock().unwrap(), [("r".to_string(), 1)]);
    running.stop().await;
}

/// Rooms broadcasting while connections join and leave them: stable
/// members get every message of their room, once and in order; churning
/// ones get an increasing subsequence; membership ends consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_broadcast_while_members_churn() {
    const ROOMS: usize = 4;
    const MESSAGES: usize = 400;
    let mut server = common::server();
    let host = server.ws("/r", WsOptions::default(), |_| async {});
    let running = common::start(server).await;
    let addr = running.local_addr();
    // Two stable members per room, then two churners per room.
    let mut stable: Vec<(usize, Client)> = Vec::new();
    let mut churners: Vec<Client> = Vec::new();
    for room in 0..ROOMS {
        for _ in 0..2 {
            stable.push((room, connect(addr, "/r").await));
        }
    }
    wait_for(&host, ROOMS * 2).await;
    let mut stable_conns = host.connections();
    stable_conns.sort_by_key(WsConn::id);
    for (i, conn) in stable_conns.iter().enumerate() {
        assert!(host.channel(&format!("room{}", i / 2)).bind(conn));
    }
    for _ in 0..ROOMS * 2 {
        churners.push(connect(addr, "/r").await);
    }
    wait_for(&host, ROOMS * 4).await;
    let churn_conns: Vec<WsConn> =
        host.connections().into_iter().filter(|c| !stable_conns.iter().any(|s| s.id() == c.id())).collect();

    // Readers first (so no queue fills), then broadcasters and churners.
    let readers: Vec<_> = stable
        .into_iter()
        .map(|(room, mut ws)| {
            tokio::spawn(async move {
                for n in 0..MESSAGES {
                    assert_eq!(text(&mut ws).await, format!("room{room} {n}"), "stable member of room{room}");
                }
                ws
            })
        })
        .collect();
    let broadcasters: Vec<_> = (0..ROOMS)
        .map(|room| {
            let host = host.clone();
            tokio::task::spawn_blocking(move || {
                let channel = host.channel(&format!("room{room}"));
                for n in 0..MESSAGES {
                    assert!(channel.broadcast(Message::text(format!("room{room} {n}"))) >= 2);
                    if n % 50 == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            })
        })
        .collect();
    let churn = {
        let host = host.clone();
        let conns = churn_conns.clone();
        tokio::task::spawn_blocking(move || {
            for round in 0..300 {
                for (i, conn) in conns.iter().enumerate() {
                    let room = host.channel(&format!("room{}", (i + round) % ROOMS));
                    room.bind(conn);
                    if round % 3 != 0 {
                        room.unbind(conn);
                    }
                    // A filter that reads other rooms while they change.
                    host.channel("room0").broadcast_filter(Message::text("never"), |c| {
                        host.channel("room1").contains(c) && c.id() == u64::MAX
                    });
                }
            }
        })
    };
    for b in broadcasters {
        tokio::time::timeout(Duration::from_secs(30), b).await.expect("broadcasts finish").unwrap();
    }
    tokio::time::timeout(Duration::from_secs(30), churn).await.expect("churn finishes").unwrap();
    let mut kept = Vec::new(); // Stable members stay connected to the end.
    for r in readers {
        kept.push(tokio::time::timeout(Duration::from_secs(30), r).await.expect("readers finish").unwrap());
    }
    // Churners: whatever they got of a room is in order.
    for conn in &churn_conns {
        for name in conn.channels() {
            assert!(host.channel(&name).unbind(conn));
        }
    }
    for (i, ws) in churners.iter_mut().enumerate() {
        let mut last = [None::<usize>; ROOMS];
        while let Ok(Ok(Message::Text(t))) = tokio::time::timeout(Duration::from_millis(200), ws.recv()).await {
            let (room, n) = t.as_str().split_once(' ').expect("room n");
            let room: usize = room.trim_start_matches("room").parse().unwrap();
            let n: usize = n.parse().unwrap();
            assert!(last[room].map_or(true, |l| l < n), "churner {i}: room{room} {n} after {:?}", last[room]);
            last[room] = Some(n);
        }
    }
    for room in 0..ROOMS {
        assert_eq!(host.channel(&format!("room{room}")).len(), 2, "room{room} keeps its stable members");
    }
    let mut names = host.channel_names();
    names.sort();
    assert_eq!(names, (0..ROOMS).map(|r| format!("room{r}")).collect::<Vec<_>>());
    drop(kept);
    running.stop().await;
}
