//! Building and running the ingress HTTP application.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post, put};
use rdkafka::consumer::BaseConsumer;
use tcom_schemas::Codec;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

use crate::auth::AdminAuth;
use crate::commands::CommandBus;
use crate::health::{self, Dependencies};
use crate::identity::{customer_data_api, owner_api, sign_in_api, staff};
use crate::openapi::ApiDoc;
use crate::problem::{self, Problem};
use crate::replies::ReplyRouter;
use crate::settings::Settings;
use crate::shoppers::{RateLimits, ShopperAuth};
use crate::storefront;
use crate::tenancy::{TenantDirectory, follow_tenants};
use crate::{
    admin, basket_api, catalog_read, content_webhook, number_api, order_api, payment_webhooks,
    platform, shoppers,
};

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub tenants: Arc<TenantDirectory>,
    pub dependencies: Arc<Dependencies>,
    pub auth: Arc<AdminAuth>,
    pub commands: CommandBus,
    pub webhook_secret: Arc<str>,
    pub catalog_cache: Arc<catalog_read::CatalogCache>,
    pub shoppers: Arc<ShopperAuth>,
    pub rate_limits: Arc<RateLimits>,
    pub payments: Arc<crate::settings::PaymentSettings>,
    pub identity: Arc<crate::identity::Identity>,
    /// Verifies the SIM fulfilment house's tracking webhooks.
    pub logistics_webhook_secret: Arc<str>,
    /// Verifies the clearing house's porting webhooks.
    pub carrier_webhook_secret: Arc<str>,
}

