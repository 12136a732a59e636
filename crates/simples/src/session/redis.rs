//! [`RedisSessionStore`]: sessions in Redis (feature `redis`), shared by
//! every node of an application.
//!
//! One key per session, `{prefix}:session:{id}`, holding the session's JSON
//! object, written with `SET ... PX ttl` so Redis itself expires it; `GET`
//! reads it back (a value that is not a JSON object is an error, never a
//! panic) and `DEL` destroys it. Every command names one key, so a Redis
//! Cluster works too. The connection is the backplane's kind (see
//! `backplane::redis::connect`): it fails fast while Redis is down (the
//! request gets a `500`) and reconnects in the background.

use std::time::Duration;

use fred::prelude::{Client, ClientLike as _, Expiration, KeysInterface as _};

use crate::backplane::redis::{connect_client, fail_fast, RedisUrl};
use crate::backplane::{BackplaneError, RedisBackplaneOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::handler::BoxFuture;
use crate::session::{SessionData, SessionStore};

/// Sessions in Redis: see the [module documentation](self).
pub struct RedisSessionStore {
    client: Client,
    prefix: String,
}

impl std::fmt::Debug for RedisSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessionStore").field("prefix", &self.prefix).finish()
    }
}

fn store_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::from_kind(ErrorKind::Session, format!("Redis session store: {what}: {e}"))
}

impl RedisSessionStore {
    /// Connects to the Redis at `url` (the forms of
    /// [`RedisBackplaneOptions::url`]); keys are `{prefix}:session:{id}`.
    /// Timeouts and reconnection are the defaults of
    /// [`RedisBackplaneOptions`]. Errors: a bad URL or prefix, Redis
    /// unreachable now.
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisSessionStore> {
        if prefix.is_empty() || prefix.contains(char::is_whitespace) {
            return Err(store_error("bad prefix", format!("{prefix:?} must be non-empty, without spaces")));
        }
        let url = RedisUrl::parse(url).map_err(|e| store_error("cannot connect", e))?;
        let settings = RedisBackplaneOptions::default().client_settings();
        let client = connect_client(&url, &settings).await.map_err(|e: BackplaneError| store_error("cannot connect", e))?;
        Ok(RedisSessionStore { client, prefix: prefix.to_string() })
    }

    fn key(&self, id: &str) -> String {
        format!("{}:session:{id}", self.prefix)
    }
}

impl Drop for RedisSessionStore {
    fn drop(&mut self) {
        // fred's connection task runs until QUIT.
        let client = self.client.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = client.quit().await;
            });
        }
    }
}

impl SessionStore for RedisSessionStore {
    fn load<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<SessionData>>> {
        Box::pin(async move {
            let value: Option<bytes::Bytes> =
                self.client.with_options(&fail_fast()).get(self.key(id)).await.map_err(|e| store_error("GET", e))?;
            match value {
                None => Ok(None),
                Some(bytes) => serde_json::from_slice::<SessionData>(&bytes)
                    .map(Some)
                    .map_err(|e| store_error(&format!("session {id:?} is not a JSON object"), e)),
            }
        })
    }

    fn save<'a>(&'a self, id: &'a str, data: SessionData, ttl: Duration) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let json = serde_json::to_string(&data).map_err(|e| store_error("cannot encode the session", e))?;
            let px = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
            let _: () = self
                .client
                .with_options(&fail_fast())
                .set(self.key(id), json, Some(Expiration::PX(px)), None, false)
                .await
                .map_err(|e| store_error("SET", e))?;
            Ok(())
        })
    }

    fn destroy<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let _: () =
                self.client.with_options(&fail_fast()).del(self.key(id)).await.map_err(|e| store_error("DEL", e))?;
            Ok(())
        })
    }
}
