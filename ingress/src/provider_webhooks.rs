//! Outside systems' webhooks, verified with the platform's subscription secret (see
//! [`tcom_connectors::signed_webhook`]) before anything is written:
//!
//! - the SIM fulfilment house's tracking (`POST /v1/webhooks/logistics`) becomes a
//!   `TrackShipment` command for the SIM connector;
//! - the clearing house's porting answers (`POST /v1/webhooks/carrier`) become a `CheckPort`
//!   command for the porting connector.
//!
//! A notification is only a hint: the connector reads the state it announces from the sender
//! itself, and the order ignores what it has applied, so repeated deliveries change nothing
//! twice. A notification whose signature does not verify gets 401; one that verifies but
//! names no order item of the platform gets 400; nothing is written for either.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use tcom_connectors::logistics::webhook::TrackingNotification;
use tcom_connectors::porting::webhook::PortNotification;
use tcom_connectors::signed_webhook::verify;
use tcom_connectors::sim_connector::parse_shipment_reference;
use tcom_schemas::porting::{CheckPort, PortingCommand, PortingCommandPayload};
use tcom_schemas::sim::{SimCommand, SimCommandPayload, TrackShipment};

use crate::app::AppState;
use crate::commands::now_ms;
use crate::problem::Problem;

/// Notifications signed longer ago than this are refused.
const TOLERANCE_SECONDS: i64 = 300;

/// How one sender signs its webhooks.
struct Signing<'a> {
    sender: &'static str,
    secret: &'a str,
    timestamp_header: &'static str,
    signature_header: &'static str,
}

fn bad(detail: String) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid_webhook",
        "The webhook is not an event this endpoint takes",
    )
    .with_detail(detail)
}

/// The notification, once its signature verifies.
fn verified<T: DeserializeOwned>(
    signing: &Signing<'_>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, Problem> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    verify(
        signing.secret,
        header(signing.timestamp_header),
        header(signing.signature_header),
        body,
        now_ms() / 1000,
        TOLERANCE_SECONDS,
    )
    .map_err(|e| {
        tracing::warn!(sender = signing.sender, why = %e, "A webhook was refused.");
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            "The webhook signature does not verify",
        )
        .with_detail(e.to_string())
    })?;
    serde_json::from_slice(body).map_err(|e| bad(e.to_string()))
}

/// The order item a notification's `reference` names, `(tenant, order, item)`, when it is of
/// the tenant the notification says.
fn order_item<'r>(
    reference: &'r str,
    tenant: &str,
) -> Result<(&'r str, &'r str, &'r str), Problem> {
    let (t, order, item) = parse_shipment_reference(reference)
        .ok_or_else(|| bad("the reference names no order item".to_owned()))?;
    if t != tenant {
        return Err(bad("the reference names another tenant".to_owned()));
    }
    Ok((t, order, item))
}

fn received() -> Response {
    axum::Json(serde_json::json!({"received": true})).into_response()
}

/// A tracking notification from the SIM fulfilment house.
#[utoipa::path(post, path = "/v1/webhooks/logistics", tag = "webhooks",
    request_body(content = String, description = "The house's tracking notification `{id, type, shipmentId, reference, tenant, seq, status, at}`, signed with `X-Logistics-Timestamp` and `X-Logistics-Signature: sha256=…`", content_type = "application/json"),
    responses((status = 200, description = "Received"),
        (status = 400, description = "`invalid_webhook`: not a notification about one of the platform's order items", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_signature`: signature missing, wrong or stale", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Could not be recorded; the house retries", body = Problem, content_type = "application/problem+json")))]
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let signing = Signing {
        sender: "logistics",
        secret: &state.logistics_webhook_secret,
        timestamp_header: tcom_connectors::logistics::webhook::TIMESTAMP_HEADER,
        signature_header: tcom_connectors::logistics::webhook::SIGNATURE_HEADER,
    };
    let notification: TrackingNotification = verified(&signing, &headers, &body)?;
    let (tenant, order, item) = order_item(&notification.reference, &notification.tenant)?;
    let command = SimCommand {
        command_id: format!("webhook:{}", notification.id),
        tenant_id: tenant.to_owned(),
        order_id: order.to_owned(),
        issued_at: now_ms(),
        payload: SimCommandPayload::TrackShipment(TrackShipment {
            item_id: item.to_owned(),
            shipment_id: notification.shipment_id.clone(),
        }),
    };
    state
        .commands
        .publish(&format!("{tenant}:{order}"), &command)
        .await?;
    Ok(received())
}

/// A porting notification from the clearing house: the losing operator answered a port
/// request, or a port completed.
#[utoipa::path(post, path = "/v1/webhooks/carrier", tag = "webhooks",
    request_body(content = String, description = "The clearing house's notification `{id, type: port.answered|port.completed, portingId, reference, tenant, status, at}`, signed with `X-Carrier-Timestamp` and `X-Carrier-Signature: sha256=…`", content_type = "application/json"),
    responses((status = 200, description = "Received"),
        (status = 400, description = "`invalid_webhook`: not a notification about one of the platform's order items", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_signature`: signature missing, wrong or stale", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Could not be recorded; the clearing house retries", body = Problem, content_type = "application/problem+json")))]
pub async fn receive_carrier(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let signing = Signing {
        sender: "carrier",
        secret: &state.carrier_webhook_secret,
        timestamp_header: tcom_connectors::porting::webhook::TIMESTAMP_HEADER,
        signature_header: tcom_connectors::porting::webhook::SIGNATURE_HEADER,
    };
    let notification: PortNotification = verified(&signing, &headers, &body)?;
    let (tenant, order, item) = order_item(&notification.reference, &notification.tenant)?;
    let command = PortingCommand {
        command_id: format!("webhook:{}", notification.id),
        tenant_id: tenant.to_owned(),
        order_id: order.to_owned(),
        issued_at: now_ms(),
        payload: PortingCommandPayload::CheckPort(CheckPort {
            item_id: item.to_owned(),
            porting_id: notification.porting_id.clone(),
        }),
    };
    state
        .commands
        .publish(&format!("{tenant}:{order}"), &command)
        .await?;
    Ok(received())
}
