//! Adyen: the Checkout API (v71) client and the standard webhook's types, signature check and
//! mapping to the platform's payment states.
//!
//! The platform uses Adyen's Hosted Checkout: [`AdyenClient::create`] makes a session
//! (`POST /v71/sessions`, `mode: hosted`) and the shopper pays on the page at its `url`. Adyen
//! has no "get payment" call, so everything after that arrives as a standard webhook
//! ([`parse_notification`], [`verify_hmac`], [`payment_from_notification`]). Capture, cancel
//! and refund are asynchronous as well: Adyen answers `received` and sends the outcome later as
//! a `CAPTURE` / `CANCELLATION` / `REFUND` webhook. A modification's `reference` is the order id:
//! Adyen echoes it as that webhook's `merchantReference`, by which the ingress finds the order.
//!
//! Sessions ask for manual capture (`additionalData.manualCapture: "true"`): the connector
//! captures only once the order's steps have succeeded. A session carries `expiresAt`, the end
//! of the checkout's freeze window; until then a shopper whose card was refused may try another
//! one in the same session.
//!
//! The webhook signature is not over the raw body: it is an HMAC-SHA256 over eight fields of
//! each notification item, joined by `:` as they are (no escaping: that belongs to the old
//! Hosted Payment Pages signature, not to webhooks), keyed with the hex-decoded key of the
//! webhook endpoint. The receiver must answer [`ACCEPTED`].

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;

use super::{PaymentRequest, PaymentStatus, ProviderError, ProviderPayment};

/// What a webhook endpoint must answer (with a 2xx status) so that Adyen stops retrying.
pub const ACCEPTED: &str = "[accepted]";

/// The Checkout API version the client speaks.
const CHECKOUT_VERSION: &str = "v71";

/// Adyen's own webhook timeout is 10 s; a call that takes longer is better retried with the
/// same idempotency key than waited for.
const TIMEOUT: Duration = Duration::from_secs(10);

/// An amount in the currency's minor unit, as Adyen writes it everywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    /// In minor units (øre, cents).
    pub value: i64,
    /// ISO 4217, upper case.
    pub currency: String,
}

/// A client for one Adyen merchant account.
#[derive(Clone)]
pub struct AdyenClient {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
    merchant_account: String,
}

// By hand, so that the API key never reaches a log line.
impl std::fmt::Debug for AdyenClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdyenClient")
            .field("base_url", &self.base_url)
            .field("merchant_account", &self.merchant_account)
            .finish_non_exhaustive()
    }
}

/// Adyen received a capture, cancel or refund; its outcome arrives later as a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModificationAccepted {
    /// The modification's own reference (the webhook's `pspReference`).
    pub psp_reference: String,
    /// The payment it applies to (the webhook's `originalReference`).
    pub payment_psp_reference: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionRequest<'a> {
    merchant_account: &'a str,
    amount: Amount,
    reference: &'a str,
    return_url: &'a str,
    shopper_reference: &'a str,
    mode: &'static str,
    shopper_interaction: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    store_payment_method_mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recurring_processing_model: Option<&'static str>,
    /// RFC 3339; Adyen's default is one hour after creation, its maximum 24 hours.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    additional_data: SessionAdditionalData,
    metadata: SessionMetadata<'a>,
}

/// `additionalData` of a session: Adyen's values are strings.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionAdditionalData {
    /// `"true"`: the payment is authorised only, and captured when the connector asks
    /// (`captureDelayHours` would instead schedule an automatic capture).
    manual_capture: &'static str,
}

/// Adyen's metadata values are strings; these let a webhook or the Customer Area be traced
/// back to the tenant and the attempt.
#[derive(Debug, Serialize)]
struct SessionMetadata<'a> {
    tenant_id: &'a str,
    order_id: &'a str,
    attempt: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionResponse {
    id: String,
    session_data: Option<String>,
    url: Option<String>,
    amount: Amount,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ModificationRequest<'a> {
    merchant_account: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    amount: Option<Amount>,
    reference: &'a str,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModificationResponse {
    psp_reference: String,
    payment_psp_reference: String,
}

/// Adyen's error body: `{status, errorCode, message, errorType, pspReference}`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ErrorBody {
    error_code: Option<String>,
    message: Option<String>,
}

impl AdyenClient {
    /// A client for `merchant_account` at `base_url` (`https://checkout-test.adyen.com`, or
    /// the live `…-checkout-live.adyenpayments.com` prefix URL, or the simulator).
    pub fn new(base_url: &str, api_key: &str, merchant_account: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            // The provider is called directly; a proxy from the environment would only add
            // a hop that can see the API key.
            .no_proxy()
            .build()
            .expect("an HTTP client without TLS or proxy settings always builds");
        Self::with_http(http, base_url, api_key, merchant_account)
    }

    /// [`Self::new`] on a shared HTTP client (its connection pool), as the payments connector
    /// uses it: one client for every tenant's calls, not a new pool per call.
    pub fn with_http(
        http: reqwest::Client,
        base_url: &str,
        api_key: &str,
        merchant_account: &str,
    ) -> Self {
        Self {
            http,
            base_url: base_url.to_owned(),
            api_key: api_key.to_owned(),
            merchant_account: merchant_account.to_owned(),
        }
    }

