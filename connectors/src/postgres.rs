//! PostgreSQL plumbing shared by the view connectors: pools, migrations and tenant-scoped
//! transactions.

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

/// The migrations in `migrations/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Connects a pool.
///
/// # Errors
/// The database cannot be reached.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .connect(url)
        .await
}

/// Applies the migrations that have not run yet.
///
/// # Errors
/// A migration fails, or one that ran before was changed since.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// Begins a transaction in which Row-Level Security lets through `tenant`'s rows only.
///
/// # Errors
/// The database cannot be reached.
pub async fn begin_for_tenant<'a>(
    pool: &'a PgPool,
    tenant: &str,
) -> Result<Transaction<'a, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}
