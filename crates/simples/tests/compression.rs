//! Compression: off by default; br, gzip and deflate negotiated from
//! Accept-Encoding q-values; small, binary, ranged and HEAD responses left
//! alone.

mod common;

use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZlibDecoder};
use common::*;
use simples::Conn;
use tokio::io::AsyncReadExt as _;

fn text() -> String {
    "simpleS is simple. ".repeat(200)
}

fn app(compression: bool) -> simples::Server {
    let mut s = server();
    s.options_mut().compression = compression;
    s.get("/text", |conn: Conn| async move { conn.send(text()) });
    s.get("/small", |conn: Conn| async move { conn.send("tiny") });
    s.get("/binary", |mut conn: Conn| async move {
        conn.set_type("png");
        conn.send(vec![0u8; 4096])
    });
    s.get("/json", |conn: Conn| async move { conn.json_response(&vec!["value"; 300]) });
    s
}

async fn decode(coding: &str, data: &[u8]) -> String {
    let mut out = String::new();
    match coding {
        "br" => BrotliDecoder::new(data).read_to_string(&mut out).await.unwrap(),
        "gzip" => GzipDecoder::new(data).read_to_string(&mut out).await.unwrap(),
        "deflate" => ZlibDecoder::new(data).read_to_string(&mut out).await.unwrap(),
        other => panic!("unexpected coding {other}"),
    };
    out
}

#[tokio::test]
async fn off_by_default() {
    let r = start(app(false)).await;
    let reply = send(r.local_addr(), req("GET", "/text").header("accept-encoding", "gzip, br")).await;
    assert!(reply.header("content-encoding").is_none());
    assert_eq!(reply.text(), text());
}

#[tokio::test]
async fn negotiated_from_q_values() {
    let r = start(app(true)).await;
    let a = r.local_addr();
    for (accept, expected) in [
        ("gzip, deflate, br", Some("br")),
        ("gzip", Some("gzip")),
        ("deflate", Some("deflate")),
        ("br;q=0.5, gzip;q=0.8", Some("gzip")),
        ("gzip;q=0, deflate;q=0.1", Some("deflate")),
        ("*", Some("br")),
        ("*;q=0.5, br;q=0", Some("gzip")),
        ("identity", None),
        ("br;q=0, gzip;q=0, deflate;q=0", None),
    ] {
        let reply = send(a, req("GET", "/text").header("accept-encoding", accept)).await;
        assert_eq!(reply.header("content-encoding"), expected, "{accept}");
        match expected {
            Some(coding) => {
                assert!(reply.body.len() < text().len() / 4, "{accept}: actually compressed");
                assert_eq!(decode(coding, &reply.body).await, text(), "{accept}");
                assert!(reply.header_all("vary").iter().any(|v| v == "Accept-Encoding"));
                assert!(reply.header("content-length").is_none());
            }
            None => assert_eq!(reply.text(), text()),
        }
    }
    let none = get(a, "/text").await;
    assert!(none.header("content-encoding").is_none(), "no Accept-Encoding, no compression");

    let json = send(a, req("GET", "/json").header("accept-encoding", "gzip")).await;
    assert_eq!(json.header("content-encoding"), Some("gzip"));
}

#[tokio::test]
async fn skipped_where_it_does_not_help() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("page.html"), text()).unwrap();
    let mut s = app(true);
    s.serve_dir("/files", dir.path());
    let r = start(s).await;
    let a = r.local_addr();
    let gz = |p: &str| req("GET", p).header("accept-encoding", "gzip");
    assert!(send(a, gz("/small")).await.header("content-encoding").is_none(), "tiny body");
    assert!(send(a, gz("/binary")).await.header("content-encoding").is_none(), "binary type");
    let ranged = send(a, gz("/files/page.html").header("range", "bytes=0-99")).await;
    assert_eq!(ranged.status, 206);
    assert!(ranged.header("content-encoding").is_none(), "ranges are not compressed");
    let head = send(a, req("HEAD", "/text").header("accept-encoding", "gzip")).await;
    assert!(head.header("content-encoding").is_none());

    let file = send(a, gz("/files/page.html")).await;
    assert_eq!(file.header("content-encoding"), Some("gzip"));
    assert!(file.header("etag").unwrap().starts_with("W/"), "a compressed file's ETag is weak");
    assert_eq!(decode("gzip", &file.body).await, text());
}
