//! A MitID broker simulator for tests and the local run (`tcom oidc-sim`): a real OpenID
//! Connect provider (authorization code flow, PKCE, RS256 ID tokens, JWKS), shaped like the
//! Danish brokers (Signicat, Idura, Signaturgruppen) a telecom brand uses for MitID.
//!
//! # Realms
//!
//! Every issuer is `http://<listen>/realms/<realm>`, a realm being any `[a-z0-9-]{1,40}`,
//! created on first use (its first RSA-2048 key is generated then), so each tenant can have a
//! broker issuer of its own. State is in memory. Below, `{iss}` is a realm's issuer.
//!
//! # The provider
//!
//! - `GET {iss}/.well-known/openid-configuration`: discovery. Besides the standard members,
//!   `cpr_match_endpoint` (non-standard) names `{iss}/cpr-match`.
//! - `GET {iss}/jwks`: `{"keys": [{kty: "RSA", kid, use: "sig", alg: "RS256", n, e}]}`, the
//!   active key and every rotated key that is not retired. A kid is the key's RFC 7638
//!   thumbprint.
//! - `GET|POST {iss}/authorize`: `response_type=code`, `client_id`, `redirect_uri`, `scope`
//!   (with `openid`), `state`, `nonce` (required), `code_challenge` with
//!   `code_challenge_method=S256` (required), optionally `login_hint=<test user>`.
//!   - An unknown `client_id`, or a `redirect_uri` that is not exactly one the client
//!     registered: a 400 HTML page, never a redirect (RFC 6749 §4.1.2.1).
//!   - Any other bad parameter: `302 redirect_uri?error=invalid_request&error_description=…
//!     &state=…&iss=…` (`unsupported_response_type` for a `response_type` other than `code`).
//!   - Without `login_hint`: 200, a page with one form per test identity, each posting the
//!     request's parameters back with `user=<id>`, and a Cancel form posting `user=cancel`.
//!   - With `login_hint` (GET) or `user` (POST): `302 redirect_uri?code=…&state=…&iss=…`;
//!     `user=cancel`: `302 …?error=access_denied&state=…&iss=…`; an unknown user: the page
//!     again with an error, 400. (`iss` is RFC 9207's mix-up defence: with one issuer per
//!     tenant, a relying party can check the answer came from the broker it asked.)
//! - `POST {iss}/token`, form-encoded: `grant_type=authorization_code`, `code`,
//!   `redirect_uri`, `code_verifier`; the client authenticates with HTTP Basic (id and secret
//!   form-encoded first, RFC 6749 §2.3.1) or `client_id` + `client_secret` in the form, not
//!   both. Answers `{access_token, token_type: "Bearer", expires_in: 300, id_token, scope}`
//!   with `Cache-Control: no-store`; errors are RFC 6749 §5.2's `{error, error_description}`:
//!   `invalid_client` (401, `WWW-Authenticate: Basic`), `invalid_request`,
//!   `unsupported_grant_type`, and `invalid_grant` for a code that is unknown, expired
//!   (60 s), already used, issued to another client or for another `redirect_uri`, or whose
//!   PKCE check fails. A code is spent by the first exchange that names it, successful or not;
//!   presenting it again also revokes the access token it bought (RFC 6749 §4.1.2).
//! - The ID token (RS256, `kid` in the header): `iss`, `aud` (the client id), `sub` (a UUID,
//!   stable per realm and user), `iat`, `exp` (`iat` + 300), `auth_time`, `nonce`,
//!   `at_hash`, `idp: "mitid"`, `amr: ["mitid"]`, `loa`
//!   (`https://data.gov.dk/concept/core/nsis/loa/Low|Substantial|High`), `name`,
//!   `given_name`, `family_name`, `birthdate` (`YYYY-MM-DD`). Never the CPR number.
//! - `GET|POST {iss}/userinfo` with `Authorization: Bearer <access_token>`: `sub`, `idp`,
//!   `loa`, `name`, `given_name`, `family_name`, `birthdate`; otherwise 401 with
//!   `WWW-Authenticate: Bearer error="invalid_token"`.
//! - `POST {iss}/cpr-match` with the bearer token and `{"cpr": "DDMMYYSSSS"}` (dash
//!   optional): `{"match": bool, "attempts_left": n}`. Three attempts per login (per access
//!   token); then 429 `{"error": "attempts_exhausted"}`. A bad or expired token: 401
//!   `{"error": "invalid_token"}`; a malformed number: 400 `{"error": "invalid_request"}`,
//!   not counted. The number is never echoed.
//!
//! # Simulator-only controls (`/_sim`, no real broker has them)
//!
//! - `PUT /_sim/realms/{realm}/clients/{client_id}` `{"client_secret", "redirect_uris": […]}`:
//!   registers or replaces a client; 204.
//! - `POST /_sim/realms/{realm}/rotate-keys` `{"retire_old": bool}`: a new active signing key,
//!   `{"kid": …}`. With `retire_old` every earlier key leaves the JWKS; the simulator keeps
//!   their private halves for `sign_with_retired`.
//! - `POST /_sim/realms/{realm}/tamper` `{"alg": "HS256"|"none", "expired", "nonce", "issuer",
//!   "audience", "sign_with_retired"}` (all optional): spoils the realm's *next* ID token only.
//!   `HS256` signs with the client's secret as the HMAC key (the classic algorithm
//!   confusion), `none` leaves it unsigned, `expired` puts `exp` in the past,
//!   `sign_with_retired` signs with the most recently retired key (409 if there is none).
//!   204.
//! - `GET /_sim/users`: the test identities, CPR numbers included (they are test data).
//!
//! # Test identities
//!
//! | user | name | born | CPR | NSIS loa |
//! | --- | --- | --- | --- | --- |
//! | `adult` | Freja Nielsen | 1990-03-14 | 140390-2086 | Substantial |
//! | `adult-high` | Lars Christensen | 1985-11-02 | 021185-1139 | High |
//! | `adult-low` | Sofie Andersen | 1978-07-29 | 290778-3106 | Low |
//! | `minor` | Emil Pedersen | 2010-06-15 | 150610-4129 | Substantial |
//! | `adult-2007` | Ida Larsen | 2007-01-05 | 050107-4218 | Substantial |
//! | `operator` | Mads Holm | 1982-09-21 | 210982-1873 | High (and `roles: ["platform_operator"]`: a platform operator's workforce identity) |
//!
//! `minor` is under 18 on every day of 2026 and 2027. `adult-2007`'s CPR number fails the
//! historic modulus-11 check, as numbers issued since 2007 may: a relying party must not
//! refuse it.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore as _;
use rand::rngs::OsRng;
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use tcom_processors::domain::cpr::Cpr;

