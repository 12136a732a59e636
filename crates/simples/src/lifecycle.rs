//! [`Lifecycle`]: the small interface through which what runs beside a
//! host's routes (its WebSocket hosts) registers with the host
//! (`Host::attach`), so that `host` and the server that starts and stops it
//! need not know what it is. A leaf.
//!
//! The parts started by one server start share a [`Together`]: one value
//! per type, made by the first part that asks for it (the WebSocket hosts
//! share their event loops through it).

use std::any::Any;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::context::HostContext;

/// Something a host keeps alive between requests, told when the server
/// starts serving and when it stops.
pub(crate) trait Lifecycle: Send + Sync + 'static {
    /// The server starts (or restarts) serving: `context` is the frozen
    /// settings of the host it belongs to; `together` what the parts of
    /// this start share. Called once per start.
    fn started(&self, context: &HostContext, together: &Together);

    /// The server stops: end gracefully within `deadline`.
    fn stop(&self, deadline: Duration) -> BoxFuture<'static, ()>;
}

/// What the parts of one server start share: at most one value per type,
/// made by the first part that asks ([`Together::get_or_make`]). Made for
/// each start and dropped once every part has started: what a part keeps
/// of it lives as long as that part keeps it.
#[derive(Default)]
pub(crate) struct Together {
    values: Mutex<Vec<Arc<dyn Any + Send + Sync>>>,
}

impl Together {
    /// The shared value of type `T`, made by `make` if no part asked yet.
    pub(crate) fn get_or_make<T: Any + Send + Sync>(&self, make: impl FnOnce() -> T) -> Arc<T> {
        let mut values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        for value in values.iter() {
            if let Ok(found) = value.clone().downcast::<T>() {
                return found;
            }
        }
        let made = Arc::new(make());
        values.push(made.clone());
        made
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_per_type_made_by_the_first_that_asks() {
        let together = Together::default();
        let a = together.get_or_make(|| 1u32);
        let b = together.get_or_make(|| 2u32);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(*b, 1);
        let s = together.get_or_make(|| String::from("x"));
        assert_eq!(*s, "x");
        assert_eq!(*together.get_or_make(|| 3u32), 1);
    }
}
