//! Writes baskets and pool numbers into their views, under the tenant's RLS scope. Older
//! versions never overwrite newer ones.

use sqlx::PgPool;
use tcom_schemas::basket::{BasketSnapshot, BasketStatus};
use tcom_schemas::msisdn::{NumberStatus, PhoneNumber};
use tcom_schemas::order::OrderSnapshot;

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

/// Upserts an order and its items (replaced whole with the order, in one transaction).
///
/// # Errors
/// The database refused the write (a document that is not JSON included).
pub async fn upsert_order(pool: &PgPool, order: &OrderSnapshot) -> Result<(), sqlx::Error> {
    let document: serde_json::Value =
        serde_json::from_str(&order.document).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let mut tx = begin_for_tenant(pool, &order.tenant_id).await?;
    let written = sqlx::query(
        "INSERT INTO orders (tenant_id, order_id, version, state, customer_id, document, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7::double precision / 1000), to_timestamp($8::double precision / 1000))
         ON CONFLICT (tenant_id, order_id) DO UPDATE SET
            version = EXCLUDED.version, state = EXCLUDED.state, customer_id = EXCLUDED.customer_id,
            document = EXCLUDED.document, updated_at = EXCLUDED.updated_at
         WHERE orders.version < EXCLUDED.version",
    )
    .bind(&order.tenant_id)
    .bind(&order.order_id)
    .bind(order.version)
    .bind(order.state.as_str())
    .bind(&order.customer_id)
    .bind(&document)
    .bind(order.created_at)
    .bind(order.updated_at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if written > 0 {
        sqlx::query("DELETE FROM order_items WHERE tenant_id = $1 AND order_id = $2")
            .bind(&order.tenant_id)
            .bind(&order.order_id)
            .execute(&mut *tx)
            .await?;
        for (item, parent) in order_items(&document) {
            sqlx::query(
                "INSERT INTO order_items (tenant_id, order_id, item_id, parent_id, offering_id, state, quantity, msisdn)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&order.tenant_id)
            .bind(&order.order_id)
            .bind(text(item, "/id"))
            .bind(parent)
            .bind(text(item, "/productOffering/id"))
            .bind(text(item, "/state"))
            .bind(item.pointer("/quantity").and_then(serde_json::Value::as_i64).unwrap_or(1) as i32)
            .bind(msisdn(item))
            .execute(&mut *tx)
            .await?;
        }
        upsert_products(&mut tx, order, &document).await?;
    }
    tx.commit().await
}

/// The order's activated lines as TMF637 products, in the order's transaction; a product
/// keeps what the TCM reconciliation found (`tcm_status`).
async fn upsert_products(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    order: &OrderSnapshot,
    document: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    for product in tcom_processors::domain::product_inventory::products_of(document) {
        sqlx::query(
            "INSERT INTO products (tenant_id, product_id, customer_id, order_id, item_id, status, msisdn, iccid,
                                   start_date, binding_end_date, document, order_version, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::date, $10::date, $11, $12, to_timestamp($13::double precision / 1000))
             ON CONFLICT (tenant_id, product_id) DO UPDATE SET
                status = EXCLUDED.status, msisdn = EXCLUDED.msisdn, iccid = EXCLUDED.iccid,
                start_date = EXCLUDED.start_date, binding_end_date = EXCLUDED.binding_end_date,
                document = EXCLUDED.document, order_version = EXCLUDED.order_version,
                updated_at = EXCLUDED.updated_at
             WHERE products.order_version < EXCLUDED.order_version",
        )
        .bind(&order.tenant_id)
        .bind(&product.product_id)
        .bind(&product.customer_id)
        .bind(&product.order_id)
        .bind(&product.item_id)
        .bind(product.status)
        .bind(&product.msisdn)
        .bind(&product.iccid)
        .bind(&product.start_date)
        .bind(&product.binding_end_date)
        .bind(&product.document)
        .bind(order.version)
        .bind(order.updated_at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

fn text(value: &serde_json::Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn msisdn(item: &serde_json::Value) -> Option<String> {
    item.pointer("/product/productCharacteristic")?
        .as_array()?
        .iter()
        .find(|c| c.get("name").and_then(serde_json::Value::as_str) == Some("MSISDN"))?
        .get("value")?
        .as_str()
        .map(str::to_owned)
}

/// Every item of a TMF622 document with its parent's id, depth first.
fn order_items(document: &serde_json::Value) -> Vec<(&serde_json::Value, Option<String>)> {
    let mut items = Vec::new();
    let mut stack: Vec<(&serde_json::Value, Option<String>)> = document
        .get("productOrderItem")
        .and_then(serde_json::Value::as_array)
        .map(|a| a.iter().map(|i| (i, None)).collect())
        .unwrap_or_default();
    while let Some((item, parent)) = stack.pop() {
        let id = text(item, "/id");
        if let Some(children) = item
            .get("productOrderItem")
            .and_then(serde_json::Value::as_array)
        {
            stack.extend(children.iter().map(|c| (c, Some(id.clone()))));
        }
        items.push((item, parent));
    }
    items
}
