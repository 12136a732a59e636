//! Unit tests of permessage-deflate: the header grammar, negotiation in
//! both roles, and the codec through two `Protocol`s (RFC 7692 vectors,
//! property tests, limits).

use super::params::{parse_list, PmdParams};
use super::*;
use crate::close::CloseCode;
use crate::frame::{parse_header, FrameHeader, OpCode};
use crate::handshake::HandshakeErrorKind;
use crate::mask::apply_mask;
use crate::message::{DataKind, Message};
use crate::proto::{Config, PreparedFrame, Protocol, ProtocolError, Role};
use crate::Extension;
use bytes::Bytes;
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Header grammar
// ---------------------------------------------------------------------------

#[test]
fn grammar_parses_lists_params_and_quotes() {
    let list = parse_list(r#"permessage-deflate; client_max_window_bits, foo ;a=1; b="x-y" ,, bar"#);
    assert_eq!(list.len(), 3);
    let first = list[0].as_ref().unwrap();
    assert_eq!(first.name, "permessage-deflate");
    assert_eq!(first.params, vec![("client_max_window_bits".to_owned(), None)]);
    let second = list[1].as_ref().unwrap();
    assert_eq!(second.name, "foo");
    assert_eq!(second.params, vec![("a".to_owned(), Some("1".to_owned())), ("b".to_owned(), Some("x-y".to_owned()))]);
    assert_eq!(list[2].as_ref().unwrap().name, "bar");
}

#[test]
fn grammar_rejects_malformed_elements_one_by_one() {
    // A comma inside a quoted string does not split the list.
    let list = parse_list(r#"a; p="1,2", b; q=", c"#);
    assert!(list[0].is_err(), "quoted value must be a token after unescaping");
    assert!(list[1].is_err(), "unterminated quote");
    assert_eq!(list.len(), 2);
    for bad in ["", ";x", "a;", "a; =1", "a; p=", "a; p=1 2", "a b", "a; p=\"\"", "a; p=\"1\\\"\""] {
        let parsed = parse_list(bad);
        assert!(parsed.iter().all(|e| e.is_err()), "{bad:?} parsed as {parsed:?}");
    }
    let escaped = parse_list(r#"a; p="\1\0""#);
    assert_eq!(escaped[0].as_ref().unwrap().params[0].1.as_deref(), Some("10"));
}

fn pmd(s: &str, response: bool) -> Result<PmdParams, String> {
    let e = parse_list(s).into_iter().next().unwrap()?;
    PmdParams::from_element(&e, response)
}

#[test]
fn parameters_are_validated() {
    let p = pmd("permessage-deflate; server_no_context_takeover; client_max_window_bits; server_max_window_bits=10", false).unwrap();
    assert!(p.server_no_context_takeover && !p.client_no_context_takeover);
    assert_eq!(p.server_max_window_bits, Some(10));
    assert_eq!(p.client_max_window_bits, Some(None));
    assert_eq!(pmd("permessage-deflate; client_max_window_bits=\"8\"", false).unwrap().client_max_window_bits, Some(Some(8)));
    assert_eq!(pmd("permessage-deflate; Server_Max_Window_Bits=15", false).unwrap().server_max_window_bits, Some(15));
    for bad in [
        "permessage-deflate; foo",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover=\"x\"",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=08",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits=+9",
        "permessage-deflate; server_max_window_bits=9; server_max_window_bits=9",
        "permessage-deflate; client_max_window_bits=0",
        "permessage-deflate; client_max_window_bits=abc",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=9",
    ] {
        assert!(pmd(bad, false).is_err(), "{bad} accepted");
    }
    // A response must give client_max_window_bits a value (§7.1.2.2).
    assert!(pmd("permessage-deflate; client_max_window_bits", true).is_err());
    assert!(pmd("permessage-deflate; client_max_window_bits=9", true).is_ok());
}

// ---------------------------------------------------------------------------
// Server negotiation
// ---------------------------------------------------------------------------

fn negotiate(cfg: &DeflateConfig, offers: &[&str]) -> Option<(DeflateParams, String)> {
    cfg.negotiate(offers.iter().copied()).map(|a| (a.params, a.response))
}

fn params(snct: bool, cnct: bool, sbits: u8, cbits: u8) -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: snct,
        client_no_context_takeover: cnct,
        server_max_window_bits: sbits,
        client_max_window_bits: cbits,
    }
}

/// `cfg` accepts `offer` with these parameters and this answer.
fn agrees(cfg: &DeflateConfig, offer: &str, params: DeflateParams, answer: &str) {
    assert_eq!(negotiate(cfg, &[offer]), Some((params, answer.into())), "offer {offer:?}");
}

/// `cfg` accepts `offer` with this answer.
fn answers(cfg: &DeflateConfig, offer: &str, answer: &str) {
    assert_eq!(negotiate(cfg, &[offer]).map(|a| a.1), Some(answer.into()), "offer {offer:?}");
}

#[test]
fn server_accepts_plain_and_browser_offers() {
    let cfg = DeflateConfig::default();
    agrees(&cfg, "permessage-deflate", params(false, false, 15, 15), "permessage-deflate");
    // What browsers send.
    agrees(&cfg, "permessage-deflate; client_max_window_bits", params(false, false, 15, 15), "permessage-deflate");
    assert_eq!(
        negotiate(&cfg, &["PerMessage-Deflate"]).map(|a| a.1),
        Some("permessage-deflate".into()),
        "names compare case-insensitively"
    );
    assert_eq!(negotiate(&cfg, &[]), None);
    assert_eq!(negotiate(&cfg, &["x-webkit-deflate-frame"]), None);
}

#[test]
fn server_answers_no_context_takeover() {
    let cfg = DeflateConfig::default();
    agrees(&cfg, "permessage-deflate; server_no_context_takeover", params(true, false, 15, 15), "permessage-deflate; server_no_context_takeover");
    // The client's hint is echoed: it binds the client.
    agrees(&cfg, "permessage-deflate; client_no_context_takeover", params(false, true, 15, 15), "permessage-deflate; client_no_context_takeover");
    // The server may impose both without being asked (§7.1.1.1, §7.1.1.2).
    let cfg = DeflateConfig { server_no_context_takeover: true, client_no_context_takeover: true, ..DeflateConfig::default() };
    agrees(&cfg, "permessage-deflate", params(true, true, 15, 15), "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
}

#[test]
fn server_window_bits() {
    let cfg = DeflateConfig::default();
    // Offered server_max_window_bits must be answered (same or smaller).
    agrees(&cfg, "permessage-deflate; server_max_window_bits=10", params(false, false, 10, 15), "permessage-deflate; server_max_window_bits=10");
    answers(&cfg, "permessage-deflate; server_max_window_bits=15", "permessage-deflate; server_max_window_bits=15");
    assert_eq!(
        negotiate(&cfg, &["permessage-deflate; server_max_window_bits=8"]).map(|a| a.0),
        Some(params(false, false, 8, 15))
    );
    // A smaller configured window wins and is answered even if not offered.
    let small = DeflateConfig { server_max_window_bits: 9, ..DeflateConfig::default() };
    answers(&small, "permessage-deflate; server_max_window_bits=12", "permessage-deflate; server_max_window_bits=9");
    agrees(&small, "permessage-deflate", params(false, false, 9, 15), "permessage-deflate; server_max_window_bits=9");
    assert_eq!(negotiate(&small, &["permessage-deflate; server_max_window_bits=8"]).map(|a| a.0.server_max_window_bits), Some(8));
}

#[test]
fn client_window_bits() {
    let cfg = DeflateConfig::default();
    // A value in the offer binds the client; answering it is harmless.
    agrees(&cfg, "permessage-deflate; client_max_window_bits=10", params(false, false, 15, 10), "permessage-deflate; client_max_window_bits=10");
    let small = DeflateConfig { client_max_window_bits: 11, ..DeflateConfig::default() };
    // Without a value the server may answer one (§7.1.2.2).
    agrees(&small, "permessage-deflate; client_max_window_bits", params(false, false, 15, 11), "permessage-deflate; client_max_window_bits=11");
    answers(&small, "permessage-deflate; client_max_window_bits=9", "permessage-deflate; client_max_window_bits=9");
    answers(&small, "permessage-deflate; client_max_window_bits=15", "permessage-deflate; client_max_window_bits=11");
    // The server cannot bound the client's window without the parameter:
    // with a configured limit, such an offer is declined.
    assert_eq!(negotiate(&small, &["permessage-deflate"]), None);
    assert_eq!(
        negotiate(&small, &["permessage-deflate", "permessage-deflate; client_max_window_bits"]).map(|a| a.0),
        Some(params(false, false, 15, 11))
    );
}

#[test]
fn server_takes_the_first_supported_offer_across_headers() {
    let cfg = DeflateConfig::default();
    // Several offers in one header: the first valid one wins.
    assert_eq!(
        negotiate(&cfg, &["permessage-deflate; server_max_window_bits=10, permessage-deflate"]).map(|a| a.0),
        Some(params(false, false, 10, 15))
    );
    // Invalid offers are skipped, never fatal.
    assert_eq!(
        negotiate(
            &cfg,
            &[
                "permessage-deflate; foo=1, permessage-deflate; server_max_window_bits=16",
                "x-other; a=1",
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                "permessage-deflate; client_no_context_takeover",
                "permessage-deflate"
            ]
        ),
        Some((params(false, true, 15, 15), "permessage-deflate; client_no_context_takeover".into()))
    );
    // A malformed element does not hide the next one.
    assert_eq!(
        negotiate(&cfg, &["permessage-deflate; x=\"unterminated", "permessage-deflate"]).map(|a| a.1),
        Some("permessage-deflate".into())
    );
    assert_eq!(negotiate(&cfg, &["permessage-deflate; a, permessage-deflate; server_max_window_bits"]), None);
}

#[test]
fn budget_caps_connections_and_memory() {
    let budget = DeflateBudget::new(2);
    let cfg = DeflateConfig { budget: Some(budget.clone()), ..DeflateConfig::default() };
    let a = cfg.accept_offers(["permessage-deflate"]).expect("first");
    let b = cfg.accept_offers(["permessage-deflate"]).expect("second");
    assert_eq!(budget.connections(), 2);
    assert!(cfg.accept_offers(["permessage-deflate"]).is_none(), "over the cap: declined");
    drop(a);
    assert_eq!(budget.connections(), 1);
    let c = cfg.accept_offers(["permessage-deflate"]).expect("freed");
    assert_eq!(budget.memory(), 2 * DeflateParams::default().memory_estimate(Role::Server));
    drop((b, c));
    assert_eq!((budget.connections(), budget.memory()), (0, 0));

    // A memory cap: smaller windows and no context takeover fit more.
    let one = DeflateParams::default().memory_estimate(Role::Server);
    let budget = DeflateBudget::with_memory(100, one + one / 2);
    let cfg = DeflateConfig { budget: Some(budget.clone()), ..DeflateConfig::default() };
    let _a = cfg.accept_offers(["permessage-deflate"]).unwrap();
    assert!(cfg.accept_offers(["permessage-deflate"]).is_none());
    let small = cfg.accept_offers(["permessage-deflate; server_max_window_bits=9; client_max_window_bits=9"]);
    assert!(small.is_none() || budget.memory() <= one + one / 2);

    // A client over budget does not offer.
    let budget = DeflateBudget::new(0);
    let cfg = DeflateConfig { budget: Some(budget), ..DeflateConfig::default() };
    let offer = cfg.client_offer(None);
    assert_eq!(offer.header(), None);
    assert!(!offer.offers_deflate());
    let offer = cfg.client_offer(Some("x-foo, permessage-deflate; client_max_window_bits"));
    assert_eq!(offer.header(), Some("x-foo"));
    assert!(offer.accept(&["permessage-deflate".into()]).is_err());
}

// ---------------------------------------------------------------------------
// Client offer and response validation
// ---------------------------------------------------------------------------

#[test]
fn client_offers() {
    assert_eq!(DeflateConfig::default().offer(), "permessage-deflate; client_max_window_bits");
    let cfg = DeflateConfig {
        server_max_window_bits: 10,
        client_max_window_bits: 9,
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        ..DeflateConfig::default()
    };
    assert_eq!(
        cfg.offer(),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9"
    );
    // The application's extensions come first; its own deflate offer wins.
    let d = DeflateConfig::default();
    assert_eq!(d.client_offer(Some("x-foo")).header(), Some("x-foo, permessage-deflate; client_max_window_bits"));
    assert_eq!(d.client_offer(Some(" ")).header(), Some("permessage-deflate; client_max_window_bits"));
    assert_eq!(d.client_offer(Some("permessage-deflate; server_max_window_bits=9")).header(), Some("permessage-deflate; server_max_window_bits=9"));
    // Every offer this configuration makes is one a default server accepts.
    assert!(DeflateConfig::default().negotiate([cfg.offer().as_str()]).is_some());
}

fn client_accept(cfg: &DeflateConfig, response: &[&str]) -> Result<Option<DeflateParams>, crate::handshake::HandshakeError> {
    let response: Vec<String> = response.iter().map(|s| s.to_string()).collect();
    cfg.client_offer(None).accept(&response).map(|e| e.map(|e| *e.params()))
}

#[test]
fn client_accepts_valid_responses() {
    let d = DeflateConfig::default();
    assert_eq!(client_accept(&d, &[]).unwrap(), None);
    assert_eq!(client_accept(&d, &["permessage-deflate"]).unwrap(), Some(params(false, false, 15, 15)));
    assert_eq!(
        client_accept(&d, &["permessage-deflate; server_no_context_takeover; client_no_context_takeover"]).unwrap(),
        Some(params(true, true, 15, 15))
    );
    assert_eq!(
        client_accept(&d, &["permessage-deflate; server_max_window_bits=9; client_max_window_bits=8"]).unwrap(),
        Some(params(false, false, 9, 8))
    );
    let cfg = DeflateConfig { server_max_window_bits: 10, client_max_window_bits: 12, server_no_context_takeover: true, client_no_context_takeover: true, ..d.clone() };
    assert_eq!(
        client_accept(&cfg, &["permessage-deflate; server_no_context_takeover; server_max_window_bits=10"]).unwrap(),
        Some(params(true, true, 10, 12)),
        "our client_no_context_takeover hint binds us; our window value bounds us"
    );
    assert_eq!(
        client_accept(&cfg, &["permessage-deflate; server_max_window_bits=8; client_max_window_bits=10"]).unwrap(),
        Some(params(false, true, 8, 10))
    );
    // Tolerated omissions: we inflate with 15 bits / keep our context.
    assert_eq!(client_accept(&cfg, &["permessage-deflate"]).unwrap(), Some(params(false, true, 15, 12)));
}

#[test]
fn client_rejects_invalid_responses() {
    let cfg = DeflateConfig { server_max_window_bits: 10, client_max_window_bits: 12, ..DeflateConfig::default() };
    for bad in [
        vec!["permessage-deflate; foo"],
        vec!["permessage-deflate; server_no_context_takeover; server_no_context_takeover"],
        vec!["permessage-deflate; server_max_window_bits=11"],
        vec!["permessage-deflate; server_max_window_bits"],
        vec!["permessage-deflate; server_max_window_bits=7"],
        vec!["permessage-deflate; client_max_window_bits"],
        vec!["permessage-deflate; client_max_window_bits=13"],
        vec!["permessage-deflate; client_no_context_takeover=1"],
        vec!["permessage-deflate, permessage-deflate"],
        vec!["permessage-deflate", "permessage-deflate; server_max_window_bits=9"],
        vec!["x-unknown"],
        vec!["permessage-deflate; a=\"b"],
    ] {
        let err = client_accept(&cfg, &bad).expect_err(&format!("{bad:?} accepted"));
        assert_eq!(*err.kind(), HandshakeErrorKind::BadResponse, "{bad:?}");
    }
    // client_max_window_bits in a response to an offer without it.
    let offer = DeflateConfig::default().client_offer(Some("permessage-deflate"));
    assert!(offer.accept(&["permessage-deflate; client_max_window_bits=10".into()]).is_err());
    // Among several offers the answer must fit one.
    let offer = DeflateConfig::default()
        .client_offer(Some("permessage-deflate; server_max_window_bits=9, permessage-deflate; client_max_window_bits"));
    let ext = offer.accept(&["permessage-deflate; client_max_window_bits=10".into()]).unwrap().unwrap();
    assert_eq!(*ext.params(), params(false, false, 15, 10));
    // The application's own extensions pass through.
    let offer = DeflateConfig::default().client_offer(Some("x-foo"));
    assert!(offer.accept(&["x-foo; bar".into()]).unwrap().is_none());
}

// ---------------------------------------------------------------------------
// Codec through two protocols
// ---------------------------------------------------------------------------

/// A server and a client sharing `p`, with `cfg`'s level and min_size.
fn pair(p: DeflateParams, cfg: &DeflateConfig, config: Config) -> (Protocol, Protocol) {
    let mut server = Protocol::new(Role::Server, config.clone());
    let mut client = Protocol::new(Role::Client, config);
    server.set_extension(Box::new(DeflateExtension::new(Role::Server, p, cfg)));
    client.set_extension(Box::new(DeflateExtension::new(Role::Client, p, cfg)));
    (server, client)
}

fn drain(from: &mut Protocol) -> Vec<u8> {
    let out = from.output();
    let mut bytes = Vec::new();
    while !out.is_empty() {
        let chunk = out.first_chunk().to_vec();
        out.advance(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    bytes
}

/// Splits wire bytes into frames (header, unmasked payload).
fn frames(mut wire: &[u8]) -> Vec<(FrameHeader, Vec<u8>)> {
    let mut v = Vec::new();
    while !wire.is_empty() {
        let (h, n) = parse_header(wire).unwrap().expect("complete frame");
        let mut payload = wire[n..n + h.len as usize].to_vec();
        if let Some(key) = h.mask {
            apply_mask(&mut payload, key, 0);
        }
        wire = &wire[n + h.len as usize..];
        v.push((h, payload));
    }
    v
}

fn all_messages(p: &mut Protocol) -> Result<Vec<Message>, ProtocolError> {
    let mut v = Vec::new();
    while let Some(m) = p.poll_message()? {
        v.push(m);
    }
    Ok(v)
}

/// A masked client frame, as a peer would send it.
fn client_frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let key = [1, 2, 3, 4];
    let mut f = Vec::new();
    crate::frame::encode_header(&mut f, fin, rsv, OpCode::from_u8(opcode).unwrap(), Some(key), payload.len() as u64);
    let start = f.len();
    f.extend_from_slice(payload);
    apply_mask(&mut f[start..], key, 0);
    f
}

fn server_with(p: DeflateParams, config: Config) -> Protocol {
    let mut server = Protocol::new(Role::Server, config);
    server.set_extension(Box::new(DeflateExtension::new(Role::Server, p, &DeflateConfig::default())));
    server
}

#[test]
fn rfc7692_examples_inflate() {
    let mut s = server_with(DeflateParams::default(), Config::default());
    // §7.2.3.1: "Hello" in one compressed frame.
    s.receive(&client_frame(true, 0x40, 1, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]));
    // §7.2.3.1: the same, fragmented; RSV1 only on the first frame.
    s.receive(&client_frame(false, 0x40, 1, &[0xf2, 0x48, 0xcd]));
    s.receive(&client_frame(true, 0, 0, &[0xc9, 0xc9, 0x07, 0x00]));
    // §7.2.3.2: a second "Hello" referencing the first (context takeover).
    s.receive(&client_frame(true, 0x40, 1, &[0xf2, 0x00, 0x11, 0x00, 0x00]));
    // §7.2.3.3: a stored (uncompressed) block.
    s.receive(&client_frame(true, 0x40, 1, &[0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00]));
    // §7.2.3.4: a block with BFINAL set.
    s.receive(&client_frame(true, 0x40, 1, &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]));
    // After BFINAL the next message starts a fresh stream; anything after
    // the final block is ignored.
    s.receive(&client_frame(true, 0x40, 1, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]));
    s.receive(&client_frame(false, 0x40, 1, &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x41]));
    s.receive(&client_frame(true, 0, 0, &[0x42, 0x43]));
    // §7.2.3.5 / §7.2.3.6: an empty message.
    s.receive(&client_frame(true, 0x40, 2, &[0x00]));
    s.receive(&client_frame(true, 0x40, 2, &[0x02, 0x00]));
    // An uncompressed message in between (RSV1 clear).
    s.receive(&client_frame(true, 0, 1, b"plain"));
    let got = all_messages(&mut s).unwrap();
    let hello = Message::text("Hello");
    assert_eq!(
        got,
        vec![
            hello.clone(),
            hello.clone(),
            hello.clone(),
            hello.clone(),
            hello.clone(),
            hello.clone(),
            hello,
            Message::binary(Bytes::new()),
            Message::binary(Bytes::new()),
            Message::text("plain"),
        ]
    );
}

