//! Staff sign-in through OpenID Connect, replacing admin tokens signed with one shared secret.
//!
//! - **Brand staff** sign in at their tenant's broker, on the tenant's host:
//!   `POST /v1/admin/sign-in` and `…/callback`, the same flow as customers. Their roles
//!   (`brand_admin`, `catalog_manager`, `catalog_viewer`) come from the tenant's role table,
//!   keyed by a `staff_id` (a keyed digest of the broker's subject: the table never holds the
//!   subject). A first sign-in without roles answers 403 `no_staff_roles` naming the
//!   `staff_id`, which a brand admin or a platform operator grants:
//!   `PUT /v1/admin/staff/{staff_id}`.
//! - **Platform operators** sign in at the platform's workforce identity provider
//!   (`identity.operator_*` settings): `POST /v1/platform/sign-in` and `…/callback`; the ID
//!   token's `roles` claim must hold `platform_operator`.
//!
//! Either way the platform issues an ES256 staff token signed with the tenant's key (the
//! platform's own key for operators), naming a session in Redis that `POST
//! /v1/admin/sign-out` ends. Tokens signed with `auth.admin_jwt_secret` (`tcom token`) are
//! accepted in local runs only.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tcom_schemas::tenant::IdentitySettings;

use super::sessions::{PLATFORM_SCOPE, now_secs};
use super::sign_in_api::{SignInCallback, SignInRequest, SignInStarted, begin, finish};
use crate::app::AppState;
use crate::auth::{
    AdminClaims, AdminPrincipal, BRAND_ADMIN, CATALOG_MANAGER, CATALOG_VIEWER, PLATFORM_OPERATOR,
};
use crate::basket_api::JsonBody;
use crate::problem::Problem;
use crate::tenancy::CurrentTenant;

/// Roles a brand may grant its staff.
pub const BRAND_ROLES: &[&str] = &[BRAND_ADMIN, CATALOG_MANAGER, CATALOG_VIEWER];

/// A signed-in staff member's token.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedStaffSession {
    /// Send it as `Authorization: Bearer <token>` to the admin (or platform) API.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: &'static str,
    pub expires_in: u64,
    pub staff_id: String,
    pub roles: Vec<String>,
}

/// Roles granted to a staff member of this brand.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// Any of `brand_admin`, `catalog_manager`, `catalog_viewer`; empty revokes every role.
    pub roles: Vec<String>,
}

/// A staff member of this brand and their roles.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StaffMember {
    pub staff_id: String,
    pub roles: Vec<String>,
    pub granted_by: String,
    pub granted_at: String,
}

/// The brand's staff.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StaffList {
    pub items: Vec<StaffMember>,
}

/// The `iss` of staff tokens of `scope` (a tenant, or the platform).
pub fn staff_issuer(scope: &str) -> String {
    format!("tcom/{scope}/staff")
}

fn staff_session_key(scope: &str, sid: &str) -> String {
    format!("tcom:staff-session:{scope}:{sid}")
}

