//! Helpers for the end-to-end tests: where the stack is, unique names so tests run in
//! parallel against one broker, one PostgreSQL and one Redis, and an ingress on a free port.
//!
//! The stack must be running: `scripts/test` starts it and exports its addresses. A test
//! run without it fails at once and says so, rather than skipping.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use tcom_ingress::{Application, Settings};
use tcom_schemas::tenant::{Tenant, TenantSettings, TenantStatus};
use tcom_schemas::{Codec, Contract};
use tcom_state::client::KafkaSettings;

/// Addresses of the running stack.
#[derive(Debug, Clone)]
pub struct Stack {
    pub kafka: String,
    pub database_url: String,
    pub redis_url: String,
    pub registry_url: String,
}

fn required(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: these tests need the local stack. Run `scripts/test`, or `scripts/stack up` \
             and `source .stack/env` before `cargo test`."
        )
    })
}

/// The stack the tests run against.
pub fn stack() -> Stack {
    Stack {
        kafka: required("KAFKA_BOOTSTRAP_SERVERS"),
        database_url: required("DATABASE_URL"),
        redis_url: required("REDIS_URL"),
        registry_url: required("SCHEMA_REGISTRY_URL"),
    }
}

impl Stack {
    pub fn kafka_settings(&self) -> KafkaSettings {
        KafkaSettings::new(&self.kafka)
    }
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// The platform's settings from `config/`, pointed at the stack, listening on a free port.
pub fn settings() -> Settings {
    let stack = stack();
    let config_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config");
    let mut settings = Settings::load(&config_dir).expect("config/default.toml loads");
    // Tests run locally: the development secrets are what they sign with.
    settings.mode = tcom_ingress::settings::Mode::Local;
    settings.http.listen = "127.0.0.1:0".parse().unwrap();
    settings.kafka.bootstrap_servers = stack.kafka;
    settings.database.url = stack.database_url;
    settings.redis.url = stack.redis_url;
    settings.schema_registry.url = stack.registry_url;
    // Tests assert on the processors' answers: on a loaded two-core machine (the whole suite
    // in parallel) an answer can take longer than the production default of 3 s, and a 202
    // would fail a test about something else (8 s: still inside the 10 s request timeout).
    // The tests of the 202 itself set their own.
    settings.commands.reply_timeout_ms = 8_000;
    settings
}

/// An ingress serving on a free port until the test ends.
#[derive(Debug)]
pub struct TestApp {
    pub address: SocketAddr,
    pub http: reqwest::Client,
}

impl TestApp {
    /// `http://127.0.0.1:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }
}

/// Starts an ingress in this process.
pub async fn spawn_ingress() -> TestApp {
    let app = Application::build(&settings())
        .await
        .expect("ingress builds");
    let address = app.local_addr();
    tokio::spawn(app.run_until(std::future::pending()));
    TestApp {
        address,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
    }
}

/// A tenant with the given id and domains.
pub fn tenant(id: &str, domains: &[String], version: i64) -> Tenant {
    Tenant {
        tenant_id: id.to_owned(),
        status: TenantStatus::Active,
        settings: TenantSettings {
            name: format!("Brand {id}"),
            domains: domains.to_vec(),
            ..tcom_schemas::fixtures::danish_settings(&[])
        },
        version,
        updated_at: 1_795_305_600_000 + version,
    }
}

/// Publishes a tenant record (or a tombstone) to the tenants topic.
pub async fn publish_tenant(tenant_id: &str, tenant: Option<&Tenant>) {
    let stack = stack();
    let producer: FutureProducer = stack
        .kafka_settings()
        .idempotent_producer()
        .create()
        .unwrap();
    let payload = match tenant {
        Some(t) => Some(
            Codec::new(&stack.registry_url)
                .unwrap()
                .encode(t)
                .await
                .unwrap(),
        ),
        None => None,
    };
    let mut record = FutureRecord::to(Tenant::TOPIC).key(tenant_id);
    if let Some(payload) = payload.as_deref() {
        record = record.payload(payload);
    }
    producer
        .send(record, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

/// A fresh database with the migrations applied, dropped by nobody: names are unique, and the
/// stack's data folder is thrown away with it.
pub async fn fresh_database() -> (sqlx::PgPool, String) {
    let stack = stack();
    let name = unique("test").replace('-', "_");
    let admin = sqlx::PgPool::connect(&stack.database_url)
        .await
        .expect("PostgreSQL reachable");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    let (base, _) = stack.database_url.rsplit_once('/').unwrap();
    let url = format!("{base}/{name}");
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    tcom_connectors::postgres::migrate(&pool)
        .await
        .expect("migrations apply");
    (pool, url)
}

/// Polls `check` every 20 ms until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The platform's processors (tenants, catalog) and view connector, started once per test
/// binary on their own runtime, with views in their own database.
#[derive(Debug)]
pub struct Platform {
    pub database_url: String,
    /// The Stripe and Adyen simulators the payments connector calls.
    pub stripe_url: String,
    pub adyen_url: String,
    /// The OpenID Connect broker simulator (MitID-shaped); issuers are `{broker_url}/realms/…`.
    pub broker_url: String,
    /// The TCM simulator the platform's TCM connector activates subscriptions in.
    pub tcm_url: String,
    /// The SM-DP+ (ES2+) and SIM logistics simulators the SIM connector calls.
    pub smdp_url: String,
    pub logistics_url: String,
    /// The clearing house simulator the porting connector submits port-ins to.
    pub carrier_url: String,
    /// Where tenants' `file://` secret references are read from (tests write their keys here).
    pub secrets_dir: PathBuf,
    /// The consumer group of the payments connector (a second instance may join it).
    pub payments_group: String,
}

impl Platform {
    /// Stores a secret under `name`, for a tenant's `file://{name}` reference.
    pub fn put_secret(&self, name: &str, value: &str) -> String {
        let path = self.secrets_dir.join(name);
        std::fs::create_dir_all(path.parent().expect("a secret file has a folder")).unwrap();
        std::fs::write(&path, value).unwrap();
        format!("file://{name}")
    }
}

/// Serves a simulator in this process on a free port; returns its base URL.
async fn start_simulator<F, Fut>(serve: F) -> String
where
    F: FnOnce(
        std::net::SocketAddr,
        std::future::Pending<()>,
        Box<dyn FnOnce(std::net::SocketAddr) + Send>,
    ) -> Fut,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let on_bound: Box<dyn FnOnce(std::net::SocketAddr) + Send> = Box::new(move |address| {
        let _ = bound_tx.send(address);
    });
    let running = serve(
        "127.0.0.1:0".parse().unwrap(),
        std::future::pending(),
        on_bound,
    );
    tokio::spawn(async move {
        if let Err(e) = running.await {
            connector_died("payment simulator", &e.to_string());
        }
    });
    let address = bound_rx.await.expect("the simulator binds");
    format!("http://{address}")
}

static PLATFORM: std::sync::OnceLock<Platform> = std::sync::OnceLock::new();

/// What every component in this test process logged (debug and above for the ingress,
/// connectors and processors, info for the rest), kept for tests that check what must never
/// appear in a log line (personal data, keys). Bounded: the oldest half goes past 64 MiB.
static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());
const LOG_CAPACITY: usize = 64 << 20;

struct LogCapture;

impl std::io::Write for LogCapture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut logs = LOGS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if logs.len() + bytes.len() > LOG_CAPACITY {
            let half = logs.len() / 2;
            logs.drain(..half);
        }
        logs.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    let filter = tracing_subscriber::EnvFilter::new(
        "info,tcom_ingress=debug,tcom_connectors=debug,tcom_processors=debug",
    );
    // Another subscriber (a test that set one first) wins; the capture is then empty and
    // the tests that read it say so.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(|| LogCapture)
        .try_init();
}

