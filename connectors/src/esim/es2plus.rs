//! The platform's ES2+ client (GSMA SGP.22, operator → SM-DP+): orders an eSIM profile
//! (`downloadOrder`), confirms it for download (`confirmOrder`, which gives the matching ID
//! the activation code is made of), and releases or cancels an order.
//!
//! Every call carries a `functionCallIdentifier` the caller chooses and keeps: sending the
//! same call again with the same identifier after a lost answer gets the first answer and
//! does nothing twice. Failures are sorted into what the caller must do with them:
//!
//! - [`Es2PlusError::Unavailable`]: the SM-DP+ is unwell or unreachable (connection refused or
//!   lost, a timeout, any 5xx, a 503 outage page, 429, an answer that is not ES2+). Retry
//!   later with the same call identifier; counts against a circuit breaker.
//! - [`Es2PlusError::Refused`]: the SM-DP+ refused the call. Either the function was executed
//!   and `Failed` (`subject_code` / `reason_code` as SGP.22 writes them, e.g. `8.2.1` /
//!   `3.9` for an unknown ICCID), or the HTTP request itself was refused (`subject_code`
//!   `HTTP`, `reason_code` the status: 401 a bad token, 400 a protocol header or body the
//!   SM-DP+ cannot read). Sending it again changes nothing.
//! - [`Es2PlusError::InvalidActivationCode`]: `confirmOrder` succeeded but its SM-DP+ address
//!   and matching ID make no SGP.22 activation code: a provider bug, caught here rather than
//!   on the customer's phone. Retrying the same call answers the same.
//!
//! The bearer token and the confirmation code are secrets: neither is shown in `Debug` or in
//! an error.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ActivationCode, ActivationCodeError};

/// The `X-Admin-Protocol` the client speaks.
pub const ADMIN_PROTOCOL: &str = "gsma/rsp/v2.1.0";

/// The `functionRequesterIdentifier` unless [`Es2PlusClient::with_requester`] sets another.
pub const DEFAULT_REQUESTER: &str = "tcom";

const PATH: &str = "/gsma/rsp2/es2plus";

/// What an ES2+ call ended in, when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Es2PlusError {
    #[error("SM-DP+ unavailable: {0}")]
    Unavailable(String),
    #[error("SM-DP+ refused the call: {subject_code} / {reason_code}: {message}")]
    Refused {
        subject_code: String,
        reason_code: String,
        message: String,
    },
    #[error("the SM-DP+ confirmed an order with no valid activation code: {0}")]
    InvalidActivationCode(ActivationCodeError),
}

impl Es2PlusError {
    /// Whether the failure says the SM-DP+ is unwell (what a circuit breaker counts).
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// Whether this is a `Failed` function status with these SGP.22 codes.
    pub fn is_status(&self, subject: &str, reason: &str) -> bool {
        matches!(self, Self::Refused { subject_code, reason_code, .. }
            if subject_code == subject && reason_code == reason)
    }
}

/// What happens to a profile whose order is cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FinalProfileStatus {
    /// Back into the SM-DP+'s pool for another order.
    Available,
    /// Never used again.
    Unavailable,
}

/// A reserved profile (`downloadOrder`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadedOrder {
    pub iccid: String,
}