#[test]
fn corrupt_data_fails_with_1007() {
    for payload in [
        // BTYPE 11 (reserved).
        &[0xff, 0xff, 0xff, 0xff][..],
        &[0x06][..],
        // A stored block whose NLEN is not the complement of LEN.
        &[0x00, 0x05, 0x00, 0x00, 0x00, b'H', b'e', b'l', b'l', b'o'][..],
        // A distance before the start of the stream: RFC 7692 §7.2.3.2's
        // second "Hello", which refers to the first.
        &[0xf2, 0x00, 0x11, 0x00, 0x00][..],
    ] {
        let mut s = server_with(DeflateParams::default(), Config::default());
        s.receive(&client_frame(true, 0x40, 2, payload));
        let err = all_messages(&mut s).unwrap_err();
        assert_eq!(err.close_code(), Some(CloseCode::INVALID_PAYLOAD), "{payload:?}: {err}");
        let sent = frames(&drain(&mut s));
        assert_eq!(sent[0].0.opcode, OpCode::Close);
        assert_eq!(&sent[0].1[..2], &1007u16.to_be_bytes());
    }
}

#[test]
fn inflated_text_is_validated_as_utf8() {
    let bad = compress_message(&[b'a'; 100].iter().copied().chain([0xff, 0xfe]).collect::<Vec<_>>(), 6, 15).unwrap();
    let mut s = server_with(DeflateParams::default(), Config::default());
    s.receive(&client_frame(true, 0x40, 1, &bad));
    assert_eq!(all_messages(&mut s).unwrap_err(), ProtocolError::InvalidUtf8);
}

