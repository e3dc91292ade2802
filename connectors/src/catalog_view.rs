//! Writes offerings (with their channel placements) and campaigns into their views, under the
//! tenant's RLS scope. Older versions never overwrite newer ones.

use sqlx::PgPool;
use tcom_schemas::campaign::{Campaign, CampaignStatus};
use tcom_schemas::catalog::{LifecycleStatus, OfferingKind, ProductOffering};

use crate::postgres::begin_for_tenant;

fn lifecycle(status: LifecycleStatus) -> &'static str {
    match status {
        LifecycleStatus::Draft => "DRAFT",
        LifecycleStatus::Active => "ACTIVE",
        LifecycleStatus::Retired => "RETIRED",
    }
}

/// Upserts an offering and replaces its placements, or removes it for a tombstone.
///
/// # Errors
/// The database refused the write.
pub async fn upsert_offering(
    pool: &PgPool,
    tenant_id: &str,
    offering_id: &str,
    offering: Option<&ProductOffering>,
    partition: i32,
    offset: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = begin_for_tenant(pool, tenant_id).await?;
    let Some(o) = offering else {
        sqlx::query("DELETE FROM offerings WHERE tenant_id = $1 AND offering_id = $2")
            .bind(tenant_id)
            .bind(offering_id)
            .execute(&mut *tx)
            .await?;
        return tx.commit().await;
    };
    let kind = match o.definition.kind {
        OfferingKind::Plan => "PLAN",
        OfferingKind::AddOn => "ADD_ON",
    };
    let written = sqlx::query(
        "INSERT INTO offerings (tenant_id, offering_id, lifecycle_status, kind, name, definition, version, updated_at, source_partition, source_offset)
         VALUES ($1, $2, $3, $4, $5, $6, $7, to_timestamp($8::double precision / 1000), $9, $10)
         ON CONFLICT (tenant_id, offering_id) DO UPDATE SET
            lifecycle_status = EXCLUDED.lifecycle_status, kind = EXCLUDED.kind, name = EXCLUDED.name,
            definition = EXCLUDED.definition, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at,
            source_partition = EXCLUDED.source_partition, source_offset = EXCLUDED.source_offset
         WHERE offerings.version <= EXCLUDED.version",
    )
    .bind(tenant_id)
    .bind(offering_id)
    .bind(lifecycle(o.lifecycle_status))
    .bind(kind)
    .bind(&o.definition.name)
    .bind(serde_json::to_value(&o.definition).expect("definition serializes"))
    .bind(o.version)
    .bind(o.updated_at)
    .bind(partition)
    .bind(offset)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if written == 1 {
        sqlx::query("DELETE FROM offering_placements WHERE tenant_id = $1 AND offering_id = $2")
            .bind(tenant_id)
            .bind(offering_id)
            .execute(&mut *tx)
            .await?;
        for p in &o.definition.placements {
            sqlx::query(
                "INSERT INTO offering_placements (tenant_id, offering_id, channel, visible, display_name, description, sort_order, monthly_price_minor)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(tenant_id)
            .bind(offering_id)
            .bind(&p.channel)
            .bind(p.visible)
            .bind(&p.display_name)
            .bind(&p.description)
            .bind(p.sort_order)
            .bind(p.monthly_price_minor)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await
}

/// Upserts a campaign, or removes it for a tombstone.
///
/// # Errors
/// The database refused the write.
pub async fn upsert_campaign(
    pool: &PgPool,
    tenant_id: &str,
    campaign_id: &str,
    campaign: Option<&Campaign>,
    partition: i32,
    offset: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = begin_for_tenant(pool, tenant_id).await?;
    let Some(c) = campaign else {
        sqlx::query("DELETE FROM campaigns WHERE tenant_id = $1 AND campaign_id = $2")
            .bind(tenant_id)
            .bind(campaign_id)
            .execute(&mut *tx)
            .await?;
        return tx.commit().await;
    };
    let status = match c.status {
        CampaignStatus::Active => "ACTIVE",
        CampaignStatus::Ended => "ENDED",
    };
    sqlx::query(
        "INSERT INTO campaigns (tenant_id, campaign_id, status, name, priority, valid_from, valid_until, definition, version, updated_at, source_partition, source_offset)
         VALUES ($1, $2, $3, $4, $5, to_timestamp($6::double precision / 1000), to_timestamp($7::double precision / 1000), $8, $9, to_timestamp($10::double precision / 1000), $11, $12)
         ON CONFLICT (tenant_id, campaign_id) DO UPDATE SET
            status = EXCLUDED.status, name = EXCLUDED.name, priority = EXCLUDED.priority,
            valid_from = EXCLUDED.valid_from, valid_until = EXCLUDED.valid_until,
            definition = EXCLUDED.definition, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at,
            source_partition = EXCLUDED.source_partition, source_offset = EXCLUDED.source_offset
         WHERE campaigns.version <= EXCLUDED.version",
    )
    .bind(tenant_id)
    .bind(campaign_id)
    .bind(status)
    .bind(&c.definition.name)
    .bind(c.definition.priority)
    .bind(c.definition.valid_from)
    .bind(c.definition.valid_until)
    .bind(serde_json::to_value(&c.definition).expect("definition serializes"))
    .bind(c.version)
    .bind(c.updated_at)
    .bind(partition)
    .bind(offset)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
