//! Admission: how many connections a host holds, in all and per client IP
//! address ([`WsOptions::max_connections`],
//! [`WsOptions::max_connections_per_ip`]).
//!
//! A handshake takes a [`Slot`] before it answers 101 and the connection's
//! task keeps it until the connection ends (or its upgrade fails), so the
//! counts cover connections being upgraded too and cannot be overrun by a
//! burst of concurrent handshakes. A refused handshake is a `503` with the
//! reason; the client may retry later. The per-address table holds only
//! the addresses with connections (an entry goes with its last one), so it
//! is bounded by the connections themselves.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use super::options::WsOptions;
use crate::error::Error;

/// The host's connection counts.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// One admitted connection: released when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Admission {
    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits one more connection from `ip` under `options`' limits, or
    /// refuses it with a 503 and the reason. Without limits nothing is
    /// counted (`Ok(None)`): connections cost no slot.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr, options: &WsOptions) -> Result<Option<Slot>, Error> {
        if options.max_connections.is_none() && options.max_connections_per_ip.is_none() {
            return Ok(None);
        }
        self.take(ip, options).map(Some)
    }

    fn take(self: &Arc<Self>, ip: IpAddr, options: &WsOptions) -> Result<Slot, Error> {
        // (IPv4-mapped IPv6 addresses count as their IPv4 address.)
        let ip = ip.to_canonical();
        let mut counts = self.counts();
        if options.max_connections.is_some_and(|max| counts.total >= max) {
            return Err(Error::new(503, "too many WebSocket connections: try again later"));
        }
        let from_ip = counts.per_ip.get(&ip).copied().unwrap_or(0);
        if options.max_connections_per_ip.is_some_and(|max| from_ip >= max) {
            return Err(Error::new(503, format!("too many WebSocket connections from {ip}: try again later")));
        }
        counts.total += 1;
        *counts.per_ip.entry(ip).or_insert(0) += 1;
        Ok(Slot { admission: self.clone(), ip })
    }

    /// Connections admitted and not yet released.
    #[cfg(test)]
    fn total(&self) -> usize {
        self.counts().total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.admission.counts();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(total: Option<usize>, per_ip: Option<usize>) -> WsOptions {
        WsOptions { max_connections: total, max_connections_per_ip: per_ip, ..WsOptions::default() }
    }

    #[test]
    fn per_ip_and_total_limits_refuse_with_503_and_release_on_drop() {
        let admission = Arc::new(Admission::default());
        let o = options(Some(3), Some(2));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let a1 = admission.admit(a, &o).unwrap().expect("a slot");
        let _a2 = admission.admit(a, &o).unwrap();
        let e = admission.admit(a, &o).unwrap_err();
        assert_eq!(e.status().as_u16(), 503);
        assert!(e.reason().contains("from 10.0.0.1"), "{}", e.reason());
        let _b1 = admission.admit(b, &o).unwrap();
        let e = admission.admit(b, &o).unwrap_err();
        assert_eq!(e.status().as_u16(), 503, "the total is reached");
        drop(a1);
        assert_eq!(admission.total(), 2);
        let _b2 = admission.admit(b, &o).unwrap();
        assert_eq!(admission.counts().per_ip.len(), 2);
    }

    #[test]
    fn without_limits_nothing_is_counted() {
        let admission = Arc::new(Admission::default());
        assert!(admission.admit("10.0.0.1".parse().unwrap(), &options(None, None)).unwrap().is_none());
        assert_eq!(admission.total(), 0);
    }

    #[test]
    fn an_address_leaves_the_table_with_its_last_connection() {
        let admission = Arc::new(Admission::default());
        let o = options(None, None);
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let slots: Vec<Slot> = (0..5).map(|_| admission.take(mapped, &o).unwrap()).collect();
        assert_eq!(admission.counts().per_ip.get(&"127.0.0.1".parse::<IpAddr>().unwrap()), Some(&5));
        drop(slots);
        assert_eq!(admission.total(), 0);
        assert!(admission.counts().per_ip.is_empty());
    }
}
