//! Object mode's wire format (`assets/PROTOCOL.md`): parsing what clients
//! send, encoding what the server sends.

use serde::Serialize;
use serde_json::Value;

/// A parsed object-mode message.
#[derive(Debug, PartialEq)]
pub(crate) enum Incoming {
    /// `{"event", "data", "id"?}`
    Event { event: String, data: Value, id: Option<u64> },
    /// `{"ack", "data"}` or `{"ack", "error"}`
    Ack { id: u64, result: Result<Value, String> },
}

/// Why a message was refused; sent back as an `error` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl Refusal {
    fn new(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal { code, message: message.into() }
    }

    /// The `error` event that reports this refusal.
    pub(crate) fn to_event(&self) -> String {
        event_json("error", &serde_json::json!({ "code": self.code, "message": self.message }), None)
            .unwrap_or_default()
    }
}

/// Largest id a JavaScript number holds exactly (2^53 - 1).
const MAX_ID: u64 = (1 << 53) - 1;

/// Parses one text message. Depth is checked on the raw bytes first, so a
/// deeply nested message costs no recursion.
pub(crate) fn parse(text: &str, max_depth: usize) -> Result<Incoming, Refusal> {
    if let Some(depth) = exceeds_depth(text.as_bytes(), max_depth) {
        return Err(Refusal::new("too_deep", format!("nesting deeper than {max_depth} (at least {depth})")));
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| Refusal::new("invalid_json", format!("invalid JSON: {e}")))?;
    let Value::Object(mut map) = value else {
        return Err(Refusal::new("not_an_object", "a message must be a JSON object"));
    };
    let id = |v: Option<Value>, field: &str| -> Result<Option<u64>, Refusal> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(id) if (1..=MAX_ID).contains(&id) => Ok(Some(id)),
                _ => Err(Refusal::new("invalid_json", format!("{field:?} must be an integer from 1 to 2^53-1"))),
            },
            Some(_) => Err(Refusal::new("invalid_json", format!("{field:?} must be an integer"))),
        }
    };
    if let Some(ack) = id(map.remove("ack"), "ack")? {
        let result = match map.remove("error") {
            Some(Value::Null) | None => Ok(map.remove("data").unwrap_or(Value::Null)),
            Some(Value::String(e)) => Err(e),
            Some(other) => Err(other.to_string()),
        };
        return Ok(Incoming::Ack { id: ack, result });
    }
    let event = match map.remove("event") {
        Some(Value::String(e)) if !e.is_empty() => e,
        _ => return Err(Refusal::new("invalid_json", "\"event\" must be a non-empty string")),
    };
    let id = id(map.remove("id"), "id")?;
    let data = map.remove("data").unwrap_or(Value::Null);
    Ok(Incoming::Event { event, data, id })
}

/// `Some(depth)` when `json` nests arrays/objects deeper than `max`
/// (brackets inside strings are skipped).
fn exceeds_depth(json: &[u8], max: usize) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Some(depth);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// `{"event": .., "data": .., "id"?: ..}` as JSON text.
pub(crate) fn event_json<T: Serialize + ?Sized>(event: &str, data: &T, id: Option<u64>) -> serde_json::Result<String> {
    #[derive(Serialize)]
    struct Out<'a, T: ?Sized> {
        event: &'a str,
        data: &'a T,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    }
    serde_json::to_string(&Out { event, data, id })
}

/// The event as a text message (for sends and broadcasts).
pub(crate) fn event_message<T: Serialize + ?Sized>(event: &str, data: &T) -> Result<simples_ws::Message, super::WsError> {
    let json = event_json(event, data, None).map_err(|e| super::WsError::Encode(e.to_string()))?;
    Ok(simples_ws::Message::text(json))
}

/// The acknowledgement of event `id`.
pub(crate) fn ack_json(id: u64, result: &Result<Value, String>) -> String {
    let value = match result {
        Ok(data) => serde_json::json!({ "ack": id, "data": data }),
        Err(error) => serde_json::json!({ "ack": id, "error": error }),
    };
    value.to_string()
}

/// For the `object` fuzz target (`fuzz/`): parses `text` and checks what
/// must hold for any input, panicking if it does not: a refusal has a code;
/// a message over the depth limit is refused as such; an event re-encoded
/// by the server's encoder parses back to itself; an ack's JSON too.
#[doc(hidden)]
pub fn fuzz_check(text: &str, max_depth: usize) {
    let deep = exceeds_depth(text.as_bytes(), max_depth).is_some();
    match parse(text, max_depth) {
        Err(refusal) => {
            assert!(!refusal.code.is_empty() && !refusal.message.is_empty());
            assert_eq!(deep, refusal.code == "too_deep", "depth verdicts differ");
            assert!(!refusal.to_event().is_empty());
        }
        Ok(incoming) => {
            assert!(!deep);
            match &incoming {
                Incoming::Event { event, data, id } => {
                    let again = event_json(event, data, *id).expect("a parsed value encodes");
                    assert_eq!(parse(&again, usize::MAX).as_ref(), Ok(&incoming));
                }
                Incoming::Ack { id, result } => {
                    let again = ack_json(*id, result);
                    assert_eq!(parse(&again, usize::MAX).as_ref(), Ok(&incoming));
                }
            }
        }
    }
}

