//! Checkout and orders. Checkout is a basket command (the basket processor freezes the
//! basket and places its order; the order processor answers once the payment is set up, with
//! what the storefront needs to let the shopper pay). Orders are read from the RLS-protected
//! order view, with `?min_version=` for read-your-writes as for baskets; a customer sees only
//! their own orders, a brand's staff every order of their brand.
//!
//! The checkout may carry the customer's contact and delivery details: personal data,
//! validated here ([`tcom_processors::domain::contact`]) and sealed with the customer's data
//! key before they leave the ingress. Orders show only that they were given
//! (`contact.provided`); the customer's data export opens them.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tcom_processors::domain::contact;
use tcom_schemas::basket::{BasketCommandPayload, CheckoutBasket};
use tcom_schemas::order::{CancelOrder, CorrectPortIn, OrderCommand, OrderCommandPayload};

use crate::app::AppState;
use crate::auth::{AdminPrincipal, BRAND_ADMIN, CATALOG_MANAGER, CATALOG_VIEWER};
use crate::basket_api::send_basket_command;
use crate::command_api::{command_id, respond};
use crate::commands::now_ms;
use crate::problem::Problem;
use crate::shoppers::Shopper;
use crate::tenancy::CurrentTenant;

/// Who may read a brand's orders.
pub const ORDER_READERS: &[&str] = &[BRAND_ADMIN, CATALOG_MANAGER, CATALOG_VIEWER];
const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(2);
const LIST_LIMIT: i64 = 100;

/// Checking a basket out.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// Where the payment page sends the shopper back to; the shop's order page when left out.
    #[serde(default)]
    pub return_url: Option<String>,
    /// Who to reach about the order. Personal data: sealed with the customer's data key
    /// before it leaves the ingress, shown only in the customer's data export.
    #[serde(default)]
    pub contact: Option<CheckoutContact>,
    /// Where a physical SIM card is sent. Personal data, sealed like `contact`.
    #[serde(default)]
    pub delivery_address: Option<DeliveryAddress>,
}

/// The customer's contact details at checkout.
#[derive(Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutContact {
    /// 1–200 characters, not blank.
    pub name: String,
    /// `local@domain.tld`, at most 254 characters.
    pub email: String,
    /// E.164: `+` and 8–15 digits, no spaces (`+4520123456`).
    #[serde(default)]
    pub phone: Option<String>,
}

/// A postal address (delivery of a physical SIM card).
#[derive(Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryAddress {
    /// Street and number (and floor, door); 1–200 characters, not blank.
    pub street: String,
    /// 1–200 characters, not blank.
    pub postal_code: String,
    /// 1–200 characters, not blank.
    pub city: String,
    /// ISO 3166-1 alpha-2, two upper-case letters (`DK`).
    pub country: String,
}

// Personal data stays out of logs.
impl std::fmt::Debug for CheckoutContact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckoutContact { … }")
    }
}

impl std::fmt::Debug for DeliveryAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeliveryAddress { … }")
    }
}

impl From<CheckoutContact> for contact::Contact {
    fn from(c: CheckoutContact) -> Self {
        Self {
            name: c.name,
            email: c.email,
            phone: c.phone,
        }
    }
}

impl From<DeliveryAddress> for contact::DeliveryAddress {
    fn from(a: DeliveryAddress) -> Self {
        Self {
            street: a.street,
            postal_code: a.postal_code,
            city: a.city,
            country: a.country,
        }
    }
}

impl From<contact::DeliveryAddress> for DeliveryAddress {
    fn from(a: contact::DeliveryAddress) -> Self {
        Self {
            street: a.street,
            postal_code: a.postal_code,
            city: a.city,
            country: a.country,
        }
    }
}

/// Cancelling an order.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    #[serde(default)]
    pub reason: Option<String>,
}

/// Correcting a rejected port-in: only the fields given change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortInCorrection {
    /// The operator the number is with today.
    #[serde(default)]
    pub current_operator: Option<String>,
    /// The ICCID of the SIM at the current operator (Denmark).
    #[serde(default)]
    pub sim_icc: Option<String>,
    /// A new PAC from the current provider (United Kingdom).
    #[serde(default)]
    pub pac: Option<String>,
    /// `YYYY-MM-DD`; left out: the earliest date the rules allow.
    #[serde(default)]
    pub desired_port_date: Option<String>,
}

