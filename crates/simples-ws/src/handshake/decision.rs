//! The server's decision on a validated [`Offer`]: the subprotocol and
//! permessage-deflate negotiation, the application's extra headers, and the
//! `101 Switching Protocols` answer (RFC 6455 §4.2.2).
//!
//! Every server of the crate (the tokio driver, the event loop, the axum
//! extractor) and the `simples` framework decide here.

#[cfg(feature = "deflate")]
use crate::deflate::{DeflateConfig, DeflateExtension};
use crate::proto::Protocol;

use super::error::{HandshakeError, HandshakeErrorKind};
use super::http::{self as h, check_header, check_not_reserved, check_value};
use super::offer::{NonUpgrade, Offer, RequestHead};
use super::accept_key;

/// Headers an application may not add to the `101` response because the
/// handshake writes them itself (or they are forbidden on a 1xx response,
/// RFC 7230 §3.3.1, §3.3.2).
const RESERVED_RESPONSE_HEADERS: &[&str] = &[
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Accept",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    "Content-Length",
    "Transfer-Encoding",
];

/// What a server speaks: its subprotocols, its permessage-deflate settings,
/// and how it answers a request that is no upgrade at all.
///
/// ```
/// # #[cfg(feature = "http")] {
/// use simples_ws::handshake::ServerPolicy;
///
/// let policy = ServerPolicy { protocols: vec!["chat".into()], ..ServerPolicy::default() };
/// let req = http::Request::get("/ws")
///     .header("Host", "example.com")
///     .header("Upgrade", "websocket")
///     .header("Connection", "Upgrade")
///     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
///     .header("Sec-WebSocket-Version", "13")
///     .header("Sec-WebSocket-Protocol", "mqtt, chat")
///     .body(())
///     .unwrap();
/// let decision = policy.decide(&req).unwrap();
/// assert_eq!(decision.protocol(), Some("chat"));
/// let response = decision.response();
/// assert_eq!(response.status(), 101);
/// assert_eq!(response.headers()["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ServerPolicy {
    /// Subprotocols this server speaks. The first of the *client's* offers
    /// (in the client's order) found here is chosen; matching is exact
    /// (RFC 6455 §4.2.2 item 5.5, §11.3.4). Default: none.
    pub protocols: Vec<String>,
    /// permessage-deflate (RFC 7692): `Some` accepts the client's first
    /// acceptable offer (see [`DeflateConfig::accept_offers`]); over its
    /// budget, the extension is declined. Default: `None` (off).
    #[cfg(feature = "deflate")]
    pub deflate: Option<DeflateConfig>,
    /// The answer to a request without `Upgrade: websocket` /
    /// `Connection: upgrade`. Default: [`NonUpgrade::BadRequest`].
    pub non_upgrade: NonUpgrade,
}

impl ServerPolicy {
    /// Validates `head` ([`Offer::from_head`], RFC 6455 §4.2.1) and
    /// negotiates ([`ServerPolicy::negotiate`]). An `Err` is the refusal to
    /// answer with (see [`HandshakeError::to_response`], or
    /// `to_http_response` with the `http` feature).
    ///
    /// ```
    /// # #[cfg(feature = "http")] {
    /// use simples_ws::handshake::ServerPolicy;
    ///
    /// let req = http::Request::get("/ws").header("Host", "h").body(()).unwrap();
    /// assert_eq!(ServerPolicy::default().decide(&req).unwrap_err().status(), 400);
    /// # }
    /// ```
    pub fn decide<H: RequestHead + ?Sized>(&self, head: &H) -> Result<Decision, HandshakeError> {
        let result = Offer::from_head(head, self.non_upgrade).map(|offer| self.negotiate(offer));
        if let Err(e) = &result {
            tracing::debug!(status = e.status(), reason = e.reason(), "rejecting WebSocket handshake request");
        }
        result
    }

    /// Negotiates a validated offer: picks the subprotocol and, with
    /// [`ServerPolicy::deflate`], accepts permessage-deflate (reserving its
    /// memory budget: dropping the [`Decision`] releases it).
    ///
    /// ```
    /// # #[cfg(feature = "http")] {
    /// use simples_ws::handshake::{NonUpgrade, Offer, ServerPolicy};
    ///
    /// # let req = http::Request::get("/").header("Host", "h").header("Upgrade", "websocket")
    /// #     .header("Connection", "Upgrade").header("Sec-WebSocket-Version", "13")
    /// #     .header("Sec-WebSocket-Protocol", "v2, v1")
    /// #     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==").body(()).unwrap();
    /// let offer = Offer::from_head(&req, NonUpgrade::BadRequest).unwrap();
    /// let policy = ServerPolicy { protocols: vec!["v1".into(), "v2".into()], ..Default::default() };
    /// // The client's order wins.
    /// assert_eq!(policy.negotiate(offer).protocol(), Some("v2"));
    /// # }
    /// ```
    pub fn negotiate(&self, offer: Offer) -> Decision {
        let protocol = self.select_protocol(&offer).map(str::to_owned);
        #[cfg(feature = "deflate")]
        let (deflate, extensions) = match self.deflate.as_ref().and_then(|d| d.accept_offers(offer.extensions().iter().map(String::as_str))) {
            Some((ext, header)) => (Some(ext), Some(header)),
            None => (None, None),
        };
        #[cfg(not(feature = "deflate"))]
        let extensions = None;
        Decision {
            offer,
            protocol,
            extensions,
            headers: Vec::new(),
            #[cfg(feature = "deflate")]
            deflate,
        }
    }
}

