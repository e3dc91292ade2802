//! Requests to the legacy TCM system and its answers, keyed `tenant:order`. The order
//! processor writes commands inside its transaction (the outbox); the TCM connector sends them
//! and reports what TCM said.

use serde::{Deserialize, Serialize};

/// A request to TCM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcmCommand {
    /// Stable per order item: TCM's `X-Request-Id` comes from it.
    pub command_id: String,
    pub tenant_id: String,
    pub order_id: String,
    pub issued_at: i64,
    pub payload: TcmCommandPayload,
}

/// The commands; the variant order is the Avro union's branch order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TcmCommandPayload {
    ActivateSubscription(ActivateSubscription),
}

/// Create the customer (if new) and the subscription of one order item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivateSubscription {
    pub item_id: String,
    pub customer_id: String,
    pub plan_code: String,
    pub msisdn: String,
    /// `PSIM` or `ESIM`.
    pub sim_type: String,
    #[serde(default)]
    pub iccid: Option<String>,
    #[serde(default)]
    pub binding_end_date: Option<String>,
    #[serde(default)]
    pub shared_data_sims: Vec<String>,
    /// Sealed with the customer's data key (`pd1.…`).
    #[serde(default)]
    pub owner_name_sealed: Option<String>,
}

/// What TCM answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcmEvent {
    pub event_id: String,
    pub tenant_id: String,
    pub order_id: String,
    pub occurred_at: i64,
    /// The command answered.
    pub cause: String,
    pub payload: TcmEventPayload,
}

/// The answers; the variant order is the Avro union's branch order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TcmEventPayload {
    SubscriptionActivated(SubscriptionActivated),
    ActivationRefused(ActivationRefused),
    ActivationDelayed(ActivationDelayed),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionActivated {
    pub item_id: String,
    pub subscription_id: String,
    pub tcm_customer_id: String,
}

/// TCM refused the request itself: sending it again changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationRefused {
    pub item_id: String,
    pub code: String,
    pub reason: String,
}

/// TCM is unavailable: the command waits and is sent again (said once per command).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationDelayed {
    pub item_id: String,
    pub reason: String,
}
