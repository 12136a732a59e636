//! [`Running`]: a started server. Stop is graceful: listeners close at
//! once, WebSocket connections get close 1001 and running requests and
//! closing handshakes get up to `shutdown_timeout` (in all) to finish, idle
//! keep-alive connections close, then the rest are dropped. Restart stops
//! and binds the same addresses again (the ports first bound, so a server
//! started on port 0 comes back on the same port).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::listener::{accept_loop, Shared, Signals};
use super::{ListenerConfig, Server, StartHook, StopHook};
use crate::error::{Error, ErrorKind, Result};
use crate::lifecycle::Together;
use crate::virtual_hosts::VirtualHosts;

/// The handle of a started server. Cloning it gives another handle to the
/// same server.
#[derive(Clone)]
pub struct Running {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    listeners: Vec<ListenerConfig>,
    on_start: Vec<StartHook>,
    on_stop: Vec<StopHook>,
    state: tokio::sync::Mutex<Option<Active>>,
    addrs: Mutex<Vec<SocketAddr>>,
    /// `true` once stopped for good (not within a restart).
    closed: watch::Sender<bool>,
}

/// The tasks and signals of the current run.
struct Active {
    stop: watch::Sender<bool>,
    force: watch::Sender<bool>,
    alive: mpsc::Receiver<()>,
    accept_tasks: Vec<JoinHandle<()>>,
}

/// Binds a listener to the first address `addr` resolves to that takes
/// it (as `TcpListener::bind` does: an address whose family is missing,
/// e.g. `::1` with IPv6 off, is skipped), with `SO_REUSEADDR` (a restart
/// binds again at once) and `backlog` (`ServerOptions::backlog`).
async fn listen(addr: &str, backlog: u32) -> std::io::Result<TcpListener> {
    listen_any(tokio::net::lookup_host(addr).await?, backlog)
}

