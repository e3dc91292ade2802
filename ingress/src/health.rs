//! Liveness and readiness.
//!
//! `/healthz` says the process serves HTTP. `/readyz` says this instance can do its work: the
//! broker, PostgreSQL, Redis and the schema registry answer, the tenant directory has
//! caught up (otherwise a known tenant's shopper would get "unknown tenant"), and every
//! processor that decides its commands has a running instance. Load balancers
//! route on `/readyz`; orchestrators restart on `/healthz`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;

use crate::app::AppState;

/// Handles to the dependencies that readiness probes.
pub struct Dependencies {
    pub kafka: Arc<BaseConsumer>,
    pub postgres: sqlx::PgPool,
    pub redis: redis::Client,
    pub http: reqwest::Client,
    pub registry_url: String,
    pub timeout: Duration,
}

impl std::fmt::Debug for Dependencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dependencies")
            .field("registry_url", &self.registry_url)
            .finish_non_exhaustive()
    }
}

/// The processors (their consumer groups) that decide the commands this ingress writes.
const COMMAND_PROCESSORS: &[&str] = &[
    tcom_processors::tenants::APPLICATION_ID,
    tcom_processors::catalog::APPLICATION_ID,
    tcom_processors::baskets::APPLICATION_ID,
    tcom_processors::numbers::APPLICATION_ID,
    tcom_processors::orders::APPLICATION_ID,
];

/// The outcome of one check: `"ok"` or what failed.
type CheckResult = Result<(), String>;

impl Dependencies {
    async fn check_kafka(&self) -> CheckResult {
        let consumer = self.kafka.clone();
        let timeout = self.timeout;
        tokio::task::spawn_blocking(move || {
            consumer
                .fetch_metadata(Some(tcom_schemas::topics::TENANTS), timeout)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Every processor that decides this ingress' commands has a live instance: its consumer
    /// group has members. Without one, commands would be written and wait out their timeout
    /// (202) with nobody to decide them.
    async fn check_processors(&self) -> CheckResult {
        let consumer = self.kafka.clone();
        let timeout = self.timeout;
        tokio::task::spawn_blocking(move || {
            let mut missing = Vec::new();
            for group in COMMAND_PROCESSORS {
                let groups = consumer
                    .fetch_group_list(Some(group), timeout)
                    .map_err(|e| format!("cannot describe consumer group {group}: {e}"))?;
                let live = groups
                    .groups()
                    .iter()
                    .any(|g| g.name() == *group && !g.members().is_empty());
                if !live {
                    missing.push(*group);
                }
            }
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("no running instance of {}", missing.join(", ")))
            }
        })
        .await
        .map_err(|e| e.to_string())?
    }

    async fn check_postgres(&self) -> CheckResult {
        sqlx::query("SELECT 1")
            .execute(&self.postgres)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn check_redis(&self) -> CheckResult {
        let mut connection = self
            .redis
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn check_registry(&self) -> CheckResult {
        let response = self
            .http
            .get(format!(
                "{}/subjects",
                self.registry_url.trim_end_matches('/')
            ))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("answered {}", response.status()))
        }
    }
}

async fn bounded(timeout: Duration, check: impl Future<Output = CheckResult>) -> CheckResult {
    tokio::time::timeout(timeout, check)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis())))
}

/// Readiness report.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// Each dependency: `ok`, or why not.
    pub checks: BTreeMap<&'static str, String>,
    /// The tenant that the request's `Host` resolves to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: every dependency answers and the tenant directory is caught up.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready; `checks` says why", body = Readiness)
    )
)]
pub async fn readyz(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let deps = &state.dependencies;
    let t = deps.timeout;
    let (kafka, postgres, redis, registry, processors) = tokio::join!(
        bounded(t, deps.check_kafka()),
        bounded(t, deps.check_postgres()),
        bounded(t, deps.check_redis()),
        bounded(t, deps.check_registry()),
        bounded(t, deps.check_processors()),
    );
    let tenants: CheckResult = if state.tenants.is_caught_up() {
        Ok(())
    } else {
        Err("still reading the tenants topic".to_owned())
    };
    // Without the subscription every command would wait out its timeout and answer 202.
    let replies: CheckResult = if state.commands.replies().is_subscribed() {
        Ok(())
    } else {
        Err("not subscribed to the reply channel".to_owned())
    };
    let mut checks = BTreeMap::new();
    let mut ready = true;
    for (name, result) in [
        ("kafka", kafka),
        ("postgres", postgres),
        ("redis", redis),
        ("schema_registry", registry),
        ("tenant_directory", tenants),
        ("command_replies", replies),
        ("processors", processors),
    ] {
        if let Err(e) = &result {
            tracing::warn!(dependency = name, error = %e, "Readiness check failed.");
            ready = false;
        }
        checks.insert(name, result.err().unwrap_or_else(|| "ok".to_owned()));
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let tenant = match host {
        Some(host) => state
            .tenants
            .resolve(host)
            .await
            .map(|t| t.tenant_id.clone()),
        None => None,
    };
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        checks,
        tenant,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
