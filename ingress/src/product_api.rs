//! Subscriptions as TMF637 products: the customer's own (`/v1/storefront/subscriptions`)
//! and every one of the brand's (`/v1/admin/subscriptions`, for its staff), read from the
//! RLS-protected product view the storefront view connector keeps from the orders.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::AdminPrincipal;
use crate::order_api::ORDER_READERS;
use crate::problem::Problem;
use crate::shoppers::Shopper;
use crate::tenancy::CurrentTenant;

/// At most this many products per answer.
const LIST_LIMIT: i64 = 200;

/// TMF637 `ProductStatusType` values a filter may name.
const STATUSES: &[&str] = &[
    "created",
    "pendingActive",
    "active",
    "suspended",
    "pendingTerminate",
    "terminated",
    "cancelled",
    "aborted",
];

/// Filters of a product listing.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductQuery {
    /// Only products in this TMF637 status.
    #[serde(default)]
    pub status: Option<String>,
    /// Only the products with this MSISDN (E.164).
    #[serde(default)]
    pub msisdn: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamedValue {
    pub name: String,
    pub value: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfferingRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Duration {
    pub amount: Option<u32>,
    pub units: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct ValidFor {
    pub start_date_time: Option<String>,
    pub end_date_time: Option<String>,
}

/// A term of the product: the binding.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct ProductTerm {
    pub name: String,
    pub duration: Duration,
    pub valid_for: ValidFor,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct RelatedOrderItem {
    pub product_order_id: String,
    pub order_item_id: String,
    pub order_item_action: String,
    pub role: String,
}

/// A resource realising the product: its SIMs and its MSISDN.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceRef {
    pub id: String,
    pub name: String,
    #[serde(rename = "@referredType")]
    pub referred_type: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartyRef {
    pub id: String,
    pub role: String,
    #[serde(rename = "@referredType")]
    pub referred_type: String,
}

/// TMF637 `Product`: one subscription line.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    /// TCM's subscription id.
    pub id: String,
    #[serde(rename = "@type")]
    pub kind: String,
    pub name: String,
    /// `pendingActive` while the line is delivered, `active`, `aborted`, `cancelled`.
    pub status: String,
    pub is_bundle: bool,
    pub is_customer_visible: bool,
    /// The MSISDN.
    pub product_serial_number: Option<String>,
    pub order_date: Option<String>,
    pub start_date: Option<String>,
    pub product_offering: OfferingRef,
    /// `MSISDN`, `ICCID`, `simType`, `dataSharingCards`.
    pub product_characteristic: Vec<NamedValue>,
    pub product_term: Vec<ProductTerm>,
    pub product_order_item: Vec<RelatedOrderItem>,
    pub realizing_resource: Vec<ResourceRef>,
    pub related_party: Vec<PartyRef>,
    /// What the last reconciliation with TCM found, when it differed or was checked.
    #[serde(default)]
    pub tcm: Option<TcmCheck>,
}

/// What the TCM reconciliation last found for the product.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct TcmCheck {
    /// TCM's status (`ACTIVE`, `SUSPENDED`, `TERMINATED`, or `MISSING`).
    pub status: String,
    pub checked_at: String,
}

/// A list of products.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductList {
    pub items: Vec<Product>,
}

async fn list(
    state: &AppState,
    tenant_id: &str,
    customer_id: Option<&str>,
    query: &ProductQuery,
) -> Result<Response, Problem> {
    if let Some(status) = &query.status
        && !STATUSES.contains(&status.as_str())
    {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "A query parameter is malformed",
        )
        .with_detail(format!("status must be one of {}", STATUSES.join(", "))));
    }
    let mut tx = state.tenant_tx(tenant_id).await?;
    // No tenant filter on purpose: Row-Level Security scopes the query.
    let rows = sqlx::query(
        "SELECT document, tcm_status,
                to_char(reconciled_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
           FROM products
          WHERE ($1::text IS NULL OR customer_id = $1)
            AND ($2::text IS NULL OR status = $2)
            AND ($3::text IS NULL OR msisdn = $3)
          ORDER BY product_id LIMIT $4",
    )
    .bind(customer_id)
    .bind(&query.status)
    .bind(&query.msisdn)
    .bind(LIST_LIMIT)
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| Problem::database(&e))?;
    tx.commit().await.map_err(|e| Problem::database(&e))?;
    let items: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            let mut document: serde_json::Value = row.get(0);
            let tcm_status: Option<String> = row.get(1);
            let checked_at: Option<String> = row.get(2);
            if let (Some(status), Some(checked_at)) = (tcm_status, checked_at) {
                document["tcm"] = serde_json::json!({"status": status, "checkedAt": checked_at});
            }
            document
        })
        .collect();
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

/// The signed-in customer's subscriptions.
#[utoipa::path(get, path = "/v1/storefront/subscriptions", tag = "subscriptions", params(ProductQuery),
    responses((status = 200, description = "TMF637 products", body = ProductList),
        (status = 400, description = "`invalid_query`: a malformed filter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No customer token", body = Problem, content_type = "application/problem+json")))]
pub async fn my_subscriptions(
    State(state): State<AppState>,
    shopper: Shopper,
    Query(query): Query<ProductQuery>,
) -> Result<Response, Problem> {
    let customer = shopper.customer_id.as_deref().ok_or_else(|| {
        Problem::unauthenticated("subscriptions need the customer's bearer token")
    })?;
    list(&state, &shopper.tenant.tenant_id, Some(customer), &query).await
}

/// The brand's subscriptions.
#[utoipa::path(get, path = "/v1/admin/subscriptions", tag = "admin", params(ProductQuery),
    responses((status = 200, description = "TMF637 products", body = ProductList),
        (status = 400, description = "`invalid_query`: a malformed filter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff of this brand", body = Problem, content_type = "application/problem+json")))]
pub async fn brand_subscriptions(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    principal: AdminPrincipal,
    Query(query): Query<ProductQuery>,
) -> Result<Response, Problem> {
    principal.require_tenant_role(&tenant, ORDER_READERS)?;
    list(&state, &tenant.tenant_id, None, &query).await
}
