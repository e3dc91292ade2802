//! Every topic of the platform with its partition count and retention, in one place.
//!
//! Keys are UTF-8 strings: `"{tenant}:{entity id}"` on tenant-scoped topics, the E.164 number
//! alone on MSISDN topics (a number is unique across tenants, so all requests for it meet on
//! one partition), the tenant id on `tenants`. Values are Avro in the Confluent wire format.

/// Compacted: every tenant, whole.
pub const TENANTS: &str = "tenants";
/// Keyed by one constant ([`TENANT_COMMANDS_KEY`]): every tenant command lands on one
/// partition, so domain uniqueness across tenants is decided in order, without locks. Tenant
/// changes are rare; one partition is plenty.
pub const TENANT_COMMANDS: &str = "tenant.commands";
/// The key of every record on `tenant.commands`.
pub const TENANT_COMMANDS_KEY: &str = "platform";
/// Compacted: every offering, whole.
pub const CATALOG_OFFERINGS: &str = "catalog.offerings";
/// Keyed by tenant id alone: one task decides every change to a tenant's catalog in order.
pub const CATALOG_COMMANDS: &str = "catalog.commands";
/// Compacted: every campaign, whole.
pub const CATALOG_CAMPAIGNS: &str = "catalog.campaigns";
/// Keyed by tenant id, co-partitioned with `catalog.commands`.
pub const CAMPAIGN_COMMANDS: &str = "campaign.commands";
/// Webhook notifications from content sources (key: tenant id): wake the content connector.
pub const CONTENT_NOTIFICATIONS: &str = "content.notifications";
pub const BASKET_COMMANDS: &str = "basket.commands";
pub const BASKET_EVENTS: &str = "basket.events";
pub const MSISDN_COMMANDS: &str = "msisdn.commands";
/// Reservation outcomes told to the basket concerned: keyed `tenant:basket`, so co-partitioned
/// with `basket.commands` and read by the basket processor's task for that basket.
pub const MSISDN_EVENTS: &str = "msisdn.events";
/// Baskets whole after each change (compacted, `tenant:basket`), for the views.
pub const BASKETS: &str = "baskets";
/// Pool numbers whole after each change (compacted, E.164), for the views and search.
pub const MSISDN_NUMBERS: &str = "msisdn.numbers";

/// Orders' commands (key `tenant:order`, the order id being the basket's id): placed by the
/// basket processor at checkout, cancellations from the customer.
pub const ORDER_COMMANDS: &str = "order.commands";
/// Every change of every order, for analytics and other services.
pub const ORDER_EVENTS: &str = "order.events";
/// Orders whole after each change (compacted, `tenant:order`), for the views.
pub const ORDERS: &str = "orders";
/// Requests to payment providers (key `tenant:order`), done by the payments connector.
pub const PAYMENT_COMMANDS: &str = "payment.commands";
/// What payment providers reported (key `tenant:order`), read by the order processor.
pub const PAYMENT_EVENTS: &str = "payment.events";
/// SIM delivery requests (eSIM profiles, pSIM shipments), keyed `tenant:order` (the order
/// processor's outbox).
pub const SIM_COMMANDS: &str = "sim.commands";
/// What came of them, and shipments' tracking, keyed `tenant:order`.
pub const SIM_EVENTS: &str = "sim.events";
/// Number porting requests to the clearing house, keyed `tenant:order` (the order
/// processor's outbox).
pub const PORTING_COMMANDS: &str = "porting.commands";
/// What came of them: submitted, accepted, rejected, completed; keyed `tenant:order`.
pub const PORTING_EVENTS: &str = "porting.events";
/// Requests to the legacy TCM system, keyed `tenant:order` (the order processor's outbox).
pub const TCM_COMMANDS: &str = "tcm.commands";
/// TCM's answers, keyed `tenant:order`.
pub const TCM_EVENTS: &str = "tcm.events";

/// How a topic keeps its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// The newest record per key, for ever: entity tables.
    Compacted,
    /// Time-based deletion: command and event streams.
    Stream,
}

/// A declared topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicDecl {
    pub name: &'static str,
    pub partitions: i32,
    pub retention: Retention,
}

/// The platform's topics. Partition counts bound the parallelism of each processor; raising
/// one later re-partitions keys, so they start generous.
pub const ALL: &[TopicDecl] = &[
    TopicDecl {
        name: TENANTS,
        partitions: 3,
        retention: Retention::Compacted,
    },
    TopicDecl {
        name: TENANT_COMMANDS,
        partitions: 3,
        retention: Retention::Stream,
    },
    TopicDecl {
        name: CATALOG_OFFERINGS,
        partitions: 6,
        retention: Retention::Compacted,
    },
    TopicDecl {
        name: CATALOG_COMMANDS,
        partitions: 6,
        retention: Retention::Stream,
    },
    TopicDecl {
        name: CATALOG_CAMPAIGNS,
        partitions: 6,
        retention: Retention::Compacted,
    },
    TopicDecl {
        name: CAMPAIGN_COMMANDS,
        partitions: 6,
        retention: Retention::Stream,
    },
    TopicDecl {
        name: CONTENT_NOTIFICATIONS,
        partitions: 3,
        retention: Retention::Stream,
    },
    TopicDecl {
        name: BASKET_COMMANDS,
        partitions: 6,
        retention: Retention::Stream,
    },
    TopicDecl {
        name: BASKET_EVENTS,
        partitions: 6,
        retention: Retention::Stream,
    },
    TopicDecl {
        name: MSISDN_COMMANDS,
        partitions: 6,
        retention: Retention::Stream,
    },
    TopicDecl {
        name: MSISDN_EVENTS,
        partitions: 6,
        retention: Retention::Stream,
    },
    TopicDecl {
        name: BASKETS,
        partitions: 6,
        retention: Retention::Compacted,
    },
    TopicDecl {
        name: MSISDN_NUMBERS,
        partitions: 6,
        retention: Retention::Compacted,
    },
    // Co-partitioned with `basket.commands` and `msisdn.events`: an order has its basket's key.
    TopicDecl {
        name: ORDER_COMMANDS,
        partitions: 6,
        retention: Retention::Stream,
    },
    TopicDecl {
        name: ORDER_EVENTS,
        partitions: 6,
        retention: Retention::Stream,
    },
    TopicDecl {
        name: ORDERS,
        partitions: 6,
        retention: Retention::Compacted,
    },
    TopicDecl {
        name: PAYMENT_COMMANDS,
        partitions: 6,
        retention: Retention::Stream,
    },
    TopicDecl {
        name: PAYMENT_EVENTS,
        partitions: 6,
        retention: Retention::Stream,
    },
    TopicDecl {
        name: TCM_COMMANDS,
        partitions: 6,
        retention: Retention::Stream,
    },
    TopicDecl {
        name: TCM_EVENTS,
        partitions: 6,
        retention: Retention::Stream,
    },
    TopicDecl {
        name: SIM_COMMANDS,
        partitions: 6,
        retention: Retention::Stream,
    },
    TopicDecl {
        name: SIM_EVENTS,
        partitions: 6,
        retention: Retention::Stream,
    },
    TopicDecl {
        name: PORTING_COMMANDS,
        partitions: 6,
        retention: Retention::Stream,
    },
    TopicDecl {
        name: PORTING_EVENTS,
        partitions: 6,
        retention: Retention::Stream,
    },
];
