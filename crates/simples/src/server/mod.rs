//! [`Server`]: the builder (listeners, hosts, options, hooks), and
//! [`Running`], the handle of a started server (stop, restart).
//!
//! `listener.rs` accepts connections and serves them with hyper (HTTP/1.1,
//! upgrades enabled); `running.rs` starts, stops gracefully and restarts.

mod listener;
mod running;

use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use crate::host::Host;
use crate::tls::Tls;

pub use running::Running;

/// Server-wide options. Every field has a default
/// (`ServerOptions::default()`).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Largest request head (request line and headers) in bytes; a larger
    /// one is answered `431` (hyper rounds this up to at least 8192).
    /// Default: `16384`.
    pub max_head_size: usize,
    /// Largest number of request headers; more are answered `431`.
    /// Default: `100`.
    pub max_headers: usize,
    /// Time a client has to send a complete request head (slow clients are
    /// disconnected; also the idle time allowed between keep-alive
    /// requests). Default: 30 seconds.
    pub header_read_timeout: Duration,
    /// Keep connections open between requests. Default: `true`.
    pub keep_alive: bool,
    /// Time a TLS client has to finish its handshake. Default: 10 seconds.
    pub tls_handshake_timeout: Duration,
    /// On stop or restart: how long running requests may take to finish
    /// before their connections are closed. It also bounds the drain of
    /// WebSocket connections: each gets its close 1001 behind every message
    /// already queued for it (all delivered first to a client that reads),
    /// and what has not finished its closing handshake by then is dropped.
    /// Default: 10 seconds.
    pub shutdown_timeout: Duration,
    /// Connections the kernel completes and holds for each listener
    /// before the server accepts them (`listen`'s backlog; Linux caps it
    /// at `net.core.somaxconn`, 4096 on current kernels). A burst larger
    /// than this while the accept loop is busy (clients reconnecting
    /// after a restart) has its excess connection attempts dropped, and
    /// their clients retry after one second, then three. Default: `1024`
    /// (tokio's and the standard library's `bind` use 128).
    pub backlog: u32,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_head_size: 16 * 1024,
            max_headers: 100,
            header_read_timeout: Duration::from_secs(30),
            keep_alive: true,
            tls_handshake_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(10),
            backlog: 1024,
        }
    }
}

/// One address the server listens on, plain or HTTPS.
#[derive(Debug, Clone)]
pub(crate) struct ListenerConfig {
    pub(crate) addr: String,
    pub(crate) tls: Option<Tls>,
}

type StartHook = Arc<dyn Fn(&[SocketAddr]) + Send + Sync>;
type StopHook = Arc<dyn Fn() + Send + Sync>;

/// A web server: listeners ("mirrors" serving the same hosts), a main host
/// (reached through `Deref`, so `server.get(...)` adds a main-host route),
/// named hosts, options and hooks.
///
/// ```no_run
/// # async fn run() -> simples::Result<()> {
/// use simples::Server;
///
/// let mut server = Server::new("127.0.0.1:8080");
/// server.get("/", |conn| async move { conn.send("Hello") });
/// server.get("/users/:id", |conn| async move {
///     let id = conn.param("id").unwrap_or("").to_string();
///     conn.send(format!("user {id}"))
/// });
/// let running = server.start().await?;
/// running.wait().await;
/// # Ok(()) }
/// ```
pub struct Server {
    pub(crate) main: Host,
    pub(crate) hosts: Vec<(String, Host)>,
    pub(crate) listeners: Vec<ListenerConfig>,
    pub(crate) options: ServerOptions,
    pub(crate) on_start: Vec<StartHook>,
    pub(crate) on_stop: Vec<StopHook>,
}

impl Server {
    /// A plain HTTP server on `addr` (e.g. `"0.0.0.0:80"`, `"127.0.0.1:0"`
    /// for any free port) with default options.
    pub fn new(addr: impl ToString) -> Server {
        Server::with_options(addr, ServerOptions::default())
    }

    /// A plain HTTP server on `addr` with `options`.
    pub fn with_options(addr: impl ToString, options: ServerOptions) -> Server {
        Server {
            main: Host::new(),
            hosts: Vec::new(),
            listeners: vec![ListenerConfig { addr: addr.to_string(), tls: None }],
            options,
            on_start: Vec::new(),
            on_stop: Vec::new(),
        }
    }

    /// An HTTPS server on `addr`.
    pub fn https(addr: impl ToString, tls: Tls) -> Server {
        let mut server = Server::new(addr);
        server.listeners[0].tls = Some(tls);
        server
    }

    /// Also listens on `addr` (plain HTTP), serving the same hosts.
    pub fn mirror(&mut self, addr: impl ToString) -> &mut Self {
        self.listeners.push(ListenerConfig { addr: addr.to_string(), tls: None });
        self
    }

    /// Also listens on `addr` with HTTPS, serving the same hosts.
    pub fn mirror_tls(&mut self, addr: impl ToString, tls: Tls) -> &mut Self {
        self.listeners.push(ListenerConfig { addr: addr.to_string(), tls: Some(tls) });
        self
    }

    /// The options, to change them before starting.
    pub fn server_options_mut(&mut self) -> &mut ServerOptions {
        &mut self.options
    }

    /// The host named `name` (`"api.example.com"` or `"*.example.com"`),
    /// created on first use. Requests are matched on the `Host` header
    /// without its port; unmatched ones go to the main host.
    pub fn host(&mut self, name: &str) -> &mut Host {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let index = match self.hosts.iter().position(|(n, _)| *n == name) {
            Some(i) => i,
            None => {
                self.hosts.push((name, Host::new()));
                self.hosts.len() - 1
            }
        };
        &mut self.hosts[index].1
    }

    /// Calls `hook` with the bound addresses each time the server starts
    /// (also after a restart).
    pub fn on_start(&mut self, hook: impl Fn(&[SocketAddr]) + Send + Sync + 'static) -> &mut Self {
        self.on_start.push(Arc::new(hook));
        self
    }

    /// Calls `hook` each time the server has stopped (also within a
    /// restart).
    pub fn on_stop(&mut self, hook: impl Fn() + Send + Sync + 'static) -> &mut Self {
        self.on_stop.push(Arc::new(hook));
        self
    }
}

impl Deref for Server {
    type Target = Host;

    fn deref(&self) -> &Host {
        &self.main
    }
}

impl DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Host {
        &mut self.main
    }
}
