//! Starting the domain processors on the runtime: one runtime per processor, each with its
//! inputs, stores and global tables.

use std::path::PathBuf;
use std::sync::Arc;

use tcom_schemas::topics;
use tcom_state::client::KafkaSettings;
use tcom_state::{ReplySink, RuntimeConfig, RuntimeHandle};

use crate::codec::BlockingCodec;
use crate::{baskets, catalog, numbers, orders, tenants};

/// What every processor of one instance shares.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub kafka: KafkaSettings,
    /// Each processor keeps its state in a sub-folder named after it.
    pub state_dir: PathBuf,
    pub instance_id: String,
    pub codec: BlockingCodec,
    pub reply_sink: Option<Arc<dyn ReplySink>>,
    /// How often expiry timers (baskets, reservations) look for what is due.
    pub timer_interval: std::time::Duration,
    pub commit: CommitPolicy,
}

/// When the processors commit their transactions. Every processor answers people waiting on
/// an HTTP request, so commits are frequent; each commit costs the broker several requests,
/// so not more frequent than needed.
#[derive(Debug, Clone, Copy)]
pub struct CommitPolicy {
    /// Commit at least this often while records flow.
    pub interval: std::time::Duration,
    /// Also commit as soon as no input record is waiting.
    pub when_idle: bool,
}

impl Deployment {
    fn config(&self, application_id: &str, inputs: &[&str], stores: &[&str]) -> RuntimeConfig {
        let mut config = RuntimeConfig::new(
            application_id,
            self.instance_id.clone(),
            self.kafka.clone(),
            inputs.iter().map(|t| (*t).to_owned()).collect(),
            stores.iter().map(|s| (*s).to_owned()).collect(),
            self.state_dir.join(application_id),
        );
        config.reply_sink = self.reply_sink.clone();
        config.commit_interval = self.commit.interval;
        config.commit_when_idle = self.commit.when_idle;
        config
    }

    /// The tenant processor's configuration.
    pub fn tenants(&self) -> RuntimeConfig {
        self.config(
            tenants::APPLICATION_ID,
            &[topics::TENANT_COMMANDS],
            &[tenants::TENANTS_STORE, tenants::DOMAINS_STORE],
        )
    }

    /// The catalog processor's configuration.
    pub fn catalog(&self) -> RuntimeConfig {
        let mut config = self.config(
            catalog::APPLICATION_ID,
            &[topics::CATALOG_COMMANDS, topics::CAMPAIGN_COMMANDS],
            &[catalog::OFFERINGS_STORE, catalog::CAMPAIGNS_STORE],
        );
        config.global_tables = catalog::global_tables();
        config
    }

    /// The basket processor's configuration: shoppers' commands and the reservation outcomes
    /// for their baskets (co-partitioned), with a timer that expires untouched baskets.
    pub fn baskets(&self) -> RuntimeConfig {
        let mut config = self.config(
            baskets::APPLICATION_ID,
            &[topics::BASKET_COMMANDS, topics::MSISDN_EVENTS],
            &[baskets::BASKETS_STORE, baskets::DEADLINES_STORE],
        );
        config.global_tables = baskets::global_tables();
        config.punctuate_interval = Some(self.timer_interval);
        config
    }

    /// The MSISDN processor's configuration, with a timer that expires reservations.
    pub fn numbers(&self) -> RuntimeConfig {
        let mut config = self.config(
            numbers::APPLICATION_ID,
            &[topics::MSISDN_COMMANDS],
            &[numbers::NUMBERS_STORE, numbers::DEADLINES_STORE],
        );
        config.punctuate_interval = Some(self.timer_interval);
        config
    }

    /// The order processor's configuration: orders' commands, the payment reports and the
    /// number confirmations for them (all co-partitioned by `tenant:order`), with a timer for
    /// freeze windows and step deadlines.
    pub fn orders(&self) -> RuntimeConfig {
        let mut config = self.config(
            orders::APPLICATION_ID,
            &[
                topics::ORDER_COMMANDS,
                topics::PAYMENT_EVENTS,
                topics::MSISDN_EVENTS,
                topics::TCM_EVENTS,
                topics::SIM_EVENTS,
                topics::PORTING_EVENTS,
            ],
            &[orders::ORDERS_STORE, orders::DEADLINES_STORE],
        );
        config.global_tables = orders::global_tables();
        config.punctuate_interval = Some(self.timer_interval);
        config
    }

    /// Starts every processor; stops those already started if one fails.
    ///
    /// # Errors
    /// A runtime could not start (topics, producer initialisation, global tables).
    pub async fn start_all(&self) -> tcom_state::Result<Vec<RuntimeHandle>> {
        let tenants =
            tcom_state::start(self.tenants(), tenants::factory(self.codec.clone())).await?;
        let catalog =
            tcom_state::start(self.catalog(), catalog::factory(self.codec.clone())).await?;
        let numbers =
            tcom_state::start(self.numbers(), numbers::factory(self.codec.clone())).await?;
        let baskets =
            tcom_state::start(self.baskets(), baskets::factory(self.codec.clone())).await?;
        let orders = tcom_state::start(self.orders(), orders::factory(self.codec.clone())).await?;
        Ok(vec![tenants, catalog, numbers, baskets, orders])
    }
}
