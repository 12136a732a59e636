//! [`VirtualHosts`]: the frozen hosts of a running server and the choice of
//! one per request: exact names first, then wildcards (`*.example.com`,
//! longest suffix wins), then the main host. The port in the `Host` header
//! is ignored.

use std::collections::HashMap;
use std::sync::Arc;

use crate::host::{Host, ServedHost};
use crate::lifecycle::Lifecycle;

/// The frozen set of hosts of a running server.
pub(crate) struct VirtualHosts {
    main: Arc<ServedHost>,
    exact: HashMap<String, Arc<ServedHost>>,
    /// `(".example.com", host)`, longest suffix first.
    wildcards: Vec<(String, Arc<ServedHost>)>,
}

impl VirtualHosts {
    pub(crate) fn new(main: Host, named: Vec<(String, Host)>) -> VirtualHosts {
        let mut exact = HashMap::new();
        let mut wildcards = Vec::new();
        for (name, host) in named {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            let host = Arc::new(host.freeze());
            match name.strip_prefix('*') {
                Some(suffix) => wildcards.push((suffix.to_string(), host)),
                None => {
                    exact.insert(name, host);
                }
            }
        }
        wildcards.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        VirtualHosts { main: Arc::new(main.freeze()), exact, wildcards }
    }

    /// Every host: the main one, the exact names, the wildcards.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<ServedHost>> {
        std::iter::once(&self.main).chain(self.exact.values()).chain(self.wildcards.iter().map(|(_, h)| h))
    }

    /// What runs beside the routes of every host (WebSocket hosts).
    pub(crate) fn attached(&self) -> impl Iterator<Item = (&ServedHost, &Arc<dyn Lifecycle>)> {
        self.all().flat_map(|h| h.attached.iter().map(move |a| (&**h, a)))
    }

    /// The host for a normalized host name (see `headers::host_name`).
    pub(crate) fn select(&self, name: &str) -> &Arc<ServedHost> {
        if let Some(h) = self.exact.get(name) {
            return h;
        }
        for (suffix, host) in &self.wildcards {
            if name.len() > suffix.len() && name.ends_with(suffix.as_str()) {
                return host;
            }
        }
        &self.main
    }
}
