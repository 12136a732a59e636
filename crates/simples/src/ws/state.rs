//! The state a WebSocket host shares with its connections, channels and
//! histories: the type definitions that refer to each other, and only
//! them (with the plain types they hold).
//!
//! `WsShared` (behind every [`WsHost`]) keeps the handlers, the open
//! connections (a [`Members`] set of [`WsConn`]), the channels ([`Rooms`])
//! and their [`History`]; each `WsConn` points back at its `WsShared`.
//! These definitions live here, in a leaf that imports none of the modules
//! using them, and their `impl` blocks stay with the code they belong to
//! (`host`, `conn`, `members`, `channel`, `history`), which import this
//! module and call each other one way only, top to bottom:
//!
//! ```text
//!   history/recover   recovery, @join/@leave, Channel::join,
//!                     WsShared::event_handler (the built-in requests)
//!   channel           Channel, the Rooms table, WsHost::channel
//!   host              WsHost's API, WsShared's accounting, fan-out,
//!                     broadcast_with, remote delivery
//!   history           publication and reads (memory or store), then
//!                     history/store, history/numbered, history/memory
//!   conn, members     WsConn's and Members' methods (need only this)
//!   encode            a broadcast's frame, encoded once
//!   state             this module; history/types below it
//! ```
//!
//! A new type that holds one of these (or that one of these holds and
//! that refers back to them) is defined here too; anything else goes to
//! the module that uses it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use serde_json::Value;
use simples_ws::{CloseFrame, Message, PreparedFrame};
use tokio::sync::oneshot;
use tokio::sync::Notify;

use super::admission::{Admission, Slot};
use super::history::{HistoryOptions, Memory};
use super::metrics::Metrics;
use super::options::{SlowAction, WsOptions};
use super::outbox::{Limits, Outbox};
use super::presence::PresenceEvent;
use super::request::RequestInfo;
use super::signal::Signal;
use crate::backplane::HistoryStore;
use crate::conn::Conn;
use crate::error::Error;
use crate::handler::BoxFuture;
use crate::template::TemplateEngine;

// The host.

/// A WebSocket endpoint: the value [`Host::ws`](crate::Host::ws) returns.
/// Cheap to clone; keep one to broadcast from anywhere (an HTTP route, a
/// timer, another host).
///
/// Handlers are registered on it: [`on`](WsHost::on) per event (object
/// mode), [`on_message`](WsHost::on_message) (plain mode),
/// [`on_close`](WsHost::on_close), [`authorize`](WsHost::authorize) (the
/// handshake hook), [`on_slow`](WsHost::on_slow) and
/// [`on_channel`](WsHost::on_channel). Each connection runs its handlers
/// one at a time, in the order its messages arrived.
#[derive(Clone)]
pub struct WsHost {
    pub(crate) shared: Arc<WsShared>,
}

pub(crate) struct WsShared {
    pub(crate) path: String,
    pub(crate) options: WsOptions,
    pub(crate) limits: Limits,
    pub(crate) config: Arc<simples_ws::Config>,
    pub(crate) handlers: RwLock<Handlers>,
    /// The open connections.
    pub(crate) conns: Members,
    /// The channels with members.
    pub(crate) rooms: Rooms,
    pub(crate) next_id: AtomicU64,
    pub(crate) accepted: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) slow_closed: AtomicU64,
    pub(crate) published: AtomicU64,
    pub(crate) publish_failed: AtomicU64,
    pub(crate) remote: AtomicU64,
    pub(crate) remote_refused: AtomicU64,
    /// What each connection shows in presence (`WsConn::set_presence`).
    pub(crate) presence_info: Mutex<HashMap<u64, Value>>,
    /// The metric handles, resolved on first use.
    pub(crate) metrics: OnceLock<Metrics>,
    pub(crate) templates: OnceLock<Arc<dyn TemplateEngine>>,
    /// Bumped when connections left after a shutdown deadline must be
    /// dropped: a connection ends when it differs from the value it saw at
    /// its start (so a restarted server's new connections are unaffected).
    pub(crate) force: AtomicU64,
    /// Notified whenever a connection ends (or an upgrade fails).
    pub(crate) ended: Notify,
    /// Set from the start of a stop until the server starts again: new
    /// handshakes are refused (503), and a connection that was answered 101
    /// just before is closed (1001) as soon as it registers.
    pub(crate) stopping: AtomicBool,
    /// Connections answered 101 that have not registered yet.
    pub(crate) upgrading: AtomicUsize,
    /// Channel histories and the connections recovering.
    pub(crate) history: History,
    /// Connection counts under `max_connections` and
    /// `max_connections_per_ip`.
    pub(crate) admission: Arc<Admission>,
    /// The event loops running this host's plain-TCP connections
    /// (`looped.rs`): started with the first such connection, stopped with
    /// the server.
    pub(crate) loops: Mutex<Option<Arc<Loops>>>,
}