/// Verifies an ES256 staff token: signed by the key of the tenant it names (the platform's
/// key when it names none) and its session alive. Whether the tenant is the host's is the
/// caller's check ([`AdminPrincipal::require_tenant_role`]).
///
/// # Errors
/// 401 for anything that does not verify or a session that ended; 503 when the key store or
/// Redis is unavailable.
pub async fn verify_staff_token(state: &AppState, token: &str) -> Result<AdminClaims, Problem> {
    let rejected = |why: &str| Problem::unauthenticated(format!("token rejected: {why}"));
    let header = jsonwebtoken::decode_header(token).map_err(|_| rejected("unreadable"))?;
    let kid = header.kid.ok_or_else(|| rejected("no kid"))?;
    // Which tenant's keys to try comes from the (not yet trusted) claims; the signature must
    // then verify with that tenant's key, so naming another tenant gains nothing.
    let mut peek = Validation::new(Algorithm::ES256);
    peek.insecure_disable_signature_validation();
    peek.validate_exp = false;
    peek.validate_aud = false;
    let claimed = jsonwebtoken::decode::<AdminClaims>(token, &DecodingKey::from_secret(&[]), &peek)
        .map_err(|_| rejected("unreadable claims"))?
        .claims;
    let scope = claimed.tenant.as_deref().unwrap_or(PLATFORM_SCOPE);
    let sessions = &state.identity.sessions;
    let key = sessions
        .verification_key(scope, &kid)
        .await?
        .ok_or_else(|| rejected("not signed by a key of the tenant it names"))?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[staff_issuer(scope)]);
    validation.set_audience(&[&state.identity.admin_audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 30;
    let claims = jsonwebtoken::decode::<AdminClaims>(token, &key, &validation)
        .map_err(|e| rejected(&e.to_string()))?
        .claims;
    let sid = claims
        .sid
        .as_deref()
        .ok_or_else(|| rejected("no session"))?;
    if !sessions.exists(staff_session_key(scope, sid)).await? {
        return Err(Problem::unauthenticated(
            "the staff session ended (signed out or expired): sign in again",
        ));
    }
    Ok(claims)
}

/// Starts a staff session of `scope` and signs its token.
async fn start_staff_session(
    state: &AppState,
    tenant: Option<&str>,
    staff_id: &str,
    roles: Vec<String>,
) -> Result<IssuedStaffSession, Problem> {
    let scope = tenant.unwrap_or(PLATFORM_SCOPE);
    let sessions = &state.identity.sessions;
    let sid = uuid::Uuid::new_v4().simple().to_string();
    let ttl = sessions.ttl().as_secs();
    let now = now_secs();
    let claims = AdminClaims {
        sub: format!("staff:{staff_id}"),
        tenant: tenant.map(str::to_owned),
        roles: roles.clone(),
        iss: staff_issuer(scope),
        aud: state.identity.admin_audience.clone(),
        exp: now + ttl,
        sid: Some(sid.clone()),
    };
    let token = sessions.sign(scope, &claims).await?;
    sessions
        .store(staff_session_key(scope, &sid), staff_id.to_owned())
        .await?;
    Ok(IssuedStaffSession {
        access_token: token,
        token_type: "Bearer",
        expires_in: ttl,
        staff_id: staff_id.to_owned(),
        roles,
    })
}

fn staff_id_of(state: &AppState, issuer: &str, subject: &str) -> String {
    let digest = state
        .identity
        .subject_key
        .digest(&format!("staff\0{issuer}\0{subject}"));
    digest[..32].to_owned()
}

fn brand_identity(tenant: &tcom_schemas::tenant::Tenant) -> Result<&IdentitySettings, Problem> {
    tenant.settings.identity.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "sign_in_not_configured",
            "This brand has no sign-in configured",
        )
    })
}

fn staff_scope(tenant: &str) -> String {
    format!("staff:{tenant}")
}

/// Starts a brand staff member's sign-in at the brand's broker.
#[utoipa::path(post, path = "/v1/admin/sign-in", tag = "admin",
    request_body(content = SignInRequest, content_type = "application/json"),
    responses((status = 200, description = "Where to send the browser", body = SignInStarted),
        (status = 404, description = "`sign_in_not_configured`, `unknown_tenant`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_redirect_uri`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`identity_broker_unavailable`, `session_store_unavailable`", body = Problem, content_type = "application/problem+json")))]
pub async fn start_staff_sign_in(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    JsonBody(request): JsonBody<SignInRequest>,
) -> Result<Json<SignInStarted>, Problem> {
    let settings = brand_identity(&tenant)?;
    super::sign_in_api::check_redirect_uri(
        &tenant,
        &request.redirect_uri,
        state.identity.local_mode,
    )?;
    begin(
        &state,
        &staff_scope(&tenant.tenant_id),
        settings,
        &request.redirect_uri,
    )
    .await
    .map(Json)
}