/// A profile confirmed and released for download (`confirmOrder`): what the customer's
/// device needs, as an activation code. `Debug` does not show the matching ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmedOrder {
    pub iccid: String,
    /// The EID the order is linked to, when the SM-DP+ says.
    pub eid: Option<String>,
    /// `LPA:1$<SM-DP+ address>$<matching ID>`, flagged when a confirmation code was given.
    pub activation_code: ActivationCode,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusCodeData {
    #[serde(default)]
    subject_code: String,
    #[serde(default)]
    reason_code: String,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecutionStatus {
    status: String,
    status_code_data: Option<StatusCodeData>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponseHeader {
    function_execution_status: ExecutionStatus,
}

#[derive(Debug, Deserialize)]
struct Answer {
    header: ResponseHeader,
}

#[derive(Debug, Deserialize)]
struct DownloadOrderAnswer {
    iccid: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfirmOrderAnswer {
    eid: Option<String>,
    matching_id: String,
    smdp_address: String,
}

/// Calls one SM-DP+'s ES2+ interface.
#[derive(Clone)]
pub struct Es2PlusClient {
    base_url: String,
    token: String,
    requester: String,
    http: reqwest::Client,
}

impl fmt::Debug for Es2PlusClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Es2PlusClient")
            .field("base_url", &self.base_url)
            .field("requester", &self.requester)
            .finish_non_exhaustive()
    }
}

impl Es2PlusClient {
    /// `token` is sent as `Authorization: Bearer`; `timeout` bounds every call, after which
    /// it is [`Es2PlusError::Unavailable`].
    pub fn new(base_url: impl Into<String>, token: impl Into<String>, timeout: Duration) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            token: token.into(),
            requester: DEFAULT_REQUESTER.to_owned(),
            http: reqwest::Client::builder()
                .timeout(timeout)
                .no_proxy()
                .build()
                .expect("an HTTP client builds"),
        }
    }

    /// The same client naming itself `requester` (`functionRequesterIdentifier`).
    pub fn with_requester(mut self, requester: impl Into<String>) -> Self {
        self.requester = requester.into();
        self
    }

    /// Reserves a profile: `iccid`, or any the SM-DP+ has.
    ///
    /// # Errors
    /// See [`Es2PlusError`]; e.g. `8.2.1` / `3.9` an unknown ICCID, `8.2.1` / `3.3` one already
    /// ordered, `8.2.5` / `3.7` none left.
    pub async fn download_order(
        &self,
        call_id: &str,
        iccid: Option<&str>,
    ) -> Result<DownloadedOrder, Es2PlusError> {
        let mut body = serde_json::Map::new();
        if let Some(iccid) = iccid {
            body.insert("iccid".into(), json!(iccid));
        }
        let answer: DownloadOrderAnswer = self.call("downloadOrder", call_id, body).await?;
        Ok(DownloadedOrder {
            iccid: answer.iccid,
        })
    }

    /// Confirms a reserved profile and releases it for download at once (`releaseFlag`), the
    /// SM-DP+ choosing the matching ID. With `confirmation_code` (which the caller makes and
    /// gives the customer on another channel) the device asks for it before the download, and
    /// the activation code carries the flag that says so.
    ///
    /// # Errors
    /// See [`Es2PlusError`]; e.g. `8.2.1` / `3.5` a profile that was not reserved, `8.2.1` /
    /// `3.3` one confirmed already with another confirmation code.
    pub async fn confirm_order(
        &self,
        call_id: &str,
        iccid: &str,
        confirmation_code: Option<&str>,
    ) -> Result<ConfirmedOrder, Es2PlusError> {
        let mut body = serde_json::Map::new();
        body.insert("iccid".into(), json!(iccid));
        if let Some(code) = confirmation_code {
            body.insert("confirmationCode".into(), json!(code));
        }
        body.insert("releaseFlag".into(), json!(true));
        let answer: ConfirmOrderAnswer = self.call("confirmOrder", call_id, body).await?;
        let activation_code = ActivationCode::new(
            &answer.smdp_address,
            &answer.matching_id,
            confirmation_code.is_some(),
        )
        .map_err(Es2PlusError::InvalidActivationCode)?;
        Ok(ConfirmedOrder {
            iccid: iccid.to_owned(),
            eid: answer.eid,
            activation_code,
        })
    }

    /// Releases a profile confirmed without the release flag.
    ///
    /// # Errors
    /// See [`Es2PlusError`].
    pub async fn release_profile(&self, call_id: &str, iccid: &str) -> Result<(), Es2PlusError> {
        let mut body = serde_json::Map::new();
        body.insert("iccid".into(), json!(iccid));
        let _: Value = self.call("releaseProfile", call_id, body).await?;
        Ok(())
    }

    /// Cancels a profile's order (one not downloaded yet).
    ///
    /// # Errors
    /// See [`Es2PlusError`]; `8.2.1` / `3.5` for a downloaded profile.
    pub async fn cancel_order(
        &self,
        call_id: &str,
        iccid: &str,
        final_status: FinalProfileStatus,
    ) -> Result<(), Es2PlusError> {
        let mut body = serde_json::Map::new();
        body.insert("iccid".into(), json!(iccid));
        body.insert("finalProfileStatusIndicator".into(), json!(final_status));
        let _: Value = self.call("cancelOrder", call_id, body).await?;
        Ok(())
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        function: &str,
        call_id: &str,
        mut body: serde_json::Map<String, Value>,
    ) -> Result<T, Es2PlusError> {
        let header = json!({
            "functionRequesterIdentifier": self.requester,
            "functionCallIdentifier": call_id,
        });
        body.insert("header".into(), header);
        let answer = self
            .http
            .post(format!("{}{PATH}/{function}", self.base_url))
            .bearer_auth(&self.token)
            .header("x-admin-protocol", ADMIN_PROTOCOL)
            .json(&body)
            .send()
            .await
            .map_err(|e| Es2PlusError::Unavailable(describe(&e)))?;
        let status = answer.status().as_u16();
        let text = answer
            .text()
            .await
            .map_err(|e| Es2PlusError::Unavailable(format!("answer cut off: {}", describe(&e))))?;
        classify(status, &text)
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

/// The message of a non-ES2+ error body, `{"message": …}`, when there is one.
fn message_of(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| "no ES2+ answer".to_owned())
}

