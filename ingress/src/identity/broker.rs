//! The relying-party side of OpenID Connect against a tenant's broker: discovery, the
//! authorization code flow with PKCE (S256), `state` and `nonce`, the token exchange with the
//! client secret, and ID-token verification against the broker's JWKS with `jsonwebtoken`
//! (RS256/ES256 only; `iss`, `aud`, `exp`, `nonce` checked; an unknown `kid` reloads the
//! JWKS once, so a broker's key rotation is followed). Also the MitID brokers' CPR match.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tcom_processors::domain::identity::Assurance;
use tcom_schemas::tenant::IdentitySettings;

/// Signing algorithms accepted on a broker's ID tokens.
pub const ALLOWED_ALGORITHMS: &[Algorithm] = &[Algorithm::RS256, Algorithm::ES256];

/// What went wrong with a broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Cannot be reached, answered 5xx or nonsense: try later.
    #[error("the identity broker is unavailable: {0}")]
    Unavailable(String),
    /// The broker refused the authorization code (reused, expired, PKCE mismatch).
    #[error("the broker refused the authorization code: {0}")]
    CodeRejected(String),
    /// The ID token does not verify.
    #[error("the ID token was rejected: {0}")]
    TokenRejected(String),
    /// The broker refused our client credentials (misconfiguration).
    #[error("the broker refused the platform's client credentials: {0}")]
    ClientRejected(String),
    /// The broker's access token for the CPR match is no longer valid.
    #[error("the authentication expired at the broker")]
    AuthenticationExpired,
    /// The broker allows no more CPR-match attempts for this authentication.
    #[error("no CPR-match attempts left for this authentication")]
    AttemptsExhausted,
}

/// The parts of a discovery document the platform uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    /// MitID brokers' CPR-match endpoint (not standard).
    #[serde(default)]
    pub cpr_match_endpoint: Option<String>,
}