/// Finishes a brand staff member's sign-in: their roles come from the brand's role table.
#[utoipa::path(post, path = "/v1/admin/sign-in/callback", tag = "admin",
    request_body(content = SignInCallback, content_type = "application/json"),
    responses((status = 200, description = "Signed in: the staff token", body = IssuedStaffSession),
        (status = 400, description = "`sign_in_state_unknown`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`sign_in_cancelled`, `authorization_code_rejected`, `id_token_rejected`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`no_staff_roles`: the detail names the staff id to grant roles to", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`identity_broker_unavailable`", body = Problem, content_type = "application/problem+json")))]
pub async fn finish_staff_sign_in(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    JsonBody(callback): JsonBody<SignInCallback>,
) -> Result<Json<IssuedStaffSession>, Problem> {
    let settings = brand_identity(&tenant)?;
    let secret = state
        .identity
        .secrets
        .resolve_for_tenant(&tenant.tenant_id, &settings.client_secret_ref);
    let (person, _) = finish(
        &state,
        &staff_scope(&tenant.tenant_id),
        settings,
        secret,
        &callback,
    )
    .await?;
    let staff_id = staff_id_of(&state, &settings.issuer, &person.subject);
    let mut tx = state.tenant_tx(&tenant.tenant_id).await?;
    let roles: Option<(Vec<String>,)> =
        sqlx::query_as("SELECT roles FROM staff_roles WHERE staff_id = $1")
            .bind(&staff_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| Problem::database(&e))?;
    tx.commit().await.map_err(|e| Problem::database(&e))?;
    let Some((roles,)) = roles else {
        return Err(Problem::forbidden(
            "no_staff_roles",
            format!(
                "staff id {staff_id} has no roles at this brand: a brand admin grants them \
                 (PUT /v1/admin/staff/{staff_id})"
            ),
        ));
    };
    tracing::info!(tenant = %tenant.tenant_id, staff_id, "Staff signed in.");
    start_staff_session(&state, Some(&tenant.tenant_id), &staff_id, roles)
        .await
        .map(Json)
}

fn operator_identity(state: &AppState) -> Result<IdentitySettings, Problem> {
    let identity = &state.identity;
    if identity.operators.issuer.is_empty() {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "sign_in_not_configured",
            "Operator sign-in is not configured",
        ));
    }
    Ok(identity.operators.clone())
}

/// Starts a platform operator's sign-in at the platform's identity provider.
#[utoipa::path(post, path = "/v1/platform/sign-in", tag = "platform",
    request_body(content = SignInRequest, content_type = "application/json"),
    responses((status = 200, description = "Where to send the browser", body = SignInStarted),
        (status = 404, description = "`sign_in_not_configured`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_redirect_uri`: not one of `identity.operator_redirect_uris`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`identity_broker_unavailable`", body = Problem, content_type = "application/problem+json")))]
pub async fn start_operator_sign_in(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<SignInRequest>,
) -> Result<Json<SignInStarted>, Problem> {
    let settings = operator_identity(&state)?;
    if !state
        .identity
        .operator_redirect_uris
        .contains(&request.redirect_uri)
    {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_redirect_uri",
            "The redirect URI is not one of the admin console's",
        ));
    }
    begin(&state, "platform", &settings, &request.redirect_uri)
        .await
        .map(Json)
}

/// Finishes a platform operator's sign-in: the ID token's `roles` must hold
/// `platform_operator`.
#[utoipa::path(post, path = "/v1/platform/sign-in/callback", tag = "platform",
    request_body(content = SignInCallback, content_type = "application/json"),
    responses((status = 200, description = "Signed in: the operator token", body = IssuedStaffSession),
        (status = 400, description = "`sign_in_state_unknown`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`sign_in_cancelled`, `authorization_code_rejected`, `id_token_rejected`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`not_an_operator`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`identity_broker_unavailable`", body = Problem, content_type = "application/problem+json")))]
pub async fn finish_operator_sign_in(
    State(state): State<AppState>,
    JsonBody(callback): JsonBody<SignInCallback>,
) -> Result<Json<IssuedStaffSession>, Problem> {
    let settings = operator_identity(&state)?;
    let secret = state.identity.secrets.resolve(&settings.client_secret_ref);
    let (person, _) = finish(&state, "platform", &settings, secret, &callback).await?;
    if !person.roles.iter().any(|r| r == PLATFORM_OPERATOR) {
        return Err(Problem::forbidden(
            "not_an_operator",
            "the identity provider does not name this person a platform_operator",
        ));
    }
    let staff_id = staff_id_of(&state, &settings.issuer, &person.subject);
    tracing::info!(staff_id, "Platform operator signed in.");
    start_staff_session(&state, None, &staff_id, vec![PLATFORM_OPERATOR.to_owned()])
        .await
        .map(Json)
}

/// Ends the caller's staff session.
#[utoipa::path(post, path = "/v1/admin/sign-out", tag = "admin",
    security(("admin" = [])),
    responses((status = 204, description = "Signed out"),
        (status = 401, description = "No staff session (local tokens have none)", body = Problem, content_type = "application/problem+json")))]