impl AppState {
    /// A read transaction in which Row-Level Security shows only `tenant_id`'s rows.
    ///
    /// # Errors
    /// 503 when the database cannot be reached.
    pub async fn tenant_tx(
        &self,
        tenant_id: &str,
    ) -> Result<sqlx::Transaction<'_, sqlx::Postgres>, Problem> {
        tcom_connectors::postgres::begin_for_tenant(&self.dependencies.postgres, tenant_id)
            .await
            .map_err(|e| Problem::database(&e))
    }
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
        .route("/.well-known/jwks.json", get(sign_in_api::jwks))
        .route("/v1/storefront/sign-in", post(sign_in_api::start_sign_in))
        .route(
            "/v1/storefront/sign-in/callback",
            post(sign_in_api::finish_sign_in),
        )
        .route("/v1/storefront/sign-out", post(sign_in_api::sign_out))
        .route(
            "/v1/storefront/customers/me",
            delete(customer_data_api::erase_me),
        )
        .route(
            "/v1/storefront/customers/me/data",
            get(customer_data_api::export_my_data),
        )
        .route(
            "/v1/storefront/orders/{order_id}/owner-verification",
            post(owner_api::verify_owner),
        )
        .route(
            "/v1/storefront/orders/{order_id}/items/{item_id}/sims/{index}/activation-code.png",
            get(crate::esim_api::activation_qr_png),
        )
        .route(
            "/v1/storefront/orders/{order_id}/items/{item_id}/sims/{index}/activation-code.svg",
            get(crate::esim_api::activation_qr_svg),
        )
        .route(
            "/v1/storefront/orders/{order_id}/items/{item_id}/sims/{index}/activation-code",
            get(crate::esim_api::activation_code_text),
        )
        .route(
            "/v1/storefront/orders/{order_id}/items/{item_id}/sims/{index}/confirmation-code",
            get(crate::esim_api::confirmation_code),
        )
        .route(
            "/v1/admin/customers/{customer_id}",
            delete(customer_data_api::admin_erase),
        )
        .route(
            "/v1/admin/customers/{customer_id}/data",
            get(customer_data_api::admin_export),
        )
        .route(
            "/v1/admin/personal-data-audit",
            get(customer_data_api::audit_log),
        )
        .route("/v1/admin/sign-in", post(staff::start_staff_sign_in))
        .route(
            "/v1/admin/sign-in/callback",
            post(staff::finish_staff_sign_in),
        )
        .route("/v1/admin/sign-out", post(staff::staff_sign_out))
        .route("/v1/admin/staff", get(staff::list_staff))
        .route("/v1/admin/staff/{staff_id}", put(staff::grant_roles))
        .route("/v1/platform/sign-in", post(staff::start_operator_sign_in))
        .route(
            "/v1/platform/sign-in/callback",
            post(staff::finish_operator_sign_in),
        )
        .route("/v1/storefront/catalog", get(catalog_read::catalog))
        .route("/v1/storefront/numbers", get(number_api::search_numbers))
        .route("/v1/storefront/baskets", post(basket_api::create_basket))
        .route(
            "/v1/storefront/baskets/{basket_id}",
            get(basket_api::get_basket).delete(basket_api::abandon_basket),
        )
        .route(
            "/v1/storefront/baskets/{basket_id}/lines",
            post(basket_api::add_line),
        )
        .route(
            "/v1/storefront/baskets/{basket_id}/lines/{line_id}",
            patch(basket_api::update_line).delete(basket_api::remove_line),
        )
        .route(
            "/v1/storefront/baskets/{basket_id}/login",
            post(basket_api::login),
        )
        .route(
            "/v1/storefront/baskets/{basket_id}/readiness",
            get(basket_api::basket_readiness),
        )
        .route(
            "/v1/storefront/baskets/{basket_id}/checkout",
            post(order_api::checkout),
        )
        .route("/v1/storefront/orders", get(order_api::my_orders))
        .route("/v1/storefront/orders/{order_id}", get(order_api::my_order))
        .route(
            "/v1/storefront/orders/{order_id}/cancel",
            post(order_api::cancel_order),
        )
        .route(
            "/v1/storefront/orders/{order_id}/items/{item_id}/port-in",
            post(order_api::correct_port_in),
        )
        .route(
            "/v1/webhooks/logistics",
            post(crate::provider_webhooks::receive),
        )
        .route(
            "/v1/webhooks/carrier",
            post(crate::provider_webhooks::receive_carrier),
        )
        .route(
            "/v1/storefront/subscriptions",
            get(crate::product_api::my_subscriptions),
        )
        .route(
            "/v1/admin/subscriptions",
            get(crate::product_api::brand_subscriptions),
        )
        .route("/v1/admin/orders", get(order_api::brand_orders))
        .route("/v1/admin/orders/{order_id}", get(order_api::brand_order))
        .route(
            "/v1/webhooks/stripe/{tenant_id}",
            post(payment_webhooks::stripe_webhook),
        )
        .route(
            "/v1/webhooks/adyen/{tenant_id}",
            post(payment_webhooks::adyen_webhook),
        )
        .route(
            "/v1/admin/number-pool",
            get(number_api::list_pool).post(number_api::import_numbers),
        )
        .route("/v1/platform/tenants", post(platform::onboard))
        .route(
            "/v1/platform/tenants/{tenant_id}",
            get(platform::get_tenant),
        )
        .route(
            "/v1/platform/tenants/{tenant_id}/settings",
            put(platform::update_settings),
        )
        .route(
            "/v1/platform/tenants/{tenant_id}/suspend",
            post(platform::suspend),
        )
        .route("/v1/admin/offerings", get(admin::list_offerings))
        .route(
            "/v1/admin/offerings/{offering_id}",
            get(admin::get_offering).put(admin::put_offering),
        )
        .route(
            "/v1/admin/offerings/{offering_id}/activate",
            post(admin::activate_offering),
        )
        .route(
            "/v1/admin/offerings/{offering_id}/retire",
            post(admin::retire_offering),
        )
        .route(
            "/v1/webhooks/contentful/{tenant_id}",
            post(content_webhook::receive),
        )
        .route("/v1/admin/campaigns", get(admin::list_campaigns))
        .route(
            "/v1/admin/campaigns/{campaign_id}",
            get(admin::get_campaign).put(admin::put_campaign),
        )
        .route(
            "/v1/admin/campaigns/{campaign_id}/end",
            post(admin::end_campaign),
        )
        .fallback(|| async { Problem::not_found() })
        .with_state(state)
        // Inside the body limit: it buffers bodies to check them (and fingerprint them).
        .layer(axum::middleware::from_fn(crate::write_requests::inspect))
        .layer(RequestBodyLimitLayer::new(settings.http.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            settings.http.request_timeout(),
        ))
        // Outside the body limit and the timeout, so their answers become problems too.
        .layer(axum::middleware::map_response(problem::normalise_errors))
        .layer(axum::middleware::map_response(shoppers::with_retry_after))
        .layer(TraceLayer::new_for_http())
}

