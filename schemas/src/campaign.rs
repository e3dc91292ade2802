//! Campaigns: time-boxed price alterations a brand partner runs on its offerings.

use serde::{Deserialize, Serialize};

/// Whether a campaign still runs. An ended campaign stays in the topic so views and audits
/// can show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CampaignStatus {
    Active,
    Ended,
}

/// Which price components an alteration touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlterationTarget {
    OneTime,
    Recurring,
}

/// How an alteration changes a price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeKind {
    PercentOff,
    AmountOff,
    FixedPrice,
}

/// One change of a campaign: `value` is basis points for `PercentOff` (5000 = 50 %),
/// VAT-inclusive minor units otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceAlteration {
    pub target: AlterationTarget,
    pub change: ChangeKind,
    pub value: i64,
    #[serde(default)]
    pub duration_months: Option<i32>,
}

/// How the campaigns of a group compete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GroupKind {
    Exclusive,
    BestDeal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignGroup {
    pub name: String,
    pub kind: GroupKind,
}

/// What a brand partner defines about a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignDefinition {
    pub name: String,
    pub priority: i32,
    pub valid_from: i64,
    #[serde(default)]
    pub valid_until: Option<i64>,
    #[serde(default)]
    pub channels: Vec<String>,
    #[serde(default)]
    pub segments: Vec<String>,
    #[serde(default)]
    pub offering_ids: Vec<String>,
    /// An indirect binding: capped by law like a direct one.
    #[serde(default)]
    pub requires_binding_months: Option<i32>,
    #[serde(default)]
    pub forbidden_binding_months: Vec<i32>,
    pub alterations: Vec<PriceAlteration>,
    #[serde(default)]
    pub stop_after: bool,
    #[serde(default)]
    pub group: Option<CampaignGroup>,
}

/// A campaign as kept whole in the compacted `catalog.campaigns` topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    pub tenant_id: String,
    pub campaign_id: String,
    pub status: CampaignStatus,
    pub definition: CampaignDefinition,
    pub version: i64,
    pub updated_at: i64,
}

/// A brand partner's change to one campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignCommand {
    pub command_id: String,
    pub tenant_id: String,
    pub campaign_id: String,
    pub issued_at: i64,
    pub payload: CampaignCommandPayload,
}

/// The commands; the variant order is the Avro union's branch order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CampaignCommandPayload {
    UpsertCampaign(UpsertCampaign),
    EndCampaign(EndCampaign),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpsertCampaign {
    pub definition: CampaignDefinition,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndCampaign {
    #[serde(default)]
    pub reason: Option<String>,
}
