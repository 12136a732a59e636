//! Negotiation of permessage-deflate in the opening handshake (RFC 7692 §5,
//! §7.1), for both roles.

use super::budget::DeflatePermit;
use super::codec::DeflateExtension;
use super::params::{parse_list, split_outside_quotes, DeflateParams, PmdParams, EXTENSION_NAME, MAX_WINDOW_BITS, MIN_WINDOW_BITS};
use super::DeflateConfig;
use crate::handshake::{HandshakeError, HandshakeErrorKind};
use crate::proto::Role;

/// A server's acceptance of one offer: the parameters in force and the
/// `Sec-WebSocket-Extensions` value to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreement {
    /// The parameters both sides now use.
    pub params: DeflateParams,
    /// The response header value, e.g.
    /// `permessage-deflate; client_max_window_bits=10`.
    pub response: String,
}

fn bits(b: u8) -> u8 {
    b.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS)
}

fn is_pmd(name: &str) -> bool {
    name.eq_ignore_ascii_case(EXTENSION_NAME)
}

impl DeflateConfig {
    /// Server side: the answer to the first permessage-deflate offer this
    /// configuration supports, in the order the client sent them (across
    /// all `Sec-WebSocket-Extensions` values, RFC 7692 §5). `None` when
    /// there is none: the connection then opens without compression.
    ///
    /// An offer is declined when it is malformed, has an unknown or
    /// repeated parameter or an invalid value (§7.1), or lacks
    /// `client_max_window_bits` while [`DeflateConfig::client_max_window_bits`]
    /// is below 15 (the server could not bound its inflate window).
    /// Otherwise it is accepted (§7.1.1, §7.1.2):
    /// - `server_no_context_takeover` when the client asks or
    ///   [`DeflateConfig::server_no_context_takeover`] is set;
    /// - `client_no_context_takeover` when the client hints it or
    ///   [`DeflateConfig::client_no_context_takeover`] is set;
    /// - `server_max_window_bits`: the smaller of the offer's value and the
    ///   configuration's, answered when offered or below 15;
    /// - `client_max_window_bits`: the smaller of the offer's value (if any)
    ///   and the configuration's, answered when below 15.
    ///
    /// This does not consult the budget; [`DeflateConfig::accept_offers`]
    /// does.
    pub fn negotiate<'a, I>(&self, offers: I) -> Option<Agreement>
    where
        I: IntoIterator<Item = &'a str>,
    {
        offers
            .into_iter()
            .flat_map(parse_list)
            .filter_map(|e| e.ok().filter(|e| is_pmd(&e.name)))
            .find_map(|e| match PmdParams::from_element(&e, false) {
                Ok(offer) => self.accept_offer(&offer),
                Err(reason) => {
                    tracing::debug!(%reason, "declining permessage-deflate offer");
                    None
                }
            })
    }

    fn accept_offer(&self, offer: &PmdParams) -> Option<Agreement> {
        let (server_cfg, client_cfg) = (bits(self.server_max_window_bits), bits(self.client_max_window_bits));
        let client_bits = match offer.client_max_window_bits {
            // The client cannot be told to use a smaller window.
            None if client_cfg < MAX_WINDOW_BITS => return None,
            None => MAX_WINDOW_BITS,
            Some(None) => client_cfg,
            Some(Some(v)) => v.min(client_cfg),
        };
        let server_bits = offer.server_max_window_bits.unwrap_or(MAX_WINDOW_BITS).min(server_cfg);
        let params = DeflateParams {
            server_no_context_takeover: offer.server_no_context_takeover || self.server_no_context_takeover,
            client_no_context_takeover: offer.client_no_context_takeover || self.client_no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
        };
        let answer = PmdParams {
            server_no_context_takeover: params.server_no_context_takeover,
            client_no_context_takeover: params.client_no_context_takeover,
            server_max_window_bits: (offer.server_max_window_bits.is_some() || server_bits < MAX_WINDOW_BITS)
                .then_some(server_bits),
            client_max_window_bits: (client_bits < MAX_WINDOW_BITS).then_some(Some(client_bits)),
        };
        Some(Agreement { params, response: answer.render() })
    }