/// Everything logged in this test process so far (see [`LOGS`]).
pub fn captured_logs() -> String {
    let logs = LOGS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    String::from_utf8_lossy(&logs).into_owned()
}

/// Starts (once) and returns the shared platform. The first call waits until every processor
/// owns its partitions, so commands sent afterwards are answered at once.
pub fn platform() -> &'static Platform {
    PLATFORM.get_or_init(|| {
        capture_logs();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("test-platform".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("platform runtime");
                runtime.block_on(run_platform(ready_tx));
            })
            .expect("platform thread");
        ready_rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the platform starts within two minutes")
    })
}

async fn run_platform(ready: std::sync::mpsc::Sender<Platform>) {
    use std::sync::Arc;
    let stack = stack();
    let (pool, database_url) = fresh_database().await;
    let codec = Arc::new(Codec::new(&stack.registry_url).unwrap());
    codec
        .register_all(&tcom_schemas::contract::all())
        .await
        .expect("schemas register");
    let state_dir = std::env::temp_dir().join(unique("tcom-test-state"));
    let deployment = tcom_processors::deployment::Deployment {
        kafka: stack.kafka_settings(),
        state_dir,
        instance_id: unique("test"),
        timer_interval: Duration::from_millis(250),
        commit: tcom_processors::deployment::CommitPolicy {
            interval: Duration::from_millis(10),
            when_idle: true,
        },
        codec: tcom_processors::BlockingCodec::new(
            codec.clone(),
            tokio::runtime::Handle::current(),
        ),
        reply_sink: Some(Arc::new(
            tcom_connectors::replies::RedisReplySink::new(&stack.redis_url).unwrap(),
        )),
    };
    let handles = deployment.start_all().await.expect("processors start");
    let stripe_url = start_simulator(|listen, stop, bound| {
        tcom_connectors::payments::stripe_sim::serve(listen, stop, bound)
    })
    .await;
    let adyen_url = start_simulator(|listen, stop, bound| {
        tcom_connectors::payments::adyen_sim::serve(listen, stop, bound)
    })
    .await;
    let broker_url = start_simulator(|listen, stop, bound| {
        tcom_connectors::identity::broker_sim::serve(listen, stop, bound)
    })
    .await;
    let tcm_url = start_simulator(|listen, stop, bound| {
        tcom_connectors::tcm::tcm_sim::serve(listen, stop, bound)
    })
    .await;
    {
        let group_id = unique("test-tcm");
        // TCM commands of earlier runs name orders that are gone.
        start_at_end(
            &stack.kafka_settings(),
            &group_id,
            &[tcom_schemas::topics::TCM_COMMANDS],
        );
        let master = settings().identity.master_key;
        let setup = tcom_connectors::tcm::connector::TcmSetup {
            client: tcom_connectors::tcm::client::TcmClient::new(&tcm_url, Duration::from_secs(5)),
            keys: Some(tcom_connectors::personal_data::KeyStore::new(
                pool.clone(),
                tcom_connectors::personal_data::SecretKey::derive_master(&master),
            )),
            options: tcom_connectors::tcm::connector::TcmOptions {
                breaker: tcom_connectors::circuit_breaker::BreakerSettings {
                    failure_threshold: 3,
                    open_for: Duration::from_millis(500),
                    close_after: 1,
                },
                max_backoff: Duration::from_millis(500),
                ..tcom_connectors::tcm::connector::default_options()
            },
            metrics: std::sync::Arc::default(),
        };
        let connector = tcom_connectors::tcm::connector::run(
            stack.kafka_settings(),
            group_id,
            codec.clone(),
            setup,
            std::future::pending(),
        );
        let running = tokio::spawn(connector);
        tokio::spawn(async move {
            let why = match running.await {
                Ok(Ok(())) => "it returned, although it is never asked to stop".to_owned(),
                Ok(Err(e)) => format!("it failed: {e}"),
                Err(e) => format!("it panicked: {e}"),
            };
            connector_died("tcm", &why);
        });
    }
    let smdp_url = start_simulator(|listen, stop, bound| {
        tcom_connectors::esim::smdp_sim::serve(listen, stop, bound)
    })
    .await;
    let logistics_url = start_simulator(|listen, stop, bound| {
        tcom_connectors::logistics::logistics_sim::serve(listen, stop, bound)
    })
    .await;
    {
        let group_id = unique("test-sim");
        // SIM commands of earlier runs name orders that are gone.
        start_at_end(
            &stack.kafka_settings(),
            &group_id,
            &[tcom_schemas::topics::SIM_COMMANDS],
        );
        let master = settings().identity.master_key;
        let setup = tcom_connectors::sim_connector::SimSetup {
            smdp: tcom_connectors::esim::es2plus::Es2PlusClient::new(
                &smdp_url,
                "test-smdp-token",
                Duration::from_secs(5),
            ),
            logistics: tcom_connectors::logistics::client::LogisticsClient::new(
                &logistics_url,
                "test-logistics-token",
                Duration::from_secs(5),
            ),
            keys: tcom_connectors::personal_data::KeyStore::new(
                pool.clone(),
                tcom_connectors::personal_data::SecretKey::derive_master(&master),
            ),
            master_key: master,
            // The test SM-DP+ account's profiles need a confirmation code.
            confirmation_codes: true,
            options: tcom_connectors::outbox_relay::RelayOptions {
                breaker: tcom_connectors::circuit_breaker::BreakerSettings {
                    failure_threshold: 3,
                    open_for: Duration::from_millis(500),
                    close_after: 1,
                },
                max_backoff: Duration::from_millis(500),
                ..tcom_connectors::sim_connector::default_options()
            },
            metrics: std::sync::Arc::default(),
        };
        watch_connector(
            "sim",
            tcom_connectors::sim_connector::run(
                stack.kafka_settings(),
                group_id,
                codec.clone(),
                setup,
                std::future::pending(),
            ),
        );
    }
    let carrier_url = start_simulator(|listen, stop, bound| {
        tcom_connectors::porting::carrier_sim::serve(listen, stop, bound)
    })
    .await;
    {
        let group_id = unique("test-porting");
        // Porting commands of earlier runs name orders that are gone.
        start_at_end(
            &stack.kafka_settings(),
            &group_id,
            &[tcom_schemas::topics::PORTING_COMMANDS],
        );
        let setup = tcom_connectors::porting::connector::PortingSetup {
            carrier: tcom_connectors::porting::client::CarrierClient::new(
                &carrier_url,
                "test-carrier-token",
                Duration::from_secs(5),
            ),
            keys: tcom_connectors::personal_data::KeyStore::new(
                pool.clone(),
                tcom_connectors::personal_data::SecretKey::derive_master(
                    &settings().identity.master_key,
                ),
            ),
            options: tcom_connectors::outbox_relay::RelayOptions {
                max_backoff: Duration::from_millis(500),
                ..tcom_connectors::porting::connector::default_options()
            },
            metrics: std::sync::Arc::default(),
        };
        watch_connector(
            "porting",
            tcom_connectors::porting::connector::run(
                stack.kafka_settings(),
                group_id,
                codec.clone(),
                setup,
                std::future::pending(),
            ),
        );
    }
    let secrets_dir = std::env::temp_dir().join(unique("tcom-test-secrets"));
    std::fs::create_dir_all(&secrets_dir).unwrap();
    let payments_group = unique("test-payments");
    {
        let group_id = payments_group.clone();
        // Payment commands of earlier runs name simulator state that is gone.
        start_at_end(
            &stack.kafka_settings(),
            &group_id,
            &[tcom_schemas::topics::PAYMENT_COMMANDS],
        );
        let endpoints = tcom_connectors::payments::connector::ProviderEndpoints::new(
            stripe_url.clone(),
            adyen_url.clone(),
            tcom_connectors::secrets::SecretStore::new(&secrets_dir),
        );
        let connector = tcom_connectors::payments::connector::run(
            stack.kafka_settings(),
            group_id,
            endpoints,
            codec.clone(),
            Default::default(),
            std::future::pending(),
        );
        let running = tokio::spawn(connector);
        tokio::spawn(async move {
            let why = match running.await {
                Ok(Ok(())) => "it returned, although it is never asked to stop".to_owned(),
                Ok(Err(e)) => format!("it failed: {e}"),
                Err(e) => format!("it panicked: {e}"),
            };
            connector_died("payments", &why);
        });
    }
    for (group, topics) in [
        ("test-views", tcom_connectors::views::TOPICS),
        (
            "test-storefront-views",
            tcom_connectors::views::STOREFRONT_TOPICS,
        ),
    ] {
        let group_id = unique(group);
        // The tests write every basket and number they read after this point; a broker that
        // also ran benchmarks holds tens of thousands of older ones, which a fresh database
        // would otherwise have to catch up on first.
        if topics == tcom_connectors::views::STOREFRONT_TOPICS {
            start_at_end(&stack.kafka_settings(), &group_id, topics);
        }
        let connector = tcom_connectors::views::run(
            stack.kafka_settings(),
            group_id,
            topics,
            pool.clone(),
            codec.clone(),
            std::future::pending(),
        );
        let running = tokio::spawn(connector);
        tokio::spawn(async move {
            let why = match running.await {
                Ok(Ok(())) => "it returned, although it is never asked to stop".to_owned(),
                Ok(Err(e)) => format!("it failed: {e}"),
                Err(e) => format!("it panicked: {e}"),
            };
            connector_died(group, &why);
        });
    }
    let assigned = eventually(Duration::from_secs(60), || {
        let all = handles
            .iter()
            .all(|h| h.metrics().tasks.load(std::sync::atomic::Ordering::Relaxed) > 0);
        async move { all.then_some(()) }
    })
    .await;
    assert!(
        assigned.is_some(),
        "processors got no partitions within 60 s"
    );
    ready
        .send(Platform {
            database_url,
            stripe_url,
            adyen_url,
            broker_url,
            tcm_url,
            smdp_url,
            logistics_url,
            carrier_url,
            secrets_dir,
            payments_group,
        })
        .unwrap();
    // Keep the processors (dropping a handle stops it) for as long as the tests run.
    std::future::pending::<()>().await;
    drop(handles);
}

