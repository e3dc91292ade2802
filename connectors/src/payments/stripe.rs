//! The Stripe client: PaymentIntents over Stripe's REST API, and webhook verification.
//!
//! The platform creates one PaymentIntent per payment attempt with `capture_method=manual`:
//! the shopper authorises on the storefront (Stripe.js confirms with the `client_secret`),
//! and the payments connector captures only once the order's steps have succeeded, or
//! cancels the authorisation when they fail. Stripe's API is form-encoded with bracketed keys
//! (`metadata[order_id]=…`); answers are JSON; errors are `{"error": {type, code, message,
//! param}}`.
//!
//! Every POST carries the caller's `Idempotency-Key`, so a retry after a timeout replays
//! Stripe's first answer instead of charging twice.
//!
//! A refund does not change the intent: it stays `succeeded`, and the refund shows on its
//! charge. [`StripeClient::fetch`] therefore reads the intent with its `latest_charge`
//! expanded, and reports a succeeded intent whose charge is fully refunded as
//! [`PaymentStatus::Refunded`].
//!
//! Webhooks are signed with the endpoint's secret: `Stripe-Signature: t=<unix>,v1=<hex>`
//! over `"{t}.{raw body}"` ([`verify_signature`]); [`parse_event`] reads what the connector
//! needs from an event. Stripe neither orders nor deduplicates deliveries, so the connector
//! dedupes on the event id and re-fetches the intent for its state.

use std::fmt;
use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::{RequestBuilder, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::Sha256;

use super::{PaymentRequest, PaymentStatus, ProviderError, ProviderPayment};

/// The API version the shapes below were written against; pinned so that a change of the
/// account's default version cannot change what the client reads.
const API_VERSION: &str = "2024-06-20";

/// How long one call may take before it counts as unavailable (and is retried with the same
/// idempotency key).
const TIMEOUT: Duration = Duration::from_secs(10);

/// A client for one Stripe account (one secret key).
#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    base_url: String,
    secret_key: String,
}

impl fmt::Debug for StripeClient {
    // The secret key stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeClient")
            .field("base_url", &self.base_url)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

impl StripeClient {
    /// A client for the API at `base_url` (`https://api.stripe.com` or a simulator) with the
    /// account's secret key (`sk_live_…` / `sk_test_…`).
    pub fn new(base_url: &str, secret_key: &str) -> Self {
        // Building only fails when the TLS backend cannot start; the default client then
        // fails the same way on first use, which reports it as unavailable.
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .no_proxy()
            .build()
            .unwrap_or_default();
        Self::with_http(http, base_url, secret_key)
    }

    /// [`Self::new`] on a shared HTTP client (its connection pool), as the payments connector
    /// uses it: one client for every tenant's calls, not a new pool per call.
    pub fn with_http(http: reqwest::Client, base_url: &str, secret_key: &str) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            secret_key: secret_key.to_owned(),
        }
    }

    /// Creates the PaymentIntent for one attempt, to be confirmed by the shopper and captured
    /// later by [`capture`](Self::capture). The request's `return_url` is not sent: Stripe
    /// only takes it with a confirmation, which the storefront makes (Stripe.js
    /// `confirmPayment`).
    ///
    /// # Errors
    /// [`ProviderError`]: unavailable (retry with the same key), rejected or unauthorized.
    #[tracing::instrument(skip_all, fields(order = %request.order_id, attempt = request.attempt))]
    pub async fn create(
        &self,
        request: &PaymentRequest,
        idempotency_key: &str,
    ) -> Result<ProviderPayment, ProviderError> {
        let form = create_form(request);
        let builder = self
            .post("/v1/payment_intents", idempotency_key)
            .form(&form);
        self.intent_call(builder).await
    }

    /// The PaymentIntent as Stripe has it now, with its latest charge expanded
    /// (`expand[]=latest_charge`): a refund shows only there, the intent stays `succeeded`.
    ///
    /// # Errors
    /// [`ProviderError`]; an unknown reference is rejected (`resource_missing`).
    #[tracing::instrument(skip(self))]
    pub async fn fetch(&self, reference: &str) -> Result<ProviderPayment, ProviderError> {
        let path = intent_path(reference, "")?;
        let builder = self
            .http
            .get(self.url(&path))
            .query(&[("expand[]", "latest_charge")])
            .bearer_auth(&self.secret_key)
            .header("Stripe-Version", API_VERSION);
        self.intent_call(builder).await
    }

    /// Captures `amount_minor` (at most what was authorised) of an authorised intent.
    ///
    /// # Errors
    /// [`ProviderError`]; an intent that is not authorised is rejected
    /// (`payment_intent_unexpected_state`).
    #[tracing::instrument(skip(self, idempotency_key))]
    pub async fn capture(
        &self,
        reference: &str,
        amount_minor: i64,
        idempotency_key: &str,
    ) -> Result<ProviderPayment, ProviderError> {
        let path = intent_path(reference, "/capture")?;
        let form = [("amount_to_capture", amount_minor.to_string())];
        let builder = self.post(&path, idempotency_key).form(&form);
        self.intent_call(builder).await
    }

    /// Cancels an intent that is not captured: voids the authorisation, if there is one.
    ///
    /// # Errors
    /// [`ProviderError`]; a captured intent is rejected.
    #[tracing::instrument(skip(self, idempotency_key))]
    pub async fn cancel(
        &self,
        reference: &str,
        idempotency_key: &str,
    ) -> Result<ProviderPayment, ProviderError> {
        let path = intent_path(reference, "/cancel")?;
        let builder = self.post(&path, idempotency_key);
        self.intent_call(builder).await
    }

    /// Refunds `amount_minor` of a captured intent. Reported as [`PaymentStatus::Refunded`]
    /// once Stripe says the refund succeeded; a pending refund reports the intent as it is
    /// (the `charge.refunded` webhook tells when it lands).
    ///
    /// # Errors
    /// [`ProviderError`]; a failed refund is rejected with code `refund_failed`.
    #[tracing::instrument(skip(self, idempotency_key))]
    pub async fn refund(
        &self,
        reference: &str,
        amount_minor: i64,
        idempotency_key: &str,
    ) -> Result<ProviderPayment, ProviderError> {
        check_reference(reference)?;
        let form = [
            ("payment_intent", reference.to_owned()),
            ("amount", amount_minor.to_string()),
        ];
        let builder = self.post("/v1/refunds", idempotency_key).form(&form);
        let refund: Refund = self.call(builder).await?;
        match refund.status.as_deref() {
            Some("succeeded") => {
                let mut payment = self.fetch(reference).await?;
                payment.status = PaymentStatus::Refunded;
                Ok(payment)
            }
            Some("failed" | "canceled") => Err(ProviderError::Rejected {
                code: "refund_failed".into(),
                message: refund
                    .failure_reason
                    .unwrap_or_else(|| format!("refund {} failed", refund.id)),
            }),
            _ => self.fetch(reference).await,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    fn post(&self, path: &str, idempotency_key: &str) -> RequestBuilder {
        self.http
            .post(self.url(path))
            .bearer_auth(&self.secret_key)
            .header("Stripe-Version", API_VERSION)
            .header("Idempotency-Key", idempotency_key)
    }

    async fn intent_call(&self, builder: RequestBuilder) -> Result<ProviderPayment, ProviderError> {
        let intent: PaymentIntent = self.call(builder).await?;
        map_intent(intent)
    }

    /// Sends the request and reads a 2xx answer as `T`, anything else as Stripe's error.
    async fn call<T: DeserializeOwned>(&self, builder: RequestBuilder) -> Result<T, ProviderError> {
        let response = builder.send().await.map_err(transport_error)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport_error)?;
        if !status.is_success() {
            return Err(error_from(status, &body));
        }
        // A 2xx that is not the documented shape came from something in between (a proxy, a
        // truncated body); the same call with the same key may well succeed.
        serde_json::from_slice(&body)
            .map_err(|e| ProviderError::Unavailable(format!("unexpected Stripe response: {e}")))
    }
}

