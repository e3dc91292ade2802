//! One part of the platform in a child process, for crash tests that kill it mid-work while
//! the test binary's own instance (see `tcom_tests::platform`) shares its consumer group and
//! takes over what the child dropped.
//!
//! `ROLE=payments`: the payments connector in consumer group `GROUP_ID`, calling the
//! simulators at `STRIPE_URL` / `ADYEN_URL`, secrets under `SECRETS_DIR`.
//! `ROLE=orders`: the order processor (instance `INSTANCE_ID`, state in `STATE_DIR`), replies
//! through Redis at `REDIS_URL`; prints `assigned` once it owns a partition.
//! Both need `KAFKA_BOOTSTRAP_SERVERS` and `SCHEMA_REGISTRY_URL`, log to stderr
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
        other => panic!("unknown ROLE {other}"),
    }
}
