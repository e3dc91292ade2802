//! Writes baskets and pool numbers into their views, under the tenant's RLS scope. Older
//! versions never overwrite newer ones.

use sqlx::PgPool;
use tcom_schemas::basket::{BasketSnapshot, BasketStatus};
use tcom_schemas::msisdn::{NumberStatus, PhoneNumber};

use crate::postgres::begin_for_tenant;

fn basket_status(status: BasketStatus) -> &'static str {
    match status {
        BasketStatus::Active => "ACTIVE",
        BasketStatus::Abandoned => "ABANDONED",
        BasketStatus::Expired => "EXPIRED",
        BasketStatus::Merged => "MERGED",
        BasketStatus::CheckedOut => "CHECKED_OUT",
    }
}

fn number_status(status: NumberStatus) -> &'static str {
    match status {
        NumberStatus::Available => "AVAILABLE",
        NumberStatus::Reserved => "RESERVED",
        NumberStatus::Assigned => "ASSIGNED",
    }
}

/// Upserts a basket.
///
/// # Errors
/// The database refused the write (a document that is not JSON included).
pub async fn upsert_basket(
    pool: &PgPool,
    basket: &BasketSnapshot,
    partition: i32,
    offset: i64,
) -> Result<(), sqlx::Error> {
    let document: serde_json::Value =
        serde_json::from_str(&basket.document).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let mut tx = begin_for_tenant(pool, &basket.tenant_id).await?;
    sqlx::query(
        "INSERT INTO baskets (tenant_id, basket_id, version, status, customer_id, channel, document, expires_at, updated_at, source_partition, source_offset)
         VALUES ($1, $2, $3, $4, $5, $6, $7, to_timestamp($8::double precision / 1000), to_timestamp($9::double precision / 1000), $10, $11)
         ON CONFLICT (tenant_id, basket_id) DO UPDATE SET
            version = EXCLUDED.version, status = EXCLUDED.status, customer_id = EXCLUDED.customer_id,
            channel = EXCLUDED.channel, document = EXCLUDED.document, expires_at = EXCLUDED.expires_at,
            updated_at = EXCLUDED.updated_at, source_partition = EXCLUDED.source_partition,
            source_offset = EXCLUDED.source_offset
         WHERE baskets.version <= EXCLUDED.version",
    )
    .bind(&basket.tenant_id)
    .bind(&basket.basket_id)
    .bind(basket.version)
    .bind(basket_status(basket.status))
    .bind(&basket.customer_id)
    .bind(&basket.channel)
    .bind(document)
    .bind(basket.expires_at)
    .bind(basket.updated_at)
    .bind(partition)
    .bind(offset)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Upserts a pool number.
///
/// # Errors
/// The database refused the write.
pub async fn upsert_number(pool: &PgPool, number: &PhoneNumber) -> Result<(), sqlx::Error> {
    let mut tx = begin_for_tenant(pool, &number.tenant_id).await?;
    sqlx::query(
        "INSERT INTO phone_numbers (tenant_id, msisdn, status, basket_id, reserved_until, order_id, version, updated_at)
         VALUES ($1, $2, $3, $4, to_timestamp($5::double precision / 1000), $6, $7, to_timestamp($8::double precision / 1000))
         ON CONFLICT (tenant_id, msisdn) DO UPDATE SET
            status = EXCLUDED.status, basket_id = EXCLUDED.basket_id,
            reserved_until = EXCLUDED.reserved_until, order_id = EXCLUDED.order_id,
            version = EXCLUDED.version, updated_at = EXCLUDED.updated_at
         WHERE phone_numbers.version <= EXCLUDED.version",
    )
    .bind(&number.tenant_id)
    .bind(&number.msisdn)
    .bind(number_status(number.status))
    .bind(&number.basket_id)
    .bind(number.reserved_until)
    .bind(&number.order_id)
    .bind(number.version)
    .bind(number.updated_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