/// The form of `POST /v1/payment_intents` for one attempt.
fn create_form(request: &PaymentRequest) -> Vec<(&'static str, String)> {
    let mut form = vec![
        ("amount", request.amount_minor.to_string()),
        ("currency", request.currency.to_ascii_lowercase()),
        ("capture_method", "manual".to_owned()),
        ("automatic_payment_methods[enabled]", "true".to_owned()),
        ("description", request.description.clone()),
        ("metadata[tenant_id]", request.tenant_id.clone()),
        ("metadata[order_id]", request.order_id.clone()),
        ("metadata[attempt]", request.attempt.to_string()),
        ("metadata[customer_ref]", request.customer_ref.clone()),
    ];
    if request.save_for_subscription {
        form.push(("setup_future_usage", "off_session".to_owned()));
    }
    form
}

/// The path of an intent (or of one of its actions), refusing references that would change
/// the path: they come from webhooks and the database, not only from Stripe.
fn intent_path(reference: &str, action: &str) -> Result<String, ProviderError> {
    check_reference(reference)?;
    Ok(format!("/v1/payment_intents/{reference}{action}"))
}

fn check_reference(reference: &str) -> Result<(), ProviderError> {
    let valid = !reference.is_empty()
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(ProviderError::Rejected {
            code: "invalid_reference".into(),
            message: format!("not a Stripe object id: {reference:?}"),
        })
    }
}

fn transport_error(error: reqwest::Error) -> ProviderError {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    ProviderError::Unavailable(format!("Stripe {what}: {error}"))
}

/// Stripe's error object.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: ApiError,
}

#[derive(Debug, Default, Deserialize)]
struct ApiError {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    message: Option<String>,
    param: Option<String>,
}

/// Codes of a 4xx that means "try again shortly": another request with the same key is
/// still running.
const TRANSIENT_CODES: &[&str] = &["idempotency_key_in_use", "lock_timeout"];

fn error_from(status: StatusCode, body: &[u8]) -> ProviderError {
    let error = serde_json::from_slice::<ErrorBody>(body)
        .unwrap_or_default()
        .error;
    let mut message = error
        .message
        .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
    if let Some(param) = &error.param {
        message = format!("{message} (param {param})");
    }
    let code = error.code.or(error.kind);
    let transient = code
        .as_deref()
        .is_some_and(|c| TRANSIENT_CODES.contains(&c));
    match status.as_u16() {
        401 | 403 => ProviderError::Unauthorized(message),
        429 | 500..=599 => ProviderError::Unavailable(message),
        _ if transient => ProviderError::Unavailable(message),
        _ => ProviderError::Rejected {
            code: code.unwrap_or_else(|| format!("http_{}", status.as_u16())),
            message,
        },
    }
}

/// The fields of a PaymentIntent the platform reads.
#[derive(Debug, Deserialize)]
struct PaymentIntent {
    id: String,
    amount: i64,
    currency: String,
    status: String,
    client_secret: Option<String>,
    last_payment_error: Option<PaymentError>,
    next_action: Option<NextAction>,
    payment_method: Option<Expandable>,
    setup_future_usage: Option<String>,
    #[serde(default)]
    latest_charge: Option<LatestCharge>,
}

/// An intent's `latest_charge`: the charge when expanded, else its id (not needed here).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum LatestCharge {
    Charge(Charge),
    Id(serde::de::IgnoredAny),
}

