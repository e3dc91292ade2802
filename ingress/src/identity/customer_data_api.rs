//! A customer's personal data under the GDPR: export (art. 15/20) and erasure (art. 17), by
//! the customer or by a brand admin, and the audit of who read or changed it.
//!
//! Export decrypts everything the platform holds of the customer with their data key: the
//! account, the owner identities of their orders (CPR, name), the contact and delivery
//! details their checkouts gave, and the orders themselves.
//! Erasure destroys the data key (crypto-shredding: every sealed copy in topics, changelogs,
//! views and backups becomes unreadable), removes the broker account link, ends every
//! session and marks the customer erased; orders stay for the accounts the law requires, their
//! owner unreadable. Each export and erasure is written to the audit log in the same
//! transaction.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tcom_connectors::personal_data::{KeyStore, SecretKey, field_context};
use tcom_processors::domain::contact::ContactDetails;

use crate::app::AppState;
use crate::auth::{AdminPrincipal, BRAND_ADMIN};
use crate::problem::Problem;
use crate::shoppers::Shopper;
use crate::tenancy::CurrentTenant;

/// The owner identity of one order, decrypted.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OwnerIdentityExport {
    pub order_id: String,
    pub cpr: Option<String>,
    pub name: Option<String>,
    pub assurance: Option<String>,
    pub identity_provider: Option<String>,
}

/// The contact and delivery details one order's checkout gave, decrypted.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ContactExport {
    pub order_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub delivery_address: Option<crate::order_api::DeliveryAddress>,
}

/// Everything the platform holds about a customer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerDataExport {
    pub tenant_id: String,
    pub customer_id: String,
    /// The identity brokers the customer signs in with (issuer and since when).
    #[schema(value_type = Vec<Object>)]
    pub accounts: Vec<serde_json::Value>,
    pub owner_identities: Vec<OwnerIdentityExport>,
    /// The contact and delivery details of each order whose checkout gave them.
    pub contacts: Vec<ContactExport>,
    /// The customer's orders (TMF622 documents).
    #[schema(value_type = Vec<Object>)]
    pub orders: Vec<serde_json::Value>,
    /// When and by whom the customer's personal data was read or changed.
    #[schema(value_type = Vec<Object>)]
    pub audit: Vec<serde_json::Value>,
}

/// One entry of the audit log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub occurred_at: String,
    pub actor: String,
    pub action: String,
    pub customer_id: String,
    pub detail: Option<String>,
}

/// The audit log's newest entries.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditLog {
    pub items: Vec<AuditEntry>,
}

/// Filters of the audit log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Only this customer's entries.
    #[serde(default)]
    pub customer_id: Option<String>,
}

fn erased(customer: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "customer_erased",
        "This customer's personal data was erased",
    )
    .with_detail(format!("customer {customer} was erased"))
}

fn no_such_customer(customer: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "customer_not_found",
        "No such customer",
    )
    .with_detail(format!("no customer {customer} at this shop"))
}

fn require_session(shopper: &Shopper) -> Result<String, Problem> {
    shopper
        .customer_id
        .clone()
        .ok_or_else(|| Problem::unauthenticated("this needs the customer's bearer token"))
}

fn open_field(
    key: &SecretKey,
    tenant: &str,
    customer: &str,
    field: &str,
    sealed: Option<&str>,
) -> Option<String> {
    sealed.and_then(|s| {
        key.open_text(s, &field_context(tenant, customer, field))
            .ok()
    })
}

/// The contact details of one order; all `None` when they do not open (another key).
fn open_contact(
    key: &SecretKey,
    tenant: &str,
    customer: &str,
    order: &serde_json::Value,
    sealed: &str,
) -> ContactExport {
    let details: ContactDetails = open_field(
        key,
        tenant,
        customer,
        crate::order_api::CONTACT_FIELD,
        Some(sealed),
    )
    .and_then(|plain| serde_json::from_str(&plain).ok())
    .unwrap_or_default();
    let contact = details.contact;
    ContactExport {
        order_id: order["id"].as_str().unwrap_or_default().to_owned(),
        name: contact.as_ref().map(|c| c.name.clone()),
        email: contact.as_ref().map(|c| c.email.clone()),
        phone: contact.and_then(|c| c.phone),
        delivery_address: details.delivery_address.map(Into::into),
    }
}

async fn is_erased(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    customer: &str,
) -> Result<bool, Problem> {
    let row = sqlx::query("SELECT 1 FROM erased_customers WHERE customer_id = $1")
        .bind(customer)
        .fetch_optional(&mut **tx)
        .await
        .map_err(|e| Problem::database(&e))?;
    Ok(row.is_some())
}

