//! Customer sessions. After a sign-in through the tenant's broker the platform issues its own
//! session token: an ES256 JWT signed with **the tenant's** key (its `kid` in the header, the
//! public keys at the tenant's `/.well-known/jwks.json`), naming a session kept in Redis.
//!
//! A token is accepted on a host only when its `kid` is one of *that host's tenant's* keys and
//! its signature, `iss` (`tcom/<tenant>`), `aud`, `exp` and `tenant` hold, and its session
//! still exists: signing out, erasure and expiry end it. Tenant A's key can never sign for
//! tenant B, because B's hosts only know B's keys.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tcom_connectors::personal_data::{KeyStore, PublicJwk, SecretKey};

use super::redis_kv::RedisKv;
use crate::problem::Problem;

/// The claims of a customer session token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionClaims {
    /// The platform's customer id.
    pub sub: String,
    pub tenant: String,
    /// The session (in Redis) this token belongs to.
    pub sid: String,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
    /// NSIS level of assurance of the sign-in (`low`, `substantial`, `high`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loa: Option<String>,
    /// The identity provider behind the broker (`mitid`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
}

/// What the platform keeps of a session, in Redis. Personal data in it is sealed with the
/// customer's data key; the broker's access token (a credential) with the session key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SessionRecord {
    pub customer_id: String,
    #[serde(default)]
    pub assurance: Option<String>,
    #[serde(default)]
    pub identity_provider: Option<String>,
    /// The broker's access token of this authentication (CPR matching needs it), sealed.
    #[serde(default)]
    pub broker_access_token: Option<String>,
    /// The customer's name as the broker gave it, sealed with their data key.
    #[serde(default)]
    pub name_sealed: Option<String>,
    pub authenticated_at: u64,
}

/// A verified session token.
#[derive(Debug, Clone)]
pub struct CustomerSession {
    pub claims: SessionClaims,
}

/// What a started session answers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedSession {
    /// The session token: send it as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u64,
    pub customer_id: String,
    /// NSIS level of assurance of the sign-in, when the broker said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assurance: Option<String>,
}

/// How long a tenant's public keys are cached before they are read again.
const KEY_CACHE: Duration = Duration::from_secs(60);
/// An unknown `kid` reloads the keys at most this often (a rotation on another instance).
const KEY_RELOAD_MIN: Duration = Duration::from_secs(2);

struct CachedKeys {
    keys: Vec<PublicJwk>,
    loaded: Instant,
    /// When an unknown `kid` last made us read the keys again.
    reloaded: Option<Instant>,
}