/// Runs a connector of the shared platform; if it ever stops, the test binary ends (see
/// [`connector_died`]).
fn watch_connector<E: std::fmt::Display + Send + 'static>(
    group: &'static str,
    connector: impl Future<Output = Result<(), E>> + Send + 'static,
) {
    let running = tokio::spawn(connector);
    tokio::spawn(async move {
        let why = match running.await {
            Ok(Ok(())) => "it returned, although it is never asked to stop".to_owned(),
            Ok(Err(e)) => format!("it failed: {e}"),
            Err(e) => format!("it panicked: {e}"),
        };
        connector_died(group, &why);
    });
}

/// A view connector of the shared platform stopped: every check of a view from now on would
/// read a database nobody writes to, and "nothing in the view" would pass. A panic in the
/// task that noticed would only end that task, so the whole test binary ends here, loudly.
/// Shown to work by giving the connectors a shutdown future that resolves after a second
/// instead of `pending()`: the content_sync test's binary stopped with SIGABRT and this
/// message, and the run failed (the old `if let Err(e)` ignored a connector that returned).
fn connector_died(group: &str, why: &str) -> ! {
    use std::io::Write;
    // Straight to the process' stderr: `eprintln!` in a test's thread is captured by the test
    // harness, and the abort would throw the capture away with the message.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** the test platform's {group} connector stopped ({why}); every later view check \
         would pass against a dead connector, so the test binary aborts ***\n"
    );
    std::process::abort();
}

