//! Routing: path patterns and the per-host route table.
//!
//! A pattern is a path whose segments are fixed text, `:name` (one
//! segment, captured as a parameter) or a final `*` (the rest of the path,
//! possibly empty, captured as the parameter `"*"`). Fixed paths are found
//! with one hash lookup and win over patterns; patterns are tried in the
//! order they were added. Parameters are percent-decoded.
//!
//! ## Why not `matchit` (yet)
//!
//! Measured against `matchit` 0.8 (axum's router; `router_bench.rs`, an
//! API-like table of N routes: fixed, `:id`, `:id/items`,
//! `:id/items/:item`, and `/static/*`; test profile, this module built at
//! opt-level 1 and matchit at 2, so the gap is smaller in release; ns per
//! lookup):
//!
//! ```text
//!   routes  path                     here   matchit
//!    10     /api/r1/42/items/7       1160     350
//!    10     /api/r0 (fixed)            84     124
//!    10     /static/css/site.css      722     269
//!    10     /nope/x (404)             290      26
//!   100     /api/r24/42/items/7      2982      67
//!   100     /api/r12 (fixed)           95     110
//!   100     /static/css/site.css     2383     274
//!   100     /nope/x (404)            1804      12
//! ```
//!
//! matchit wins on patterns (the scan here is linear: 1-3 µs at 100
//! routes), this table on fixed paths (one hash lookup). It is kept for
//! now because matchit's answers differ from the framework's route syntax
//! in three ways the tests pin down (`where_matchit_differs`): a final `*`
//! here also matches an empty tail (`/static/` serves the index; matchit's
//! catch-all needs a character), fixed segments are compared decoded here
//! (`/caf%C3%A9` is the route `/café`), and overlapping patterns are tried
//! in the order added here but by specificity there. The next step is a
//! hybrid: this hash map for fixed paths, matchit for patterns, with the
//! empty tail registered as its own route and the specificity order
//! documented as a change.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use http::Method;
use percent_encoding::percent_decode_str;

/// Route parameters (`:name` segments and the `*` tail), percent-decoded.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(Arc<str>, String)>,
    /// The `*` tail exactly as sent (not decoded), for static files.
    pub(crate) tail_raw: Option<String>,
}

/// No parameters, for whoever keeps `Option<Box<Params>>` to stay small.
pub(crate) static NO_PARAMS: Params = Params { pairs: Vec::new(), tail_raw: None };

impl Params {
    /// The value of parameter `name` (`"*"` for the wildcard tail).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| &**k == name).map(|(_, v)| v.as_str())
    }

    /// All `(name, value)` pairs in pattern order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (&**k, v.as_str()))
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Parameters without a raw tail (which only static files read).
    pub(crate) fn from_pairs(pairs: Vec<(Arc<str>, String)>) -> Params {
        Params { pairs, tail_raw: None }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Fixed(String),
    Param(Arc<str>),
    /// The `*` tail; its name (`"*"`) made once, shared by every match.
    Tail(Arc<str>),
}

/// A parsed route pattern.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    segments: Vec<Segment>,
}

impl Pattern {
    pub(crate) fn parse(pattern: &str) -> Pattern {
        let trimmed = pattern.strip_prefix('/').unwrap_or(pattern);
        let parts: Vec<&str> = trimmed.split('/').collect();
        let last = parts.len() - 1;
        let segments = parts
            .iter()
            .enumerate()
            .map(|(i, s)| match *s {
                "*" if i == last => Segment::Tail(Arc::from("*")),
                s if s.len() > 1 && s.starts_with(':') => Segment::Param(Arc::from(&s[1..])),
                s => Segment::Fixed(s.to_string()),
            })
            .collect();
        Pattern { segments }
    }

    /// The path when the pattern has no parameter and no tail.
    fn fixed_path(&self) -> Option<String> {
        let mut path = String::new();
        for s in &self.segments {
            match s {
                Segment::Fixed(f) => {
                    path.push('/');
                    path.push_str(f);
                }
                _ => return None,
            }
        }
        Some(if path.is_empty() { "/".into() } else { path })
    }

    /// Matches the raw (still percent-encoded) segments of a path.
    pub(crate) fn matches(&self, raw: &[&str]) -> Option<Params> {
        let mut params = Params::default();
        for (i, seg) in self.segments.iter().enumerate() {
            match seg {
                Segment::Tail(name) => {
                    let tail = raw[i.min(raw.len())..].join("/");
                    params.pairs.push((name.clone(), decode(&tail).into_owned()));
                    params.tail_raw = Some(tail);
                    return Some(params);
                }
                _ if i >= raw.len() => return None,
                Segment::Fixed(f) => {
                    if decode(raw[i]) != f.as_str() {
                        return None;
                    }
                }
                Segment::Param(name) => params.pairs.push((name.clone(), decode(raw[i]).into_owned())),
            }
        }
        (raw.len() == self.segments.len()).then_some(params)
    }
}