/// `?min_version=` on reads.
#[derive(Debug, Deserialize)]
pub struct ReadQuery {
    #[serde(default)]
    pub min_version: Option<i64>,
}

/// Filters of order lists.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// A TMF622 state, e.g. `pending`, `inProgress`, `completed`.
    #[serde(default)]
    pub state: Option<String>,
    /// Orders placed at or after this instant (RFC 3339).
    #[serde(default)]
    pub from: Option<String>,
    /// Orders placed before this instant (RFC 3339).
    #[serde(default)]
    pub to: Option<String>,
}

/// An optional JSON body: empty means the defaults; otherwise it must be JSON of the shape.
fn optional_json<T: serde::de::DeserializeOwned + Default>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the body as application/json",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        let (status, code, title) = if e.is_data() {
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                "The body does not have the expected fields",
            )
        } else {
            (
                StatusCode::BAD_REQUEST,
                "malformed_json",
                "The body is not valid JSON",
            )
        };
        Problem::new(status, code, title).with_detail(e.to_string())
    })
}

/// An order document as the API shows it: without the sealed personal data (only the data
/// export opens it), and its owner marked when the customer was erased.
fn present(mut document: serde_json::Value, erased: bool) -> serde_json::Value {
    tcom_processors::domain::order_document::strip_sealed(&mut document);
    if erased && let Some(owner) = document.get_mut("owner").and_then(|o| o.as_object_mut()) {
        owner.insert("erased".into(), serde_json::Value::Bool(true));
    }
    document
}

fn order_not_found(order_id: &str) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "order_not_found", "No such order")
        .with_detail(format!("no order {order_id} for this caller"))
}

fn require_customer(shopper: &Shopper) -> Result<&str, Problem> {
    shopper
        .customer_id
        .as_deref()
        .ok_or_else(|| Problem::unauthenticated("orders need the customer's bearer token"))
}

/// Order ids are basket ids (UUIDs); anything else names no order.
fn check_order_id(order_id: &str) -> Result<(), Problem> {
    uuid::Uuid::parse_str(order_id)
        .map(|_| ())
        .map_err(|_| order_not_found(order_id))
}

/// Checks a basket out: 422 with every problem when it is not ready (or when the contact
/// details break a rule, before anything is written); otherwise the basket is frozen and its
/// order placed, and the answer is the order (201, `Location` the order) with
/// `paymentAction` saying how the shopper pays. The same basket checked out again answers
/// with the same order.
#[utoipa::path(post, path = "/v1/storefront/baskets/{basket_id}/checkout", tag = "orders",
    request_body(content = CheckoutRequest, description = "Optional", content_type = "application/json"),
    responses((status = 201, description = "The order, waiting for payment", body = crate::order_schema::ProductOrder),
        (status = 202, description = "Accepted; the order will be at `Location`"),
        (status = 401, description = "No customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not this customer's basket", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The shop takes no payments yet", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Every reason the basket is not ready; or `invalid_body` with a `violations` entry per broken rule of `contact` and `delivery_address` (field paths such as `contact/email`; nothing is written)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The key store that seals the contact details is unavailable; nothing was written", body = Problem, content_type = "application/problem+json")))]