    /// Creates a Hosted Checkout session for one payment attempt.
    ///
    /// # Errors
    /// [`ProviderError::Unavailable`] when Adyen cannot be reached or answers 5xx/429 (retry
    /// with the same `idempotency_key`), [`ProviderError::Unauthorized`] for a refused API
    /// key, [`ProviderError::Rejected`] when Adyen refuses the request itself.
    pub async fn create(
        &self,
        request: &PaymentRequest,
        idempotency_key: &str,
    ) -> Result<ProviderPayment, ProviderError> {
        let body = self.session_request(request);
        let session: SessionResponse = self
            .post(&[CHECKOUT_VERSION, "sessions"], &body, idempotency_key)
            .await?;
        Ok(ProviderPayment {
            reference: session.id,
            status: PaymentStatus::AwaitingShopper,
            amount_minor: session.amount.value,
            currency: session.amount.currency,
            client_secret: session.session_data,
            redirect_url: session.url,
            payment_method_ref: None,
            refusal_reason: None,
        })
    }

    fn session_request<'a>(&'a self, request: &'a PaymentRequest) -> SessionRequest<'a> {
        let subscription = request.save_for_subscription;
        SessionRequest {
            merchant_account: &self.merchant_account,
            amount: Amount {
                value: request.amount_minor,
                currency: request.currency.clone(),
            },
            reference: &request.order_id,
            return_url: &request.return_url,
            shopper_reference: &request.customer_ref,
            mode: "hosted",
            shopper_interaction: "Ecommerce",
            store_payment_method_mode: subscription.then_some("enabled"),
            recurring_processing_model: subscription.then_some("Subscription"),
            expires_at: request.expires_at.map(rfc3339_from_ms),
            additional_data: SessionAdditionalData {
                manual_capture: "true",
            },
            metadata: SessionMetadata {
                tenant_id: &request.tenant_id,
                order_id: &request.order_id,
                attempt: request.attempt.to_string(),
            },
        }
    }

    /// Asks Adyen to capture `amount_minor` of an authorised payment. `reference` is the
    /// order id: the `CAPTURE` webhook carries it as its `merchantReference`.
    ///
    /// # Errors
    /// As [`AdyenClient::create`].
    pub async fn capture(
        &self,
        psp_reference: &str,
        amount_minor: i64,
        currency: &str,
        reference: &str,
        idempotency_key: &str,
    ) -> Result<ModificationAccepted, ProviderError> {
        let amount = Amount {
            value: amount_minor,
            currency: currency.to_owned(),
        };
        self.modify(
            psp_reference,
            "captures",
            Some(amount),
            reference,
            idempotency_key,
        )
        .await
    }

    /// Asks Adyen to cancel (void) an authorised, uncaptured payment. `reference` is the
    /// order id: the `CANCELLATION` webhook carries it as its `merchantReference`.
    ///
    /// # Errors
    /// As [`AdyenClient::create`].
    pub async fn cancel(
        &self,
        psp_reference: &str,
        reference: &str,
        idempotency_key: &str,
    ) -> Result<ModificationAccepted, ProviderError> {
        self.modify(psp_reference, "cancels", None, reference, idempotency_key)
            .await
    }

    /// Asks Adyen to refund `amount_minor` of a captured payment. `reference` is the order
    /// id: the `REFUND` webhook carries it as its `merchantReference`.
    ///
    /// # Errors
    /// As [`AdyenClient::create`].
    pub async fn refund(
        &self,
        psp_reference: &str,
        amount_minor: i64,
        currency: &str,
        reference: &str,
        idempotency_key: &str,
    ) -> Result<ModificationAccepted, ProviderError> {
        let amount = Amount {
            value: amount_minor,
            currency: currency.to_owned(),
        };
        self.modify(
            psp_reference,
            "refunds",
            Some(amount),
            reference,
            idempotency_key,
        )
        .await
    }

    async fn modify(
        &self,
        psp_reference: &str,
        operation: &str,
        amount: Option<Amount>,
        reference: &str,
        idempotency_key: &str,
    ) -> Result<ModificationAccepted, ProviderError> {
        // Adyen echoes the modification's `reference` as the webhook's `merchantReference`,
        // and the ingress routes webhooks by it: it must be the order id, as the session's.
        let body = ModificationRequest {
            merchant_account: &self.merchant_account,
            amount,
            reference,
        };
        let path = [CHECKOUT_VERSION, "payments", psp_reference, operation];
        let answer: ModificationResponse = self.post(&path, &body, idempotency_key).await?;
        Ok(ModificationAccepted {
            psp_reference: answer.psp_reference,
            payment_psp_reference: answer.payment_psp_reference,
        })
    }

    /// The base URL with `segments` appended, each percent-encoded, so that a reference can
    /// never change the path.
    fn url(&self, segments: &[&str]) -> Result<Url, ProviderError> {
        let invalid = |detail: String| ProviderError::Rejected {
            code: "invalid_base_url".to_owned(),
            message: format!("Adyen base URL {:?}: {detail}", self.base_url),
        };
        let mut url = Url::parse(&self.base_url).map_err(|e| invalid(e.to_string()))?;
        url.path_segments_mut()
            .map_err(|()| invalid("cannot be a base".to_owned()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    async fn post<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &impl Serialize,
        idempotency_key: &str,
    ) -> Result<T, ProviderError> {
        let response = self
            .http
            .post(self.url(segments)?)
            .header("X-API-Key", &self.api_key)
            .header("Idempotency-Key", idempotency_key)
            .json(body)
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("Adyen unreachable: {e}")))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("Adyen answer cut off: {e}")))?;
        if !status.is_success() {
            return Err(error_from_answer(status, &text));
        }
        // A 2xx that does not parse is most likely a cut-off or proxied answer: worth the
        // same call again, which replays Adyen's stored answer.
        serde_json::from_str(&text).map_err(|e| {
            ProviderError::Unavailable(format!("Adyen answer {status} not understood: {e}"))
        })
    }
}

