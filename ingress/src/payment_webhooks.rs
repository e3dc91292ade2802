//! Payment providers' webhooks, one route per provider and tenant. Each is verified with the
//! tenant's own webhook secret (a reference in its payment settings, resolved at the moment
//! of use, so a rotated secret works at once) before anything is written; a verified event
//! becomes a `SyncPayment` command for the payments connector, which learns the payment's
//! state from the provider (Stripe: read again, so a late or duplicated event cannot move an
//! order back; Adyen, which has no read API: the verified notification itself). The order
//! processor ignores reports that do not move a payment on and remembers the event ids it
//! has seen, so three deliveries of one event make one transition.
//!
//! - Stripe: `Stripe-Signature: t=…,v1=…` over `"{t}.{raw body}"`, several `v1` allowed
//!   (secret rotation), older than the tolerance refused. Answered 200 `{"received": true}`.
//! - Adyen: every notification item carries an HMAC over its fields, checked against the
//!   tenant's HMAC key; answered `[accepted]` (anything else makes Adyen retry).
//!
//! A webhook whose signature does not verify gets 401 and changes nothing; one that verifies
//! but is about another tenant's payment (metadata, merchant account) gets 400.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tcom_connectors::payments::{adyen, stripe};
use tcom_connectors::secrets::SecretStore;
use tcom_schemas::payment::{PaymentCommand, PaymentCommandPayload, SyncPayment};
use tcom_schemas::tenant::PaymentSettings;

use crate::app::AppState;
use crate::commands::now_ms;
use crate::problem::Problem;

fn signature_refused(detail: &str) -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "invalid_signature",
        "The webhook signature does not verify",
    )
    .with_detail(detail.to_owned())
}

fn bad_event(detail: impl Into<String>) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid_webhook",
        "The webhook is not an event this endpoint takes",
    )
    .with_detail(detail)
}

/// The tenant's payment settings for `provider` and its webhook secret. Every failure is the
/// same 401 to the caller (no tenant, another provider, no secret), with the reason logged.
async fn tenant_secret(
    state: &AppState,
    tenant_id: &str,
    provider: &str,
) -> Result<(PaymentSettings, String), Problem> {
    let refused = |why: &str| {
        tracing::warn!(
            tenant = tenant_id,
            provider,
            why,
            "A payment webhook was refused."
        );
        signature_refused("no webhook secret of this tenant verifies it")
    };
    let tenant = state
        .tenants
        .get(tenant_id)
        .await
        .ok_or_else(|| refused("unknown tenant"))?;
    let payment = tenant
        .settings
        .payment
        .clone()
        .filter(|p| p.provider == provider)
        .ok_or_else(|| refused("the tenant does not use this provider"))?;
    let reference = payment
        .webhook_secret_ref
        .clone()
        .ok_or_else(|| refused("the tenant has no webhook secret"))?;
    let secret = SecretStore::new(&state.payments.secrets_dir)
        .resolve_for_tenant(tenant_id, &reference)
        .map_err(|e| {
            tracing::error!(tenant = tenant_id, error = %e, "A tenant's webhook secret cannot be read.");
            refused("webhook secret unreadable")
        })?;
    Ok((payment, secret))
}

fn sync_command(
    tenant_id: &str,
    order_id: &str,
    attempt: i32,
    settings: &PaymentSettings,
    sync: SyncPayment,
) -> PaymentCommand {
    PaymentCommand {
        command_id: format!("webhook:{}", sync.provider_event_id),
        tenant_id: tenant_id.to_owned(),
        order_id: order_id.to_owned(),
        attempt,
        issued_at: now_ms(),
        provider: settings.provider.clone(),
        account_ref: settings.account_ref.clone(),
        secret_ref: settings.secret_ref.clone(),
        payload: PaymentCommandPayload::SyncPayment(sync),
    }
}

