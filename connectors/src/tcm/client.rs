//! The platform's client of the legacy TCM system: creates customers and subscriptions with an
//! idempotency key (`X-Request-Id`) on every create, so a request whose answer was lost can be
//! sent again and never creates twice, and sorts every failure into what the caller must do
//! with it (the same sorting applies to the subscription listing the reconciliation walks):
//!
//! - [`TcmError::Unavailable`]: the system is unwell (connection refused or lost, a timeout,
//!   5xx, the load balancer's maintenance page). Retry later with the same request id; counts
//!   against the circuit breaker.
//! - [`TcmError::RateLimited`]: slow down for `retry_after`; the system is healthy, so it
//!   does not count against the breaker.
//! - [`TcmError::Refused`]: TCM refused the request itself (409 an MSISDN already active, 422
//!   an unknown customer, 400): sending it again changes nothing; the order item is held for
//!   an agent or the customer to correct.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a TCM call ended in, when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TcmError {
    #[error("TCM unavailable: {0}")]
    Unavailable(String),
    #[error("TCM rate limit: retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    #[error("TCM refused the request: {code}: {message}")]
    Refused { code: String, message: String },
}

impl TcmError {
    /// Whether the failure says the system is unwell (what the circuit breaker counts).
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// A postal address as TCM takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcmAddress {
    pub street: String,
    pub postal_code: String,
    pub city: String,
    pub country: String,
}

/// A customer to create in TCM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewCustomer {
    /// The platform's customer id.
    pub external_ref: String,
    pub tenant: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<TcmAddress>,
}

/// An extra SIM sharing the subscription's data pool (a data-sharing card).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharedSim {
    pub iccid: String,
}

/// A subscription to create in TCM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSubscription {
    pub customer_id: String,
    /// The platform's order item.
    pub external_ref: String,
    pub tenant: String,
    pub plan_code: String,
    pub msisdn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iccid: Option<String>,
    /// `PSIM` or `ESIM`.
    pub sim_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding_end_date: Option<String>,
    pub shared_data_sims: Vec<SharedSim>,
}

/// What TCM answers for a customer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedCustomer {
    pub customer_id: String,
}

/// What TCM answers for a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedSubscription {
    pub subscription_id: String,
    pub status: String,
}

/// A data-sharing SIM as TCM lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedSharedSim {
    pub iccid: String,
}

/// A subscription as TCM keeps it (`GET /tcm/v1/subscriptions`). Members this platform does
/// not compare are left out; unknown members are ignored, so a TCM release that adds some
/// does not break the reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcmSubscription {
    pub subscription_id: String,
    pub customer_id: String,
    /// The platform's `{order}/{item}`.
    pub external_ref: String,
    pub tenant: String,
    pub plan_code: String,
    pub msisdn: String,
    #[serde(default)]
    pub iccid: Option<String>,
    pub sim_type: String,
    #[serde(default)]
    pub binding_end_date: Option<String>,
    #[serde(default)]
    pub shared_data_sims: Vec<ListedSharedSim>,
    /// `ACTIVE`, `SUSPENDED` or `TERMINATED`.
    pub status: String,
    /// `YYYY-MM-DDThh:mm:ssZ`.
    #[serde(default)]
    pub activated_at: Option<String>,
}

/// One page of TCM's subscription listing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionPage {
    pub items: Vec<TcmSubscription>,
    pub page: u32,
    pub page_size: u32,
    pub total_items: u64,
    pub total_pages: u32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TcmProblem {
    error_code: String,
    #[serde(default)]
    error_message: String,
}

/// Calls one TCM installation.
#[derive(Debug, Clone)]
pub struct TcmClient {
    base_url: String,
    http: reqwest::Client,
}

