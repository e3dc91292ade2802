//! `tcom`: the one binary of the platform. Each role runs separately in production
//! (`tcom run --roles ingress`, `tcom run --roles connectors`) or together for local use
//! (`tcom run`); the operational commands prepare a stack (`topics`, `migrate`,
//! `schemas register`, `demo seed`) and `registry` runs the schema-registry stand-in.

mod demo;
mod processors_http;
mod roles;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tcom_ingress::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "tcom",
    version,
    about = "White-label telecom commerce platform"
)]
struct Cli {
    /// Folder with default.toml (and optional local.toml).
    #[arg(long, env = "TCOM_CONFIG_DIR", default_value = "config", global = true)]
    config_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run platform roles until SIGINT/SIGTERM.
    Run {
        /// Comma-separated roles: ingress, connectors, processors. Default: all.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "ingress,connectors,processors"
        )]
        roles: Vec<roles::Role>,
    },
    /// Create the platform's topics that do not exist yet.
    Topics {
        /// Create missing topics (the only action so far; kept explicit for scripts).
        #[arg(long)]
        ensure: bool,
    },
    /// Apply database migrations.
    Migrate,
    /// Schema operations.
    Schemas {
        #[command(subcommand)]
        action: SchemasAction,
    },
    /// Demo data for the local run.
    Demo {
        #[command(subcommand)]
        action: DemoAction,
    },
    /// Run the Contentful simulator (Sync API) for local runs.
    ContentfulSim {
        #[arg(long, default_value = "127.0.0.1:38090")]
        listen: SocketAddr,
    },
    /// Run the Stripe simulator (PaymentIntents, refunds, webhook endpoints, signed events,
    /// a hosted pay / refuse / 3-D Secure page) for local runs.
    StripeSim {
        #[arg(long, default_value = "127.0.0.1:38091")]
        listen: SocketAddr,
    },
    /// Run the Adyen simulator (Checkout sessions, hosted page, modifications, HMAC-signed
    /// notifications) for local runs.
    AdyenSim {
        #[arg(long, default_value = "127.0.0.1:38092")]
        listen: SocketAddr,
    },
    /// Run the MitID broker simulator (an OpenID Connect provider per realm: code flow with
    /// PKCE, RS256 ID tokens, JWKS, userinfo, CPR match; test identities) for local runs.
    OidcSim {
        #[arg(long, default_value = "127.0.0.1:38093")]
        listen: SocketAddr,
    },
    /// Run the legacy TCM simulator (customers and subscriptions, idempotent by
    /// X-Request-Id; latency, errors, hangs, outages, rate limits and lost answers on demand)
    /// for local runs.
    TcmSim {
        #[arg(long, default_value = "127.0.0.1:38094")]
        listen: SocketAddr,
    },
    /// Compare the platform's subscriptions with TCM's (every tenant of the `tenants` topic,
    /// or those named), record TCM's status on the products and print the JSON report; exits
    /// non-zero when a tenant could not be reconciled (TCM or the database unreadable).
    TcmReconcile {
        /// Only this tenant (repeatable).
        #[arg(long)]
        tenant: Vec<String>,
    },
    /// Run the SM-DP+ simulator (GSMA SGP.22 ES2+: downloadOrder, confirmOrder, cancelOrder,
    /// releaseProfile, idempotent by functionCallIdentifier; a simulated device download;
    /// faults on demand) for local runs.
    SmdpSim {
        #[arg(long, default_value = "127.0.0.1:38095")]
        listen: SocketAddr,
        /// The SM-DP+ address confirmed orders (and so activation codes) name.
        #[arg(long, default_value = tcom_connectors::esim::smdp_sim::DEFAULT_SMDP_ADDRESS)]
        smdp_address: String,
    },
    /// Run the SIM logistics simulator (a fulfilment house's REST API: shipments of physical
    /// SIMs with their ICCIDs, idempotent by Idempotency-Key, tracking events; faults on
    /// demand) for local runs.
    LogisticsSim {
        #[arg(long, default_value = "127.0.0.1:38096")]
        listen: SocketAddr,
    },
    /// Run the number-porting clearing house simulator (OCH-style requests with the current
    /// SIM's ICC and owner, UK PAC requests, the losing operator's answers, ports completing on
    /// their date, signed webhooks; a settable clock and faults on demand) for local runs.
    CarrierSim {
        #[arg(long, default_value = "127.0.0.1:38097")]
        listen: SocketAddr,
    },
    /// Issue an admin token, or with `--customer` a storefront customer token, for local use
    /// (signed with the configured secrets).
    Token {
        /// Tenant the token is for; none for a platform operator.
        #[arg(long)]
        tenant: Option<String>,
        /// Issue a customer session token for this customer id (needs `--tenant`; roles are
        /// ignored; local runs only, needs the database and Redis).
        #[arg(long)]
        customer: Option<String>,
        /// Comma-separated roles, e.g. brand_admin or platform_operator.
        #[arg(long, value_delimiter = ',', default_value = "brand_admin")]
        roles: Vec<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// Run the Confluent-compatible schema-registry stand-in.
    Registry {
        #[arg(long, default_value = "127.0.0.1:38081")]
        listen: SocketAddr,
        /// Compacted topic holding the registry's state.
        #[arg(long, default_value = tcom_registry::DEFAULT_TOPIC)]
        topic: String,
    },
}

#[derive(Debug, Subcommand)]
enum SchemasAction {
    /// Register every contract's schema under its subject (idempotent).
    Register,
}

