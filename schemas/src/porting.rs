//! Number porting requests and what came of them, keyed `tenant:order`: a port-in line's
//! number brought from another operator through the clearing house (Denmark: OCH, with the
//! current SIM's ICC and the owner; United Kingdom: a PAC). The order processor writes
//! commands inside its transaction (the outbox); the porting connector carries them out and
//! reports on `porting.events`, including the clearing house's later answers, which arrive as
//! verified webhooks and are read back from the clearing house.

use serde::{Deserialize, Serialize};

/// A porting request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortingCommand {
    /// Stable per order item and attempt: the outbound idempotency key comes from it.
    pub command_id: String,
    pub tenant_id: String,
    pub order_id: String,
    pub issued_at: i64,
    pub payload: PortingCommandPayload,
}

/// The commands; the variant order is the Avro union's branch order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PortingCommandPayload {
    SubmitPort(SubmitPort),
    CheckPort(CheckPort),
}

/// Submit (or, after the customer corrected it, submit again) the port of one order item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitPort {
    pub item_id: String,
    pub customer_id: String,
    /// 1 for the first submission, one more per correction.
    pub attempt: i32,
    /// The tenant's country (ISO 3166-1 alpha-2): `DK` ports through OCH, `GB` with a PAC.
    pub country: String,
    /// E.164.
    pub msisdn: String,
    pub current_operator: String,
    /// The ICCID of the SIM at the current operator (Denmark).
    #[serde(default)]
    pub sim_icc: Option<String>,
    /// The Porting Authorisation Code (United Kingdom).
    #[serde(default)]
    pub pac: Option<String>,
    /// The owner's CPR number sealed with the customer's data key, when the shop verified it.
    #[serde(default)]
    pub owner_cpr_sealed: Option<String>,
    /// `YYYY-MM-DD`, a working day the rules allow.
    pub requested_date: String,
}

/// The clearing house said (in a verified webhook) that a port moved on: read it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckPort {
    pub item_id: String,
    pub porting_id: String,
}

/// What the porting connector reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortingEvent {
    pub event_id: String,
    pub tenant_id: String,
    pub order_id: String,
    pub occurred_at: i64,
    /// The command answered.
    pub cause: String,
    pub payload: PortingEventPayload,
}

/// The reports; the variant order is the Avro union's branch order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PortingEventPayload {
    PortSubmitted(PortSubmitted),
    PortAccepted(PortAccepted),
    PortRejected(PortRejected),
    PortCompleted(PortCompleted),
    PortingDelayed(PortingDelayed),
}

/// The clearing house took the request; the losing operator answers within 48 hours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSubmitted {
    pub item_id: String,
    pub attempt: i32,
    pub porting_id: String,
    /// When the losing operator must have answered (ms since the epoch).
    pub answer_due_at: i64,
}

/// The losing operator agreed: the number moves on `port_date` at `executes_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortAccepted {
    pub item_id: String,
    pub porting_id: String,
    /// `YYYY-MM-DD`.
    pub port_date: String,
    /// ms since the epoch (02:00 Danish time on the port date in Denmark).
    pub executes_at: i64,
}

/// The port was refused, with the clearing house's reason code (`wrong_icc`,
/// `owner_mismatch`, `number_not_with_operator`, `pac_invalid`, `pac_expired`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRejected {
    pub item_id: String,
    /// Empty when the request itself was refused before the clearing house gave it an id.
    pub porting_id: String,
    pub code: String,
    pub reason: String,
}

/// The number is ours: it moved on its port date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortCompleted {
    pub item_id: String,
    pub porting_id: String,
    pub msisdn: String,
    pub completed_at: i64,
}

/// The clearing house is unavailable: the command waits and is sent again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortingDelayed {
    pub item_id: String,
    pub reason: String,
}