pub(crate) type OpenFn = Arc<dyn Fn(WsConn) -> BoxFuture<'static, ()> + Send + Sync>;

pub(crate) type MessageFn = Arc<dyn Fn(WsConn, Message) -> BoxFuture<'static, ()> + Send + Sync>;

pub(crate) type EventFn = Arc<dyn Fn(WsConn, Value) -> BoxFuture<'static, Result<Value, String>> + Send + Sync>;

pub(crate) type CloseFn = Arc<dyn Fn(WsConn, Option<CloseFrame>) -> BoxFuture<'static, ()> + Send + Sync>;

pub(crate) type AuthFn = Arc<dyn Fn(Conn) -> BoxFuture<'static, Result<Conn, Error>> + Send + Sync>;

pub(crate) type SlowFn = Arc<dyn Fn(&WsConn, SlowAction) + Send + Sync>;

pub(crate) type ChannelFn = Arc<dyn Fn(&ChannelEvent) + Send + Sync>;

pub(crate) type PresenceFn = Arc<dyn Fn(&PresenceEvent) + Send + Sync>;

pub(crate) type FilterFn = Arc<dyn Fn(&WsConn) -> bool + Send + Sync>;

#[derive(Default)]
pub(crate) struct Handlers {
    pub(crate) open: Option<OpenFn>,
    pub(crate) message: Option<MessageFn>,
    pub(crate) events: HashMap<String, EventFn>,
    pub(crate) close: Option<CloseFn>,
    pub(crate) authorize: Option<AuthFn>,
    pub(crate) slow: Option<SlowFn>,
    pub(crate) channel: Option<ChannelFn>,
    pub(crate) presence: Option<PresenceFn>,
    pub(crate) filters: HashMap<String, FilterFn>,
}

pub(crate) fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

// A connection.

/// One WebSocket connection of a [`WsHost`](crate::WsHost): a cheap handle
/// (clones share the connection) usable from any task.
///
/// Sending never waits: a message goes into the connection's bounded queue
/// and the host's [`SlowPolicy`](crate::ws::SlowPolicy) decides what
/// happens when a slow client lets the queue fill up.
#[derive(Clone)]
pub struct WsConn {
    pub(crate) inner: Arc<ConnInner>,
}

pub(crate) struct ConnInner {
    pub(crate) id: u64,
    pub(crate) host: Arc<WsShared>,
    pub(crate) request: RequestInfo,
    pub(crate) outbox: Mutex<Outbox>,
    /// Wakes the driver: something was queued, or a forced shutdown.
    pub(crate) wake: Signal,
    /// The channels this connection is bound to and its requests waiting
    /// for the client's acknowledgement (object mode), behind one lock.
    pub(crate) extras: Mutex<Extras>,
}

/// What only some connections use: channels and requests. The lists
/// are allocated by the first join or request (an idle connection that
/// does neither holds 8 B here, not the 72 B of two locked lists). Lock
/// order: the channel table, a room, this, then the outbox (`channel`,
/// `ConnInner::join_channel`). Whether the connection has ended is its
/// outbox's `finished` flag (`ConnInner::ended`): both drivers finish the
/// outbox before they leave the channels and fail the requests, each under
/// this lock, so a join or request made under it before the finish is
/// seen by them, and one made after is refused.
#[derive(Default)]
pub(crate) struct Extras {
    pub(crate) used: Option<Box<Used>>,
}