/// What an HTTP answer means (see the module docs): the function's members on success.
///
/// # Errors
/// See [`Es2PlusError`].
pub fn classify<T: serde::de::DeserializeOwned>(
    status: u16,
    body: &str,
) -> Result<T, Es2PlusError> {
    match status {
        200 => {}
        429 => return Err(Es2PlusError::Unavailable("429 rate limited".to_owned())),
        400..=499 => {
            return Err(Es2PlusError::Refused {
                subject_code: "HTTP".to_owned(),
                reason_code: status.to_string(),
                message: message_of(body),
            });
        }
        _ => return Err(Es2PlusError::Unavailable(format!("HTTP {status}"))),
    }
    let unreadable =
        |e: serde_json::Error| Es2PlusError::Unavailable(format!("unreadable answer: {e}"));
    let value: Value = serde_json::from_str(body).map_err(unreadable)?;
    let answer: Answer = serde_json::from_value(value.clone()).map_err(unreadable)?;
    let execution = answer.header.function_execution_status;
    match execution.status.as_str() {
        "Executed-Success" | "Executed-WithWarning" => {
            serde_json::from_value(value).map_err(unreadable)
        }
        other => {
            let data = execution.status_code_data.unwrap_or(StatusCodeData {
                subject_code: String::new(),
                reason_code: String::new(),
                message: String::new(),
            });
            let message = if data.message.is_empty() {
                other.to_owned()
            } else {
                data.message
            };
            Err(Es2PlusError::Refused {
                subject_code: data.subject_code,
                reason_code: data.reason_code,
                message,
            })
        }
    }
}

/// The SM-DP+ the platform orders eSIM profiles from (`[smdp]` in `config/default.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SmdpSettings {
    /// Base URL of the SM-DP+'s ES2+ interface; locally `tcom smdp-sim`.
    #[serde(default = "default_smdp_url")]
    pub url: String,
    /// The bearer token of the platform's ES2+ account (locally any non-empty text).
    #[serde(default = "default_smdp_token")]
    pub token: String,
    /// Longest wait for one ES2+ answer.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Whether profiles are confirmed with a confirmation code the customer must enter on the
    /// device (sent apart from the QR code).
    #[serde(default)]
    pub confirmation_code: bool,
}

fn default_smdp_url() -> String {
    "http://127.0.0.1:38095".to_owned()
}

fn default_smdp_token() -> String {
    "local-development-smdp-token".to_owned()
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl Default for SmdpSettings {
    fn default() -> Self {
        Self {
            url: default_smdp_url(),
            token: default_smdp_token(),
            timeout_ms: default_timeout_ms(),
            confirmation_code: false,
        }
    }
}

impl SmdpSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// A client of the configured SM-DP+.
    pub fn client(&self) -> Es2PlusClient {
        Es2PlusClient::new(&self.url, &self.token, self.timeout())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classified(status: u16, body: &str) -> Es2PlusError {
        classify::<Value>(status, body).unwrap_err()
    }

    #[test]
    fn answers_sort_into_what_the_caller_must_do() {
        let failed = classified(
            200,
            r#"{"header":{"functionExecutionStatus":{"status":"Failed","statusCodeData":
               {"subjectCode":"8.2.1","reasonCode":"3.9","message":"Profile ICCID unknown"}}}}"#,
        );
        assert!(failed.is_status("8.2.1", "3.9"), "{failed:?}");
        assert!(!failed.is_outage());
        assert!(classified(500, "{}").is_outage());
        assert!(classified(503, "down").is_outage());
        assert!(classified(429, "").is_outage());
        assert!(classified(200, "<html/>").is_outage(), "not ES2+");
        assert!(
            classified(200, r#"{"iccid":"89"}"#).is_outage(),
            "no header"
        );
        let unauthorized = classified(401, r#"{"error":"unauthorized","message":"token"}"#);
        assert!(unauthorized.is_status("HTTP", "401"), "{unauthorized:?}");
        assert!(!unauthorized.is_outage());
        let answer: DownloadOrderAnswer = classify(
            200,
            r#"{"header":{"functionExecutionStatus":{"status":"Executed-Success"}},"iccid":"8945"}"#,
        )
        .unwrap();
        assert_eq!(answer.iccid, "8945");
    }

    #[test]
    fn debug_hides_the_token() {
        let client = Es2PlusClient::new("http://x", "s3cret-token", Duration::from_secs(1));
        assert!(!format!("{client:?}").contains("s3cret"));
    }
}
