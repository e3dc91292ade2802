//! Tenant resolution: which brand a request is for, from its `Host` header.
//!
//! Every ingress instance keeps the whole `tenants` topic (compacted, small) in memory as a
//! global table, following it from the beginning, so a tenant onboarded or a domain added is
//! served by every instance within moments and without a restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tcom_schemas::tenant::{Tenant, TenantStatus};
use tcom_schemas::{Codec, topics};
use tcom_state::client::KafkaSettings;
use tokio::sync::RwLock;

use crate::app::AppState;
use crate::problem::Problem;

pub use tcom_processors::domain::hostname::normalise_host;

/// Tenants by id and by domain.
#[derive(Debug, Default)]
pub struct TenantDirectory {
    state: RwLock<Tables>,
    caught_up: AtomicBool,
}

#[derive(Debug, Default)]
struct Tables {
    by_id: HashMap<String, Arc<Tenant>>,
    by_domain: HashMap<String, Arc<Tenant>>,
}

impl TenantDirectory {
    /// The tenant serving `host`, if any.
    pub async fn resolve(&self, host: &str) -> Option<Arc<Tenant>> {
        let host = normalise_host(host)?;
        self.state.read().await.by_domain.get(&host).cloned()
    }

    /// The tenant with this id, if any.
    pub async fn get(&self, tenant_id: &str) -> Option<Arc<Tenant>> {
        self.state.read().await.by_id.get(tenant_id).cloned()
    }

    /// Applies one record of the tenants topic: a new version of a tenant, or its removal.
    pub async fn apply(&self, tenant_id: &str, tenant: Option<Tenant>) {
        let mut tables = self.state.write().await;
        if let Some(previous) = tables.by_id.remove(tenant_id) {
            for domain in &previous.settings.domains {
                if let Some(normalised) = normalise_host(domain) {
                    // Only drop the domain if it still points at this tenant.
                    if tables
                        .by_domain
                        .get(&normalised)
                        .is_some_and(|t| t.tenant_id == tenant_id)
                    {
                        tables.by_domain.remove(&normalised);
                    }
                }
            }
        }
        if let Some(tenant) = tenant {
            let tenant = Arc::new(tenant);
            for domain in &tenant.settings.domains {
                if let Some(normalised) = normalise_host(domain) {
                    tables.by_domain.insert(normalised, tenant.clone());
                }
            }
            tables.by_id.insert(tenant_id.to_owned(), tenant);
        }
    }

    /// Whether the directory has read the topic up to where it was when following began.
    pub fn is_caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    /// Number of tenants known.
    async fn len(&self) -> usize {
        self.state.read().await.by_id.len()
    }
}

/// Follows the tenants topic into `directory` until the task is dropped.
///
/// Records that do not decode are logged and skipped (a tenant record is never half-applied);
/// a registry outage is retried, so nothing is skipped for a transient reason.
pub async fn follow_tenants(
    directory: Arc<TenantDirectory>,
    kafka: KafkaSettings,
    codec: Arc<Codec>,
) {
    loop {
        match follow_once(&directory, &kafka, &codec).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "Following the tenants topic failed; retrying.");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn follow_once(
    directory: &TenantDirectory,
    kafka: &KafkaSettings,
    codec: &Codec,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let consumer: StreamConsumer = kafka
        .client_config()
        .set("group.id", "tcom-ingress-tenants")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        // A new tenant or domain must be served within a second: do not let the broker hold
        // fetches back for long when there is nothing new.
        .set("fetch.wait.max.ms", "100")
        .create()?;
    let partitions = partition_ends(kafka.clone()).await?;
    let mut assignment = TopicPartitionList::new();
    let mut remaining = HashMap::new();
    for (partition, low, high) in partitions {
        assignment.add_partition_offset(topics::TENANTS, partition, Offset::Beginning)?;
        if high > low {
            remaining.insert(partition, high);
        }
    }
    if assignment.count() == 0 {
        return Err(format!(
            "topic {} has no partitions (run `tcom topics --ensure`)",
            topics::TENANTS
        )
        .into());
    }
    consumer.assign(&assignment)?;
    if remaining.is_empty() {
        directory.caught_up.store(true, Ordering::Release);
    }
    loop {
        // A topic written by transactions ends with a commit marker that a read_committed
        // consumer never receives as a message, so "caught up" is judged by the consumer's
        // position (which moves past markers), also when no message comes for a while.
        let received = tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await;
        if let Ok(message) = received {
            let message = message?;
            let key = message
                .key()
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
                .into_owned();
            match message.payload() {
                None => directory.apply(&key, None).await,
                Some(bytes) => match codec.decode::<Tenant>(bytes).await {
                    Ok(tenant) => directory.apply(&key, Some(tenant)).await,
                    Err(e) if e.is_retryable() => return Err(e.into()),
                    Err(e) => {
                        tracing::error!(tenant = %key, offset = message.offset(), error = %e, "Skipping an undecodable tenant record.")
                    }
                },
            }
        }
        if !remaining.is_empty() {
            let positions = consumer.position()?;
            remaining.retain(|partition, high| {
                let position = positions
                    .find_partition(topics::TENANTS, *partition)
                    .and_then(|p| match p.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    })
                    .unwrap_or(-1);
                position < *high
            });
            if remaining.is_empty() {
                let tenants = directory.len().await;
                tracing::info!(tenants, "Tenant directory caught up.");
                directory.caught_up.store(true, Ordering::Release);
            }
        }
    }
}

