//! Errors at the HTTP edge as RFC 9457 problem details (`application/problem+json`), each with
//! a stable machine-readable `code` that clients can switch on. Internal causes are logged,
//! never returned.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A problem answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type; resolves to documentation.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short human summary of the problem type.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong in this occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Stable code, e.g. `unknown_tenant`.
    pub code: String,
    /// Every broken rule, when the request broke several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub violations: Vec<tcom_processors::domain::Violation>,
}

impl Problem {
    /// A problem with a status, a stable code and a title.
    pub fn new(status: StatusCode, code: &str, title: &'static str) -> Self {
        Self {
            problem_type: format!("https://docs.tcom.dev/problems/{code}"),
            title,
            status: status.as_u16(),
            detail: None,
            code: code.to_owned(),
            violations: Vec::new(),
        }
    }

    /// Adds the occurrence's detail.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The `Host` header names no tenant.
    pub fn unknown_tenant(host: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "unknown_tenant",
            "No tenant is served on this host",
        )
        .with_detail(format!("host {host:?} is not a registered tenant domain"))
    }

    /// The request has no usable `Host` header.
    pub fn missing_host() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "missing_host",
            "The Host header is missing or malformed",
        )
    }

    /// No route matches.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "No such resource")
    }

    /// A dependency (Kafka, the registry, the database) is unavailable; retry later.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The platform cannot take this request right now; retry later",
        )
    }

    /// A view query failed: logged here, 503 for the caller.
    pub fn database(e: &sqlx::Error) -> Self {
        tracing::error!(error = %e, "View query failed.");
        Self::unavailable()
    }

    /// No valid credentials.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "A valid bearer token is required",
        )
        .with_detail(detail)
    }

    /// Valid credentials that do not allow this.
    pub fn forbidden(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, "Not allowed").with_detail(detail)
    }

    /// Something failed inside; the cause is in the logs.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(&self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Turns the errors of axum's and tower-http's own layers (body too large, timeout, bad JSON)
/// into problems, so every error a client sees has one shape.
pub async fn normalise_errors(response: Response) -> Response {
    let status = response.status();
    // Problems, and the JSON documents handlers answer errors with on purpose (readiness
    // reports), stay as they are; only the plain answers of axum and tower layers (timeouts,
    // body limits, unknown methods) become problems.
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes().starts_with(b"application/problem+json")
                || v.as_bytes().starts_with(b"application/json")
        });
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let problem = match status {
        StatusCode::NOT_FOUND => Problem::not_found(),
        StatusCode::METHOD_NOT_ALLOWED => Problem::new(
            status,
            "method_not_allowed",
            "Method not allowed on this resource",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::new(status, "body_too_large", "The request body is too large")
        }
        StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => Problem::new(
            status,
            "unavailable",
            "The request could not be completed in time",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Problem::new(
            status,
            "unsupported_media_type",
            "Send the body as application/json",
        ),
        s if s.is_client_error() => Problem::new(s, "bad_request", "The request is malformed"),
        s => Problem::new(s, "internal", "Internal error"),
    };
    problem.into_response()
}