/// How long an authorization code can be exchanged.
const CODE_TTL: i64 = 60;

/// How long access and ID tokens live.
const TOKEN_TTL: i64 = 300;

/// CPR match attempts per login.
const CPR_ATTEMPTS: u32 = 3;

const KEY_BITS: usize = 2048;

const SCOPES: [&str; 5] = ["openid", "mitid", "ssn", "nin", "profile"];

const CLAIMS: [&str; 15] = [
    "iss",
    "aud",
    "sub",
    "iat",
    "exp",
    "auth_time",
    "nonce",
    "at_hash",
    "idp",
    "amr",
    "loa",
    "name",
    "given_name",
    "family_name",
    "birthdate",
];

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// 256 bits from the operating system's CSPRNG, base64url: codes and access tokens.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn valid_realm(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

// ---- test identities ----

/// An NSIS assurance level, as brokers put it in the `loa` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loa {
    Low,
    Substantial,
    High,
}

impl Loa {
    /// The level's URI, the value of the `loa` claim.
    pub fn uri(self) -> &'static str {
        match self {
            Self::Low => "https://data.gov.dk/concept/core/nsis/loa/Low",
            Self::Substantial => "https://data.gov.dk/concept/core/nsis/loa/Substantial",
            Self::High => "https://data.gov.dk/concept/core/nsis/loa/High",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Low => "Low",
            Self::Substantial => "Substantial",
            Self::High => "High",
        }
    }
}

/// A fixed test identity of the simulator (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestUser {
    /// What `login_hint` and the picker's `user` name.
    pub id: &'static str,
    pub given_name: &'static str,
    pub family_name: &'static str,
    /// `YYYY-MM-DD`.
    pub birthdate: &'static str,
    /// `DDMMYY-SSSS`.
    pub cpr: &'static str,
    pub loa: Loa,
    /// The `roles` claim (workforce identities: platform operators), empty for customers.
    pub roles: &'static [&'static str],
}

/// The simulator's test identities.
pub static TEST_USERS: [TestUser; 6] = [
    TestUser {
        id: "adult",
        given_name: "Freja",
        family_name: "Nielsen",
        birthdate: "1990-03-14",
        cpr: "140390-2086",
        loa: Loa::Substantial,
        roles: &[],
    },
    TestUser {
        id: "adult-high",
        given_name: "Lars",
        family_name: "Christensen",
        birthdate: "1985-11-02",
        cpr: "021185-1139",
        loa: Loa::High,
        roles: &[],
    },
    TestUser {
        id: "adult-low",
        given_name: "Sofie",
        family_name: "Andersen",
        birthdate: "1978-07-29",
        cpr: "290778-3106",
        loa: Loa::Low,
        roles: &[],
    },
    TestUser {
        id: "minor",
        given_name: "Emil",
        family_name: "Pedersen",
        birthdate: "2010-06-15",
        cpr: "150610-4129",
        loa: Loa::Substantial,
        roles: &[],
    },
    TestUser {
        id: "adult-2007",
        given_name: "Ida",
        family_name: "Larsen",
        birthdate: "2007-01-05",
        cpr: "050107-4218",
        loa: Loa::Substantial,
        roles: &[],
    },
    TestUser {
        id: "operator",
        given_name: "Mads",
        family_name: "Holm",
        birthdate: "1982-09-21",
        cpr: "210982-1873",
        loa: Loa::High,
        roles: &["platform_operator"],
    },
];

impl TestUser {
    /// The test identity called `id`.
    pub fn find(id: &str) -> Option<&'static Self> {
        TEST_USERS.iter().find(|u| u.id == id)
    }

    pub fn name(&self) -> String {
        format!("{} {}", self.given_name, self.family_name)
    }

    /// The `sub` a realm gives this user: a UUID from a hash of realm and user, so it is the
    /// same on every login and across restarts, and differs between realms as a broker's
    /// subjects differ between its customers.
    pub fn subject(&self, realm: &str) -> String {
        let digest = Sha256::digest(format!("tcom-oidc-sim\0{realm}\0{}", self.id));
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_custom_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    /// The claims about the person, besides `sub`, shared by the ID token and userinfo.
    fn identity_claims(&self) -> Map<String, Value> {
        let mut claims = Map::new();
        claims.insert("idp".into(), json!("mitid"));
        claims.insert("loa".into(), json!(self.loa.uri()));
        claims.insert("name".into(), json!(self.name()));
        claims.insert("given_name".into(), json!(self.given_name));
        claims.insert("family_name".into(), json!(self.family_name));
        claims.insert("birthdate".into(), json!(self.birthdate));
        if !self.roles.is_empty() {
            claims.insert("roles".into(), json!(self.roles));
        }
        claims
    }
}

// ---- signing keys ----

/// One RSA signing key of a realm.
struct SigningKey {
    /// The RFC 7638 thumbprint of the public key.
    kid: String,
    /// The private key as PKCS#1 DER, the form `jsonwebtoken` signs with.
    private: EncodingKey,
    /// Modulus and exponent, base64url, as the JWKS publishes them.
    n: String,
    e: String,
    /// Out of the JWKS; kept only so `tamper` can sign with it.
    retired: bool,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("retired", &self.retired)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new RSA-2048 key. Takes a noticeable while: call it off the async workers.
    fn generate() -> Result<Self, String> {
        let private = RsaPrivateKey::new(&mut OsRng, KEY_BITS).map_err(|e| e.to_string())?;
        let der = private.to_pkcs1_der().map_err(|e| e.to_string())?;
        let n = URL_SAFE_NO_PAD.encode(private.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(private.e().to_bytes_be());
        // RFC 7638: the required members in lexicographic order, no whitespace.
        let thumbprint_input = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumbprint_input));
        Ok(Self {
            kid,
            private: EncodingKey::from_rsa_der(der.as_bytes()),
            n,
            e,
            retired: false,
        })
    }

    fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "kid": self.kid,
            "use": "sig",
            "alg": "RS256",
            "n": self.n,
            "e": self.e,
        })
    }
}

