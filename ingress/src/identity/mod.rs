//! Customer identity: sign-in through each tenant's OpenID Connect broker ([`broker`]), the
//! platform's per-tenant session tokens ([`sessions`]), the owner verification of orders with
//! MitID CPR matching ([`owner_api`]), and customers' personal data — export, erasure and
//! the audit of who touched it ([`customer_data_api`]); staff sign-in ([`staff`]).

pub mod broker;
pub mod customer_data_api;
pub mod owner_api;
pub mod redis_kv;
pub mod sessions;
pub mod sign_in_api;
pub mod staff;

use std::time::Duration;

use tcom_connectors::personal_data::{KeyStore, SecretKey};
use tcom_connectors::secrets::SecretStore;

use crate::settings::{Mode, Settings};

/// Everything the identity endpoints need.
#[derive(Debug)]
pub struct Identity {
    pub sessions: sessions::Sessions,
    pub brokers: broker::Brokers,
    pub secrets: SecretStore,
    /// Names a broker's subject without revealing it (`customer_accounts.subject_digest`).
    pub subject_key: SecretKey,
    pub sign_in_ttl: Duration,
    /// Local runs accept `http://` redirect URIs on the tenant's domains, and admin tokens
    /// signed with the shared development secret (`tcom token`).
    pub local_mode: bool,
    /// The `aud` of staff tokens.
    pub admin_audience: String,
    /// The platform operators' identity provider (`issuer` empty: none).
    pub operators: tcom_schemas::tenant::IdentitySettings,
    pub operator_redirect_uris: Vec<String>,
}

impl Identity {
    pub fn new(settings: &Settings, pool: sqlx::PgPool, redis: redis::Client) -> Self {
        let master = &settings.identity.master_key;
        let keys = KeyStore::new(pool, SecretKey::derive_master(master));
        let sessions = sessions::Sessions::new(
            keys,
            redis_kv::RedisKv::new(redis, settings.redis.response_timeout()),
            settings.auth.customer_audience.clone(),
            Duration::from_secs(settings.identity.session_ttl_seconds),
            master,
        );
        Self {
            sessions,
            brokers: broker::Brokers::new(settings.identity.broker_timeout()),
            secrets: SecretStore::new(settings.payments.secrets_dir.clone()),
            subject_key: SecretKey::derive(master, "broker-subjects"),
            sign_in_ttl: Duration::from_secs(settings.identity.sign_in_ttl_seconds),
            local_mode: settings.mode == Mode::Local,
            admin_audience: settings.auth.admin_audience.clone(),
            operators: tcom_schemas::tenant::IdentitySettings {
                issuer: settings.identity.operator_issuer.clone(),
                client_id: settings.identity.operator_client_id.clone(),
                client_secret_ref: settings.identity.operator_client_secret_ref.clone(),
                scopes: vec!["openid".to_owned(), "profile".to_owned()],
                cpr_matching: false,
                owner_verification: None,
            },
            operator_redirect_uris: settings.identity.operator_redirect_uris.clone(),
        }
    }

    pub fn key_store(&self) -> &KeyStore {
        self.sessions.key_store()
    }

    /// For tools (`tcom token --customer`, tests, benchmarks): connects lazily from the
    /// settings alone.
    ///
    /// # Errors
    /// The database or Redis URL is malformed.
    pub fn from_settings(settings: &Settings) -> Result<Self, String> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect_lazy(&settings.database.url)
            .map_err(|e| format!("database.url: {e}"))?;
        let redis = redis::Client::open(settings.redis.url.as_str())
            .map_err(|e| format!("redis.url: {e}"))?;
        Ok(Self::new(settings, pool, redis))
    }

    /// A session of `customer` started without a sign-in at a broker: for local runs
    /// (`tcom token --customer`), tests and benchmarks. Production has no such path: refused
    /// unless the platform runs in local mode.
    ///
    /// # Errors
    /// 403 outside local mode; 503 when the key store or Redis is unavailable.
    pub async fn issue_local_session(
        &self,
        tenant: &str,
        customer: &str,
        assurance: Option<&str>,
    ) -> Result<sessions::IssuedSession, crate::problem::Problem> {
        if !self.local_mode {
            return Err(crate::problem::Problem::forbidden(
                "local_mode_only",
                "sessions without a broker sign-in exist only in local runs",
            ));
        }
        let record = sessions::SessionRecord {
            customer_id: customer.to_owned(),
            assurance: assurance.map(str::to_owned),
            ..sessions::SessionRecord::default()
        };
        self.sessions.start(tenant, record, None).await
    }
}

/// Appends to the tenant's personal-data audit log in `tx` (rolled back with what it audits).
///
/// # Errors
/// The database fails.
pub async fn audit(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    tenant: &str,
    actor: &str,
    action: &str,
    customer: &str,
    detail: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO personal_data_audit (tenant_id, audit_id, actor, action, customer_id, detail)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant)
    .bind(uuid::Uuid::now_v7())
    .bind(actor)
    .bind(action)
    .bind(customer)
    .bind(detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