fn decode(s: &str) -> Cow<'_, str> {
    if s.contains('%') {
        percent_decode_str(s).decode_utf8_lossy()
    } else {
        Cow::Borrowed(s)
    }
}

/// A route: the methods it answers (`None`: all of them), its pattern and
/// what it leads to (the host's handler).
pub(crate) struct Route<T> {
    method: Option<Method>,
    pattern: Pattern,
    pub(crate) handler: T,
}

/// The outcome of a lookup.
pub(crate) enum Found<'a, T> {
    /// A route answers; parameters captured.
    Route(&'a T, Params),
    /// The path exists for other methods: these (for `Allow`).
    OtherMethods(Vec<Method>),
    /// No route has this path.
    Nothing,
}

/// One host's route table, leading to values of type `T` (the host's
/// handlers; generic so that routing knows nothing of handlers).
pub(crate) struct Router<T> {
    routes: Vec<Route<T>>,
    fixed: HashMap<String, Vec<usize>>,
    patterns: Vec<usize>,
}

impl<T> Default for Router<T> {
    fn default() -> Self {
        Router { routes: Vec::new(), fixed: HashMap::new(), patterns: Vec::new() }
    }
}

impl<T> Router<T> {
    pub(crate) fn add(&mut self, method: Option<Method>, pattern: &str, handler: T) {
        let pattern = Pattern::parse(pattern);
        let index = self.routes.len();
        match pattern.fixed_path() {
            Some(path) => self.fixed.entry(path).or_default().push(index),
            None => self.patterns.push(index),
        }
        self.routes.push(Route { method, pattern, handler });
    }

    /// Finds the route for `method` and the raw request path.
    pub(crate) fn find(&self, method: &Method, path: &str) -> Found<'_, T> {
        let mut candidates: Vec<(usize, Params)> = Vec::new();
        if let Some(list) = fixed_key(path).and_then(|key| self.fixed.get(key.as_ref())) {
            // Fast path: a fixed route for exactly this method.
            if let Some(&i) = list.iter().find(|&&i| self.routes[i].method.as_ref() == Some(method)) {
                return Found::Route(&self.routes[i].handler, Params::default());
            }
            candidates.extend(list.iter().map(|&i| (i, Params::default())));
        }
        if !self.patterns.is_empty() {
            let raw: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
            for &i in &self.patterns {
                if let Some(params) = self.routes[i].pattern.matches(&raw) {
                    candidates.push((i, params));
                }
            }
        }
        let accepts = |i: usize, m: &Method| match &self.routes[i].method {
            None => true,
            Some(rm) => rm == m,
        };
        let pick = candidates
            .iter()
            .position(|(i, _)| accepts(*i, method))
            .or_else(|| {
                (*method == Method::HEAD)
                    .then(|| candidates.iter().position(|(i, _)| accepts(*i, &Method::GET)))
                    .flatten()
            });
        if let Some(pos) = pick {
            let (i, params) = candidates.swap_remove(pos);
            return Found::Route(&self.routes[i].handler, params);
        }
        if candidates.is_empty() {
            return Found::Nothing;
        }
        let mut allowed: Vec<Method> = Vec::new();
        for (i, _) in &candidates {
            if let Some(m) = &self.routes[*i].method {
                if !allowed.contains(m) {
                    allowed.push(m.clone());
                }
            }
        }
        if allowed.contains(&Method::GET) && !allowed.contains(&Method::HEAD) {
            allowed.push(Method::HEAD);
        }
        Found::OtherMethods(allowed)
    }
}

/// The decoded path used for the fixed-route lookup; `None` when a segment
/// decodes to something containing `/` (it can only match a pattern).
pub(crate) fn fixed_key(path: &str) -> Option<Cow<'_, str>> {
    if !path.contains('%') {
        return Some(Cow::Borrowed(path));
    }
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        let d = decode(seg);
        if d.contains('/') {
            return None;
        }
        if i > 0 {
            out.push('/');
        }
        out.push_str(&d);
    }
    Some(Cow::Owned(out))
}

#[cfg(test)]
#[path = "router_bench.rs"]
mod router_bench;

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, path: &str) -> Option<Vec<(String, String)>> {
        let raw: Vec<&str> = path.strip_prefix('/').unwrap().split('/').collect();
        Pattern::parse(p)
            .matches(&raw)
            .map(|ps| ps.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn patterns() {
        assert_eq!(m("/users/:id", "/users/42").unwrap(), [("id".to_string(), "42".to_string())]);
        assert!(m("/users/:id", "/users/42/x").is_none());
        assert!(m("/users/:id", "/users").is_none());
        assert_eq!(m("/files/*", "/files/a/b%20c").unwrap(), [("*".to_string(), "a/b c".to_string())]);
        assert_eq!(m("/files/*", "/files/").unwrap()[0].1, "");
        assert!(m("/files/*", "/file").is_none());
        assert_eq!(m("/a/:x/:y", "/a/%C3%A9/2").unwrap()[0].1, "é");
    }
}