/// The fields of a Charge the platform reads.
#[derive(Debug, Deserialize)]
struct Charge {
    #[serde(default)]
    amount: i64,
    #[serde(default)]
    amount_captured: i64,
    #[serde(default)]
    amount_refunded: i64,
    #[serde(default)]
    refunded: bool,
}

impl LatestCharge {
    /// Whether what was captured has all been refunded. Stripe's `refunded` says so; without
    /// it, `amount_refunded` must cover the whole charge, because Stripe books the part of an
    /// authorisation that a partial capture let go as refunded as well: after capturing 60 of
    /// 100, `amount_refunded` is already 40 before any refund.
    fn fully_refunded(&self) -> bool {
        match self {
            Self::Id(_) => false,
            Self::Charge(charge) => {
                charge.refunded
                    || (charge.amount_captured > 0 && charge.amount_refunded >= charge.amount)
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct PaymentError {
    code: Option<String>,
    decline_code: Option<String>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NextAction {
    redirect_to_url: Option<RedirectToUrl>,
}

#[derive(Debug, Deserialize)]
struct RedirectToUrl {
    url: Option<String>,
}

/// A reference Stripe sends either as an id or, when expanded, as the object.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Expandable {
    Id(String),
    Object { id: String },
}

impl Expandable {
    fn into_id(self) -> String {
        match self {
            Self::Id(id) | Self::Object { id } => id,
        }
    }
}

/// The fields of a Refund the platform reads.
#[derive(Debug, Deserialize)]
struct Refund {
    id: String,
    status: Option<String>,
    failure_reason: Option<String>,
}

fn map_intent(intent: PaymentIntent) -> Result<ProviderPayment, ProviderError> {
    let status = map_status(&intent)?;
    let refusal_reason = match status {
        PaymentStatus::Refused => intent.last_payment_error.as_ref().map(refusal_reason),
        _ => None,
    };
    let redirect_url = intent
        .next_action
        .and_then(|a| a.redirect_to_url)
        .and_then(|r| r.url);
    // The method is only worth keeping when the intent was set up for later charges.
    let payment_method_ref = intent
        .setup_future_usage
        .as_ref()
        .and(intent.payment_method)
        .map(Expandable::into_id);
    Ok(ProviderPayment {
        reference: intent.id,
        status,
        amount_minor: intent.amount,
        currency: intent.currency.to_ascii_uppercase(),
        client_secret: intent.client_secret,
        redirect_url,
        payment_method_ref,
        refusal_reason,
    })
}

fn map_status(intent: &PaymentIntent) -> Result<PaymentStatus, ProviderError> {
    Ok(match intent.status.as_str() {
        // A failed attempt sends the intent back to `requires_payment_method` with the error.
        "requires_payment_method" if intent.last_payment_error.is_some() => PaymentStatus::Refused,
        "requires_payment_method" | "requires_confirmation" => PaymentStatus::AwaitingShopper,
        "requires_action" => PaymentStatus::RequiresAction,
        "processing" => PaymentStatus::Processing,
        "requires_capture" => PaymentStatus::Authorized,
        // Refunds leave the intent succeeded; only its (expanded) charge tells.
        "succeeded"
            if intent
                .latest_charge
                .as_ref()
                .is_some_and(LatestCharge::fully_refunded) =>
        {
            PaymentStatus::Refunded
        }
        "succeeded" => PaymentStatus::Captured,
        "canceled" => PaymentStatus::Canceled,
        other => {
            return Err(ProviderError::Rejected {
                code: "unknown_status".into(),
                message: format!("PaymentIntent {} has unknown status {other:?}", intent.id),
            });
        }
    })
}

fn refusal_reason(error: &PaymentError) -> String {
    let detail = error.decline_code.as_ref().or(error.code.as_ref());
    match (&error.message, detail) {
        (Some(message), Some(detail)) => format!("{message} ({detail})"),
        (Some(message), None) => message.clone(),
        (None, Some(detail)) => detail.clone(),
        (None, None) => "refused".to_owned(),
    }
}

/// Why a `Stripe-Signature` header does not prove the webhook came from Stripe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No timestamp, no `v1` signature, or not a signature header at all.
    #[error("malformed Stripe-Signature header")]
    Malformed,
    /// No `v1` signature matches the body with any of the endpoint's secrets.
    #[error("no Stripe signature matches the body")]
    NoMatch,
    /// Signed, but too long ago (or too far ahead): possibly a replay.
    #[error("Stripe signature timestamp outside the tolerance")]
    Stale,
}

/// Checks a webhook's `Stripe-Signature` header against the raw body and returns the signed
/// timestamp. Any `v1` signature matching with any of `secrets` passes, so an endpoint can
/// roll its secret (Stripe then signs with both for a while); `v0` and unknown schemes are
/// ignored. The key is the whole `whsec_…` string, as Stripe's libraries use it.
///
/// # Errors
/// [`SignatureError`]: malformed header, no matching signature, or `|now - t| > tolerance`.
pub fn verify_signature(
    header: &str,
    body: &[u8],
    secrets: &[&str],
    now_unix: i64,
    tolerance_seconds: i64,
) -> Result<i64, SignatureError> {
    let (timestamp, signatures) = parse_signature_header(header)?;
    let matches = secrets.iter().any(|secret| {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
            return false;
        };
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        // verify_slice compares in constant time.
        signatures
            .iter()
            .any(|signature| mac.clone().verify_slice(signature).is_ok())
    });
    if !matches {
        return Err(SignatureError::NoMatch);
    }
    let tolerance = u64::try_from(tolerance_seconds).unwrap_or(0);
    if now_unix.abs_diff(timestamp) > tolerance {
        return Err(SignatureError::Stale);
    }
    Ok(timestamp)
}

/// `t=<unix>,v1=<hex>[,v1=<hex>…]` → the timestamp and the decoded `v1` signatures. A `v1`
/// that is not hex cannot match and is skipped.
fn parse_signature_header(header: &str) -> Result<(i64, Vec<Vec<u8>>), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    let mut any_v1 = false;
    for item in header.split(',') {
        let Some((key, value)) = item.trim().split_once('=') else {
            continue;
        };
        match key {
            "t" => timestamp = value.parse::<i64>().ok(),
            "v1" => {
                any_v1 = true;
                signatures.extend(hex::decode(value).ok());
            }
            _ => {}
        }
    }
    match timestamp {
        Some(t) if any_v1 => Ok((t, signatures)),
        _ => Err(SignatureError::Malformed),
    }
}

/// What the payments connector needs from a Stripe event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// `evt_…`: the key to dedupe deliveries on.
    pub id: String,
    /// `payment_intent.succeeded`, `charge.refunded`, …
    pub event_type: String,
    /// The intent the event is about: the object itself, or a charge's / refund's intent.
    pub payment_intent_id: Option<String>,
    /// From the metadata the platform set on the intent.
    pub order_id: Option<String>,
    pub tenant_id: Option<String>,
    pub attempt: Option<i32>,
}

