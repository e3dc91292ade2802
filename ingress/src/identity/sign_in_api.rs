//! Sign-in endpoints on the tenant's host:
//!
//! 1. `POST /v1/storefront/sign-in` `{redirect_uri}` starts an authentication at the tenant's
//!    broker: the answer's `authorization_url` is where the browser goes. The platform keeps
//!    the `state`, `nonce` and PKCE verifier (Redis, `identity.sign_in_ttl_seconds`).
//! 2. The broker sends the browser back to `redirect_uri?code=…&state=…`; the storefront posts
//!    both to `POST /v1/storefront/sign-in/callback`. The state is used up at once (a replay
//!    finds nothing), the code exchanged with the verifier and the client secret, the ID token
//!    verified, and a session started: the answer is the platform's session token.
//! 3. `POST /v1/storefront/sign-out` ends the session.
//!
//! `GET /.well-known/jwks.json` publishes the tenant's session-signing public keys.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tcom_schemas::tenant::{IdentitySettings, Tenant};

use super::broker::{BrokerError, Brokers};
use super::sessions::{IssuedSession, SessionRecord, unauthenticated_with};
use crate::app::AppState;
use crate::basket_api::JsonBody;
use crate::problem::Problem;
use crate::shoppers::Shopper;
use crate::tenancy::CurrentTenant;

/// Starting a sign-in.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    /// Where the broker sends the browser back to: a URL on one of the shop's domains
    /// (`https://`; `http://` in local runs).
    pub redirect_uri: String,
}

/// A started sign-in.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignInStarted {
    /// Send the browser here (the broker's login page).
    pub authorization_url: String,
    /// Comes back with the code; post both to the callback.
    pub state: String,
    /// Seconds the sign-in may take.
    pub expires_in: u64,
}

/// The broker's answer, as the redirect brought it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInCallback {
    pub state: String,
    /// The authorization code (absent when the broker reported an error).
    #[serde(default)]
    pub code: Option<String>,
    /// The broker's error (`access_denied` when the customer cancelled).
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_description: Option<String>,
}

/// A tenant's public session-signing keys (RFC 7517 JWK Set).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JwkSetDocument {
    #[schema(value_type = Vec<Object>)]
    pub keys: Vec<tcom_connectors::personal_data::PublicJwk>,
}

/// What the platform keeps of a started sign-in.
#[derive(Debug, Serialize, Deserialize)]
struct PendingSignIn {
    issuer: String,
    client_id: String,
    redirect_uri: String,
    nonce: String,
    code_verifier: String,
}

/// Where a started sign-in waits: `scope` is the tenant for customers, `staff:<tenant>` for
/// a brand's staff, `platform` for operators.
fn pending_key(scope: &str, state: &str) -> String {
    format!("tcom:sign-in:{scope}:{state}")
}

fn identity_of(tenant: &Tenant) -> Result<&IdentitySettings, Problem> {
    tenant.settings.identity.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "sign_in_not_configured",
            "This shop has no sign-in configured",
        )
    })
}

pub(crate) fn broker_problem(e: &BrokerError) -> Problem {
    match e {
        BrokerError::CodeRejected(why) => {
            unauthenticated_with("authorization_code_rejected", why.clone())
        }
        BrokerError::TokenRejected(why) => unauthenticated_with("id_token_rejected", why.clone()),
        BrokerError::AuthenticationExpired => unauthenticated_with(
            "reauthentication_required",
            "the authentication at the broker expired: sign in again",
        ),
        BrokerError::AttemptsExhausted => Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "cpr_match_locked",
            "No more CPR attempts for this sign-in",
        )
        .with_detail("sign in again to try again"),
        BrokerError::ClientRejected(_) | BrokerError::Unavailable(_) => {
            tracing::error!(error = %e, "Identity broker call failed.");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "identity_broker_unavailable",
                "The sign-in service is unavailable; try again shortly",
            )
        }
    }
}

/// A redirect URI the shop may send the browser back to: on one of its own domains.
pub(crate) fn check_redirect_uri(
    tenant: &Tenant,
    uri: &str,
    local_mode: bool,
) -> Result<(), Problem> {
    let refuse = |why: &str| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_redirect_uri",
            "The redirect URI is not one of this shop's",
        )
        .with_detail(why.to_owned())
    };
    let url = reqwest::Url::parse(uri).map_err(|_| refuse("not an absolute URL"))?;
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    if !tenant.settings.domains.contains(&host) {
        return Err(refuse("its host is not one of the shop's domains"));
    }
    let secure = url.scheme() == "https" || (local_mode && url.scheme() == "http");
    if !secure || url.fragment().is_some() || !url.username().is_empty() {
        return Err(refuse(
            "use https:// (http:// in local runs), no fragment, no user info",
        ));
    }
    Ok(())
}

