//! The roles one `tcom` process can run, and the topics they need.

use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
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

/// Runs the roles until `shutdown` resolves; if one role fails, the others are stopped too,
/// so a half-working process never looks healthy.
pub(crate) async fn run(
    settings: &Settings,
    roles: &[Role],
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
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
                let kafka = settings.kafka_settings();
                let content_codec = codec.clone();
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
                    tasks.spawn(async move {
                        tcom_connectors::views::run(
                            kafka,
                            group.to_owned(),
                            topics,
                            pool,
                            codec,
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
                tasks.spawn(async move {
                    tcom_connectors::contentful::run(kafka, content_pool, codec, content, stop)
                        .await
                        .context("content connector")
                });
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
                        RedisReplySink::new(&settings.redis.url).context("redis.url")?,
                    )),
                };
                let handles = deployment
                    .start_all()
                    .await
                    .context("starting the processors")?;
                let listener = tokio::net::TcpListener::bind(settings.processors.metrics_listen)
                    .await
                    .with_context(|| {
                        format!(
                            "binding processors.metrics_listen {}",
                            settings.processors.metrics_listen
                        )
                    })?;
                let served: Arc<Vec<(String, Arc<tcom_state::metrics::Metrics>)>> = Arc::new(
                    handles
                        .iter()
                        .map(|h| (h.application_id().to_owned(), h.metrics().clone()))
                        .collect(),
                );
                let metrics = axum::Router::new().route(
                    "/metrics",
                    axum::routing::get(move || {
                        let served = served.clone();
                        async move {
                            served
                                .iter()
                                .map(|(application, metrics)| {
                                    metrics.render_prometheus(application)
                                })
                                .collect::<String>()
                        }
                    }),
                );
                let metrics_stop = stopped();
                tasks.spawn(async move {
                    axum::serve(listener, metrics)
                        .with_graceful_shutdown(metrics_stop)
                        .await
                        .context("processors metrics listener")
                });
                let stop = stopped();
                tasks.spawn(async move {
                    stop.await;
                    tokio::task::spawn_blocking(move || {
                        handles
                            .into_iter()
                            .try_for_each(tcom_state::RuntimeHandle::join)
                    })
                    .await
                    .context("processors panicked")?
                    .context("processors")
                });
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
    let mut outcome = Ok(());
    while let Some(joined) = tasks.join_next().await {
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
