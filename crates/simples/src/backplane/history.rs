//! [`HistoryStore`]: channel history kept by the backplane's engine, so
//! that a channel's positions are the same on every node.
//!
//! The store numbers each message and publishes it in one atomic step
//! (the engine allocates the offset and publishes the envelope that
//! carries it): every node, the publisher included, delivers a channel's
//! messages as they come back from the engine, so in offset order.

use std::time::Duration;

use bytes::Bytes;
use futures_core::future::BoxFuture;

use super::{BackplaneError, Envelope};

/// One message to number, keep and publish.
#[derive(Debug, Clone)]
pub struct HistoryAppend {
    /// The channel's topic (history key and pub/sub channel).
    pub topic: String,
    /// The most messages kept.
    pub size: usize,
    /// How long a message is kept.
    pub ttl: Duration,
    /// The envelope to publish; its payload is the message as published.
    /// The store publishes it with [`Envelope::offset`] set, the
    /// position spliced in at `splice_at` and the offset as the trailer.
    pub envelope: Envelope,
    /// For a JSON-object message: the byte length of the object without
    /// its closing brace; the store publishes `payload[..splice_at]`, then
    /// `position_prefix`, the epoch, `","offset":`, the offset and `}`.
    pub splice_at: Option<usize>,
    /// `,"channel":"<name>","epoch":"` (JSON-escaped name).
    pub position_prefix: String,
}

/// Where a read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// The messages after this offset.
    After(u64),
    /// The latest `limit` messages.
    Latest,
}

/// A kept message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryItem {
    /// Its offset.
    pub offset: u64,
    /// The message as published.
    pub payload: Bytes,
    /// Whether it is binary.
    pub binary: bool,
}

/// What a read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRead {
    /// The history's epoch (created by the read when missing).
    pub epoch: String,
    /// The latest offset (0: none yet).
    pub last: u64,
    /// The oldest offset still kept (`last + 1` when none is).
    pub oldest: u64,
    /// The messages read, oldest first.
    pub items: Vec<HistoryItem>,
}

/// Channel history in the backplane's engine. See the module's
/// documentation.
pub trait HistoryStore: Send + Sync + 'static {
    /// Queues `append`: numbered, trimmed (size and age), published.
    /// Never waits; [`BackplaneError::Full`] when the queue is full.
    fn append(&self, append: HistoryAppend) -> Result<(), BackplaneError>;

    /// Reads `topic`'s history (trimming expired messages first), at most
    /// `limit` messages.
    fn read(
        &self,
        topic: &str,
        ttl: Duration,
        from: ReadFrom,
        limit: usize,
    ) -> BoxFuture<'static, Result<HistoryRead, BackplaneError>>;
}
