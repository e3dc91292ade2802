//! The catalog processor: brand partners' offerings and campaigns, validated against the
//! tenant's settings and the rest of its catalog, published whole to the compacted
//! `catalog.offerings` and `catalog.campaigns` topics.
//!
//! Both command topics are keyed by tenant id and co-partitioned, so one task sees all of a
//! tenant's catalog changes in order: a campaign naming an offering, or a plan naming an
//! add-on, is checked against the catalog as it is at that point, never a stale copy.

use std::sync::Arc;

use tcom_schemas::campaign::{Campaign, CampaignCommand, CampaignCommandPayload, CampaignStatus};
use tcom_schemas::catalog::{
    CatalogCommand, CatalogCommandPayload, LifecycleStatus, ProductOffering,
};
use tcom_schemas::tenant::{Tenant, TenantStatus};
use tcom_schemas::topics;
use tcom_state::global::GlobalTableSpec;
use tcom_state::{Context, Output, ProcessError, Processor, ProcessorFactory, Record};

use crate::codec::BlockingCodec;
use crate::domain::catalog_rules::{KnownOffering, validate_campaign, validate_offering};
use crate::json_store::{load, save};
use crate::outcome::{Outcome, Refusal};

/// Names the consumer group, changelogs and state folder.
pub const APPLICATION_ID: &str = "tcom-catalog";
/// `tenant:offering` → offering (JSON).
pub const OFFERINGS_STORE: &str = "offerings";
/// `tenant:campaign` → campaign (JSON).
pub const CAMPAIGNS_STORE: &str = "campaigns";
/// The global table of tenants this processor reads.
pub const TENANTS_TABLE: &str = "tenants";

/// The global tables the catalog processor needs.
pub fn global_tables() -> Vec<GlobalTableSpec> {
    vec![GlobalTableSpec {
        name: TENANTS_TABLE.to_owned(),
        topic: topics::TENANTS.to_owned(),
    }]
}

/// Creates the processor of each task.
pub fn factory(codec: BlockingCodec) -> ProcessorFactory {
    let codec = Arc::new(codec);
    Arc::new(move |_partition| {
        Box::new(CatalogProcessor {
            codec: codec.clone(),
        })
    })
}

struct CatalogProcessor {
    codec: Arc<BlockingCodec>,
}

/// The record key of a tenant's entity.
pub fn entity_key(tenant_id: &str, entity_id: &str) -> String {
    format!("{tenant_id}:{entity_id}")
}

impl Processor for CatalogProcessor {
    fn process(&mut self, ctx: &mut Context<'_>, record: &Record<'_>) -> Result<(), ProcessError> {
        let bytes = record
            .value
            .ok_or_else(|| ProcessError::Permanent("a catalog command without a value".into()))?;
        let outcome = if record.topic == topics::CAMPAIGN_COMMANDS {
            let command: CampaignCommand = self.codec.decode(bytes)?;
            match self.tenant(ctx, &command.tenant_id)? {
                Err(refusal) => refusal,
                Ok(tenant) => match decide_campaign(ctx, &tenant, &command, record.timestamp_ms)? {
                    Ok(campaign) => {
                        let key = entity_key(&campaign.tenant_id, &campaign.campaign_id);
                        ctx.emit(Output::new(
                            topics::CATALOG_CAMPAIGNS,
                            key,
                            self.codec.encode(&campaign)?,
                        ));
                        Outcome::accepted(campaign.version, &campaign)
                    }
                    Err(refusal) => refusal,
                },
            }
        } else {
            let command: CatalogCommand = self.codec.decode(bytes)?;
            match self.tenant(ctx, &command.tenant_id)? {
                Err(refusal) => refusal,
                Ok(tenant) => match decide_offering(ctx, &tenant, &command, record.timestamp_ms)? {
                    Ok(offering) => {
                        let key = entity_key(&offering.tenant_id, &offering.offering_id);
                        ctx.emit(Output::new(
                            topics::CATALOG_OFFERINGS,
                            key,
                            self.codec.encode(&offering)?,
                        ));
                        Outcome::accepted(offering.version, &offering)
                    }
                    Err(refusal) => refusal,
                },
            }
        };
        ctx.reply(outcome.to_bytes());
        Ok(())
    }
}

impl CatalogProcessor {
    /// The tenant, if it exists and may change its catalog.
    fn tenant(
        &self,
        ctx: &Context<'_>,
        tenant_id: &str,
    ) -> Result<Result<Tenant, Outcome>, ProcessError> {
        let Some(bytes) = ctx.global(TENANTS_TABLE, tenant_id.as_bytes()) else {
            return Ok(Err(Outcome::rejected(
                Refusal::NotFound,
                "unknown_tenant",
                format!("no tenant {tenant_id}"),
            )));
        };
        let tenant: Tenant = self.codec.decode(&bytes)?;
        if tenant.status == TenantStatus::Suspended {
            return Ok(Err(Outcome::rejected(
                Refusal::Conflict,
                "tenant_suspended",
                format!("tenant {tenant_id} is suspended"),
            )));
        }
        Ok(Ok(tenant))
    }
}

