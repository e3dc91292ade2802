//! Payments: what the order processor asks the payments connector to do at the tenant's
//! provider (`payment.commands`) and what the provider reported (`payment.events`), both
//! keyed `tenant:order`. Secrets travel as references only.

use serde::{Deserialize, Serialize};

/// A request to the tenant's payment provider about one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentCommand {
    pub command_id: String,
    pub tenant_id: String,
    pub order_id: String,
    /// The payment attempt; outbound idempotency keys derive from order, attempt and operation.
    pub attempt: i32,
    pub issued_at: i64,
    /// `stripe` or `adyen`.
    pub provider: String,
    /// The tenant's account at the provider (Adyen merchant account; informational for Stripe).
    pub account_ref: String,
    /// A reference to the API key (never the key).
    pub secret_ref: String,
    pub payload: PaymentCommandPayload,
}

/// The commands; the variant order is the Avro union's branch order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentCommandPayload {
    CreatePayment(CreatePayment),
    CapturePayment(CapturePayment),
    CancelPayment(CancelPayment),
    RefundPayment(RefundPayment),
    SyncPayment(SyncPayment),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatePayment {
    pub amount_minor: i64,
    pub currency: String,
    pub customer_id: String,
    pub description: String,
    pub return_url: String,
    pub save_for_subscription: bool,
    /// The end of the checkout's freeze window: the shopper cannot pay after it.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturePayment {
    pub reference: String,
    pub amount_minor: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelPayment {
    pub reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundPayment {
    pub reference: String,
    pub amount_minor: i64,
    pub currency: String,
}

/// A verified webhook said something changed: learn the payment's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPayment {
    /// The provider's event id (Stripe `evt_…`; Adyen `pspReference:eventCode`).
    pub provider_event_id: String,
    /// The payment to read again from the provider (Stripe), when it can be read.
    #[serde(default)]
    pub reference: Option<String>,
    /// The provider's notification itself, for providers whose payments cannot be read
    /// back (Adyen): the verified JSON of one notification item.
    #[serde(default)]
    pub notification: Option<String>,
}

/// Where a payment stands, as the payments connector learned it from the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentState {
    AwaitingShopper,
    RequiresAction,
    Processing,
    Authorized,
    Captured,
    Refused,
    Canceled,
    Refunded,
    /// The provider refused the request itself (bad settings, a rejected parameter): the
    /// command can never succeed as it is.
    Error,
}

/// What the provider reported about one order's payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentEvent {
    pub event_id: String,
    pub tenant_id: String,
    pub order_id: String,
    pub attempt: i32,
    pub occurred_at: i64,
    pub provider: String,
    /// The provider's payment id (empty when the provider never created one).
    pub reference: String,
    pub state: PaymentState,
    pub amount_minor: i64,
    pub currency: String,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub redirect_url: Option<String>,
    /// The saved payment method for the monthly charges.
    #[serde(default)]
    pub payment_method_ref: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    /// The payment command (or webhook event) this answers.
    pub cause: String,
}
