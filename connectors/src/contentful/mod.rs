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
//!
//! Failures follow [`crate::dead_letter`], per tenant: a sync that fails because the content
//! API or the database is unreachable or overloaded is retried with capped backoff until it
//! succeeds; one that fails with a passing error is retried up to the policy's attempts; one
//! that can never succeed as things are (a refused token or space, a row the database
//! refuses) is logged and counted (`failures`) and tried again at the next poll or
//! notification, when an editor may have fixed it. A tenant's failing sync never holds up
//! another tenant's. There is no record to dead-letter here: an undecodable tenant record is
//! dead-lettered by the view connector that reads the same topic, and a notification only
//! says "sync now", so undecodable ones are logged, counted and skipped. Every sync and wait
//! races the stop signal.

pub mod entries;
pub mod simulator;
pub mod sync;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use sqlx::PgPool;
use tcom_schemas::content::ContentNotification;
use tcom_schemas::tenant::{ContentSettings, Tenant, TenantStatus};
use tcom_schemas::{Codec, topics};
use tcom_state::client::KafkaSettings;
use tokio::time::Instant;

use crate::dead_letter::{Attempts, ConnectorMetrics, Failure, Next, Options, unless_stopped};

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

/// The syncing side of the connector: what it knows of spaces, and the retries it owes.
struct Syncer<'a> {
    http: reqwest::Client,
    pool: &'a PgPool,
    config: &'a ContentConfig,
    options: &'a Options,
    /// Tenants whose last sync failed: when to try again, and the attempts so far.
    retries: HashMap<String, (Instant, Attempts)>,
}

impl Syncer<'_> {
    /// Syncs one tenant and books the outcome; `None` when the stop signal came first.
    async fn sync(
        &mut self,
        tenant_id: &str,
        space: &ContentSettings,
        stop: Pin<&mut impl Future<Output = ()>>,
    ) -> Option<()> {
        let Some(token) = self.config.token(&space.access_token_ref) else {
            tracing::warn!(tenant = tenant_id, reference = %space.access_token_ref, "No delivery token for the tenant's content space.");
            return Some(());
        };
        let synced = sync::sync_tenant(
            &self.http,
            self.pool,
            &self.config.delivery_url,
            tenant_id,
            space,
            &token,
        );
        let metrics = &self.options.metrics;
        match unless_stopped(stop, synced).await? {
            Ok(report) => {
                self.retries.remove(tenant_id);
                metrics.set_stalled(false);
                ConnectorMetrics::add(&metrics.written);
                tracing::info!(
                    tenant = tenant_id,
                    initial = report.initial,
                    pages = report.pages,
                    upserted = report.upserted,
                    removed = report.removed,
                    "Content synced."
                );
            }
            Err(e) => {
                let failure = e.failure();
                let policy = self.options.retry;
                let (_, attempts) = self
                    .retries
                    .entry(tenant_id.to_owned())
                    .or_insert_with(|| (Instant::now(), Attempts::new(policy)));
                match attempts.after(failure) {
                    Next::RetryAfter(wait) => {
                        ConnectorMetrics::add(&metrics.retries);
                        metrics.set_stalled(failure == Failure::Unavailable);
                        tracing::warn!(tenant = tenant_id, error = %e, retry_in_ms = wait.as_millis() as u64, "Content sync failed; will retry.");
                        if let Some(entry) = self.retries.get_mut(tenant_id) {
                            entry.0 = Instant::now() + wait;
                        }
                    }
                    Next::DeadLetter => {
                        self.retries.remove(tenant_id);
                        metrics.set_stalled(false);
                        ConnectorMetrics::add(&metrics.failures);
                        tracing::error!(tenant = tenant_id, error = %e, "Content sync cannot succeed as things are; trying again at the next poll or notification.");
                    }
                }
            }
        }
        Some(())
    }
}

/// Runs the connector until `shutdown` resolves, with the default [`Options`].
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
    run_with(kafka, pool, codec, config, Options::default(), shutdown).await
}