#[test]
fn rsv_bits_other_than_rsv1_and_rsv1_on_continuations_fail() {
    for (first, second) in [
        (client_frame(true, 0x20, 1, b"x"), Vec::new()),
        (client_frame(false, 0x40, 1, &[0xf2, 0x48]), client_frame(true, 0x40, 0, &[0xcd])),
        (client_frame(true, 0x40, 9, b""), Vec::new()),
    ] {
        let mut s = server_with(DeflateParams::default(), Config::default());
        s.receive(&first);
        s.receive(&second);
        let err = all_messages(&mut s).unwrap_err();
        assert_eq!(err.close_code(), Some(CloseCode::PROTOCOL_ERROR), "{err}");
    }
}

#[test]
fn inflation_bomb_fails_with_1009_at_the_limit() {
    // 64 MiB of zeros compress to ~64 KiB; the limit is 1 MiB.
    let mut c = flate2::Compress::new(flate2::Compression::new(9), false);
    let zeros = vec![0u8; 1 << 20];
    let mut bomb = Vec::with_capacity(128 << 10);
    for _ in 0..64 {
        c.compress_vec(&zeros, &mut bomb, flate2::FlushCompress::None).unwrap();
        bomb.reserve(64 << 10);
    }
    c.compress_vec(&[], &mut bomb, flate2::FlushCompress::Sync).unwrap();
    assert!(bomb.len() < 128 << 10, "{}", bomb.len());
    let config = Config { max_message_size: 1 << 20, ..Config::default() };
    for stream in [false, true] {
        let mut s = server_with(DeflateParams::default(), Config { stream_messages: stream, ..config.clone() });
        s.receive(&client_frame(true, 0x40, 2, &bomb));
        let err = loop {
            match s.poll_message() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("bomb accepted"),
                Err(e) => break e,
            }
        };
        assert!(matches!(err, ProtocolError::MessageTooBig { max, .. } if max == 1 << 20), "{err}");
        assert_eq!(err.close_code(), Some(CloseCode::MESSAGE_TOO_BIG));
    }
    // Across frames: the limit counts the whole message.
    let half = compress_message(&vec![7u8; 600 << 10], 1, 15).unwrap();
    let mut s = server_with(DeflateParams::default(), config);
    s.receive(&client_frame(false, 0x40, 2, &[&half[..], &[0, 0, 0xff, 0xff]].concat()));
    s.receive(&client_frame(true, 0, 0, &half));
    assert!(matches!(all_messages(&mut s).unwrap_err(), ProtocolError::MessageTooBig { .. }));
}

