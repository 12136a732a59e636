//! Static files: content types, index files, ETag / Last-Modified with 304,
//! ranges (206, 416, If-Range), HEAD, and every kind of path traversal
//! (`..`, percent-encoded dots and slashes, backslashes, NUL, symlinks out
//! of the root, hidden files); the embedded browser client and its
//! TypeScript declarations (`serve_client`).

mod common;

use std::net::SocketAddr;

use common::*;
use simples::StaticOptions;
use tempfile::TempDir;

struct Fixture {
    _dirs: (TempDir, TempDir),
    addr: SocketAddr,
    _running: simples::Running,
}

async fn fixture() -> Fixture {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "top secret").unwrap();
    let root = tempfile::tempdir().unwrap();
    let p = root.path();
    std::fs::write(p.join("hello.txt"), "hello, world").unwrap();
    std::fs::write(p.join("style.css"), "body{}").unwrap();
    std::fs::write(p.join("app.js"), "let a=1;").unwrap();
    std::fs::write(p.join("image.png"), [0x89, b'P', b'N', b'G']).unwrap();
    std::fs::write(p.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(p.join("a b.txt"), "spaced").unwrap();
    std::fs::write(p.join(".env"), "PASSWORD=1").unwrap();
    std::fs::create_dir(p.join("docs")).unwrap();
    std::fs::write(p.join("docs/index.html"), "<h1>docs</h1>").unwrap();
    std::fs::create_dir(p.join("empty")).unwrap();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(p.join("big.bin"), &big).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), p.join("escape.txt")).unwrap();
    std::os::unix::fs::symlink(outside.path(), p.join("outdir")).unwrap();
    std::os::unix::fs::symlink(p.join("hello.txt"), p.join("inside-link.txt")).unwrap();

    let mut s = server();
    s.serve_dir("/static", p);
    s.serve_dir_with("/cached", p, StaticOptions { index: None, dotfiles: false, max_age: Some(60) });
    let running = start(s).await;
    Fixture { addr: running.local_addr(), _dirs: (root, outside), _running: running }
}

#[tokio::test]
async fn content_types_and_index() {
    let f = fixture().await;
    let a = f.addr;
    for (path, ct) in [
        ("/static/hello.txt", "text/plain; charset=utf-8"),
        ("/static/style.css", "text/css; charset=utf-8"),
        ("/static/app.js", "text/javascript; charset=utf-8"),
        ("/static/image.png", "image/png"),
        ("/static/index.html", "text/html; charset=utf-8"),
    ] {
        let r = get(a, path).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(ct), "{path}");
    }
    assert_eq!(get(a, "/static/hello.txt").await.text(), "hello, world");
    assert_eq!(get(a, "/static/a%20b.txt").await.text(), "spaced");
    assert_eq!(get(a, "/static/").await.text(), "<h1>home</h1>");
    assert_eq!(get(a, "/static/docs/").await.text(), "<h1>docs</h1>");
    let redirect = get(a, "/static/docs?x=1").await;
    assert_eq!((redirect.status, redirect.header("location")), (301, Some("/static/docs/?x=1")));
    assert_eq!(get(a, "/static/empty/").await.status, 404, "no index file");
    assert_eq!(get(a, "/cached/").await.status, 404, "index disabled");
    assert_eq!(get(a, "/static/nope.txt").await.status, 404);
    assert_eq!(get(a, "/static/inside-link.txt").await.text(), "hello, world", "symlinks inside are fine");
    assert_eq!(get(a, "/cached/hello.txt").await.header("cache-control"), Some("max-age=60"));
}

#[tokio::test]
async fn etag_last_modified_and_304() {
    let f = fixture().await;
    let a = f.addr;
    let first = get(a, "/static/hello.txt").await;
    let etag = first.header("etag").unwrap().to_string();
    let lm = first.header("last-modified").unwrap().to_string();
    assert!(etag.starts_with('"'));
    assert_eq!(first.header("accept-ranges"), Some("bytes"));

    let r = send(a, req("GET", "/static/hello.txt").header("if-none-match", &etag)).await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));

    let r = send(a, req("GET", "/static/hello.txt").header("if-none-match", format!("\"x\", W/{etag}"))).await;
    assert_eq!(r.status, 304, "weak comparison for If-None-Match");

    let r = send(a, req("GET", "/static/hello.txt").header("if-none-match", "\"other\"")).await;
    assert_eq!(r.status, 200);

    let r = send(a, req("GET", "/static/hello.txt").header("if-modified-since", &lm)).await;
    assert_eq!(r.status, 304);
    let r = send(a, req("GET", "/static/hello.txt").header("if-modified-since", "Mon, 01 Jan 2001 00:00:00 GMT")).await;
    assert_eq!(r.status, 200);
    // If-None-Match wins over If-Modified-Since.
    let r = send(a, req("GET", "/static/hello.txt").header("if-none-match", "\"other\"").header("if-modified-since", &lm)).await;
    assert_eq!(r.status, 200);

    let r = send(a, req("GET", "/static/hello.txt").header("if-match", "\"other\"")).await;
    assert_eq!(r.status, 412);
    let r = send(a, req("GET", "/static/hello.txt").header("if-unmodified-since", "Mon, 01 Jan 2001 00:00:00 GMT")).await;
    assert_eq!(r.status, 412);
}