/// Why a webhook body is not a Stripe event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("not a Stripe event: {0}")]
    Invalid(String),
}

#[derive(Debug, Deserialize)]
struct RawEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: RawData,
}

#[derive(Debug, Deserialize)]
struct RawData {
    object: Value,
}

/// Reads an event (`{id, type, data: {object}}`) whose object is a PaymentIntent or a
/// charge / refund of one. Charges carry their intent's metadata; refunds carry their own,
/// so a refund event may come without an order id (re-fetch the intent then).
///
/// # Errors
/// [`EventError::Invalid`]: not JSON, or without `id`, `type` or `data.object`.
pub fn parse_event(body: &[u8]) -> Result<WebhookEvent, EventError> {
    let raw: RawEvent =
        serde_json::from_slice(body).map_err(|e| EventError::Invalid(e.to_string()))?;
    let object = &raw.data.object;
    let is_intent = object.get("object").and_then(Value::as_str) == Some("payment_intent");
    let payment_intent_id = if is_intent {
        object.get("id").and_then(Value::as_str).map(str::to_owned)
    } else {
        object.get("payment_intent").and_then(reference_id)
    };
    let metadata = |key: &str| {
        object
            .get("metadata")
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Ok(WebhookEvent {
        id: raw.id,
        event_type: raw.kind,
        payment_intent_id,
        order_id: metadata("order_id"),
        tenant_id: metadata("tenant_id"),
        attempt: metadata("attempt").and_then(|a| a.parse().ok()),
    })
}

/// An id sent as a string or as an expanded object.
fn reference_id(value: &Value) -> Option<String> {
    value
        .as_str()
        .or_else(|| value.get("id").and_then(Value::as_str))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::HeaderMap;
    use axum::routing::post;
    use serde_json::json;
    use tokio::sync::mpsc;

    use super::*;
    use crate::payments::stripe_sim;

    const SECRET: &str = "whsec_test_secret";

    fn sign(secret: &str, t: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn signature_valid() {
        let body = br#"{"id":"evt_1"}"#;
        let header = format!("t=1000,v1={}", sign(SECRET, 1000, body));
        assert_eq!(
            verify_signature(&header, body, &[SECRET], 1010, 300),
            Ok(1000)
        );
    }

    #[test]
    fn signature_tampered_body() {
        let header = format!("t=1000,v1={}", sign(SECRET, 1000, b"{\"amount\":1}"));
        assert_eq!(
            verify_signature(&header, b"{\"amount\":2}", &[SECRET], 1000, 300),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn signature_wrong_secret() {
        let header = format!("t=1000,v1={}", sign("whsec_other", 1000, b"{}"));
        assert_eq!(
            verify_signature(&header, b"{}", &[SECRET], 1000, 300),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify_signature(&header, b"{}", &[], 1000, 300),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn signature_stale_both_directions() {
        let header = format!("t=1000,v1={}", sign(SECRET, 1000, b"{}"));
        assert_eq!(
            verify_signature(&header, b"{}", &[SECRET], 1301, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_signature(&header, b"{}", &[SECRET], 699, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_signature(&header, b"{}", &[SECRET], 1300, 300),
            Ok(1000)
        );
    }

    #[test]
    fn signature_rotation() {
        let body = b"{}";
        let old = sign("whsec_old", 1000, body);
        let new = sign("whsec_new", 1000, body);
        // Two v1 signatures, the second matches the only secret the receiver has.
        let header = format!("t=1000,v1={old},v1={new},v0=abcd");
        assert_eq!(
            verify_signature(&header, body, &["whsec_new"], 1000, 300),
            Ok(1000)
        );
        // One signature, the receiver holds both secrets while rolling.
        let header = format!("t=1000,v1={old}");
        assert_eq!(
            verify_signature(&header, body, &["whsec_new", "whsec_old"], 1000, 300),
            Ok(1000)
        );
    }

    #[test]
    fn signature_malformed() {
        let v1 = sign(SECRET, 1000, b"{}");
        for header in [
            format!("v1={v1}"),
            "t=1000".to_owned(),
            "t=1000,v0=abcd".to_owned(),
            format!("t=soon,v1={v1}"),
            "garbage".to_owned(),
            String::new(),
        ] {
            assert_eq!(
                verify_signature(&header, b"{}", &[SECRET], 1000, 300),
                Err(SignatureError::Malformed),
                "{header}"
            );
        }
        // A v1 that is not hex is present but cannot match.
        assert_eq!(
            verify_signature("t=1000,v1=zz", b"{}", &[SECRET], 1000, 300),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn event_of_intent_and_of_charge() {
        let intent = json!({"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {
            "id": "pi_1", "object": "payment_intent",
            "metadata": {"order_id": "o-1", "tenant_id": "t-1", "attempt": "2"}}}});
        let event = parse_event(intent.to_string().as_bytes()).unwrap();
        assert_eq!(
            event,
            WebhookEvent {
                id: "evt_1".into(),
                event_type: "payment_intent.succeeded".into(),
                payment_intent_id: Some("pi_1".into()),
                order_id: Some("o-1".into()),
                tenant_id: Some("t-1".into()),
                attempt: Some(2),
            }
        );
        let charge = json!({"id": "evt_2", "type": "charge.refunded", "data": {"object": {
            "id": "ch_1", "object": "charge", "payment_intent": "pi_1",
            "metadata": {"order_id": "o-1"}}}});
        let event = parse_event(charge.to_string().as_bytes()).unwrap();
        assert_eq!(event.payment_intent_id.as_deref(), Some("pi_1"));
        assert_eq!(event.order_id.as_deref(), Some("o-1"));
        assert_eq!(event.attempt, None);
        assert!(parse_event(b"{\"id\":\"evt_3\"}").is_err());
        assert!(parse_event(b"not json").is_err());
    }

    /// A PaymentIntent as the API reference documents it, requiring capture, with a method
    /// saved for later. Written from the documented field list.
    fn fixture() -> Value {
        json!({
            "id": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
            "object": "payment_intent",
            "amount": 14900,
            "amount_capturable": 14900,
            "amount_details": {"tip": {}},
            "amount_received": 0,
            "application": null,
            "application_fee_amount": null,
            "automatic_payment_methods": {"allow_redirects": "always", "enabled": true},
            "canceled_at": null,
            "cancellation_reason": null,
            "capture_method": "manual",
            "client_secret": "pi_3MtwBwLkdIwHu7ix28a3tqPa_secret_YrKJUKribcBjcG8HVhfZluoGH",
            "confirmation_method": "automatic",
            "created": 1_680_800_504,
            "currency": "dkk",
            "customer": null,
            "description": "Order o-42",
            "invoice": null,
            "last_payment_error": null,
            "latest_charge": "ch_3MtwBwLkdIwHu7ix2Xf7Yh0d",
            "livemode": false,
            "metadata": {"order_id": "o-42", "tenant_id": "nordlys", "attempt": "1", "customer_ref": "c-7"},
            "next_action": null,
            "on_behalf_of": null,
            "payment_method": "pm_1MtwBwLkdIwHu7ixU8cLdX3T",
            "payment_method_configuration_details": null,
            "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
            "payment_method_types": ["card"],
            "processing": null,
            "receipt_email": null,
            "review": null,
            "setup_future_usage": "off_session",
            "shipping": null,
            "source": null,
            "statement_descriptor": null,
            "statement_descriptor_suffix": null,
            "status": "requires_capture",
            "transfer_data": null,
            "transfer_group": null
        })
    }

    #[test]
    fn fixture_maps_to_provider_payment() {
        let intent: PaymentIntent = serde_json::from_value(fixture()).unwrap();
        assert_eq!(
            map_intent(intent).unwrap(),
            ProviderPayment {
                reference: "pi_3MtwBwLkdIwHu7ix28a3tqPa".into(),
                status: PaymentStatus::Authorized,
                amount_minor: 14900,
                currency: "DKK".into(),
                client_secret: Some(
                    "pi_3MtwBwLkdIwHu7ix28a3tqPa_secret_YrKJUKribcBjcG8HVhfZluoGH".into()
                ),
                redirect_url: None,
                payment_method_ref: Some("pm_1MtwBwLkdIwHu7ixU8cLdX3T".into()),
                refusal_reason: None,
            }
        );
    }

    #[test]
    fn statuses_map() {
        let with = |patch: Value| {
            let mut intent = fixture();
            for (k, v) in patch.as_object().unwrap() {
                intent[k] = v.clone();
            }
            map_intent(serde_json::from_value(intent).unwrap()).unwrap()
        };
        let cases = [
            ("requires_payment_method", PaymentStatus::AwaitingShopper),
            ("requires_confirmation", PaymentStatus::AwaitingShopper),
            ("processing", PaymentStatus::Processing),
            ("succeeded", PaymentStatus::Captured),
            ("canceled", PaymentStatus::Canceled),
        ];
        for (status, expected) in cases {
            assert_eq!(with(json!({"status": status})).status, expected, "{status}");
        }
        let refused = with(
            json!({"status": "requires_payment_method", "last_payment_error": {
            "type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds."}}),
        );
        assert_eq!(refused.status, PaymentStatus::Refused);
        assert_eq!(
            refused.refusal_reason.as_deref(),
            Some("Your card has insufficient funds. (insufficient_funds)")
        );
        let action = with(json!({"status": "requires_action", "next_action": {
            "type": "redirect_to_url",
            "redirect_to_url": {"url": "https://hooks.stripe.com/3ds", "return_url": "https://shop/r"}}}));
        assert_eq!(action.status, PaymentStatus::RequiresAction);
        assert_eq!(
            action.redirect_url.as_deref(),
            Some("https://hooks.stripe.com/3ds")
        );
        let unsaved = with(json!({"setup_future_usage": null}));
        assert_eq!(unsaved.payment_method_ref, None);
        let unknown = fixture_with_status("requires_magic");
        assert!(matches!(
            map_intent(unknown),
            Err(ProviderError::Rejected { .. })
        ));
    }

    #[test]
    fn a_refund_shows_on_the_expanded_charge() {
        let succeeded = |charge: Value| {
            let mut intent = fixture();
            intent["status"] = json!("succeeded");
            intent["latest_charge"] = charge;
            map_intent(serde_json::from_value(intent).unwrap())
                .unwrap()
                .status
        };
        let charge = |amount_captured: i64, amount_refunded: i64, refunded: bool| {
            json!({"id": "ch_1", "object": "charge", "amount": 14900,
                   "amount_captured": amount_captured, "amount_refunded": amount_refunded,
                   "refunded": refunded, "payment_intent": "pi_1", "metadata": {}})
        };
        assert_eq!(
            succeeded(charge(14900, 14900, true)),
            PaymentStatus::Refunded
        );
        // A partial refund leaves the payment captured.
        assert_eq!(
            succeeded(charge(14900, 4000, false)),
            PaymentStatus::Captured
        );
        // Captured 10000 of 14900: the 4900 let go is booked as refunded, nothing was.
        assert_eq!(
            succeeded(charge(10000, 4900, false)),
            PaymentStatus::Captured
        );
        assert_eq!(
            succeeded(charge(10000, 14900, true)),
            PaymentStatus::Refunded
        );
        // Without `refunded`, the amounts decide.
        let bare = json!({"id": "ch_1", "amount": 14900, "amount_captured": 14900,
                          "amount_refunded": 14900});
        assert_eq!(succeeded(bare), PaymentStatus::Refunded);
        // Not expanded, or none: captured.
        assert_eq!(succeeded(json!("ch_1")), PaymentStatus::Captured);
        assert_eq!(succeeded(Value::Null), PaymentStatus::Captured);
        // Only a succeeded intent can have been refunded.
        let mut intent = fixture();
        intent["latest_charge"] = charge(0, 14900, true);
        intent["status"] = json!("canceled");
        let canceled = map_intent(serde_json::from_value(intent).unwrap()).unwrap();
        assert_eq!(canceled.status, PaymentStatus::Canceled);
    }

    fn fixture_with_status(status: &str) -> PaymentIntent {
        let mut intent = fixture();
        intent["status"] = json!(status);
        serde_json::from_value(intent).unwrap()
    }

    #[test]
    fn errors_map() {
        let body = br#"{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such payment_intent: 'pi_x'","param":"intent"}}"#;
        assert_eq!(
            error_from(StatusCode::NOT_FOUND, body),
            ProviderError::Rejected {
                code: "resource_missing".into(),
                message: "No such payment_intent: 'pi_x' (param intent)".into()
            }
        );
        let typed = br#"{"error":{"type":"idempotency_error","message":"Keys differ"}}"#;
        assert!(matches!(
            error_from(StatusCode::BAD_REQUEST, typed),
            ProviderError::Rejected { code, .. } if code == "idempotency_error"
        ));
        assert!(matches!(
            error_from(StatusCode::UNAUTHORIZED, b""),
            ProviderError::Unauthorized(_)
        ));
        assert!(matches!(
            error_from(StatusCode::FORBIDDEN, b""),
            ProviderError::Unauthorized(_)
        ));
        for status in [
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::BAD_GATEWAY,
        ] {
            assert!(error_from(status, b"<html>").is_transient(), "{status}");
        }
        let in_use = br#"{"error":{"type":"invalid_request_error","code":"idempotency_key_in_use","message":"busy"}}"#;
        assert!(error_from(StatusCode::CONFLICT, in_use).is_transient());
    }

    #[test]
    fn create_form_has_stripe_keys() {
        let form = create_form(&request("o-1", true));
        let get = |k: &str| {
            form.iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("amount"), Some("14900"));
        assert_eq!(get("currency"), Some("dkk"));
        assert_eq!(get("capture_method"), Some("manual"));
        assert_eq!(get("automatic_payment_methods[enabled]"), Some("true"));
        assert_eq!(get("setup_future_usage"), Some("off_session"));
        assert_eq!(get("metadata[order_id]"), Some("o-1"));
        assert_eq!(get("metadata[attempt]"), Some("1"));
        let form = create_form(&request("o-1", false));
        assert!(!form.iter().any(|(k, _)| *k == "setup_future_usage"));
    }

    #[test]
    fn debug_hides_the_key() {
        let client = StripeClient::new("http://localhost/", "sk_test_hidden");
        let debug = format!("{client:?}");
        assert!(!debug.contains("sk_test_hidden"), "{debug}");
        assert_eq!(client.base_url, "http://localhost");
    }

    // ---- against the simulator ----

    fn request(order_id: &str, save: bool) -> PaymentRequest {
        PaymentRequest {
            tenant_id: "nordlys".into(),
            order_id: order_id.into(),
            attempt: 1,
            amount_minor: 14900,
            currency: "DKK".into(),
            customer_ref: "c-7".into(),
            description: format!("Order {order_id}"),
            return_url: "http://shop.test/return".into(),
            save_for_subscription: save,
            expires_at: None,
        }
    }

    async fn start_sim() -> String {
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(stripe_sim::serve(
            "127.0.0.1:0".parse().unwrap(),
            std::future::pending(),
            move |address| {
                let _ = tx.send(address);
            },
        ));
        format!("http://{}", rx.await.unwrap())
    }

    fn key(name: &str) -> String {
        format!("sk_test_{name}_{}", uuid::Uuid::new_v4().simple())
    }

    /// Confirms the intent as Stripe.js would, with one of Stripe's test payment methods.
    async fn confirm(base: &str, secret_key: &str, id: &str, method: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{base}/v1/payment_intents/{id}/confirm"))
            .bearer_auth(secret_key)
            .form(&[
                ("payment_method", method),
                ("return_url", "http://shop.test/return"),
            ])
            .send()
            .await
            .unwrap()
    }

    async fn sim_json(base: &str, path: &str) -> Value {
        reqwest::get(format!("{base}{path}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn authorize_capture_refund() {
        let base = start_sim().await;
        let sk = key("happy");
        let client = StripeClient::new(&base, &sk);
        let created = client
            .create(&request("o-1", true), "o-1:1:create")
            .await
            .unwrap();
        assert_eq!(created.status, PaymentStatus::AwaitingShopper);
        assert_eq!(created.currency, "DKK");
        assert_eq!(created.amount_minor, 14900);
        assert!(created.reference.starts_with("pi_"));
        let secret = created.client_secret.clone().unwrap();
        assert!(secret.starts_with(&format!("{}_secret_", created.reference)));

        let response = confirm(&base, &sk, &created.reference, "pm_card_visa").await;
        assert!(response.status().is_success());
        let authorized = client.fetch(&created.reference).await.unwrap();
        assert_eq!(authorized.status, PaymentStatus::Authorized);
        assert!(
            authorized
                .payment_method_ref
                .as_deref()
                .unwrap()
                .starts_with("pm_")
        );

        let captured = client
            .capture(&created.reference, 14900, "o-1:1:capture")
            .await
            .unwrap();
        assert_eq!(captured.status, PaymentStatus::Captured);
        let refunded = client
            .refund(&created.reference, 14900, "o-1:1:refund")
            .await
            .unwrap();
        assert_eq!(refunded.status, PaymentStatus::Refunded);
        assert_eq!(refunded.reference, created.reference);
        // Read again (as after a charge.refunded webhook): still refunded, although the
        // intent itself stays succeeded, as Stripe keeps it.
        assert_eq!(
            client.fetch(&created.reference).await.unwrap().status,
            PaymentStatus::Refunded
        );
        let intent: Value = reqwest::Client::new()
            .get(format!("{base}/v1/payment_intents/{}", created.reference))
            .bearer_auth(&sk)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(intent["status"], "succeeded");
        assert!(intent["latest_charge"].is_string());

        let ledger = sim_json(&base, "/_sim/ledger").await;
        let intent = &ledger["intents"][0];
        assert_eq!(intent["amount_received"], 14900);
        assert_eq!(intent["amount_refunded"], 14900);
        assert_eq!(intent["metadata"]["order_id"], "o-1");
    }

    #[tokio::test]
    async fn a_partial_refund_stays_captured_when_read_again() {
        let base = start_sim().await;
        let sk = key("partial");
        let client = StripeClient::new(&base, &sk);
        let created = client
            .create(&request("o-10", false), "o-10:1:create")
            .await
            .unwrap();
        confirm(&base, &sk, &created.reference, "pm_card_visa").await;
        // Part of the authorisation is let go: not a refund.
        client
            .capture(&created.reference, 10_000, "o-10:1:capture")
            .await
            .unwrap();
        assert_eq!(
            client.fetch(&created.reference).await.unwrap().status,
            PaymentStatus::Captured
        );
        let partly = client
            .refund(&created.reference, 4_000, "o-10:1:refund:1")
            .await
            .unwrap();
        assert_eq!(partly.status, PaymentStatus::Refunded);
        assert_eq!(
            client.fetch(&created.reference).await.unwrap().status,
            PaymentStatus::Captured
        );
        client
            .refund(&created.reference, 6_000, "o-10:1:refund:2")
            .await
            .unwrap();
        assert_eq!(
            client.fetch(&created.reference).await.unwrap().status,
            PaymentStatus::Refunded
        );
    }

    #[tokio::test]
    async fn idempotent_create() {
        let base = start_sim().await;
        let client = StripeClient::new(&base, &key("idem"));
        let first = client
            .create(&request("o-2", false), "o-2:1:create")
            .await
            .unwrap();
        let again = client
            .create(&request("o-2", false), "o-2:1:create")
            .await
            .unwrap();
        assert_eq!(first.reference, again.reference);
        let mut changed = request("o-2", false);
        changed.amount_minor = 100;
        let error = client.create(&changed, "o-2:1:create").await.unwrap_err();
        assert!(
            matches!(&error, ProviderError::Rejected { code, .. } if code == "idempotency_error"),
            "{error:?}"
        );
        let ledger = sim_json(&base, "/_sim/ledger").await;
        assert_eq!(ledger["intents"].as_array().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn declined_is_refused() {
        let base = start_sim().await;
        let sk = key("declined");
        let client = StripeClient::new(&base, &sk);
        let created = client
            .create(&request("o-3", false), "o-3:1:create")
            .await
            .unwrap();
        let response = confirm(&base, &sk, &created.reference, "pm_card_chargeDeclined").await;
        assert_eq!(response.status().as_u16(), 402);
        let refused = client.fetch(&created.reference).await.unwrap();
        assert_eq!(refused.status, PaymentStatus::Refused);
        let reason = refused.refusal_reason.unwrap();
        assert!(reason.contains("declined"), "{reason}");
    }

    #[tokio::test]
    async fn three_d_secure_then_authorized() {
        let base = start_sim().await;
        let sk = key("3ds");
        let client = StripeClient::new(&base, &sk);
        let created = client
            .create(&request("o-4", false), "o-4:1:create")
            .await
            .unwrap();
        confirm(
            &base,
            &sk,
            &created.reference,
            "pm_card_authenticationRequired",
        )
        .await;
        let action = client.fetch(&created.reference).await.unwrap();
        assert_eq!(action.status, PaymentStatus::RequiresAction);
        let redirect = action.redirect_url.unwrap();
        assert_eq!(redirect, format!("{base}/_sim/3ds/{}", created.reference));
        // The shopper completes the challenge; the page sends them back to the shop.
        let no_redirects = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let response = no_redirects
            .post(&redirect)
            .form(&[("outcome", "complete")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 303);
        let location = response.headers()["location"].to_str().unwrap();
        assert!(
            location.starts_with("http://shop.test/return?"),
            "{location}"
        );
        let authorized = client.fetch(&created.reference).await.unwrap();
        assert_eq!(authorized.status, PaymentStatus::Authorized);
    }

    #[tokio::test]
    async fn cancel_voids() {
        let base = start_sim().await;
        let sk = key("cancel");
        let client = StripeClient::new(&base, &sk);
        let created = client
            .create(&request("o-5", false), "o-5:1:create")
            .await
            .unwrap();
        confirm(&base, &sk, &created.reference, "pm_card_visa").await;
        let canceled = client
            .cancel(&created.reference, "o-5:1:cancel")
            .await
            .unwrap();
        assert_eq!(canceled.status, PaymentStatus::Canceled);
        let error = client
            .capture(&created.reference, 14900, "o-5:1:capture")
            .await
            .unwrap_err();
        assert!(
            matches!(&error, ProviderError::Rejected { code, .. } if code == "payment_intent_unexpected_state"),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn bad_key_is_unauthorized() {
        let base = start_sim().await;
        let client = StripeClient::new(&base, "rk_live_nonsense");
        let error = client
            .create(&request("o-6", false), "o-6:1:create")
            .await
            .unwrap_err();
        assert!(matches!(error, ProviderError::Unauthorized(_)), "{error:?}");
    }

    #[tokio::test]
    async fn unreachable_is_unavailable() {
        // A port nothing listens on: bind one, then let it go.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let client = StripeClient::new(&format!("http://{address}"), "sk_test_x");
        let error = client.fetch("pi_1").await.unwrap_err();
        assert!(error.is_transient(), "{error:?}");
        assert!(matches!(
            client.fetch("pi_1/../../v1/refunds").await,
            Err(ProviderError::Rejected { .. })
        ));
    }

    #[tokio::test]
    async fn fault_then_retry_charges_once() {
        let base = start_sim().await;
        let client = StripeClient::new(&base, &key("faults"));
        reqwest::Client::new()
            .post(format!("{base}/_sim/faults"))
            .json(&json!({"fail_next_requests": 1}))
            .send()
            .await
            .unwrap();
        let error = client
            .create(&request("o-7", false), "o-7:1:create")
            .await
            .unwrap_err();
        assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
        let retried = client
            .create(&request("o-7", false), "o-7:1:create")
            .await
            .unwrap();
        assert_eq!(retried.status, PaymentStatus::AwaitingShopper);
        let ledger = sim_json(&base, "/_sim/ledger").await;
        let intents: Vec<&Value> = ledger["intents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["metadata"]["order_id"] == "o-7")
            .collect();
        assert_eq!(intents.len(), 1);
        assert_eq!(intents[0]["idempotency_keys"], json!(["o-7:1:create"]));
    }

    type Received = mpsc::UnboundedSender<(HeaderMap, Bytes)>;

    async fn receive(State(tx): State<Received>, headers: HeaderMap, body: Bytes) -> &'static str {
        let _ = tx.send((headers, body));
        "ok"
    }

    /// A webhook receiver on a free port; what it receives comes out of the channel.
    async fn start_receiver() -> (SocketAddr, mpsc::UnboundedReceiver<(HeaderMap, Bytes)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = Router::new().route("/hook", post(receive)).with_state(tx);
        tokio::spawn(async move { axum::serve(listener, app).await });
        (address, rx)
    }

    #[tokio::test]
    async fn webhook_verifies_and_parses() {
        let base = start_sim().await;
        let sk = key("hooks");
        let (receiver, mut received) = start_receiver().await;
        let endpoint: Value = reqwest::Client::new()
            .post(format!("{base}/v1/webhook_endpoints"))
            .bearer_auth(&sk)
            .form(&[
                ("url", format!("http://{receiver}/hook")),
                ("enabled_events[]", "payment_intent.created".into()),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let secret = endpoint["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("whsec_"));

        let client = StripeClient::new(&base, &sk);
        let created = client
            .create(&request("o-8", false), "o-8:1:create")
            .await
            .unwrap();
        let (headers, body) = tokio::time::timeout(Duration::from_secs(5), received.recv())
            .await
            .unwrap()
            .unwrap();
        let header = headers["stripe-signature"].to_str().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        verify_signature(header, &body, &[&secret], now, 300).unwrap();
        assert_eq!(
            verify_signature(header, &body, &["whsec_wrong"], now, 300),
            Err(SignatureError::NoMatch)
        );
        let event = parse_event(&body).unwrap();
        assert_eq!(event.event_type, "payment_intent.created");
        assert_eq!(
            event.payment_intent_id.as_deref(),
            Some(created.reference.as_str())
        );
        assert_eq!(event.order_id.as_deref(), Some("o-8"));
        assert_eq!(event.tenant_id.as_deref(), Some("nordlys"));
        assert_eq!(event.attempt, Some(1));
    }

    #[tokio::test]
    async fn simulator_intent_has_every_documented_field() {
        let base = start_sim().await;
        let sk = key("fields");
        let client = StripeClient::new(&base, &sk);
        let created = client
            .create(&request("o-9", true), "o-9:1:create")
            .await
            .unwrap();
        let intent: Value = reqwest::Client::new()
            .get(format!("{base}/v1/payment_intents/{}", created.reference))
            .bearer_auth(&sk)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let fixture = fixture();
        let missing: Vec<&String> = fixture
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| intent.get(k.as_str()).is_none())
            .collect();
        assert!(missing.is_empty(), "simulator lacks {missing:?}");
    }
}