#[test]
fn decode_stops_one_byte_past_the_limit() {
    let data = compress_message(&vec![b'z'; 100_000], 1, 15).unwrap();
    let mut ext = DeflateExtension::new(Role::Server, DeflateParams::default(), &DeflateConfig::default());
    let out = ext.decode(RSV1, Bytes::from(data), true, 1000).unwrap();
    assert_eq!(out.len(), 1001);
}

#[test]
fn wire_format_rsv1_first_frame_only_and_no_tail() {
    let cfg = DeflateConfig { min_size: 10, ..DeflateConfig::default() };
    let (mut server, mut client) = pair(DeflateParams::default(), &cfg, Config { max_send_frame_size: Some(8), ..Config::default() });
    let text = "a fairly compressible text, a fairly compressible text, a fairly compressible text";
    server.send(Message::text(text)).unwrap();
    server.send(Message::Ping(Bytes::from_static(b"ping payload that is long enough"))).unwrap();
    server.send(Message::text("short")).unwrap();
    let wire = drain(&mut server);
    let f = frames(&wire);
    let data: Vec<_> = f.iter().take_while(|(h, _)| h.opcode != OpCode::Ping).collect();
    assert!(data.len() > 1, "fragmented by max_send_frame_size");
    assert_eq!(data[0].0.rsv, 0x40);
    assert!(data[1..].iter().all(|(h, _)| h.rsv == 0 && h.opcode == OpCode::Continuation));
    let payload: Vec<u8> = data.iter().flat_map(|(_, p)| p.clone()).collect();
    assert!(payload.len() < text.len());
    assert!(!payload.ends_with(&[0, 0, 0xff, 0xff]), "the sync flush tail is removed");
    let ping = f.iter().find(|(h, _)| h.opcode == OpCode::Ping).unwrap();
    assert_eq!(ping.0.rsv, 0, "control frames are never compressed");
    let short = f.last().unwrap();
    assert_eq!((short.0.rsv, &short.1[..]), (0, &b"short"[..]), "below min_size: sent as is");
    client.receive(&wire);
    assert_eq!(
        all_messages(&mut client).unwrap(),
        vec![Message::text(text), Message::Ping(Bytes::from_static(b"ping payload that is long enough")), Message::text("short")]
    );
}