/// The ingress, bound to its port and ready to serve.
#[derive(Debug)]
pub struct Application {
    listener: tokio::net::TcpListener,
    router: Router,
    grace: Duration,
    follower: tokio::task::JoinHandle<()>,
    reply_listener: tokio::task::JoinHandle<()>,
}

impl Application {
    /// Connects lazily to the dependencies (readiness reports on them), starts following the
    /// tenants topic and binds the listen address (port 0 picks a free port).
    ///
    /// # Errors
    /// The address cannot be bound or a setting is invalid.
    pub async fn build(settings: &Settings) -> Result<Self, BuildError> {
        settings
            .check_safe_to_run()
            .map_err(|problems| BuildError::Setting(problems.join("; ")))?;
        let kafka = settings.kafka_settings();
        let codec = Arc::new(
            Codec::new(&settings.schema_registry.url)
                .map_err(|e| BuildError::Setting(e.to_string()))?,
        );
        let tenants = Arc::new(TenantDirectory::default());
        let follower = tokio::spawn(follow_tenants(
            tenants.clone(),
            kafka.clone(),
            codec.clone(),
        ));
        // A fresh id per process: replies for a previous incarnation's requests have nobody
        // waiting anyway.
        let replies = Arc::new(ReplyRouter::new(format!(
            "ingress-{}",
            uuid::Uuid::now_v7()
        )));
        let probe: BaseConsumer = kafka
            .client_config()
            .create()
            .map_err(|e| BuildError::Setting(format!("kafka: {e}")))?;
        let postgres = sqlx::postgres::PgPoolOptions::new()
            .max_connections(settings.database.max_connections)
            .acquire_timeout(settings.readiness.check_timeout())
            .after_connect(|connection, _| {
                Box::pin(crate::database_role::refuse_rls_bypass(connection))
            })
            .connect_lazy(&settings.database.url)
            .map_err(|e| BuildError::Setting(format!("database.url: {e}")))?;
        // Refuse to start as a role that bypasses Row-Level Security. An unreachable
        // database is not refused here: readiness reports it until it answers, and every
        // connection made later is checked too.
        // (The pool retries connections whose `after_connect` fails until it times out, so
        // the start-up check uses a connection of its own.)
        let probe_connection = async {
            use sqlx::Connection;
            let mut connection = sqlx::PgConnection::connect(&settings.database.url).await?;
            crate::database_role::privileges(&mut connection).await
        };
        if let Ok(Ok(role)) =
            tokio::time::timeout(settings.readiness.check_timeout(), probe_connection).await
        {
            role.check()
                .map_err(|reason| BuildError::Setting(format!("database.url: {reason}")))?;
        }
        let redis = redis::Client::open(settings.redis.url.as_str())
            .map_err(|e| BuildError::Setting(format!("redis.url: {e}")))?;
        let redis_for_limits = redis.clone();
        let identity = Arc::new(crate::identity::Identity::new(
            settings,
            postgres.clone(),
            redis.clone(),
        ));
        let reply_listener = {
            let replies = replies.clone();
            let redis = redis.clone();
            tokio::spawn(async move { replies.listen(redis).await })
        };
        let commands = CommandBus::new(
            &kafka,
            codec,
            replies,
            settings.commands.reply_timeout(),
            Duration::from_millis(settings.kafka.delivery_timeout_ms),
        )
        .map_err(|e| BuildError::Setting(format!("kafka: {e}")))?;
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
            auth: Arc::new(AdminAuth::new(&settings.auth)),
            commands,
            webhook_secret: settings.content.webhook_secret.as_str().into(),
            catalog_cache: Arc::default(),
            shoppers: Arc::new(ShopperAuth::new(&settings.auth)),
            rate_limits: Arc::new(RateLimits::new(
                redis_for_limits,
                settings.redis.response_timeout(),
            )),
            payments: Arc::new(settings.payments.clone()),
            identity,
            logistics_webhook_secret: settings.logistics.webhook_secret.as_str().into(),
            carrier_webhook_secret: settings.carrier.webhook_secret.as_str().into(),
        };
        let listener = tokio::net::TcpListener::bind(settings.http.listen)
            .await
            .map_err(|e| BuildError::Bind(settings.http.listen, e))?;
        Ok(Self {
            listener,
            router: router(state, settings),
            grace: Duration::from_millis(settings.http.shutdown_grace_ms),
            follower,
            reply_listener,
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
        self.reply_listener.abort();
        result
    }
}