/// See [`Extras`].
#[derive(Default)]
pub(crate) struct Used {
    /// The channels the connection is in.
    pub(crate) names: Vec<String>,
    /// The last request id given.
    pub(crate) next_id: u64,
    /// Waiters of the requests; allocated by the first request (a
    /// connection in channels seldom makes any).
    pub(crate) waiting: Option<Box<Waiters>>,
    /// Membership changes not announced yet, in the order they happened
    /// (each pushed under the room's lock, with the membership itself).
    pub(crate) changes: VecDeque<Change>,
    /// The channels whose join was queued and not its leave: a change is
    /// queued only when a name enters or leaves this list, so two rooms of
    /// one name (a bind racing `Channel::close`, which takes the old room
    /// out of the table before it empties it) make one join and one leave,
    /// announced when the last membership of the name goes.
    pub(crate) present: Vec<String>,
    /// A thread is announcing `changes` (`WsShared::announce`): the others
    /// only push theirs, so the hooks and the backplane see one
    /// connection's changes in order.
    pub(crate) announcing: bool,
}

/// A change of a connection's channels to announce to the `on_channel` and
/// `on_presence` hooks and the backplane's presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// Bound: `Bind`, a presence join.
    Bound(String),
    /// Unbound, or left at its end: `Unbind`, a presence leave.
    Unbound(String),
    /// Taken out by `Channel::close` (which reports one `Close` event):
    /// a presence leave.
    Closed(String),
    /// New presence info in a channel it is in: a presence join (update).
    Updated(String),
}

/// Who waits for each request's acknowledgement, by request id.
pub(crate) type Waiters = HashMap<u64, oneshot::Sender<Result<Value, String>>>;

// Sets of connections: the registry, the channels.

/// The set and its cached snapshot.
#[derive(Default)]
pub(crate) struct Members {
    pub(crate) state: Mutex<State>,
}

/// A member of a [`Members`] set, hashed and compared by its connection's
/// id (the set's key; ids are unique within a host, and a set holds one
/// host's connections).
pub(crate) struct ById(pub(crate) WsConn);

#[derive(Default)]
pub(crate) struct State {
    /// By connection id (`ById`'s `Borrow<u64>`): one pointer per member,
    /// where a map from the id took two.
    pub(crate) by_id: HashSet<ById>,
    pub(crate) snapshot: Option<Arc<[WsConn]>>,
    pub(crate) retired: bool,
}

/// The host's channel table: one [`Members`] set per room with members.
#[derive(Default)]
pub(crate) struct Rooms {
    pub(crate) table: RwLock<HashMap<String, Arc<Members>>>,
}

/// A channel membership change, as passed to
/// [`WsHost::on_channel`](crate::WsHost::on_channel).
#[derive(Debug, Clone)]
pub enum ChannelEvent {
    /// `conn` joined `channel`.
    Bind {
        /// The channel's name.
        channel: String,
        /// The connection.
        conn: WsConn,
    },
    /// `conn` left `channel` (by `unbind` or because it closed).
    Unbind {
        /// The channel's name.
        channel: String,
        /// The connection.
        conn: WsConn,
    },
    /// `channel` was closed: every member was unbound.
    Close {
        /// The channel's name.
        channel: String,
        /// How many members it had.
        members: usize,
    },
}

// The event loops (`looped.rs`).

/// A set of event loops: one [`Lane`] per thread, given connections in
/// turn. Shared by the hosts of a server that run the same number of
/// threads (`looped::start_with_server`).
pub(crate) struct Loops {
    pub(crate) lanes: Vec<Arc<Lane>>,
    pub(crate) next: AtomicUsize,
    pub(crate) threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Hosts using the set: the last to stop stops it.
    pub(crate) users: AtomicUsize,
}