fn compressed_sizes(p: DeflateParams) -> (Vec<usize>, usize) {
    let cfg = DeflateConfig::default();
    let (mut server, mut client) = pair(p, &cfg, Config::default());
    let msg = "{\"id\":12345,\"name\":\"a JSON object\",\"tags\":[\"x\",\"y\",\"z\"],\"value\":3.14159}".repeat(3);
    let mut sizes = Vec::new();
    for _ in 0..3 {
        server.send(Message::text(msg.as_str())).unwrap();
        let wire = drain(&mut server);
        sizes.push(frames(&wire)[0].1.len());
        client.receive(&wire);
        assert_eq!(all_messages(&mut client).unwrap(), vec![Message::text(msg.as_str())]);
    }
    (sizes, server.extension_memory())
}

#[test]
fn context_takeover_and_its_reset() {
    let (with, mem) = compressed_sizes(DeflateParams::default());
    assert!(with[1] < with[0] / 3, "the second message refers to the first: {with:?}");
    assert_eq!(mem, deflate_memory(15), "the compressor is kept");
    let (without, mem) = compressed_sizes(params(true, false, 15, 15));
    assert_eq!(without[0], without[1], "reset after each message: {without:?}");
    assert_eq!(without[0], with[0]);
    assert_eq!(mem, 0, "no context takeover: nothing held between messages");
}

