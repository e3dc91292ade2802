//! Tenants: the brands on the platform.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Whether a tenant's storefronts answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TenantStatus {
    Active,
    Suspended,
}

/// A customer segment and its legal binding cap (Denmark consumer: 6 months; EU consumer: 24).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerSegment {
    pub name: String,
    pub max_binding_months: i32,
}

/// Where a tenant's payment provider account and secret live; the secret itself never
/// travels through Kafka.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentSettings {
    pub provider: String,
    pub account_ref: String,
    pub secret_ref: String,
    /// Reference to the webhook signing secret (Stripe `whsec_…`, Adyen HMAC key).
    #[serde(default)]
    pub webhook_secret_ref: Option<String>,
}

/// Everything a platform operator configures for a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSettings {
    pub name: String,
    pub domains: Vec<String>,
    pub default_locale: String,
    pub locales: Vec<String>,
    pub currency: String,
    pub country: String,
    pub segments: Vec<CustomerSegment>,
    pub channels: Vec<String>,
    #[serde(default)]
    pub theme: BTreeMap<String, String>,
    #[serde(default)]
    pub payment: Option<PaymentSettings>,
    #[serde(default)]
    pub content: Option<ContentSettings>,
    #[serde(default)]
    pub storefront: Option<StorefrontPolicy>,
    #[serde(default)]
    pub identity: Option<IdentitySettings>,
}

/// The tenant's OpenID Connect broker for customer sign-in (MitID through a broker in
/// Denmark, whatever the brand chooses elsewhere). The client secret is a reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentitySettings {
    /// The broker's issuer; discovery at `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// `file://…` or `env://…`: where the client secret lives.
    pub client_secret_ref: String,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The broker matches a CPR number the customer types against the signed-in MitID user.
    #[serde(default)]
    pub cpr_matching: bool,
    /// `None`: orders need no verified owner.
    #[serde(default)]
    pub owner_verification: Option<OwnerVerificationPolicy>,
}

fn default_scopes() -> Vec<String> {
    vec!["openid".to_owned()]
}

/// What a tenant requires of a subscription's owner before an order is captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerVerificationPolicy {
    /// NSIS level of assurance: `low`, `substantial` or `high`.
    pub min_assurance: String,
    #[serde(default = "default_min_age")]
    pub min_age: i32,
    /// `fail` (the order fails: payment voided, numbers released) or `hold` (an agent decides).
    #[serde(default = "default_on_failure")]
    pub on_failure: String,
    /// Unverified this long after payment: the order ends as `on_failure` says.
    #[serde(default = "default_verification_timeout")]
    pub timeout_seconds: i32,
}

fn default_min_age() -> i32 {
    18
}

fn default_on_failure() -> String {
    "fail".to_owned()
}

fn default_verification_timeout() -> i32 {
    1800
}

/// How a tenant's storefront treats baskets, reservations and request rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorefrontPolicy {
    /// An untouched basket is abandoned after this long (its numbers released).
    pub basket_ttl_seconds: i32,
    /// A picked number is held this long, extended while the basket is changed.
    pub reservation_ttl_seconds: i32,
    /// Storefront requests per second the tenant may make before getting 429.
    pub requests_per_second: i32,
    /// How long a checked-out basket's prices and numbers hold while the customer pays; an
    /// order not paid by then fails and its numbers are released.
    #[serde(default = "default_checkout_freeze_seconds")]
    pub checkout_freeze_seconds: i32,
}

fn default_checkout_freeze_seconds() -> i32 {
    StorefrontPolicy::PLATFORM_DEFAULT.checkout_freeze_seconds
}

impl StorefrontPolicy {
    /// What a tenant without its own policy gets.
    pub const PLATFORM_DEFAULT: Self = Self {
        basket_ttl_seconds: 30 * 60,
        reservation_ttl_seconds: 15 * 60,
        requests_per_second: 2000,
        checkout_freeze_seconds: 30 * 60,
    };
}

/// Where a tenant's marketing content lives in Contentful: a space (and environment) per
/// tenant. The delivery token is a reference to a secret held outside Kafka.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentSettings {
    pub space_id: String,
    #[serde(default = "default_environment")]
    pub environment: String,
    pub access_token_ref: String,
}

fn default_environment() -> String {
    "master".to_owned()
}

/// A tenant as kept whole in the compacted `tenants` topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub tenant_id: String,
    pub status: TenantStatus,
    pub settings: TenantSettings,
    pub version: i64,
    /// Milliseconds since the Unix epoch.
    pub updated_at: i64,
}

/// A platform operator's command about one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantCommand {
    pub command_id: String,
    pub tenant_id: String,
    pub issued_at: i64,
    pub payload: TenantCommandPayload,
}

/// The commands; the variant order is the Avro union's branch order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TenantCommandPayload {
    OnboardTenant(OnboardTenant),
    UpdateTenantSettings(UpdateTenantSettings),
    SuspendTenant(SuspendTenant),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnboardTenant {
    pub settings: TenantSettings,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateTenantSettings {
    pub settings: TenantSettings,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuspendTenant {
    pub reason: String,
}
