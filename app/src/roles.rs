//! The roles one `tcom` process can run, and the topics they need.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tcom_connectors::dead_letter::ConnectorMetrics;
use tcom_connectors::replies::RedisReplySink;
use tcom_ingress::{Application, Settings};
use tcom_processors::BlockingCodec;
use tcom_processors::deployment::Deployment;
use tcom_schemas::topics::{self, Retention};
use tcom_state::admin::TopicSpec;
use tokio::sync::watch;

/// A part of the platform that can run in its own process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The HTTP edge.
    Ingress,
    /// Views into PostgreSQL and calls to outside systems.
    Connectors,
    /// The exactly-once domain processors (tenants, catalog).
    Processors,
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "ingress" => Ok(Self::Ingress),
            "connectors" => Ok(Self::Connectors),
            "processors" => Ok(Self::Processors),
            other => Err(format!(
                "unknown role {other:?}: expected ingress, connectors or processors"
            )),
        }
    }
}

/// Every topic the platform declares, as topic specs.
pub(crate) fn topic_specs() -> Vec<TopicSpec> {
    topics::ALL
        .iter()
        .map(|t| match t.retention {
            Retention::Compacted => TopicSpec::compacted(t.name, t.partitions),
            Retention::Stream => TopicSpec::new(t.name, t.partitions),
        })
        .collect()
}

/// Refuses a pool whose role may bypass Row-Level Security.
async fn refuse_rls_bypass(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let mut connection = pool.acquire().await.context("connecting to PostgreSQL")?;
    tcom_ingress::database_role::privileges(&mut connection)
        .await
        .context("reading the database role's privileges")?
        .check()
        .map_err(|reason| anyhow::anyhow!("refusing to start: {reason}"))
}