#[test]
fn memory_report_follows_contexts() {
    let p = params(false, true, 10, 12);
    let cfg = DeflateConfig::default();
    let (mut server, mut client) = pair(p, &cfg, Config::default());
    assert_eq!((server.extension_memory(), client.extension_memory()), (0, 0), "allocated lazily");
    let big = "hello world ".repeat(20);
    client.send(Message::text(big.as_str())).unwrap();
    server.receive(&drain(&mut client));
    all_messages(&mut server).unwrap();
    // The client keeps nothing (client_no_context_takeover); the server's
    // inflater is dropped after the message for the same reason.
    assert_eq!(client.extension_memory(), 0);
    assert_eq!(server.extension_memory(), 0);
    server.send(Message::text(big.as_str())).unwrap();
    client.receive(&drain(&mut server));
    all_messages(&mut client).unwrap();
    assert_eq!(server.extension_memory(), deflate_memory(10));
    assert_eq!(client.extension_memory(), inflate_memory(10));
    assert!(deflate_memory(8) < deflate_memory(15));
    assert_eq!(deflate_memory(8), deflate_memory(9), "8 bits deflate with 9");
    assert_eq!(p.memory_estimate(Role::Server), deflate_memory(10) + inflate_memory(12));
}

#[test]
fn empty_messages_with_context_takeover() {
    // Found by fuzzing: a second sync flush without input emits nothing.
    let cfg = DeflateConfig { min_size: 0, ..DeflateConfig::default() };
    let (mut server, mut client) = pair(DeflateParams::default(), &cfg, Config::default());
    let messages = [Message::text("hello hello"), Message::text(""), Message::binary(Bytes::new()), Message::text("hello hello")];
    for m in &messages {
        client.send(m.clone()).unwrap();
    }
    let wire = drain(&mut client);
    assert!(frames(&wire).iter().all(|(h, _)| h.rsv == 0x40));
    server.receive(&wire);
    assert_eq!(all_messages(&mut server).unwrap(), messages.to_vec());
}

#[test]
fn incompressible_data_goes_out_plain_without_context_takeover() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..2000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let cfg = DeflateConfig::default();
    let (mut server, mut client) = pair(params(true, false, 15, 15), &cfg, Config::default());
    server.send(Message::binary(noise.clone())).unwrap();
    let wire = drain(&mut server);
    assert_eq!(frames(&wire)[0].0.rsv, 0);
    client.receive(&wire);
    assert_eq!(all_messages(&mut client).unwrap(), vec![Message::binary(noise)]);
}

#[test]
fn window_bits_8_round_trip_with_a_strict_8_bit_inflater() {
    // Deflating "with 8 bits" uses 9, whose distances stay within 250 bytes:
    // check by inflating one byte of output at a time with a 256-byte
    // history (zlib-rs checks distances against the window it holds).
    let text: Vec<u8> = (0..20_000u32).map(|i| b"abcdefghij"[(i * i % 7) as usize] ^ (i / 300) as u8).collect();
    let cfg = DeflateConfig::default();
    let mut ext = DeflateExtension::new(Role::Server, params(false, false, 8, 8), &cfg);
    for _ in 0..3 {
        let (rsv, data) = ext.encode(DataKind::Binary, Bytes::from(text.clone())).unwrap();
        assert_eq!(rsv, RSV1);
        let mut stream = data.to_vec();
        stream.extend_from_slice(&[0, 0, 0xff, 0xff]);
        // Scan the deflate stream's distances with a reference inflater
        // that refuses anything farther back than 256 bytes.
        assert!(max_distance(&stream) <= 256);
    }
    // And the client side inflates it.
    let (mut server, mut client) = pair(params(false, false, 8, 8), &cfg, Config::default());
    for _ in 0..3 {
        server.send(Message::binary(text.clone())).unwrap();
        client.receive(&drain(&mut server));
        assert_eq!(all_messages(&mut client).unwrap(), vec![Message::binary(text.clone())]);
        client.send(Message::binary(text.clone())).unwrap();
        server.receive(&drain(&mut client));
        assert_eq!(all_messages(&mut server).unwrap(), vec![Message::binary(text.clone())]);
    }
}

