//! Request bodies: bytes, text, JSON, urlencoded forms, multipart with
//! files; limits (413 by Content-Length and while streaming) and bad input
//! (400, 415), after which the server keeps serving.

mod common;

use common::*;
use serde::{Deserialize, Serialize};
use simples::{Conn, Error};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[derive(Debug, Deserialize, Serialize)]
struct Login {
    user: String,
    age: u8,
}

fn body_server() -> simples::Server {
    let mut s = server();
    s.options_mut().body_limit = 1024;
    s.post("/bytes", |mut conn: Conn| async move {
        let b = conn.bytes().await?;
        Ok::<_, Error>(conn.send(format!("{} bytes", b.len())))
    });
    s.post("/text", |mut conn: Conn| async move {
        let t = conn.text().await?;
        Ok::<_, Error>(conn.send(t.to_uppercase()))
    });
    s.post("/json", |mut conn: Conn| async move {
        let login: Login = conn.json().await?;
        Ok::<_, Error>(conn.json_response(&login))
    });
    s.post("/form", |mut conn: Conn| async move {
        let login: Login = conn.form().await?;
        Ok::<_, Error>(conn.send(format!("{} is {}", login.user, login.age)))
    });
    s.post("/big", |mut conn: Conn| async move {
        conn.set_body_limit(100_000);
        let b = conn.bytes().await?;
        Ok::<_, Error>(conn.send(format!("{} bytes", b.len())))
    });
    s.post("/upload", |mut conn: Conn| async move {
        let mut mp = conn.multipart()?;
        let mut out = Vec::new();
        while let Some(field) = mp.next_field().await? {
            let name = field.name().unwrap_or("").to_string();
            let file = field.file_name().map(str::to_string);
            let ct = field.content_type();
            let data = field.bytes().await?;
            out.push(format!("{name}:{file:?}:{ct:?}:{}", data.len()));
        }
        Ok::<_, Error>(conn.send(out.join("\n")))
    });
    s.post("/twice", |mut conn: Conn| async move {
        conn.bytes().await?;
        conn.bytes().await?;
        Ok::<_, Error>(conn.send("?"))
    });
    s.get("/ok", |conn: Conn| async move { conn.send("ok") });
    s
}

fn post(path: &str) -> http::request::Builder {
    req("POST", path)
}

#[tokio::test]
async fn readers() {
    let r = start(body_server()).await;
    let a = r.local_addr();
    assert_eq!(send_body(a, post("/bytes"), vec![7u8; 1000]).await.text(), "1000 bytes");
    assert_eq!(send_body(a, post("/text"), "shout").await.text(), "SHOUT");
    let j = send_body(a, post("/json").header("content-type", "application/json"), r#"{"user":"ada","age":36}"#).await;
    assert_eq!(j.text(), r#"{"user":"ada","age":36}"#);
    let f = send_body(
        a,
        post("/form").header("content-type", "application/x-www-form-urlencoded"),
        "user=Ada+L%C3%B6velace&age=36",
    )
    .await;
    assert_eq!(f.text(), "Ada Lövelace is 36");
    assert_eq!(send_body(a, post("/big"), vec![1u8; 50_000]).await.text(), "50000 bytes");
}

#[tokio::test]
async fn bad_bodies_are_4xx_with_a_reason() {
    let r = start(body_server()).await;
    let a = r.local_addr();
    let cases: Vec<(&str, http::request::Builder, Vec<u8>, u16, &str)> = vec![
        ("too large", post("/bytes"), vec![0; 2000], 413, "larger than 1024 bytes"),
        ("too large text", post("/text"), vec![b'a'; 1025], 413, "larger than 1024"),
        ("per-route limit", post("/big"), vec![0; 100_001], 413, "larger than 100000"),
        ("not utf-8", post("/text"), vec![0xff, 0xfe], 400, "not valid UTF-8"),
        ("bad json", post("/json"), b"{\"user\": ".to_vec(), 400, "invalid JSON"),
        ("wrong json shape", post("/json"), br#"{"user":"ada","age":999}"#.to_vec(), 400, "invalid JSON"),
        ("bad form", post("/form"), b"user=ada&age=old".to_vec(), 400, "invalid form"),
        (
            "form content type",
            post("/form").header("content-type", "application/json"),
            b"{}".to_vec(),
            415,
            "x-www-form-urlencoded",
        ),
        ("not multipart", post("/upload").header("content-type", "text/plain"), b"x".to_vec(), 415, "multipart"),
        (
            "broken multipart",
            post("/upload").header("content-type", "multipart/form-data; boundary=XYZ"),
            b"--XYZ\r\nno headers end".to_vec(),
            400,
            "invalid multipart",
        ),
        ("body read twice", post("/twice"), b"x".to_vec(), 500, "already read"),
    ];
    for (what, builder, body, status, reason) in cases {
        let reply = send_body(a, builder, body).await;
        assert_eq!(reply.status, status, "{what}: {}", reply.text());
        assert!(reply.text().contains(reason), "{what}: {}", reply.text());
    }
    assert_eq!(get(a, "/ok").await.text(), "ok");
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413() {
    let r = start(body_server()).await;
    let mut stream = tokio::net::TcpStream::connect(r.local_addr()).await.unwrap();
    let mut request = b"POST /bytes HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for _ in 0..3 {
        request.extend_from_slice(b"200\r\n");
        request.extend_from_slice(&[b'x'; 0x200]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert_eq!(get(r.local_addr(), "/ok").await.text(), "ok");
}

#[tokio::test]
async fn multipart_with_files() {
    let r = start(body_server()).await;
    let a = r.local_addr();
    let body = "--B\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello\r\n\
                --B\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nfile content\r\n\
                --B--\r\n";
    let reply = send_body(a, post("/upload").header("content-type", "multipart/form-data; boundary=B"), body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "title:None:None:5\ndoc:Some(\"a.txt\"):Some(\"text/plain\"):12");

    let big = format!(
        "--B\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"big.bin\"\r\n\r\n{}\r\n--B--\r\n",
        "x".repeat(5000)
    );
    let reply = send_body(a, post("/upload").header("content-type", "multipart/form-data; boundary=B"), big).await;
    assert_eq!(reply.status, 413, "{}", reply.text());
}
