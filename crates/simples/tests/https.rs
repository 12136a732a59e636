//! HTTPS from PEM files (a certificate made at test time with rcgen), HTTP
//! and HTTPS mirrors serving the same hosts, `Secure` session cookies.

mod common;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use simples::{Conn, Server, SessionConfig, Tls};

fn https_req(path: &str) -> http::Request<Full<Bytes>> {
    http::Request::builder().uri(path).header("host", "localhost").body(Full::new(Bytes::new())).unwrap()
}

#[tokio::test]
async fn https_and_a_plain_mirror_serve_the_same_hosts() {
    let (cert, key, der) = test_cert();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();

    let mut s = Server::https("127.0.0.1:0", Tls::from_pem_files(&cert_path, &key_path).unwrap());
    s.mirror("127.0.0.1:0");
    s.get("/", |conn: Conn| async move {
        let secure = conn.is_secure();
        conn.send(format!("secure={secure}"))
    });
    s.options_mut().session = Some(SessionConfig::default());
    s.get("/login", |mut conn: Conn| async move {
        conn.session().await?.set("user", "ada")?;
        Ok::<_, simples::Error>(conn.send("in"))
    });
    let r = start(s).await;
    let [tls_addr, plain_addr] = r.addrs()[..] else { panic!("two listeners") };
    let connector = tls_connector(&der);

    assert_eq!(send_tls(tls_addr, &connector, https_req("/")).await.text(), "secure=true");
    assert_eq!(get(plain_addr, "/").await.text(), "secure=false");

    let login = send_tls(tls_addr, &connector, https_req("/login")).await;
    let cookie = login.header("set-cookie").unwrap();
    assert!(cookie.contains("Secure") && cookie.contains("HttpOnly"), "{cookie}");
    let plain_login = get(plain_addr, "/login").await;
    assert!(!plain_login.header("set-cookie").unwrap().contains("Secure"));

    // A plain-text client on the TLS port does not hurt the server.
    let junk = raw(tls_addr, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(!junk.contains("secure="));
    assert_eq!(send_tls(tls_addr, &connector, https_req("/")).await.text(), "secure=true");
}

#[test]
fn bad_pem_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let err = Tls::from_pem_files(&empty, &empty).expect_err("refused");
    assert_eq!(err.kind(), simples::ErrorKind::Tls);
    let err = Tls::from_pem_files(dir.path().join("missing.pem"), &empty).expect_err("refused");
    assert!(err.to_string().contains("missing.pem"), "{err}");
    let (cert, key, _) = test_cert();
    assert!(Tls::from_pem(cert.as_bytes(), key.as_bytes()).is_ok());
    let (_, other_key, _) = test_cert();
    assert!(Tls::from_pem(cert.as_bytes(), other_key.as_bytes()).is_err(), "mismatched key");
}
