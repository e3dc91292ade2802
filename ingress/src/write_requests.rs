//! What the edge checks in every request that writes, before any handler sees it:
//!
//! - **Control characters.** No text the platform stores may hold one (U+0000–U+001F,
//!   U+007F–U+009F; descriptions may hold line feeds and tabs): PostgreSQL refuses NUL
//!   outright, which once froze every tenant's views, and the others corrupt logs, CSV
//!   exports and e-mails. A JSON body with one anywhere — in
//!   a value or a key — is refused with 422 `control_character` naming every field, and
//!   nothing is written. The processors' rules refuse them too (commands written to Kafka by
//!   other means). Webhook receivers are exempt: they verify the provider's bytes and decide
//!   what to keep (marketing copy with line breaks comes from Contentful, not this API).
//! - **Request fingerprints.** For a request with an `Idempotency-Key`, a hash of method,
//!   path and body goes along with the command, so the key reused for a different request is
//!   recognised (see [`crate::command_api`]).
//!
//! Runs inside the body limit, so the body it buffers is bounded.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tcom_processors::domain::Violation;

use crate::command_api::{FINGERPRINT_HEADER, IDEMPOTENCY_KEY};
use crate::problem::Problem;

/// The middleware.
pub async fn inspect(request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    parts.headers.remove(FINGERPRINT_HEADER);
    let writes = matches!(parts.method, Method::POST | Method::PUT | Method::PATCH);
    // Webhooks carry the providers' documents, verified byte for byte by their signatures
    // (and Contentful's rich text has line breaks): their receivers decide what to store.
    let webhook = parts.uri.path().starts_with("/v1/webhooks/");
    if !writes || webhook {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        // Only the body limit makes reading fail here.
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    // Bodies that are not JSON are left to the handler's extractor to refuse.
    if let Ok(json) = serde_json::from_slice::<Value>(&bytes) {
        let mut violations = Vec::new();
        find_control_characters(&json, "", &mut violations);
        if !violations.is_empty() {
            let mut problem = Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "control_character",
                "A text contains a control character",
            )
            .with_detail(format!(
                "{} field(s) contain control characters, which no stored text may hold",
                violations.len()
            ));
            problem.violations = violations;
            return problem.into_response();
        }
    }
    if parts.headers.contains_key(IDEMPOTENCY_KEY)
        && let Ok(value) =
            HeaderValue::from_str(&fingerprint(&parts.method, parts.uri.path(), &bytes))
    {
        parts.headers.insert(FINGERPRINT_HEADER, value);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Hash of what makes two requests the same request.
fn fingerprint(method: &Method, path: &str, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(method.as_str());
    hash.update(b"\n");
    hash.update(path);
    hash.update(b"\n");
    hash.update(body);
    hex::encode(hash.finalize())
}

/// Whether `text` holds a C0 or C1 control character (or DEL). Prose (`multiline`) may hold
/// line feeds and tabs, as the processors' rules allow in descriptions.
pub fn has_control_character(text: &str, multiline: bool) -> bool {
    text.chars()
        .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t')))
}

/// Fields whose text is prose.
fn is_prose(path: &str) -> bool {
    path == "description" || path.ends_with(".description")
}

/// Adds a violation for every string (value or key) under `value` with a control character;
/// `path` is the field path so far (`settings.domains[1]`).
fn find_control_characters(value: &Value, path: &str, out: &mut Vec<Violation>) {
    match value {
        Value::String(text) if has_control_character(text, is_prose(path)) => {
            out.push(Violation::new(
                "control_character",
                path,
                "contains a control character (U+0000–U+001F or U+007F–U+009F)",
            ))
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                find_control_characters(item, &format!("{path}[{index}]"), out);
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                let field = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if has_control_character(key, false) {
                    out.push(Violation::new(
                        "control_character",
                        field.clone(),
                        "the field name contains a control character",
                    ));
                }
                find_control_characters(item, &field, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(value: &Value) -> Vec<String> {
        let mut out = Vec::new();
        find_control_characters(value, "", &mut out);
        out.into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn every_field_with_a_control_character_is_named() {
        let body = json!({
            "name": "Plan\u{0}X",
            "placements": [{"channel": "web"}, {"display_name": "Tab\tbed"}],
            "ok": "Fri 5G — æøå",
            "nested": {"note": "bell\u{7}", "del": "x\u{7f}", "c1": "\u{85}next"}
        });
        assert_eq!(
            fields(&body),
            vec![
                "name",
                "placements[1].display_name",
                "nested.note",
                "nested.del",
                "nested.c1"
            ]
        );
    }

    #[test]
    fn descriptions_may_break_lines_and_names_may_not() {
        let body = json!({"description": "Line one\n\tLine two", "name": "One\nTwo",
            "placements": [{"description": "ok\n", "display_name": "no\n"}],
            "more": {"description": "nul\u{0}"}});
        assert_eq!(
            fields(&body),
            vec!["name", "placements[0].display_name", "more.description"]
        );
    }

    #[test]
    fn clean_text_numbers_and_keys_pass() {
        assert!(fields(&json!({"a": 1, "b": [true, null, "æøå €"], "c": {"d": "e"}})).is_empty());
        assert_eq!(fields(&json!({"bad\u{1}key": 1})), vec!["bad\u{1}key"]);
    }

    #[test]
    fn the_fingerprint_covers_method_path_and_body() {
        let base = fingerprint(&Method::POST, "/a", b"{}");
        assert_eq!(base, fingerprint(&Method::POST, "/a", b"{}"));
        assert_ne!(base, fingerprint(&Method::PUT, "/a", b"{}"));
        assert_ne!(base, fingerprint(&Method::POST, "/b", b"{}"));
        assert_ne!(base, fingerprint(&Method::POST, "/a", b"{\"x\":1}"));
    }
}