/// A Stripe event for the tenant's account.
#[utoipa::path(post, path = "/v1/webhooks/stripe/{tenant_id}", tag = "webhooks",
    request_body(content = String, description = "The Stripe event, as Stripe sends it", content_type = "application/json"),
    responses((status = 200, description = "Received"),
        (status = 400, description = "Not an event of this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Signature missing, wrong or stale", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Could not be recorded; Stripe retries", body = Problem, content_type = "application/problem+json")))]
pub async fn stripe_webhook(
    State(state): State<AppState>,
    Path(tenant_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let (settings, secret) = tenant_secret(&state, &tenant_id, "stripe").await?;
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| signature_refused("no Stripe-Signature header"))?;
    stripe::verify_signature(
        header,
        &body,
        &[secret.as_str()],
        now_ms() / 1000,
        state.payments.webhook_tolerance_seconds,
    )
    .map_err(|e| signature_refused(&e.to_string()))?;
    let event = stripe::parse_event(&body).map_err(|e| bad_event(e.to_string()))?;
    let (Some(order_id), Some(intent)) = (event.order_id.clone(), event.payment_intent_id.clone())
    else {
        // Verified, but not about one of the platform's payments (e.g. a dashboard test).
        tracing::info!(tenant = %tenant_id, event = %event.id, kind = %event.event_type, "A Stripe event about no order; ignored.");
        return Ok(axum::Json(serde_json::json!({"received": true})).into_response());
    };
    if event.tenant_id.as_deref().is_some_and(|t| t != tenant_id) {
        return Err(bad_event("the payment belongs to another tenant"));
    }
    let command = sync_command(
        &tenant_id,
        &order_id,
        event.attempt.unwrap_or(0),
        &settings,
        SyncPayment {
            provider_event_id: event.id.clone(),
            reference: Some(intent),
            notification: None,
        },
    );
    state
        .commands
        .publish(&format!("{tenant_id}:{order_id}"), &command)
        .await?;
    Ok(axum::Json(serde_json::json!({"received": true})).into_response())
}

/// Adyen notifications for the tenant's merchant account.
#[utoipa::path(post, path = "/v1/webhooks/adyen/{tenant_id}", tag = "webhooks",
    request_body(content = String, description = "Adyen's standard notification (JSON)", content_type = "application/json"),
    responses((status = 200, description = "`[accepted]`"),
        (status = 400, description = "Not a notification of this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "An item's HMAC does not verify", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Could not be recorded; Adyen retries", body = Problem, content_type = "application/problem+json")))]
pub async fn adyen_webhook(
    State(state): State<AppState>,
    Path(tenant_id): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    let (settings, hmac_key) = tenant_secret(&state, &tenant_id, "adyen").await?;
    let notification = adyen::parse_notification(&body).map_err(|e| bad_event(e.to_string()))?;
    let items: Vec<&adyen::NotificationItem> = notification.items().collect();
    // All or nothing: one forged item refuses the whole delivery.
    if items
        .iter()
        .any(|item| !adyen::verify_hmac(item, &hmac_key))
    {
        return Err(signature_refused("an item's hmacSignature does not match"));
    }
    if items
        .iter()
        .any(|item| item.merchant_account_code != settings.account_ref)
    {
        return Err(bad_event("a notification of another merchant account"));
    }
    for item in items {
        let notification_json = serde_json::to_string(item).map_err(|_| Problem::internal())?;
        let command = sync_command(
            &tenant_id,
            &item.merchant_reference,
            0,
            &settings,
            SyncPayment {
                provider_event_id: item.dedupe_key(),
                reference: Some(
                    item.original_reference
                        .clone()
                        .unwrap_or_else(|| item.psp_reference.clone()),
                ),
                notification: Some(notification_json),
            },
        );
        state
            .commands
            .publish(
                &format!("{tenant_id}:{}", item.merchant_reference),
                &command,
            )
            .await?;
    }
    Ok((StatusCode::OK, adyen::ACCEPTED).into_response())
}
