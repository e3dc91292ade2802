//! One tenant's content sync: continue from the stored sync token (or start an initial sync),
//! follow `nextPageUrl` to the end, apply every item, and store the new token in the same
//! database transaction, so a crash mid-sync repeats the sync instead of skipping changes.

use serde_json::Value;
use sqlx::PgPool;
use tcom_schemas::tenant::ContentSettings;

use super::entries::{ContentChange, interpret};
use crate::dead_letter::{Failure, classify_sqlx};
use crate::postgres::begin_for_tenant;

/// What went wrong in a sync.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("content API: {0}")]
    Http(#[from] reqwest::Error),
    #[error("content API answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("content API page without nextPageUrl or nextSyncUrl")]
    Shape,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl SyncError {
    /// How the connector handles it ([`crate::dead_letter`]): an unreachable or overloaded
    /// content API or database is waited for, a refused token or space or a refused row fails
    /// the sync until someone fixes it.
    pub fn failure(&self) -> Failure {
        match self {
            Self::Http(e) if e.is_connect() || e.is_timeout() => Failure::Unavailable,
            Self::Http(_) | Self::Shape => Failure::Transient,
            Self::Status { status, .. } if *status == 429 || *status >= 500 => Failure::Unavailable,
            Self::Status { .. } => Failure::Permanent,
            Self::Database(e) => classify_sqlx(e),
        }
    }
}

/// What a sync did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    pub initial: bool,
    pub pages: usize,
    pub upserted: usize,
    pub removed: usize,
}

fn token_of(url: &str) -> Option<String> {
    url.split_once("sync_token=")
        .map(|(_, t)| t.split('&').next().unwrap_or(t).to_owned())
}

/// Syncs one tenant's space into `offering_content`.
///
/// # Errors
/// The content API or the database failed; nothing of this sync is kept, and the next one
/// starts again from the stored token.
pub async fn sync_tenant(
    http: &reqwest::Client,
    pool: &PgPool,
    delivery_url: &str,
    tenant_id: &str,
    space: &ContentSettings,
    access_token: &str,
) -> Result<SyncReport, SyncError> {
    let mut tx = begin_for_tenant(pool, tenant_id).await?;
    let stored: Option<(String, String, String)> = sqlx::query_as(
        "SELECT space_id, environment, sync_token FROM content_sync_state WHERE tenant_id = $1 FOR UPDATE",
    )
    .bind(tenant_id)
    .fetch_optional(&mut *tx)
    .await?;
    let base = format!(
        "{}/spaces/{}/environments/{}/sync",
        delivery_url.trim_end_matches('/'),
        space.space_id,
        space.environment
    );
    let mut report = SyncReport::default();
    // A token belongs to one space and environment: a moved tenant starts over.
    let mut url = match stored {
        Some((space_id, environment, token))
            if space_id == space.space_id && environment == space.environment =>
        {
            format!("{base}?sync_token={token}")
        }
        _ => {
            sqlx::query("DELETE FROM offering_content WHERE tenant_id = $1")
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
            report.initial = true;
            format!("{base}?initial=true")
        }
    };
    let next_token = loop {
        let response = http.get(&url).bearer_auth(access_token).send().await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(SyncError::Status {
                status: status.as_u16(),
                body,
            });
        }
        let page: Value = response.json().await?;
        report.pages += 1;
        for item in page["items"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            match interpret(item) {
                ContentChange::Upsert {
                    entry_id,
                    offering_id,
                    revision,
                    locales,
                } => {
                    sqlx::query(
                        "DELETE FROM offering_content WHERE tenant_id = $1 AND entry_id = $2",
                    )
                    .bind(tenant_id)
                    .bind(&entry_id)
                    .execute(&mut *tx)
                    .await?;
                    for (locale, fields) in locales {
                        sqlx::query(
                            "INSERT INTO offering_content (tenant_id, entry_id, locale, offering_id, fields, revision, updated_at)
                             VALUES ($1, $2, $3, $4, $5, $6, now())",
                        )
                        .bind(tenant_id)
                        .bind(&entry_id)
                        .bind(locale)
                        .bind(&offering_id)
                        .bind(fields)
                        .bind(revision)
                        .execute(&mut *tx)
                        .await?;
                    }
                    report.upserted += 1;
                }
                ContentChange::Remove { entry_id } => {
                    sqlx::query(
                        "DELETE FROM offering_content WHERE tenant_id = $1 AND entry_id = $2",
                    )
                    .bind(tenant_id)
                    .bind(&entry_id)
                    .execute(&mut *tx)
                    .await?;
                    report.removed += 1;
                }
                ContentChange::Ignore => {}
            }
        }
        if let Some(next) = page["nextPageUrl"].as_str() {
            url = next.to_owned();
        } else if let Some(token) = page["nextSyncUrl"].as_str().and_then(token_of) {
            break token;
        } else {
            return Err(SyncError::Shape);
        }
    };
    sqlx::query(
        "INSERT INTO content_sync_state (tenant_id, space_id, environment, sync_token, synced_at)
         VALUES ($1, $2, $3, $4, now())
         ON CONFLICT (tenant_id) DO UPDATE SET space_id = EXCLUDED.space_id,
            environment = EXCLUDED.environment, sync_token = EXCLUDED.sync_token, synced_at = now()",
    )
    .bind(tenant_id)
    .bind(&space.space_id)
    .bind(&space.environment)
    .bind(next_token)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(report)
}
