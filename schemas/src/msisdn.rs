//! Phone numbers (MSISDNs): reservation requests and their outcomes, keyed by the number.

use serde::{Deserialize, Serialize};

/// A request about one number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsisdnCommand {
    pub command_id: String,
    /// E.164; also the record key.
    pub msisdn: String,
    pub tenant_id: String,
    pub issued_at: i64,
    pub payload: MsisdnCommandPayload,
}

/// The commands; the variant order is the Avro union's branch order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MsisdnCommandPayload {
    ReserveNumber(ReserveNumber),
    ExtendReservation(ExtendReservation),
    ReleaseNumber(ReleaseNumber),
    ConfirmNumber(ConfirmNumber),
    AddToPool(AddToPool),
    TransferReservation(TransferReservation),
}

/// Makes the number available to the command's tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddToPool {
    #[serde(default)]
    pub import_id: Option<String>,
}

/// A merge moved the number's line to another basket of the same tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferReservation {
    pub from_basket_id: String,
    pub to_basket_id: String,
    pub ttl_seconds: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReserveNumber {
    pub basket_id: String,
    pub ttl_seconds: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtendReservation {
    pub basket_id: String,
    pub ttl_seconds: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseNumber {
    pub basket_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmNumber {
    pub basket_id: String,
    pub order_id: String,
}

/// Why a reservation ended without an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReleaseReason {
    Released,
    Expired,
    Abandoned,
}

/// What happened to one number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsisdnEvent {
    pub event_id: String,
    /// `None` for events raised by a timer.
    #[serde(default)]
    pub command_id: Option<String>,
    pub msisdn: String,
    pub tenant_id: String,
    pub occurred_at: i64,
    pub payload: MsisdnEventPayload,
}

/// The events; the variant order is the Avro union's branch order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MsisdnEventPayload {
    NumberReserved(NumberReserved),
    ReservationExtended(ReservationExtended),
    NumberReleased(NumberReleased),
    NumberConfirmed(NumberConfirmed),
    ReservationRejected(ReservationRejected),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberReserved {
    pub basket_id: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationExtended {
    pub basket_id: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberReleased {
    pub basket_id: String,
    pub reason: ReleaseReason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberConfirmed {
    pub basket_id: String,
    pub order_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationRejected {
    pub basket_id: String,
    pub reason_code: String,
}

/// Where a pool number is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NumberStatus {
    Available,
    Reserved,
    Assigned,
}

/// A pool number as it is now, kept in the compacted `msisdn.numbers` topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneNumber {
    pub msisdn: String,
    pub tenant_id: String,
    pub status: NumberStatus,
    #[serde(default)]
    pub basket_id: Option<String>,
    #[serde(default)]
    pub reserved_until: Option<i64>,
    #[serde(default)]
    pub order_id: Option<String>,
    pub version: i64,
    pub updated_at: i64,
}
