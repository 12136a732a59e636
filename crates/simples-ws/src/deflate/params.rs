//! The `Sec-WebSocket-Extensions` grammar (RFC 6455 §9.1) and the
//! permessage-deflate parameters (RFC 7692 §7.1).
//!
//! ```text
//! Sec-WebSocket-Extensions = extension-list
//! extension-list = 1#extension
//! extension = extension-token *( ";" extension-param )
//! extension-token = registered-token
//! registered-token = token
//! extension-param = token [ "=" (token | quoted-string) ]
//!     ; When using the quoted-string syntax variant, the value
//!     ; after quoted-string unescaping MUST conform to the
//!     ; 'token' ABNF.
//! ```
//!
//! Optional whitespace (space, tab) is allowed around `,`, `;` and `=`
//! (RFC 7230 §3.2.3, §7). Names are compared ASCII case-insensitively.

/// The extension name (RFC 7692 §5).
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The smallest and largest LZ77 window, as a base-2 logarithm
/// (RFC 7692 §7.1.2).
pub const MIN_WINDOW_BITS: u8 = 8;
/// See [`MIN_WINDOW_BITS`].
pub const MAX_WINDOW_BITS: u8 = 15;

/// One element of an extension list: a name and its parameters, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    pub name: String,
    pub params: Vec<(String, Option<String>)>,
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_tchar)
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Splits `s` at each `sep` that is outside a quoted-string. An unterminated
/// quoted-string runs to the end (and fails to parse later).
pub(crate) fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if quoted {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                quoted = false;
            }
        } else if c == '"' {
            quoted = true;
        } else if c == sep {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Unescapes a quoted-string (with its quotes); `None` if malformed.
fn unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// Parses one extension (name and parameters).
fn parse_element(s: &str) -> Result<Element, String> {
    let mut parts = split_outside_quotes(s, ';').into_iter();
    let name = parts.next().unwrap_or_default().trim_matches(is_ows);
    if !is_token(name) {
        return Err(format!("extension name {name:?} is not a token"));
    }
    let mut params = Vec::new();
    for p in parts {
        let (key, value) = match p.split_once('=') {
            Some((k, v)) => (k.trim_matches(is_ows), Some(v.trim_matches(is_ows))),
            None => (p.trim_matches(is_ows), None),
        };
        if !is_token(key) {
            return Err(format!("extension parameter {key:?} is not a token"));
        }
        let value = match value {
            None => None,
            Some(v) if v.starts_with('"') => {
                // RFC 6455 §9.1: after unescaping, the value must be a token.
                let v = unquote(v).ok_or_else(|| format!("malformed quoted value for {key}"))?;
                if !is_token(&v) {
                    return Err(format!("value of {key} is not a token"));
                }
                Some(v)
            }
            Some(v) if is_token(v) => Some(v.to_owned()),
            Some(v) => return Err(format!("value {v:?} of {key} is not a token")),
        };
        params.push((key.to_owned(), value));
    }
    Ok(Element { name: name.to_owned(), params })
}

/// Parses a header value into its elements; empty list elements are
/// skipped (RFC 7230 §7). Each element parses on its own, so one malformed
/// offer does not hide the others.
pub(crate) fn parse_list(value: &str) -> Vec<Result<Element, String>> {
    split_outside_quotes(value, ',')
        .into_iter()
        .filter(|e| !e.trim_matches(is_ows).is_empty())
        .map(parse_element)
        .collect()
}

/// The permessage-deflate parameters of one offer or response, as written
/// (RFC 7692 §7.1): `None` where the parameter is absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PmdParams {
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    pub server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (allowed in offers only).
    pub client_max_window_bits: Option<Option<u8>>,
}

/// A window size value: a decimal integer from 8 to 15 without leading
/// zeros (RFC 7692 §7.1.2.1, §7.1.2.2).
fn window_bits(key: &str, value: &str) -> Result<u8, String> {
    let valid = !value.starts_with('0') && value.len() <= 2 && value.bytes().all(|b| b.is_ascii_digit());
    match value.parse::<u8>() {
        Ok(n) if valid && (MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&n) => Ok(n),
        _ => Err(format!("{key}={value} is not a window size from 8 to 15")),
    }
}

impl PmdParams {
    /// Validates the parameters of a permessage-deflate element. An unknown
    /// or repeated parameter, or an invalid value, makes the whole element
    /// invalid (RFC 7692 §5.1, §7.1). `response` forbids a valueless
    /// `client_max_window_bits` (§7.1.2.2).
    pub fn from_element(e: &Element, response: bool) -> Result<PmdParams, String> {
        let mut p = PmdParams::default();
        let mut seen = [false; 4];
        for (key, value) in &e.params {
            let k = key.to_ascii_lowercase();
            let idx = match k.as_str() {
                "server_no_context_takeover" => 0,
                "client_no_context_takeover" => 1,
                "server_max_window_bits" => 2,
                "client_max_window_bits" => 3,
                _ => return Err(format!("unknown parameter {key}")),
            };
            if std::mem::replace(&mut seen[idx], true) {
                return Err(format!("parameter {k} is repeated"));
            }
            match (idx, value) {
                (0 | 1, Some(_)) => return Err(format!("parameter {k} takes no value")),
                (0, None) => p.server_no_context_takeover = true,
                (1, None) => p.client_no_context_takeover = true,
                (2, None) => return Err(format!("parameter {k} needs a value")),
                (2, Some(v)) => p.server_max_window_bits = Some(window_bits(&k, v)?),
                (_, None) if response => return Err(format!("parameter {k} needs a value in a response")),
                (_, None) => p.client_max_window_bits = Some(None),
                (_, Some(v)) => p.client_max_window_bits = Some(Some(window_bits(&k, v)?)),
            }
        }
        Ok(p)
    }

    /// Renders `permessage-deflate` with these parameters.
    pub fn render(&self) -> String {
        let mut s = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = self.server_max_window_bits {
            s.push_str(&format!("; server_max_window_bits={bits}"));
        }
        match self.client_max_window_bits {
            Some(Some(bits)) => s.push_str(&format!("; client_max_window_bits={bits}")),
            Some(None) => s.push_str("; client_max_window_bits"),
            None => {}
        }
        s
    }
}

/// The parameters in force on a connection once negotiated: every value is
/// explicit (RFC 7692 §7.1 defaults: context takeover, 15-bit windows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeflateParams {
    /// The server resets its compression context after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compression context after each message.
    pub client_no_context_takeover: bool,
    /// The largest LZ77 window (base-2 logarithm, 8..=15) the server
    /// compresses with.
    pub server_max_window_bits: u8,
    /// The largest LZ77 window (base-2 logarithm, 8..=15) the client
    /// compresses with.
    pub client_max_window_bits: u8,
}

impl Default for DeflateParams {
    fn default() -> Self {
        DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
        }
    }
}