fn known_offerings<'a>(
    ctx: &'a Context<'_>,
    tenant_id: &'a str,
) -> impl Fn(&str) -> Option<KnownOffering> + 'a {
    move |id| {
        load::<ProductOffering>(ctx, OFFERINGS_STORE, &entity_key(tenant_id, id))
            .ok()
            .flatten()
            .filter(|o| o.lifecycle_status != LifecycleStatus::Retired)
            .map(|o| KnownOffering {
                kind: o.definition.kind,
            })
    }
}

fn decide_offering(
    ctx: &mut Context<'_>,
    tenant: &Tenant,
    command: &CatalogCommand,
    now: i64,
) -> Result<Result<ProductOffering, Outcome>, ProcessError> {
    let key = entity_key(&tenant.tenant_id, &command.offering_id);
    let current: Option<ProductOffering> = load(ctx, OFFERINGS_STORE, &key)?;
    let not_found = || {
        Outcome::rejected(
            Refusal::NotFound,
            "unknown_offering",
            format!("no offering {}", command.offering_id),
        )
    };
    let retired = || {
        Outcome::rejected(
            Refusal::Conflict,
            "offering_retired",
            format!("offering {} is retired", command.offering_id),
        )
    };
    let next = match &command.payload {
        CatalogCommandPayload::UpsertOffering(upsert) => {
            if current
                .as_ref()
                .is_some_and(|o| o.lifecycle_status == LifecycleStatus::Retired)
            {
                return Ok(Err(retired()));
            }
            let violations = validate_offering(
                &command.offering_id,
                &upsert.definition,
                &tenant.settings,
                &known_offerings(ctx, &tenant.tenant_id),
            );
            if let Some(outcome) = Outcome::violated(Refusal::Invalid, violations) {
                return Ok(Err(outcome));
            }
            ProductOffering {
                tenant_id: tenant.tenant_id.clone(),
                offering_id: command.offering_id.clone(),
                lifecycle_status: current
                    .as_ref()
                    .map_or(LifecycleStatus::Draft, |o| o.lifecycle_status),
                definition: upsert.definition.clone(),
                version: current.as_ref().map_or(1, |o| o.version + 1),
                updated_at: now,
            }
        }
        CatalogCommandPayload::ActivateOffering(_) => {
            let Some(mut offering) = current else {
                return Ok(Err(not_found()));
            };
            if offering.lifecycle_status == LifecycleStatus::Retired {
                return Ok(Err(retired()));
            }
            // The tenant's caps or channels may have changed since the offering was saved.
            let violations = validate_offering(
                &offering.offering_id,
                &offering.definition,
                &tenant.settings,
                &known_offerings(ctx, &tenant.tenant_id),
            );
            if let Some(outcome) = Outcome::violated(Refusal::Invalid, violations) {
                return Ok(Err(outcome));
            }
            offering.lifecycle_status = LifecycleStatus::Active;
            offering.version += 1;
            offering.updated_at = now;
            offering
        }
        CatalogCommandPayload::RetireOffering(_) => {
            let Some(mut offering) = current else {
                return Ok(Err(not_found()));
            };
            offering.lifecycle_status = LifecycleStatus::Retired;
            offering.version += 1;
            offering.updated_at = now;
            offering
        }
    };
    save(ctx, OFFERINGS_STORE, &key, &next)?;
    Ok(Ok(next))
}

fn decide_campaign(
    ctx: &mut Context<'_>,
    tenant: &Tenant,
    command: &CampaignCommand,
    now: i64,
) -> Result<Result<Campaign, Outcome>, ProcessError> {
    let key = entity_key(&tenant.tenant_id, &command.campaign_id);
    let current: Option<Campaign> = load(ctx, CAMPAIGNS_STORE, &key)?;
    let next = match &command.payload {
        CampaignCommandPayload::UpsertCampaign(upsert) => {
            if current
                .as_ref()
                .is_some_and(|c| c.status == CampaignStatus::Ended)
            {
                return Ok(Err(Outcome::rejected(
                    Refusal::Conflict,
                    "campaign_ended",
                    format!("campaign {} has ended", command.campaign_id),
                )));
            }
            let violations = validate_campaign(
                &command.campaign_id,
                &upsert.definition,
                &tenant.settings,
                &known_offerings(ctx, &tenant.tenant_id),
            );
            if let Some(outcome) = Outcome::violated(Refusal::Invalid, violations) {
                return Ok(Err(outcome));
            }
            Campaign {
                tenant_id: tenant.tenant_id.clone(),
                campaign_id: command.campaign_id.clone(),
                status: CampaignStatus::Active,
                definition: upsert.definition.clone(),
                version: current.as_ref().map_or(1, |c| c.version + 1),
                updated_at: now,
            }
        }
        CampaignCommandPayload::EndCampaign(_) => {
            let Some(mut campaign) = current else {
                return Ok(Err(Outcome::rejected(
                    Refusal::NotFound,
                    "unknown_campaign",
                    format!("no campaign {}", command.campaign_id),
                )));
            };
            campaign.status = CampaignStatus::Ended;
            campaign.version += 1;
            campaign.updated_at = now;
            campaign
        }
    };
    save(ctx, CAMPAIGNS_STORE, &key, &next)?;
    Ok(Ok(next))
}