// ---- realm state ----

#[derive(Debug)]
struct Client {
    secret: String,
    redirect_uris: Vec<String>,
}

/// An authorization request that passed every check.
#[derive(Debug, Clone)]
struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    /// What the client asked for, to carry through the picker unchanged.
    scope: String,
    state: Option<String>,
    nonce: String,
    code_challenge: String,
}

/// An issued, not yet exchanged authorization code.
#[derive(Debug)]
struct PendingCode {
    request: AuthRequest,
    user: &'static TestUser,
    auth_time: i64,
    expires_at: i64,
}

/// What an access token stands for.
#[derive(Debug)]
struct Grant {
    user: &'static TestUser,
    expires_at: i64,
    cpr_attempts: u32,
}

/// A code that has been presented once: a second presentation is refused and revokes the
/// access token the first one bought.
#[derive(Debug)]
struct Spent {
    access_token: Option<String>,
    at: i64,
}

/// What `tamper` does to the realm's next ID token.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tamper {
    alg: Option<TamperAlg>,
    #[serde(default)]
    expired: bool,
    nonce: Option<String>,
    issuer: Option<String>,
    audience: Option<String>,
    #[serde(default)]
    sign_with_retired: bool,
}

#[derive(Debug, Clone, Copy, Deserialize)]
enum TamperAlg {
    /// HMAC with the client secret as the key.
    #[serde(rename = "HS256")]
    Hs256,
    /// No signature at all.
    #[serde(rename = "none")]
    Unsigned,
}

#[derive(Debug, Default)]
struct Realm {
    name: String,
    clients: HashMap<String, Client>,
    /// Oldest first; the last one is the active key.
    keys: Vec<SigningKey>,
    codes: HashMap<String, PendingCode>,
    spent: HashMap<String, Spent>,
    tokens: HashMap<String, Grant>,
    tamper: Option<Tamper>,
}

impl Realm {
    fn new(name: &str, key: SigningKey) -> Self {
        Self {
            name: name.to_owned(),
            keys: vec![key],
            ..Self::default()
        }
    }

    /// Forgets what can no longer be used. Codes stay a while past their expiry, so a late
    /// exchange hears "expired" rather than "unknown".
    fn prune(&mut self, now: i64) {
        self.codes.retain(|_, c| c.expires_at + CODE_TTL > now);
        self.spent.retain(|_, s| s.at + TOKEN_TTL > now);
        self.tokens.retain(|_, g| g.expires_at > now);
    }

    fn issue_code(&mut self, request: &AuthRequest, user: &'static TestUser, now: i64) -> String {
        self.prune(now);
        let code = random_token();
        let pending = PendingCode {
            request: request.clone(),
            user,
            auth_time: now,
            expires_at: now + CODE_TTL,
        };
        self.codes.insert(code.clone(), pending);
        code
    }

    /// Spends `code` and checks it against the token request.
    fn redeem(
        &mut self,
        client_id: &str,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
        now: i64,
    ) -> Result<PendingCode, ApiError> {
        if let Some(spent) = self.spent.get(code) {
            if let Some(token) = &spent.access_token {
                self.tokens.remove(token);
            }
            return Err(ApiError::invalid_grant(
                "The authorization code has already been used.",
            ));
        }
        let pending = self
            .codes
            .remove(code)
            .ok_or_else(|| ApiError::invalid_grant("Unknown authorization code."))?;
        let spent = Spent {
            access_token: None,
            at: now,
        };
        self.spent.insert(code.to_owned(), spent);
        if pending.expires_at <= now {
            return Err(ApiError::invalid_grant(
                "The authorization code has expired.",
            ));
        }
        if pending.request.client_id != client_id {
            return Err(ApiError::invalid_grant(
                "The authorization code was issued to another client.",
            ));
        }
        if pending.request.redirect_uri != redirect_uri {
            return Err(ApiError::invalid_grant(
                "redirect_uri differs from the authorization request's.",
            ));
        }
        if !pkce_verifier_syntax(verifier) || s256(verifier) != pending.request.code_challenge {
            return Err(ApiError::invalid_grant("PKCE verification failed."));
        }
        Ok(pending)
    }

    /// The live grant of a bearer token.
    fn grant_mut(&mut self, headers: &HeaderMap, now: i64) -> Option<&mut Grant> {
        let token = bearer_token(headers)?;
        self.tokens.get_mut(token).filter(|g| g.expires_at > now)
    }

    fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .filter(|k| !k.retired)
            .map(SigningKey::jwk)
            .collect();
        json!({ "keys": keys })
    }
}

// ---- the simulator ----

#[derive(Debug, Clone)]
struct Sim(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    base_url: String,
    realms: Mutex<HashMap<String, Realm>>,
}

impl Sim {
    fn new(base_url: String) -> Self {
        Self(Arc::new(Shared {
            base_url,
            realms: Mutex::new(HashMap::new()),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Realm>> {
        self.0.realms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn issuer(&self, realm: &str) -> String {
        format!("{}/realms/{realm}", self.0.base_url)
    }

    /// Creates the realm on first use. Its key is generated outside the lock, so other
    /// realms are served meanwhile; if two first requests race, one key is thrown away.
    async fn ensure(&self, name: &str) -> Result<(), ApiError> {
        if !valid_realm(name) {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "Realm names are 1 to 40 of a-z, 0-9 and '-'.",
            ));
        }
        let known = self.lock().contains_key(name);
        if !known {
            let key = generate_key().await?;
            self.lock()
                .entry(name.to_owned())
                .or_insert_with(|| Realm::new(name, key));
        }
        Ok(())
    }

    /// Runs `f` on the realm, creating it first if need be.
    async fn with_realm<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Realm) -> T,
    ) -> Result<T, ApiError> {
        self.ensure(name).await?;
        let mut realms = self.lock();
        // Realms are never removed, so `ensure` leaves it there.
        let realm = realms
            .get_mut(name)
            .ok_or_else(|| ApiError::server_error("Realm vanished."))?;
        Ok(f(realm))
    }
}

/// A new signing key, made on the blocking pool: RSA key generation takes long enough to
/// stall the other requests of an async worker.
async fn generate_key() -> Result<SigningKey, ApiError> {
    let generated = tokio::task::spawn_blocking(SigningKey::generate)
        .await
        .map_err(|e| e.to_string())
        .and_then(|key| key);
    generated.map_err(|e| {
        tracing::error!(error = %e, "Generating an RSA key failed.");
        ApiError::server_error("Key generation failed.")
    })
}

// ---- answers ----

fn no_store() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}