    /// Server side, all in one: negotiates (see [`DeflateConfig::negotiate`]),
    /// reserves the budget, and returns the extension to install with
    /// [`Protocol::set_extension`](crate::Protocol::set_extension) and the
    /// value for `Sec-WebSocket-Extensions` in the 101 response. `None`
    /// (no compression, the handshake goes on) when no offer is acceptable
    /// or the budget is exhausted.
    pub fn accept_offers<'a, I>(&self, offers: I) -> Option<(DeflateExtension, String)>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let agreement = self.negotiate(offers)?;
        let permit = self.reserve(&agreement.params, Role::Server).ok()?;
        let ext = DeflateExtension::new(Role::Server, agreement.params, self).with_permit(permit);
        Some((ext, agreement.response))
    }

    /// The budget permit for a connection, `Ok(None)` without a budget,
    /// `Err(())` over budget.
    fn reserve(&self, params: &DeflateParams, role: Role) -> Result<Option<DeflatePermit>, ()> {
        match &self.budget {
            None => Ok(None),
            Some(b) => match b.try_acquire(params.memory_estimate(role)) {
                Some(p) => Ok(Some(p)),
                None => {
                    tracing::debug!(budget = ?b, "permessage-deflate budget exhausted");
                    Err(())
                }
            },
        }
    }

    /// Client side: the offer this configuration makes (RFC 7692 §7.1):
    /// `permessage-deflate; client_max_window_bits` (with `=N` when
    /// [`DeflateConfig::client_max_window_bits`] is below 15), plus
    /// `server_max_window_bits=N` when [`DeflateConfig::server_max_window_bits`]
    /// is below 15 and the no_context_takeover parameters that are set.
    pub fn offer(&self) -> String {
        let (server_cfg, client_cfg) = (bits(self.server_max_window_bits), bits(self.client_max_window_bits));
        PmdParams {
            server_no_context_takeover: self.server_no_context_takeover,
            client_no_context_takeover: self.client_no_context_takeover,
            server_max_window_bits: (server_cfg < MAX_WINDOW_BITS).then_some(server_cfg),
            client_max_window_bits: Some((client_cfg < MAX_WINDOW_BITS).then_some(client_cfg)),
        }
        .render()
    }

    /// Client side: prepares the offer. `extra` is the application's own
    /// raw `Sec-WebSocket-Extensions` offer (e.g.
    /// [`ClientConfig::extensions`](crate::handshake::client::ClientConfig::extensions)):
    /// if it already contains permessage-deflate offers, those are used as
    /// they are; otherwise [`DeflateConfig::offer`] is appended. Over
    /// budget, permessage-deflate is not offered (and any the application
    /// wrote is removed).
    pub fn client_offer(&self, extra: Option<&str>) -> ClientOffer {
        let extra = extra.map(str::trim).filter(|e| !e.is_empty());
        // Reserve for the worst case the offer allows (15-bit windows).
        let permit = self.reserve(&DeflateParams::default(), Role::Client);
        let header = match permit {
            Ok(_) if extra.is_some_and(offers_pmd) => extra.map(str::to_owned),
            Ok(_) => Some(match extra {
                Some(e) => format!("{e}, {}", self.offer()),
                None => self.offer(),
            }),
            Err(()) => extra.and_then(without_pmd),
        };
        let offered = header.as_deref().is_some_and(offers_pmd);
        ClientOffer { header, config: self.clone(), permit: permit.ok().flatten(), offered }
    }
}

/// Whether a header value offers permessage-deflate.
pub(crate) fn offers_pmd(header: &str) -> bool {
    parse_list(header).iter().any(|e| e.as_ref().is_ok_and(|e| is_pmd(&e.name)))
}

/// A header value without its permessage-deflate offers.
fn without_pmd(header: &str) -> Option<String> {
    let rest: Vec<&str> = split_outside_quotes(header, ',')
        .into_iter()
        .map(str::trim)
        .filter(|el| !el.is_empty() && !offers_pmd(el))
        .collect();
    (!rest.is_empty()).then(|| rest.join(", "))
}

/// A client's offer in flight: what to send, and how to check the answer.
#[derive(Debug)]
pub struct ClientOffer {
    header: Option<String>,
    config: DeflateConfig,
    permit: Option<DeflatePermit>,
    offered: bool,
}

fn bad(reason: impl Into<String>) -> HandshakeError {
    HandshakeError::new(HandshakeErrorKind::BadResponse, reason.into())
}

