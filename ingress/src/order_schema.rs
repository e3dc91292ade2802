//! The order's JSON as the OpenAPI document describes it: TMF622 `ProductOrder` (v4) with the
//! platform's additions (`paymentAction`, `step`). The processors build the document
//! (`tcom_processors::domain::order_document`); these types only describe it. They refuse
//! unknown fields, so the end-to-end checkout tests, which read real orders into them, fail
//! when the document and its description drift apart.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// TMF `Money`, with the exact amount in minor units beside the decimal one.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct Money {
    /// ISO 4217.
    pub unit: String,
    pub value: f64,
    pub value_minor: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct Price {
    pub tax_included_amount: Money,
    #[serde(default)]
    pub tax_amount: Option<Money>,
}

/// A campaign that changed a price.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct PriceAlteration {
    /// The campaign's id.
    pub name: String,
    pub price_type: String,
}

/// A stretch of months at one monthly price.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct PricePhase {
    /// Months; null: for good.
    pub application_duration: Option<u32>,
    pub unit_of_measure: String,
    pub price: Price,
}

/// TMF622 `OrderPrice`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct OrderPrice {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// `oneTime` or `recurring`.
    pub price_type: String,
    #[serde(default)]
    pub recurring_charge_period: Option<String>,
    pub price: Price,
    #[serde(default)]
    pub price_alteration: Vec<PriceAlteration>,
    #[serde(default)]
    pub price_phase: Vec<PricePhase>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Characteristic {
    /// `MSISDN`, `simType`, `numberType` (`new` / `portIn`), `bindingMonths`,
    /// `currentOperator`, `currentSimIcc`, `desiredPortDate`.
    pub name: String,
    pub value: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct ProductRef {
    pub product_characteristic: Vec<Characteristic>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfferingRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct ItemRelationship {
    pub id: String,
    /// `reliesOn`: an add-on relies on its plan line.
    pub relationship_type: String,
}

/// TMF622 `ProductOrderItem`: a plan line, its add-ons as child items.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct ProductOrderItem {
    pub id: String,
    /// `add`.
    pub action: String,
    pub quantity: u32,
    /// The item's TMF622 state.
    pub state: String,
    pub product_offering: OfferingRef,
    pub product: ProductRef,
    pub item_price: Vec<OrderPrice>,
    pub product_order_item_relationship: Vec<ItemRelationship>,
    #[schema(no_recursion)]
    pub product_order_item: Vec<ProductOrderItem>,
    /// The item's SIMs once fulfilment has them (the line's first, then its data-sharing
    /// cards'); empty before.
    #[serde(default)]
    pub sim: Vec<OrderSim>,
    /// A pSIM item's shipment, once created.
    #[serde(default)]
    pub shipment: Option<OrderShipment>,
}

/// A SIM bound to an order item.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct OrderSim {
    /// Its position on the item (the `{index}` of its eSIM endpoints).
    pub index: u32,
    pub iccid: String,
    /// `line` or `dataSharing`.
    pub role: String,
    /// eSIM: where the activation code is (the customer's own orders only).
    #[serde(default)]
    pub activation_code: Option<ActivationCodeLinks>,
    /// eSIM whose profile needs a confirmation code: where it is (apart from the QR code).
    #[serde(default)]
    pub confirmation_code: Option<Link>,
}

/// The eSIM activation code's renderings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivationCodeLinks {
    /// QR code as PNG.
    pub png: String,
    /// QR code as SVG.
    pub svg: String,
    /// The code as text (JSON), for manual entry.
    pub text: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub href: String,
}

