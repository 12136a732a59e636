//! Cookie-identified sessions.
//!
//! The session id is 24 bytes (192 bits) from the operating system's CSPRNG,
//! base64url-encoded (32 characters), sent in a cookie that is `HttpOnly`,
//! `SameSite=Lax`, `Path=/` and `Secure` under HTTPS. The data is a JSON
//! object kept by a [`SessionStore`] (in memory by default) for `ttl` after
//! the last request that used it. A new session is stored (and its cookie
//! sent) only once something is put in it; an id the store does not know
//! is never adopted (no session fixation): a fresh one is made.

#[cfg(feature = "redis")]
mod redis;
mod store;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use http::{header, HeaderValue};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, ErrorKind, Result};
use crate::response::Response;

#[cfg(feature = "redis")]
pub use redis::RedisSessionStore;
pub use store::{MemoryStore, SessionData, SessionStore};

/// Session settings for a host (`HostOptions::session`).
#[derive(Clone)]
pub struct SessionConfig {
    /// Name of the session cookie. Default: `"simples.sid"`.
    pub cookie: String,
    /// How long a session lives after the last request that used it.
    /// Default: 1 hour.
    pub ttl: Duration,
    /// Where sessions are kept. Default: a new [`MemoryStore`].
    pub store: Arc<dyn SessionStore>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            cookie: "simples.sid".into(),
            ttl: Duration::from_secs(3600),
            store: Arc::new(MemoryStore::new()),
        }
    }
}

impl SessionConfig {
    /// Default settings with a time to live of `ttl`.
    pub fn with_ttl(ttl: Duration) -> SessionConfig {
        SessionConfig { ttl, ..SessionConfig::default() }
    }
}

/// A request's session: a cheap handle (clones share the data) with typed
/// access to JSON values.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    id: String,
    data: SessionData,
    is_new: bool,
    destroyed: bool,
    /// The id this session had before `regenerate` (to delete).
    replaced: Option<String>,
}

impl Session {
    fn new(id: String, data: SessionData, is_new: bool) -> Session {
        let inner = Inner { id, data, is_new, destroyed: false, replaced: None };
        Session { inner: Arc::new(Mutex::new(inner)) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session id (as in the cookie).
    pub fn id(&self) -> String {
        self.lock().id.clone()
    }

    /// Whether the session was created by this request.
    pub fn is_new(&self) -> bool {
        self.lock().is_new
    }

    /// The value under `key` as `T`; `None` when absent, a `500` error when
    /// it does not deserialize into `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let inner = self.lock();
        match inner.data.get(key) {
            None => Ok(None),
            Some(v) => T::deserialize(v).map(Some).map_err(|e| {
                Error::from_kind(ErrorKind::Session, format!("session value {key:?} has another type: {e}"))
            }),
        }
    }

    /// Stores `value` under `key` (`500` if it does not serialize).
    pub fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        let value = serde_json::to_value(value)
            .map_err(|e| Error::from_kind(ErrorKind::Session, format!("cannot serialize session value: {e}")))?;
        self.lock().data.insert(key.to_string(), value);
        Ok(())
    }

    /// Removes `key`; whether it was there.
    pub fn remove(&self, key: &str) -> bool {
        self.lock().data.remove(key).is_some()
    }

    /// Removes everything (the session itself stays).
    pub fn clear(&self) {
        self.lock().data.clear();
    }

    /// Ends the session: its data is deleted from the store and the client
    /// is told to drop the cookie.
    pub fn destroy(&self) {
        let mut inner = self.lock();
        inner.destroyed = true;
        inner.data.clear();
    }

    /// Gives the session a new id, keeping its data (call it on login to
    /// defeat session fixation).
    pub fn regenerate(&self) {
        let mut inner = self.lock();
        let old = std::mem::replace(&mut inner.id, new_id());
        if !inner.is_new && inner.replaced.is_none() {
            inner.replaced = Some(old);
        }
        inner.is_new = true;
    }
}

/// A fresh session id: 24 random bytes, base64url without padding.
pub(crate) fn new_id() -> String {
    let mut bytes = [0u8; 24];
    getrandom::getrandom(&mut bytes).expect("the operating system's random generator failed");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Loads the session named by the request's cookie, or makes a new one.
pub(crate) async fn load(config: &SessionConfig, cookie: Option<&str>) -> Result<Session> {
    if let Some(id) = cookie.filter(|id| valid_id(id)) {
        if let Some(data) = config.store.load(id).await? {
            return Ok(Session::new(id.to_string(), data, false));
        }
    }
    Ok(Session::new(new_id(), SessionData::new(), true))
}

/// Saves `session` outside a request (a WebSocket connection): the data is
/// stored (or deleted if destroyed); no cookie can be set any more.
pub(crate) async fn save(config: &SessionConfig, session: &Session) -> Result<()> {
    let (id, data, destroyed, replaced) = {
        let mut inner = session.lock();
        (inner.id.clone(), inner.data.clone(), inner.destroyed, inner.replaced.take())
    };
    if let Some(old) = replaced {
        config.store.destroy(&old).await?;
    }
    if destroyed {
        return config.store.destroy(&id).await;
    }
    config.store.save(&id, data, config.ttl).await
}

/// After the response: saves (or deletes) the session and sets its cookie.
pub(crate) async fn finish(config: &SessionConfig, session: &Session, secure: bool, res: &mut Response) -> Result<()> {
    let (id, data, is_new, destroyed, replaced) = {
        let mut inner = session.lock();
        (inner.id.clone(), inner.data.clone(), inner.is_new, inner.destroyed, inner.replaced.take())
    };
    if let Some(old) = replaced {
        config.store.destroy(&old).await?;
    }
    if destroyed {
        config.store.destroy(&id).await?;
        if !is_new {
            set_cookie(config, res, "", secure, true);
        }
        return Ok(());
    }
    if is_new && data.is_empty() {
        return Ok(());
    }
    config.store.save(&id, data, config.ttl).await?;
    if is_new {
        set_cookie(config, res, &id, secure, false);
    }
    Ok(())
}

fn set_cookie(config: &SessionConfig, res: &mut Response, id: &str, secure: bool, removal: bool) {
    let mut c = cookie::Cookie::build((config.cookie.clone(), id.to_string()))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .secure(secure)
        .build();
    if removal {
        c.make_removal();
    }
    if let Ok(v) = HeaderValue::from_str(&c.to_string()) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}