impl ServerPolicy {
    /// The subprotocol [`negotiate`](ServerPolicy::negotiate) selects: the
    /// first of the client's offers, in the client's order, found in
    /// [`ServerPolicy::protocols`] (exact match, RFC 6455 §4.2.2 item 5.5).
    ///
    /// ```
    /// # #[cfg(feature = "http")] {
    /// use simples_ws::handshake::{NonUpgrade, Offer, ServerPolicy};
    /// # let req = http::Request::get("/").header("Host", "h").header("Upgrade", "websocket")
    /// #     .header("Connection", "Upgrade").header("Sec-WebSocket-Version", "13")
    /// #     .header("Sec-WebSocket-Protocol", "mqtt, CHAT, chat")
    /// #     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==").body(()).unwrap();
    /// let offer = Offer::from_head(&req, NonUpgrade::BadRequest).unwrap();
    /// let policy = ServerPolicy { protocols: vec!["chat".into()], ..Default::default() };
    /// assert_eq!(policy.select_protocol(&offer), Some("chat"));
    /// # }
    /// ```
    pub fn select_protocol<'a>(&self, offer: &'a Offer) -> Option<&'a str> {
        offer.protocols().iter().map(String::as_str).find(|p| self.protocols.iter().any(|s| s == p))
    }
}

/// An accepted handshake, before its `101` is sent: the negotiated
/// subprotocol and extension, and the response headers.
///
/// The application may still change the subprotocol
/// ([`set_protocol`](Decision::set_protocol)) and add headers
/// ([`add_header`](Decision::add_header)); then it sends
/// [`response_bytes`](Decision::response_bytes) (or, with the `http`
/// feature, `response()`) and installs [`into_negotiated`](Decision::into_negotiated)
/// on the connection.
///
/// ```
/// # #[cfg(feature = "http")] {
/// use simples_ws::handshake::ServerPolicy;
///
/// # let req = http::Request::get("/").header("Host", "h").header("Upgrade", "websocket")
/// #     .header("Connection", "Upgrade").header("Sec-WebSocket-Version", "13")
/// #     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==").body(()).unwrap();
/// let mut decision = ServerPolicy::default().decide(&req).unwrap();
/// decision.add_header("Set-Cookie", "sid=1; HttpOnly").unwrap();
/// let head = String::from_utf8(decision.response_bytes()).unwrap();
/// assert!(head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
/// assert!(head.contains("\r\nSet-Cookie: sid=1; HttpOnly\r\n"));
/// # }
/// ```
#[derive(Debug)]
pub struct Decision {
    offer: Offer,
    protocol: Option<String>,
    extensions: Option<String>,
    headers: Vec<(String, String)>,
    #[cfg(feature = "deflate")]
    deflate: Option<DeflateExtension>,
}

impl Decision {
    /// The validated offer this decision answers.
    ///
    /// ```
    /// # #[cfg(feature = "http")] {
    /// # use simples_ws::handshake::ServerPolicy;
    /// # let req = http::Request::get("/").header("Host", "h").header("Upgrade", "websocket")
    /// #     .header("Connection", "Upgrade").header("Sec-WebSocket-Version", "13")
    /// #     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==").body(()).unwrap();
    /// let decision = ServerPolicy::default().decide(&req).unwrap();
    /// assert_eq!(decision.offer().key(), "dGhlIHNhbXBsZSBub25jZQ==");
    /// # }
    /// ```
    pub fn offer(&self) -> &Offer {
        &self.offer
    }