fn json_error(status: StatusCode, error: &'static str, description: &str) -> Response {
    ApiError::new(status, error, description).into_response()
}

/// An error answer, `{"error", "error_description"}`: RFC 6749 §5.2's shape, which every
/// JSON endpoint here uses. Small, unlike a `Response`, so it travels in `Result`s.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// The `WWW-Authenticate` challenge of a 401.
    challenge: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            challenge: None,
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// RFC 6749 §5.2: the 401 names the authentication scheme the client should use.
    fn invalid_client(description: impl Into<String>) -> Self {
        Self {
            challenge: Some(r#"Basic realm="oidc-sim""#),
            ..Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
        }
    }

    fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    fn server_error(description: impl Into<String>) -> Self {
        let status = StatusCode::INTERNAL_SERVER_ERROR;
        Self::new(status, "server_error", description)
    }

    /// A missing, unknown or expired access token (RFC 6750 §3).
    fn invalid_token() -> Self {
        let description = "The access token is missing, unknown or expired.";
        Self {
            challenge: Some(r#"Bearer error="invalid_token""#),
            ..Self::new(StatusCode::UNAUTHORIZED, "invalid_token", description)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "error_description": self.description });
        let mut response = (self.status, no_store(), axum::Json(body)).into_response();
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// A 302 (not axum's 303: OAuth's examples and brokers use 302).
fn found(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            let mut response = (StatusCode::FOUND, no_store()).into_response();
            response.headers_mut().insert(header::LOCATION, value);
            response
        }
        Err(_) => error_page(StatusCode::BAD_REQUEST, "The redirect_uri cannot be used."),
    }
}

/// `uri` with `pairs` appended to its query.
fn append_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let query = serde_urlencoded::to_string(pairs).unwrap_or_default();
    let separator = match uri.rsplit_once('?') {
        None => "?",
        Some((_, "")) => "",
        Some((_, q)) if q.ends_with('&') => "",
        Some(_) => "&",
    };
    format!("{uri}{separator}{query}")
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn json_body<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_request(format!("Invalid JSON body: {e}")))
}

// ---- HTML ----

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(status: StatusCode, title: &str, main: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n</head>\n<body>\n<main>\n{main}</main>\n</body>\n</html>\n",
        escape_html(title)
    );
    (status, no_store(), Html(html)).into_response()
}

/// The page for a request that cannot be sent back to the client.
fn error_page(status: StatusCode, message: &str) -> Response {
    let main = format!(
        "<h1>Invalid login request</h1>\n<p role=\"alert\">{}</p>\n",
        escape_html(message)
    );
    page(status, "Invalid login request", &main)
}

fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        escape_html(name),
        escape_html(value)
    )
}

/// The request's parameters as hidden fields, so a form posts the same request back.
fn hidden_request(request: &AuthRequest) -> String {
    let mut fields = vec![
        hidden("response_type", "code"),
        hidden("client_id", &request.client_id),
        hidden("redirect_uri", &request.redirect_uri),
        hidden("scope", &request.scope),
        hidden("nonce", &request.nonce),
        hidden("code_challenge", &request.code_challenge),
        hidden("code_challenge_method", "S256"),
    ];
    if let Some(state) = &request.state {
        fields.push(hidden("state", state));
    }
    fields.concat()
}

/// The test-user picker: one form per identity, and Cancel.
fn picker(issuer: &str, request: &AuthRequest, error: Option<&str>) -> Response {
    let action = escape_html(&format!("{issuer}/authorize"));
    let fields = hidden_request(request);
    let mut main = format!(
        "<h1>MitID test login</h1>\n<p>Simulated MitID broker <code>{}</code>. \
         <code>{}</code> asks who you are: choose a test identity.</p>\n",
        escape_html(issuer),
        escape_html(&request.client_id)
    );
    if let Some(error) = error {
        main.push_str(&format!(
            "<p role=\"alert\"><strong>{}</strong></p>\n",
            escape_html(error)
        ));
    }
    main.push_str("<ul>\n");
    for user in &TEST_USERS {
        let described = format!("user-{}", user.id);
        main.push_str(&format!(
            "<li><form method=\"post\" action=\"{action}\">{fields}{}\
             <button type=\"submit\" aria-describedby=\"{described}\">Log in as {}</button> \
             <span id=\"{described}\">test identity <code>{}</code>, born {}, \
             NSIS assurance {}</span></form></li>\n",
            hidden("user", user.id),
            escape_html(&user.name()),
            user.id,
            user.birthdate,
            user.loa.label(),
        ));
    }
    main.push_str("</ul>\n");
    main.push_str(&format!(
        "<form method=\"post\" action=\"{action}\">{fields}{}\
         <button type=\"submit\">Cancel</button></form>\n",
        hidden("user", "cancel")
    ));
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    page(status, "MitID test login", &main)
}

// ---- discovery and keys ----

fn discovery_document(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        // Not in OpenID Connect Discovery: where a relying party matches a typed CPR number.
        "cpr_match_endpoint": format!("{issuer}/cpr-match"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": SCOPES,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": CLAIMS,
        "authorization_response_iss_parameter_supported": true,
    })
}