/// Commits `group_id`'s offsets at the current end of `topics`, so a consumer in that group
/// reads exactly what is produced from now on.
pub fn start_at_end(kafka: &KafkaSettings, group_id: &str, topics: &[&str]) {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut offsets = rdkafka::TopicPartitionList::new();
    let timeout = Duration::from_secs(10);
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout).unwrap();
        for partition in metadata.topics()[0].partitions() {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition.id(), timeout)
                .unwrap();
            offsets
                .add_partition_offset(topic, partition.id(), rdkafka::Offset::Offset(high))
                .unwrap();
        }
    }
    consumer.commit(&offsets, CommitMode::Sync).unwrap();
}

/// An ingress in this process, on the shared platform's database.
pub async fn spawn_platform_ingress() -> TestApp {
    let mut settings = settings();
    settings.database.url = platform().database_url.clone();
    settings.payments.secrets_dir = platform().secrets_dir.clone();
    let app = Application::build(&settings).await.expect("ingress builds");
    let address = app.local_addr();
    tokio::spawn(app.run_until(std::future::pending()));
    TestApp {
        address,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
    }
}

/// An admin token signed with the configured secret.
pub fn admin_token(tenant: Option<&str>, roles: &[&str]) -> String {
    admin_token_for("test-user", tenant, roles)
}

