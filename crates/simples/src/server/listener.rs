//! Accepting connections and serving each with hyper's HTTP/1.1 server
//! (upgrades enabled, so a route can take the connection over).
//!
//! Shutdown has two signals: `stop` makes accept loops return (closing the
//! listening socket) and tells each connection to finish its current
//! request and close; `force` (after the deadline) drops connections.
//! Each connection task holds a clone of `alive`, so the server knows when
//! the last one has ended.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use super::ServerOptions;
use crate::dispatch::dispatch;
use crate::virtual_hosts::VirtualHosts;

/// What every connection of a running server shares.
pub(crate) struct Shared {
    pub(crate) hosts: VirtualHosts,
    pub(crate) http: http1::Builder,
    pub(crate) options: ServerOptions,
}

impl Shared {
    pub(crate) fn new(hosts: VirtualHosts, options: ServerOptions) -> Shared {
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(options.header_read_timeout)
            .keep_alive(options.keep_alive)
            .max_buf_size(options.max_head_size.max(8192))
            .max_headers(options.max_headers);
        Shared { hosts, http, options }
    }
}

/// The shutdown signals and the liveness token given to each task.
#[derive(Clone)]
pub(crate) struct Signals {
    pub(crate) stop: watch::Receiver<bool>,
    pub(crate) force: watch::Receiver<bool>,
    pub(crate) alive: mpsc::Sender<()>,
}

/// Pause before retrying `accept` after an error such as EMFILE.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

/// Accepts connections until `stop`. When `accept` fails (out of file
/// descriptors and the like), logs once per episode and retries after
/// `ACCEPT_BACKOFF`; the open connections are served meanwhile.
pub(crate) async fn accept_loop(listener: TcpListener, tls: Option<TlsAcceptor>, shared: Arc<Shared>, mut signals: Signals) {
    let mut failing = false;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = signals.stop.wait_for(|s| *s) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(error = %e, "accept failed; serving the open connections, retrying every 50 ms");
                }
                tokio::select! {
                    _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    _ = signals.stop.wait_for(|s| *s) => break,
                }
            }
        };
        if std::mem::take(&mut failing) {
            tracing::info!("accepting connections again");
        }
        let _ = tcp.set_nodelay(true);
        tokio::spawn(connection(tcp, peer, tls.clone(), shared.clone(), signals.clone()));
    }
}

/// An accepted connection's task.
async fn connection(tcp: TcpStream, peer: SocketAddr, tls: Option<TlsAcceptor>, shared: Arc<Shared>, signals: Signals) {
    match tls {
        None => serve(tcp, peer, false, shared, signals).await,
        // Boxed: the TLS states (the handshake, the stream) inline made
        // every connection's task 4.9 KB, plain ones too (see the test
        // below).
        Some(acceptor) => Box::pin(serve_tls(acceptor, tcp, peer, shared, signals)).await,
    }
}

/// Completes the TLS handshake within `tls_handshake_timeout`, then
/// serves the connection.
async fn serve_tls(acceptor: TlsAcceptor, tcp: TcpStream, peer: SocketAddr, shared: Arc<Shared>, signals: Signals) {
    let timeout = shared.options.tls_handshake_timeout;
    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => serve(stream, peer, true, shared, signals).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

/// Serves one connection until it closes, is told to stop (after its
/// current request) or is forced to close.
async fn serve<IO>(io: IO, peer: SocketAddr, secure: bool, shared: Arc<Shared>, mut signals: Signals)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc_shared = shared.clone();
    let service = service_fn(move |req| {
        let shared = svc_shared.clone();
        async move { Ok::<_, Infallible>(dispatch(&shared.hosts, req, peer, secure).await) }
    });
    let conn = shared.http.serve_connection(TokioIo::new(io), service).with_upgrades();
    tokio::pin!(conn);
    let mut stopping = false;
    if *signals.stop.borrow() {
        conn.as_mut().graceful_shutdown();
        stopping = true;
    }
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                break;
            }
            _ = signals.stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = signals.force.wait_for(|s| *s) => break,
        }
    }
    drop(signals.alive);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtual_hosts::VirtualHosts;
    use crate::{Host, ServerOptions};

    /// Regression (2026-12-05): with the TLS handshake and stream inline,
    /// the task of every connection, plain ones too, was a 4.9 KB future
    /// (1.2 KB without), allocated for the connection's life and copied
    /// three times by the spawn.
    #[tokio::test]
    async fn a_plain_connections_task_does_not_carry_the_tls_states() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (tcp, peer) = listener.accept().await.unwrap();
        let shared = Arc::new(Shared::new(VirtualHosts::new(Host::new(), Vec::new()), ServerOptions::default()));
        let (_stop, stop) = watch::channel(false);
        let (_force, force) = watch::channel(false);
        let (alive, _alive) = mpsc::channel(1);
        let task = connection(tcp, peer, None, shared, Signals { stop, force, alive });
        let size = std::mem::size_of_val(&task);
        assert!(size <= 2048, "a connection's task is {size} B");
    }
}