async fn discovery(State(sim): State<Sim>, Path(realm): Path<String>) -> Response {
    match sim.ensure(&realm).await {
        Ok(()) => axum::Json(discovery_document(&sim.issuer(&realm))).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn jwks(State(sim): State<Sim>, Path(realm): Path<String>) -> Response {
    match sim.with_realm(&realm, |r| r.jwks()).await {
        Ok(keys) => axum::Json(keys).into_response(),
        Err(error) => error.into_response(),
    }
}

// ---- authorization endpoint ----

/// The authorization endpoint's parameters as they come; unknown ones are ignored, as
/// RFC 6749 §3.1 asks.
#[derive(Debug, Default, Deserialize)]
struct AuthParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    login_hint: Option<String>,
    /// The picker's choice (POST only).
    user: Option<String>,
}

/// Why an authorization request is refused.
#[derive(Debug)]
enum Refusal {
    /// The client or its redirect_uri cannot be trusted: an error page, never a redirect,
    /// or the endpoint would be an open redirector (RFC 6749 §4.1.2.1).
    Page(String),
    /// Everything else goes back to the client: the error redirect's location.
    Redirect(String),
}

/// The authorization response for an error, RFC 6749 §4.1.2.1 (plus RFC 9207's `iss`).
fn error_redirect(
    redirect_uri: &str,
    error: &str,
    description: &str,
    state: Option<&str>,
    issuer: &str,
) -> String {
    let mut pairs = vec![("error", error), ("error_description", description)];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", issuer));
    append_query(redirect_uri, &pairs)
}

/// RFC 7636 §4.1's code_verifier: 43 to 128 unreserved characters.
fn pkce_verifier_syntax(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// An S256 code_challenge is the base64url of a SHA-256: 43 characters.
fn s256_challenge_syntax(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// BASE64URL(SHA256(verifier)), RFC 7636 §4.2.
fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Checks an authorization request: client and redirect_uri first, since until they are
/// known good nothing may be sent to the redirect_uri.
fn validate(realm: &Realm, issuer: &str, params: &AuthParams) -> Result<AuthRequest, Refusal> {
    let page = |message: &str| Refusal::Page(message.to_owned());
    let client_id = params
        .client_id
        .as_deref()
        .ok_or_else(|| page("client_id is missing."))?;
    let client = realm
        .clients
        .get(client_id)
        .ok_or_else(|| page("Unknown client_id."))?;
    let redirect_uri = params
        .redirect_uri
        .as_deref()
        .ok_or_else(|| page("redirect_uri is missing."))?;
    if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
        return Err(page("redirect_uri is not registered for this client."));
    }
    let state = params.state.as_deref();
    let back = |error: &str, description: &str| {
        Refusal::Redirect(error_redirect(
            redirect_uri,
            error,
            description,
            state,
            issuer,
        ))
    };
    match params.response_type.as_deref() {
        Some("code") => {}
        None => return Err(back("invalid_request", "response_type is missing.")),
        Some(_) => {
            return Err(back(
                "unsupported_response_type",
                "Only response_type=code is supported.",
            ));
        }
    }
    let scope = params.scope.as_deref().unwrap_or_default();
    if !scope.split(' ').any(|s| s == "openid") {
        return Err(back("invalid_request", "scope must contain openid."));
    }
    if params.code_challenge_method.as_deref() != Some("S256") {
        return Err(back(
            "invalid_request",
            "PKCE is required, with code_challenge_method=S256.",
        ));
    }
    let challenge = params
        .code_challenge
        .as_deref()
        .filter(|c| s256_challenge_syntax(c))
        .ok_or_else(|| back("invalid_request", "code_challenge is missing or malformed."))?;
    let nonce = params
        .nonce
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| back("invalid_request", "nonce is required."))?;
    Ok(AuthRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        scope: scope.to_owned(),
        state: state.map(str::to_owned),
        nonce: nonce.to_owned(),
        code_challenge: challenge.to_owned(),
    })
}

/// What the user did: nothing yet (show the picker), or chose.
#[derive(Debug)]
enum Choice {
    Undecided,
    /// A POST from the picker without a user.
    Missing,
    User(String),
}

/// Answers an authorization request, GET or POST.
fn decide(realm: &mut Realm, issuer: &str, params: &AuthParams, choice: Choice) -> Response {
    let request = match validate(realm, issuer, params) {
        Ok(request) => request,
        Err(Refusal::Page(message)) => return error_page(StatusCode::BAD_REQUEST, &message),
        Err(Refusal::Redirect(location)) => return found(&location),
    };
    let id = match choice {
        Choice::Undecided => return picker(issuer, &request, None),
        Choice::Missing => return picker(issuer, &request, Some("Choose a test identity.")),
        Choice::User(id) => id,
    };
    if id == "cancel" {
        let location = error_redirect(
            &request.redirect_uri,
            "access_denied",
            "The user cancelled the login.",
            request.state.as_deref(),
            issuer,
        );
        return found(&location);
    }
    let Some(user) = TestUser::find(&id) else {
        return picker(issuer, &request, Some("There is no such test identity."));
    };
    let code = realm.issue_code(&request, user, now());
    let mut pairs = vec![("code", code.as_str())];
    if let Some(state) = &request.state {
        pairs.push(("state", state.as_str()));
    }
    pairs.push(("iss", issuer));
    found(&append_query(&request.redirect_uri, &pairs))
}

async fn authorize(sim: &Sim, realm: &str, params: &[u8], posted: bool) -> Response {
    // A parameter given twice fails here (RFC 6749 §3.1 forbids it); then nothing about
    // the request can be trusted, redirect_uri included.
    let params: AuthParams = match serde_urlencoded::from_bytes(params) {
        Ok(params) => params,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &format!("Bad parameters: {e}")),
    };
    let choice = match (posted, params.user.clone().or(params.login_hint.clone())) {
        (_, Some(user)) => Choice::User(user),
        (false, None) => Choice::Undecided,
        (true, None) => Choice::Missing,
    };
    let issuer = sim.issuer(realm);
    sim.with_realm(realm, |r| decide(r, &issuer, &params, choice))
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn authorize_get(
    State(sim): State<Sim>,
    Path(realm): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    authorize(&sim, &realm, query.as_bytes(), false).await
}

async fn authorize_post(
    State(sim): State<Sim>,
    Path(realm): Path<String>,
    body: Bytes,
) -> Response {
    authorize(&sim, &realm, &body, true).await
}

// ---- token endpoint ----

/// A form body whose parameters each appear once.
#[derive(Debug)]
struct Form(HashMap<String, String>);