async fn export(
    state: &AppState,
    tenant: &str,
    customer: &str,
    actor: &str,
) -> Result<Json<CustomerDataExport>, Problem> {
    let keys: &KeyStore = state.identity.key_store();
    let mut tx = state.tenant_tx(tenant).await?;
    if is_erased(&mut tx, customer).await? {
        return Err(erased(customer));
    }
    let accounts: Vec<serde_json::Value> = sqlx::query(
        "SELECT issuer, created_at::text FROM customer_accounts WHERE customer_id = $1",
    )
    .bind(customer)
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| Problem::database(&e))?
    .iter()
    .map(|r| serde_json::json!({ "issuer": r.get::<String, _>(0), "since": r.get::<String, _>(1) }))
    .collect();
    let orders: Vec<serde_json::Value> =
        sqlx::query("SELECT document FROM orders WHERE customer_id = $1 ORDER BY created_at")
            .bind(customer)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| Problem::database(&e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
    if accounts.is_empty() && orders.is_empty() {
        return Err(no_such_customer(customer));
    }
    super::audit(&mut tx, tenant, actor, "export", customer, None)
        .await
        .map_err(|e| Problem::database(&e))?;
    let audit: Vec<serde_json::Value> = sqlx::query(
        "SELECT occurred_at::text, actor, action, detail FROM personal_data_audit
         WHERE customer_id = $1 ORDER BY occurred_at",
    )
    .bind(customer)
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| Problem::database(&e))?
    .iter()
    .map(|r| {
        serde_json::json!({
            "occurred_at": r.get::<String, _>(0),
            "actor": r.get::<String, _>(1),
            "action": r.get::<String, _>(2),
            "detail": r.get::<Option<String>, _>(3),
        })
    })
    .collect();
    tx.commit().await.map_err(|e| Problem::database(&e))?;

    let key = keys
        .data_key(tenant, customer)
        .await
        .map_err(|e| super::sessions::key_store_unavailable(&e))?;
    let mut owner_identities = Vec::new();
    let mut contacts = Vec::new();
    let mut shown_orders = Vec::new();
    for mut order in orders {
        let sealed_contact = order.pointer("/contact/sealed").and_then(|v| v.as_str());
        if let (Some(key), Some(sealed)) = (&key, sealed_contact) {
            contacts.push(open_contact(key, tenant, customer, &order, sealed));
        }
        if let (Some(key), Some(owner)) = (&key, order.get("owner")) {
            let sealed = |field: &str| {
                owner
                    .pointer(&format!("/sealed/{field}"))
                    .and_then(|v| v.as_str())
            };
            owner_identities.push(OwnerIdentityExport {
                order_id: order["id"].as_str().unwrap_or_default().to_owned(),
                cpr: open_field(key, tenant, customer, "cpr", sealed("cpr")),
                name: open_field(key, tenant, customer, "name", sealed("name")),
                assurance: owner["assurance"].as_str().map(str::to_owned),
                identity_provider: owner["identityProvider"].as_str().map(str::to_owned),
            });
        }
        tcom_processors::domain::order_document::strip_sealed(&mut order);
        shown_orders.push(order);
    }
    Ok(Json(CustomerDataExport {
        tenant_id: tenant.to_owned(),
        customer_id: customer.to_owned(),
        accounts,
        owner_identities,
        contacts,
        orders: shown_orders,
        audit,
    }))
}

async fn erase(
    state: &AppState,
    tenant: &str,
    customer: &str,
    actor: &str,
) -> Result<StatusCode, Problem> {
    let mut tx = state.tenant_tx(tenant).await?;
    if is_erased(&mut tx, customer).await? {
        return Err(erased(customer));
    }
    let known = sqlx::query(
        "SELECT 1 FROM customer_accounts WHERE customer_id = $1
         UNION ALL SELECT 1 FROM orders WHERE customer_id = $1
         UNION ALL SELECT 1 FROM customer_data_keys WHERE customer_id = $1 LIMIT 1",
    )
    .bind(customer)
    .fetch_optional(&mut *tx)
    .await
    .map_err(|e| Problem::database(&e))?;
    if known.is_none() {
        return Err(no_such_customer(customer));
    }
    KeyStore::shred(&mut tx, tenant, customer)
        .await
        .map_err(|e| super::sessions::key_store_unavailable(&e))?;
    sqlx::query("DELETE FROM customer_accounts WHERE customer_id = $1")
        .bind(customer)
        .execute(&mut *tx)
        .await
        .map_err(|e| Problem::database(&e))?;
    sqlx::query(
        "INSERT INTO erased_customers (tenant_id, customer_id, erased_by) VALUES ($1, $2, $3)",
    )
    .bind(tenant)
    .bind(customer)
    .bind(actor)
    .execute(&mut *tx)
    .await
    .map_err(|e| Problem::database(&e))?;
    super::audit(&mut tx, tenant, actor, "erase", customer, None)
        .await
        .map_err(|e| Problem::database(&e))?;
    // Sessions end before the erasure commits: if Redis cannot end them the erasure is
    // rolled back (503, nothing erased, retry); ended sessions of a customer whose erasure
    // then failed to commit only mean signing in again.
    state.identity.sessions.end_all(tenant, customer).await?;
    tx.commit().await.map_err(|e| Problem::database(&e))?;
    tracing::info!(
        tenant,
        customer,
        actor,
        "Customer erased (data key destroyed)."
    );
    Ok(StatusCode::NO_CONTENT)
}

