//! The platform's client of the clearing house: submits port requests with an
//! `Idempotency-Key` (so a submission whose answer was lost is sent again and ports once),
//! reads a request back, and subscribes the platform's webhook. Every failure is sorted as the
//! outbox relay needs it ([`SendError`]): unavailable (connection refused or lost, a timeout,
//! 5xx, an answer that is not the API's: retried, counted by the breaker), rate limited, or
//! refused (a 4xx: sending it again changes nothing).
//!
//! The bearer token is not shown in `Debug`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::outbox_relay::SendError;

/// A port request, as the clearing house takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortSubmission {
    /// `och` (Denmark) or `pac` (United Kingdom).
    pub scheme: String,
    pub msisdn: String,
    pub donor_operator: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_cpr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pac: Option<String>,
    pub requested_date: String,
    /// The order item: `tenant:order:item`, for the webhooks.
    pub reference: String,
    pub tenant: String,
}

/// A rejection's code and the clearing house's text.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PortRejection {
    pub code: String,
    pub message: String,
}

/// A port request as the clearing house has it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortView {
    pub porting_id: String,
    pub msisdn: String,
    /// `submitted`, `accepted`, `rejected` or `completed`.
    pub status: String,
    pub answer_due_by: String,
    #[serde(default)]
    pub port_date: Option<String>,
    #[serde(default)]
    pub executes_at: Option<String>,
    #[serde(default)]
    pub rejection: Option<PortRejection>,
    #[serde(default)]
    pub completed_at: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Problem {
    code: String,
    message: String,
}

/// Calls the clearing house's API.
#[derive(Clone)]
pub struct CarrierClient {
    base_url: String,
    token: String,
    http: reqwest::Client,
}

impl fmt::Debug for CarrierClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CarrierClient")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl CarrierClient {
    /// `token` is sent as `Authorization: Bearer`; `timeout` bounds every call.
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

    /// Submits (or, for a key the house saw before with the same request, finds again) a port.
    ///
    /// # Errors
    /// See [`SendError`].
    pub async fn submit(
        &self,
        idempotency_key: &str,
        request: &PortSubmission,
    ) -> Result<PortView, SendError> {
        let call = self
            .http
            .post(format!("{}/v1/port-requests", self.base_url))
            .header("idempotency-key", idempotency_key)
            .json(request);
        self.send(call).await
    }

    /// The port request `id` as it stands.
    ///
    /// # Errors
    /// See [`SendError`]; `not_found` for an unknown id.
    pub async fn port(&self, id: &str) -> Result<PortView, SendError> {
        if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(SendError::Refused {
                code: "not_found".to_owned(),
                message: "not a porting id".to_owned(),
            });
        }
        let url = format!("{}/v1/port-requests/{id}", self.base_url);
        self.send(self.http.get(url)).await
    }

    /// Subscribes `url` to the clearing house's notifications (of `tenant`'s ports only, when
    /// given), signed with `secret`.
    ///
    /// # Errors
    /// See [`SendError`].
    pub async fn subscribe(
        &self,
        url: &str,
        secret: &str,
        tenant: Option<&str>,
    ) -> Result<(), SendError> {
        let call = self
            .http
            .post(format!("{}/v1/webhook-subscriptions", self.base_url))
            .json(&serde_json::json!({ "url": url, "secret": secret, "tenant": tenant }));
        let _: serde_json::Value = self.send(call).await?;
        Ok(())
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        call: reqwest::RequestBuilder,
    ) -> Result<T, SendError> {
        let answer = call.bearer_auth(&self.token).send().await.map_err(|e| {
            SendError::Unavailable(if e.is_timeout() {
                "the clearing house did not answer in time".to_owned()
            } else {
                format!("the clearing house cannot be reached: {e}")
            })
        })?;
        let status = answer.status().as_u16();
        if answer.status().is_success() {
            return answer.json().await.map_err(|e| {
                SendError::Unavailable(format!("an unreadable clearing house answer: {e}"))
            });
        }
        let retry_after = answer
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = answer.text().await.unwrap_or_default();
        Err(classify(status, retry_after, &body))
    }
}

/// What a non-success answer means (see the module docs).
pub fn classify(status: u16, retry_after: Option<Duration>, body: &str) -> SendError {
    let problem: Option<Problem> = serde_json::from_str(body).ok();
    match (status, problem) {
        (429, _) => SendError::RateLimited {
            retry_after: retry_after.unwrap_or(Duration::from_secs(1)),
        },
        (400..=499, Some(p)) => SendError::Refused {
            code: p.code,
            message: p.message,
        },
        (400..=499, None) => SendError::Refused {
            code: format!("HTTP-{status}"),
            message: "no error body in the answer".to_owned(),
        },
        (_, Some(p)) => SendError::Unavailable(format!("{status} {}: {}", p.code, p.message)),
        (_, None) => SendError::Unavailable(format!("{status} without an API answer")),
    }
}

/// The clearing house (`[carrier]` in `config/default.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CarrierSettings {
    /// Base URL of the clearing house's API; locally `tcom carrier-sim`.
    #[serde(default = "default_url")]
    pub url: String,
    /// The platform's bearer token (locally any non-empty text).
    #[serde(default = "default_token")]
    pub token: String,
    /// Longest wait for one answer.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The secret the clearing house signs its webhooks with (the platform's subscription's).
    #[serde(default = "default_webhook_secret")]
    pub webhook_secret: String,
}

fn default_url() -> String {
    "http://127.0.0.1:38097".to_owned()
}

fn default_token() -> String {
    "local-development-carrier-token".to_owned()
}

fn default_timeout_ms() -> u64 {
    10_000
}

fn default_webhook_secret() -> String {
    "local-development-carrier-webhook-secret".to_owned()
}

impl Default for CarrierSettings {
    fn default() -> Self {
        Self {
            url: default_url(),
            token: default_token(),
            timeout_ms: default_timeout_ms(),
            webhook_secret: default_webhook_secret(),
        }
    }
}

impl CarrierSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_sorted_into_what_the_relay_does_with_them() {
        let refused = classify(422, None, r#"{"code":"validation_failed","message":"icc"}"#);
        assert_eq!(
            refused,
            SendError::Refused {
                code: "validation_failed".into(),
                message: "icc".into()
            }
        );
        assert!(matches!(
            classify(503, Some(Duration::from_secs(30)), "{}"),
            SendError::Unavailable(_)
        ));
        assert!(matches!(
            classify(502, None, "<html>bad gateway</html>"),
            SendError::Unavailable(_)
        ));
        assert_eq!(
            classify(429, Some(Duration::from_secs(2)), ""),
            SendError::RateLimited {
                retry_after: Duration::from_secs(2)
            }
        );
        assert!(matches!(
            classify(404, None, ""),
            SendError::Refused { code, .. } if code == "HTTP-404"
        ));
    }
}