impl Form {
    fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|_| ApiError::invalid_request("The body is not form-encoded."))?;
        let mut params = HashMap::new();
        for (key, value) in pairs {
            if params.insert(key.clone(), value).is_some() {
                return Err(ApiError::invalid_request(format!(
                    "Parameter {key} is repeated."
                )));
            }
        }
        Ok(Self(params))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::invalid_request(format!("{name} is missing.")))
    }
}

/// Undoes application/x-www-form-urlencoded on one value ('+' is a space), which RFC 6749
/// §2.3.1 applies to the client id and secret before they go into the Basic header.
fn form_decode(text: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&format!("v={text}")).ok()?;
    match pairs.as_slice() {
        [(_, value)] => Some(value.clone()),
        _ => None,
    }
}

/// `Authorization: Basic …` as (client id, secret), if the header is there.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let refused = || ApiError::invalid_client("Malformed Basic client authentication.");
    let (scheme, encoded) = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .ok_or_else(refused)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(ApiError::invalid_client(
            "Client authentication must use the Basic scheme.",
        ));
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| refused())?;
    let decoded = String::from_utf8(decoded).map_err(|_| refused())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(refused)?;
    let id = form_decode(id).ok_or_else(refused)?;
    let secret = form_decode(secret).ok_or_else(refused)?;
    Ok(Some((id, secret)))
}

/// Compares digests, so the time taken does not tell how much of a guess was right.
fn same_secret(expected: &str, given: &str) -> bool {
    Sha256::digest(expected.as_bytes()) == Sha256::digest(given.as_bytes())
}

/// Authenticates the client by `client_secret_basic` or `client_secret_post` (exactly one
/// of them, RFC 6749 §2.3); returns its id.
fn authenticate(realm: &Realm, headers: &HeaderMap, form: &Form) -> Result<String, ApiError> {
    let (id, secret) = match (basic_credentials(headers)?, form.get("client_secret")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_request(
                "Use one client authentication method, not both.",
            ));
        }
        (Some((id, secret)), None) => {
            if form.get("client_id").is_some_and(|posted| posted != id) {
                return Err(ApiError::invalid_request(
                    "client_id differs from the authenticated client.",
                ));
            }
            (id, secret)
        }
        (None, Some(secret)) => {
            let id = form
                .get("client_id")
                .ok_or_else(|| ApiError::invalid_client("client_secret without client_id."))?;
            (id.to_owned(), secret.to_owned())
        }
        (None, None) => {
            return Err(ApiError::invalid_client(
                "Client authentication is required (client_secret_basic or client_secret_post).",
            ));
        }
    };
    match realm.clients.get(&id) {
        Some(client) if same_secret(&client.secret, &secret) => Ok(id),
        _ => Err(ApiError::invalid_client("Client authentication failed.")),
    }
}

/// The left half of the access token's SHA-256, base64url (OpenID Connect Core §3.1.3.6).
fn at_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(access_token.as_bytes())[..16])
}

/// The scopes granted: those asked for that the simulator knows, each once.
fn granted_scope(requested: &str) -> String {
    let mut granted: Vec<&str> = Vec::new();
    for scope in requested.split(' ') {
        if SCOPES.contains(&scope) && !granted.contains(&scope) {
            granted.push(scope);
        }
    }
    granted.join(" ")
}

/// What an ID token is made from.
#[derive(Debug)]
struct IdTokenInput<'a> {
    issuer: &'a str,
    client_id: &'a str,
    pending: &'a PendingCode,
    access_token: &'a str,
    now: i64,
}

/// The ID token's claims, with the tamper's changes.
fn id_token_claims(realm: &str, input: &IdTokenInput<'_>, tamper: &Tamper) -> Value {
    let (iat, auth_time) = if tamper.expired {
        let iat = input.now - 2 * TOKEN_TTL;
        (iat, iat)
    } else {
        (input.now, input.pending.auth_time)
    };
    let request = &input.pending.request;
    let mut claims = Map::new();
    let issuer = tamper.issuer.as_deref().unwrap_or(input.issuer);
    claims.insert("iss".into(), json!(issuer));
    let audience = tamper.audience.as_deref().unwrap_or(input.client_id);
    claims.insert("aud".into(), json!(audience));
    let user = input.pending.user;
    claims.insert("sub".into(), json!(user.subject(realm)));
    claims.insert("iat".into(), json!(iat));
    claims.insert("exp".into(), json!(iat + TOKEN_TTL));
    claims.insert("auth_time".into(), json!(auth_time));
    let nonce = tamper.nonce.as_deref().unwrap_or(&request.nonce);
    claims.insert("nonce".into(), json!(nonce));
    claims.insert("at_hash".into(), json!(at_hash(input.access_token)));
    claims.insert("amr".into(), json!(["mitid"]));
    claims.extend(user.identity_claims());
    Value::Object(claims)
}

/// Signs the claims as the tamper says: normally RS256 with the active key.
fn sign(
    keys: &[SigningKey],
    claims: &Value,
    tamper: &Tamper,
    client_secret: &str,
) -> Result<String, String> {
    match tamper.alg {
        Some(TamperAlg::Unsigned) => {
            let header = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT"}).to_string());
            let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
            Ok(format!("{header}.{payload}."))
        }
        Some(TamperAlg::Hs256) => {
            let key = EncodingKey::from_secret(client_secret.as_bytes());
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key)
                .map_err(|e| e.to_string())
        }
        None => {
            let key = if tamper.sign_with_retired {
                keys.iter().rev().find(|k| k.retired)
            } else {
                keys.last()
            };
            let key = key.ok_or("no key to sign with")?;
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some(key.kid.clone());
            jsonwebtoken::encode(&header, claims, &key.private).map_err(|e| e.to_string())
        }
    }
}

