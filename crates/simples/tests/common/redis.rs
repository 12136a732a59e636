//! Real Redis for the tests: a standalone `redis-server` on a free
//! loopback port (restartable on the same port, for outage tests) and a
//! 3-master Redis Cluster of local processes. Every process is killed when
//! its handle is dropped, also when a test panics. Without `redis-server`
//! (or `redis-cli`) on PATH, `start` prints "skipped: redis-server not
//! installed" and returns `None`: the test returns (CI installs Redis, see
//! `.ci/run`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `redis-server` and `redis-cli` can be run; prints the skip
/// line when not.
fn installed() -> bool {
    let runs = |bin: &str| Command::new(bin).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    let ok = runs("redis-server") && runs("redis-cli");
    if !ok {
        eprintln!("skipped: redis-server not installed");
    }
    ok
}

/// A free TCP port on 127.0.0.1 (free when asked).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().unwrap().port()
}

/// Runs `redis-cli -p port args...`; its output, trimmed.
pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Polls `check` every 20 ms, without blocking the runtime, until it is
/// true; panics with `what` after `within`.
pub async fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `check` every 20 ms until it is true; panics with `what` after
/// `within` (for set-up, before any client runs).
fn wait_until(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One `redis-server` process.
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// A standalone server on a free port, answering PING; `None` (with
    /// the skip line) when Redis is not installed.
    pub fn start() -> Option<RedisServer> {
        if !installed() {
            return None;
        }
        Some(RedisServer::spawn(Vec::new()))
    }

    fn spawn(extra: Vec<String>) -> RedisServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = RedisServer { port: free_port(), dir, extra, child: None };
        server.run();
        server
    }

    /// Starts the process (again) on this server's port and waits until
    /// it answers PING.
    fn run(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log: PathBuf = self.dir.path().join("redis.log");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let port = self.port;
        wait_until(Duration::from_secs(10), "redis-server to answer PING", || {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("redis-server exited ({status}) on port {port}:\n{log}");
            }
            cli(port, &["PING"]) == "PONG"
        });
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `redis-cli` on this server.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args)
    }

    /// Kills the process now (SIGKILL: a crash, no goodbye).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (empty: no persistence).
    pub fn restart(&mut self) {
        self.kill();
        self.run();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Cluster of three masters (no replicas), all slots assigned.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three cluster-enabled servers, creates the cluster and waits
    /// for `cluster_state:ok` on each; `None` when Redis is not installed.
    pub fn start() -> Option<RedisCluster> {
        if !installed() {
            return None;
        }
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::spawn(
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "5000",
                        "--cluster-port",
                        &free_port().to_string(),
                    ]
                    .map(String::from)
                    .to_vec(),
                )
            })
            .collect();
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("All 16384 slots covered"), "cluster create failed:\n{text}");
        let cluster = RedisCluster { nodes };
        for node in &cluster.nodes {
            wait_until(Duration::from_secs(20), "cluster_state:ok", || {
                node.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok")
            });
        }
        Some(cluster)
    }

    /// `redis-cluster://` with every node.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        format!("redis-cluster://{}", nodes.join(","))
    }

    /// The node that owns `key`'s slot (the others answer MOVED).
    pub fn owner(&self, key: &str) -> &RedisServer {
        let owners: Vec<&RedisServer> =
            self.nodes.iter().filter(|n| !n.cli(&["EXISTS", key]).starts_with("MOVED")).collect();
        assert_eq!(owners.len(), 1, "one owner for {key}");
        owners[0]
    }
}
