//! Typed configuration, loaded in layers: `config/default.toml`, then `config/local.toml`,
//! then the environment.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// Where the platform runs. Only `local` accepts the known development secrets of
/// `config/default.toml`; the project's scripts set it (`TCOM__MODE=local`), nothing else does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Production,
    Local,
}

/// The platform's settings.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    #[serde(default)]
    pub mode: Mode,
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
    pub payments: PaymentSettings,
    pub identity: IdentitySection,
    pub tcm: TcmSection,
    /// The SM-DP+ eSIM profiles come from (ES2+).
    #[serde(default)]
    pub smdp: tcom_connectors::esim::es2plus::SmdpSettings,
    /// The fulfilment house that ships physical SIMs.
    #[serde(default)]
    pub logistics: tcom_connectors::logistics::client::LogisticsSettings,
    /// The number-porting clearing house.
    #[serde(default)]
    pub carrier: tcom_connectors::porting::client::CarrierSettings,
}

/// The legacy TCM system (or its simulator) and how the TCM connector treats it.
#[derive(Debug, Clone, Deserialize)]
pub struct TcmSection {
    /// Base URL of TCM's REST API; `scripts/stack` points it at `tcom tcm-sim`.
    pub url: String,
    /// Longest wait for one TCM answer.
    pub timeout_ms: u64,
    /// Failures in a row that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker refuses calls before one probe.
    pub breaker_open_ms: u64,
    /// How often the connectors role reconciles the platform's subscriptions with TCM's
    /// (`tcom_connectors::tcm::reconcile`); 0: never (`tcom tcm-reconcile` still runs it once).
    #[serde(default)]
    pub reconcile_interval_ms: u64,
}

/// Customer sign-in through the tenants' OpenID Connect brokers, the platform's session
/// tokens, and the master key that seals every key of the key store.
#[derive(Debug, Clone, Deserialize)]
pub struct IdentitySection {
    /// The root of the key hierarchy (any high-entropy text; the key is derived from it).
    /// Production sets it from its secret store: losing it makes all personal data unreadable.
    pub master_key: String,
    /// How long a customer's session token lives.
    pub session_ttl_seconds: u64,
    /// How long a started sign-in may take before its `state` is forgotten.
    pub sign_in_ttl_seconds: u64,
    /// Longest wait for a broker's answer (discovery, keys, token, CPR match).
    pub broker_timeout_ms: u64,
    /// The broker simulator of local runs (`tcom oidc-sim`), where the demo tenants' realms
    /// live; tenants name their own broker in their settings.
    pub broker_url: String,
    /// Where platform operators sign in (the platform's own workforce identity provider);
    /// empty: operator sign-in is off.
    #[serde(default)]
    pub operator_issuer: String,
    #[serde(default)]
    pub operator_client_id: String,
    /// `file://…` or `env://…` reference to the operators' client secret.
    #[serde(default)]
    pub operator_client_secret_ref: String,
    /// The redirect URIs operators' sign-ins may come back to (the admin console).
    #[serde(default)]
    pub operator_redirect_uris: Vec<String>,
}

impl IdentitySection {
    pub fn broker_timeout(&self) -> Duration {
        Duration::from_millis(self.broker_timeout_ms)
    }
}

/// Payment providers (or their simulators) and where the secrets tenants refer to live.
#[derive(Debug, Clone, Deserialize)]
pub struct PaymentSettings {
    /// Base URL of Stripe's API (`https://api.stripe.com` in production).
    pub stripe_url: String,
    /// Base URL of Adyen's Checkout API (`https://checkout-test.adyen.com` for test accounts).
    pub adyen_url: String,
    /// `file://<name>` secret references are read from `<secrets_dir>/<name>`.
    pub secrets_dir: std::path::PathBuf,
    /// Webhooks signed longer ago than this are refused (Stripe's default: 300 s).
    pub webhook_tolerance_seconds: i64,
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
    /// The `aud` claim of customer session tokens (signed per tenant, see `identity`).
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
    /// Replication factor of the topics the platform creates (1 locally; 3 in production).
    #[serde(default = "one")]
    pub replication_factor: i32,
    /// `min.insync.replicas` of those topics (1 locally; 2 in production, so an
    /// acknowledged write survives the loss of a broker).
    #[serde(default = "one")]
    pub min_insync_replicas: i32,
    /// How long the ingress' producer tries to deliver a command (`message.timeout.ms`). It
    /// must be shorter than `http.request_timeout_ms`: a request answered "nothing written"
    /// must not be delivered afterwards.
    #[serde(default = "default_delivery_timeout_ms")]
    pub delivery_timeout_ms: u64,
}

fn one() -> i32 {
    1
}

