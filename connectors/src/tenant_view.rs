//! Writes the compacted `tenants` topic's records into the `tenants` table (run by
//! [`crate::views`]).
//!
//! The version guard in the upsert makes the connector's at-least-once delivery harmless:
//! replaying a record, or receiving an older one after a newer one, leaves the row as it is.

use sqlx::PgPool;
use tcom_schemas::tenant::{Tenant, TenantStatus};

use crate::postgres::begin_for_tenant;

/// Writes one tenant record (or removes the tenant for a tombstone) under the tenant's RLS
/// scope. Older versions never overwrite newer ones.
///
/// # Errors
/// The database refused the write.
pub async fn upsert(
    pool: &PgPool,
    tenant_id: &str,
    tenant: Option<&Tenant>,
    partition: i32,
    offset: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = begin_for_tenant(pool, tenant_id).await?;
    match tenant {
        None => {
            sqlx::query("DELETE FROM tenants WHERE tenant_id = $1")
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
        }
        Some(t) => {
            let s = &t.settings;
            let status = match t.status {
                TenantStatus::Active => "ACTIVE",
                TenantStatus::Suspended => "SUSPENDED",
            };
            let settings = serde_json::to_value(s).expect("settings serialise to JSON");
            sqlx::query(
                "INSERT INTO tenants (tenant_id, name, status, domains, default_locale, locales, currency, country, settings, version, updated_at, source_partition, source_offset)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, to_timestamp($11::double precision / 1000), $12, $13)
                 ON CONFLICT (tenant_id) DO UPDATE SET
                    name = EXCLUDED.name, status = EXCLUDED.status, domains = EXCLUDED.domains,
                    default_locale = EXCLUDED.default_locale, locales = EXCLUDED.locales,
                    currency = EXCLUDED.currency, country = EXCLUDED.country, settings = EXCLUDED.settings,
                    version = EXCLUDED.version, updated_at = EXCLUDED.updated_at,
                    source_partition = EXCLUDED.source_partition, source_offset = EXCLUDED.source_offset
                 WHERE tenants.version <= EXCLUDED.version",
            )
            .bind(tenant_id)
            .bind(&s.name)
            .bind(status)
            .bind(&s.domains)
            .bind(&s.default_locale)
            .bind(&s.locales)
            .bind(&s.currency)
            .bind(&s.country)
            .bind(settings)
            .bind(t.version)
            .bind(t.updated_at)
            .bind(partition)
            .bind(offset)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await
}