    /// The subprotocol the `101` selects, if any.
    ///
    /// ```
    /// # #[cfg(feature = "http")] {
    /// # use simples_ws::handshake::ServerPolicy;
    /// # let req = http::Request::get("/").header("Host", "h").header("Upgrade", "websocket")
    /// #     .header("Connection", "Upgrade").header("Sec-WebSocket-Version", "13")
    /// #     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==").body(()).unwrap();
    /// assert_eq!(ServerPolicy::default().decide(&req).unwrap().protocol(), None);
    /// # }
    /// ```
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The `Sec-WebSocket-Extensions` value the `101` carries (the
    /// permessage-deflate agreement), if any.
    ///
    /// ```
    /// # #[cfg(all(feature = "http", feature = "deflate"))] {
    /// use simples_ws::deflate::DeflateConfig;
    /// use simples_ws::handshake::ServerPolicy;
    /// # let req = http::Request::get("/").header("Host", "h").header("Upgrade", "websocket")
    /// #     .header("Connection", "Upgrade").header("Sec-WebSocket-Version", "13")
    /// #     .header("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")
    /// #     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==").body(()).unwrap();
    /// let policy = ServerPolicy { deflate: Some(DeflateConfig::default()), ..Default::default() };
    /// assert_eq!(policy.decide(&req).unwrap().extensions(), Some("permessage-deflate"));
    /// # }
    /// ```
    pub fn extensions(&self) -> Option<&str> {
        self.extensions.as_deref()
    }

    /// Selects another subprotocol (`None`: none). It must be one the
    /// client offered (RFC 6455 §4.2.2 item 5.5), else
    /// [`HandshakeErrorKind::InvalidHeader`] (500: the server's mistake).
    ///
    /// ```
    /// # #[cfg(feature = "http")] {
    /// # use simples_ws::handshake::ServerPolicy;
    /// # let req = http::Request::get("/").header("Host", "h").header("Upgrade", "websocket")
    /// #     .header("Connection", "Upgrade").header("Sec-WebSocket-Version", "13")
    /// #     .header("Sec-WebSocket-Protocol", "a, b")
    /// #     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==").body(()).unwrap();
    /// let mut decision = ServerPolicy::default().decide(&req).unwrap();
    /// decision.set_protocol(Some("b")).unwrap();
    /// assert_eq!(decision.protocol(), Some("b"));
    /// assert_eq!(decision.set_protocol(Some("c")).unwrap_err().status(), 500);
    /// # }
    /// ```
    pub fn set_protocol(&mut self, protocol: Option<&str>) -> Result<(), HandshakeError> {
        if let Some(p) = protocol {
            check_protocol(self.offer.protocols().iter().map(String::as_str), p)?;
        }
        self.protocol = protocol.map(str::to_owned);
        Ok(())
    }

    /// Adds a header to the `101` (e.g. `Set-Cookie`). Refused
    /// ([`HandshakeErrorKind::InvalidHeader`]) when the name is not a token,
    /// the value has CR, LF or NUL, or the handshake writes that header
    /// itself.
    ///
    /// ```
    /// # #[cfg(feature = "http")] {
    /// # use simples_ws::handshake::ServerPolicy;
    /// # let req = http::Request::get("/").header("Host", "h").header("Upgrade", "websocket")
    /// #     .header("Connection", "Upgrade").header("Sec-WebSocket-Version", "13")
    /// #     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==").body(()).unwrap();
    /// let mut decision = ServerPolicy::default().decide(&req).unwrap();
    /// assert!(decision.add_header("X-User", "42").is_ok());
    /// assert!(decision.add_header("Upgrade", "h2c").is_err());
    /// # }
    /// ```
    pub fn add_header(&mut self, name: &str, value: &str) -> Result<(), HandshakeError> {
        check_extra_header(name, value)?;
        self.headers.push((name.to_owned(), value.to_owned()));
        Ok(())
    }

    /// The headers of the `101` answer (RFC 6455 §4.2.2 item 5), in order:
    /// `Upgrade`, `Connection`, `Sec-WebSocket-Accept`, then
    /// `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions` when agreed,
    /// then the added headers.
    ///
    /// ```
    /// # #[cfg(feature = "http")] {
    /// # use simples_ws::handshake::ServerPolicy;
    /// # let req = http::Request::get("/").header("Host", "h").header("Upgrade", "websocket")
    /// #     .header("Connection", "Upgrade").header("Sec-WebSocket-Version", "13")
    /// #     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==").body(()).unwrap();
    /// let decision = ServerPolicy::default().decide(&req).unwrap();
    /// let names: Vec<_> = decision.response_headers().into_iter().map(|(n, _)| n).collect();
    /// assert_eq!(names, ["Upgrade", "Connection", "Sec-WebSocket-Accept"]);
    /// # }
    /// ```
    pub fn response_headers(&self) -> Vec<(&str, String)> {
        switching_headers(self.offer.key(), self.protocol(), self.extensions(), &self.headers)
    }

    /// The complete HTTP/1.1 `101 Switching Protocols` head to write on the
    /// transport.
    ///
    /// ```
    /// # #[cfg(feature = "http")] {
    /// # use simples_ws::handshake::ServerPolicy;
    /// # let req = http::Request::get("/").header("Host", "h").header("Upgrade", "websocket")
    /// #     .header("Connection", "Upgrade").header("Sec-WebSocket-Version", "13")
    /// #     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==").body(()).unwrap();
    /// let bytes = ServerPolicy::default().decide(&req).unwrap().response_bytes();
    /// assert!(bytes.ends_with(b"\r\n\r\n"));
    /// # }
    /// ```
    pub fn response_bytes(&self) -> Vec<u8> {
        write_switching(&self.response_headers())
    }

    /// What the connection runs with once the `101` is sent: install it on
    /// the connection's [`Protocol`] (see [`Negotiated::install`]).
    ///
    /// ```
    /// # #[cfg(feature = "http")] {
    /// # use simples_ws::handshake::ServerPolicy;
    /// use simples_ws::{Config, Protocol, Role};
    /// # let req = http::Request::get("/").header("Host", "h").header("Upgrade", "websocket")
    /// #     .header("Connection", "Upgrade").header("Sec-WebSocket-Version", "13")
    /// #     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==").body(()).unwrap();
    /// let negotiated = ServerPolicy::default().decide(&req).unwrap().into_negotiated();
    /// let mut proto = Protocol::new(Role::Server, Config::default());
    /// negotiated.install(&mut proto);
    /// # }
    /// ```
    pub fn into_negotiated(self) -> Negotiated {
        Negotiated {
            protocol: self.protocol,
            #[cfg(feature = "deflate")]
            deflate: self.deflate,
        }
    }
}

/// What a handshake agreed on, for the connection to run with.
///
/// ```
/// use simples_ws::handshake::Negotiated;
/// use simples_ws::{Config, Protocol, Role};
///
/// let mut proto = Protocol::new(Role::Server, Config::default());
/// Negotiated::default().install(&mut proto); // nothing agreed: no extension
/// ```
#[derive(Debug, Default)]
pub struct Negotiated {
    /// The selected subprotocol.
    pub protocol: Option<String>,
    /// The permessage-deflate extension, when agreed.
    #[cfg(feature = "deflate")]
    pub deflate: Option<DeflateExtension>,
}

impl Negotiated {
    /// Installs the agreed extension (if any) on `proto`.
    ///
    /// ```
    /// use simples_ws::handshake::Negotiated;
    /// use simples_ws::{Config, Protocol, Role};
    ///
    /// let mut proto = Protocol::new(Role::Server, Config::default());
    /// Negotiated { protocol: Some("chat".into()), ..Default::default() }.install(&mut proto);
    /// ```
    pub fn install(self, proto: &mut Protocol) {
        #[cfg(feature = "deflate")]
        if let Some(ext) = self.deflate {
            proto.set_extension(Box::new(ext));
        }
        #[cfg(not(feature = "deflate"))]
        let _ = proto;
    }
}

/// RFC 6455 §4.2.2 item 5.5: the selected subprotocol MUST be one of the
/// values the client sent.
pub(crate) fn check_protocol<'a>(mut offered: impl Iterator<Item = &'a str>, p: &str) -> Result<(), HandshakeError> {
    check_value("Sec-WebSocket-Protocol", p)?;
    if !offered.any(|o| o == p) {
        return Err(HandshakeError::new(
            HandshakeErrorKind::InvalidHeader,
            format!("subprotocol {p:?} was not offered by the client"),
        ));
    }
    Ok(())
}

