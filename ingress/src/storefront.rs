//! Storefront endpoints that need no processor: what a storefront needs to render the brand.

use std::collections::BTreeMap;

use axum::Json;
use serde::Serialize;

use crate::problem::Problem;
use crate::tenancy::CurrentTenant;

/// The public face of the tenant serving this host.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StorefrontTenant {
    pub tenant_id: String,
    pub name: String,
    pub default_locale: String,
    pub locales: Vec<String>,
    pub currency: String,
    pub country: String,
    pub channels: Vec<String>,
    /// Branding settings (colours, logo URLs, …) as the brand configured them.
    pub theme: BTreeMap<String, String>,
}

/// The tenant serving this host, resolved from the `Host` header.
#[utoipa::path(
    get,
    path = "/v1/storefront/tenant",
    tag = "storefront",
    responses(
        (status = 200, description = "The tenant for this host", body = StorefrontTenant),
        (status = 404, description = "No tenant is served on this host", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn current_tenant(CurrentTenant(tenant): CurrentTenant) -> Json<StorefrontTenant> {
    let s = &tenant.settings;
    Json(StorefrontTenant {
        tenant_id: tenant.tenant_id.clone(),
        name: s.name.clone(),
        default_locale: s.default_locale.clone(),
        locales: s.locales.clone(),
        currency: s.currency.clone(),
        country: s.country.clone(),
        channels: s.channels.clone(),
        theme: s.theme.clone(),
    })
}
