//! Virtual host selection: exact names first, then wildcards
//! (`*.example.com`, longest suffix wins), then the main host. The port in
//! the `Host` header is ignored.

use std::collections::HashMap;
use std::sync::Arc;

use crate::host::Host;

/// The frozen set of hosts of a running server.
pub(crate) struct Hosts {
    main: Arc<Host>,
    exact: HashMap<String, Arc<Host>>,
    /// `(".example.com", host)`, longest suffix first.
    wildcards: Vec<(String, Arc<Host>)>,
}

impl Hosts {
    pub(crate) fn new(main: Host, named: Vec<(String, Host)>) -> Hosts {
        let mut exact = HashMap::new();
        let mut wildcards = Vec::new();
        for (name, host) in named {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            match name.strip_prefix('*') {
                Some(suffix) => wildcards.push((suffix.to_string(), Arc::new(host))),
                None => {
                    exact.insert(name, Arc::new(host));
                }
            }
        }
        wildcards.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        Hosts { main: Arc::new(main), exact, wildcards }
    }

    /// Every host: the main one, the exact names, the wildcards.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<Host>> {
        std::iter::once(&self.main).chain(self.exact.values()).chain(self.wildcards.iter().map(|(_, h)| h))
    }

    /// The WebSocket hosts of every host.
    pub(crate) fn ws_hosts(&self) -> impl Iterator<Item = &crate::ws::WsHost> {
        self.all().flat_map(|h| h.ws_hosts.iter())
    }

    /// The host for a normalized host name (see `headers::host_name`).
    pub(crate) fn select(&self, name: &str) -> &Arc<Host> {
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