pub async fn checkout(
    State(state): State<AppState>,
    shopper: Shopper,
    Path(basket_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    require_customer(&shopper)?;
    check_order_id(&basket_id)?;
    let request: CheckoutRequest = optional_json(&headers, &body)?;
    if let Some(url) = &request.return_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_return_url",
            "The return URL must be an http(s) URL",
        ));
    }
    let details = contact::ContactDetails {
        contact: request.contact.map(Into::into),
        delivery_address: request.delivery_address.map(Into::into),
    };
    let violations = contact::validate(&details);
    if !violations.is_empty() {
        let mut problem = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "The body does not have the expected fields",
        )
        .with_detail(format!(
            "{} field(s) break a rule: {}",
            violations.len(),
            violations
                .iter()
                .map(|v| v.field.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        problem.violations = violations;
        return Err(problem);
    }
    // A malformed key is refused before anything is written (the data key included).
    crate::command_api::idempotency_key(&headers)?;
    let contact_sealed = if details.is_empty() {
        None
    } else {
        Some(seal_contact(&state, &shopper, &details).await?)
    };
    let payload = BasketCommandPayload::CheckoutBasket(CheckoutBasket {
        return_url: request.return_url,
        contact_sealed,
    });
    // Checkout is idempotent by itself: a basket is checked out once, and checking it out
    // again answers with its order. So every request goes to the processor as a new command
    // (a malformed key is still refused): a retry must reach the basket, which asks the order
    // again, rather than the runtime's memory of the first command, whose answer came from
    // the order processor and is not kept with the basket's commands.
    let mut response = send_basket_command(
        &state,
        &shopper,
        &HeaderMap::new(),
        &basket_id,
        payload,
        true,
    )
    .await?;
    if let Ok(location) = format!("/v1/storefront/orders/{basket_id}").parse() {
        response.headers_mut().insert("location", location);
    }
    Ok(response)
}

/// Seals the checkout's contact and delivery details as one JSON value with the customer's
/// data key (created on first use), bound to the tenant, the customer and the field
/// `contact`: only that value travels, and erasing the customer makes every copy unreadable.
async fn seal_contact(
    state: &AppState,
    shopper: &Shopper,
    details: &contact::ContactDetails,
) -> Result<String, Problem> {
    let tenant = shopper.tenant.tenant_id.as_str();
    let customer = require_customer(shopper)?;
    let key = state
        .identity
        .key_store()
        .data_key_or_create(tenant, customer)
        .await
        .map_err(|e| crate::identity::sessions::key_store_unavailable(&e))?;
    let plain = serde_json::to_string(details).map_err(|_| Problem::internal())?;
    key.seal_text(
        &plain,
        &tcom_connectors::personal_data::field_context(tenant, customer, CONTACT_FIELD),
    )
    .map_err(|_| Problem::internal())
}

/// The field context the checkout's contact details are sealed under.
pub const CONTACT_FIELD: &str = "contact";

/// Reads one order of the tenant, optionally only the given customer's, waiting up to
/// [`READ_YOUR_WRITES_WAIT`] for `min_version`.
async fn read_order(
    state: &AppState,
    tenant_id: &str,
    customer_id: Option<&str>,
    order_id: &str,
    min_version: Option<i64>,
) -> Result<serde_json::Value, Problem> {
    check_order_id(order_id)?;
    let deadline = tokio::time::Instant::now() + READ_YOUR_WRITES_WAIT;
    loop {
        let mut tx = state.tenant_tx(tenant_id).await?;
        // No tenant filter on purpose: Row-Level Security scopes the query.
        let row = sqlx::query(
            "SELECT document, customer_id, version,
                    EXISTS (SELECT 1 FROM erased_customers e WHERE e.customer_id = orders.customer_id)
               FROM orders WHERE order_id = $1",
        )
        .bind(order_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| Problem::database(&e))?;
        tx.commit().await.map_err(|e| Problem::database(&e))?;
        let visible = row.filter(|r| {
            customer_id.is_none_or(|c| r.get::<Option<String>, _>(1).as_deref() == Some(c))
        });
        let waiting = tokio::time::Instant::now() < deadline;
        match visible {
            Some(row) if min_version.is_none_or(|v| row.get::<i64, _>(2) >= v) => {
                return Ok(present(row.get(0), row.get(3)));
            }
            Some(_) if waiting => {}
            None if min_version.is_some() && waiting => {}
            Some(_) => {
                return Err(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "version_not_yet_visible",
                    "The requested version is not readable yet; retry",
                ));
            }
            None => return Err(order_not_found(order_id)),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn parse_instant(text: Option<&str>, field: &str) -> Result<Option<String>, Problem> {
    let Some(text) = text else { return Ok(None) };
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|_| Some(text.to_owned()))
        .map_err(|_| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "A query parameter is malformed",
            )
            .with_detail(format!("{field} must be an RFC 3339 instant"))
        })
}

const STATES: &[&str] = &[
    "acknowledged",
    "rejected",
    "pending",
    "held",
    "inProgress",
    "cancelled",
    "completed",
    "failed",
    "partial",
    "assessingCancellation",
    "pendingCancellation",
];

