//! The catalog: product offerings (TMF620 names) and the commands that change them.

use serde::{Deserialize, Serialize};

/// TMF620 lifecycle of an offering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LifecycleStatus {
    Draft,
    Active,
    Retired,
}

/// One-time or recurring (monthly) price component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PriceType {
    OneTime,
    Recurring,
}

/// Physical or embedded SIM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SimType {
    Psim,
    Esim,
}

/// A price component of an offering, VAT-inclusive, in minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferingPrice {
    pub name: String,
    pub price_type: PriceType,
    pub amount_minor: i64,
    pub currency: String,
    #[serde(default)]
    pub recurring_period_months: Option<i32>,
}

/// An add-on that may be attached to an offering (e.g. data-sharing cards), with limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddOnRelation {
    pub offering_id: String,
    pub min: i32,
    pub max: i32,
}

/// What a brand partner defines about an offering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferingDefinition {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub specification_id: String,
    pub prices: Vec<OfferingPrice>,
    #[serde(default)]
    pub binding_months: Vec<i32>,
    pub sim_types: Vec<SimType>,
    #[serde(default)]
    pub add_ons: Vec<AddOnRelation>,
    #[serde(default)]
    pub kind: OfferingKind,
    /// Empty: every segment of the tenant.
    #[serde(default)]
    pub eligible_segments: Vec<String>,
    #[serde(default)]
    pub placements: Vec<ChannelPlacement>,
}

/// Whether an offering is sold on its own or only with a plan that lists it as an add-on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OfferingKind {
    #[default]
    Plan,
    AddOn,
}

/// How an offering appears in one sales channel; no placement, not sold there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelPlacement {
    pub channel: String,
    #[serde(default = "visible_by_default")]
    pub visible: bool,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub sort_order: i32,
    /// Replaces the recurring list price in this channel.
    #[serde(default)]
    pub monthly_price_minor: Option<i64>,
}

fn visible_by_default() -> bool {
    true
}

/// An offering as kept whole in the compacted `catalog.offerings` topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductOffering {
    pub tenant_id: String,
    pub offering_id: String,
    pub lifecycle_status: LifecycleStatus,
    pub definition: OfferingDefinition,
    pub version: i64,
    pub updated_at: i64,
}

/// A brand partner's change to one offering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogCommand {
    pub command_id: String,
    pub tenant_id: String,
    pub offering_id: String,
    pub issued_at: i64,
    pub payload: CatalogCommandPayload,
}

/// The commands; the variant order is the Avro union's branch order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogCommandPayload {
    UpsertOffering(UpsertOffering),
    ActivateOffering(ActivateOffering),
    RetireOffering(RetireOffering),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpsertOffering {
    pub definition: OfferingDefinition,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivateOffering {
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetireOffering {
    #[serde(default)]
    pub reason: Option<String>,
}
