//! The platform's client of the SIM fulfilment house: creates shipments with an
//! `Idempotency-Key` (so a create whose answer was lost is sent again and ships once), reads
//! a shipment and its tracking events, and sorts every failure into what the caller must do
//! with it:
//!
//! - [`LogisticsError::Unavailable`]: the house is unwell or unreachable (connection refused
//!   or lost, a timeout, 5xx, an answer that is not the API's). Retry later with the same
//!   key; counts against a circuit breaker.
//! - [`LogisticsError::RateLimited`]: slow down for `retry_after`; the house is healthy.
//! - [`LogisticsError::Refused`]: the house refused the request itself (422 with the fields
//!   at fault, 409 a key reused for another body, 404 an unknown shipment, 401 a bad token):
//!   sending it again changes nothing.
//!
//! The bearer token is not shown in `Debug`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a call to the fulfilment house ended in, when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogisticsError {
    #[error("SIM logistics unavailable: {0}")]
    Unavailable(String),
    #[error("SIM logistics rate limit: retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    #[error("SIM logistics refused the request: {code}: {message}")]
    Refused {
        code: String,
        message: String,
        /// The fields at fault, for `validation_failed`.
        fields: Vec<FieldError>,
    },
}

impl LogisticsError {
    /// Whether the failure says the house is unwell (what a circuit breaker counts).
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// One problem of a refused body: the field's path (`recipient.postalCode`,
/// `items[0].quantity`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Where the SIMs go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    pub name: String,
    pub street: String,
    pub postal_code: String,
    pub city: String,
    /// ISO 3166 alpha-2.
    pub country: String,
}

/// A line of a shipment: `sku` `PSIM` (a physical SIM card), `quantity` cards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentItem {
    pub sku: String,
    pub quantity: u32,
}

impl ShipmentItem {
    /// `quantity` physical SIM cards.
    pub fn sims(quantity: u32) -> Self {
        Self {
            sku: "PSIM".to_owned(),
            quantity,
        }
    }
}

/// A shipment to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewShipment {
    /// The platform's order item.
    pub reference: String,
    pub tenant: String,
    pub recipient: Recipient,
    pub items: Vec<ShipmentItem>,
}

/// Where a parcel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShipmentStatus {
    Created,
    Shipped,
    Delivered,
    Returned,
    /// A status this client does not know yet.
    #[serde(other)]
    Unknown,
}

/// One tracking event; `seq` grows by one per event of a shipment, from 1.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TrackingEvent {
    pub seq: u64,
    pub status: ShipmentStatus,
    pub at: String,
}

/// A shipment as the house tells it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shipment {
    pub shipment_id: String,
    pub reference: String,
    pub status: ShipmentStatus,
    /// One per card, in the order of the items.
    pub iccids: Vec<String>,
    pub tracking_number: String,
    pub created_at: String,
    pub events: Vec<TrackingEvent>,
}

#[derive(Debug, Deserialize)]
struct Events {
    events: Vec<TrackingEvent>,
}

#[derive(Debug, Deserialize)]
struct Problem {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    fields: Vec<FieldError>,
}

/// Calls the fulfilment house's API.
#[derive(Clone)]
pub struct LogisticsClient {
    base_url: String,
    token: String,
    http: reqwest::Client,
}

impl fmt::Debug for LogisticsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogisticsClient")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// `text` as one URL path segment.
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl LogisticsClient {
    /// `token` is sent as `Authorization: Bearer`; `timeout` bounds every call, after which
    /// it is [`LogisticsError::Unavailable`].
    pub fn new(base_url: impl Into<String>, token: impl Into<String>, timeout: Duration) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            token: token.into(),
            http: reqwest::Client::builder()
                .timeout(timeout)
                .no_proxy()
                .build()
                .expect("an HTTP client builds"),
        }
    }

    /// Creates (or, for a key the house saw before with the same request, finds again) a
    /// shipment.
    ///
    /// # Errors
    /// See [`LogisticsError`].
    pub async fn create_shipment(
        &self,
        idempotency_key: &str,
        request: &NewShipment,
    ) -> Result<Shipment, LogisticsError> {
        let call = self
            .http
            .post(format!("{}/v1/shipments", self.base_url))
            .header("idempotency-key", idempotency_key)
            .json(request);
        self.send(call).await
    }

    /// The shipment `id`, as it is now.
    ///
    /// # Errors
    /// See [`LogisticsError`]; `not_found` for an unknown id.
    pub async fn shipment(&self, id: &str) -> Result<Shipment, LogisticsError> {
        let url = format!("{}/v1/shipments/{}", self.base_url, segment(id));
        self.send(self.http.get(url)).await
    }

    /// The tracking events of shipment `id` after event `seq` (0: all), oldest first.
    ///
    /// # Errors
    /// See [`LogisticsError`].
    pub async fn events_after(
        &self,
        id: &str,
        seq: u64,
    ) -> Result<Vec<TrackingEvent>, LogisticsError> {
        let url = format!(
            "{}/v1/shipments/{}/events?after={seq}",
            self.base_url,
            segment(id)
        );
        let events: Events = self.send(self.http.get(url)).await?;
        Ok(events.events)
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        call: reqwest::RequestBuilder,
    ) -> Result<T, LogisticsError> {
        let answer = call
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| LogisticsError::Unavailable(describe(&e)))?;
        let status = answer.status();
        if status.is_success() {
            return answer
                .json()
                .await
                .map_err(|e| LogisticsError::Unavailable(format!("unreadable answer: {e}")));
        }
        let retry_after = answer
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = answer.text().await.unwrap_or_default();
        Err(classify(status.as_u16(), retry_after, &text))
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer in time".to_owned()
    } else if e.is_connect() {
        format!("cannot connect: {e}")
    } else {
        e.to_string()
    }
}

