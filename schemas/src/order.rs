//! Orders: a checked-out basket on its way to a paid, provisioned subscription (TMF622
//! product order), keyed `tenant:order`. An order's id is the id of the basket it came from:
//! a basket is checked out once, so retried checkouts meet the same order, and the number
//! events of that basket (`msisdn.events`, keyed `tenant:basket`) reach the order's task.

use serde::{Deserialize, Serialize};

/// TMF622 `ProductOrderStateType`, spelled as TMF622 spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OrderState {
    Acknowledged,
    Rejected,
    Pending,
    Held,
    InProgress,
    Cancelled,
    Completed,
    Failed,
    Partial,
    AssessingCancellation,
    PendingCancellation,
}

impl OrderState {
    /// Nothing changes an order in a final state any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Rejected | Self::Cancelled | Self::Completed | Self::Failed | Self::Partial
        )
    }

    /// TMF622's spelling (`inProgress`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Acknowledged => "acknowledged",
            Self::Rejected => "rejected",
            Self::Pending => "pending",
            Self::Held => "held",
            Self::InProgress => "inProgress",
            Self::Cancelled => "cancelled",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Partial => "partial",
            Self::AssessingCancellation => "assessingCancellation",
            Self::PendingCancellation => "pendingCancellation",
        }
    }
}

/// A request about one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCommand {
    pub command_id: String,
    pub tenant_id: String,
    pub order_id: String,
    pub issued_at: i64,
    /// The signed-in customer issuing the command (checked against the order's owner).
    #[serde(default)]
    pub customer_id: Option<String>,
    pub payload: OrderCommandPayload,
}

/// The commands; the variant order is the Avro union's branch order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderCommandPayload {
    PlaceOrder(PlaceOrder),
    CancelOrder(CancelOrder),
    VerifyOwner(VerifyOwner),
    CorrectPortIn(CorrectPortIn),
}

/// Sent by the basket processor when a basket is checked out: the frozen basket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceOrder {
    pub basket_id: String,
    pub basket_version: i64,
    /// The basket as it was frozen (the basket processor's JSON document): lines, prices,
    /// campaigns and totals the customer pays.
    pub basket_document: String,
    /// Prices hold and numbers are held until then; an order not paid by then fails.
    pub frozen_until: i64,
    /// Where the payment page sends the shopper back to.
    #[serde(default)]
    pub return_url: Option<String>,
    /// The customer's contact and delivery details as the checkout gave them, sealed
    /// (`pd1.…`) with the customer's data key; `None`: none given.
    #[serde(default)]
    pub contact_sealed: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelOrder {
    #[serde(default)]
    pub reason: Option<String>,
}

/// The subscription owner's identity as the tenant's broker confirmed it (sent by the
/// ingress after a CPR match). Personal data travels only sealed (`pd1.…`) with the
/// customer's data key, so erasing the customer makes every copy unreadable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyOwner {
    /// NSIS level of assurance of the sign-in: `low`, `substantial`, `high`.
    pub assurance: String,
    /// At least the shop's minimum age on the order date.
    pub of_age: bool,
    #[serde(default)]
    pub identity_provider: Option<String>,
    #[serde(default)]
    pub cpr_sealed: Option<String>,
    #[serde(default)]
    pub name_sealed: Option<String>,
    /// Why the owner does not meet the shop's requirements (`owner_under_age`, …).
    #[serde(default)]
    pub refusal: Option<String>,
}

/// The customer corrects a port-in the clearing house rejected; `None` fields stay as they
/// were. The order submits the port again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorrectPortIn {
    pub item_id: String,
    #[serde(default)]
    pub current_operator: Option<String>,
    #[serde(default)]
    pub sim_icc: Option<String>,
    #[serde(default)]
    pub pac: Option<String>,
    /// Days since the Unix epoch.
    #[serde(default)]
    pub desired_port_date: Option<i32>,
}

/// What happened to one order (`order.events`, for analytics and other services).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEvent {
    pub event_id: String,
    pub tenant_id: String,
    pub order_id: String,
    /// The order's version after the change.
    pub version: i64,
    pub occurred_at: i64,
    /// The id of the record (command, payment event, number event, timer) that caused it.
    pub cause: String,
    pub payload: OrderEventPayload,
}

/// The events; the variant order is the Avro union's branch order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderEventPayload {
    OrderStateChanged(OrderStateChanged),
    OrderItemStateChanged(OrderItemStateChanged),
    OrderStepChanged(OrderStepChanged),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderStateChanged {
    #[serde(default)]
    pub from: Option<OrderState>,
    pub to: OrderState,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItemStateChanged {
    pub item_id: String,
    #[serde(default)]
    pub from: Option<OrderState>,
    pub to: OrderState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderStepChanged {
    /// `payment`, `number_confirmation`, `capture` (identity, porting, SIM, eSIM and TCM
    /// activation come with the later steps).
    pub step: String,
    /// `waiting`, `in_progress`, `done`, `failed`, `skipped`.
    pub state: String,
    #[serde(default)]
    pub detail: Option<String>,
}

/// An order after its latest change, as kept in the compacted `orders` topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSnapshot {
    pub tenant_id: String,
    pub order_id: String,
    pub version: i64,
    pub state: OrderState,
    #[serde(default)]
    pub customer_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The order as the APIs show it (TMF622-shaped JSON).
    pub document: String,
}
