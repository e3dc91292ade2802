//! Webhooks signed the way the platform's outside systems sign them (the logistics house, the
//! clearing house): a timestamp header and a signature header,
//! `sha256=<hex HMAC-SHA256(secret, "{timestamp}.{raw body}")>`. The receiver checks the
//! signature over the raw body (constant time) and that the timestamp is recent, so a captured
//! notification cannot be replayed later. A verified notification is only a hint: the platform
//! reads the state it announces from the sender's API itself.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a webhook was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookSignatureError {
    #[error("the signature or timestamp header is missing or malformed")]
    Malformed,
    #[error("the signature does not match the body")]
    NoMatch,
    #[error("the timestamp is outside the tolerance")]
    Stale,
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The signature header's value for `body` sent at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Checks a webhook's headers against its raw body at `now_unix`.
///
/// # Errors
/// See [`WebhookSignatureError`].
pub fn verify(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_unix: i64,
    tolerance_seconds: i64,
) -> Result<(), WebhookSignatureError> {
    let timestamp: i64 = timestamp
        .and_then(|t| t.trim().parse().ok())
        .ok_or(WebhookSignatureError::Malformed)?;
    let signature = signature
        .and_then(|s| s.trim().strip_prefix("sha256="))
        .and_then(|hex_text| hex::decode(hex_text).ok())
        .ok_or(WebhookSignatureError::Malformed)?;
    // verify_slice compares in constant time.
    mac(secret, timestamp, body)
        .verify_slice(&signature)
        .map_err(|_| WebhookSignatureError::NoMatch)?;
    if now_unix.abs_diff(timestamp) > u64::try_from(tolerance_seconds).unwrap_or(0) {
        return Err(WebhookSignatureError::Stale);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"whe_1"}"#;

    #[test]
    fn a_signed_body_verifies_and_every_change_is_refused() {
        let signature = sign("s3cret", 1_000, BODY);
        assert_eq!(
            verify("s3cret", Some("1000"), Some(&signature), BODY, 1_010, 300),
            Ok(())
        );
        assert_eq!(
            verify("other", Some("1000"), Some(&signature), BODY, 1_010, 300),
            Err(WebhookSignatureError::NoMatch)
        );
        assert_eq!(
            verify("s3cret", Some("1001"), Some(&signature), BODY, 1_010, 300),
            Err(WebhookSignatureError::NoMatch),
            "the timestamp is signed"
        );
        assert_eq!(
            verify("s3cret", Some("1000"), Some(&signature), b"{}", 1_010, 300),
            Err(WebhookSignatureError::NoMatch)
        );
        assert_eq!(
            verify("s3cret", Some("1000"), Some(&signature), BODY, 1_301, 300),
            Err(WebhookSignatureError::Stale)
        );
        assert_eq!(
            verify("s3cret", None, Some(&signature), BODY, 1_000, 300),
            Err(WebhookSignatureError::Malformed)
        );
        assert_eq!(
            verify("s3cret", Some("1000"), Some("md5=00"), BODY, 1_000, 300),
            Err(WebhookSignatureError::Malformed)
        );
    }
}
