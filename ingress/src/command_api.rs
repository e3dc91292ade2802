//! The HTTP face of commands: ids from `Idempotency-Key`, and the processor's outcome as a
//! response (200/201 with the resource, 4xx problem with every violation, 202 + Location).
//!
//! An `Idempotency-Key` is scoped to the principal that sent it (the customer, the holder of
//! a basket's guest token, the admin's subject), as payment providers scope keys to an
//! account: the same key from anyone else is a new command to them, never a replay of the
//! stored answer. A caller with no principal at all (a guest creating a basket, who holds no
//! token yet) has nothing to scope a key to, so its key is not honoured: each such request is
//! new (an empty basket created twice simply expires). The same key with a different request
//! (method, path or body: the fingerprint below) answers 422 `idempotency_key_reused`.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tcom_processors::outcome::{Outcome, Refusal, ReplyMessage};

use crate::commands::Sent;
use crate::problem::Problem;

/// Header with which a client makes a retry safe: the same key, the same command.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Internal header with the fingerprint of a request that carries an `Idempotency-Key`, set by
/// [`crate::write_requests::inspect`] (a client's own value is replaced).
pub const FINGERPRINT_HEADER: &str = "x-tcom-request-fingerprint";

/// A command's id and, when it came from an idempotency key, the fingerprint of its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandId {
    pub id: String,
    pub fingerprint: Option<String>,
}

impl CommandId {
    fn fresh() -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            fingerprint: None,
        }
    }
}

/// The command id: the client's `Idempotency-Key` scoped to `scope` (tenant and resource) and
/// to `principal` (who sent it), or a fresh UUIDv7 when there is no key or no principal.
///
/// # Errors
/// 400 when the key is not 1–128 visible ASCII characters.
pub fn command_id(
    headers: &HeaderMap,
    scope: &str,
    principal: Option<&str>,
) -> Result<CommandId, Problem> {
    let Some(key) = idempotency_key(headers)? else {
        return Ok(CommandId::fresh());
    };
    let Some(principal) = principal else {
        return Ok(CommandId::fresh());
    };
    let scoped = Sha256::digest(format!("{principal}\0{key}"));
    Ok(CommandId {
        id: format!("{scope}|{}", hex::encode(&scoped[..16])),
        fingerprint: headers
            .get(FINGERPRINT_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    })
}

/// The client's `Idempotency-Key`, if it sent one.
///
/// # Errors
/// 400 when the key is not 1–128 visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, Problem> {
    match headers.get(IDEMPOTENCY_KEY) {
        None => Ok(None),
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
            Ok(Some(key))
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
            key_reused: true, ..
        }) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "The Idempotency-Key was used before for a different request",
        )
        .with_detail(
            "use a new key for a new request; retry only with the same method, path and body",
        )
        .into_response(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(key: Option<&str>, fingerprint: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(key) = key {
            headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_str(key).unwrap());
        }
        if let Some(fingerprint) = fingerprint {
            headers.insert(
                FINGERPRINT_HEADER,
                HeaderValue::from_str(fingerprint).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn a_key_is_the_same_command_only_for_the_same_principal_and_scope() {
        let with_key = headers(Some("k-1"), Some("f1"));
        let alice = command_id(&with_key, "t:basket:b1", Some("customer:alice")).unwrap();
        let again = command_id(&with_key, "t:basket:b1", Some("customer:alice")).unwrap();
        assert_eq!(alice, again);
        assert_eq!(alice.fingerprint.as_deref(), Some("f1"));
        assert!(alice.id.starts_with("t:basket:b1|"), "{}", alice.id);
        let bob = command_id(&with_key, "t:basket:b1", Some("customer:bob")).unwrap();
        assert_ne!(alice.id, bob.id);
        let elsewhere = command_id(&with_key, "t:basket:b2", Some("customer:alice")).unwrap();
        assert_ne!(alice.id, elsewhere.id);
        // The key itself is not readable from the id.
        assert!(!alice.id.contains("k-1"));
    }

    #[test]
    fn without_a_key_or_a_principal_every_request_is_new() {
        let with_key = headers(Some("k-1"), Some("f1"));
        let anonymous = command_id(&with_key, "t:basket:b1", None).unwrap();
        let anonymous_again = command_id(&with_key, "t:basket:b1", None).unwrap();
        assert_ne!(anonymous.id, anonymous_again.id);
        assert_eq!(anonymous.fingerprint, None);
        let no_key = headers(None, None);
        let first = command_id(&no_key, "s", Some("customer:alice")).unwrap();
        let second = command_id(&no_key, "s", Some("customer:alice")).unwrap();
        assert_ne!(first.id, second.id);
    }

    #[test]
    fn a_malformed_key_is_refused() {
        for key in ["with space".to_owned(), "x".repeat(129)] {
            let problem = command_id(&headers(Some(&key), None), "s", Some("p")).unwrap_err();
            assert_eq!(problem.code, "invalid_idempotency_key");
        }
        assert!(command_id(&headers(Some(&"x".repeat(128)), None), "s", Some("p")).is_ok());
    }
}