/// What a non-success answer means (see the module docs).
pub fn classify(status: u16, retry_after: Option<Duration>, body: &str) -> LogisticsError {
    let problem: Option<Problem> = serde_json::from_str(body).ok();
    match status {
        429 => LogisticsError::RateLimited {
            retry_after: retry_after.unwrap_or(Duration::from_secs(1)),
        },
        400..=499 => match problem {
            Some(p) => LogisticsError::Refused {
                code: p.code,
                message: p.message,
                fields: p.fields,
            },
            None => LogisticsError::Refused {
                code: format!("HTTP-{status}"),
                message: "no error body in the answer".to_owned(),
                fields: Vec::new(),
            },
        },
        _ => LogisticsError::Unavailable(match problem {
            Some(p) => format!("{status} {}: {}", p.code, p.message),
            None => format!("{status} without an API answer"),
        }),
    }
}

/// The SIM fulfilment house (`[logistics]` in `config/default.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LogisticsSettings {
    /// Base URL of the fulfilment API; locally `tcom logistics-sim`.
    #[serde(default = "default_url")]
    pub url: String,
    /// The platform's bearer token (locally any non-empty text).
    #[serde(default = "default_token")]
    pub token: String,
    /// Longest wait for one answer.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The secret the house signs its tracking webhooks with (the platform's subscription's).
    #[serde(default = "default_webhook_secret")]
    pub webhook_secret: String,
}

fn default_webhook_secret() -> String {
    "local-development-logistics-webhook-secret".to_owned()
}

fn default_url() -> String {
    "http://127.0.0.1:38096".to_owned()
}

fn default_token() -> String {
    "local-development-logistics-token".to_owned()
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl Default for LogisticsSettings {
    fn default() -> Self {
        Self {
            url: default_url(),
            token: default_token(),
            timeout_ms: default_timeout_ms(),
            webhook_secret: default_webhook_secret(),
        }
    }
}

impl LogisticsSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// A client of the configured house.
    pub fn client(&self) -> LogisticsClient {
        LogisticsClient::new(&self.url, &self.token, self.timeout())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_sort_into_what_the_caller_must_do() {
        let refused = classify(
            422,
            None,
            r#"{"code":"validation_failed","message":"invalid",
                "fields":[{"field":"recipient.city","message":"is required"}]}"#,
        );
        assert_eq!(
            refused,
            LogisticsError::Refused {
                code: "validation_failed".into(),
                message: "invalid".into(),
                fields: vec![FieldError {
                    field: "recipient.city".into(),
                    message: "is required".into()
                }],
            }
        );
        assert!(!refused.is_outage());
        assert_eq!(
            classify(429, Some(Duration::from_secs(2)), "{}"),
            LogisticsError::RateLimited {
                retry_after: Duration::from_secs(2)
            }
        );
        assert!(classify(503, None, r#"{"code":"service_unavailable"}"#).is_outage());
        assert!(classify(502, None, "<html>bad gateway</html>").is_outage());
        assert!(matches!(
            classify(404, None, "nope"),
            LogisticsError::Refused { code, .. } if code == "HTTP-404"
        ));
    }

    #[test]
    fn ids_are_one_path_segment() {
        assert_eq!(segment("SHP0000001"), "SHP0000001");
        assert_eq!(segment("a/b?c"), "a%2Fb%3Fc");
    }

    #[test]
    fn an_unknown_status_still_reads() {
        let event: TrackingEvent =
            serde_json::from_str(r#"{"seq":3,"status":"held_at_customs","at":"x"}"#).unwrap();
        assert_eq!(event.status, ShipmentStatus::Unknown);
    }
}