/// The identity an ID token asserts.
#[derive(Debug, Clone)]
pub struct BrokerIdentity {
    pub subject: String,
    /// NSIS level (`low`, `substantial`, `high`), when the token carries one.
    pub assurance: Option<String>,
    pub identity_provider: Option<String>,
    pub name: Option<String>,
    /// The `roles` claim of workforce identities (staff), empty otherwise.
    pub roles: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct IdTokenClaims {
    sub: String,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    loa: Option<String>,
    #[serde(default)]
    acr: Option<String>,
    #[serde(default)]
    idp: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

/// A token endpoint's answer.
#[derive(Debug, Deserialize)]
pub struct TokenAnswer {
    pub access_token: String,
    pub id_token: String,
}

#[derive(Debug, Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// A started authorization request: what the browser is sent to and what the platform keeps.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub code_verifier: String,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random number generator works");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// PKCE S256: BASE64URL(SHA-256(verifier)).
pub fn code_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

const DISCOVERY_CACHE: Duration = Duration::from_secs(300);
const JWKS_CACHE: Duration = Duration::from_secs(300);
const JWKS_RELOAD_MIN: Duration = Duration::from_secs(2);

/// Talks to brokers; caches discovery documents and key sets per issuer.
pub struct Brokers {
    http: reqwest::Client,
    discovery: Mutex<HashMap<String, (Discovery, Instant)>>,
    keys: Mutex<HashMap<String, CachedKeys>>,
}

struct CachedKeys {
    set: JwkSet,
    /// Keys a broker stopped publishing stop being trusted within [`JWKS_CACHE`].
    loaded: Instant,
    /// When an unknown key id last made us read the keys again.
    reloaded: Option<Instant>,
}

impl std::fmt::Debug for Brokers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Brokers").finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Unavailable(e.to_string())
}

impl Brokers {
    /// A client that never follows redirects (a broker redirecting its token endpoint is not
    /// to be trusted) and gives up after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .no_proxy()
            .build()
            .expect("an HTTP client builds");
        Self {
            http,
            discovery: Mutex::new(HashMap::new()),
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// The broker's discovery document (cached a few minutes).
    ///
    /// # Errors
    /// Unavailable, or the document names another issuer.
    pub async fn discover(&self, issuer: &str) -> Result<Discovery, BrokerError> {
        if let Some((doc, at)) = self.discovery.lock().expect("lock").get(issuer)
            && at.elapsed() < DISCOVERY_CACHE
        {
            return Ok(doc.clone());
        }
        let url = format!("{issuer}/.well-known/openid-configuration");
        let answer = self.http.get(&url).send().await.map_err(unavailable)?;
        if !answer.status().is_success() {
            return Err(unavailable(format!("{url} answered {}", answer.status())));
        }
        let doc: Discovery = answer.json().await.map_err(unavailable)?;
        // OpenID Connect Discovery 1.0 §4.3: the issuer must be exactly the one asked for.
        if doc.issuer != issuer {
            return Err(unavailable(format!(
                "the discovery document of {issuer} names the issuer {}",
                doc.issuer
            )));
        }
        self.discovery
            .lock()
            .expect("lock")
            .insert(issuer.to_owned(), (doc.clone(), Instant::now()));
        Ok(doc)
    }

    /// The URL that starts an authentication, with fresh `state`, `nonce` and PKCE verifier.
    pub fn authorization_request(
        discovery: &Discovery,
        settings: &IdentitySettings,
        redirect_uri: &str,
    ) -> AuthorizationRequest {
        let (state, nonce, code_verifier) = (random_token(), random_token(), random_token());
        let query = serde_urlencoded::to_string([
            ("response_type", "code"),
            ("client_id", settings.client_id.as_str()),
            ("redirect_uri", redirect_uri),
            ("scope", settings.scopes.join(" ").as_str()),
            ("state", state.as_str()),
            ("nonce", nonce.as_str()),
            ("code_challenge", code_challenge(&code_verifier).as_str()),
            ("code_challenge_method", "S256"),
        ])
        .expect("strings encode");
        let separator = if discovery.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        AuthorizationRequest {
            url: format!("{}{separator}{query}", discovery.authorization_endpoint),
            state,
            nonce,
            code_verifier,
        }
    }

    /// Exchanges an authorization code (client_secret_basic).
    ///
    /// # Errors
    /// The broker refused the code or the client, or is unavailable.
    pub async fn exchange_code(
        &self,
        discovery: &Discovery,
        settings: &IdentitySettings,
        client_secret: &str,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
    ) -> Result<TokenAnswer, BrokerError> {
        // RFC 6749 §2.3.1: the id and secret are form-encoded before Basic encoding.
        let encode = |s: &str| form_urlencoded_component(s);
        let answer = self
            .http
            .post(&discovery.token_endpoint)
            .basic_auth(encode(&settings.client_id), Some(encode(client_secret)))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", code_verifier),
            ])
            .send()
            .await
            .map_err(unavailable)?;
        let status = answer.status();
        if status.is_success() {
            return answer.json().await.map_err(unavailable);
        }
        if status.is_server_error() {
            return Err(unavailable(format!("token endpoint answered {status}")));
        }
        let error: OAuthError = answer
            .json()
            .await
            .map_err(|_| unavailable(format!("token endpoint answered {status}")))?;
        let text = match &error.error_description {
            Some(d) => format!("{}: {d}", error.error),
            None => error.error.clone(),
        };
        Err(match error.error.as_str() {
            "invalid_client" | "unauthorized_client" => BrokerError::ClientRejected(text),
            _ => BrokerError::CodeRejected(text),
        })
    }

    /// The broker's keys: cached; `reload` (an unknown `kid`) reads them again, at most once
    /// per [`JWKS_RELOAD_MIN`], so tokens with made-up key ids cannot flood the broker.
    async fn key_set(&self, jwks_uri: &str, reload: bool) -> Result<JwkSet, BrokerError> {
        if let Some(cached) = self.keys.lock().expect("lock").get(jwks_uri) {
            let recently_reloaded = cached
                .reloaded
                .is_some_and(|at| at.elapsed() < JWKS_RELOAD_MIN);
            let fresh = cached.loaded.elapsed() < JWKS_CACHE;
            if (fresh && !reload) || recently_reloaded {
                return Ok(cached.set.clone());
            }
        }
        let answer = self.http.get(jwks_uri).send().await.map_err(unavailable)?;
        if !answer.status().is_success() {
            return Err(unavailable(format!(
                "{jwks_uri} answered {}",
                answer.status()
            )));
        }
        let set: JwkSet = answer.json().await.map_err(unavailable)?;
        self.keys.lock().expect("lock").insert(
            jwks_uri.to_owned(),
            CachedKeys {
                set: set.clone(),
                loaded: Instant::now(),
                reloaded: reload.then(Instant::now),
            },
        );
        Ok(set)
    }

