//! The Contentful connector: each tenant's marketing content (a space and environment per
//! tenant) synced into the `offering_content` view through the Sync API, and a simulator that
//! speaks that API for tests and the local run.
//!
//! The connector follows the `tenants` topic to learn which tenants have a content space, and
//! `content.notifications` (verified webhooks, published by the ingress) to sync a tenant as
//! soon as an editor publishes; every tenant is also synced on start and every poll interval,
//! so a lost webhook only delays content. It reads both topics from the beginning with a
//! consumer group of its own per process and never commits: the tenants topic is compacted and
//! small, and a replayed notification only causes one more (idempotent) sync.

pub mod entries;
pub mod simulator;
pub mod sync;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use sqlx::PgPool;
use tcom_schemas::content::ContentNotification;
use tcom_schemas::tenant::{ContentSettings, Tenant, TenantStatus};
use tcom_schemas::{Codec, topics};
use tcom_state::client::KafkaSettings;

/// Where the connector finds spaces and their tokens.
#[derive(Debug, Clone)]
pub struct ContentConfig {
    /// Base URL of the Content Delivery API (or the simulator).
    pub delivery_url: String,
    /// Delivery tokens by the reference a tenant's settings give. References `env://NAME`
    /// not listed here are read from the environment.
    pub tokens: HashMap<String, String>,
    pub poll_interval: Duration,
}

impl ContentConfig {
    fn token(&self, reference: &str) -> Option<String> {
        self.tokens.get(reference).cloned().or_else(|| {
            reference
                .strip_prefix("env://")
                .and_then(|name| std::env::var(name).ok())
        })
    }
}

async fn sync_one(
    http: &reqwest::Client,
    pool: &PgPool,
    config: &ContentConfig,
    tenant_id: &str,
    space: &ContentSettings,
) {
    let Some(token) = config.token(&space.access_token_ref) else {
        tracing::warn!(tenant = tenant_id, reference = %space.access_token_ref, "No delivery token for the tenant's content space.");
        return;
    };
    match sync::sync_tenant(http, pool, &config.delivery_url, tenant_id, space, &token).await {
        Ok(report) => tracing::info!(
            tenant = tenant_id,
            initial = report.initial,
            pages = report.pages,
            upserted = report.upserted,
            removed = report.removed,
            "Content synced."
        ),
        Err(e) => {
            tracing::warn!(tenant = tenant_id, error = %e, "Content sync failed; will retry.")
        }
    }
}

/// Runs the connector until `shutdown` resolves.
///
/// # Errors
/// The consumer cannot be created or subscribed.
pub async fn run(
    kafka: KafkaSettings,
    pool: PgPool,
    codec: Arc<Codec>,
    config: ContentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), rdkafka::error::KafkaError> {
    let group = format!("tcom-connector-content-{}", uuid::Uuid::now_v7());
    let consumer: StreamConsumer = kafka.read_committed_consumer(&group).create()?;
    consumer.subscribe(&[topics::TENANTS, topics::CONTENT_NOTIFICATIONS])?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client");
    let mut spaces: HashMap<String, ContentSettings> = HashMap::new();
    let mut ticker = tokio::time::interval(config.poll_interval);
    tracing::info!(delivery_url = %config.delivery_url, "Content connector started.");
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = ticker.tick() => {
                for (tenant_id, space) in &spaces {
                    sync_one(&http, &pool, &config, tenant_id, space).await;
                }
            }
            message = consumer.recv() => {
                let message = match message {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "Kafka receive failed; retrying.");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                let Some(payload) = message.payload() else {
                    if message.topic() == topics::TENANTS
                        && let Some(key) = message.key()
                    {
                        spaces.remove(String::from_utf8_lossy(key).as_ref());
                    }
                    continue;
                };
                if message.topic() == topics::TENANTS {
                    match codec.decode::<Tenant>(payload).await {
                        Ok(tenant) => match tenant.settings.content {
                            Some(space) if tenant.status == TenantStatus::Active => {
                                let changed = spaces.get(&tenant.tenant_id) != Some(&space);
                                if changed {
                                    sync_one(&http, &pool, &config, &tenant.tenant_id, &space).await;
                                    spaces.insert(tenant.tenant_id, space);
                                }
                            }
                            _ => {
                                spaces.remove(&tenant.tenant_id);
                            }
                        },
                        Err(e) => tracing::error!(error = %e, "Undecodable tenant record skipped."),
                    }
                } else {
                    match codec.decode::<ContentNotification>(payload).await {
                        Ok(notification) => {
                            if let Some(space) = spaces.get(&notification.tenant_id) {
                                sync_one(&http, &pool, &config, &notification.tenant_id, space).await;
                            } else {
                                tracing::debug!(tenant = %notification.tenant_id, "Notification for a tenant without a content space.");
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "Undecodable content notification skipped."),
                    }
                }
            }
        }
    }
    tracing::info!("Content connector stopped.");
    Ok(())
}
