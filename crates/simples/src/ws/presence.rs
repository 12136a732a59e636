//! [`PresenceEvent`]: who joined or left a channel, on this node or
//! another (with a relay), for [`WsHost::on_presence`](crate::WsHost::on_presence).

use crate::backplane::PresenceMember;

/// A presence change in a channel.
#[derive(Debug, Clone, PartialEq)]
pub enum PresenceEvent {
    /// `member` joined `channel`.
    Join {
        /// The channel's name.
        channel: String,
        /// Who: node, connection id and the application's info.
        member: PresenceMember,
    },
    /// `member` left `channel` (unbound, closed, or its channel closed).
    Leave {
        /// The channel's name.
        channel: String,
        /// Who: node, connection id and the application's info.
        member: PresenceMember,
    },
}

impl PresenceEvent {
    /// The channel's name.
    pub fn channel(&self) -> &str {
        match self {
            PresenceEvent::Join { channel, .. } | PresenceEvent::Leave { channel, .. } => channel,
        }
    }

    /// Who joined or left.
    pub fn member(&self) -> &PresenceMember {
        match self {
            PresenceEvent::Join { member, .. } | PresenceEvent::Leave { member, .. } => member,
        }
    }
}