impl ClientOffer {
    /// The `Sec-WebSocket-Extensions` value to send (the application's
    /// extensions and the permessage-deflate offer), `None` for none.
    pub fn header(&self) -> Option<&str> {
        self.header.as_deref()
    }

    /// Whether permessage-deflate is offered.
    pub fn offers_deflate(&self) -> bool {
        self.offered
    }

    /// Checks the server's `Sec-WebSocket-Extensions` values (as in
    /// [`Response::extensions`](crate::handshake::client::Response::extensions))
    /// and returns the extension to install, or `None` if the server did
    /// not accept permessage-deflate.
    ///
    /// Fails with [`HandshakeErrorKind::BadResponse`] (the client MUST fail
    /// the connection, RFC 7692 §7.1) when the response: names an extension
    /// that was not offered; accepts permessage-deflate more than once; has
    /// an unknown, repeated or malformed parameter; answers
    /// `server_max_window_bits` above the offered value; or
    /// `client_max_window_bits` that was not offered, without a value, or
    /// above the offered value. Missing answers are tolerated when the
    /// client can cope: an ignored `server_max_window_bits` means the
    /// server's window is 15 (we inflate with 15), an ignored
    /// `server_no_context_takeover` means we keep the inflate context.
    pub fn accept(self, response: &[String]) -> Result<Option<DeflateExtension>, HandshakeError> {
        let offered = self.header.as_deref().map(parse_list).unwrap_or_default();
        let offered_names: Vec<String> = offered.iter().filter_map(|e| e.as_ref().ok()).map(|e| e.name.to_ascii_lowercase()).collect();
        let offers: Vec<PmdParams> = offered
            .iter()
            .filter_map(|e| e.as_ref().ok())
            .filter(|e| is_pmd(&e.name))
            .filter_map(|e| PmdParams::from_element(e, false).ok())
            .collect();
        let mut accepted = None;
        for value in response {
            for element in parse_list(value) {
                let element = element.map_err(|e| bad(format!("malformed Sec-WebSocket-Extensions: {e}")))?;
                if !offered_names.contains(&element.name.to_ascii_lowercase()) {
                    return Err(bad(format!("server selected extension {} that was not offered", element.name)));
                }
                if !is_pmd(&element.name) {
                    continue; // the application's own extension
                }
                if accepted.is_some() {
                    return Err(bad("server accepted permessage-deflate more than once"));
                }
                let answer = PmdParams::from_element(&element, true)
                    .map_err(|e| bad(format!("invalid permessage-deflate response: {e}")))?;
                accepted = Some(answer);
            }
        }
        let Some(answer) = accepted else {
            return Ok(None);
        };
        // The answer must fit one of the offers (the first one it fits).
        let mut first_err = None;
        for offer in &offers {
            match check_answer(offer, &answer) {
                Ok(params) => {
                    let ext = DeflateExtension::new(Role::Client, params, &self.config).with_permit(self.permit);
                    return Ok(Some(ext));
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(bad(first_err.unwrap_or_else(|| "server accepted permessage-deflate, which was not offered".into())))
    }
}

/// The parameters a client uses after `answer` to its `offer`
/// (RFC 7692 §7.1.1, §7.1.2).
pub(crate) fn check_answer(offer: &PmdParams, answer: &PmdParams) -> Result<DeflateParams, String> {
    let server_bits = match (offer.server_max_window_bits, answer.server_max_window_bits) {
        (Some(o), Some(a)) if a > o => {
            return Err(format!("server_max_window_bits={a} is larger than the offered {o}"));
        }
        (_, Some(a)) => a,
        (_, None) => MAX_WINDOW_BITS,
    };
    let client_bits = match (offer.client_max_window_bits, answer.client_max_window_bits) {
        (None, Some(_)) => return Err("client_max_window_bits was not offered".into()),
        (Some(Some(o)), Some(Some(a))) if a > o => {
            return Err(format!("client_max_window_bits={a} is larger than the offered {o}"));
        }
        (_, Some(Some(a))) => a,
        (_, Some(None)) => return Err("client_max_window_bits needs a value in a response".into()),
        (Some(Some(o)), None) => o,
        (_, None) => MAX_WINDOW_BITS,
    };
    Ok(DeflateParams {
        server_no_context_takeover: answer.server_no_context_takeover,
        // Our own hint binds us too (§7.1.1.2).
        client_no_context_takeover: answer.client_no_context_takeover || offer.client_no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    })
}
