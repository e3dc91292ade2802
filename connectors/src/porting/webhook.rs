//! The clearing house's notifications: when the losing operator answers a port request, and
//! when a port completes, it POSTs a [`PortNotification`] to every subscribed URL, signed with
//! the subscription's secret (see [`crate::signed_webhook`]):
//!
//! - `X-Carrier-Timestamp: <unix seconds>`
//! - `X-Carrier-Signature: sha256=<hex HMAC-SHA256(secret, "{timestamp}.{raw body}")>`
//!
//! A verified notification is only a hint: the platform reads the port request back from the
//! clearing house before anything changes.

use serde::{Deserialize, Serialize};

pub const TIMESTAMP_HEADER: &str = "x-carrier-timestamp";
pub const SIGNATURE_HEADER: &str = "x-carrier-signature";

/// What a porting webhook says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortNotification {
    /// Unique per notification: deliveries of one notification share it.
    pub id: String,
    /// `port.answered` or `port.completed`.
    #[serde(rename = "type")]
    pub kind: String,
    pub porting_id: String,
    /// The request's reference as the platform gave it (its order item,
    /// `tenant:order:item`).
    pub reference: String,
    pub tenant: String,
    pub status: String,
    pub at: String,
}
