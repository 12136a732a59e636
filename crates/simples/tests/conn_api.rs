//! The `Conn` interface: request getters (query, params, headers, cookies,
//! ip, languages) and responses (status, type, headers, cookies, redirect,
//! text, bytes, JSON, streams, files).

mod common;

use bytes::Bytes;
use common::*;
use serde::Deserialize;
use simples::{Conn, Cookie, SameSite};

/// `reply` is a 400 whose text gives `reason`.
fn assert_400(reply: &Reply, reason: &str) {
    assert_eq!(reply.status, 400);
    assert!(reply.text().contains(reason), "{}", reply.text());
}

#[tokio::test]
async fn request_getters() {
    #[derive(Deserialize)]
    struct Page {
        page: u32,
        sort: String,
    }
    let mut s = server();
    s.get("/info/:name", |conn: Conn| async move {
        let page: Page = conn.query_as()?;
        let body = serde_json::json!({
            "method": conn.method().as_str(),
            "path": conn.path(),
            "name": conn.param("name"),
            "q": conn.query("q"),
            "all_tags": conn.query_pairs().iter().filter(|(k, _)| k == "tag").map(|(_, v)| v.clone()).collect::<Vec<_>>(),
            "page": page.page,
            "sort": page.sort,
            "ua": conn.header("user-agent"),
            "ip": conn.ip().to_string(),
            "host": conn.host(),
            "langs": conn.languages(),
            "secure": conn.is_secure(),
        });
        Ok::<_, simples::Error>(conn.json_response(&body))
    });
    let r = start(s).await;
    let reply = send(
        r.local_addr(),
        req("GET", "/info/bob?q=a%20b&tag=x&tag=y&page=2&sort=asc")
            .header("user-agent", "tester/1")
            .header("accept-language", "fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5, xx;q=0"),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/info/bob");
    assert_eq!(v["name"], "bob");
    assert_eq!(v["q"], "a b");
    assert_eq!(v["all_tags"], serde_json::json!(["x", "y"]));
    assert_eq!(v["page"], 2);
    assert_eq!(v["sort"], "asc");
    assert_eq!(v["ua"], "tester/1");
    assert_eq!(v["ip"], "127.0.0.1");
    assert_eq!(v["host"], "localhost");
    assert_eq!(v["langs"], serde_json::json!(["fr-CH", "fr", "en", "de"]));
    assert_eq!(v["secure"], false);

    // A query that does not fit the type is a 400 with the reason.
    let bad = get(r.local_addr(), "/info/bob?page=x&sort=a").await;
    assert_400(&bad, "invalid query string");
}

#[tokio::test]
async fn cookies_read_and_set() {
    let mut s = server();
    s.get("/cookies", |mut conn: Conn| async move {
        let theme = conn.cookie("theme").unwrap_or("none").to_string();
        let strict = conn.try_cookie("theme")?.map(str::to_string);
        conn.set_cookie(
            Cookie::build(("visited", "yes"))
                .path("/")
                .http_only(true)
                .secure(true)
                .same_site(SameSite::Strict)
                .max_age(cookie::time::Duration::seconds(60)),
        );
        conn.set_cookie(Cookie::new("note", "a b;c"));
        conn.remove_cookie("old");
        Ok::<_, simples::Error>(conn.send(format!("{theme}/{strict:?}")))
    });
    let r = start(s).await;
    let a = r.local_addr();
    let reply = send(a, req("GET", "/cookies").header("cookie", "theme=dark; lang=en")).await;
    assert_eq!(reply.text(), "dark/Some(\"dark\")");
    let set = reply.header_all("set-cookie");
    assert_eq!(set.len(), 3, "{set:?}");
    assert!(set[0].starts_with("visited=yes"));
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/", "Max-Age=60"] {
        assert!(set[0].contains(attr), "{attr} in {}", set[0]);
    }
    assert!(set[1].starts_with("note=a%20b%3Bc"), "values are encoded: {}", set[1]);
    assert!(set[2].starts_with("old=") && set[2].contains("Max-Age=0"), "{}", set[2]);

    // Percent-encoded cookie values are decoded.
    let reply = send(a, req("GET", "/cookies").header("cookie", "theme=l%20ight")).await;
    assert!(reply.text().starts_with("l ight/"));

    // A malformed Cookie header: lenient getter sees nothing, strict one is 400.
    let reply = send(a, req("GET", "/cookies").header("cookie", "=novalue; theme")).await;
    assert_400(&reply, "malformed Cookie header");
}

#[tokio::test]
async fn response_builders() {
    let mut s = server();
    s.get("/status", |mut conn: Conn| async move {
        conn.set_status(201).set_header("x-custom", "1").set_type("csv");
        conn.send("a,b\n")
    });
    s.get("/bytes", |conn: Conn| async move { conn.send(vec![0u8, 159, 146, 150]) });
    s.get("/json", |conn: Conn| async move { conn.json_response(&serde_json::json!({"ok": true})) });
    s.get("/redirect", |conn: Conn| async move { conn.redirect("/target") });
    s.get("/moved", |conn: Conn| async move { conn.redirect_with(301, "https://example.com/") });
    s.get("/stream", |conn: Conn| async move {
        let chunks = (0..5).map(|i| Ok::<_, std::io::Error>(Bytes::from(format!("chunk{i};"))));
        conn.stream(futures_util::stream::iter(chunks))
    });
    s.get("/empty", |mut conn: Conn| async move {
        conn.set_status(204);
        conn.end()
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.json");
    std::fs::write(&file, b"{\"from\":\"file\"}").unwrap();
    s.get("/file", move |conn: Conn| {
        let file = file.clone();
        async move { conn.file(file).await }
    });
    s.get("/missing-file", |conn: Conn| async move { conn.file("/definitely/not/here").await });
    let r = start(s).await;
    let a = r.local_addr();

    let st = get(a, "/status").await;
    assert_eq!(st.status, 201);
    assert_eq!(st.header("x-custom"), Some("1"));
    assert_eq!(st.header("content-type"), Some("text/csv; charset=utf-8"));

    let b = get(a, "/bytes").await;
    assert_eq!(b.header("content-type"), Some("application/octet-stream"));
    assert_eq!(&b.body[..], &[0u8, 159, 146, 150]);

    let j = get(a, "/json").await;
    assert_eq!(j.text(), r#"{"ok":true}"#);

    let rd = get(a, "/redirect").await;
    assert_eq!((rd.status, rd.header("location")), (302, Some("/target")));
    let mv = get(a, "/moved").await;
    assert_eq!((mv.status, mv.header("location")), (301, Some("https://example.com/")));

    let stream = get(a, "/stream").await;
    assert_eq!(stream.header("transfer-encoding"), Some("chunked"));
    assert_eq!(stream.text(), "chunk0;chunk1;chunk2;chunk3;chunk4;");

    let e = get(a, "/empty").await;
    assert_eq!(e.status, 204);

    let f = get(a, "/file").await;
    assert_eq!(f.header("content-type"), Some("application/json; charset=utf-8"));
    assert_eq!(f.text(), r#"{"from":"file"}"#);
    assert!(f.header("etag").is_some());
    assert_eq!(get(a, "/missing-file").await.status, 404);
}