#[tokio::test]
async fn ranges() {
    let f = fixture().await;
    let a = f.addr;
    let r = send(a, req("GET", "/static/hello.txt").header("range", "bytes=0-4")).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.text(), "hello");
    assert_eq!(r.header("content-range"), Some("bytes 0-4/12"));
    assert_eq!(r.header("content-length"), Some("5"));

    let r = send(a, req("GET", "/static/hello.txt").header("range", "bytes=-5")).await;
    assert_eq!((r.status, r.text().as_str()), (206, "world"));
    let r = send(a, req("GET", "/static/hello.txt").header("range", "bytes=7-")).await;
    assert_eq!((r.status, r.text().as_str()), (206, "world"));

    let r = send(a, req("GET", "/static/hello.txt").header("range", "bytes=12-")).await;
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */12"));

    let r = send(a, req("GET", "/static/hello.txt").header("range", "bytes=0-1,3-4")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello, world"), "multi-range gets the whole file");
    let r = send(a, req("GET", "/static/hello.txt").header("range", "lines=1-2")).await;
    assert_eq!(r.status, 200);

    let etag = get(a, "/static/hello.txt").await.header("etag").unwrap().to_string();
    let r = send(a, req("GET", "/static/hello.txt").header("range", "bytes=0-4").header("if-range", &etag)).await;
    assert_eq!(r.status, 206);
    let r = send(a, req("GET", "/static/hello.txt").header("range", "bytes=0-4").header("if-range", "\"old\"")).await;
    assert_eq!(r.status, 200, "a stale If-Range gets the whole file");

    // A large file is streamed, ranges included.
    let big = get(a, "/static/big.bin").await;
    assert_eq!(big.body.len(), 200_000);
    assert_eq!(big.header("content-length"), Some("200000"));
    let r = send(a, req("GET", "/static/big.bin").header("range", "bytes=100000-100009")).await;
    let expected: Vec<u8> = (100_000..100_010u32).map(|i| (i % 251) as u8).collect();
    assert_eq!((r.status, &r.body[..]), (206, &expected[..]));

    let h = send(a, req("HEAD", "/static/big.bin")).await;
    assert_eq!((h.status, h.body.len()), (200, 0));
    assert_eq!(h.header("content-length"), Some("200000"));
}

#[tokio::test]
async fn traversal_attempts_never_leave_the_root() {
    let f = fixture().await;
    let a = f.addr;
    for path in [
        "/static/../Cargo.toml",
        "/static/docs/../../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E/%2E%2E/etc/passwd",
        "/static/.%2e/secret.txt",
        "/static/%2e%2e%2fsecret.txt",
        "/static/..%2f..%2fetc%2fpasswd",
        "/static/docs%2f..%2f..%2fsecret.txt",
        "/static/..%5c..%5csecret.txt",
        "/static/%5c..%5csecret.txt",
        "/static/hello.txt%00.png",
        "/static/%ff%fe",
    ] {
        let raw_reply = raw(a, format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes()).await;
        let status: u16 = raw_reply.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!((400..500).contains(&status), "{path}: {raw_reply}");
        assert!(!raw_reply.contains("top secret") && !raw_reply.contains("root:"), "{path}");
    }
    // Symlinks pointing out of the root, and hidden files.
    for path in ["/static/escape.txt", "/static/outdir/secret.txt", "/static/.env", "/static/docs/%2e%2e/.env"] {
        let r = get(a, path).await;
        assert!((400..500).contains(&r.status), "{path}: {}", r.status);
        assert!(!r.text().contains("top secret") && !r.text().contains("PASSWORD"), "{path}");
    }
    // The server still serves.
    assert_eq!(get(a, "/static/hello.txt").await.status, 200);
}

#[tokio::test]
async fn serve_client_serves_simples_js_and_its_declarations_beside_it() {
    use simples::ws::{SIMPLES_D_TS, SIMPLES_JS};
    let mut s = server();
    s.serve_client("/simples.js");
    s.serve_client("/assets/client"); // no .js: the declarations get .d.ts appended
    let running = start(s).await;
    let a = running.local_addr();
    for (path, ct, body) in [
        ("/simples.js", "text/javascript; charset=utf-8", SIMPLES_JS),
        ("/simples.d.ts", "text/plain; charset=utf-8", SIMPLES_D_TS),
        ("/assets/client", "text/javascript; charset=utf-8", SIMPLES_JS),
        ("/assets/client.d.ts", "text/plain; charset=utf-8", SIMPLES_D_TS),
    ] {
        let r = get(a, path).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(ct), "{path}");
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{path}");
        assert_eq!(r.text(), body, "{path}");
    }
    assert!(SIMPLES_JS.contains("module.exports = simples"));
    assert!(SIMPLES_D_TS.contains("export = simples;") && SIMPLES_D_TS.contains("export as namespace simples;"));
    assert_eq!(get(a, "/simples.d.js").await.status, 404);
}