/// An application's header for the `101`: valid, and not one the
/// handshake owns.
pub(crate) fn check_extra_header(name: &str, value: &str) -> Result<(), HandshakeError> {
    check_header(name, value)?;
    check_not_reserved(name, RESERVED_RESPONSE_HEADERS)
}

/// The headers of a `101` accepting `key` (already checked).
pub(crate) fn switching_headers<'a>(
    key: &str,
    protocol: Option<&'a str>,
    extensions: Option<&'a str>,
    extra: &'a [(String, String)],
) -> Vec<(&'a str, String)> {
    // RFC 6455 §4.2.2 item 5.2-5.4: Upgrade, Connection and
    // Sec-WebSocket-Accept.
    let mut out = vec![
        ("Upgrade", "websocket".to_owned()),
        ("Connection", "Upgrade".to_owned()),
        ("Sec-WebSocket-Accept", accept_key(key.as_bytes())),
    ];
    // RFC 6455 §4.2.2 item 5.5 and 5.6.
    if let Some(p) = protocol {
        out.push(("Sec-WebSocket-Protocol", p.to_owned()));
    }
    if let Some(e) = extensions {
        out.push(("Sec-WebSocket-Extensions", e.to_owned()));
    }
    out.extend(extra.iter().map(|(n, v)| (n.as_str(), v.clone())));
    out
}

/// The HTTP/1.1 head of a `101` with `headers` (RFC 6455 §4.2.2 item 5.1).
pub(crate) fn write_switching(headers: &[(&str, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
    for (name, value) in headers {
        h::push_header(&mut out, name, value);
    }
    out.extend_from_slice(b"\r\n");
    out
}