/// The whole token exchange, under the realm's lock.
fn exchange(
    realm: &mut Realm,
    issuer: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<Response, ApiError> {
    let form_encoded = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_encoded {
        return Err(ApiError::invalid_request(
            "The body must be application/x-www-form-urlencoded.",
        ));
    }
    let form = Form::parse(body)?;
    let client_id = authenticate(realm, headers, &form)?;
    match form.required("grant_type")? {
        "authorization_code" => {}
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Only grant_type=authorization_code is supported.",
            ));
        }
    }
    let code = form.required("code")?;
    let redirect_uri = form.required("redirect_uri")?;
    let verifier = form.required("code_verifier")?;
    let pending = realm.redeem(&client_id, code, redirect_uri, verifier, now)?;

    let access_token = random_token();
    let input = IdTokenInput {
        issuer,
        client_id: &client_id,
        pending: &pending,
        access_token: &access_token,
        now,
    };
    let tamper = realm.tamper.take().unwrap_or_default();
    let claims = id_token_claims(&realm.name, &input, &tamper);
    let client_secret = realm
        .clients
        .get(&client_id)
        .map(|c| c.secret.as_str())
        .unwrap_or_default();
    let id_token = sign(&realm.keys, &claims, &tamper, client_secret).map_err(|e| {
        tracing::error!(error = %e, "Signing an ID token failed.");
        ApiError::server_error("Signing the ID token failed.")
    })?;

    realm.prune(now);
    let grant = Grant {
        user: pending.user,
        expires_at: now + TOKEN_TTL,
        cpr_attempts: 0,
    };
    realm.tokens.insert(access_token.clone(), grant);
    if let Some(spent) = realm.spent.get_mut(code) {
        spent.access_token = Some(access_token.clone());
    }
    let body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": TOKEN_TTL,
        "id_token": id_token,
        "scope": granted_scope(&pending.request.scope),
    });
    Ok((no_store(), axum::Json(body)).into_response())
}

async fn token(
    State(sim): State<Sim>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let issuer = sim.issuer(&realm);
    match sim
        .with_realm(&realm, |r| exchange(r, &issuer, &headers, &body, now()))
        .await
    {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => error.into_response(),
        Err(error) => error.into_response(),
    }
}

// ---- userinfo and CPR match ----