/// Whether `reference` is a Checkout session id (`CS…`) rather than a payment's
/// `pspReference` (always 16 characters): before the shopper pays there is only the session.
pub fn is_session_id(reference: &str) -> bool {
    reference.starts_with("CS") && reference.len() != 16
}

/// What cancelling a session that was never paid comes to. Adyen has no call to cancel a
/// session: nothing is authorised, and the session expires at its `expiresAt`.
pub fn canceled_session(session_id: &str) -> ProviderPayment {
    ProviderPayment {
        reference: session_id.to_owned(),
        status: PaymentStatus::Canceled,
        amount_minor: 0,
        currency: String::new(),
        client_secret: None,
        redirect_url: None,
        payment_method_ref: None,
        refusal_reason: None,
    }
}

/// `ms` since the epoch as RFC 3339 in UTC (`2025-03-01T12:00:00Z`, with `.mmm` when the
/// milliseconds are not zero). Instants before 1970 are written as the epoch.
fn rfc3339_from_ms(ms: i64) -> String {
    let ms = ms.max(0);
    let (secs, millis) = (ms / 1000, ms % 1000);
    let (mut days, rest) = (secs / 86_400, secs % 86_400);
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mut year = 1970;
    loop {
        let length = if leap(year) { 366 } else { 365 };
        if days < length {
            break;
        }
        days -= length;
        year += 1;
    }
    let february = if leap(year) { 29 } else { 28 };
    let lengths = [31, february, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut month = 1;
    for length in lengths {
        if days < length {
            break;
        }
        days -= length;
        month += 1;
    }
    let (hour, minute, second) = (rest / 3600, rest % 3600 / 60, rest % 60);
    let fraction = if millis == 0 {
        String::new()
    } else {
        format!(".{millis:03}")
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}Z",
        day = days + 1
    )
}

/// Sorts a non-2xx answer into retryable, credentials, or refused.
fn error_from_answer(status: StatusCode, body: &str) -> ProviderError {
    let error: ErrorBody = serde_json::from_str(body).unwrap_or_default();
    let message = error
        .message
        .unwrap_or_else(|| format!("HTTP {status}: {}", truncate(body, 200)));
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ProviderError::Unauthorized(message),
        StatusCode::TOO_MANY_REQUESTS => ProviderError::Unavailable(message),
        s if s.is_server_error() => ProviderError::Unavailable(message),
        s => ProviderError::Rejected {
            code: error.error_code.unwrap_or_else(|| s.as_u16().to_string()),
            message,
        },
    }
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// A standard webhook's body: `{"live": "false", "notificationItems": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// `"true"` from the live platform, `"false"` from test; Adyen sends a string.
    pub live: String,
    /// Usually one item; Adyen may batch several.
    pub notification_items: Vec<NotificationItemWrapper>,
}

impl Notification {
    /// The items, without their `NotificationRequestItem` wrapper.
    pub fn items(&self) -> impl Iterator<Item = &NotificationItem> {
        self.notification_items.iter().map(|w| &w.item)
    }
}

/// Adyen wraps each item in an object with one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationItemWrapper {
    /// The item itself.
    #[serde(rename = "NotificationRequestItem")]
    pub item: NotificationItem,
}

/// One event about one payment or modification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationItem {
    /// `hmacSignature`, and per event e.g. `recurring.recurringDetailReference`,
    /// `modification.action`. Kept as JSON values: one unexpected value type must not make
    /// the whole notification unreadable.
    #[serde(default)]
    pub additional_data: Map<String, Value>,
    /// The payment's or the modification's amount.
    pub amount: Amount,
    /// `AUTHORISATION`, `CAPTURE`, `CAPTURE_FAILED`, `CANCELLATION`, `REFUND`, ….
    pub event_code: String,
    /// ISO 8601 with offset.
    #[serde(default)]
    pub event_date: String,
    /// The merchant account the event belongs to.
    pub merchant_account_code: String,
    /// The platform's order id (the session's `reference`).
    pub merchant_reference: String,
    /// For a modification: the payment's `pspReference`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_reference: Option<String>,
    /// The payment's (or the modification's) reference at Adyen.
    pub psp_reference: String,
    /// Why it failed, or for a successful `AUTHORISATION` `authCode:cardSummary:expiry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `"true"` or `"false"`; Adyen sends a string.
    pub success: String,
    /// `visa`, `mc`, … when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<String>,
    /// What can still be done with the payment (`CAPTURE`, `CANCEL`, `REFUND`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
}

impl NotificationItem {
    /// Whether the event reports success (`success == "true"`).
    pub fn succeeded(&self) -> bool {
        self.success == "true"
    }

    /// An `additionalData` entry that is a string.
    pub fn additional(&self, key: &str) -> Option<&str> {
        self.additional_data.get(key).and_then(Value::as_str)
    }

    /// What identifies an event across Adyen's redeliveries: the same `pspReference` and
    /// `eventCode` is the same event.
    pub fn dedupe_key(&self) -> String {
        format!("{}:{}", self.psp_reference, self.event_code)
    }
}

