//! Who is shopping: signed-in customers (session tokens the platform issued after a sign-in
//! through the tenant's broker, see [`crate::identity`]), guests holding a basket's signed guest
//! token, and the per-tenant request rate that keeps one brand from starving the others.
//!
//! A guest token is an HMAC over the tenant and the basket id: whoever holds it may act on that
//! basket while it has no customer; it proves nothing about any other basket or tenant.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tcom_schemas::tenant::{StorefrontPolicy, Tenant};
use tokio::sync::OnceCell;

use crate::app::AppState;
use crate::identity::sessions::SessionClaims;
use crate::problem::Problem;
use crate::settings::AuthSettings;
use crate::tenancy::CurrentTenant;

/// The header carrying a guest basket's token.
pub const BASKET_TOKEN_HEADER: &str = "basket-token";

/// Signs and checks guest tokens. (Customer session tokens: [`crate::identity::sessions`].)
#[derive(Clone)]
pub struct ShopperAuth {
    guest_key: Vec<u8>,
}

impl std::fmt::Debug for ShopperAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopperAuth").finish_non_exhaustive()
    }
}

impl ShopperAuth {
    pub fn new(settings: &AuthSettings) -> Self {
        Self {
            guest_key: settings.guest_token_secret.as_bytes().to_vec(),
        }
    }

    fn guest_mac(&self, tenant: &str, basket_id: &str) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.guest_key).expect("HMAC takes any key length");
        mac.update(b"tcom-guest-basket\0");
        mac.update(tenant.as_bytes());
        mac.update(b"\0");
        mac.update(basket_id.as_bytes());
        mac
    }

    /// The guest token of a basket.
    pub fn guest_token(&self, tenant: &str, basket_id: &str) -> String {
        hex::encode(self.guest_mac(tenant, basket_id).finalize().into_bytes())
    }

    /// Whether `token` is the guest token of this tenant's basket (constant-time).
    pub fn is_guest_token(&self, tenant: &str, basket_id: &str, token: &str) -> bool {
        hex::decode(token)
            .map(|bytes| {
                self.guest_mac(tenant, basket_id)
                    .verify_slice(&bytes)
                    .is_ok()
            })
            .unwrap_or(false)
    }
}

/// A storefront caller: the tenant of the host, the customer if signed in, and the guest
/// token if one was presented. Extracting it also spends one unit of the tenant's rate.
#[derive(Debug, Clone)]
pub struct Shopper {
    pub tenant: Arc<Tenant>,
    pub customer_id: Option<String>,
    /// The verified session of a signed-in customer.
    pub session: Option<SessionClaims>,
    guest_token: Option<String>,
}

impl Shopper {
    /// Whom this caller's idempotency keys on `basket_id` belong to: the signed-in customer,
    /// else the holder of the basket's guest token, else nobody (`None`: a key is not
    /// honoured, see [`crate::command_api`]).
    pub fn idempotency_scope(&self, auth: &ShopperAuth, basket_id: &str) -> Option<String> {
        match &self.customer_id {
            Some(customer) => Some(format!("customer:{customer}")),
            None if self.holds_guest_token(auth, basket_id) => Some(format!("guest:{basket_id}")),
            None => None,
        }
    }

    /// Whether the caller holds `basket_id`'s guest token.
    pub fn holds_guest_token(&self, auth: &ShopperAuth, basket_id: &str) -> bool {
        self.guest_token
            .as_deref()
            .is_some_and(|t| auth.is_guest_token(&self.tenant.tenant_id, basket_id, t))
    }
}

impl FromRequestParts<AppState> for Shopper {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let CurrentTenant(tenant) = CurrentTenant::from_request_parts(parts, state).await?;
        state.rate_limits.spend(&tenant).await?;
        let session = match parts.headers.get(AUTHORIZATION) {
            None => None,
            Some(value) => {
                let token = value
                    .to_str()
                    .ok()
                    .and_then(|h| h.strip_prefix("Bearer "))
                    .ok_or_else(|| {
                        Problem::unauthenticated("expected `Authorization: Bearer <token>`")
                    })?;
                Some(
                    state
                        .identity
                        .sessions
                        .verify(&tenant.tenant_id, token.trim())
                        .await?
                        .claims,
                )
            }
        };
        let guest_token = parts
            .headers
            .get(BASKET_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Self {
            tenant,
            customer_id: session.as_ref().map(|s| s.sub.clone()),
            session,
            guest_token,
        })
    }
}

/// Per-tenant request rates, counted in Redis per second so every ingress instance shares the
/// count. When Redis cannot be reached the request goes through (logged): a shop that sells
/// unmetered for a moment is better than a shop that does not sell.
pub struct RateLimits {
    client: redis::Client,
    connection: OnceCell<redis::aio::ConnectionManager>,
    /// A Redis that accepts connections but does not answer must not hold requests: after
    /// this long the request passes unmetered, as when Redis is down.
    timeout: std::time::Duration,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("connected", &self.connection.initialized())
            .finish_non_exhaustive()
    }
}

impl RateLimits {
    pub fn new(client: redis::Client, timeout: std::time::Duration) -> Self {
        Self {
            client,
            connection: OnceCell::new(),
            timeout,
        }
    }

    /// Counts a request of `tenant`.
    ///
    /// # Errors
    /// 429 `rate_limited` with `Retry-After: 1` when the tenant is over its rate this second.
    pub async fn spend(&self, tenant: &Tenant) -> Result<(), Problem> {
        let limit = tenant
            .settings
            .storefront
            .unwrap_or(StorefrontPolicy::PLATFORM_DEFAULT)
            .requests_per_second;
        let second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let key = format!("tcom:rate:{}:{second}", tenant.tenant_id);
        let count = async {
            let connection = self
                .connection
                .get_or_try_init(|| self.client.get_connection_manager())
                .await?;
            let mut connection = connection.clone();
            redis::pipe()
                .atomic()
                .incr(&key, 1)
                .expire(&key, 2)
                .ignore()
                .query_async::<(i64,)>(&mut connection)
                .await
        };
        let count = tokio::time::timeout(self.timeout, count)
            .await
            .unwrap_or_else(|_| {
                Err(redis::RedisError::from((
                    redis::ErrorKind::IoError,
                    "no answer in time",
                )))
            });
        match count {
            Ok((count,)) if count > i64::from(limit) => Err(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many requests for this shop; slow down",
            )
            .with_detail(format!("the shop allows {limit} requests per second"))),
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "Rate limit not checked: Redis unavailable.");
                Ok(())
            }
        }
    }
}

/// Adds `Retry-After` to 429 answers (see [`crate::problem::normalise_errors`]).
pub async fn with_retry_after(mut response: Response) -> Response {
    if response.status() == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
    }
    response
}