/// Lists orders of the tenant (of one customer when given), newest first.
async fn list_orders(
    state: &AppState,
    tenant_id: &str,
    customer_id: Option<&str>,
    query: &ListQuery,
) -> Result<Response, Problem> {
    if let Some(s) = &query.state
        && !STATES.contains(&s.as_str())
    {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "A query parameter is malformed",
        )
        .with_detail(format!("state must be one of {}", STATES.join(", "))));
    }
    let from = parse_instant(query.from.as_deref(), "from")?;
    let to = parse_instant(query.to.as_deref(), "to")?;
    let mut tx = state.tenant_tx(tenant_id).await?;
    let rows = sqlx::query(
        "SELECT document,
                EXISTS (SELECT 1 FROM erased_customers e WHERE e.customer_id = orders.customer_id)
           FROM orders
          WHERE ($1::text IS NULL OR customer_id = $1)
            AND ($2::text IS NULL OR state = $2)
            AND ($3::timestamptz IS NULL OR created_at >= $3::timestamptz)
            AND ($4::timestamptz IS NULL OR created_at < $4::timestamptz)
          ORDER BY created_at DESC LIMIT $5",
    )
    .bind(customer_id)
    .bind(&query.state)
    .bind(from)
    .bind(to)
    .bind(LIST_LIMIT)
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| Problem::database(&e))?;
    tx.commit().await.map_err(|e| Problem::database(&e))?;
    let items: Vec<serde_json::Value> = rows.iter().map(|r| present(r.get(0), r.get(1))).collect();
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

/// The signed-in customer's orders, newest first (at most 100).
#[utoipa::path(get, path = "/v1/storefront/orders", tag = "orders", params(ListQuery),
    responses((status = 200, description = "TMF622 product orders", body = crate::order_schema::OrderList),
        (status = 400, description = "A malformed filter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No customer token", body = Problem, content_type = "application/problem+json")))]
pub async fn my_orders(
    State(state): State<AppState>,
    shopper: Shopper,
    Query(query): Query<ListQuery>,
) -> Result<Response, Problem> {
    let customer = require_customer(&shopper)?;
    list_orders(&state, &shopper.tenant.tenant_id, Some(customer), &query).await
}

/// One of the customer's orders, with `?min_version=N` to read at least a version seen.
#[utoipa::path(get, path = "/v1/storefront/orders/{order_id}", tag = "orders",
    responses((status = 200, description = "The TMF622 product order", body = crate::order_schema::ProductOrder),
        (status = 401, description = "No customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not this customer's order", body = Problem, content_type = "application/problem+json")))]
pub async fn my_order(
    State(state): State<AppState>,
    shopper: Shopper,
    Path(order_id): Path<String>,
    Query(query): Query<ReadQuery>,
) -> Result<Response, Problem> {
    let customer = require_customer(&shopper)?;
    let order = read_order(
        &state,
        &shopper.tenant.tenant_id,
        Some(customer),
        &order_id,
        query.min_version,
    )
    .await?;
    Ok(Json(order).into_response())
}