/// Runs the roles until `shutdown` resolves; if one role fails, the others are stopped too,
/// so a half-working process never looks healthy.
pub(crate) async fn run(
    settings: &Settings,
    roles: &[Role],
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    settings
        .check_safe_to_run()
        .map_err(|problems| anyhow::anyhow!("refusing to start: {}", problems.join("; ")))?;
    let codec = Arc::new(tcom_schemas::Codec::new(&settings.schema_registry.url)?);
    codec
        .register_all(&tcom_schemas::contract::all())
        .await
        .context("registering schemas (is the schema registry running?)")?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    // The connectors' retry and dead-letter counters: `/metrics/connectors` on
    // `processors.metrics_listen` (also `/metrics` there when this process runs no processors).
    let connector_metrics: Arc<Vec<(&str, Arc<ConnectorMetrics>)>> = Arc::new(
        [
            tcom_connectors::views::GROUP_ID,
            tcom_connectors::views::STOREFRONT_GROUP_ID,
            "tcom-connector-content",
            tcom_connectors::payments::connector::GROUP_ID,
            tcom_connectors::tcm::connector::GROUP_ID,
            tcom_connectors::sim_connector::GROUP_ID,
            tcom_connectors::porting::connector::GROUP_ID,
        ]
        .map(|name| (name, Arc::default()))
        .to_vec(),
    );
    let connector_options = |name: &str| tcom_connectors::dead_letter::Options {
        retry: Default::default(),
        metrics: connector_metrics
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, m)| m.clone())
            .unwrap_or_default(),
    };
    let connectors_running = roles.contains(&Role::Connectors);
    // The periodic TCM reconciliation's counters and gauges, served beside the connectors'.
    let reconcile_metrics: Arc<tcom_connectors::tcm::reconcile::ReconcileMetrics> = Arc::default();
    let served = connector_metrics.clone();
    let reconciled = reconcile_metrics.clone();
    let connector_route = axum::routing::get(move || {
        let mut text = served
            .iter()
            .filter(|_| connectors_running)
            .map(|(name, metrics)| metrics.render_prometheus(name))
            .collect::<String>();
        if connectors_running {
            text.push_str(&reconciled.render_prometheus());
        }
        std::future::ready(text)
    });
    for role in roles {
        match role {
            Role::Ingress => {
                let app = Application::build(settings).await?;
                let stop = stopped();
                tasks.spawn(async move { app.run_until(stop).await.context("ingress") });
            }
            Role::Connectors => {
                let pool = tcom_connectors::postgres::connect(
                    &settings.database.url,
                    settings.database.max_connections,
                )
                .await
                .context("connecting to PostgreSQL")?;
                refuse_rls_bypass(&pool).await?;
                let kafka = settings.kafka_settings();
                let content_codec = codec.clone();
                let payments_codec = codec.clone();
                let tcm_codec = codec.clone();
                let tcm_pool = pool.clone();
                let sim_codec = codec.clone();
                let porting_codec = codec.clone();
                let sim_pool = pool.clone();
                for (group, topics) in [
                    (
                        tcom_connectors::views::GROUP_ID,
                        tcom_connectors::views::TOPICS,
                    ),
                    (
                        tcom_connectors::views::STOREFRONT_GROUP_ID,
                        tcom_connectors::views::STOREFRONT_TOPICS,
                    ),
                ] {
                    let (kafka, pool, codec, stop) =
                        (kafka.clone(), pool.clone(), codec.clone(), stopped());
                    let options = connector_options(group);
                    tasks.spawn(async move {
                        tcom_connectors::views::run_with(
                            kafka,
                            group.to_owned(),
                            topics,
                            pool,
                            codec,
                            options,
                            stop,
                        )
                        .await
                        .with_context(|| format!("view connector {group}"))
                    });
                }
                let content = tcom_connectors::contentful::ContentConfig {
                    delivery_url: settings.content.delivery_url.clone(),
                    tokens: settings.content.tokens.clone(),
                    poll_interval: std::time::Duration::from_millis(
                        settings.content.poll_interval_ms,
                    ),
                };
                let content_pool = tcom_connectors::postgres::connect(&settings.database.url, 2)
                    .await
                    .context("connecting to PostgreSQL")?;
                let (kafka, stop) = (settings.kafka_settings(), stopped());
                let codec = content_codec;
                let options = connector_options("tcom-connector-content");
                tasks.spawn(async move {
                    tcom_connectors::contentful::run_with(
                        kafka,
                        content_pool,
                        codec,
                        content,
                        options,
                        stop,
                    )
                    .await
                    .context("content connector")
                });
                let endpoints = tcom_connectors::payments::connector::ProviderEndpoints::new(
                    settings.payments.stripe_url.clone(),
                    settings.payments.adyen_url.clone(),
                    tcom_connectors::secrets::SecretStore::new(&settings.payments.secrets_dir),
                );
                let (kafka, codec, stop) = (settings.kafka_settings(), payments_codec, stopped());
                let options = connector_options(tcom_connectors::payments::connector::GROUP_ID);
                tasks.spawn(async move {
                    tcom_connectors::payments::connector::run(
                        kafka,
                        tcom_connectors::payments::connector::GROUP_ID.to_owned(),
                        endpoints,
                        codec,
                        options,
                        stop,
                    )
                    .await
                    .context("payments connector")
                });
                let tcm = tcom_connectors::tcm::connector::TcmSetup {
                    client: tcom_connectors::tcm::client::TcmClient::new(
                        settings.tcm.url.clone(),
                        std::time::Duration::from_millis(settings.tcm.timeout_ms),
                    ),
                    // Opens the owner's sealed name for TCM, the system of record.
                    keys: Some(tcom_connectors::personal_data::KeyStore::new(
                        tcm_pool,
                        tcom_connectors::personal_data::SecretKey::derive_master(
                            &settings.identity.master_key,
                        ),
                    )),
                    options: tcom_connectors::tcm::connector::TcmOptions {
                        breaker: tcom_connectors::circuit_breaker::BreakerSettings {
                            failure_threshold: settings.tcm.breaker_failures,
                            open_for: std::time::Duration::from_millis(
                                settings.tcm.breaker_open_ms,
                            ),
                            close_after: 1,
                        },
                        ..tcom_connectors::tcm::connector::default_options()
                    },
                    metrics: connector_options(tcom_connectors::tcm::connector::GROUP_ID).metrics,
                };
                let (kafka, stop) = (settings.kafka_settings(), stopped());
                tasks.spawn(async move {
                    tcom_connectors::tcm::connector::run(
                        kafka,
                        tcom_connectors::tcm::connector::GROUP_ID.to_owned(),
                        tcm_codec,
                        tcm,
                        stop,
                    )
                    .await
                    .context("TCM connector")
                });
                let sim = tcom_connectors::sim_connector::SimSetup {
                    smdp: settings.smdp.client(),
                    logistics: settings.logistics.client(),
                    // Seals the eSIM codes, opens the delivery address.
                    keys: tcom_connectors::personal_data::KeyStore::new(
                        sim_pool,
                        tcom_connectors::personal_data::SecretKey::derive_master(
                            &settings.identity.master_key,
                        ),
                    ),
                    master_key: settings.identity.master_key.clone(),
                    confirmation_codes: settings.smdp.confirmation_code,
                    options: tcom_connectors::outbox_relay::RelayOptions {
                        breaker: tcom_connectors::circuit_breaker::BreakerSettings {
                            failure_threshold: settings.tcm.breaker_failures,
                            open_for: std::time::Duration::from_millis(
                                settings.tcm.breaker_open_ms,
                            ),
                            close_after: 1,
                        },
                        ..tcom_connectors::sim_connector::default_options()
                    },
                    metrics: connector_options(tcom_connectors::sim_connector::GROUP_ID).metrics,
                };
                let (kafka, stop) = (settings.kafka_settings(), stopped());
                tasks.spawn(async move {
                    tcom_connectors::sim_connector::run(
                        kafka,
                        tcom_connectors::sim_connector::GROUP_ID.to_owned(),
                        sim_codec,
                        sim,
                        stop,
                    )
                    .await
                    .context("SIM connector")
                });
                let porting = tcom_connectors::porting::connector::PortingSetup {
                    carrier: tcom_connectors::porting::client::CarrierClient::new(
                        settings.carrier.url.clone(),
                        settings.carrier.token.clone(),
                        settings.carrier.timeout(),
                    ),
                    // Opens the owner's CPR number for the clearing house.
                    keys: tcom_connectors::personal_data::KeyStore::new(
                        pool.clone(),
                        tcom_connectors::personal_data::SecretKey::derive_master(
                            &settings.identity.master_key,
                        ),
                    ),
                    options: tcom_connectors::outbox_relay::RelayOptions {
                        breaker: tcom_connectors::circuit_breaker::BreakerSettings {
                            failure_threshold: settings.tcm.breaker_failures,
                            open_for: std::time::Duration::from_millis(
                                settings.tcm.breaker_open_ms,
                            ),
                            close_after: 1,
                        },
                        ..tcom_connectors::porting::connector::default_options()
                    },
                    metrics: connector_options(tcom_connectors::porting::connector::GROUP_ID)
                        .metrics,
                };
                let (kafka, stop) = (settings.kafka_settings(), stopped());
                tasks.spawn(async move {
                    tcom_connectors::porting::connector::run(
                        kafka,
                        tcom_connectors::porting::connector::GROUP_ID.to_owned(),
                        porting_codec,
                        porting,
                        stop,
                    )
                    .await
                    .context("porting connector")
                });
                if settings.tcm.reconcile_interval_ms > 0 {
                    let reconciler = tcom_connectors::tcm::reconcile::Reconciler::new(
                        pool.clone(),
                        tcom_connectors::tcm::client::TcmClient::new(
                            settings.tcm.url.clone(),
                            std::time::Duration::from_millis(settings.tcm.timeout_ms),
                        ),
                    )
                    .with_metrics(reconcile_metrics.clone());
                    let interval =
                        std::time::Duration::from_millis(settings.tcm.reconcile_interval_ms);
                    let (kafka, stop) = (settings.kafka_settings(), stopped());
                    tasks.spawn(async move {
                        tcom_connectors::tcm::reconcile::run_periodically(
                            reconciler, kafka, interval, stop,
                        )
                        .await;
                        Ok(())
                    });
                }
                if !roles.contains(&Role::Processors) {
                    let listener =
                        tokio::net::TcpListener::bind(settings.processors.metrics_listen)
                            .await
                            .context("binding processors.metrics_listen for the connectors")?;
                    let router = axum::Router::new()
                        .route("/metrics", connector_route.clone())
                        .route("/metrics/connectors", connector_route.clone());
                    let metrics_stop = stopped();
                    tasks.spawn(async move {
                        axum::serve(listener, router)
                            .with_graceful_shutdown(metrics_stop)
                            .await
                            .context("connectors metrics listener")
                    });
                }
            }
            Role::Processors => {
                let deployment = Deployment {
                    kafka: settings.kafka_settings(),
                    state_dir: settings.processors.state_dir.clone(),
                    instance_id: settings.processors.instance_id.clone(),
                    timer_interval: std::time::Duration::from_millis(
                        settings.processors.timer_interval_ms,
                    ),
                    commit: tcom_processors::deployment::CommitPolicy {
                        interval: std::time::Duration::from_millis(
                            settings.processors.commit_interval_ms,
                        ),
                        when_idle: settings.processors.commit_when_idle,
                    },
                    codec: BlockingCodec::new(codec.clone(), tokio::runtime::Handle::current()),
                    reply_sink: Some(Arc::new(
                        RedisReplySink::with_timeout(
                            &settings.redis.url,
                            settings.redis.response_timeout(),
                        )
                        .context("redis.url")?,
                    )),
                };
                let handles = deployment
                    .start_all()
                    .await
                    .context("starting the processors")?;
                let runtimes = Arc::new(std::sync::Mutex::new(handles));
                let listener = tokio::net::TcpListener::bind(settings.processors.metrics_listen)
                    .await
                    .with_context(|| {
                        format!(
                            "binding processors.metrics_listen {}",
                            settings.processors.metrics_listen
                        )
                    })?;
                let metrics_stop = stopped();
                let router = crate::processors_http::router(runtimes.clone())
                    .route("/metrics/connectors", connector_route.clone());
                tasks.spawn(async move {
                    axum::serve(listener, router)
                        .with_graceful_shutdown(metrics_stop)
                        .await
                        .context("processors metrics listener")
                });
                let stop = stopped();
                tasks.spawn(crate::processors_http::supervise(runtimes, stop));
            }
        }
    }
    tracing::info!(?roles, "Platform running.");

    let stop_tx = Arc::new(stop_tx);
    let on_signal = stop_tx.clone();
    tokio::spawn(async move {
        shutdown.await;
        let _ = on_signal.send(true);
    });
    // Once stopping, every role has the HTTP grace period plus a bounded drain to finish; a
    // role still busy after that (a connector stuck in a call, a runtime in a long restore)
    // does not keep the process alive: it exits non-zero and says so.
    let bound = Duration::from_millis(settings.http.shutdown_grace_ms) + SHUTDOWN_DRAIN;
    let stopping = {
        let mut rx = stop_tx.subscribe();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
            tokio::time::sleep(bound).await;
        }
    };
    tokio::pin!(stopping);
    let mut outcome = Ok(());
    loop {
        let joined = tokio::select! {
            joined = tasks.join_next() => joined,
            () = &mut stopping => {
                tracing::error!(
                    bound_ms = bound.as_millis() as u64,
                    still_running = tasks.len(),
                    "Shutdown did not finish in time; exiting."
                );
                std::process::exit(1);
            }
        };
        let Some(joined) = joined else { break };
        let result = joined.context("a role panicked").and_then(|r| r);
        if let Err(e) = result {
            tracing::error!(
                error = format!("{e:#}"),
                "A role failed; stopping the others."
            );
            let _ = stop_tx.send(true);
            outcome = Err(e);
        }
    }
    outcome
}

/// How long roles may take to drain after the HTTP grace period (final commits, connectors'
/// current record).
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(15);
