//! The customer's eSIM codes for an order: the SGP.22 activation code as a QR code (PNG for
//! e-mails and apps, SVG for web pages) or as text for manual entry, and, apart from it, the
//! confirmation code when the profile needs one — never inside the QR code, so a photo of
//! the screen alone does not install the profile.
//!
//! The codes are kept sealed with the customer's data key (the SIM connector sealed them);
//! only the customer who owns the order gets them, opened here at the moment of the request.
//! The answers are marked `Cache-Control: no-store`: they are credentials.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sqlx::Row;
use tcom_connectors::esim::{ActivationCode, ActivationQr};
use tcom_connectors::personal_data::field_context;
use tcom_connectors::sim_connector::{activation_code_field, confirmation_code_field};
use tcom_processors::domain::order_document::sealed_sim_codes;

use crate::app::AppState;
use crate::problem::Problem;
use crate::shoppers::Shopper;

/// Pixels per QR module: a 2–3 cm code on a phone screen, sharp on paper.
const QR_SCALE: u32 = 8;

/// A SIM of an order item: `/orders/{order_id}/items/{item_id}/sims/{index}`.
#[derive(Debug, serde::Deserialize)]
pub struct SimPath {
    pub order_id: String,
    pub item_id: String,
    pub index: usize,
}

/// The activation code as text, for entering it by hand on the device.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivationCodeText {
    /// `LPA:1$<SM-DP+ address>$<matching id>` (GSMA SGP.22 §4.1).
    pub activation_code: String,
    pub iccid: String,
    pub confirmation_code_required: bool,
}

/// The confirmation code the device asks for before installing the profile.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfirmationCode {
    pub confirmation_code: String,
    pub iccid: String,
}

fn sim_not_found(path: &SimPath) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "sim_not_found", "No such eSIM").with_detail(format!(
        "order {} has no eSIM {} on item {} for this caller",
        path.order_id, path.index, path.item_id
    ))
}

/// Which of the SIM's codes.
#[derive(Clone, Copy)]
enum Code {
    Activation,
    Confirmation,
}

/// Opens one of the codes of the caller's SIM, with its ICCID.
async fn open_code(
    state: &AppState,
    shopper: &Shopper,
    path: &SimPath,
    which: Code,
) -> Result<(String, String), Problem> {
    let customer = shopper
        .customer_id
        .as_deref()
        .ok_or_else(|| Problem::unauthenticated("eSIM codes need the customer's bearer token"))?;
    let tenant = shopper.tenant.tenant_id.as_str();
    if uuid::Uuid::parse_str(&path.order_id).is_err() {
        return Err(sim_not_found(path));
    }
    let mut tx = state.tenant_tx(tenant).await?;
    // No tenant filter on purpose: Row-Level Security scopes the query.
    let row = sqlx::query("SELECT document FROM orders WHERE order_id = $1 AND customer_id = $2")
        .bind(&path.order_id)
        .bind(customer)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| Problem::database(&e))?;
    tx.commit().await.map_err(|e| Problem::database(&e))?;
    let document: serde_json::Value = row.ok_or_else(|| sim_not_found(path))?.get(0);
    let sim = sealed_sim_codes(&document, &path.item_id, path.index)
        .ok_or_else(|| sim_not_found(path))?;
    let iccid = sim.iccid;
    let (sealed, field) = match which {
        Code::Activation => (
            sim.activation_code.ok_or_else(|| sim_not_found(path))?,
            activation_code_field(&iccid),
        ),
        Code::Confirmation => (
            sim.confirmation_code.ok_or_else(|| {
                Problem::new(
                    StatusCode::NOT_FOUND,
                    "no_confirmation_code",
                    "This eSIM needs no confirmation code",
                )
            })?,
            confirmation_code_field(&iccid),
        ),
    };
    let key = state
        .identity
        .key_store()
        .data_key(tenant, customer)
        .await
        .map_err(|e| crate::identity::sessions::key_store_unavailable(&e))?
        .ok_or_else(|| {
            Problem::new(
                StatusCode::GONE,
                "customer_erased",
                "The customer's personal data was erased",
            )
        })?;
    let text = key
        .open_text(&sealed, &field_context(tenant, customer, &field))
        .map_err(|_| {
            tracing::error!(order = %path.order_id, "An eSIM code does not open with the customer's key.");
            Problem::internal()
        })?;
    Ok((text, iccid))
}