fn default_delivery_timeout_ms() -> u64 {
    5000
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// The role the platform serves tenants as: never a superuser or BYPASSRLS role.
    pub url: String,
    pub max_connections: u32,
    /// The role `tcom migrate` applies migrations as (it may own the tables); `url` if unset.
    #[serde(default)]
    pub migration_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    pub url: String,
    /// Longest wait for a Redis answer (rate limits, replies): a Redis that accepts
    /// connections but does not answer must not stall requests or processing.
    #[serde(default = "default_redis_timeout_ms")]
    pub response_timeout_ms: u64,
}

fn default_redis_timeout_ms() -> u64 {
    500
}

impl RedisSettings {
    pub fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.response_timeout_ms)
    }
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

/// The secrets `config/default.toml` ships with: known to everyone who read the repository.
fn is_development_secret(value: &str) -> bool {
    value.starts_with("local-development-") || value.is_empty()
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
        let mut kafka = tcom_state::client::KafkaSettings::new(&self.kafka.bootstrap_servers);
        kafka.replication_factor = self.kafka.replication_factor;
        kafka.min_insync_replicas = self.kafka.min_insync_replicas;
        kafka
    }

    /// Every reason these settings are unsafe to run with, at once: a known development
    /// secret outside local mode, or a delivery bound longer than the request timeout.
    ///
    /// # Errors
    /// The list of problems.
    pub fn check_safe_to_run(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.mode != Mode::Local {
            for (name, value) in [
                ("auth.admin_jwt_secret", &self.auth.admin_jwt_secret),
                ("identity.master_key", &self.identity.master_key),
                ("auth.guest_token_secret", &self.auth.guest_token_secret),
                ("content.webhook_secret", &self.content.webhook_secret),
                ("smdp.token", &self.smdp.token),
                ("logistics.token", &self.logistics.token),
                ("logistics.webhook_secret", &self.logistics.webhook_secret),
                ("carrier.token", &self.carrier.token),
                ("carrier.webhook_secret", &self.carrier.webhook_secret),
            ] {
                if is_development_secret(value) {
                    problems.push(format!(
                        "{name} is the development default from config/default.toml: set it \
                         from your secret store (TCOM__{}), or set TCOM__MODE=local for a local run",
                        name.to_uppercase().replace('.', "__")
                    ));
                }
            }
        }
        if self.kafka.delivery_timeout_ms >= self.http.request_timeout_ms {
            problems.push(format!(
                "kafka.delivery_timeout_ms ({}) must be shorter than http.request_timeout_ms ({}): \
                 a command the request gave up on could otherwise still be delivered",
                self.kafka.delivery_timeout_ms, self.http.request_timeout_ms
            ));
        }
        if self.kafka.replication_factor < 1
            || self.kafka.min_insync_replicas < 1
            || self.kafka.min_insync_replicas > self.kafka.replication_factor
        {
            problems.push(format!(
                "kafka.min_insync_replicas ({}) must be between 1 and kafka.replication_factor ({})",
                self.kafka.min_insync_replicas, self.kafka.replication_factor
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Settings {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let mut settings = Settings::load(&dir).expect("default.toml loads");
        settings.mode = Mode::Production;
        settings
    }

    #[test]
    fn the_shipped_secrets_are_refused_outside_local_mode() {
        let mut settings = defaults();
        let problems = settings.check_safe_to_run().unwrap_err();
        assert_eq!(problems.len(), 9, "{problems:?}");
        assert!(
            problems[0].contains("auth.admin_jwt_secret"),
            "{problems:?}"
        );
        settings.mode = Mode::Local;
        assert_eq!(settings.check_safe_to_run(), Ok(()));
    }

    #[test]
    fn real_secrets_run_in_production() {
        let mut settings = defaults();
        settings.auth.admin_jwt_secret = "4f9c…from-the-vault".to_owned();
        settings.identity.master_key = "another".to_owned();
        settings.auth.guest_token_secret = "a third".to_owned();
        settings.content.webhook_secret = "a fourth".to_owned();
        settings.smdp.token = "a fifth".to_owned();
        settings.logistics.token = "a sixth".to_owned();
        settings.logistics.webhook_secret = "a seventh".to_owned();
        settings.carrier.token = "an eighth".to_owned();
        settings.carrier.webhook_secret = "a ninth".to_owned();
        assert_eq!(settings.check_safe_to_run(), Ok(()));
    }

    #[test]
    fn a_delivery_bound_beyond_the_request_timeout_is_refused() {
        let mut settings = defaults();
        settings.mode = Mode::Local;
        settings.kafka.delivery_timeout_ms = settings.http.request_timeout_ms;
        let problems = settings.check_safe_to_run().unwrap_err();
        assert!(problems[0].contains("delivery_timeout_ms"), "{problems:?}");
        settings.kafka.delivery_timeout_ms = 5000;
        settings.kafka.min_insync_replicas = 2;
        assert!(settings.check_safe_to_run().unwrap_err()[0].contains("min_insync"));
    }
}