/// Starts a sign-in at the shop's broker.
#[utoipa::path(post, path = "/v1/storefront/sign-in", tag = "identity",
    request_body(content = SignInRequest, content_type = "application/json"),
    responses((status = 200, description = "Where to send the browser", body = SignInStarted),
        (status = 404, description = "No sign-in configured, or no tenant on this host (`sign_in_not_configured`, `unknown_tenant`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_redirect_uri`, `invalid_body`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: over the shop's request rate", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`identity_broker_unavailable`, `session_store_unavailable`", body = Problem, content_type = "application/problem+json")))]
pub async fn start_sign_in(
    State(state): State<AppState>,
    shopper: Shopper,
    JsonBody(request): JsonBody<SignInRequest>,
) -> Result<Json<SignInStarted>, Problem> {
    let tenant = &shopper.tenant;
    let settings = identity_of(tenant)?;
    let identity = &state.identity;
    check_redirect_uri(tenant, &request.redirect_uri, identity.local_mode)?;
    begin(&state, &tenant.tenant_id, settings, &request.redirect_uri)
        .await
        .map(Json)
}

/// Starts an authentication at `settings`' broker; the pending sign-in waits under `scope`.
///
/// # Errors
/// 503 when the broker or Redis is unavailable.
pub(crate) async fn begin(
    state: &AppState,
    scope: &str,
    settings: &IdentitySettings,
    redirect_uri: &str,
) -> Result<SignInStarted, Problem> {
    let identity = &state.identity;
    let discovery = identity
        .brokers
        .discover(&settings.issuer)
        .await
        .map_err(|e| broker_problem(&e))?;
    let started = Brokers::authorization_request(&discovery, settings, redirect_uri);
    let pending = serde_json::to_string(&PendingSignIn {
        issuer: settings.issuer.clone(),
        client_id: settings.client_id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        nonce: started.nonce.clone(),
        code_verifier: started.code_verifier.clone(),
    })
    .map_err(|_| Problem::internal())?;
    let key = pending_key(scope, &started.state);
    let ttl = identity.sign_in_ttl.as_secs();
    identity
        .sessions
        .redis()
        .run(|mut c| async move { c.set_ex::<_, _, ()>(&key, pending, ttl).await })
        .await?;
    Ok(SignInStarted {
        authorization_url: started.url,
        state: started.state,
        expires_in: ttl,
    })
}

/// Finishes an authentication started by [`begin`] under `scope`: uses the state up, exchanges
/// the code and verifies the ID token.
///
/// # Errors
/// 400 for an unknown state, 401 for a cancelled sign-in, a refused code or ID token, 503
/// when the broker, the client secret or Redis is unavailable.
pub(crate) async fn finish(
    state: &AppState,
    scope: &str,
    settings: &IdentitySettings,
    client_secret: Result<String, tcom_connectors::secrets::SecretError>,
    callback: &SignInCallback,
) -> Result<(super::broker::BrokerIdentity, super::broker::TokenAnswer), Problem> {
    let identity = &state.identity;
    // Used up at once: a replayed or forged state finds nothing.
    let key = pending_key(scope, &callback.state);
    let pending: Option<String> = identity
        .sessions
        .redis()
        .run(|mut c| async move { c.get_del(&key).await })
        .await?;
    let pending: PendingSignIn = pending
        .and_then(|p| serde_json::from_str(&p).ok())
        .ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "sign_in_state_unknown",
                "This sign-in is unknown, finished or expired",
            )
            .with_detail("start the sign-in again")
        })?;
    if let Some(error) = &callback.error {
        return Err(unauthenticated_with(
            "sign_in_cancelled",
            format!(
                "the broker reported {error}{}",
                callback
                    .error_description
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ),
        ));
    }
    let code = callback.code.as_deref().ok_or_else(|| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "The body does not have the expected fields",
        )
        .with_detail("code or error is required")
    })?;
    if pending.issuer != settings.issuer || pending.client_id != settings.client_id {
        return Err(unauthenticated_with(
            "sign_in_state_unknown",
            "the sign-in settings changed since this sign-in started: start again",
        ));
    }
    let client_secret = client_secret.map_err(|e| {
        tracing::error!(scope, error = %e, "Identity client secret unavailable.");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "identity_broker_unavailable",
            "The sign-in service is unavailable; try again shortly",
        )
    })?;
    let brokers = &identity.brokers;
    let discovery = brokers
        .discover(&settings.issuer)
        .await
        .map_err(|e| broker_problem(&e))?;
    let tokens = brokers
        .exchange_code(
            &discovery,
            settings,
            &client_secret,
            code,
            &pending.redirect_uri,
            &pending.code_verifier,
        )
        .await
        .map_err(|e| broker_problem(&e))?;
    let person = brokers
        .verify_id_token(&discovery, settings, &tokens.id_token, &pending.nonce)
        .await
        .map_err(|e| {
            tracing::warn!(scope, error = %e, "ID token refused.");
            broker_problem(&e)
        })?;
    Ok((person, tokens))
}