async fn activation_code(
    state: &AppState,
    shopper: &Shopper,
    path: &SimPath,
) -> Result<(ActivationCode, String), Problem> {
    let (text, iccid) = open_code(state, shopper, path, Code::Activation).await?;
    let code = ActivationCode::parse(&text).map_err(|e| {
        tracing::error!(error = %e, order = %path.order_id, "A stored activation code does not parse.");
        Problem::internal()
    })?;
    Ok((code, iccid))
}

fn secret_response(content_type: &'static str, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn qr_of(code: &ActivationCode) -> Result<ActivationQr, Problem> {
    ActivationQr::new(code).map_err(|e| {
        tracing::error!(error = %e, "An activation code does not fit a QR code.");
        Problem::internal()
    })
}

/// The eSIM's activation code as a QR code (PNG).
#[utoipa::path(get, path = "/v1/storefront/orders/{order_id}/items/{item_id}/sims/{index}/activation-code.png", tag = "orders",
    params(("order_id" = String, Path), ("item_id" = String, Path), ("index" = usize, Path, description = "0: the line's SIM; 1…: its data-sharing cards")),
    responses((status = 200, description = "The QR code", content_type = "image/png"),
        (status = 401, description = "No customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`sim_not_found`: not this customer's order, or no eSIM there (yet)", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`customer_erased`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The key store is unavailable", body = Problem, content_type = "application/problem+json")))]
pub async fn activation_qr_png(
    State(state): State<AppState>,
    shopper: Shopper,
    Path(path): Path<SimPath>,
) -> Result<Response, Problem> {
    let (code, _) = activation_code(&state, &shopper, &path).await?;
    let png = qr_of(&code)?
        .to_png(QR_SCALE)
        .map_err(|_| Problem::internal())?;
    Ok(secret_response("image/png", png))
}

/// The eSIM's activation code as a QR code (SVG).
#[utoipa::path(get, path = "/v1/storefront/orders/{order_id}/items/{item_id}/sims/{index}/activation-code.svg", tag = "orders",
    params(("order_id" = String, Path), ("item_id" = String, Path), ("index" = usize, Path)),
    responses((status = 200, description = "The QR code", content_type = "image/svg+xml"),
        (status = 401, description = "No customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`sim_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`customer_erased`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The key store is unavailable", body = Problem, content_type = "application/problem+json")))]
pub async fn activation_qr_svg(
    State(state): State<AppState>,
    shopper: Shopper,
    Path(path): Path<SimPath>,
) -> Result<Response, Problem> {
    let (code, _) = activation_code(&state, &shopper, &path).await?;
    let svg = qr_of(&code)?
        .to_svg(QR_SCALE)
        .map_err(|_| Problem::internal())?;
    Ok(secret_response("image/svg+xml", svg))
}

/// The eSIM's activation code as text, for manual entry.
#[utoipa::path(get, path = "/v1/storefront/orders/{order_id}/items/{item_id}/sims/{index}/activation-code", tag = "orders",
    params(("order_id" = String, Path), ("item_id" = String, Path), ("index" = usize, Path)),
    responses((status = 200, description = "The activation code", body = ActivationCodeText),
        (status = 401, description = "No customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`sim_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`customer_erased`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The key store is unavailable", body = Problem, content_type = "application/problem+json")))]
pub async fn activation_code_text(
    State(state): State<AppState>,
    shopper: Shopper,
    Path(path): Path<SimPath>,
) -> Result<Response, Problem> {
    let (code, iccid) = activation_code(&state, &shopper, &path).await?;
    let body = ActivationCodeText {
        activation_code: code.to_lpa_string(),
        iccid,
        confirmation_code_required: code.confirmation_code_required(),
    };
    Ok(secret_response("application/json", Json(body)))
}

/// The eSIM's confirmation code, delivered apart from the activation code.
#[utoipa::path(get, path = "/v1/storefront/orders/{order_id}/items/{item_id}/sims/{index}/confirmation-code", tag = "orders",
    params(("order_id" = String, Path), ("item_id" = String, Path), ("index" = usize, Path)),
    responses((status = 200, description = "The confirmation code", body = ConfirmationCode),
        (status = 401, description = "No customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`sim_not_found`; `no_confirmation_code` when the profile needs none", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`customer_erased`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The key store is unavailable", body = Problem, content_type = "application/problem+json")))]
pub async fn confirmation_code(
    State(state): State<AppState>,
    shopper: Shopper,
    Path(path): Path<SimPath>,
) -> Result<Response, Problem> {
    let (code, iccid) = open_code(&state, &shopper, &path, Code::Confirmation).await?;
    let body = ConfirmationCode {
        confirmation_code: code,
        iccid,
    };
    Ok(secret_response("application/json", Json(body)))
}