/// One loop thread, as seen from other threads: its handle and what waits
/// for it (connections to take over, connections to look at).
pub(crate) struct Lane {
    pub(crate) handle: simples_ws::event_loop::Handle,
    /// The loop's number (`direct::lane_number`): its connections'
    /// signals carry it, for the direct path.
    pub(crate) number: u32,
    pub(crate) adopt: Mutex<Vec<Adoption>>,
    /// Request heads the loop replaced by its own copies (see
    /// [`Adoption`]), for the lane's retirer, a runtime task, to free
    /// (`looped::retirer`), told by `retire`.
    pub(crate) retired: Mutex<Vec<Retired>>,
    pub(crate) retire: tokio::sync::Notify,
    /// The lane stopped: its retirer frees what is left and ends.
    pub(crate) stopped: AtomicBool,
    /// Connections woken (outbox, handler, forced stop), each listed once
    /// at a time (`Signal::list`): at most one entry per connection.
    pub(crate) ready: Mutex<Vec<simples_ws::event_loop::ConnId>>,
}

/// A request head made by a runtime thread and replaced by the loop's copy,
/// sent back to a runtime thread to be freed ([`Lane::retired`]).
pub(crate) struct Retired {
    /// Held only to be dropped by a runtime thread.
    pub(crate) _request: RequestInfo,
}

/// A connection answered 101, on its way to a loop: the parts of its
/// `WsConn`, which the loop's thread makes. Why there: a runtime thread
/// sets the connection up among the handshake's short-lived buffers
/// (hyper's, ~30 KiB a handshake); the few hundred bytes a connection
/// keeps for its life, made there, pin the pages those buffers leave free
/// (10,000 idle connections opened 200 at a time took 4.0 KB of RSS each
/// for 0.9 KB of heap). Made by the loop's thread (its own malloc arena),
/// with the request head copied there too (`RequestInfo::rehome`), they
/// sit together. The old head goes back to a runtime thread
/// ([`Lane::retired`]): freed by the loop, its
/// blocks would come back from the loop's thread cache for the next
/// connection's copy.
pub(crate) struct Adoption {
    pub(crate) stream: std::net::TcpStream,
    pub(crate) protocol: simples_ws::Protocol,
    pub(crate) host: Arc<WsShared>,
    /// The connection's id in its host.
    pub(crate) id: u64,
    pub(crate) request: RequestInfo,
    pub(crate) slot: Option<Slot>,
}

// Channel histories.

pub(crate) type PolicyFn = Arc<dyn Fn(&str) -> Option<HistoryOptions> + Send + Sync>;

pub(crate) type JoinFn = Arc<dyn Fn(WsConn, String) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// A host's history: its policy, its backend, the connections recovering.
#[derive(Default)]
pub(crate) struct History {
    pub(crate) policy: RwLock<Option<PolicyFn>>,
    pub(crate) join: RwLock<Option<JoinFn>>,
    pub(crate) memory: Memory,
    /// The backplane's history store, looked up once.
    pub(crate) store: std::sync::OnceLock<Option<Arc<dyn HistoryStore>>>,
    pub(crate) recovering: Recovering,
}

/// The connections recovering, per (connection, channel), with the live
/// messages that arrived meanwhile.
#[derive(Default)]
pub(crate) struct Recovering {
    /// How many recoveries run: live delivery looks at the buffers only
    /// when some do.
    pub(crate) active: AtomicUsize,
    pub(crate) buffers: Mutex<HashMap<(u64, String), Buffer>>,
    /// The last recovery's number (`Buffer::recovery`).
    pub(crate) numbered: AtomicU64,
}

pub(crate) struct Buffer {
    /// The recovery that registered it: an entry of the same connection
    /// and channel may be another recovery's (the first one's entry went
    /// with an unbind, and a new join registered again).
    pub(crate) recovery: u64,
    /// The room the recovery bound the connection into (set under that
    /// room's lock): the entry goes when that membership ends, not when
    /// another room of the same name loses the connection (a bind racing
    /// `Channel::close`).
    pub(crate) room: Option<Arc<Members>>,
    pub(crate) frames: Vec<(u64, Arc<PreparedFrame>)>,
    pub(crate) overflowed: bool,
    pub(crate) cap: usize,
    /// Set once the recovery is over, with the store: live messages up to
    /// this offset were already sent (replayed) and are dropped; the first
    /// one past it removes the entry. The history read's reply and the
    /// live messages come on different connections to the engine, so
    /// messages the read returned may still be on their way here.
    pub(crate) floor: Option<u64>,
}