/// The largest back-reference distance in a raw deflate stream (a tiny
/// reference decoder: stored, fixed and dynamic Huffman blocks).
fn max_distance(data: &[u8]) -> usize {
    struct Bits<'a> {
        d: &'a [u8],
        pos: usize,
    }
    impl Bits<'_> {
        fn bit(&mut self) -> u32 {
            let b = (self.d[self.pos / 8] >> (self.pos % 8)) & 1;
            self.pos += 1;
            b as u32
        }
        fn bits(&mut self, n: u32) -> u32 {
            (0..n).fold(0, |acc, i| acc | (self.bit() << i))
        }
        fn done(&self) -> bool {
            self.pos + 8 > self.d.len() * 8
        }
    }
    /// A canonical Huffman code: symbols ordered by (length, value).
    struct Huffman {
        count: [i32; 16],
        symbols: Vec<usize>,
    }
    fn huffman(lens: &[u8]) -> Huffman {
        let mut count = [0i32; 16];
        for &l in lens {
            count[l as usize] += 1;
        }
        count[0] = 0;
        let symbols = (1..16u8).flat_map(|len| (0..lens.len()).filter(move |&s| lens[s] == len)).collect();
        Huffman { count, symbols }
    }
    fn decode(b: &mut Bits, h: &Huffman) -> usize {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16 {
            code |= b.bit() as i32;
            let count = h.count[len];
            if code - count < first {
                return h.symbols[(index + code - first) as usize];
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        panic!("bad code");
    }
    const LBASE: [usize; 29] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
    const LEXT: [u32; 29] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
    const DBASE: [usize; 30] = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577];
    const DEXT: [u32; 30] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
    let mut b = Bits { d: data, pos: 0 };
    let mut max = 0;
    while !b.done() {
        let _final = b.bit();
        match b.bits(2) {
            0 => {
                b.pos = b.pos.div_ceil(8) * 8;
                let len = b.bits(16) as usize;
                b.bits(16);
                b.pos += len * 8;
            }
            t @ (1 | 2) => {
                let (lit, dist) = if t == 1 {
                    let mut l = vec![8u8; 288];
                    l[144..256].fill(9);
                    l[256..280].fill(7);
                    (l, vec![5u8; 30])
                } else {
                    let (hlit, hdist, hclen) = (b.bits(5) as usize + 257, b.bits(5) as usize + 1, b.bits(4) as usize + 4);
                    const ORDER: [usize; 19] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
                    let mut cl = [0u8; 19];
                    for &o in &ORDER[..hclen] {
                        cl[o] = b.bits(3) as u8;
                    }
                    let cl = huffman(&cl);
                    let mut lens = Vec::new();
                    while lens.len() < hlit + hdist {
                        match decode(&mut b, &cl) {
                            s @ 0..=15 => lens.push(s as u8),
                            16 => {
                                let prev = *lens.last().unwrap();
                                for _ in 0..3 + b.bits(2) {
                                    lens.push(prev);
                                }
                            }
                            17 => lens.extend(std::iter::repeat_n(0, 3 + b.bits(3) as usize)),
                            _ => lens.extend(std::iter::repeat_n(0, 11 + b.bits(7) as usize)),
                        }
                    }
                    (lens[..hlit].to_vec(), lens[hlit..].to_vec())
                };
                let (lit, dist) = (huffman(&lit), huffman(&dist));
                loop {
                    let sym = decode(&mut b, &lit);
                    if sym < 256 {
                        continue;
                    }
                    if sym == 256 {
                        break;
                    }
                    let _len = LBASE[sym - 257] + b.bits(LEXT[sym - 257]) as usize;
                    let ds = decode(&mut b, &dist);
                    let d = DBASE[ds] + b.bits(DEXT[ds]) as usize;
                    max = max.max(d);
                }
            }
            _ => panic!("reserved block type"),
        }
    }
    max
}

#[test]
fn reference_decoder_sees_long_distances_with_15_bits() {
    let text: Vec<u8> = (0..20_000u32).map(|i| b"abcdefghij"[(i * i % 7) as usize] ^ (i / 300) as u8).collect();
    let mut stream = compress_message(&[&text[..], &text[..]].concat(), 6, 15).unwrap();
    stream.extend_from_slice(&[0, 0, 0xff, 0xff]);
    assert!(max_distance(&stream) > 256, "the distance check above is meaningful");
}

#[test]
fn prepared_compressed_frames() {
    let msg = Message::text("broadcast ".repeat(50));
    let prepared = PreparedFrame::compressed(&msg, 6).unwrap();
    assert_eq!(prepared.encoding(), Some(crate::extension::PreparedEncoding::Deflate { window_bits: 15 }));
    assert_eq!(prepared.as_bytes()[0] & 0x40, 0x40);
    let cfg = DeflateConfig::default();

    // With context takeover: the compressed frame goes out, then the
    // connection's own context restarts, so later messages still decode.
    let (mut server, mut client) = pair(DeflateParams::default(), &cfg, Config::default());
    server.send(msg.clone()).unwrap();
    server.send_prepared(&prepared).unwrap();
    server.send(msg.clone()).unwrap();
    let wire = drain(&mut server);
    let f = frames(&wire);
    let p = prepared.as_bytes();
    assert!(wire.windows(p.len()).any(|w| w == &p[..]), "sent as prepared");
    assert!(f.iter().all(|(h, _)| h.rsv == 0x40));
    client.receive(&wire);
    assert_eq!(all_messages(&mut client).unwrap(), vec![msg.clone(), msg.clone(), msg.clone()]);

    // No extension, or a smaller window: the message goes out plain.
    let mut plain = Protocol::new(Role::Server, Config::default());
    plain.send_prepared(&prepared).unwrap();
    let (mut small, mut small_client) = pair(params(false, false, 10, 15), &cfg, Config::default());
    small.send_prepared(&prepared).unwrap();
    for wire in [drain(&mut plain), drain(&mut small)] {
        let f = frames(&wire);
        assert_eq!((f[0].0.rsv, f[0].1.as_slice()), (0, msg.payload()));
    }
    let narrow = PreparedFrame::compressed_with_window(&msg, 1, 9).unwrap();
    small.send_prepared(&narrow).unwrap();
    small.send(msg.clone()).unwrap();
    small_client.receive(&drain(&mut small));
    assert_eq!(all_messages(&mut small_client).unwrap(), vec![msg.clone(), msg.clone()]);

    // Pings are never compressed; close is refused; incompressible data is
    // prepared plain.
    let ping = PreparedFrame::compressed(&Message::Ping(Bytes::from_static(b"p")), 6).unwrap();
    assert_eq!((ping.encoding(), ping.as_bytes()[0] & 0x70), (None, 0));
    assert!(PreparedFrame::compressed(&Message::Close(None), 6).is_err());
    assert_eq!(PreparedFrame::compressed(&Message::text("ab"), 6).unwrap().encoding(), None);
}