/// [`run`] with the given retry policy and metrics.
///
/// # Errors
/// The consumer cannot be created or subscribed.
pub async fn run_with(
    kafka: KafkaSettings,
    pool: PgPool,
    codec: Arc<Codec>,
    config: ContentConfig,
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> Result<(), rdkafka::error::KafkaError> {
    let group = format!("tcom-connector-content-{}", uuid::Uuid::now_v7());
    let consumer: StreamConsumer = kafka.read_committed_consumer(&group).create()?;
    consumer.subscribe(&[topics::TENANTS, topics::CONTENT_NOTIFICATIONS])?;
    let mut syncer = Syncer {
        http: reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client"),
        pool: &pool,
        config: &config,
        options: &options,
        retries: HashMap::new(),
    };
    let mut spaces: HashMap<String, ContentSettings> = HashMap::new();
    let mut ticker = tokio::time::interval(config.poll_interval);
    tracing::info!(delivery_url = %config.delivery_url, "Content connector started.");
    tokio::pin!(shutdown);
    'run: loop {
        let next_retry = syncer.retries.values().map(|(at, _)| *at).min();
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            () = tokio::time::sleep_until(next_retry.unwrap_or_else(Instant::now)), if next_retry.is_some() => {
                let now = Instant::now();
                let due: Vec<String> = syncer
                    .retries
                    .iter()
                    .filter(|(_, (at, _))| *at <= now)
                    .map(|(tenant, _)| tenant.clone())
                    .collect();
                for tenant_id in due {
                    match spaces.get(&tenant_id) {
                        Some(space) => {
                            if syncer.sync(&tenant_id, space, shutdown.as_mut()).await.is_none() {
                                break 'run;
                            }
                        }
                        None => {
                            syncer.retries.remove(&tenant_id);
                        }
                    }
                }
            }
            _ = ticker.tick() => {
                for (tenant_id, space) in &spaces {
                    if syncer.sync(tenant_id, space, shutdown.as_mut()).await.is_none() {
                        break 'run;
                    }
                }
            }
            message = consumer.recv() => {
                let message = match message {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "Kafka receive failed; retrying.");
                        let wait = tokio::time::sleep(Duration::from_millis(500));
                        if unless_stopped(shutdown.as_mut(), wait).await.is_none() {
                            break;
                        }
                        continue;
                    }
                };
                let Some(payload) = message.payload() else {
                    if message.topic() == topics::TENANTS
                        && let Some(key) = message.key()
                    {
                        let tenant_id = String::from_utf8_lossy(key);
                        spaces.remove(tenant_id.as_ref());
                        syncer.retries.remove(tenant_id.as_ref());
                    }
                    continue;
                };
                if message.topic() == topics::TENANTS {
                    match codec.decode::<Tenant>(payload).await {
                        Ok(tenant) => match tenant.settings.content {
                            Some(space) if tenant.status == TenantStatus::Active => {
                                let changed = spaces.get(&tenant.tenant_id) != Some(&space);
                                if changed {
                                    if syncer.sync(&tenant.tenant_id, &space, shutdown.as_mut()).await.is_none() {
                                        break;
                                    }
                                    spaces.insert(tenant.tenant_id, space);
                                }
                            }
                            _ => {
                                spaces.remove(&tenant.tenant_id);
                                syncer.retries.remove(&tenant.tenant_id);
                            }
                        },
                        Err(e) => {
                            ConnectorMetrics::add(&options.metrics.failures);
                            tracing::error!(error = %e, "Undecodable tenant record skipped.");
                        }
                    }
                } else {
                    match codec.decode::<ContentNotification>(payload).await {
                        Ok(notification) => {
                            if let Some(space) = spaces.get(&notification.tenant_id) {
                                if syncer.sync(&notification.tenant_id, space, shutdown.as_mut()).await.is_none() {
                                    break;
                                }
                            } else {
                                tracing::debug!(tenant = %notification.tenant_id, "Notification for a tenant without a content space.");
                            }
                        }
                        Err(e) => {
                            ConnectorMetrics::add(&options.metrics.failures);
                            tracing::error!(error = %e, "Undecodable content notification skipped.");
                        }
                    }
                }
            }
        }
    }
    tracing::info!("Content connector stopped.");
    Ok(())
}
