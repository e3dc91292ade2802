//! The HTTP face of commands: ids from `Idempotency-Key`, and the processor's outcome as a
//! response (200/201 with the resource, 4xx problem with every violation, 202 + Location).

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tcom_processors::outcome::{Outcome, Refusal, ReplyMessage};

use crate::commands::Sent;
use crate::problem::Problem;

/// Header with which a client makes a retry safe: the same key, the same command.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The command id: the client's `Idempotency-Key` scoped to `scope` (tenant and resource), or
/// a fresh UUIDv7.
///
/// # Errors
/// 400 when the key is not 1–128 visible ASCII characters.
pub fn command_id(headers: &HeaderMap, scope: &str) -> Result<String, Problem> {
    match headers.get(IDEMPOTENCY_KEY) {
        None => Ok(uuid::Uuid::now_v7().to_string()),
        Some(value) => {
            let key = value
                .to_str()
                .ok()
                .filter(|k| (1..=128).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
                .ok_or_else(|| {
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_idempotency_key",
                        "The Idempotency-Key header is malformed",
                    )
                    .with_detail("use 1 to 128 visible ASCII characters, e.g. a UUID")
                })?;
            Ok(format!("{scope}|{key}"))
        }
    }
}

/// The problem for a refusal.
pub fn refusal_problem(refusal: Refusal, code: &str, detail: &str) -> Problem {
    let (status, title) = match refusal {
        Refusal::Invalid => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "The request breaks a rule",
        ),
        Refusal::Conflict => (
            StatusCode::CONFLICT,
            "The request conflicts with the current state",
        ),
        Refusal::NotFound => (StatusCode::NOT_FOUND, "No such resource"),
    };
    Problem::new(status, code, title).with_detail(detail)
}

/// Turns what became of a command into the response. `created` makes an acceptance 201.
pub fn respond(sent: Sent, location: &str, created: bool) -> Response {
    let location_header =
        HeaderValue::from_str(location).unwrap_or_else(|_| HeaderValue::from_static("/"));
    match sent {
        Sent::Pending => {
            let mut response = (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({
                    "status": "pending",
                    "detail": "the command was accepted for processing; poll the location",
                    "location": location,
                })),
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::LOCATION, location_header);
            response
        }
        Sent::Replied(ReplyMessage {
            outcome: Some(Outcome::Accepted { resource, .. }),
            ..
        }) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let mut response = (status, Json(resource)).into_response();
            response
                .headers_mut()
                .insert(header::LOCATION, location_header);
            response
        }
        Sent::Replied(ReplyMessage {
            outcome:
                Some(Outcome::Rejected {
                    refusal,
                    code,
                    detail,
                    violations,
                }),
            ..
        }) => {
            let mut problem = refusal_problem(refusal, &code, &detail);
            problem.violations = violations;
            problem.into_response()
        }
        Sent::Replied(ReplyMessage { dead_lettered, .. }) => {
            tracing::error!(error = ?dead_lettered, "A command could not be processed.");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "command_failed",
                "The command could not be processed",
            )
            .into_response()
        }
    }
}
