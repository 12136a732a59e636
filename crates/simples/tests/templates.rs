//! Templates: the minijinja engine from a folder (inheritance, escaping),
//! `Conn::render`, errors, and direct use of the engine.

mod common;

use common::*;
use serde::Serialize;
use simples::{Conn, MiniJinja, TemplateEngine};

#[derive(Serialize)]
struct Page {
    title: String,
    items: Vec<&'static str>,
}

fn template_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("base.html"), "<title>{{ title }}</title>{% block body %}{% endblock %}").unwrap();
    std::fs::write(
        dir.path().join("list.html"),
        "{% extends \"base.html\" %}{% block body %}<ul>{% for i in items %}<li>{{ i }}</li>{% endfor %}</ul>{% endblock %}",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("ws")).unwrap();
    std::fs::write(dir.path().join("ws/message.txt"), "{{ user }} says {{ text }}").unwrap();
    std::fs::write(dir.path().join("broken.html"), "{% for %}").unwrap();
    dir
}

#[tokio::test]
async fn render_from_a_folder() {
    let dir = template_dir();
    let mut s = server();
    s.templates(MiniJinja::from_dir(dir.path()));
    s.get("/list", |conn: Conn| async move {
        let page = Page { title: "Tom & Jerry".into(), items: vec!["<b>a</b>", "b"] };
        conn.render("list.html", &page)
    });
    s.get("/missing", |conn: Conn| async move { conn.render("nope.html", &()) });
    s.get("/broken", |conn: Conn| async move { conn.render("broken.html", &()) });
    let r = start(s).await;
    let a = r.local_addr();
    let list = get(a, "/list").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(list.text(), "<title>Tom &amp; Jerry</title><ul><li>&lt;b&gt;a&lt;&#x2f;b&gt;</li><li>b</li></ul>");

    let missing = get(a, "/missing").await;
    assert_eq!(missing.status, 500);
    assert!(missing.text().contains("template error"), "{}", missing.text());
    assert_eq!(get(a, "/broken").await.status, 500);
}

#[tokio::test]
async fn no_engine_is_a_clear_500() {
    let mut s = server();
    s.get("/", |conn: Conn| async move { conn.render("x.html", &()) });
    let r = start(s).await;
    let reply = get(r.local_addr(), "/").await;
    assert_eq!(reply.status, 500);
    assert!(reply.text().contains("no template engine"));
}

#[test]
fn the_engine_renders_outside_http() {
    let dir = template_dir();
    let engine = MiniJinja::from_dir(dir.path());
    let msg = engine.render_with("ws/message.txt", &serde_json::json!({"user": "ada", "text": "<hi>"})).unwrap();
    assert_eq!(msg, "ada says <hi>", "no HTML escaping for .txt");

    let mut inline = MiniJinja::new();
    inline.add_template("hello", "Hello {{ name }}!").unwrap();
    assert_eq!(inline.render("hello", &serde_json::json!({"name": "world"})).unwrap(), "Hello world!");
    assert!(inline.add_template("bad", "{{").is_err());
}