impl TcmClient {
    /// `timeout` bounds every call: TCM is slow, but a call that hangs must end as
    /// unavailable rather than hold the connector.
    pub fn new(base_url: impl Into<String>, timeout: Duration) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(timeout)
                .no_proxy()
                .build()
                .expect("an HTTP client builds"),
        }
    }

    /// Creates (or, for a request id TCM saw before, finds again) a customer.
    ///
    /// # Errors
    /// See [`TcmError`].
    pub async fn create_customer(
        &self,
        request_id: &str,
        customer: &NewCustomer,
    ) -> Result<CreatedCustomer, TcmError> {
        self.create("/tcm/v1/customers", request_id, customer).await
    }

    /// Creates (or, for a request id TCM saw before, finds again) a subscription.
    ///
    /// # Errors
    /// See [`TcmError`].
    pub async fn create_subscription(
        &self,
        request_id: &str,
        subscription: &NewSubscription,
    ) -> Result<CreatedSubscription, TcmError> {
        self.create("/tcm/v1/subscriptions", request_id, subscription)
            .await
    }

    /// One page of `tenant`'s subscriptions, in TCM's stable order (by subscription id);
    /// `page` counts from 1, `page_size` is 1 to 100.
    ///
    /// # Errors
    /// See [`TcmError`].
    pub async fn list_subscriptions(
        &self,
        tenant: &str,
        page: u32,
        page_size: u32,
    ) -> Result<SubscriptionPage, TcmError> {
        // `query` form-encodes the values: a `+` in a tenant id would otherwise read as a
        // space on TCM's side.
        let request = self
            .http
            .get(format!("{}/tcm/v1/subscriptions", self.base_url))
            .query(&[
                ("tenant", tenant.to_owned()),
                ("page", page.to_string()),
                ("pageSize", page_size.to_string()),
            ]);
        Self::answer(request).await
    }

    async fn create<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        request_id: &str,
        body: &impl Serialize,
    ) -> Result<T, TcmError> {
        let request = self
            .http
            .post(format!("{}{path}", self.base_url))
            .header("x-request-id", request_id)
            .json(body);
        Self::answer(request).await
    }

    /// Sends `request` and reads a JSON answer, sorting failures as the module docs say.
    async fn answer<T: serde::de::DeserializeOwned>(
        request: reqwest::RequestBuilder,
    ) -> Result<T, TcmError> {
        let answer = request
            .send()
            .await
            .map_err(|e| TcmError::Unavailable(describe(&e)))?;
        let status = answer.status();
        if status.is_success() {
            return answer
                .json()
                .await
                .map_err(|e| TcmError::Unavailable(format!("unreadable answer: {e}")));
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
pub fn classify(status: u16, retry_after: Option<Duration>, body: &str) -> TcmError {
    let problem: Option<TcmProblem> = serde_json::from_str(body).ok();
    match status {
        429 => TcmError::RateLimited {
            retry_after: retry_after.unwrap_or(Duration::from_secs(1)),
        },
        400..=499 => match problem {
            Some(p) => TcmError::Refused {
                code: p.error_code,
                message: p.error_message,
            },
            None => TcmError::Refused {
                code: format!("HTTP-{status}"),
                message: "no TCM error in the answer".to_owned(),
            },
        },
        _ => TcmError::Unavailable(match problem {
            Some(p) => format!("{status} {}: {}", p.error_code, p.error_message),
            // The load balancer's HTML maintenance page, or nothing at all.
            None => format!("{status} without a TCM answer"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_sort_into_what_the_caller_must_do() {
        let refused = classify(
            409,
            None,
            r#"{"errorCode":"TCM-4091","errorMessage":"MSISDN already active"}"#,
        );
        assert_eq!(
            refused,
            TcmError::Refused {
                code: "TCM-4091".into(),
                message: "MSISDN already active".into()
            }
        );
        assert!(!refused.is_outage());
        let limited = classify(429, Some(Duration::from_secs(3)), "{}");
        assert_eq!(
            limited,
            TcmError::RateLimited {
                retry_after: Duration::from_secs(3)
            }
        );
        assert!(
            !limited.is_outage(),
            "a healthy system that asks to slow down"
        );
        let maintenance = classify(
            503,
            Some(Duration::from_secs(30)),
            "<html>maintenance</html>",
        );
        assert!(maintenance.is_outage());
        assert!(classify(500, None, r#"{"errorCode":"TCM-5000"}"#).is_outage());
        assert!(matches!(
            classify(404, None, "<html/>"),
            TcmError::Refused { code, .. } if code == "HTTP-404"
        ));
    }
}
