//! A WebSocket host's metrics, through the [`metrics`] facade: whatever
//! recorder the application installs (Prometheus with
//! [`crate::metrics::install_prometheus`], StatsD, ...) sees them; without
//! one they cost next to nothing.
//!
//! Every series has the label `path` (the host's path):
//!
//! ```text
//!   simples_ws_connections                gauge    open now
//!   simples_ws_accepted_total             counter  handshakes answered 101
//!   simples_ws_refused_total{status}      counter  handshakes refused, by HTTP status
//!   simples_ws_handshake_seconds          histogram  from the request to the 101
//!   simples_ws_messages_in_total          counter  data messages received
//!   simples_ws_bytes_in_total             counter  their payload bytes
//!   simples_ws_messages_out_total         counter  data messages queued for clients
//!                                                  (each broadcast delivery counts)
//!   simples_ws_bytes_out_total            counter  their bytes (frames, for broadcasts)
//!   simples_ws_broadcasts_total           counter  broadcasts (each encoded once)
//!   simples_ws_dropped_total              counter  messages dropped for slow clients
//!   simples_ws_closed_total{code}         counter  connections ended, by the close
//!                                                  code the client sent ("none": no
//!                                                  frame, e.g. a failure)
//! ```
//!
//! The handles are resolved once per host, on first use (so install the
//! recorder before the server starts serving); per-message updates are a
//! relaxed atomic add in the recorder.

use std::time::Duration;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

/// The host's metric handles.
pub(crate) struct Metrics {
    path: String,
    pub(crate) connections: Gauge,
    pub(crate) accepted: Counter,
    pub(crate) handshake: Histogram,
    pub(crate) messages_in: Counter,
    pub(crate) bytes_in: Counter,
    pub(crate) messages_out: Counter,
    pub(crate) bytes_out: Counter,
    pub(crate) broadcasts: Counter,
    pub(crate) dropped: Counter,
}

impl Metrics {
    pub(crate) fn new(path: &str) -> Metrics {
        let label = || ("path", path.to_string());
        Metrics {
            path: path.to_string(),
            connections: gauge!("simples_ws_connections", &[label()]),
            accepted: counter!("simples_ws_accepted_total", &[label()]),
            handshake: histogram!("simples_ws_handshake_seconds", &[label()]),
            messages_in: counter!("simples_ws_messages_in_total", &[label()]),
            bytes_in: counter!("simples_ws_bytes_in_total", &[label()]),
            messages_out: counter!("simples_ws_messages_out_total", &[label()]),
            bytes_out: counter!("simples_ws_bytes_out_total", &[label()]),
            broadcasts: counter!("simples_ws_broadcasts_total", &[label()]),
            dropped: counter!("simples_ws_dropped_total", &[label()]),
        }
    }

    /// A handshake refused with `status`.
    pub(crate) fn refused(&self, status: u16) {
        counter!("simples_ws_refused_total", "path" => self.path.clone(), "status" => status.to_string()).increment(1);
    }

    /// A handshake answered 101 after `took`.
    pub(crate) fn accepted(&self, took: Duration) {
        self.accepted.increment(1);
        self.handshake.record(took.as_secs_f64());
    }

    /// A connection ended; `code`: the client's close code, if it sent one.
    pub(crate) fn closed(&self, code: Option<u16>) {
        let code = code.map_or_else(|| "none".to_string(), |c| c.to_string());
        counter!("simples_ws_closed_total", "path" => self.path.clone(), "code" => code).increment(1);
    }

    /// `n` messages of `bytes` each were queued for clients.
    pub(crate) fn sent(&self, n: usize, bytes: usize) {
        self.messages_out.increment(n as u64);
        self.bytes_out.increment((n * bytes) as u64);
    }
}