/// Issues, verifies and ends customer sessions.
pub struct Sessions {
    keys: KeyStore,
    redis: RedisKv,
    audience: String,
    ttl: Duration,
    /// Seals broker access tokens kept in session records.
    session_key: SecretKey,
    cache: Mutex<HashMap<String, CachedKeys>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The key-store scope of the platform's own keys (staff tokens of platform operators); no
/// tenant id can take this form.
pub const PLATFORM_SCOPE: &str = "_platform";

/// The `iss` of a tenant's session tokens.
pub fn session_issuer(tenant: &str) -> String {
    format!("tcom/{tenant}")
}

fn session_key(tenant: &str, sid: &str) -> String {
    format!("tcom:session:{tenant}:{sid}")
}

fn sessions_of_key(tenant: &str, customer: &str) -> String {
    format!("tcom:sessions-of:{tenant}:{customer}")
}

fn cpr_attempts_key(tenant: &str, sid: &str) -> String {
    format!("tcom:cpr-match:{tenant}:{sid}")
}

pub(crate) fn key_store_unavailable(e: &tcom_connectors::personal_data::KeyStoreError) -> Problem {
    tracing::error!(error = %e, "Key store unavailable.");
    Problem::unavailable()
}

impl Sessions {
    pub fn new(
        keys: KeyStore,
        redis: RedisKv,
        audience: String,
        ttl: Duration,
        master_secret: &str,
    ) -> Self {
        Self {
            keys,
            redis,
            audience,
            ttl,
            session_key: SecretKey::derive(master_secret, "session-records"),
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn key_store(&self) -> &KeyStore {
        &self.keys
    }

    pub fn redis(&self) -> &RedisKv {
        &self.redis
    }

    /// Starts a session of `record.customer_id` at `tenant` and signs its token.
    ///
    /// # Errors
    /// 503 when the key store or Redis is unavailable.
    pub async fn start(
        &self,
        tenant: &str,
        mut record: SessionRecord,
        broker_access_token: Option<&str>,
    ) -> Result<IssuedSession, Problem> {
        let sid = uuid::Uuid::new_v4().simple().to_string();
        if let Some(token) = broker_access_token {
            record.broker_access_token = Some(
                self.session_key
                    .seal_text(token, &format!("tcom/session/{tenant}/{sid}"))
                    .map_err(|_| Problem::internal())?,
            );
        }
        let now = now_secs();
        record.authenticated_at = now;
        let claims = SessionClaims {
            sub: record.customer_id.clone(),
            tenant: tenant.to_owned(),
            sid: sid.clone(),
            iss: session_issuer(tenant),
            aud: self.audience.clone(),
            iat: now,
            exp: now + self.ttl.as_secs(),
            loa: record.assurance.clone(),
            idp: record.identity_provider.clone(),
        };
        let token = self.sign(tenant, &claims).await?;
        let value = serde_json::to_string(&record).map_err(|_| Problem::internal())?;
        let ttl = self.ttl.as_secs();
        let (session, index) = (
            session_key(tenant, &sid),
            sessions_of_key(tenant, &record.customer_id),
        );
        self.redis
            .run(|mut c| async move {
                redis::pipe()
                    .atomic()
                    .set_ex(&session, value, ttl)
                    .ignore()
                    .sadd(&index, &sid)
                    .ignore()
                    .expire(&index, i64::try_from(ttl).unwrap_or(i64::MAX))
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            })
            .await?;
        Ok(IssuedSession {
            access_token: token,
            token_type: "Bearer",
            expires_in: ttl,
            customer_id: record.customer_id,
            assurance: record.assurance,
        })
    }

    /// Signs `claims` with the active key of `scope` (a tenant, or [`PLATFORM_SCOPE`]).
    ///
    /// # Errors
    /// 503 when the key store is unavailable.
    pub(crate) async fn sign(
        &self,
        scope: &str,
        claims: &impl Serialize,
    ) -> Result<String, Problem> {
        let key = self
            .keys
            .signing_key(scope)
            .await
            .map_err(|e| key_store_unavailable(&e))?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(key.pkcs8_der())).map_err(
            |e| {
                tracing::error!(error = %e, "Signing a session token failed.");
                Problem::internal()
            },
        )
    }

    /// The public key `kid` of `scope`, if it is one of its keys (an unknown id reloads the
    /// keys, at most every [`KEY_RELOAD_MIN`]).
    ///
    /// # Errors
    /// 503 when the key store is unavailable.
    pub(crate) async fn verification_key(
        &self,
        scope: &str,
        kid: &str,
    ) -> Result<Option<DecodingKey>, Problem> {
        let mut keys = self.tenant_keys(scope, false).await?;
        if !keys.iter().any(|k| k.kid == kid) {
            keys = self.tenant_keys(scope, true).await?;
        }
        Ok(keys
            .iter()
            .find(|k| k.kid == kid)
            .and_then(|jwk| DecodingKey::from_ec_components(&jwk.x, &jwk.y).ok()))
    }

    /// Stores a session record under `key` for the session's lifetime.
    ///
    /// # Errors
    /// 503 when Redis is unavailable.
    pub(crate) async fn store(&self, key: String, value: String) -> Result<(), Problem> {
        let ttl = self.ttl.as_secs();
        self.redis
            .run(|mut c| async move { c.set_ex::<_, _, ()>(&key, value, ttl).await })
            .await
    }

    /// Whether a session record exists under `key`.
    ///
    /// # Errors
    /// 503 when Redis is unavailable.
    pub(crate) async fn exists(&self, key: String) -> Result<bool, Problem> {
        self.redis
            .run(|mut c| async move { c.exists(&key).await })
            .await
    }

    /// Deletes the session record under `key`.
    ///
    /// # Errors
    /// 503 when Redis is unavailable.
    pub(crate) async fn forget(&self, key: String) -> Result<(), Problem> {
        self.redis
            .run(|mut c| async move { c.del::<_, ()>(&key).await })
            .await
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    async fn tenant_keys(&self, tenant: &str, reload: bool) -> Result<Vec<PublicJwk>, Problem> {
        {
            let cache = self.cache.lock().expect("key cache lock");
            if let Some(cached) = cache.get(tenant) {
                // An unknown kid (a key another instance just created) reloads at once, but
                // made-up kids cannot make every request a query: at most every 2 s.
                let fresh = cached.loaded.elapsed() < KEY_CACHE;
                let recently = cached
                    .reloaded
                    .is_some_and(|at| at.elapsed() < KEY_RELOAD_MIN);
                if (fresh && !reload) || recently {
                    return Ok(cached.keys.clone());
                }
            }
        }
        // A retired key stays valid as long as the tokens it signed live.
        let grace = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let keys = self
            .keys
            .verification_keys(tenant, grace)
            .await
            .map_err(|e| key_store_unavailable(&e))?;
        self.cache.lock().expect("key cache lock").insert(
            tenant.to_owned(),
            CachedKeys {
                keys: keys.clone(),
                loaded: Instant::now(),
                reloaded: reload.then(Instant::now),
            },
        );
        Ok(keys)
    }

    /// The tenant's published keys (creating its first key when it has none).
    ///
    /// # Errors
    /// 503 when the key store is unavailable.
    pub async fn jwks(&self, tenant: &str) -> Result<Vec<PublicJwk>, Problem> {
        let active = self
            .keys
            .signing_key(tenant)
            .await
            .map_err(|e| key_store_unavailable(&e))?;
        let keys = self.tenant_keys(tenant, false).await?;
        if keys.iter().any(|k| k.kid == active.kid) {
            Ok(keys)
        } else {
            // Cached before the active key existed (or was rotated in).
            self.tenant_keys(tenant, true).await
        }
    }

    /// Verifies a session token presented on `tenant`'s host.
    ///
    /// # Errors
    /// 401 `unauthenticated` for a token that is malformed, not signed by one of the tenant's
    /// keys, expired, for another audience, or whose session ended; 403 `tenant_mismatch` for
    /// a valid token of another tenant; 503 when the key store or Redis is unavailable.
    pub async fn verify(&self, tenant: &str, token: &str) -> Result<CustomerSession, Problem> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| Problem::unauthenticated(format!("customer token rejected: {e}")))?;
        if header.alg != Algorithm::ES256 {
            return Err(Problem::unauthenticated(
                "customer token rejected: only ES256 session tokens are accepted",
            ));
        }
        let kid = header
            .kid
            .ok_or_else(|| Problem::unauthenticated("customer token rejected: no kid"))?;
        let Some(decoding) = self.verification_key(tenant, &kid).await? else {
            // Not a key of this tenant: maybe another tenant's token, maybe forged. Either
            // way nothing of it is trusted; the claims are read only to say which.
            return Err(other_tenant_or_unknown(token, tenant));
        };
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[session_issuer(tenant)]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        let claims = jsonwebtoken::decode::<SessionClaims>(token, &decoding, &validation)
            .map_err(|e| Problem::unauthenticated(format!("customer token rejected: {e}")))?
            .claims;
        if claims.tenant != tenant {
            return Err(Problem::forbidden(
                "tenant_mismatch",
                "the token does not belong to the tenant served on this host",
            ));
        }
        let key = session_key(tenant, &claims.sid);
        let alive: bool = self
            .redis
            .run(|mut c| async move { c.exists(&key).await })
            .await?;
        if !alive {
            return Err(Problem::unauthenticated(
                "the session ended (signed out, erased or expired): sign in again",
            ));
        }
        Ok(CustomerSession { claims })
    }