// ---------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------

fn arb_params() -> impl Strategy<Value = DeflateParams> {
    (any::<bool>(), any::<bool>(), 8u8..=15, 8u8..=15).prop_map(|(s, c, sb, cb)| params(s, c, sb, cb))
}

fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        // Compressible text, sometimes long.
        (prop::collection::vec(prop::sample::select(vec!["a", "bc", "{\"k\":", "1,", "é", "日本", " "]), 0..400))
            .prop_map(|parts| Message::text(parts.concat())),
        any::<String>().prop_map(Message::text),
        prop::collection::vec(any::<u8>(), 0..3000).prop_map(Message::binary),
        (any::<u8>(), 0usize..70_000).prop_map(|(b, n)| Message::binary(vec![b; n])),
    ]
}

/// Delivers `wire` in random chunks and collects whole messages (streamed
/// pieces reassembled).
fn deliver(to: &mut Protocol, wire: &[u8], cuts: &[usize]) -> Vec<Message> {
    let mut got = Vec::new();
    let mut pieces: Vec<u8> = Vec::new();
    let mut start = 0;
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    bounds.push(wire.len());
    bounds.sort_unstable();
    for end in bounds {
        to.receive(&wire[start..end]);
        start = end;
        while let Some(m) = to.poll_message().expect("valid stream") {
            match m {
                Message::Fragment { kind, data, last } => {
                    pieces.extend_from_slice(&data);
                    if last {
                        let data = Bytes::from(std::mem::take(&mut pieces));
                        got.push(match kind {
                            DataKind::Text => Message::text(String::from_utf8(data.to_vec()).unwrap()),
                            DataKind::Binary => Message::binary(data),
                        });
                    }
                }
                m => got.push(m),
            }
        }
    }
    got
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn round_trip_random_messages_and_fragmentations(
        p in arb_params(),
        level in 0u32..=9,
        min_size in 0usize..100,
        frame_size in prop::option::of(1usize..500),
        stream in any::<bool>(),
        messages in prop::collection::vec(arb_message(), 1..8),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let cfg = DeflateConfig { level, min_size, ..DeflateConfig::default() };
        let config = Config { max_send_frame_size: frame_size, stream_messages: stream, ..Config::default() };
        let (mut server, mut client) = pair(p, &cfg, config);
        for (i, m) in messages.iter().enumerate() {
            // Alternate directions; pings interleave.
            let (from, to) = if i % 2 == 0 { (&mut client, &mut server) } else { (&mut server, &mut client) };
            from.send(m.clone()).unwrap();
            from.send(Message::Ping(Bytes::from_static(b"x"))).unwrap();
            let wire = drain(from);
            for (j, (h, _)) in frames(&wire).iter().enumerate() {
                prop_assert!(h.rsv == 0 || (h.rsv == 0x40 && j == 0 && !h.opcode.is_control()));
            }
            let got = deliver(to, &wire, &cuts);
            let want = vec![m.clone(), Message::Ping(Bytes::from_static(b"x"))];
            prop_assert_eq!(got, want);
            drain(to); // the pong
        }
        // Sending whole messages in one direction too (context takeover
        // across several messages in a row).
        for m in &messages {
            client.send(m.clone()).unwrap();
        }
        let wire = drain(&mut client);
        prop_assert_eq!(deliver(&mut server, &wire, &cuts), messages.clone());
    }

    #[test]
    fn peer_fragmentation_of_a_compressed_message(
        p in arb_params(),
        msg in arb_message(),
        splits in prop::collection::vec(any::<usize>(), 0..5),
    ) {
        // A peer (the client here) may split its compressed payload at any
        // byte into frames; only the first carries RSV1.
        let cfg = DeflateConfig { min_size: 0, ..DeflateConfig::default() };
        let mut ext = DeflateExtension::new(Role::Client, p, &cfg);
        let (kind, payload) = match &msg {
            Message::Text(t) => (DataKind::Text, t.as_bytes().clone()),
            Message::Binary(b) => (DataKind::Binary, b.clone()),
            _ => unreachable!(),
        };
        let (rsv, data) = ext.encode(kind, payload).unwrap();
        let mut bounds: Vec<usize> = splits.iter().map(|s| s % (data.len() + 1)).collect();
        bounds.sort_unstable();
        bounds.dedup();
        bounds.push(data.len());
        let mut server = server_with(p, Config::default());
        let mut start = 0;
        let n = bounds.len();
        for (i, end) in bounds.into_iter().enumerate() {
            let opcode = if i > 0 { 0 } else if kind == DataKind::Text { 1 } else { 2 };
            server.receive(&client_frame(i + 1 == n, if i == 0 { rsv } else { 0 }, opcode, &data[start..end]));
            start = end;
        }
        prop_assert_eq!(all_messages(&mut server).unwrap(), vec![msg]);
    }
}
