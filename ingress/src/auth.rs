//! Admin and platform-operator authentication: bearer JWTs with a `tenant` claim and
//! `roles` — ES256 staff tokens the platform issues after an OIDC sign-in (see
//! [`crate::identity::staff`]), or, in local runs only, HS256 tokens `tcom token` signs with
//! the shared development secret.
//!
//! A brand partner's token names its tenant; it is honoured only on that tenant's own hosts,
//! so tenant A's token sent to tenant B's host is refused even for reads. Platform operators
//! carry `platform_operator` and no tenant.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tcom_schemas::tenant::Tenant;

use crate::app::AppState;
use crate::problem::Problem;
use crate::settings::AuthSettings;

/// Runs the platform: onboards and suspends tenants.
pub const PLATFORM_OPERATOR: &str = "platform_operator";
/// Everything within one tenant.
pub const BRAND_ADMIN: &str = "brand_admin";
/// Changes one tenant's offerings and campaigns.
pub const CATALOG_MANAGER: &str = "catalog_manager";
/// Reads one tenant's catalog administration.
pub const CATALOG_VIEWER: &str = "catalog_viewer";

/// Roles that may change a catalog.
pub const CATALOG_WRITERS: &[&str] = &[BRAND_ADMIN, CATALOG_MANAGER];
/// Roles that may read the catalog administration.
pub const CATALOG_READERS: &[&str] = &[BRAND_ADMIN, CATALOG_MANAGER, CATALOG_VIEWER];

/// The claims of an admin token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminClaims {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    pub iss: String,
    pub aud: String,
    pub exp: u64,
    /// The staff session (tokens from an OIDC sign-in; `tcom token`'s have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// Verifies (and, for local use and tests, issues) admin tokens.
#[derive(Clone)]
pub struct AdminAuth {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAuth")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl AdminAuth {
    pub fn new(settings: &AuthSettings) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&settings.admin_issuer]);
        validation.set_audience(&[&settings.admin_audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        Self {
            decoding: DecodingKey::from_secret(settings.admin_jwt_secret.as_bytes()),
            encoding: EncodingKey::from_secret(settings.admin_jwt_secret.as_bytes()),
            validation,
            issuer: settings.admin_issuer.clone(),
            audience: settings.admin_audience.clone(),
        }
    }

    /// Issues a token (local runs, tests, `tcom token`).
    pub fn issue(
        &self,
        subject: &str,
        tenant: Option<&str>,
        roles: &[&str],
        ttl_secs: u64,
    ) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let claims = AdminClaims {
            sub: subject.to_owned(),
            tenant: tenant.map(str::to_owned),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: now + ttl_secs,
            sid: None,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing does not fail")
    }

    /// Verifies a token.
    ///
    /// # Errors
    /// 401 for a bad signature, an expired token or a wrong issuer/audience.
    pub fn verify(&self, token: &str) -> Result<AdminClaims, Problem> {
        jsonwebtoken::decode::<AdminClaims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| Problem::unauthenticated(format!("token rejected: {e}")))
    }
}

/// The verified caller of an admin or platform endpoint.
#[derive(Debug, Clone)]
pub struct AdminPrincipal(pub AdminClaims);

impl AdminPrincipal {
    /// Whom an idempotency key of this caller belongs to: the token's subject at its tenant.
    pub fn idempotency_scope(&self) -> String {
        format!(
            "admin:{}:{}",
            self.0.tenant.as_deref().unwrap_or("*"),
            self.0.sub
        )
    }

    fn has_any(&self, roles: &[&str]) -> bool {
        self.0.roles.iter().any(|r| roles.contains(&r.as_str()))
    }

    /// Only platform operators.
    ///
    /// # Errors
    /// 403 `forbidden`.
    pub fn require_platform_operator(&self) -> Result<(), Problem> {
        if self.has_any(&[PLATFORM_OPERATOR]) {
            Ok(())
        } else {
            Err(Problem::forbidden(
                "forbidden",
                "this needs the platform_operator role",
            ))
        }
    }

    /// A caller of this tenant with one of `roles`.
    ///
    /// # Errors
    /// 403 `tenant_mismatch` when the token belongs to another tenant (or none), 403
    /// `forbidden` when the role is missing.
    pub fn require_tenant_role(&self, tenant: &Tenant, roles: &[&str]) -> Result<(), Problem> {
        if self.0.tenant.as_deref() != Some(tenant.tenant_id.as_str()) {
            return Err(Problem::forbidden(
                "tenant_mismatch",
                "the token does not belong to the tenant served on this host",
            ));
        }
        if !self.has_any(roles) {
            return Err(Problem::forbidden(
                "forbidden",
                format!("this needs one of the roles {}", roles.join(", ")),
            ));
        }
        Ok(())
    }
}

impl FromRequestParts<AppState> for AdminPrincipal {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .ok_or_else(|| Problem::unauthenticated("no Authorization header"))?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| Problem::unauthenticated("expected `Authorization: Bearer <token>`"))?
            .trim();
        let alg = jsonwebtoken::decode_header(token)
            .map(|h| h.alg)
            .map_err(|e| Problem::unauthenticated(format!("token rejected: {e}")))?;
        match alg {
            Algorithm::ES256 => crate::identity::staff::verify_staff_token(state, token)
                .await
                .map(Self),
            // One secret for every tenant's staff: for local runs and tests only.
            Algorithm::HS256 if state.identity.local_mode => state.auth.verify(token).map(Self),
            Algorithm::HS256 => Err(Problem::unauthenticated(
                "tokens signed with the shared development secret are accepted in local runs \
                 only: sign in through /v1/admin/sign-in (staff) or /v1/platform/sign-in (operators)",
            )),
            other => Err(Problem::unauthenticated(format!(
                "token rejected: {other:?} is not accepted"
            ))),
        }
    }
}