pub async fn staff_sign_out(
    State(state): State<AppState>,
    principal: AdminPrincipal,
) -> Result<StatusCode, Problem> {
    let sid = principal
        .0
        .sid
        .as_deref()
        .ok_or_else(|| Problem::unauthenticated("this token has no session to end"))?;
    let scope = principal.0.tenant.as_deref().unwrap_or(PLATFORM_SCOPE);
    state
        .identity
        .sessions
        .forget(staff_session_key(scope, sid))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Brand admins of this tenant, and platform operators, manage the brand's staff.
fn require_staff_manager(
    principal: &AdminPrincipal,
    tenant: &tcom_schemas::tenant::Tenant,
) -> Result<(), Problem> {
    if principal.require_platform_operator().is_ok() {
        return Ok(());
    }
    principal.require_tenant_role(tenant, &[BRAND_ADMIN])
}

/// Grants (replaces) or, with no roles, revokes a staff member's roles at this brand.
#[utoipa::path(put, path = "/v1/admin/staff/{staff_id}", tag = "admin",
    security(("admin" = [])),
    request_body(content = GrantRequest, content_type = "application/json"),
    responses((status = 204, description = "Granted (or revoked)"),
        (status = 401, description = "No admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a brand admin of this brand nor a platform operator", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_role`, `invalid_staff_id`", body = Problem, content_type = "application/problem+json")))]
pub async fn grant_roles(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    principal: AdminPrincipal,
    Path(staff_id): Path<String>,
    JsonBody(request): JsonBody<GrantRequest>,
) -> Result<StatusCode, Problem> {
    require_staff_manager(&principal, &tenant)?;
    if staff_id.len() != 32 || !staff_id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_staff_id",
            "Not a staff id",
        )
        .with_detail("a staff id is the 32 hex digits a sign-in without roles names"));
    }
    if let Some(unknown) = request
        .roles
        .iter()
        .find(|r| !BRAND_ROLES.contains(&r.as_str()))
    {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_role",
            "Not a role a brand grants",
        )
        .with_detail(format!(
            "{unknown:?} is not one of {}",
            BRAND_ROLES.join(", ")
        )));
    }
    let mut roles = request.roles.clone();
    roles.sort();
    roles.dedup();
    let mut tx = state.tenant_tx(&tenant.tenant_id).await?;
    if roles.is_empty() {
        sqlx::query("DELETE FROM staff_roles WHERE staff_id = $1")
            .bind(&staff_id)
            .execute(&mut *tx)
            .await
    } else {
        sqlx::query(
            "INSERT INTO staff_roles (tenant_id, staff_id, roles, granted_by) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, staff_id)
             DO UPDATE SET roles = $3, granted_by = $4, granted_at = now()",
        )
        .bind(&tenant.tenant_id)
        .bind(&staff_id)
        .bind(&roles)
        .bind(&principal.0.sub)
        .execute(&mut *tx)
        .await
    }
    .map_err(|e| Problem::database(&e))?;
    tx.commit().await.map_err(|e| Problem::database(&e))?;
    tracing::info!(tenant = %tenant.tenant_id, staff_id, ?roles, by = %principal.0.sub, "Staff roles changed.");
    Ok(StatusCode::NO_CONTENT)
}

/// The brand's staff and their roles.
#[utoipa::path(get, path = "/v1/admin/staff", tag = "admin",
    security(("admin" = [])),
    responses((status = 200, description = "This brand's staff only", body = StaffList),
        (status = 401, description = "No admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a brand admin of this brand nor a platform operator", body = Problem, content_type = "application/problem+json")))]
pub async fn list_staff(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    principal: AdminPrincipal,
) -> Result<Json<StaffList>, Problem> {
    require_staff_manager(&principal, &tenant)?;
    let mut tx = state.tenant_tx(&tenant.tenant_id).await?;
    // No tenant filter on purpose: Row-Level Security scopes the query.
    let rows = sqlx::query(
        "SELECT staff_id, roles, granted_by, granted_at::text FROM staff_roles ORDER BY granted_at",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| Problem::database(&e))?;
    tx.commit().await.map_err(|e| Problem::database(&e))?;
    Ok(Json(StaffList {
        items: rows
            .iter()
            .map(|r| StaffMember {
                staff_id: r.get(0),
                roles: r.get(1),
                granted_by: r.get(2),
                granted_at: r.get(3),
            })
            .collect(),
    }))
}
