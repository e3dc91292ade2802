//! One part of the platform in a child process, for crash tests that kill it mid-work while
//! the test binary's own instance (see `tcom_tests::platform`) shares its consumer group and
//! takes over what the child dropped.
//!
//! `ROLE=payments`: the payments connector in consumer group `GROUP_ID`, calling the
//! simulators at `STRIPE_URL` / `ADYEN_URL`, secrets under `SECRETS_DIR`.
//! `ROLE=orders`: the order processor (instance `INSTANCE_ID`, state in `STATE_DIR`), replies
//! through Redis at `REDIS_URL`; prints `assigned` once it owns a partition.
//! `ROLE=tcm`: the TCM connector alone, in consumer group `GROUP_ID` as static member
//! `INSTANCE_ID` (a restart after a kill takes the dead one's partitions at once, without
//! waiting out its session), relaying `COMMANDS_TOPIC` to the TCM (simulator) at `TCM_URL`
//! and answering on `EVENTS_TOPIC`; for tests that kill it in the middle of a call.
//! All need `KAFKA_BOOTSTRAP_SERVERS` and `SCHEMA_REGISTRY_URL`, log to stderr
//! (`RUST_LOG`), honour `TCOM_FAILPOINT` and stop on SIGTERM.

use std::sync::Arc;
use std::time::Duration;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

async fn terminated() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    term.recv().await;
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let kafka = tcom_state::client::KafkaSettings::new(env("KAFKA_BOOTSTRAP_SERVERS"));
    let codec = Arc::new(tcom_schemas::Codec::new(&env("SCHEMA_REGISTRY_URL")).expect("codec"));
    match env("ROLE").as_str() {
        "payments" => {
            let endpoints = tcom_connectors::payments::connector::ProviderEndpoints::new(
                env("STRIPE_URL"),
                env("ADYEN_URL"),
                tcom_connectors::secrets::SecretStore::new(env("SECRETS_DIR")),
            );
            tcom_connectors::payments::connector::run(
                kafka,
                env("GROUP_ID"),
                endpoints,
                codec,
                Default::default(),
                terminated(),
            )
            .await
            .expect("the payments connector runs");
        }
        "orders" => {
            let deployment = tcom_processors::deployment::Deployment {
                kafka,
                state_dir: env("STATE_DIR").into(),
                instance_id: env("INSTANCE_ID"),
                timer_interval: Duration::from_millis(250),
                commit: tcom_processors::deployment::CommitPolicy {
                    interval: Duration::from_millis(10),
                    when_idle: true,
                },
                codec: tcom_processors::BlockingCodec::new(
                    codec,
                    tokio::runtime::Handle::current(),
                ),
                reply_sink: Some(Arc::new(
                    tcom_connectors::replies::RedisReplySink::new(&env("REDIS_URL"))
                        .expect("redis"),
                )),
            };
            let handle = tcom_state::start(
                deployment.orders(),
                tcom_processors::orders::factory(deployment.codec.clone()),
            )
            .await
            .expect("the order processor starts");
            let announced = async {
                loop {
                    if handle
                        .metrics()
                        .tasks
                        .load(std::sync::atomic::Ordering::Relaxed)
                        > 0
                    {
                        eprintln!("assigned");
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                std::future::pending::<()>().await;
            };
            tokio::select! {
                () = announced => {}
                () = terminated() => {}
            }
            drop(handle);
        }
        "tcm" => {
            let mut kafka = kafka;
            kafka
                .extra
                .push(("group.instance.id".into(), env("INSTANCE_ID")));
            // The broker's minimum: a member that died without a restart is dropped soon.
            kafka
                .extra
                .push(("session.timeout.ms".into(), "6000".into()));
            let setup = tcom_connectors::tcm::connector::TcmSetup {
                client: tcom_connectors::tcm::client::TcmClient::new(
                    env("TCM_URL"),
                    Duration::from_secs(5),
                ),
                keys: None,
                options: tcom_connectors::tcm::connector::TcmOptions {
                    commands_topic: env("COMMANDS_TOPIC"),
                    events_topic: env("EVENTS_TOPIC"),
                    max_backoff: Duration::from_millis(200),
                    ..tcom_connectors::tcm::connector::default_options()
                },
                metrics: Arc::default(),
            };
            tcom_connectors::tcm::connector::run(
                kafka,
                env("GROUP_ID"),
                codec,
                setup,
                terminated(),
            )
            .await
            .expect("the TCM connector runs");
        }
        other => panic!("unknown ROLE {other}"),
    }
}
