//! Baskets: what a shopper is configuring.

use serde::{Deserialize, Serialize};

pub use crate::catalog::SimType;

/// Keep a number the shopper picked from the pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewNumber {
    /// E.164.
    pub msisdn: String,
}

/// Bring a number from another operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortIn {
    pub msisdn: String,
    pub current_operator: String,
    #[serde(default)]
    pub sim_icc: Option<String>,
    /// Days since the Unix epoch.
    #[serde(default)]
    pub desired_port_date: Option<i32>,
}

/// How the line gets its number; the variant order is the Avro union's branch order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NumberChoice {
    NewNumber(NewNumber),
    PortIn(PortIn),
}

/// A shopper's change to one basket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasketCommand {
    pub command_id: String,
    pub tenant_id: String,
    pub basket_id: String,
    pub issued_at: i64,
    pub payload: BasketCommandPayload,
}

/// The commands; the variant order is the Avro union's branch order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BasketCommandPayload {
    CreateBasket(CreateBasket),
    AddPlanLine(AddPlanLine),
    RemoveLine(RemoveLine),
    AbandonBasket(AbandonBasket),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateBasket {
    pub channel: String,
    #[serde(default)]
    pub customer_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddPlanLine {
    pub line_id: String,
    pub offering_id: String,
    pub sim_type: SimType,
    pub number: NumberChoice,
    #[serde(default)]
    pub binding_months: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveLine {
    pub line_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbandonBasket {
    #[serde(default)]
    pub reason: Option<String>,
}

/// What happened to one basket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasketEvent {
    pub event_id: String,
    pub command_id: String,
    pub tenant_id: String,
    pub basket_id: String,
    pub version: i64,
    pub occurred_at: i64,
    pub payload: BasketEventPayload,
}

/// The events; the variant order is the Avro union's branch order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BasketEventPayload {
    BasketCreated(BasketCreated),
    PlanLineAdded(PlanLineAdded),
    LineRemoved(LineRemoved),
    BasketAbandoned(BasketAbandoned),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasketCreated {
    pub channel: String,
    #[serde(default)]
    pub customer_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanLineAdded {
    pub line_id: String,
    pub offering_id: String,
    pub sim_type: SimType,
    pub number: NumberChoice,
    #[serde(default)]
    pub binding_months: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineRemoved {
    pub line_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasketAbandoned {
    #[serde(default)]
    pub reason: Option<String>,
}