/// Everything the platform holds about the signed-in customer, decrypted.
#[utoipa::path(get, path = "/v1/storefront/customers/me/data", tag = "identity",
    security(("customer" = [])),
    responses((status = 200, description = "The customer's data", body = CustomerDataExport),
        (status = 401, description = "No session", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`customer_erased`, `customer_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database or key store is unavailable", body = Problem, content_type = "application/problem+json")))]
pub async fn export_my_data(
    State(state): State<AppState>,
    shopper: Shopper,
) -> Result<Json<CustomerDataExport>, Problem> {
    let customer = require_session(&shopper)?;
    export(
        &state,
        &shopper.tenant.tenant_id,
        &customer,
        &format!("customer:{customer}"),
    )
    .await
}

/// Erases the signed-in customer's personal data (and signs them out everywhere).
#[utoipa::path(delete, path = "/v1/storefront/customers/me", tag = "identity",
    security(("customer" = [])),
    responses((status = 204, description = "Erased"),
        (status = 401, description = "No session", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`customer_erased`, `customer_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Unavailable; nothing was erased", body = Problem, content_type = "application/problem+json")))]
pub async fn erase_me(
    State(state): State<AppState>,
    shopper: Shopper,
) -> Result<StatusCode, Problem> {
    let customer = require_session(&shopper)?;
    erase(
        &state,
        &shopper.tenant.tenant_id,
        &customer,
        &format!("customer:{customer}"),
    )
    .await
}

fn admin_actor(principal: &AdminPrincipal) -> String {
    format!("admin:{}", principal.0.sub)
}

/// A brand admin's export of one customer's data (e.g. to answer a subject access request).
#[utoipa::path(get, path = "/v1/admin/customers/{customer_id}/data", tag = "admin",
    security(("admin" = [])),
    responses((status = 200, description = "The customer's data", body = CustomerDataExport),
        (status = 401, description = "No admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a brand admin of this shop", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`customer_erased`, `customer_not_found`", body = Problem, content_type = "application/problem+json")))]
pub async fn admin_export(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    principal: AdminPrincipal,
    Path(customer_id): Path<String>,
) -> Result<Json<CustomerDataExport>, Problem> {
    principal.require_tenant_role(&tenant, &[BRAND_ADMIN])?;
    export(
        &state,
        &tenant.tenant_id,
        &customer_id,
        &admin_actor(&principal),
    )
    .await
}

/// A brand admin erases a customer (GDPR art. 17).
#[utoipa::path(delete, path = "/v1/admin/customers/{customer_id}", tag = "admin",
    security(("admin" = [])),
    responses((status = 204, description = "Erased"),
        (status = 401, description = "No admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a brand admin of this shop", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`customer_erased`, `customer_not_found`", body = Problem, content_type = "application/problem+json")))]
pub async fn admin_erase(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    principal: AdminPrincipal,
    Path(customer_id): Path<String>,
) -> Result<StatusCode, Problem> {
    principal.require_tenant_role(&tenant, &[BRAND_ADMIN])?;
    erase(
        &state,
        &tenant.tenant_id,
        &customer_id,
        &admin_actor(&principal),
    )
    .await
}

/// The brand's personal-data audit log, newest first (at most 200 entries).
#[utoipa::path(get, path = "/v1/admin/personal-data-audit", tag = "admin", params(AuditQuery),
    security(("admin" = [])),
    responses((status = 200, description = "Audit entries of this brand only", body = AuditLog),
        (status = 401, description = "No admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a brand admin of this shop", body = Problem, content_type = "application/problem+json")))]
pub async fn audit_log(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    principal: AdminPrincipal,
    Query(query): Query<AuditQuery>,
) -> Result<Json<AuditLog>, Problem> {
    principal.require_tenant_role(&tenant, &[BRAND_ADMIN])?;
    let mut tx = state.tenant_tx(&tenant.tenant_id).await?;
    // No tenant filter on purpose: Row-Level Security scopes the query.
    let rows = sqlx::query(
        "SELECT occurred_at::text, actor, action, customer_id, detail FROM personal_data_audit
         WHERE ($1::text IS NULL OR customer_id = $1)
         ORDER BY occurred_at DESC LIMIT 200",
    )
    .bind(&query.customer_id)
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| Problem::database(&e))?;
    tx.commit().await.map_err(|e| Problem::database(&e))?;
    Ok(Json(AuditLog {
        items: rows
            .iter()
            .map(|r| AuditEntry {
                occurred_at: r.get(0),
                actor: r.get(1),
                action: r.get(2),
                customer_id: r.get(3),
                detail: r.get(4),
            })
            .collect(),
    }))
}
