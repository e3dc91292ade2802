//! Payment providers: a client and a simulator per provider, and what they have in common.
//!
//! The payments connector ([`connector`]) turns the order processor's payment commands into
//! provider calls and the providers' answers (and webhooks) into `payment.events`. Each client
//! speaks its provider's real HTTP API; each simulator speaks the same API for tests and the
//! local run (`tcom stripe-sim`, `tcom adyen-sim`). Card data never reaches the platform: the
//! shopper pays on the provider's page (or with the provider's browser SDK), the platform only
//! sees references.
//!
//! Every call that changes something carries an `Idempotency-Key` derived from the order, the
//! attempt and the operation, so a connector that crashes after the provider answered and
//! before it recorded the answer makes the same call again and gets the same answer: never a
//! second charge.

pub mod adyen;
pub mod adyen_sim;
pub mod connector;
pub mod stripe;
pub mod stripe_sim;

use serde::{Deserialize, Serialize};

/// What the platform asks a provider to charge: one attempt at paying one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRequest {
    pub tenant_id: String,
    pub order_id: String,
    /// 1 for the first attempt; a new attempt after a refusal gets the next number.
    pub attempt: i32,
    /// In the currency's minor unit (øre, cents), VAT included.
    pub amount_minor: i64,
    /// ISO 4217, upper case (`DKK`).
    pub currency: String,
    /// The platform's customer id (the provider's customer is looked up or created from it).
    pub customer_ref: String,
    /// Shown to the shopper and on the statement.
    pub description: String,
    /// Where the provider's page sends the shopper back to after paying or a 3-D Secure step.
    pub return_url: String,
    /// Keep the payment method for the monthly subscription charges (Stripe
    /// `setup_future_usage=off_session`, Adyen `storePaymentMethod` + `Subscription`).
    pub save_for_subscription: bool,
    /// After this instant (ms since the epoch) the shopper may no longer pay (the end of the
    /// checkout's freeze window): Adyen's session `expiresAt`; Stripe intents are cancelled
    /// by the order instead.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

/// Where a payment stands at the provider, in the platform's words. The order is the rank
/// used against reordered webhooks: a payment never moves to a lower rank, except that a
/// refused attempt may be followed by a new attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Created; waiting for the shopper to pay (Stripe `requires_payment_method` /
    /// `requires_confirmation`; Adyen session created).
    AwaitingShopper,
    /// The shopper must complete a step, e.g. a 3-D Secure challenge (Stripe
    /// `requires_action`; Adyen `RedirectShopper` / `ChallengeShopper`).
    RequiresAction,
    /// The provider is processing (Stripe `processing`; Adyen `Pending` / `Received`).
    Processing,
    /// Authorised, not captured (Stripe `requires_capture`; Adyen `AUTHORISATION` success).
    Authorized,
    /// Captured (Stripe `succeeded`; Adyen `CAPTURE` success).
    Captured,
    /// The provider or the bank refused (Stripe `payment_failed` / back to
    /// `requires_payment_method` with `last_payment_error`; Adyen `Refused`, `AUTHORISATION`
    /// with `success=false`).
    Refused,
    /// Voided before capture (Stripe `canceled`; Adyen `CANCELLATION`).
    Canceled,
    /// Captured, then refunded (Stripe refund `succeeded`; Adyen `REFUND`).
    Refunded,
}

/// A payment as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderPayment {
    /// The provider's id: Stripe `pi_…`; Adyen the session id until authorised, then the
    /// payment's `pspReference`.
    pub reference: String,
    pub status: PaymentStatus,
    pub amount_minor: i64,
    /// ISO 4217, upper case.
    pub currency: String,
    /// What the storefront's provider SDK needs (Stripe `client_secret`; Adyen `sessionData`).
    pub client_secret: Option<String>,
    /// Where to send the shopper (a hosted payment page, or a 3-D Secure challenge).
    pub redirect_url: Option<String>,
    /// The saved payment method for subscription charges (Stripe `pm_…`; Adyen
    /// `recurringDetailReference` / stored payment method id), once known.
    pub payment_method_ref: Option<String>,
    /// Why the provider refused, when it did.
    pub refusal_reason: Option<String>,
}

/// Why a provider call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Unreachable, timed out, 5xx, 429: retry later with the same idempotency key.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request itself (4xx other than auth): retrying it unchanged
    /// cannot help.
    #[error("payment provider refused the request ({code}): {message}")]
    Rejected { code: String, message: String },
    /// The credentials are wrong (401/403): an operator must fix the tenant's settings.
    #[error("payment provider credentials refused: {0}")]
    Unauthorized(String),
}

impl ProviderError {
    /// Whether the same call may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}
