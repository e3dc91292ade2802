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
    /// UK: the Porting Authorisation Code the losing provider gave.
    #[serde(default)]
    pub pac: Option<String>,
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
    /// The signed-in customer issuing the command, if any.
    #[serde(default)]
    pub customer_id: Option<String>,
    /// The caller presented this basket's guest token (checked by the ingress): what lets
    /// anyone act on a basket that has no customer yet.
    #[serde(default)]
    pub holds_guest_token: bool,
}

/// The commands; the variant order is the Avro union's branch order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BasketCommandPayload {
    CreateBasket(CreateBasket),
    AddPlanLine(AddPlanLine),
    RemoveLine(RemoveLine),
    AbandonBasket(AbandonBasket),
    UpdateLine(UpdateLine),
    ClaimBasket(ClaimBasket),
    MergeInto(MergeInto),
    AbsorbLines(AbsorbLines),
    ReturnLines(ReturnLines),
    CheckoutBasket(CheckoutBasket),
}

/// Freeze the basket (prices, campaigns, numbers) and place its order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutBasket {
    /// Where the payment page sends the shopper back to.
    #[serde(default)]
    pub return_url: Option<String>,
    /// The customer's contact and delivery details (`{"contact": …, "delivery_address": …}`
    /// as JSON), sealed (`pd1.…`) by the ingress with the customer's data key; `None`: none
    /// given.
    #[serde(default)]
    pub contact_sealed: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateBasket {
    pub channel: String,
    #[serde(default)]
    pub customer_id: Option<String>,
    #[serde(default = "consumer_segment")]
    pub segment: String,
}

fn consumer_segment() -> String {
    "consumer".to_owned()
}

/// How many of one add-on (e.g. data-sharing cards) a line gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddOnSelection {
    pub offering_id: String,
    pub quantity: i32,
    /// The SIM type of these cards (data-sharing cards are SIMs of their own); `None`: the
    /// line's.
    #[serde(default)]
    pub sim_type: Option<SimType>,
}

/// Changes a plan line; `None` fields stay as they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateLine {
    pub line_id: String,
    #[serde(default)]
    pub sim_type: Option<SimType>,
    #[serde(default)]
    pub binding_months: Option<i32>,
    #[serde(default)]
    pub add_ons: Option<Vec<AddOnSelection>>,
}

/// On login: the guest basket becomes the commanding customer's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimBasket {
    #[serde(default)]
    pub note: Option<String>,
}

/// On login: move this guest basket's lines into the customer's basket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeInto {
    pub target_basket_id: String,
}

/// Internal merge step: the lines handed over by the source basket (basket processor JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbsorbLines {
    pub source_basket_id: String,
    pub lines_json: String,
}

/// Internal merge step: the target refused; the source takes its lines back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnLines {
    pub target_basket_id: String,
    pub reason_code: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddPlanLine {
    pub line_id: String,
    pub offering_id: String,
    pub sim_type: SimType,
    pub number: NumberChoice,
    #[serde(default)]
    pub binding_months: Option<i32>,
    #[serde(default)]
    pub add_ons: Vec<AddOnSelection>,
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
    LineChanged(LineChanged),
    BasketClaimed(BasketClaimed),
    BasketMerged(BasketMerged),
    BasketExpired(BasketExpired),
    BasketCheckedOut(BasketCheckedOut),
}

/// Frozen and turned into an order (the order id is the basket id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasketCheckedOut {
    pub order_id: String,
    pub frozen_until: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineChanged {
    pub line_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasketClaimed {
    pub customer_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasketMerged {
    pub into_basket_id: String,
    pub lines: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasketExpired {
    pub lines: i32,
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

/// Where a basket is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BasketStatus {
    Active,
    Abandoned,
    Expired,
    Merged,
    /// Frozen and turned into an order; nothing changes it any more.
    CheckedOut,
}

/// A basket after its latest change, as kept in the compacted `baskets` topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasketSnapshot {
    pub tenant_id: String,
    pub basket_id: String,
    pub version: i64,
    pub status: BasketStatus,
    #[serde(default)]
    pub customer_id: Option<String>,
    pub channel: String,
    pub expires_at: i64,
    pub updated_at: i64,
    /// The basket as the storefront API shows it (JSON).
    pub document: String,
}