    /// Verifies an ID token for this tenant's client and the sign-in's nonce.
    ///
    /// # Errors
    /// `TokenRejected` naming what failed; `Unavailable` when the keys cannot be read.
    pub async fn verify_id_token(
        &self,
        discovery: &Discovery,
        settings: &IdentitySettings,
        id_token: &str,
        expected_nonce: &str,
    ) -> Result<BrokerIdentity, BrokerError> {
        let rejected = |why: String| BrokerError::TokenRejected(why);
        let header = jsonwebtoken::decode_header(id_token)
            .map_err(|e| rejected(format!("unreadable header ({e})")))?;
        if !ALLOWED_ALGORITHMS.contains(&header.alg) {
            return Err(rejected(format!(
                "signed with {:?}, not one of RS256, ES256",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| rejected("the header names no key (kid)".into()))?;
        let mut set = self.key_set(&discovery.jwks_uri, false).await?;
        if set.find(&kid).is_none() {
            // Rotated since we last looked: read the broker's keys again (at most every 2 s).
            set = self.key_set(&discovery.jwks_uri, true).await?;
        }
        let jwk = set
            .find(&kid)
            .ok_or_else(|| rejected(format!("key {kid:?} is not in the broker's JWKS")))?;
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| rejected(format!("key {kid:?} is unusable ({e})")))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&discovery.issuer]);
        validation.set_audience(&[&settings.client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        let claims = jsonwebtoken::decode::<IdTokenClaims>(id_token, &key, &validation)
            .map_err(|e| rejected(e.to_string()))?
            .claims;
        if claims.nonce.as_deref() != Some(expected_nonce) {
            return Err(rejected("the nonce is not this sign-in's".into()));
        }
        Ok(BrokerIdentity {
            subject: claims.sub,
            assurance: claims
                .loa
                .as_deref()
                .or(claims.acr.as_deref())
                .and_then(|level| Assurance::parse(level).ok())
                .map(|level| level.as_str().to_owned()),
            identity_provider: claims.idp,
            name: claims.name,
            roles: claims.roles,
        })
    }

    /// Asks the broker whether `cpr` belongs to the person of this authentication.
    ///
    /// # Errors
    /// The authentication expired, its attempts are used up, or the broker is unavailable.
    pub async fn match_cpr(
        &self,
        discovery: &Discovery,
        access_token: &str,
        cpr_digits: &str,
    ) -> Result<bool, BrokerError> {
        let endpoint = discovery
            .cpr_match_endpoint
            .as_deref()
            .ok_or_else(|| unavailable("the broker offers no CPR match"))?;
        let answer = self
            .http
            .post(endpoint)
            .bearer_auth(access_token)
            .json(&serde_json::json!({ "cpr": cpr_digits }))
            .send()
            .await
            .map_err(unavailable)?;
        match answer.status().as_u16() {
            200 => {
                #[derive(Deserialize)]
                struct Match {
                    #[serde(rename = "match")]
                    matched: bool,
                }
                let m: Match = answer.json().await.map_err(unavailable)?;
                Ok(m.matched)
            }
            401 => Err(BrokerError::AuthenticationExpired),
            429 => Err(BrokerError::AttemptsExhausted),
            status => Err(unavailable(format!("CPR match answered {status}"))),
        }
    }
}

fn form_urlencoded_component(text: &str) -> String {
    serde_urlencoded::to_string([("", text)])
        .map(|s| s.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn client_credentials_are_form_encoded_before_basic_encoding() {
        assert_eq!(form_urlencoded_component("a b:c/é"), "a+b%3Ac%2F%C3%A9");
    }
}
