//! The router against `matchit` (axum's router): what differs for the
//! framework's route syntax, and the lookup time with 10 and 100 routes.
//! Run with
//! `cargo test --release -p simples --lib router_bench -- --ignored --nocapture`;
//! the figures are quoted in `router.rs`'s module doc.

use std::time::Instant;

use http::Method;

use super::{Found, Router};

/// The framework's pattern in matchit's syntax (`:x` -> `{x}`, a final
/// `*` -> `{*tail}`).
fn to_matchit(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|s| match s {
            "*" => "{*tail}".to_string(),
            s if s.starts_with(':') => format!("{{{}}}", &s[1..]),
            s => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The routes of one path pattern: each one's method and index.
type ByMethod = Vec<(Option<Method>, usize)>;

/// A matchit table with the framework's method handling on top: one entry
/// per path pattern, the routes of each method in it.
struct Matchit {
    inner: matchit::Router<ByMethod>,
}

impl Matchit {
    fn new(routes: &[(Option<Method>, String)]) -> Result<Matchit, matchit::InsertError> {
        let mut grouped: Vec<(String, ByMethod)> = Vec::new();
        for (i, (m, p)) in routes.iter().enumerate() {
            let p = to_matchit(p);
            match grouped.iter_mut().find(|(q, _)| *q == p) {
                Some((_, list)) => list.push((m.clone(), i)),
                None => grouped.push((p, vec![(m.clone(), i)])),
            }
        }
        let mut inner = matchit::Router::new();
        for (p, list) in grouped {
            inner.insert(p, list)?;
        }
        Ok(Matchit { inner })
    }

    /// The route index and the decoded parameters, as `Router::find` gives.
    fn find(&self, method: &Method, path: &str) -> Option<(usize, Vec<(String, String)>)> {
        let m = self.inner.at(path).ok()?;
        let (_, i) = m.value.iter().find(|(rm, _)| rm.as_ref().map_or(true, |rm| rm == method))?;
        let params = m
            .params
            .iter()
            .map(|(k, v)| (if k == "tail" { "*" } else { k }.to_string(), percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned()))
            .collect();
        Some((*i, params))
    }
}

fn ours(routes: &[(Option<Method>, String)]) -> Router<usize> {
    let mut r = Router::default();
    for (i, (m, p)) in routes.iter().enumerate() {
        r.add(m.clone(), p, i);
    }
    r
}

fn found(r: &Router<usize>, method: &Method, path: &str) -> Option<(usize, Vec<(String, String)>)> {
    match r.find(method, path) {
        Found::Route(i, params) => Some((*i, params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())),
        _ => None,
    }
}

fn api(n: usize) -> Vec<(Option<Method>, String)> {
    let mut routes = Vec::new();
    for i in 0..n / 4 {
        routes.push((Some(Method::GET), format!("/api/r{i}")));
        routes.push((Some(Method::GET), format!("/api/r{i}/:id")));
        routes.push((Some(Method::POST), format!("/api/r{i}/:id/items")));
        routes.push((Some(Method::GET), format!("/api/r{i}/:id/items/:item")));
    }
    routes.truncate(n - 1);
    routes.push((Some(Method::GET), "/static/*".to_string()));
    routes
}

#[test]
fn where_matchit_differs() {
    let routes = |list: &[&str]| list.iter().map(|p| (Some(Method::GET), p.to_string())).collect::<Vec<_>>();
    // The same answers on plain routes.
    let plain = api(40);
    let (a, b) = (ours(&plain), Matchit::new(&plain).unwrap());
    for path in ["/api/r3", "/api/r3/42", "/api/r9/a%20b/items/7", "/static/css/site.css", "/nope"] {
        assert_eq!(found(&a, &Method::GET, path), b.find(&Method::GET, path), "{path}");
    }
    // 1. A wildcard matches an empty tail here (`/files/` serves the
    //    directory's index); matchit's catch-all needs one character.
    let r = routes(&["/files/*"]);
    assert!(found(&ours(&r), &Method::GET, "/files/").is_some());
    assert!(Matchit::new(&r).unwrap().find(&Method::GET, "/files/").is_none());
    // 2. Fixed segments are compared decoded here (`/caf%C3%A9` is the
    //    route `/café`); matchit compares the raw bytes.
    let r = routes(&["/café/:x"]);
    assert!(found(&ours(&r), &Method::GET, "/caf%C3%A9/1").is_some());
    assert!(Matchit::new(&r).unwrap().find(&Method::GET, "/caf%C3%A9/1").is_none());
    // 3. Priority: matchit prefers a fixed segment to a parameter whatever
    //    the order; here fixed routes win, patterns in the order added.
    let r = routes(&["/a/:x/c", "/a/b/:y"]);
    assert_eq!(found(&ours(&r), &Method::GET, "/a/b/c").unwrap().0, 0);
    assert_eq!(Matchit::new(&r).unwrap().find(&Method::GET, "/a/b/c").unwrap().0, 1);
}

/// Both routers find the same route with the same parameters on the
/// benchmark's paths; the timings are printed (a measurement, not a check:
/// `SIMPLES_MEASURE=1 cargo test --release -p simples router_bench --
/// --nocapture` for the full rounds; without it, a few rounds only).
#[test]
fn router_bench() {
    let rounds = if std::env::var_os("SIMPLES_MEASURE").is_some() { 200_000 } else { 200 };
    for n in [10, 100] {
        let routes = api(n);
        let (a, b) = (ours(&routes), Matchit::new(&routes).unwrap());
        let last = n / 4 - 1;
        let paths = [
            format!("/api/r{last}/42/items/7"),
            "/api/r0/1".to_string(),
            format!("/api/r{}", last / 2),
            "/static/css/site.css".to_string(),
            "/nope/x".to_string(),
        ];
        for path in &paths {
            assert_eq!(found(&a, &Method::GET, path), b.find(&Method::GET, path), "{n} routes, {path}");
            let t = Instant::now();
            for _ in 0..rounds {
                std::hint::black_box(found(&a, &Method::GET, std::hint::black_box(path)));
            }
            let ours_ns = t.elapsed().as_nanos() as f64 / rounds as f64;
            let t = Instant::now();
            for _ in 0..rounds {
                std::hint::black_box(b.find(&Method::GET, std::hint::black_box(path)));
            }
            let matchit_ns = t.elapsed().as_nanos() as f64 / rounds as f64;
            println!("{n:>3} routes  {path:<28} ours {ours_ns:>7.0} ns   matchit {matchit_ns:>7.0} ns");
        }
    }
}