/// Each partition of the tenants topic with its low and high watermark.
async fn partition_ends(
    kafka: KafkaSettings,
) -> Result<Vec<(i32, i64, i64)>, rdkafka::error::KafkaError> {
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = kafka.client_config().create()?;
        let metadata = consumer.fetch_metadata(Some(topics::TENANTS), Duration::from_secs(10))?;
        metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions())
            .map(|p| {
                let (low, high) =
                    consumer.fetch_watermarks(topics::TENANTS, p.id(), Duration::from_secs(10))?;
                Ok((p.id(), low, high))
            })
            .collect()
    })
    .await
    .expect("the watermark lookup does not panic")
}

/// The tenant a request is for, resolved from its `Host`. Extracting it refuses requests for
/// unknown or suspended tenants with a problem answer.
#[derive(Debug, Clone)]
pub struct CurrentTenant(pub Arc<Tenant>);

impl FromRequestParts<AppState> for CurrentTenant {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let host = request_host(parts).ok_or_else(Problem::missing_host)?;
        let tenant = state
            .tenants
            .resolve(&host)
            .await
            .ok_or_else(|| Problem::unknown_tenant(&host))?;
        if tenant.status == TenantStatus::Suspended {
            return Err(Problem::new(
                axum::http::StatusCode::FORBIDDEN,
                "tenant_suspended",
                "This storefront is suspended",
            ));
        }
        Ok(Self(tenant))
    }
}

/// The host a request was sent to: the `Host` header (HTTP/1.1) or the URI authority (HTTP/2).
pub fn request_host(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tcom_schemas::tenant::TenantSettings;

    fn tenant(id: &str, domains: &[&str]) -> Tenant {
        Tenant {
            tenant_id: id.into(),
            status: TenantStatus::Active,
            settings: TenantSettings {
                name: id.into(),
                ..tcom_schemas::fixtures::danish_settings(domains)
            },
            version: 1,
            updated_at: 0,
        }
    }

    #[test]
    fn hosts_are_normalised() {
        assert_eq!(
            normalise_host("Shop.Example.COM:8443").as_deref(),
            Some("shop.example.com")
        );
        assert_eq!(
            normalise_host("shop.example.com.").as_deref(),
            Some("shop.example.com")
        );
        assert_eq!(normalise_host("[::1]:8080").as_deref(), Some("[::1]"));
        assert_eq!(normalise_host(""), None);
        assert_eq!(normalise_host("evil.com/path"), None);
        assert_eq!(normalise_host("a b"), None);
    }

    #[tokio::test]
    async fn domains_follow_the_newest_tenant_record() {
        let directory = TenantDirectory::default();
        directory
            .apply("a", Some(tenant("a", &["a.example", "old.a.example"])))
            .await;
        directory
            .apply("b", Some(tenant("b", &["b.example"])))
            .await;
        assert_eq!(
            directory.resolve("A.example:443").await.unwrap().tenant_id,
            "a"
        );
        assert_eq!(
            directory.resolve("old.a.example").await.unwrap().tenant_id,
            "a"
        );

        // A new version drops a domain; a tombstone removes the tenant entirely.
        directory
            .apply("a", Some(tenant("a", &["a.example"])))
            .await;
        assert!(directory.resolve("old.a.example").await.is_none());
        directory.apply("b", None).await;
        assert!(directory.resolve("b.example").await.is_none());
        assert_eq!(directory.len().await, 1);
    }

    #[tokio::test]
    async fn a_domain_moved_to_another_tenant_is_not_dropped_by_the_old_ones_update() {
        let directory = TenantDirectory::default();
        directory
            .apply("a", Some(tenant("a", &["shared.example"])))
            .await;
        directory
            .apply("b", Some(tenant("b", &["shared.example"])))
            .await;
        directory
            .apply("a", Some(tenant("a", &["a.example"])))
            .await;
        assert_eq!(
            directory.resolve("shared.example").await.unwrap().tenant_id,
            "b"
        );
    }
}
