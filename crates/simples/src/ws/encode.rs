//! A broadcast's frame, encoded once for all its recipients: what host
//! broadcasts, channel broadcasts and history's numbered publications
//! share (below all of them, so none has to import another for it).

use std::sync::Arc;

use simples_ws::{Message, PreparedFrame};

use super::state::WsShared;

/// Encodes a broadcast message once; `None` (logged) for control messages.
/// With permessage-deflate on the host, a message of at least `min_size`
/// bytes is compressed once too: connections that agreed to
/// `server_no_context_takeover` with a large enough window take the
/// compressed frame, the others get the same message uncompressed.
pub(crate) fn prepare(host: &WsShared, message: Message) -> Option<Arc<PreparedFrame>> {
    let prepared = match &host.options.deflate {
        Some(d) if message.payload().len() >= d.min_size => {
            PreparedFrame::compressed_with_window(&message, d.level, d.server_max_window_bits)
        }
        _ => PreparedFrame::new(&message),
    };
    match prepared {
        Ok(f) => Some(Arc::new(f)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot broadcast this message");
            None
        }
    }
}
