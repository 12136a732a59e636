//! Prometheus metrics (feature `prometheus`): a recorder for the
//! [`metrics`] facade, and a scrape page.
//!
//! ```no_run
//! # async fn f() -> simples::Result<()> {
//! let prometheus = simples::prometheus::install()?; // once, before serving
//! let mut server = simples::Server::new("127.0.0.1:8080");
//! server.serve_metrics("/metrics", prometheus);
//! # Ok(()) }
//! ```
//!
//! The framework's series are listed in the WebSocket hosts' docs
//! (`simples_ws_*`, labelled by host path); the application's own
//! `metrics::counter!` and friends show up on the same page.

use std::time::Duration;

use http::{header, HeaderValue};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::error::Error;
use crate::host::Host;
use crate::response::Response;

/// How often histograms are folded (and their memory released) when
/// nobody scrapes.
const UPKEEP: Duration = Duration::from_secs(5);

/// The installed Prometheus recorder: renders the scrape page. Cheap to
/// clone.
#[derive(Clone)]
pub struct Prometheus {
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus").finish_non_exhaustive()
    }
}

/// Installs a Prometheus recorder as the process's global `metrics`
/// recorder (install it before the server starts serving: each host
/// resolves its metric handles on first use). Fails if a recorder is
/// already installed. A background thread folds histograms every 5 s.
pub fn install() -> crate::Result<Prometheus> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| Error::new(500, format!("cannot install the Prometheus recorder: {e}")))?;
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("simples-prometheus-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP);
            upkeep.run_upkeep();
        })
        .map_err(|e| Error::new(500, format!("cannot start the Prometheus upkeep thread: {e}")))?;
    Ok(Prometheus { handle })
}

impl Prometheus {
    /// The scrape page: every series in the Prometheus text format.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

impl Host {
    /// Serves the Prometheus scrape page at `path` (usually `/metrics`),
    /// as `text/plain; version=0.0.4`.
    pub fn serve_metrics(&mut self, path: &str, prometheus: Prometheus) -> &mut Self {
        self.get(path, move |_conn| {
            let page = prometheus.render();
            async move {
                let mut res = Response::new(page.into());
                let headers = res.headers_mut();
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                res
            }
        })
    }
}