/// A pSIM shipment as the logistics house last reported it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct OrderShipment {
    pub id: String,
    pub tracking_number: String,
    /// `created`, `shipped`, `delivered` or `returned`.
    pub status: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelatedChannel {
    pub id: String,
    pub name: String,
    pub role: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelatedParty {
    /// The customer id.
    pub id: String,
    pub role: String,
    #[serde(rename = "@referredType")]
    pub referred_type: String,
}

/// TMF622 `PaymentRef`, with what the platform knows of the payment.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRef {
    /// The provider's payment id (Stripe `pi_…`, Adyen pspReference or session id).
    pub id: Option<String>,
    #[serde(rename = "@referredType")]
    pub referred_type: String,
    /// `stripe` or `adyen`.
    pub name: String,
    pub attempt: i32,
    /// `AWAITING_SHOPPER`, `REQUIRES_ACTION`, `PROCESSING`, `AUTHORIZED`, `CAPTURED`,
    /// `REFUSED`, `CANCELED`, `REFUNDED`; null before the provider answered.
    pub status: Option<String>,
    pub captured_amount: Money,
    /// The saved payment method for the monthly charges.
    pub payment_method_ref: Option<String>,
}

/// How the shopper pays, while the order waits for it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct PaymentAction {
    pub provider: String,
    /// For the provider's browser SDK (Stripe.js `confirmPayment`; Adyen Drop-in
    /// `sessionData`).
    pub client_secret: Option<String>,
    /// Where to send the shopper: Adyen's hosted page, or a 3-D Secure challenge.
    pub redirect_url: Option<String>,
    /// Why the last attempt was refused; the shopper may try again until the order expires.
    pub last_refusal: Option<String>,
}

/// One of the order's steps.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderStep {
    /// `payment`, `identity`, `number_confirmation`, `capture`.
    pub name: String,
    /// `waiting`, `in_progress`, `done`, `failed`, `skipped`.
    pub state: String,
    pub detail: Option<String>,
}

/// A TMF622 product order: what a checkout became.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct ProductOrder {
    /// The order's id: the id of the basket it came from.
    pub id: String,
    pub href: String,
    #[serde(rename = "@type")]
    pub kind: String,
    /// The basket's id.
    pub external_id: String,
    pub category: String,
    /// RFC 3339.
    pub order_date: String,
    pub last_update: String,
    /// The end of the freeze window: unpaid by then, the order fails.
    pub requested_completion_date: String,
    pub completion_date: Option<String>,
    pub cancellation_date: Option<String>,
    pub cancellation_reason: Option<String>,
    /// `acknowledged`, `pending`, `inProgress`, `completed`, `failed`, `partial`, `held`,
    /// `pendingCancellation`, `cancelled`, `assessingCancellation`, `rejected`.
    pub state: String,
    /// Why the order failed or is held.
    pub state_reason: Option<String>,
    /// The version to pass as `?min_version=` for read-your-writes.
    pub version: i64,
    pub channel: Vec<RelatedChannel>,
    pub related_party: Vec<RelatedParty>,
    pub product_order_item: Vec<ProductOrderItem>,
    /// Due now (one-time and first month) and monthly.
    pub order_total_price: Vec<OrderPrice>,
    pub payment: Vec<PaymentRef>,
    /// Null once the order no longer waits for the shopper's payment.
    pub payment_action: Option<PaymentAction>,
    pub step: Vec<OrderStep>,
    /// The subscription owner's verification, when the shop requires one.
    #[serde(default)]
    pub owner: Option<OrderOwner>,
    /// Whether the checkout gave contact and delivery details; null when it gave none.
    #[serde(default)]
    pub contact: Option<OrderContact>,
}

/// The checkout's contact and delivery details. Personal data is never shown here: the
/// details travel and rest only sealed with the customer's data key, and the customer's data
/// export (`GET /v1/storefront/customers/me/data`, `contacts`) shows them decrypted.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderContact {
    /// The checkout carried a `contact` or a `delivery_address` (or both).
    pub provided: bool,
}

/// The owner verification of an order. Personal data is never shown here (the customer's
/// data export has it); an erased customer shows as `erased`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct OrderOwner {
    pub verified: bool,
    /// The level of assurance the shop requires: `low`, `substantial`, `high`.
    pub required_assurance: String,
    pub min_age: u32,
    /// The verified sign-in's level of assurance.
    #[serde(default)]
    pub assurance: Option<String>,
    #[serde(default)]
    pub identity_provider: Option<String>,
    #[serde(default)]
    pub verified_at: Option<String>,
    /// The customer's personal data was erased.
    #[serde(default)]
    pub erased: bool,
}

/// A page of orders, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderList {
    pub items: Vec<ProductOrder>,
}