/// The body is not a standard webhook notification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an Adyen standard notification: {0}")]
pub struct MalformedNotification(String);

/// Reads a standard webhook's JSON body.
///
/// # Errors
/// [`MalformedNotification`] when the body is not the notification JSON.
pub fn parse_notification(body: &[u8]) -> Result<Notification, MalformedNotification> {
    serde_json::from_slice(body).map_err(|e| MalformedNotification(e.to_string()))
}

/// Whether `additionalData.hmacSignature` is the signature of `item` with the endpoint's
/// HMAC key (64 hex characters, as the Customer Area or the Management API shows it).
/// A missing or malformed signature or key is `false`; the comparison is constant-time.
pub fn verify_hmac(item: &NotificationItem, hmac_key_hex: &str) -> bool {
    let Ok(key) = hex::decode(hmac_key_hex.trim()) else {
        return false;
    };
    let Some(signature) = item.additional("hmacSignature") else {
        return false;
    };
    let Ok(signature) = BASE64.decode(signature) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else {
        return false;
    };
    mac.update(signing_string(item).as_bytes());
    mac.verify_slice(&signature).is_ok()
}

/// `pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:
/// eventCode:success`, each value as it is: Adyen's own libraries (PHP `HmacSignature`, Node
/// `hmacValidator`, Java `HMACValidator`) join the fields without escaping, so a `:` inside a
/// value is signed raw. (Escaping `\` and `:` belongs to the old Hosted Payment Pages
/// signature.) A missing `originalReference` is the empty string.
fn signing_string(item: &NotificationItem) -> String {
    let value = item.amount.value.to_string();
    let fields = [
        item.psp_reference.as_str(),
        item.original_reference.as_deref().unwrap_or(""),
        item.merchant_account_code.as_str(),
        item.merchant_reference.as_str(),
        value.as_str(),
        item.amount.currency.as_str(),
        item.event_code.as_str(),
        item.success.as_str(),
    ];
    fields.join(":")
}

/// What a notification says about a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentUpdate {
    /// The platform's order id (`merchantReference`).
    pub order_id: String,
    /// The event as Adyen names it (`AUTHORISATION`, `CAPTURE`, …), for logs.
    pub event_code: String,
    /// The payment, referenced by its `pspReference` (for a modification: the
    /// `originalReference`), in the state the event puts it in.
    pub payment: ProviderPayment,
}

/// Maps a notification item to the payment's state, or `None` for events that do not move a
/// payment (reports, chargebacks, …) or that lack the payment's reference.
///
/// - `AUTHORISATION`: success → `Authorized` (with the stored payment method when the session
///   asked to store one), failure → `Refused` with the reason.
/// - `CAPTURE` → `Captured`; `CANCELLATION` → `Canceled`; `REFUND` → `Refunded` (also for a
///   partial refund); `CANCEL_OR_REFUND` → per `modification.action`, `Canceled` when absent.
/// - A failed modification leaves the payment where the modification started from, with the
///   reason: `CAPTURE_FAILED` (the scheme refused a capture Adyen had accepted), or `CAPTURE`
///   / `CANCELLATION` with `success=false` → `Authorized`; `REFUND_FAILED`, `REFUND` with
///   `success=false` → `Captured`. As the rank of `Authorized` is below `Captured`, a
///   connector that never lowers a payment's rank only keeps the reason.
pub fn payment_from_notification(item: &NotificationItem) -> Option<PaymentUpdate> {
    let ok = item.succeeded();
    let (status, reference) = match item.event_code.as_str() {
        "AUTHORISATION" if ok => (PaymentStatus::Authorized, item.psp_reference.as_str()),
        "AUTHORISATION" => (PaymentStatus::Refused, item.psp_reference.as_str()),
        "CAPTURE" if ok => (PaymentStatus::Captured, item.original_reference.as_deref()?),
        "CAPTURE" | "CAPTURE_FAILED" => (
            PaymentStatus::Authorized,
            item.original_reference.as_deref()?,
        ),
        "CANCELLATION" if ok => (PaymentStatus::Canceled, item.original_reference.as_deref()?),
        "CANCELLATION" => (
            PaymentStatus::Authorized,
            item.original_reference.as_deref()?,
        ),
        "REFUND" if ok => (PaymentStatus::Refunded, item.original_reference.as_deref()?),
        "REFUND" | "REFUND_FAILED" => {
            (PaymentStatus::Captured, item.original_reference.as_deref()?)
        }
        "CANCEL_OR_REFUND" => (
            cancel_or_refund_status(item)?,
            item.original_reference.as_deref()?,
        ),
        _ => return None,
    };
    Some(PaymentUpdate {
        order_id: item.merchant_reference.clone(),
        event_code: item.event_code.clone(),
        payment: ProviderPayment {
            reference: reference.to_owned(),
            status,
            amount_minor: item.amount.value,
            currency: item.amount.currency.clone(),
            client_secret: None,
            redirect_url: None,
            payment_method_ref: stored_method(item),
            refusal_reason: if ok { None } else { item.reason.clone() },
        },
    })
}