/// An admin token of the subject `subject`.
pub fn admin_token_for(subject: &str, tenant: Option<&str>, roles: &[&str]) -> String {
    tcom_ingress::auth::AdminAuth::new(&settings().auth).issue(subject, tenant, roles, 600)
}

/// A platform operator's token.
pub fn operator_token() -> String {
    admin_token(None, &[tcom_ingress::auth::PLATFORM_OPERATOR])
}

/// A customer's session token for `tenant`, signed with the tenant's own key (a session
/// started without a broker sign-in, as local runs allow; `tests/it/identity.rs` signs in
/// through the broker simulator).
pub async fn customer_token(tenant: &str, customer_id: &str) -> String {
    // One per call: pools and Redis connections belong to the test's own runtime.
    let mut settings = settings();
    settings.database.url = platform().database_url.clone();
    tcom_ingress::identity::Identity::from_settings(&settings)
        .expect("identity builds")
        .issue_local_session(tenant, customer_id, None)
        .await
        .unwrap_or_else(|p| panic!("a local session for {customer_id}: {p:?}"))
        .access_token
}

/// An ingress in this process on the shared platform's database, with `change` applied to its
/// settings first (a wrong dependency address, a tiny reply timeout, …).
pub async fn spawn_platform_ingress_with(change: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = settings();
    settings.database.url = platform().database_url.clone();
    settings.payments.secrets_dir = platform().secrets_dir.clone();
    change(&mut settings);
    let app = Application::build(&settings).await.expect("ingress builds");
    let address = app.local_addr();
    tokio::spawn(app.run_until(std::future::pending()));
    TestApp {
        address,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
    }
}

/// An address on which nothing listens (a port just bound and released).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