/// The first of `addrs` a listener can be made on (the last error if none).
fn listen_any(addrs: impl IntoIterator<Item = SocketAddr>, backlog: u32) -> std::io::Result<TcpListener> {
    let mut last = None;
    for addr in addrs {
        match listen_on(addr, backlog) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on")))
}

fn listen_on(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // Not on Windows, where it would let another process take the port
    // (as tokio's `bind`).
    #[cfg(not(windows))]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

fn server_error(reason: impl Into<String>) -> Error {
    Error::from_kind(ErrorKind::Server, reason)
}

impl Server {
    /// Binds every listener and starts serving. Must be called within a
    /// tokio runtime.
    pub async fn start(self) -> Result<Running> {
        Running::start(self).await
    }
}

impl Running {
    async fn start(server: Server) -> Result<Running> {
        let hosts = VirtualHosts::new(server.main, server.hosts);
        let inner = Inner {
            shared: Arc::new(Shared::new(hosts, server.options)),
            listeners: server.listeners,
            on_start: server.on_start,
            on_stop: server.on_stop,
            state: tokio::sync::Mutex::new(None),
            addrs: Mutex::new(Vec::new()),
            closed: watch::channel(false).0,
        };
        let running = Running { inner: Arc::new(inner) };
        let mut state = running.inner.state.lock().await;
        let addrs: Vec<String> = running.inner.listeners.iter().map(|l| l.addr.clone()).collect();
        *state = Some(running.bind(&addrs).await?);
        drop(state);
        Ok(running)
    }

    /// Binds every listener to `addrs` (same order) and spawns the accept
    /// loops.
    async fn bind(&self, addrs: &[String]) -> Result<Active> {
        let mut bound = Vec::new();
        let backlog = self.inner.shared.options.backlog;
        for (config, addr) in self.inner.listeners.iter().zip(addrs) {
            let listener = listen(addr, backlog)
                .await
                .map_err(|e| server_error(format!("cannot listen on {addr}: {e}")).with_source(e))?;
            bound.push((listener, config.tls.clone()));
        }
        let (stop, stop_rx) = watch::channel(false);
        let (force, force_rx) = watch::channel(false);
        let (alive_tx, alive) = mpsc::channel(1);
        let mut local = Vec::new();
        let mut accept_tasks = Vec::new();
        for (listener, tls) in bound {
            let addr = listener.local_addr()?;
            local.push(addr);
            let acceptor = tls.map(|t| TlsAcceptor::from(t.config));
            let signals = Signals { stop: stop_rx.clone(), force: force_rx.clone(), alive: alive_tx.clone() };
            accept_tasks.push(tokio::spawn(accept_loop(listener, acceptor, self.inner.shared.clone(), signals)));
            tracing::info!(%addr, "listening");
        }
        *self.inner.addrs.lock().unwrap_or_else(|e| e.into_inner()) = local.clone();
        let together = Together::default();
        for (host, part) in self.inner.shared.hosts.attached() {
            part.started(&host.chain.context, &together);
        }
        for hook in &self.inner.on_start {
            hook(&local);
        }
        Ok(Active { stop, force, alive, accept_tasks })
    }

    /// The bound addresses, in the order the listeners were added (the
    /// first is the one given to `Server::new`).
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.inner.addrs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The first listener's bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addrs()[0]
    }

    /// Stops gracefully: stops accepting, lets running requests finish (up
    /// to `shutdown_timeout`), then closes what is left. Calls the stop
    /// hooks. Does nothing if already stopped.
    pub async fn stop(&self) {
        let mut state = self.inner.state.lock().await;
        if let Some(active) = state.take() {
            self.shutdown(active).await;
        }
        self.inner.closed.send_replace(true);
    }

    /// Stops gracefully, then listens again on the same addresses.
    pub async fn restart(&self) -> Result<()> {
        let mut state = self.inner.state.lock().await;
        if let Some(active) = state.take() {
            self.shutdown(active).await;
        }
        let addrs: Vec<String> = self.addrs().iter().map(|a| a.to_string()).collect();
        *state = Some(self.bind(&addrs).await?);
        Ok(())
    }

    async fn shutdown(&self, mut active: Active) {
        active.stop.send_replace(true);
        for task in active.accept_tasks.drain(..) {
            let _ = task.await;
        }
        let deadline = self.inner.shared.options.shutdown_timeout;
        // WebSocket connections (no longer hyper's): close 1001, flush,
        // wait for the closing handshakes, all hosts at once.
        let started = tokio::time::Instant::now();
        let ws = self.inner.shared.hosts.attached().map(|(_, part)| part.stop(deadline));
        futures_util::future::join_all(ws).await;
        let left = deadline.saturating_sub(started.elapsed());
        if tokio::time::timeout(left, active.alive.recv()).await.is_err() {
            tracing::warn!("connections still busy after the shutdown timeout; closing them");
            active.force.send_replace(true);
            let _ = tokio::time::timeout(Duration::from_secs(5), active.alive.recv()).await;
        }
        for hook in &self.inner.on_stop {
            hook();
        }
        tracing::info!("stopped");
    }

    /// Whether the server is serving (not stopped).
    pub fn is_running(&self) -> bool {
        !*self.inner.closed.borrow()
    }

    /// Waits until [`stop`](Self::stop) is called (from another handle or
    /// task).
    pub async fn wait(&self) {
        let mut rx = self.inner.closed.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As `TcpListener::bind`: an address that cannot be listened on (in
    /// use here) is skipped for the next one; none left, the last error.
    #[tokio::test]
    async fn listen_takes_the_first_address_that_works() {
        let taken = listen_any([SocketAddr::from(([127, 0, 0, 1], 0))], 16).unwrap();
        let busy = taken.local_addr().unwrap();
        let listener = listen_any([busy, SocketAddr::from(([127, 0, 0, 1], 0))], 16).unwrap();
        assert_ne!(listener.local_addr().unwrap(), busy);
        let e = listen_any([busy], 16).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
        let e = listen_any([], 16).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    }
}
