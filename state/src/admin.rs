//! Topic administration: the platform declares the topics it needs with their partition
//! counts and configs, and creates the missing ones at start-up.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use crate::client::KafkaSettings;
use crate::error::{Error, Result};

/// A topic the platform needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    /// Topic-level configs such as `cleanup.policy=compact`.
    pub config: Vec<(&'static str, String)>,
}

impl TopicSpec {
    /// A topic with default (delete) retention.
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        Self {
            name: name.into(),
            partitions,
            config: Vec::new(),
        }
    }

    /// A compacted topic: the newest record per key is kept for ever (entity tables,
    /// changelogs, the schema registry's log).
    pub fn compacted(name: impl Into<String>, partitions: i32) -> Self {
        Self::new(name, partitions).with("cleanup.policy", "compact")
    }

    /// Adds a topic config.
    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.config.push((key, value.into()));
        self
    }
}

/// Creates the topics that do not exist yet; existing topics are left as they are, but a
/// partition count below the declared one is reported, because keyed data would then be
/// partitioned differently from what the processors expect.
///
/// # Errors
/// The broker cannot be reached, or refuses a creation for another reason than the topic
/// existing already.
#[tracing::instrument(skip_all, fields(topics = specs.len()))]
pub async fn ensure_topics(settings: &KafkaSettings, specs: &[TopicSpec]) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = settings.client_config().create()?;
    let min_insync = settings.min_insync_replicas.to_string();
    let new_topics: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|spec| {
            let topic = NewTopic::new(
                &spec.name,
                spec.partitions,
                TopicReplication::Fixed(settings.replication_factor),
            )
            .set("min.insync.replicas", &min_insync);
            spec.config
                .iter()
                .fold(topic, |topic, (k, v)| topic.set(k, v))
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(name) => tracing::info!(topic = %name, "Created topic."),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(Error::Topic {
                    topic: name,
                    message: code.to_string(),
                });
            }
        }
    }
    wait_until_ready(settings, specs).await
}

/// Waits until the broker's metadata shows every topic with a leader for each partition:
/// creation is acknowledged before the partitions are ready, and a producer that starts in
/// that window fails with "unknown partition".
async fn wait_until_ready(settings: &KafkaSettings, specs: &[TopicSpec]) -> Result<()> {
    let consumer: BaseConsumer = settings.client_config().create()?;
    let specs = specs.to_vec();
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let metadata = consumer.fetch_metadata(None, Duration::from_secs(10))?;
            let mut waiting_for = None;
            for spec in &specs {
                let found = metadata.topics().iter().find(|t| t.name() == spec.name);
                let partitions = found.map(|t| t.partitions()).unwrap_or_default();
                let led = partitions.iter().filter(|p| p.leader() >= 0).count();
                if partitions.is_empty() || led < partitions.len() {
                    waiting_for = Some(spec.name.clone());
                } else if (partitions.len() as i32) < spec.partitions {
                    tracing::warn!(
                        topic = %spec.name,
                        declared = spec.partitions,
                        actual = partitions.len(),
                        "Topic has fewer partitions than declared."
                    );
                }
            }
            match waiting_for {
                None => return Ok(()),
                Some(topic) if std::time::Instant::now() > deadline => {
                    return Err(Error::Topic {
                        topic,
                        message: "partitions have no leader 30 s after creation".to_owned(),
                    });
                }
                Some(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    })
    .await?
}