/// Waits up to `timeout` for the acknowledgement of a request (`rx`,
/// resolved by whoever reads the peer's `{ack}`): its data, the peer's
/// error message as [`WsError::Remote`](super::WsError::Remote), `Closed`
/// when the connection went first; `forget` runs on a timeout.
pub(crate) async fn await_ack(
    rx: tokio::sync::oneshot::Receiver<Result<Value, String>>,
    timeout: std::time::Duration,
    forget: impl FnOnce(),
) -> Result<Value, super::WsError> {
    use super::WsError;
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(Ok(value))) => Ok(value),
        Ok(Ok(Err(message))) => Err(WsError::Remote(message)),
        Ok(Err(_)) => Err(WsError::Closed),
        Err(_) => {
            forget();
            Err(WsError::Timeout)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_and_acks() {
        assert_eq!(
            parse(r#"{"event":"say","data":{"t":1},"id":7}"#, 32),
            Ok(Incoming::Event { event: "say".into(), data: json!({"t":1}), id: Some(7) })
        );
        assert_eq!(
            parse(r#"{"event":"ping"}"#, 32),
            Ok(Incoming::Event { event: "ping".into(), data: Value::Null, id: None })
        );
        assert_eq!(parse(r#"{"ack":3,"data":5}"#, 32), Ok(Incoming::Ack { id: 3, result: Ok(json!(5)) }));
        assert_eq!(parse(r#"{"ack":3,"error":"no"}"#, 32), Ok(Incoming::Ack { id: 3, result: Err("no".into()) }));
    }

    #[test]
    fn refusals_name_the_problem() {
        let code = |s: &str| parse(s, 4).unwrap_err().code;
        assert_eq!(code("{nope"), "invalid_json");
        assert_eq!(code("[1,2]"), "not_an_object");
        assert_eq!(code(r#"{"data":1}"#), "invalid_json");
        assert_eq!(code(r#"{"event":""}"#), "invalid_json");
        assert_eq!(code(r#"{"event":"a","id":-1}"#), "invalid_json");
        assert_eq!(code(r#"{"event":"a","id":9007199254740992}"#), "invalid_json");
        assert_eq!(code(r#"{"event":"a","data":[[[[1]]]]}"#), "too_deep");
        // Brackets inside strings do not count.
        assert!(parse(r#"{"event":"a","data":"[[[[[[\"]]]]"}"#, 4).is_ok());
    }

    #[test]
    fn depth_check_is_flat_for_huge_nesting() {
        let deep = format!(r#"{{"event":"a","data":{}{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(parse(&deep, 32).unwrap_err().code, "too_deep");
    }

    proptest::proptest! {
        /// Whatever a client sends, parsing returns (never panics), and a
        /// message nested deeper than the limit is refused before serde
        /// sees it.
        #[test]
        fn any_input_is_parsed_or_refused(input in "[\\[\\]{}\":,a-z0-9\\\\ ]{0,200}", depth in 1usize..8) {
            match parse(&input, depth) {
                Ok(_) => proptest::prop_assert!(exceeds_depth(input.as_bytes(), depth).is_none()),
                Err(r) => proptest::prop_assert!(!r.code.is_empty()),
            }
        }

        /// What the server encodes, a client parses back unchanged.
        #[test]
        fn events_round_trip(event in "[a-z.:_-]{1,20}", text in ".{0,50}", n in proptest::num::i64::ANY, id in proptest::option::of(1u64..(1 << 53))) {
            let data = serde_json::json!({ "text": text, "n": n, "list": [n, null, true] });
            let json = event_json(&event, &data, id).unwrap();
            proptest::prop_assert_eq!(parse(&json, 32), Ok(Incoming::Event { event, data, id }));
        }
    }

    #[test]
    fn regression_floats_survive_a_relay() {
        // Found by the `object` fuzz target: serde_json's default float
        // parser is not correctly rounded, so a number a client sent came
        // back changed when the server relayed it (1.9999999999996e26 became
        // 1.9999999999995998e26). The crate enables `float_roundtrip` (in
        // this workspace another dependency happens to enable it too, so
        // this test guards the behaviour rather than the manifest line).
        let text = r#"{"event":"say","data":[1.9999999999996e+26,1.999999155325593e+25,0.1,5e-324]}"#;
        let Ok(Incoming::Event { event, data, id }) = parse(text, 32) else { panic!("parses") };
        assert_eq!(event_json(&event, &data, id).unwrap(), r#"{"event":"say","data":[1.9999999999996e+26,1.999999155325593e+25,0.1,5e-324]}"#);
        fuzz_check(text, 32);
    }

    #[test]
    fn encodes_envelopes() {
        assert_eq!(event_json("x", &json!([1]), None).unwrap(), r#"{"event":"x","data":[1]}"#);
        assert_eq!(event_json("x", &1, Some(2)).unwrap(), r#"{"event":"x","data":1,"id":2}"#);
        assert_eq!(ack_json(4, &Ok(json!("ok"))), r#"{"ack":4,"data":"ok"}"#);
        assert_eq!(ack_json(4, &Err("bad".into())), r#"{"ack":4,"error":"bad"}"#);
    }
}

