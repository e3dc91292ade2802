//! Building and running the ingress HTTP application.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use rdkafka::consumer::BaseConsumer;
use tcom_schemas::Codec;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

use crate::health::{self, Dependencies};
use crate::openapi::ApiDoc;
use crate::problem::{self, Problem};
use crate::settings::Settings;
use crate::storefront;
use crate::tenancy::{TenantDirectory, follow_tenants};

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub tenants: Arc<TenantDirectory>,
    pub dependencies: Arc<Dependencies>,
}

/// Errors while building the application.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot bind {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("invalid setting: {0}")]
    Setting(String),
}

/// The routes, given the state. Separate from [`Application`] so tests can drive it with
/// `Router::oneshot` without a socket.
pub fn router(state: AppState, settings: &Settings) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route(
            "/openapi.json",
            get(|| async { axum::Json(ApiDoc::openapi()) }),
        )
        .route("/v1/storefront/tenant", get(storefront::current_tenant))
        .fallback(|| async { Problem::not_found() })
        .with_state(state)
        .layer(axum::middleware::map_response(problem::normalise_errors))
        .layer(RequestBodyLimitLayer::new(settings.http.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            settings.http.request_timeout(),
        ))
        .layer(TraceLayer::new_for_http())
}

/// The ingress, bound to its port and ready to serve.
#[derive(Debug)]
pub struct Application {
    listener: tokio::net::TcpListener,
    router: Router,
    grace: Duration,
    follower: tokio::task::JoinHandle<()>,
}

impl Application {
    /// Connects lazily to the dependencies (readiness reports on them), starts following the
    /// tenants topic and binds the listen address (port 0 picks a free port).
    ///
    /// # Errors
    /// The address cannot be bound or a setting is invalid.
    pub async fn build(settings: &Settings) -> Result<Self, BuildError> {
        let kafka = settings.kafka_settings();
        let codec = Arc::new(
            Codec::new(&settings.schema_registry.url)
                .map_err(|e| BuildError::Setting(e.to_string()))?,
        );
        let tenants = Arc::new(TenantDirectory::default());
        let follower = tokio::spawn(follow_tenants(tenants.clone(), kafka.clone(), codec));
        let probe: BaseConsumer = kafka
            .client_config()
            .create()
            .map_err(|e| BuildError::Setting(format!("kafka: {e}")))?;
        let postgres = sqlx::postgres::PgPoolOptions::new()
            .max_connections(settings.database.max_connections)
            .acquire_timeout(settings.readiness.check_timeout())
            .connect_lazy(&settings.database.url)
            .map_err(|e| BuildError::Setting(format!("database.url: {e}")))?;
        let redis = redis::Client::open(settings.redis.url.as_str())
            .map_err(|e| BuildError::Setting(format!("redis.url: {e}")))?;
        let dependencies = Arc::new(Dependencies {
            kafka: Arc::new(probe),
            postgres,
            redis,
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .map_err(|e| BuildError::Setting(e.to_string()))?,
            registry_url: settings.schema_registry.url.clone(),
            timeout: settings.readiness.check_timeout(),
        });
        let state = AppState {
            tenants,
            dependencies,
        };
        let listener = tokio::net::TcpListener::bind(settings.http.listen)
            .await
            .map_err(|e| BuildError::Bind(settings.http.listen, e))?;
        Ok(Self {
            listener,
            router: router(state, settings),
            grace: Duration::from_millis(settings.http.shutdown_grace_ms),
            follower,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish for the grace
    /// period.
    ///
    /// # Errors
    /// The server failed.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(address = %self.local_addr(), "Ingress listening.");
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let grace = self.grace;
        let serve = axum::serve(self.listener, self.router).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stopped_tx.send(());
        });
        let result = tokio::select! {
            result = serve => result,
            _ = async {
                let _ = stopped_rx.await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(grace_ms = grace.as_millis() as u64, "Requests still running after the grace period; stopping.");
                Ok(())
            }
        };
        self.follower.abort();
        result
    }
}