    /// The session's record.
    ///
    /// # Errors
    /// 401 when the session ended; 503 when Redis is unavailable.
    pub async fn record(&self, tenant: &str, sid: &str) -> Result<SessionRecord, Problem> {
        let key = session_key(tenant, sid);
        let value: Option<String> = self
            .redis
            .run(|mut c| async move { c.get(&key).await })
            .await?;
        value
            .and_then(|v| serde_json::from_str(&v).ok())
            .ok_or_else(|| Problem::unauthenticated("the session ended: sign in again"))
    }

    /// The broker's access token of the session's authentication.
    pub fn broker_access_token(
        &self,
        tenant: &str,
        sid: &str,
        record: &SessionRecord,
    ) -> Option<String> {
        record.broker_access_token.as_deref().and_then(|sealed| {
            self.session_key
                .open_text(sealed, &format!("tcom/session/{tenant}/{sid}"))
                .ok()
        })
    }

    /// Counts a CPR-match attempt of the session's authentication; returns how many it made.
    ///
    /// # Errors
    /// 503 when Redis is unavailable.
    pub async fn spend_cpr_attempt(&self, tenant: &str, sid: &str) -> Result<u32, Problem> {
        let key = cpr_attempts_key(tenant, sid);
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let (count,): (u32,) = self
            .redis
            .run(|mut c| async move {
                redis::pipe()
                    .atomic()
                    .incr(&key, 1)
                    .expire(&key, ttl)
                    .ignore()
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(count)
    }

    /// Ends one session (sign-out).
    ///
    /// # Errors
    /// 503 when Redis is unavailable.
    pub async fn end(&self, tenant: &str, customer: &str, sid: &str) -> Result<(), Problem> {
        let (session, index) = (session_key(tenant, sid), sessions_of_key(tenant, customer));
        let sid = sid.to_owned();
        self.redis
            .run(|mut c| async move {
                redis::pipe()
                    .atomic()
                    .del(&session)
                    .ignore()
                    .srem(&index, &sid)
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }

    /// Ends every session of a customer (erasure).
    ///
    /// # Errors
    /// 503 when Redis is unavailable.
    pub async fn end_all(&self, tenant: &str, customer: &str) -> Result<(), Problem> {
        let index = sessions_of_key(tenant, customer);
        let tenant = tenant.to_owned();
        self.redis
            .run(|mut c| async move {
                let sids: Vec<String> = c.smembers(&index).await?;
                let mut pipe = redis::pipe();
                pipe.atomic();
                for sid in &sids {
                    pipe.del(session_key(&tenant, sid)).ignore();
                }
                pipe.del(&index).ignore();
                pipe.query_async::<()>(&mut c).await
            })
            .await
    }
}

/// The answer to a token signed by none of the host's tenant's keys.
fn other_tenant_or_unknown(token: &str, tenant: &str) -> Problem {
    let mut validation = Validation::new(Algorithm::ES256);
    validation.insecure_disable_signature_validation();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claimed =
        jsonwebtoken::decode::<SessionClaims>(token, &DecodingKey::from_secret(&[]), &validation)
            .ok()
            .map(|d| d.claims.tenant);
    match claimed {
        Some(other) if other != tenant => Problem::forbidden(
            "tenant_mismatch",
            "the token does not belong to the tenant served on this host",
        ),
        _ => Problem::unauthenticated("customer token rejected: not signed by this shop's keys"),
    }
}

/// 401 with a stable code of its own.
pub fn unauthenticated_with(code: &str, detail: impl Into<String>) -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        code,
        "The sign-in could not be completed",
    )
    .with_detail(detail)
}
