//! [`Signal`]: wakes a connection's task, lock-free.
//!
//! A flag and an `AtomicWaker`: `notify` sets the flag and wakes the task
//! if it was not set; `wait` resolves once the flag is set, clearing it.
//! Notifications while the task runs coalesce into one. Cheaper than
//! `tokio::sync::Notify`, whose waiter list takes a lock on every wait.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use futures_util::task::AtomicWaker;

#[derive(Default)]
pub(crate) struct Signal {
    set: AtomicBool,
    waker: AtomicWaker,
}

impl Signal {
    /// Wakes the waiting task (or the next `wait`).
    pub(crate) fn notify(&self) {
        if !self.set.swap(true, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    /// Resolves once notified since the last `wait` resolved. Cancel-safe.
    pub(crate) async fn wait(&self) {
        poll_fn(|cx| {
            if self.set.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            // A notify between the check and the registration.
            if self.set.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_notify_before_or_while_waiting_is_never_lost() {
        let s = Arc::new(Signal::default());
        s.notify();
        s.notify();
        tokio::time::timeout(Duration::from_secs(1), s.wait()).await.expect("stored notification");
        // Coalesced: nothing left.
        assert!(tokio::time::timeout(Duration::from_millis(20), s.wait()).await.is_err());
        let s2 = s.clone();
        let waiter = tokio::spawn(async move { s2.wait().await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        s.notify();
        tokio::time::timeout(Duration::from_secs(1), waiter).await.expect("woken").unwrap();
    }
}
