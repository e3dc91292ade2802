//! The SIM fulfilment house's tracking webhooks (`POST /v1/webhooks/logistics`): verified
//! with the platform's subscription secret (see
//! [`tcom_connectors::logistics::webhook`]) before anything is written. A verified
//! notification becomes a `TrackShipment` command for the SIM connector, which reads the
//! shipment's tracking from the house itself (the notification is only a hint), and the order
//! ignores events it has applied, so repeated deliveries change nothing twice.
//!
//! A notification whose signature does not verify gets 401; one that verifies but names no
//! order item of the platform gets 400; nothing is written for either.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tcom_connectors::logistics::webhook::{
    SIGNATURE_HEADER, TIMESTAMP_HEADER, TrackingNotification, verify,
};
use tcom_connectors::sim_connector::parse_shipment_reference;
use tcom_schemas::sim::{SimCommand, SimCommandPayload, TrackShipment};

use crate::app::AppState;
use crate::commands::now_ms;
use crate::problem::Problem;

/// Notifications signed longer ago than this are refused.
const TOLERANCE_SECONDS: i64 = 300;

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
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    verify(
        &state.logistics_webhook_secret,
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &body,
        now_ms() / 1000,
        TOLERANCE_SECONDS,
    )
    .map_err(|e| {
        tracing::warn!(why = %e, "A logistics webhook was refused.");
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            "The webhook signature does not verify",
        )
        .with_detail(e.to_string())
    })?;
    let bad = |detail: String| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_webhook",
            "The webhook is not an event this endpoint takes",
        )
        .with_detail(detail)
    };
    let notification: TrackingNotification =
        serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?;
    let (tenant, order, item) = parse_shipment_reference(&notification.reference)
        .ok_or_else(|| bad("the reference names no order item".to_owned()))?;
    if tenant != notification.tenant {
        return Err(bad("the reference names another tenant".to_owned()));
    }
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
    Ok(axum::Json(serde_json::json!({"received": true})).into_response())
}
