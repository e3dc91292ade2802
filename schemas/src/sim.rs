//! SIM delivery requests and what came of them, keyed `tenant:order`: eSIM profiles from the
//! SM-DP+ (over ES2+) and pSIM shipments from the logistics house. The order processor writes
//! commands inside its transaction (the outbox); the SIM connector carries them out and
//! reports on `sim.events`, including the shipments' tracking events.

use serde::{Deserialize, Serialize};

/// A SIM delivery request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimCommand {
    /// Stable per order item: the outbound idempotency keys come from it.
    pub command_id: String,
    pub tenant_id: String,
    pub order_id: String,
    pub issued_at: i64,
    pub payload: SimCommandPayload,
}

/// The commands; the variant order is the Avro union's branch order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SimCommandPayload {
    PrepareEsimProfiles(PrepareEsimProfiles),
    ShipSims(ShipSims),
    TrackShipment(TrackShipment),
}

/// Reserve and release eSIM profiles for one order item: the line's SIM and one per
/// data-sharing card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepareEsimProfiles {
    pub item_id: String,
    pub customer_id: String,
    /// How many profiles: 1 + the data-sharing cards. (Whether a profile needs a
    /// confirmation code is the SM-DP+ account's setting, the connector's `[smdp]`.)
    pub profiles: i32,
}

/// Ship the physical SIMs of one order item: the line's SIM and one per data-sharing card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipSims {
    pub item_id: String,
    pub customer_id: String,
    pub sims: i32,
    /// The checkout's contact and delivery details, sealed with the customer's data key.
    #[serde(default)]
    pub recipient_sealed: Option<String>,
}

/// The logistics house said (in a verified webhook) that a shipment moved: the connector
/// reads its tracking events from the logistics house and reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackShipment {
    pub item_id: String,
    pub shipment_id: String,
}

/// What the SIM connector reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimEvent {
    pub event_id: String,
    pub tenant_id: String,
    pub order_id: String,
    pub occurred_at: i64,
    /// The command answered.
    pub cause: String,
    pub payload: SimEventPayload,
}

/// The reports; the variant order is the Avro union's branch order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SimEventPayload {
    EsimProfilesReady(EsimProfilesReady),
    ShipmentCreated(ShipmentCreated),
    ShipmentTracked(ShipmentTracked),
    SimDeliveryRefused(SimDeliveryRefused),
    SimDeliveryDelayed(SimDeliveryDelayed),
}

/// The item's eSIM profiles, confirmed at the SM-DP+ and ready to download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EsimProfilesReady {
    pub item_id: String,
    /// The line's profile first, then the data-sharing cards'.
    pub profiles: Vec<EsimProfile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EsimProfile {
    pub iccid: String,
    /// The SGP.22 activation code (`LPA:1$…`), sealed with the customer's data key: whoever
    /// holds it can download the profile.
    pub activation_code_sealed: String,
    /// The confirmation code, sealed apart (never inside the activation code or its QR).
    #[serde(default)]
    pub confirmation_code_sealed: Option<String>,
}

/// The logistics house took the shipment and picked the SIMs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentCreated {
    pub item_id: String,
    pub shipment_id: String,
    pub tracking_number: String,
    /// The line's SIM first, then the data-sharing cards'.
    pub iccids: Vec<String>,
}

/// A tracking event of a shipment: `shipped`, `delivered` or `returned`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentTracked {
    pub item_id: String,
    pub shipment_id: String,
    pub status: String,
    /// The logistics house's event sequence number (increasing per shipment).
    pub sequence: i64,
}

/// The provider refused the request itself: sending it again changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimDeliveryRefused {
    pub item_id: String,
    pub code: String,
    pub reason: String,
}

/// The provider is unavailable: the command waits and is sent again (said once per command).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimDeliveryDelayed {
    pub item_id: String,
    pub reason: String,
}