/// `CANCEL_OR_REFUND` lets Adyen choose; `modification.action` says what it did.
fn cancel_or_refund_status(item: &NotificationItem) -> Option<PaymentStatus> {
    let refund = item.additional("modification.action") == Some("refund");
    match (item.succeeded(), refund) {
        (true, true) => Some(PaymentStatus::Refunded),
        (true, false) => Some(PaymentStatus::Canceled),
        // Which state the failure left the payment in depends on what was tried.
        (false, true) => Some(PaymentStatus::Captured),
        (false, false) => item
            .additional("modification.action")
            .map(|_| PaymentStatus::Authorized),
    }
}

/// The stored payment method of an authorisation that asked to store it: the newer
/// `tokenization.storedPaymentMethodId`, or the older `recurring.recurringDetailReference`.
fn stored_method(item: &NotificationItem) -> Option<String> {
    if item.event_code != "AUTHORISATION" || !item.succeeded() {
        return None;
    }
    item.additional("tokenization.storedPaymentMethodId")
        .or_else(|| item.additional("recurring.recurringDetailReference"))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::payments::adyen_sim::testing;

    /// The fixture of Adyen's own libraries (adyen-ruby-api-library `hmac_validator_spec`).
    const DOC_KEY: &str = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056";
    const DOC_SIGNATURE: &str = "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0=";
    const KEY: &str = "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF";

    fn item(event_code: &str, success: bool) -> NotificationItem {
        NotificationItem {
            additional_data: Map::new(),
            amount: Amount {
                value: 12_900,
                currency: "DKK".to_owned(),
            },
            event_code: event_code.to_owned(),
            event_date: "2025-01-01T12:00:00+01:00".to_owned(),
            merchant_account_code: "TelcoECOM".to_owned(),
            merchant_reference: "order-1".to_owned(),
            original_reference: None,
            psp_reference: "PSP0000000000001".to_owned(),
            reason: None,
            success: success.to_string(),
            payment_method: Some("visa".to_owned()),
            operations: Vec::new(),
        }
    }

    fn modification(event_code: &str, success: bool) -> NotificationItem {
        NotificationItem {
            original_reference: Some("PSP0000000000001".to_owned()),
            psp_reference: "MOD0000000000002".to_owned(),
            ..item(event_code, success)
        }
    }

    /// Signs `payload` the long way, independently of the code under test.
    fn sign_by_hand(payload: &str, key_hex: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&hex::decode(key_hex).expect("hex")).expect("key");
        mac.update(payload.as_bytes());
        BASE64.encode(mac.finalize().into_bytes())
    }

    fn signed(mut item: NotificationItem, signature: String) -> NotificationItem {
        item.additional_data
            .insert("hmacSignature".to_owned(), json!(signature));
        item
    }

    #[test]
    fn verifies_adyens_documented_example() {
        let body = json!({"live": "false", "notificationItems": [{"NotificationRequestItem": {
            "additionalData": {"hmacSignature": DOC_SIGNATURE},
            "amount": {"value": 1130, "currency": "EUR"},
            "pspReference": "7914073381342284",
            "eventCode": "AUTHORISATION",
            "merchantAccountCode": "TestMerchant",
            "merchantReference": "TestPayment-1407325143704",
            "paymentMethod": "visa",
            "success": "true"
        }}]});
        let notification = parse_notification(body.to_string().as_bytes()).expect("parses");
        let item = notification.items().next().expect("one item");
        assert!(verify_hmac(item, DOC_KEY));
        assert!(verify_hmac(item, &DOC_KEY.to_lowercase()));
    }

    #[test]
    fn verifies_an_item_signed_by_hand() {
        let payload = "PSP0000000000001::TelcoECOM:order-1:12900:DKK:AUTHORISATION:true";
        let item = signed(item("AUTHORISATION", true), sign_by_hand(payload, KEY));
        assert!(verify_hmac(&item, KEY));
    }

    /// The fixture of Adyen's PHP library (`HmacSignatureTest::testNotificationRequestItemHmac`).
    const PHP_KEY: &str = "DFB1EB5485895CFA84146406857104ABB4CBCABDC8AAF103A624C8F6A3EAAB00";
    const PHP_SIGNATURE: &str = "Ny9gS2veKo5E4w8/OL6xz1/wvT/hYkAXy1xNc/QvO4I=";

    fn php_fixture() -> NotificationItem {
        NotificationItem {
            additional_data: Map::new(),
            amount: Amount {
                value: 1130,
                currency: "EUR".to_owned(),
            },
            event_code: "AUTHORISATION".to_owned(),
            event_date: String::new(),
            merchant_account_code: "TestMerchant".to_owned(),
            merchant_reference: "TestPayment-1407325143704".to_owned(),
            original_reference: None,
            psp_reference: "7914073381342284".to_owned(),
            reason: None,
            success: "true".to_owned(),
            payment_method: None,
            operations: Vec::new(),
        }
    }

    #[test]
    fn verifies_the_php_librarys_example() {
        let item = signed(php_fixture(), PHP_SIGNATURE.to_owned());
        assert!(verify_hmac(&item, PHP_KEY));
        assert!(!verify_hmac(&item, DOC_KEY));
        assert_eq!(
            signing_string(&item),
            "7914073381342284::TestMerchant:TestPayment-1407325143704:1130:EUR:AUTHORISATION:true"
        );
    }

    #[test]
    fn signs_a_colon_in_the_merchant_reference_raw() {
        let mut unsigned = modification("CAPTURE", true);
        unsigned.merchant_reference = r"order:1\b".to_owned();
        let raw = r"MOD0000000000002:PSP0000000000001:TelcoECOM:order:1\b:12900:DKK:CAPTURE:true";
        let item = signed(unsigned, sign_by_hand(raw, KEY));
        assert!(verify_hmac(&item, KEY));
        // The old Hosted Payment Pages escaping would sign other bytes: not Adyen's webhooks.
        let escaped =
            r"MOD0000000000002:PSP0000000000001:TelcoECOM:order\:1\\b:12900:DKK:CAPTURE:true";
        let item = signed(item, sign_by_hand(escaped, KEY));
        assert!(!verify_hmac(&item, KEY));
    }

    #[test]
    fn tells_sessions_from_payments() {
        assert!(is_session_id("CS1A2B3C4D5E6F7A8B"));
        assert!(is_session_id("CSD9CAC34EBAE225DD"));
        // A pspReference is 16 characters, whatever it starts with.
        assert!(!is_session_id("CS00000000000001"));
        assert!(!is_session_id("PSP0000000000001"));
        assert!(!is_session_id("7914073381342284"));
        let canceled = canceled_session("CSD9CAC34EBAE225DD");
        assert_eq!(canceled.status, PaymentStatus::Canceled);
        assert_eq!(canceled.reference, "CSD9CAC34EBAE225DD");
    }

    #[test]
    fn formats_instants_as_rfc3339() {
        assert_eq!(rfc3339_from_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_from_ms(-5), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_from_ms(951_827_696_000), "2000-02-29T12:34:56Z");
        assert_eq!(
            rfc3339_from_ms(1_735_689_599_250),
            "2024-12-31T23:59:59.250Z"
        );
        assert_eq!(rfc3339_from_ms(4_107_542_400_000), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn a_session_asks_for_manual_capture_and_its_expiry() {
        let client = AdyenClient::new("http://adyen.test", "AQEkey", MERCHANT);
        let mut expiring = request("order-1", false);
        expiring.expires_at = Some(1_735_689_599_000);
        let body = serde_json::to_value(client.session_request(&expiring)).expect("JSON");
        assert_eq!(body["expiresAt"], "2024-12-31T23:59:59Z");
        assert_eq!(body["additionalData"], json!({"manualCapture": "true"}));
        assert_eq!(body["reference"], "order-1");
        assert!(body.get("captureDelayHours").is_none());
        let body = serde_json::to_value(client.session_request(&request("order-1", false)));
        assert!(body.expect("JSON").get("expiresAt").is_none());
    }

    #[test]
    fn refuses_a_tampered_item_a_wrong_key_and_no_signature() {
        let payload = "PSP0000000000001::TelcoECOM:order-1:12900:DKK:AUTHORISATION:true";
        let good = signed(item("AUTHORISATION", true), sign_by_hand(payload, KEY));
        let mut tampered = good.clone();
        tampered.amount.value = 1;
        assert!(!verify_hmac(&tampered, KEY));
        assert!(!verify_hmac(&good, DOC_KEY));
        assert!(!verify_hmac(&good, "not hex"));
        assert!(!verify_hmac(&item("AUTHORISATION", true), KEY));
    }

    #[test]
    fn maps_an_authorisation_with_its_stored_method() {
        let mut authorised = item("AUTHORISATION", true);
        authorised.additional_data.insert(
            "recurring.recurringDetailReference".to_owned(),
            json!("M5555555555555555"),
        );
        let update = payment_from_notification(&authorised).expect("a payment event");
        assert_eq!(update.order_id, "order-1");
        assert_eq!(update.payment.status, PaymentStatus::Authorized);
        assert_eq!(update.payment.reference, "PSP0000000000001");
        assert_eq!(
            update.payment.payment_method_ref.as_deref(),
            Some("M5555555555555555")
        );
        let mut refused = item("AUTHORISATION", false);
        refused.reason = Some("Refused".to_owned());
        let update = payment_from_notification(&refused).expect("a payment event");
        assert_eq!(update.payment.status, PaymentStatus::Refused);
        assert_eq!(update.payment.refusal_reason.as_deref(), Some("Refused"));
    }

    #[test]
    fn maps_modifications_to_the_original_payment() {
        let cases = [
            ("CAPTURE", true, PaymentStatus::Captured),
            ("CAPTURE", false, PaymentStatus::Authorized),
            ("CAPTURE_FAILED", true, PaymentStatus::Authorized),
            ("CANCELLATION", true, PaymentStatus::Canceled),
            ("REFUND", true, PaymentStatus::Refunded),
            ("REFUND_FAILED", true, PaymentStatus::Captured),
            ("CANCEL_OR_REFUND", true, PaymentStatus::Canceled),
        ];
        for (code, success, status) in cases {
            let update = payment_from_notification(&modification(code, success)).expect(code);
            assert_eq!(update.payment.status, status, "{code} {success}");
            assert_eq!(update.payment.reference, "PSP0000000000001");
        }
        let mut refunded = modification("CANCEL_OR_REFUND", true);
        refunded
            .additional_data
            .insert("modification.action".to_owned(), json!("refund"));
        let update = payment_from_notification(&refunded).expect("a payment event");
        assert_eq!(update.payment.status, PaymentStatus::Refunded);
        assert!(payment_from_notification(&item("REPORT_AVAILABLE", true)).is_none());
        assert!(payment_from_notification(&item("CAPTURE", true)).is_none());
    }

    #[test]
    fn sorts_error_answers() {
        let body = r#"{"status":422,"errorCode":"137","message":"Invalid amount specified","errorType":"validation"}"#;
        assert_eq!(
            error_from_answer(StatusCode::UNPROCESSABLE_ENTITY, body),
            ProviderError::Rejected {
                code: "137".to_owned(),
                message: "Invalid amount specified".to_owned()
            }
        );
        assert!(matches!(
            error_from_answer(StatusCode::FORBIDDEN, "{}"),
            ProviderError::Unauthorized(_)
        ));
        for status in [StatusCode::TOO_MANY_REQUESTS, StatusCode::BAD_GATEWAY] {
            assert!(error_from_answer(status, "<html>").is_transient());
        }
    }

    #[test]
    fn rejects_a_body_that_is_not_a_notification() {
        assert!(parse_notification(b"[accepted]").is_err());
    }

    fn request(order_id: &str, save_for_subscription: bool) -> PaymentRequest {
        PaymentRequest {
            tenant_id: "tenant-a".to_owned(),
            order_id: order_id.to_owned(),
            attempt: 1,
            amount_minor: 12_900,
            currency: "DKK".to_owned(),
            customer_ref: "customer-1".to_owned(),
            description: "Mobile subscription".to_owned(),
            return_url: "https://shop.example/orders/return".to_owned(),
            save_for_subscription,
            expires_at: None,
        }
    }

    /// A simulator, a client, and a verified webhook endpoint.
    #[derive(Debug)]
    struct World {
        base: String,
        client: AdyenClient,
        hooks: testing::Receiver,
        hmac_key: String,
    }

    const MERCHANT: &str = "TelcoECOM";

    async fn world() -> World {
        let base = testing::start().await;
        let hooks = testing::receiver(0).await;
        let hmac_key = testing::register(&base, MERCHANT, &hooks.url).await;
        let client = AdyenClient::new(&base, testing::API_KEY, MERCHANT);
        World {
            base,
            client,
            hooks,
            hmac_key,
        }
    }

    impl World {
        /// The next webhook, verified and mapped.
        async fn update(&mut self) -> PaymentUpdate {
            let received = self.hooks.next().await;
            let notification = parse_notification(&received.body).expect("a notification");
            let item = notification.items().next().expect("one item");
            assert!(
                verify_hmac(item, &self.hmac_key),
                "signed with the endpoint's key"
            );
            payment_from_notification(item).expect("a payment event")
        }

        /// Creates a session and lets the shopper choose `outcome` on the hosted page: paid,
        /// the page sends the shopper back (303); refused, it stays for another card (200).
        async fn checkout(&mut self, order_id: &str, outcome: &str) -> PaymentUpdate {
            let session = self
                .client
                .create(&request(order_id, true), &format!("{order_id}:1:create"))
                .await
                .expect("session");
            let page = session.redirect_url.expect("hosted page");
            let answer = testing::submit(&page, outcome).await;
            let expected = if outcome == "authorise" { 303 } else { 200 };
            assert_eq!(answer.status(), expected);
            self.update().await
        }

        async fn sessions(&self) -> usize {
            let ledger = testing::control(&self.base, "ledger").await;
            ledger["entries"].as_array().expect("entries").len()
        }
    }

    #[tokio::test]
    async fn creates_a_hosted_session() {
        let world = world().await;
        let payment = world
            .client
            .create(&request("order-1", false), "order-1:1:create")
            .await
            .expect("session");
        assert_eq!(payment.status, PaymentStatus::AwaitingShopper);
        assert!(payment.reference.starts_with("CS"));
        assert!(payment.client_secret.is_some_and(|s| !s.is_empty()));
        let page = payment.redirect_url.expect("hosted page");
        assert_eq!(
            page,
            format!("{}/_sim/checkout/{}", world.base, payment.reference)
        );
        assert_eq!(
            (payment.amount_minor, payment.currency.as_str()),
            (12_900, "DKK")
        );
        // The simulator captures at authorisation unless the session asks for manual capture.
        let ledger = testing::control(&world.base, "ledger").await;
        assert_eq!(ledger["entries"][0]["manualCapture"], true);
    }

    #[tokio::test]
    async fn repeating_a_create_with_its_key_returns_the_same_session() {
        let world = world().await;
        let first = world.client.create(&request("order-1", false), "k").await;
        let again = world.client.create(&request("order-1", false), "k").await;
        assert_eq!(first.expect("session"), again.expect("session"));
        assert_eq!(world.sessions().await, 1);
    }

    #[tokio::test]
    async fn a_wrong_key_is_unauthorized_and_a_bad_request_rejected() {
        let world = world().await;
        let stranger = AdyenClient::new(&world.base, "not-an-adyen-key", MERCHANT);
        let error = stranger.create(&request("order-1", false), "k").await;
        assert!(matches!(error, Err(ProviderError::Unauthorized(_))));
        let mut free = request("order-1", false);
        free.amount_minor = 0;
        let error = world.client.create(&free, "k").await.expect_err("rejected");
        assert!(matches!(&error, ProviderError::Rejected { code, .. } if code == "137"));
        assert!(!error.is_transient());
    }

    #[tokio::test]
    async fn an_authorisation_and_its_capture_arrive_as_signed_webhooks() {
        let mut world = world().await;
        let authorised = world.checkout("order-1", "authorise").await;
        assert_eq!(authorised.order_id, "order-1");
        assert_eq!(authorised.payment.status, PaymentStatus::Authorized);
        let psp = authorised.payment.reference.clone();
        assert_eq!(psp.len(), 16);
        assert!(authorised.payment.payment_method_ref.is_some());
        let accepted = world
            .client
            .capture(&psp, 12_900, "DKK", "order-1", "order-1:1:capture")
            .await
            .expect("capture received");
        assert_eq!(accepted.payment_psp_reference, psp);
        assert_ne!(accepted.psp_reference, psp);
        let captured = world.update().await;
        assert_eq!(captured.payment.status, PaymentStatus::Captured);
        assert_eq!(captured.payment.reference, psp);
        // The modification's reference comes back as the merchantReference: the order.
        assert_eq!(captured.order_id, "order-1");
        world
            .client
            .refund(&psp, 5_000, "DKK", "order-1", "order-1:1:refund")
            .await
            .expect("refund received");
        let refunded = world.update().await;
        assert_eq!(refunded.payment.status, PaymentStatus::Refunded);
        assert_eq!(refunded.payment.amount_minor, 5_000);
        assert_eq!(refunded.order_id, "order-1");
    }

    #[tokio::test]
    async fn a_refusal_arrives_as_refused() {
        let mut world = world().await;
        let refused = world.checkout("order-2", "refuse").await;
        assert_eq!(refused.payment.status, PaymentStatus::Refused);
        assert_eq!(refused.payment.refusal_reason.as_deref(), Some("Refused"));
        assert!(refused.payment.payment_method_ref.is_none());
    }

    #[tokio::test]
    async fn a_refused_shopper_may_pay_with_another_card_in_the_same_session() {
        let mut world = world().await;
        let session = world
            .client
            .create(&request("order-5", false), "order-5:1:create")
            .await
            .expect("session");
        let page = session.redirect_url.expect("hosted page");
        let refused = testing::submit(&page, "refuse").await;
        assert_eq!(refused.status(), 200);
        assert!(refused.text().await.expect("html").contains("refused"));
        let first = world.update().await;
        assert_eq!(first.payment.status, PaymentStatus::Refused);
        assert_eq!(testing::submit(&page, "authorise").await.status(), 303);
        let second = world.update().await;
        assert_eq!(second.payment.status, PaymentStatus::Authorized);
        assert_eq!(second.order_id, "order-5");
        assert_ne!(first.payment.reference, second.payment.reference);
        // Paid, the session is done.
        assert_eq!(testing::submit(&page, "authorise").await.status(), 409);
        assert_eq!(world.sessions().await, 1);
    }

    #[tokio::test]
    async fn an_expired_session_cannot_be_paid() {
        let world = world().await;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis();
        let mut expiring = request("order-6", false);
        expiring.expires_at = Some(i64::try_from(now_ms).expect("ms") + 400);
        let session = world
            .client
            .create(&expiring, "order-6:1:create")
            .await
            .expect("session");
        let status_url = format!(
            "{}/v71/sessions/{}?sessionResult=x",
            world.base, session.reference
        );
        let status = || async {
            let answer: serde_json::Value = testing::http()
                .get(&status_url)
                .header("X-API-Key", testing::API_KEY)
                .send()
                .await
                .expect("reachable")
                .json()
                .await
                .expect("JSON");
            answer["status"].clone()
        };
        assert_eq!(status().await, "active");
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        assert_eq!(status().await, "expired");
        let page = session.redirect_url.expect("hosted page");
        let shown = testing::http().get(&page).send().await.expect("page");
        assert_eq!(shown.status(), 409);
        assert!(shown.text().await.expect("html").contains("expired"));
        assert_eq!(testing::submit(&page, "authorise").await.status(), 409);
    }

    #[tokio::test]
    async fn a_cancel_arrives_as_canceled() {
        let mut world = world().await;
        let psp = world
            .checkout("order-3", "authorise")
            .await
            .payment
            .reference;
        world
            .client
            .cancel(&psp, "order-3", "order-3:1:cancel")
            .await
            .expect("cancel received");
        let canceled = world.update().await;
        assert_eq!(canceled.payment.status, PaymentStatus::Canceled);
        assert_eq!(canceled.payment.reference, psp);
        assert_eq!(canceled.order_id, "order-3");
        // What was sent is what the webhook echoed: the order id, not the idempotency key.
        let events = testing::control(&world.base, "events").await;
        let last = events["notifications"]
            .as_array()
            .and_then(|n| n.last())
            .expect("a notification");
        assert_eq!(last["eventCode"], "CANCELLATION");
        assert_eq!(last["merchantReference"], "order-3");
    }

    #[tokio::test]
    async fn a_failed_call_is_unavailable_and_its_retry_makes_one_session() {
        let world = world().await;
        testing::faults(&world.base, json!({"fail_next_requests": 1})).await;
        let error = world.client.create(&request("order-4", false), "k4").await;
        assert!(matches!(error, Err(ProviderError::Unavailable(_))));
        assert_eq!(world.sessions().await, 0);
        let retried = world.client.create(&request("order-4", false), "k4").await;
        assert_eq!(
            retried.expect("session").status,
            PaymentStatus::AwaitingShopper
        );
        assert_eq!(world.sessions().await, 1);
    }

    #[tokio::test]
    async fn an_unreachable_adyen_is_unavailable() {
        let client = AdyenClient::new("http://127.0.0.1:9", testing::API_KEY, MERCHANT);
        let error = client.cancel("PSP0000000000001", "order-1", "k").await;
        assert!(matches!(error, Err(ProviderError::Unavailable(_))));
    }
}