/// The platform's customer id for a broker's subject: created on the first sign-in.
async fn customer_for(
    state: &AppState,
    tenant: &str,
    issuer: &str,
    subject: &str,
) -> Result<String, Problem> {
    let digest = state
        .identity
        .subject_key
        .digest(&format!("{issuer}\0{subject}"));
    let mut tx = state.tenant_tx(tenant).await?;
    sqlx::query(
        "INSERT INTO customer_accounts (tenant_id, issuer, subject_digest, customer_id)
         VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, issuer, subject_digest) DO NOTHING",
    )
    .bind(tenant)
    .bind(issuer)
    .bind(&digest)
    .bind(format!("cus_{}", uuid::Uuid::new_v4().simple()))
    .execute(&mut *tx)
    .await
    .map_err(|e| Problem::database(&e))?;
    let (customer,): (String,) = sqlx::query_as(
        "SELECT customer_id FROM customer_accounts
         WHERE tenant_id = $1 AND issuer = $2 AND subject_digest = $3",
    )
    .bind(tenant)
    .bind(issuer)
    .bind(&digest)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| Problem::database(&e))?;
    tx.commit().await.map_err(|e| Problem::database(&e))?;
    Ok(customer)
}

/// Finishes a sign-in: exchanges the code, verifies the ID token and starts a session.
#[utoipa::path(post, path = "/v1/storefront/sign-in/callback", tag = "identity",
    request_body(content = SignInCallback, content_type = "application/json"),
    responses((status = 200, description = "Signed in: the session token", body = IssuedSession),
        (status = 400, description = "`sign_in_state_unknown`: the state is unknown, used or expired", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`sign_in_cancelled`, `authorization_code_rejected`, `id_token_rejected`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`sign_in_not_configured`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: over the shop's request rate", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`identity_broker_unavailable`, `session_store_unavailable`", body = Problem, content_type = "application/problem+json")))]
pub async fn finish_sign_in(
    State(state): State<AppState>,
    shopper: Shopper,
    JsonBody(callback): JsonBody<SignInCallback>,
) -> Result<Json<IssuedSession>, Problem> {
    // As a storefront request: it counts against the shop's request rate.
    let tenant = shopper.tenant.clone();
    let settings = identity_of(&tenant)?;
    let identity = &state.identity;
    let client_secret = identity
        .secrets
        .resolve_for_tenant(&tenant.tenant_id, &settings.client_secret_ref);
    let (person, tokens) = finish(
        &state,
        &tenant.tenant_id,
        settings,
        client_secret,
        &callback,
    )
    .await?;
    let customer_id =
        customer_for(&state, &tenant.tenant_id, &settings.issuer, &person.subject).await?;
    let name_sealed = match &person.name {
        Some(name) => {
            let key = identity
                .key_store()
                .data_key_or_create(&tenant.tenant_id, &customer_id)
                .await
                .map_err(|e| super::sessions::key_store_unavailable(&e))?;
            let context = tcom_connectors::personal_data::field_context(
                &tenant.tenant_id,
                &customer_id,
                "name",
            );
            Some(
                key.seal_text(name, &context)
                    .map_err(|_| Problem::internal())?,
            )
        }
        None => None,
    };
    let record = SessionRecord {
        customer_id,
        assurance: person.assurance,
        identity_provider: person.identity_provider,
        name_sealed,
        ..SessionRecord::default()
    };
    let issued = identity
        .sessions
        .start(&tenant.tenant_id, record, Some(&tokens.access_token))
        .await?;
    tracing::info!(tenant = %tenant.tenant_id, customer = %issued.customer_id, "Customer signed in.");
    Ok(Json(issued))
}

/// Ends the caller's session: the token is refused from now on.
#[utoipa::path(post, path = "/v1/storefront/sign-out", tag = "identity",
    security(("customer" = [])),
    responses((status = 204, description = "Signed out"),
        (status = 401, description = "No valid session", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`session_store_unavailable`", body = Problem, content_type = "application/problem+json")))]
pub async fn sign_out(
    State(state): State<AppState>,
    shopper: Shopper,
) -> Result<StatusCode, Problem> {
    let session = shopper
        .session
        .as_ref()
        .ok_or_else(|| Problem::unauthenticated("sign-out needs the customer's bearer token"))?;
    state
        .identity
        .sessions
        .end(&shopper.tenant.tenant_id, &session.sub, &session.sid)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The shop's public session-signing keys: verifies the platform's customer tokens.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "identity",
    responses((status = 200, description = "The JWK Set", body = JwkSetDocument),
        (status = 404, description = "`unknown_tenant`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The key store is unavailable", body = Problem, content_type = "application/problem+json")))]
pub async fn jwks(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
) -> Result<Response, Problem> {
    let keys = state.identity.sessions.jwks(&tenant.tenant_id).await?;
    let mut response = Json(JwkSetDocument { keys }).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(response)
}