#[derive(Debug, Subcommand)]
enum DemoAction {
    /// Create the demo tenants, catalogs and content through the running platform's APIs
    /// (idempotent).
    Seed {
        /// The running ingress.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
    },
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if std::env::var("TCOM_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("Shutdown requested.");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let cli = Cli::parse();
    let settings = || {
        Settings::load(&cli.config_dir)
            .with_context(|| format!("loading settings from {}", cli.config_dir.display()))
    };
    match cli.command {
        Command::Run { roles } => roles::run(&settings()?, &roles, shutdown_signal()).await,
        Command::Topics { .. } => {
            let settings = settings()?;
            tcom_state::admin::ensure_topics(&settings.kafka_settings(), &roles::topic_specs())
                .await
                .context("creating topics")?;
            println!("topics ready");
            Ok(())
        }
        Command::Migrate => {
            let settings = settings()?;
            let url = settings
                .database
                .migration_url
                .as_deref()
                .unwrap_or(&settings.database.url);
            let pool = tcom_connectors::postgres::connect(url, 2)
                .await
                .context("connecting to PostgreSQL")?;
            tcom_connectors::postgres::migrate(&pool)
                .await
                .context("applying migrations")?;
            println!("migrations applied");
            Ok(())
        }
        Command::Schemas {
            action: SchemasAction::Register,
        } => {
            let settings = settings()?;
            let codec = tcom_schemas::Codec::new(&settings.schema_registry.url)?;
            for (subject, id) in codec.register_all(&tcom_schemas::contract::all()).await? {
                println!("{subject}: id {id}");
            }
            Ok(())
        }
        Command::Demo {
            action: DemoAction::Seed { url },
        } => demo::seed(&settings()?, &url).await,
        Command::ContentfulSim { listen } => {
            tcom_connectors::contentful::simulator::serve(listen, shutdown_signal(), |_| {})
                .await
                .context("contentful simulator")
        }
        Command::StripeSim { listen } => {
            tcom_connectors::payments::stripe_sim::serve(listen, shutdown_signal(), |_| {})
                .await
                .context("stripe simulator")
        }
        Command::AdyenSim { listen } => {
            tcom_connectors::payments::adyen_sim::serve(listen, shutdown_signal(), |_| {})
                .await
                .context("adyen simulator")
        }
        Command::OidcSim { listen } => {
            tcom_connectors::identity::broker_sim::serve(listen, shutdown_signal(), |_| {})
                .await
                .context("OIDC broker simulator")
        }
        Command::TcmSim { listen } => {
            tcom_connectors::tcm::tcm_sim::serve(listen, shutdown_signal(), |_| {})
                .await
                .context("TCM simulator")
        }
        Command::TcmReconcile { tenant } => {
            use tcom_connectors::tcm::reconcile;
            let settings = settings()?;
            let pool = tcom_connectors::postgres::connect(&settings.database.url, 2)
                .await
                .context("connecting to PostgreSQL")?;
            let tcm = tcom_connectors::tcm::client::TcmClient::new(
                settings.tcm.url.clone(),
                std::time::Duration::from_millis(settings.tcm.timeout_ms),
            );
            let tenants = if tenant.is_empty() {
                reconcile::platform_tenants(&settings.kafka_settings())
                    .await
                    .context("listing the platform's tenants")?
            } else {
                tenant
            };
            let report = reconcile::Reconciler::new(pool, tcm)
                .tenants(&tenants)
                .await;
            println!("{}", serde_json::to_string_pretty(&report)?);
            anyhow::ensure!(
                report.is_complete(),
                "{} of {} tenants could not be reconciled",
                report.failed,
                report.tenants.len()
            );
            Ok(())
        }
        Command::SmdpSim {
            listen,
            smdp_address,
        } => {
            let options = tcom_connectors::esim::smdp_sim::SmdpSimOptions {
                smdp_address,
                ..Default::default()
            };
            tcom_connectors::esim::smdp_sim::serve_with(listen, options, shutdown_signal(), |_| {})
                .await
                .context("SM-DP+ simulator")
        }
        Command::LogisticsSim { listen } => {
            tcom_connectors::logistics::logistics_sim::serve(listen, shutdown_signal(), |_| {})
                .await
                .context("SIM logistics simulator")
        }
        Command::CarrierSim { listen } => {
            tcom_connectors::porting::carrier_sim::serve(listen, shutdown_signal(), |_| {})
                .await
                .context("clearing house simulator")
        }
        Command::Token {
            tenant,
            customer: Some(customer),
            ttl,
            ..
        } => {
            let mut settings = settings()?;
            let tenant = tenant.context("a customer token needs --tenant")?;
            // A session signed with the tenant's own key and kept in Redis, as after a
            // sign-in (local runs only: the identity refuses otherwise).
            settings.identity.session_ttl_seconds = ttl;
            let identity = tcom_ingress::identity::Identity::from_settings(&settings)
                .map_err(anyhow::Error::msg)?;
            let session = identity
                .issue_local_session(&tenant, &customer, None)
                .await
                .map_err(|p| anyhow::anyhow!("{}: {}", p.code, p.detail.unwrap_or_default()))?;
            println!("{}", session.access_token);
            Ok(())
        }
        Command::Token {
            tenant, roles, ttl, ..
        } => {
            let settings = settings()?;
            let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
            let auth = tcom_ingress::auth::AdminAuth::new(&settings.auth);
            println!(
                "{}",
                auth.issue("local-admin", tenant.as_deref(), &roles, ttl)
            );
            Ok(())
        }
        Command::Registry { listen, topic } => {
            let settings = settings()?;
            tcom_registry::serve(
                &settings.kafka_settings(),
                &topic,
                listen,
                shutdown_signal(),
            )
            .await
            .context("schema registry")
        }
    }
}