async fn userinfo(
    State(sim): State<Sim>,
    Path(realm): Path<String>,
    headers: HeaderMap,
) -> Response {
    let answer = sim
        .with_realm(&realm, |r| {
            let user = r.grant_mut(&headers, now())?.user;
            let mut claims = Map::new();
            claims.insert("sub".into(), json!(user.subject(&r.name)));
            claims.extend(user.identity_claims());
            Some(claims)
        })
        .await;
    match answer {
        Ok(Some(claims)) => (no_store(), axum::Json(Value::Object(claims))).into_response(),
        Ok(None) => ApiError::invalid_token().into_response(),
        Err(error) => error.into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
struct CprMatchRequest {
    cpr: Option<String>,
}

/// Matches a typed CPR number against the logged-in person; never says what the right one is.
fn match_cpr(realm: &mut Realm, headers: &HeaderMap, body: &[u8]) -> Response {
    let Some(grant) = realm.grant_mut(headers, now()) else {
        return ApiError::invalid_token().into_response();
    };
    if grant.cpr_attempts >= CPR_ATTEMPTS {
        let body = json!({
            "error": "attempts_exhausted",
            "error_description": "No CPR match attempts are left for this login.",
        });
        return (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    }
    // The parser's message could quote the body, the number with it: say nothing specific.
    let request: CprMatchRequest = serde_json::from_slice(body).unwrap_or_default();
    let Some(typed) = request.cpr.as_deref().and_then(|c| Cpr::parse(c).ok()) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Expected {\"cpr\": \"DDMMYYSSSS\"} (a dash after the birth date is allowed).",
        );
    };
    grant.cpr_attempts += 1;
    let matched = Cpr::parse(grant.user.cpr).ok() == Some(typed);
    let body = json!({
        "match": matched,
        "attempts_left": CPR_ATTEMPTS - grant.cpr_attempts,
    });
    (no_store(), axum::Json(body)).into_response()
}

async fn cpr_match(
    State(sim): State<Sim>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sim.with_realm(&realm, |r| match_cpr(r, &headers, &body))
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

// ---- simulator controls ----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientRegistration {
    client_secret: String,
    redirect_uris: Vec<String>,
}

/// A redirect URI a client may register: absolute http(s), no fragment (RFC 6749 §3.1.2).
fn registrable(uri: &str) -> bool {
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/')) && !uri.contains('#')
}

async fn put_client(
    State(sim): State<Sim>,
    Path((realm, client_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let registration: ClientRegistration = match json_body(&body) {
        Ok(registration) => registration,
        Err(error) => return error.into_response(),
    };
    let bad = |description: &str| {
        json_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            description,
        )
    };
    if registration.client_secret.is_empty() {
        return bad("client_secret is required.");
    }
    if registration.redirect_uris.is_empty() {
        return bad("redirect_uris needs at least one URI.");
    }
    if !registration.redirect_uris.iter().all(|u| registrable(u)) {
        return bad("Every redirect URI must be an absolute http(s) URI without a fragment.");
    }
    let client = Client {
        secret: registration.client_secret,
        redirect_uris: registration.redirect_uris,
    };
    let stored = sim.with_realm(&realm, |r| {
        r.clients.insert(client_id, client);
    });
    match stored.await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => error.into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rotation {
    #[serde(default)]
    retire_old: bool,
}

async fn rotate_keys(State(sim): State<Sim>, Path(realm): Path<String>, body: Bytes) -> Response {
    let rotation: Rotation = match json_body(&body) {
        Ok(rotation) => rotation,
        Err(error) => return error.into_response(),
    };
    if let Err(error) = sim.ensure(&realm).await {
        return error.into_response();
    }
    let key = match generate_key().await {
        Ok(key) => key,
        Err(error) => return error.into_response(),
    };
    let kid = key.kid.clone();
    let rotated = sim.with_realm(&realm, |r| {
        if rotation.retire_old {
            for old in &mut r.keys {
                old.retired = true;
            }
        }
        r.keys.push(key);
    });
    match rotated.await {
        Ok(()) => axum::Json(json!({ "kid": kid })).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn tamper(State(sim): State<Sim>, Path(realm): Path<String>, body: Bytes) -> Response {
    let tamper: Tamper = match json_body(&body) {
        Ok(tamper) => tamper,
        Err(error) => return error.into_response(),
    };
    if tamper.alg.is_some() && tamper.sign_with_retired {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "sign_with_retired signs with RS256: it cannot be combined with alg.",
        );
    }
    let stored = sim.with_realm(&realm, |r| {
        if tamper.sign_with_retired && !r.keys.iter().any(|k| k.retired) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "no_retired_key",
                "The realm has no retired key: rotate-keys with retire_old first.",
            ));
        }
        r.tamper = Some(tamper);
        Ok(())
    });
    match stored.await {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(error)) | Err(error) => error.into_response(),
    }
}

async fn users() -> Response {
    let users: Vec<Value> = TEST_USERS
        .iter()
        .map(|u| {
            json!({
                "user": u.id,
                "name": u.name(),
                "given_name": u.given_name,
                "family_name": u.family_name,
                "birthdate": u.birthdate,
                "cpr": u.cpr,
                "loa": u.loa.uri(),
            })
        })
        .collect();
    axum::Json(json!({ "users": users })).into_response()
}

async fn unknown() -> Response {
    json_error(StatusCode::NOT_FOUND, "not_found", "No such endpoint.")
}

/// The simulator's routes.
fn router(sim: Sim) -> Router {
    Router::new()
        .route(
            "/realms/{realm}/.well-known/openid-configuration",
            get(discovery),
        )
        .route("/realms/{realm}/jwks", get(jwks))
        .route(
            "/realms/{realm}/authorize",
            get(authorize_get).post(authorize_post),
        )
        .route("/realms/{realm}/token", post(token))
        .route("/realms/{realm}/userinfo", get(userinfo).post(userinfo))
        .route("/realms/{realm}/cpr-match", post(cpr_match))
        .route("/_sim/realms/{realm}/clients/{client_id}", put(put_client))
        .route("/_sim/realms/{realm}/rotate-keys", post(rotate_keys))
        .route("/_sim/realms/{realm}/tamper", post(tamper))
        .route("/_sim/users", get(users))
        .fallback(unknown)
        .with_state(sim)
}

/// Binds the simulator and serves it until `shutdown`; returns the bound address first
/// through `on_bound`. Issuers are built from the bound address.
///
/// # Errors
/// The address cannot be bound.
pub async fn serve(
    listen: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_bound: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let address = listener.local_addr()?;
    let sim = Sim::new(format!("http://{address}"));
    on_bound(address);
    tracing::info!(%address, "OIDC broker simulator listening.");
    axum::serve(listener, router(sim))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> AuthRequest {
        AuthRequest {
            client_id: "shop".into(),
            redirect_uri: "https://shop.example/cb".into(),
            scope: "openid mitid".into(),
            state: Some("s".into()),
            nonce: "n".into(),
            // RFC 7636 appendix B.
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        }
    }

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        assert_eq!(s256(VERIFIER), request().code_challenge);
        assert!(pkce_verifier_syntax(VERIFIER));
        assert!(s256_challenge_syntax(&request().code_challenge));
        assert!(!pkce_verifier_syntax("short"));
    }

    #[test]
    fn codes_expire_after_60_seconds() {
        let mut realm = Realm::default();
        let user = TestUser::find("adult").unwrap();
        let code = realm.issue_code(&request(), user, 1_000);
        let late = realm.redeem("shop", &code, "https://shop.example/cb", VERIFIER, 1_060);
        assert_eq!(
            late.unwrap_err().description,
            "The authorization code has expired."
        );

        let code = realm.issue_code(&request(), user, 1_000);
        let in_time = realm.redeem("shop", &code, "https://shop.example/cb", VERIFIER, 1_059);
        assert_eq!(in_time.unwrap().user.id, "adult");
    }

    #[test]
    fn a_failed_exchange_spends_the_code() {
        let mut realm = Realm::default();
        let user = TestUser::find("adult").unwrap();
        let code = realm.issue_code(&request(), user, 1_000);
        let other = realm.redeem("other", &code, "https://shop.example/cb", VERIFIER, 1_001);
        assert_eq!(other.unwrap_err().error, "invalid_grant");
        let again = realm.redeem("shop", &code, "https://shop.example/cb", VERIFIER, 1_002);
        assert_eq!(
            again.unwrap_err().description,
            "The authorization code has already been used."
        );
    }

    #[test]
    fn appends_to_a_query() {
        let pairs = [("code", "a b"), ("state", "x&y")];
        assert_eq!(
            append_query("https://a.example/cb", &pairs),
            "https://a.example/cb?code=a+b&state=x%26y"
        );
        assert_eq!(
            append_query("https://a.example/cb?tenant=n", &pairs[..1]),
            "https://a.example/cb?tenant=n&code=a+b"
        );
        assert_eq!(
            append_query("https://a.example/cb?", &pairs[..1]),
            "https://a.example/cb?code=a+b"
        );
    }

    #[test]
    fn decodes_form_encoded_credentials() {
        assert_eq!(form_decode("a%3Ab+c").as_deref(), Some("a:b c"));
        assert_eq!(form_decode("").as_deref(), Some(""));
        assert_eq!(form_decode("a&b"), None);
    }

    #[test]
    fn grants_known_scopes_once() {
        assert_eq!(granted_scope("openid  mitid openid email"), "openid mitid");
    }

    #[test]
    fn realm_names() {
        assert!(valid_realm("nordlys-1"));
        assert!(valid_realm(&"a".repeat(40)));
        for bad in ["", "Nordlys", "a_b", "a.b", &"a".repeat(41)] {
            assert!(!valid_realm(bad), "{bad}");
        }
    }

    #[test]
    fn registrable_redirect_uris() {
        assert!(registrable("https://shop.example/cb"));
        assert!(registrable("http://127.0.0.1:8080/cb?x=1"));
        for bad in [
            "/cb",
            "https://",
            "https:///cb",
            "ftp://x/cb",
            "https://x/cb#f",
        ] {
            assert!(!registrable(bad), "{bad}");
        }
    }

    #[test]
    fn subjects_are_stable_per_realm_and_user() {
        let adult = TestUser::find("adult").unwrap();
        let minor = TestUser::find("minor").unwrap();
        assert_eq!(adult.subject("a"), adult.subject("a"));
        assert_ne!(adult.subject("a"), adult.subject("b"));
        assert_ne!(adult.subject("a"), minor.subject("a"));
        assert!(uuid::Uuid::parse_str(&adult.subject("a")).is_ok());
    }

    #[test]
    fn escapes_html() {
        assert_eq!(
            escape_html(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
