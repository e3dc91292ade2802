//! Contentful webhooks: verified by Contentful's request signature, then published to
//! `content.notifications`, where the content connector picks them up and syncs the tenant.
//!
//! Verification (Contentful "request verification"): the canonical request is
//! `METHOD\npath\nh1:v1;h2:v2…\nbody` over the headers listed in `x-contentful-signed-headers`
//! (lower-cased names), signed with HMAC-SHA256 under the webhook secret and sent hex-encoded
//! in `x-contentful-signature`; `x-contentful-timestamp` (ms) must be signed and recent, so a
//! captured request cannot be replayed later.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tcom_schemas::content::ContentNotification;

use crate::app::AppState;
use crate::commands::now_ms;
use crate::problem::Problem;

/// How old a signed request may be.
pub const SIGNATURE_TTL_MS: i64 = 30_000;

/// Why a webhook was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    Missing,
    Stale,
    Mismatch,
}

/// The HMAC-SHA256 of the canonical request, as Contentful computes it.
fn canonical_mac(
    secret: &str,
    method: &str,
    path: &str,
    signed: &[(String, String)],
    body: &[u8],
) -> Hmac<Sha256> {
    let headers: Vec<String> = signed
        .iter()
        .map(|(name, value)| format!("{}:{}", name.to_ascii_lowercase(), value.trim()))
        .collect();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(method.to_ascii_uppercase().as_bytes());
    mac.update(b"\n");
    mac.update(path.as_bytes());
    mac.update(b"\n");
    mac.update(headers.join(";").as_bytes());
    mac.update(b"\n");
    mac.update(body);
    mac
}

/// The hex signature Contentful sends for a request (also what tests and tools sign with).
pub fn sign(
    secret: &str,
    method: &str,
    path: &str,
    signed: &[(String, String)],
    body: &[u8],
) -> String {
    hex::encode(
        canonical_mac(secret, method, path, signed, body)
            .finalize()
            .into_bytes(),
    )
}

/// Checks a request's signature and freshness.
///
/// # Errors
/// Which check failed.
pub fn verify(
    secret: &str,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    now_ms: i64,
) -> Result<(), SignatureError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signature = header("x-contentful-signature").ok_or(SignatureError::Missing)?;
    let signed_names = header("x-contentful-signed-headers").ok_or(SignatureError::Missing)?;
    let timestamp: i64 = header("x-contentful-timestamp")
        .and_then(|t| t.parse().ok())
        .ok_or(SignatureError::Missing)?;
    let names: Vec<String> = signed_names
        .split(',')
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    // The timestamp only protects against replay if it is itself signed.
    if !names.iter().any(|n| n == "x-contentful-timestamp") {
        return Err(SignatureError::Missing);
    }
    if (now_ms - timestamp).abs() > SIGNATURE_TTL_MS {
        return Err(SignatureError::Stale);
    }
    let mut signed = Vec::with_capacity(names.len());
    for name in names {
        let value = header(&name).ok_or(SignatureError::Missing)?.to_owned();
        signed.push((name, value));
    }
    let signature = hex::decode(signature).map_err(|_| SignatureError::Mismatch)?;
    // `verify_slice` compares in constant time.
    canonical_mac(secret, method, path, &signed, body)
        .verify_slice(&signature)
        .map_err(|_| SignatureError::Mismatch)
}

/// Receives a Contentful webhook for a tenant.
#[utoipa::path(post, path = "/v1/webhooks/contentful/{tenant_id}", tag = "webhooks",
    request_body(content = Object, description = "Contentful webhook payload"),
    responses(
        (status = 202, description = "Verified; the tenant's content will be synced"),
        (status = 401, description = "Missing, stale or wrong signature", body = Problem, content_type = "application/problem+json")
    ))]
pub async fn receive(
    State(state): State<AppState>,
    Path(tenant_id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    if let Err(e) = verify(
        &state.webhook_secret,
        method.as_str(),
        path,
        &headers,
        &body,
        now_ms(),
    ) {
        tracing::warn!(tenant = %tenant_id, reason = ?e, "Refused a content webhook.");
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            "The webhook signature is missing, stale or wrong",
        ));
    }
    if state.tenants.get(&tenant_id).await.is_none() {
        return Err(Problem::not_found());
    }
    let payload: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let notification = ContentNotification {
        tenant_id: tenant_id.clone(),
        topic: headers
            .get("x-contentful-topic")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        entity_id: payload["sys"]["id"].as_str().map(str::to_owned),
        received_at: now_ms(),
    };
    state.commands.publish(&tenant_id, &notification).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed_headers(secret: &str, timestamp: i64, body: &[u8]) -> HeaderMap {
        let signed = vec![
            ("x-contentful-timestamp".to_owned(), timestamp.to_string()),
            (
                "x-contentful-signed-headers".to_owned(),
                "x-contentful-timestamp,x-contentful-signed-headers".to_owned(),
            ),
        ];
        let signature = sign(secret, "POST", "/v1/webhooks/contentful/t1", &signed, body);
        let mut headers = HeaderMap::new();
        for (name, value) in &signed {
            headers.insert(
                axum::http::HeaderName::try_from(name.as_str()).unwrap(),
                value.parse().unwrap(),
            );
        }
        headers.insert("x-contentful-signature", signature.parse().unwrap());
        headers
    }

    #[test]
    fn a_fresh_correctly_signed_request_passes_and_tampering_fails() {
        let body = br#"{"sys":{"id":"e1"}}"#;
        let headers = signed_headers("s3cret", 1_000_000, body);
        let check = |secret: &str, path: &str, body: &[u8], now: i64| {
            verify(secret, "POST", path, &headers, body, now)
        };
        assert_eq!(
            check("s3cret", "/v1/webhooks/contentful/t1", body, 1_000_500),
            Ok(())
        );
        assert_eq!(
            check("other", "/v1/webhooks/contentful/t1", body, 1_000_500),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check("s3cret", "/v1/webhooks/contentful/t2", body, 1_000_500),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check("s3cret", "/v1/webhooks/contentful/t1", b"{}", 1_000_500),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(
                "s3cret",
                "/v1/webhooks/contentful/t1",
                body,
                1_000_000 + SIGNATURE_TTL_MS + 1
            ),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify("s3cret", "POST", "/x", &HeaderMap::new(), body, 0),
            Err(SignatureError::Missing)
        );
    }
}