/// Cancels an order: until fulfilment starts the payment is voided (or refunded) and the
/// numbers released (`pendingCancellation`, then `cancelled`); a completed order's
/// cancellation is assessed by the brand (`assessingCancellation`).
#[utoipa::path(post, path = "/v1/storefront/orders/{order_id}/cancel", tag = "orders",
    request_body(content = CancelRequest, description = "Optional", content_type = "application/json"),
    responses((status = 200, description = "The order", body = crate::order_schema::ProductOrder),
        (status = 401, description = "No customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not this customer's order", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order is final", body = Problem, content_type = "application/problem+json")))]
pub async fn cancel_order(
    State(state): State<AppState>,
    shopper: Shopper,
    Path(order_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let customer = require_customer(&shopper)?.to_owned();
    check_order_id(&order_id)?;
    let request: CancelRequest = optional_json(&headers, &body)?;
    let tenant_id = shopper.tenant.tenant_id.clone();
    let id = command_id(
        &headers,
        &format!("{tenant_id}:order:{order_id}"),
        Some(&format!("customer:{customer}")),
    )?;
    let command = OrderCommand {
        command_id: id.id.clone(),
        tenant_id: tenant_id.clone(),
        order_id: order_id.clone(),
        issued_at: now_ms(),
        customer_id: Some(customer),
        payload: OrderCommandPayload::CancelOrder(CancelOrder {
            reason: request.reason,
        }),
    };
    let key = format!("{tenant_id}:{order_id}");
    let sent = state.commands.send(&key, &tenant_id, &id, &command).await?;
    Ok(respond(
        sent,
        &format!("/v1/storefront/orders/{order_id}"),
        false,
    ))
}

/// Corrects a port-in the clearing house rejected (the order item's `portRejection` and
/// `portCorrectable` characteristics say why and what), and submits the port again. The
/// order goes on from `held` once no item is held.
#[utoipa::path(post, path = "/v1/storefront/orders/{order_id}/items/{item_id}/port-in", tag = "orders",
    request_body(content = PortInCorrection, content_type = "application/json"),
    responses((status = 200, description = "The order, the port submitted again", body = crate::order_schema::ProductOrder),
        (status = 202, description = "Accepted; the order is at `Location`"),
        (status = 400, description = "`malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`order_not_found`, `order_item_not_found`: not this customer's order or no such port-in item", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`port_not_correctable`: the item's port is not rejected", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_body`, `nothing_to_correct`, `invalid_sim_icc`, `invalid_current_operator`, `pac_format`, `pac_not_used`, `invalid_port_date`, with `violations`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Could not be recorded", body = Problem, content_type = "application/problem+json")))]
pub async fn correct_port_in(
    State(state): State<AppState>,
    shopper: Shopper,
    Path((order_id, item_id)): Path<(String, String)>,
    headers: HeaderMap,
    crate::basket_api::JsonBody(request): crate::basket_api::JsonBody<PortInCorrection>,
) -> Result<Response, Problem> {
    let customer = require_customer(&shopper)?.to_owned();
    check_order_id(&order_id)?;
    if !tcom_processors::domain::violation::is_valid_entity_id(&item_id) {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "order_item_not_found",
            "The order has no such item",
        ));
    }
    let tenant_id = shopper.tenant.tenant_id.clone();
    let desired_port_date = request
        .desired_port_date
        .as_deref()
        .map(crate::basket_api::epoch_day)
        .transpose()?;
    let id = command_id(
        &headers,
        &format!("{tenant_id}:order:{order_id}"),
        Some(&format!("customer:{customer}")),
    )?;
    let command = OrderCommand {
        command_id: id.id.clone(),
        tenant_id: tenant_id.clone(),
        order_id: order_id.clone(),
        issued_at: now_ms(),
        customer_id: Some(customer),
        payload: OrderCommandPayload::CorrectPortIn(CorrectPortIn {
            item_id,
            current_operator: request.current_operator,
            sim_icc: request.sim_icc,
            pac: request.pac,
            desired_port_date,
        }),
    };
    let key = format!("{tenant_id}:{order_id}");
    let sent = state.commands.send(&key, &tenant_id, &id, &command).await?;
    Ok(respond(
        sent,
        &format!("/v1/storefront/orders/{order_id}"),
        false,
    ))
}

/// The brand's orders, newest first (at most 100), by state and date.
#[utoipa::path(get, path = "/v1/admin/orders", tag = "admin", params(ListQuery),
    responses((status = 200, description = "TMF622 product orders", body = crate::order_schema::OrderList),
        (status = 400, description = "A malformed filter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff of this brand", body = Problem, content_type = "application/problem+json")))]
pub async fn brand_orders(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    principal: AdminPrincipal,
    Query(query): Query<ListQuery>,
) -> Result<Response, Problem> {
    principal.require_tenant_role(&tenant, ORDER_READERS)?;
    list_orders(&state, &tenant.tenant_id, None, &query).await
}

/// One order of the brand.
#[utoipa::path(get, path = "/v1/admin/orders/{order_id}", tag = "admin",
    responses((status = 200, description = "The TMF622 product order", body = crate::order_schema::ProductOrder),
        (status = 404, description = "No such order of this brand", body = Problem, content_type = "application/problem+json")))]
pub async fn brand_order(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    principal: AdminPrincipal,
    Path(order_id): Path<String>,
    Query(query): Query<ReadQuery>,
) -> Result<Response, Problem> {
    principal.require_tenant_role(&tenant, ORDER_READERS)?;
    let order = read_order(
        &state,
        &tenant.tenant_id,
        None,
        &order_id,
        query.min_version,
    )
    .await?;
    Ok(Json(order).into_response())
}
