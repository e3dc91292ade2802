//! The fulfilment house's tracking webhooks: when a parcel moves, the house POSTs a
//! [`TrackingNotification`] to every subscribed URL, signed with the subscription's secret:
//!
//! - `X-Logistics-Timestamp: <unix seconds>`
//! - `X-Logistics-Signature: sha256=<hex HMAC-SHA256(secret, "{timestamp}.{raw body}")>`
//!   (see [`crate::signed_webhook`])
//!
//! The receiver checks the signature over the raw body (constant time) and that the timestamp
//! is recent, so a captured notification cannot be replayed later. A verified notification is
//! only a hint: the platform reads the shipment's tracking from the house's API itself.

use serde::{Deserialize, Serialize};

pub use crate::signed_webhook::{WebhookSignatureError, sign, verify};

pub const TIMESTAMP_HEADER: &str = "x-logistics-timestamp";
pub const SIGNATURE_HEADER: &str = "x-logistics-signature";

/// What a tracking webhook says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackingNotification {
    /// Unique per notification: deliveries of one notification share it.
    pub id: String,
    /// `shipment.tracking`.
    #[serde(rename = "type")]
    pub kind: String,
    pub shipment_id: String,
    /// The shipment's reference as the platform gave it (its order item).
    pub reference: String,
    pub tenant: String,
    pub seq: u64,
    pub status: String,
    pub at: String,
}
