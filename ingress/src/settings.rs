//! Typed configuration, loaded in layers: `config/default.toml`, then `config/local.toml`,
//! then the environment.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// The platform's settings.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub http: HttpSettings,
    pub kafka: KafkaSection,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub schema_registry: RegistrySettings,
    pub readiness: ReadinessSettings,
    pub auth: AuthSettings,
    pub commands: CommandSettings,
    pub processors: ProcessorSettings,
    pub content: ContentSettings,
}

/// How admin and platform-operator tokens are verified.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    /// HS256 secret shared with the identity provider that issues admin tokens.
    pub admin_jwt_secret: String,
    /// Required `iss` claim.
    pub admin_issuer: String,
    /// Required `aud` claim.
    pub admin_audience: String,
    /// HS256 secret shared with the identity broker that issues customer tokens (same issuer).
    pub customer_jwt_secret: String,
    /// Required `aud` claim of customer tokens.
    pub customer_audience: String,
    /// Signs guest basket tokens.
    pub guest_token_secret: String,
}

/// Commands sent through Kafka with a synchronous reply.
#[derive(Debug, Clone, Deserialize)]
pub struct CommandSettings {
    /// How long a request waits for the processor's reply before answering 202.
    pub reply_timeout_ms: u64,
}

impl CommandSettings {
    pub fn reply_timeout(&self) -> Duration {
        Duration::from_millis(self.reply_timeout_ms)
    }
}

/// The stream processors' runtime.
#[derive(Debug, Clone, Deserialize)]
pub struct ProcessorSettings {
    /// Folder for RocksDB state (rebuilt from changelogs when lost).
    pub state_dir: std::path::PathBuf,
    /// Stable across restarts of this instance: it fences a previous incarnation.
    pub instance_id: String,
    /// How often the expiry timers (baskets, number reservations) run.
    pub timer_interval_ms: u64,
    /// Commit at least this often while records flow.
    pub commit_interval_ms: u64,
    /// Also commit as soon as no input record waits (lowest latency at low load).
    pub commit_when_idle: bool,
    /// Where the processors' metrics are served (`GET /metrics`, Prometheus text format).
    pub metrics_listen: std::net::SocketAddr,
}

/// Contentful (or its simulator) for the content connector and webhooks.
#[derive(Debug, Clone, Deserialize)]
pub struct ContentSettings {
    /// Base URL of the Content Delivery API.
    pub delivery_url: String,
    /// Secret that verifies webhook signatures.
    pub webhook_secret: String,
    /// How often every tenant's space is synced even without webhooks.
    pub poll_interval_ms: u64,
    /// Tokens by reference (`access_token_ref` of a tenant's settings) for local runs;
    /// production resolves references in its secret store.
    #[serde(default)]
    pub tokens: std::collections::HashMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    pub request_timeout_ms: u64,
    pub max_body_bytes: usize,
    pub shutdown_grace_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KafkaSection {
    pub bootstrap_servers: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RegistrySettings {
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReadinessSettings {
    pub check_timeout_ms: u64,
}

impl HttpSettings {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

impl ReadinessSettings {
    pub fn check_timeout(&self) -> Duration {
        Duration::from_millis(self.check_timeout_ms)
    }
}

/// The conventional variables that override their setting when present.
const WELL_KNOWN_ENV: &[(&str, &str)] = &[
    ("KAFKA_BOOTSTRAP_SERVERS", "kafka.bootstrap_servers"),
    ("DATABASE_URL", "database.url"),
    ("REDIS_URL", "redis.url"),
    ("SCHEMA_REGISTRY_URL", "schema_registry.url"),
];

impl Settings {
    /// Loads settings from `config_dir` (which must hold `default.toml`) and the environment.
    ///
    /// # Errors
    /// A file is malformed, a value has the wrong type, or a required setting is missing.
    pub fn load(config_dir: &Path) -> Result<Self, config::ConfigError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from(config_dir.join("default.toml")))
            .add_source(config::File::from(config_dir.join("local.toml")).required(false))
            .add_source(
                config::Environment::with_prefix("TCOM")
                    .prefix_separator("__")
                    .separator("__"),
            );
        for (var, key) in WELL_KNOWN_ENV {
            builder = builder.set_override_option(*key, std::env::var(var).ok())?;
        }
        builder.build()?.try_deserialize()
    }

    /// The Kafka client settings for the runtime crate.
    pub fn kafka_settings(&self) -> tcom_state::client::KafkaSettings {
        tcom_state::client::KafkaSettings::new(&self.kafka.bootstrap_servers)
    }
}
