//! The TCM reconciliation: compares the platform's subscriptions (the `products` view, one
//! TMF637 product per line TCM has a subscription for, its id TCM's subscription id) with
//! TCM's own listing, tenant by tenant, and reports every difference with a stable kind code
//! ([`DifferenceKind`]). TCM is the system of record for what is active: its agents suspend,
//! terminate and correct subscriptions there, and nothing tells the platform.
//!
//! The comparison is a pure function ([`compare`]); reading both sides and writing the result
//! back are apart ([`Reconciler`]).
//!
//! # What it repairs, and why not more
//!
//! It records TCM's status on each product (`products.tcm_status`: TCM's status, or
//! `MISSING`; `reconciled_at`: when it looked), which the subscription APIs show as `tcm`.
//! That is safe: it is the platform's own note about TCM, kept apart from the order-derived
//! columns (an order update never overwrites it, and it never overwrites the order's
//! history), and writing it again changes nothing.
//!
//! Everything else is reported only:
//!
//! - never created in TCM (`missing_in_tcm`): TCM never deletes, so a missing subscription
//!   was removed or re-keyed by someone on purpose, and a second create could give a number a
//!   second live subscription and bill the customer twice;
//! - never terminated or changed in TCM (`unknown_to_platform`, a live subscription for a
//!   cancelled line, a different plan): TCM is where the customer's service lives; cutting it
//!   off from a batch job on the strength of a view would be worse than the difference;
//! - never rewritten on the platform (MSISDN, ICCID, plan, binding): the product view is
//!   rebuilt from the orders topic, so a write there would be lost at the next order version
//!   and would hide the mismatch; corrections go through the order, by an agent.
//!
//! # Timing
//!
//! The platform side is read before TCM's: a subscription created in between is then only
//! in TCM's listing, and one younger than the settle time ([`DEFAULT_SETTLE`]) is counted as
//! unsettled (its answer may still be on its way to the order) instead of reported as
//! unknown. The other order would report a product as missing from TCM that TCM created a
//! moment after it was listed.
//!
//! A walk that TCM breaks off (unavailable after retries, a refusal) fails the tenant and
//! writes nothing for it: half a listing would report the other half as missing.
//!
//! # Operating
//!
//! `tcom tcm-reconcile [--tenant T]…` runs it once (every tenant of the `tenants` topic
//! without `--tenant`), prints the JSON [`Report`] and exits non-zero when a tenant could not
//! be reconciled. The connectors role runs it every `[tcm] reconcile_interval_ms`
//! ([`run_periodically`]; each connectors process does, which only repeats the reads: the
//! writes are idempotent). Metrics: [`ReconcileMetrics::render_prometheus`].

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::types::chrono::{DateTime, Utc};
use tcom_state::client::KafkaSettings;

use super::client::{TcmClient, TcmError, TcmSubscription};
use crate::dead_letter::unless_stopped;
use crate::postgres::begin_for_tenant;

/// What `tcm_status` says of a product TCM does not have.
pub const MISSING: &str = "MISSING";

/// How long a subscription TCM has and the platform has not yet is taken to be on its way
/// (its answer in `tcm.events`, the order, the view) rather than unknown: well beyond a
/// normal round trip of seconds, short enough to notice an orphan the same day.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(15 * 60);

/// TCM's largest page.
const PAGE_SIZE: u32 = 100;
/// Attempts at one page while TCM is unavailable: it is often briefly unwell, but a job that
/// waits out a maintenance window only delays the report that TCM cannot be read.
const UNAVAILABLE_ATTEMPTS: u32 = 3;
/// Attempts at one page while TCM asks to slow down (it is healthy then).
const RATE_LIMITED_ATTEMPTS: u32 = 30;

/// What differs, as a stable code (reports, logs and metrics carry [`DifferenceKind::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DifferenceKind {
    /// A product whose subscription TCM does not have.
    MissingInTcm,
    /// A TCM subscription of the tenant that is no product (and old enough to have been).
    UnknownToPlatform,
    /// TCM's `externalRef` names another order item than the product's.
    ReferenceDiffers,
    MsisdnDiffers,
    /// The main SIM.
    IccidDiffers,
    /// The data-sharing cards' SIMs.
    SharedSimsDiffer,
    PlanDiffers,
    BindingDiffers,
    /// TCM's status is not what the product's status implies (see [`status_agrees`]).
    StatusDiffers,
}

impl DifferenceKind {
    pub const ALL: [Self; 9] = [
        Self::MissingInTcm,
        Self::UnknownToPlatform,
        Self::ReferenceDiffers,
        Self::MsisdnDiffers,
        Self::IccidDiffers,
        Self::SharedSimsDiffer,
        Self::PlanDiffers,
        Self::BindingDiffers,
        Self::StatusDiffers,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::MissingInTcm => "missing_in_tcm",
            Self::UnknownToPlatform => "unknown_to_platform",
            Self::ReferenceDiffers => "reference_differs",
            Self::MsisdnDiffers => "msisdn_differs",
            Self::IccidDiffers => "iccid_differs",
            Self::SharedSimsDiffer => "shared_sims_differ",
            Self::PlanDiffers => "plan_differs",
            Self::BindingDiffers => "binding_differs",
            Self::StatusDiffers => "status_differs",
        }
    }
}

/// One difference between a product and TCM's subscription of the same id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Difference {
    pub kind: DifferenceKind,
    pub subscription_id: String,
    /// The platform's `{order}/{item}`, or TCM's `externalRef` when the platform has none.
    pub external_ref: String,
    /// The platform's value (`None`: it has none).
    pub platform: Option<String>,
    /// TCM's value (`None`: it has none).
    pub tcm: Option<String>,
}

/// A product as the reconciliation compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSubscription {
    /// TCM's subscription id.
    pub subscription_id: String,
    pub order_id: String,
    pub item_id: String,
    /// TMF637, as the platform knows it from the order.
    pub status: String,
    pub msisdn: Option<String>,
    pub iccid: Option<String>,
    /// The product offering, which is TCM's plan code.
    pub plan_code: Option<String>,
    /// `YYYY-MM-DD`.
    pub binding_end_date: Option<String>,
    /// The data-sharing cards' ICCIDs.
    pub shared_sims: Vec<String>,
}

/// What [`compare`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// By subscription id, then kind.
    pub differences: Vec<Difference>,
    /// `(subscription id, status)` to record as the product's `tcm_status`: TCM's status, or
    /// [`MISSING`]. One per product.
    pub tcm_status: Vec<(String, String)>,
    /// TCM subscriptions the platform does not have yet, too young to report.
    pub unsettled: Vec<String>,
    /// TCM subscriptions of another tenant in the listing (left out: never reported or
    /// recorded under this tenant).
    pub foreign: usize,
}

/// Whether TCM's `tcm` status is what the product's TMF637 `platform` status implies. TCM
/// activates at once, so a line still being delivered (`pendingActive`) is `ACTIVE` there; a
/// line that failed or was cancelled after TCM created its subscription should have been
/// terminated.
pub fn status_agrees(platform: &str, tcm: &str) -> bool {
    match platform {
        "created" | "pendingActive" | "active" => tcm == "ACTIVE",
        "suspended" => tcm == "SUSPENDED",
        // Termination asked for and not done yet: any state is on the way.
        "pendingTerminate" => matches!(tcm, "ACTIVE" | "SUSPENDED" | "TERMINATED"),
        "terminated" | "aborted" | "cancelled" => tcm == "TERMINATED",
        _ => false,
    }
}

fn activated_after(subscription: &TcmSubscription, instant: DateTime<Utc>) -> bool {
    subscription
        .activated_at
        .as_deref()
        .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
        .is_some_and(|at| at.with_timezone(&Utc) > instant)
}

fn joined(iccids: &BTreeSet<&str>) -> Option<String> {
    (!iccids.is_empty()).then(|| iccids.iter().copied().collect::<Vec<_>>().join(","))
}

/// The differences between one product and TCM's subscription of its id.
fn compare_one(product: &PlatformSubscription, tcm: &TcmSubscription, out: &mut Vec<Difference>) {
    let reference = format!("{}/{}", product.order_id, product.item_id);
    let mut differs = |kind, platform: Option<String>, tcm: Option<String>| {
        if platform != tcm {
            out.push(Difference {
                kind,
                subscription_id: product.subscription_id.clone(),
                external_ref: reference.clone(),
                platform,
                tcm,
            });
        }
    };
    differs(
        DifferenceKind::ReferenceDiffers,
        Some(reference.clone()),
        Some(tcm.external_ref.clone()),
    );
    differs(
        DifferenceKind::MsisdnDiffers,
        product.msisdn.clone(),
        Some(tcm.msisdn.clone()),
    );
    differs(
        DifferenceKind::IccidDiffers,
        product.iccid.clone(),
        tcm.iccid.clone(),
    );
    // Cards are a set: neither side promises an order.
    let ours: BTreeSet<&str> = product.shared_sims.iter().map(String::as_str).collect();
    let theirs: BTreeSet<&str> = tcm
        .shared_data_sims
        .iter()
        .map(|s| s.iccid.as_str())
        .collect();
    differs(
        DifferenceKind::SharedSimsDiffer,
        joined(&ours),
        joined(&theirs),
    );
    differs(
        DifferenceKind::PlanDiffers,
        product.plan_code.clone(),
        Some(tcm.plan_code.clone()),
    );
    differs(
        DifferenceKind::BindingDiffers,
        product.binding_end_date.clone(),
        tcm.binding_end_date.clone(),
    );
    if !status_agrees(&product.status, &tcm.status) {
        out.push(Difference {
            kind: DifferenceKind::StatusDiffers,
            subscription_id: product.subscription_id.clone(),
            external_ref: reference,
            platform: Some(product.status.clone()),
            tcm: Some(tcm.status.clone()),
        });
    }
}

/// Compares `tenant`'s products with TCM's subscriptions. A TCM subscription activated after
/// `settled_before` that the platform lacks is unsettled, not unknown (`None`: every one is
/// settled).
pub fn compare(
    tenant: &str,
    platform: &[PlatformSubscription],
    tcm: &[TcmSubscription],
    settled_before: Option<DateTime<Utc>>,
) -> Comparison {
    let mut comparison = Comparison::default();
    let mut theirs: BTreeMap<&str, &TcmSubscription> = BTreeMap::new();
    for subscription in tcm {
        if subscription.tenant == tenant {
            theirs.insert(&subscription.subscription_id, subscription);
        } else {
            comparison.foreign += 1;
        }
    }
    let mut ours: BTreeMap<&str, &PlatformSubscription> = BTreeMap::new();
    for product in platform {
        ours.insert(&product.subscription_id, product);
    }
    for (id, product) in &ours {
        match theirs.get(id) {
            None => {
                comparison.differences.push(Difference {
                    kind: DifferenceKind::MissingInTcm,
                    subscription_id: (*id).to_owned(),
                    external_ref: format!("{}/{}", product.order_id, product.item_id),
                    platform: Some(product.status.clone()),
                    tcm: None,
                });
                comparison
                    .tcm_status
                    .push(((*id).to_owned(), MISSING.to_owned()));
            }
            Some(subscription) => {
                compare_one(product, subscription, &mut comparison.differences);
                comparison
                    .tcm_status
                    .push(((*id).to_owned(), subscription.status.clone()));
            }
        }
    }
    for (id, subscription) in &theirs {
        if ours.contains_key(id) {
            continue;
        }
        if settled_before.is_some_and(|instant| activated_after(subscription, instant)) {
            comparison.unsettled.push((*id).to_owned());
            continue;
        }
        comparison.differences.push(Difference {
            kind: DifferenceKind::UnknownToPlatform,
            subscription_id: (*id).to_owned(),
            external_ref: subscription.external_ref.clone(),
            platform: None,
            tcm: Some(subscription.status.clone()),
        });
    }
    comparison
        .differences
        .sort_by(|a, b| (&a.subscription_id, a.kind).cmp(&(&b.subscription_id, b.kind)));
    comparison
}

/// The data-sharing cards' ICCIDs of a TMF637 product document (its `realizingResource`s
/// named so by `tcom_processors::domain::product_inventory`).
pub fn shared_sims_of(document: &Value) -> Vec<String> {
    document["realizingResource"]
        .as_array()
        .map(|resources| {
            resources
                .iter()
                .filter(|r| r["name"] == "data-sharing SIM")
                .filter_map(|r| r["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

// ---- reading and writing ----

/// `tenant`'s products, read in a transaction Row-Level Security scopes to the tenant. The
/// explicit tenant filter is a second guard for a batch job that visits every tenant in turn
/// (a role that bypassed RLS would otherwise see them all at once).
///
/// # Errors
/// The database cannot be reached or refused the query.
pub async fn platform_subscriptions(
    pool: &PgPool,
    tenant: &str,
) -> Result<Vec<PlatformSubscription>, sqlx::Error> {
    let mut tx = begin_for_tenant(pool, tenant).await?;
    let rows: Vec<ProductRow> = sqlx::query_as(
        "SELECT product_id, order_id, item_id, status, msisdn, iccid, binding_end_date::text, document
           FROM products WHERE tenant_id = $1 ORDER BY product_id",
    )
    .bind(tenant)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|row| PlatformSubscription {
            plan_code: row.document["productOffering"]["id"]
                .as_str()
                .map(str::to_owned),
            shared_sims: shared_sims_of(&row.document),
            subscription_id: row.product_id,
            order_id: row.order_id,
            item_id: row.item_id,
            status: row.status,
            msisdn: row.msisdn,
            iccid: row.iccid,
            binding_end_date: row.binding_end_date,
        })
        .collect())
}

#[derive(sqlx::FromRow)]
struct ProductRow {
    product_id: String,
    order_id: String,
    item_id: String,
    status: String,
    msisdn: Option<String>,
    iccid: Option<String>,
    binding_end_date: Option<String>,
    document: Value,
}

/// One page of the listing, waiting as TCM asks while it rate-limits and retrying a few
/// times while it is unavailable.
async fn page_of(
    tcm: &TcmClient,
    tenant: &str,
    page: u32,
) -> Result<super::client::SubscriptionPage, TcmError> {
    let (mut unavailable, mut limited) = (0, 0);
    loop {
        match tcm.list_subscriptions(tenant, page, PAGE_SIZE).await {
            Err(TcmError::RateLimited { retry_after }) if limited < RATE_LIMITED_ATTEMPTS => {
                limited += 1;
                tokio::time::sleep(retry_after.min(Duration::from_secs(30))).await;
            }
            Err(TcmError::Unavailable(why)) if unavailable + 1 < UNAVAILABLE_ATTEMPTS => {
                unavailable += 1;
                tracing::debug!(tenant, page, why, "TCM listing unavailable; retrying.");
                tokio::time::sleep(Duration::from_secs(u64::from(unavailable))).await;
            }
            other => return other,
        }
    }
}

/// Every subscription TCM has for `tenant`, walking its pages (stable, by subscription id:
/// one created meanwhile lands on the last page, and a listed one never moves).
///
/// # Errors
/// A page could not be read (see [`TcmError`]): the walk is incomplete and must not be used.
pub async fn tcm_subscriptions(
    tcm: &TcmClient,
    tenant: &str,
) -> Result<Vec<TcmSubscription>, TcmError> {
    let mut found: BTreeMap<String, TcmSubscription> = BTreeMap::new();
    let mut page = 1;
    loop {
        let listed = page_of(tcm, tenant, page).await?;
        let last = listed.items.is_empty() || page >= listed.total_pages;
        for subscription in listed.items {
            found.insert(subscription.subscription_id.clone(), subscription);
        }
        if last {
            return Ok(found.into_values().collect());
        }
        page += 1;
    }
}

/// Records TCM's status on the products, in one transaction of the tenant's.
async fn record(
    pool: &PgPool,
    tenant: &str,
    statuses: &[(String, String)],
    at: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    if statuses.is_empty() {
        return Ok(0);
    }
    let (ids, values): (Vec<&str>, Vec<&str>) = statuses
        .iter()
        .map(|(id, status)| (id.as_str(), status.as_str()))
        .unzip();
    let mut tx = begin_for_tenant(pool, tenant).await?;
    let written = sqlx::query(
        "UPDATE products AS p SET tcm_status = u.status, reconciled_at = $4
           FROM unnest($2::text[], $3::text[]) AS u(product_id, status)
          WHERE p.tenant_id = $1 AND p.product_id = u.product_id",
    )
    .bind(tenant)
    .bind(&ids)
    .bind(&values)
    .bind(at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(written)
}

/// The reconciliation of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantReport {
    pub tenant: String,
    /// UTC, `YYYY-MM-DDThh:mm:ssZ`.
    pub checked_at: String,
    pub platform_subscriptions: usize,
    pub tcm_subscriptions: usize,
    pub differences: Vec<Difference>,
    /// TCM subscriptions the platform lacks that are younger than the settle time.
    pub unsettled: usize,
    /// Products whose `tcm_status` and `reconciled_at` were written.
    pub recorded: u64,
    /// Why the tenant could not be reconciled (then nothing was written for it).
    pub error: Option<String>,
}

/// A reconciliation of some tenants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub tenants: Vec<TenantReport>,
    /// Differences over all tenants.
    pub differences: usize,
    /// Tenants that could not be reconciled.
    pub failed: usize,
}

impl Report {
    /// Whether every tenant was reconciled.
    pub fn is_complete(&self) -> bool {
        self.failed == 0
    }
}

/// Compares the platform's products with TCM and records TCM's status on them.
#[derive(Debug, Clone)]
pub struct Reconciler {
    pool: PgPool,
    tcm: TcmClient,
    settle: Duration,
    metrics: Arc<ReconcileMetrics>,
}

impl Reconciler {
    /// With [`DEFAULT_SETTLE`] and metrics of its own.
    pub fn new(pool: PgPool, tcm: TcmClient) -> Self {
        Self {
            pool,
            tcm,
            settle: DEFAULT_SETTLE,
            metrics: Arc::default(),
        }
    }

    /// How young an unknown TCM subscription may be and still be on its way.
    #[must_use]
    pub fn with_settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<ReconcileMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn metrics(&self) -> &Arc<ReconcileMetrics> {
        &self.metrics
    }

    /// Reconciles one tenant; never fails, the report says what went wrong.
    pub async fn tenant(&self, tenant: &str) -> TenantReport {
        let now = Utc::now();
        let mut report = TenantReport {
            tenant: tenant.to_owned(),
            checked_at: now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            platform_subscriptions: 0,
            tcm_subscriptions: 0,
            differences: Vec::new(),
            unsettled: 0,
            recorded: 0,
            error: None,
        };
        // The platform first: see the module docs.
        let ours = match platform_subscriptions(&self.pool, tenant).await {
            Ok(ours) => ours,
            Err(e) => return self.failed(report, format!("database: {e}")),
        };
        report.platform_subscriptions = ours.len();
        let theirs = match tcm_subscriptions(&self.tcm, tenant).await {
            Ok(theirs) => theirs,
            Err(e) => return self.failed(report, format!("TCM unreadable: {e}")),
        };
        let settled_before = i64::try_from(self.settle.as_secs())
            .ok()
            .and_then(|settle| DateTime::from_timestamp(now.timestamp().checked_sub(settle)?, 0));
        let comparison = compare(tenant, &ours, &theirs, settled_before);
        if comparison.foreign > 0 {
            tracing::warn!(
                tenant,
                foreign = comparison.foreign,
                "TCM listed subscriptions of other tenants; left out."
            );
        }
        report.tcm_subscriptions = theirs.len() - comparison.foreign;
        report.unsettled = comparison.unsettled.len();
        match record(&self.pool, tenant, &comparison.tcm_status, now).await {
            Ok(recorded) => report.recorded = recorded,
            Err(e) => return self.failed(report, format!("database: {e}")),
        }
        // Kinds and ids only: the values (numbers, SIMs) are personal data, and belong in the
        // report an operator asked for, not in every log line.
        for difference in &comparison.differences {
            tracing::warn!(
                tenant,
                subscription = %difference.subscription_id,
                external_ref = %difference.external_ref,
                kind = difference.kind.code(),
                "TCM reconciliation: difference."
            );
        }
        report.differences = comparison.differences;
        tracing::info!(
            tenant,
            platform = report.platform_subscriptions,
            tcm = report.tcm_subscriptions,
            differences = report.differences.len(),
            unsettled = report.unsettled,
            recorded = report.recorded,
            "TCM reconciliation done."
        );
        self.metrics.observe(&report, now.timestamp());
        report
    }

    fn failed(&self, mut report: TenantReport, why: String) -> TenantReport {
        tracing::error!(tenant = %report.tenant, why, "TCM reconciliation failed.");
        report.error = Some(why);
        self.metrics.observe(&report, 0);
        report
    }

    /// Reconciles the tenants one after the other (TCM is slow: one walk at a time).
    pub async fn tenants(&self, tenants: &[String]) -> Report {
        let mut reports = Vec::new();
        for tenant in tenants {
            reports.push(self.tenant(tenant).await);
        }
        Report {
            differences: reports.iter().map(|r| r.differences.len()).sum(),
            failed: reports.iter().filter(|r| r.error.is_some()).count(),
            tenants: reports,
        }
    }
}

/// Why the platform's tenants could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum TenantsError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("the tenants topic was not read to its end within {0:?}")]
    Timeout(Duration),
}

/// The platform's tenants: the live keys of the compacted `tenants` topic, the one list of
/// them that Row-Level Security does not hide (every view is per tenant). Suspended tenants
/// are included: their subscriptions live on in TCM.
///
/// # Errors
/// The broker cannot be reached, or the topic not read to its end within a minute.
pub async fn platform_tenants(kafka: &KafkaSettings) -> Result<Vec<String>, TenantsError> {
    let kafka = kafka.clone();
    tokio::task::spawn_blocking(move || read_tenant_ids(&kafka))
        .await
        .expect("reading the tenants topic does not panic")
}

fn read_tenant_ids(kafka: &KafkaSettings) -> Result<Vec<String>, TenantsError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Message, Offset, TopicPartitionList};
    use tcom_schemas::topics::TENANTS;
    let timeout = Duration::from_secs(10);
    // Assigned, never subscribed: the group id is only a name, nothing is committed.
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", "tcom-tcm-reconcile")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(TENANTS), timeout)?;
    let mut ends = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = consumer.fetch_watermarks(TENANTS, partition.id(), timeout)?;
        if high > low {
            ends.insert(partition.id(), high);
            assignment.add_partition_offset(TENANTS, partition.id(), Offset::Beginning)?;
        }
    }
    let mut live = BTreeSet::new();
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    consumer.assign(&assignment)?;
    let limit = Duration::from_secs(60);
    let deadline = std::time::Instant::now() + limit;
    while !ends.is_empty() {
        if std::time::Instant::now() > deadline {
            return Err(TenantsError::Timeout(limit));
        }
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message?;
            let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
            if message.payload().is_some() {
                live.insert(key);
            } else {
                live.remove(&key);
            }
        }
        // Judged by position, which moves past the commit markers of a transactional topic
        // that a read_committed consumer never receives.
        let positions = consumer.position()?;
        ends.retain(|partition, high| {
            let position = positions
                .find_partition(TENANTS, *partition)
                .and_then(|p| match p.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                })
                .unwrap_or(-1);
            position < *high
        });
    }
    Ok(live.into_iter().collect())
}

/// Reconciles every tenant every `interval` until `shutdown` resolves; the first run comes
/// one interval after the start, so a process that restarts often does not walk TCM each
/// time. Failures are logged and counted and the next run comes as planned: a TCM outage
/// must not stop the connectors.
pub async fn run_periodically(
    reconciler: Reconciler,
    kafka: KafkaSettings,
    interval: Duration,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    tracing::info!(
        interval_ms = interval.as_millis() as u64,
        "TCM reconciliation scheduled."
    );
    loop {
        let waited = unless_stopped(shutdown.as_mut(), tokio::time::sleep(interval)).await;
        if waited.is_none() {
            return;
        }
        let tenants = match unless_stopped(shutdown.as_mut(), platform_tenants(&kafka)).await {
            None => return,
            Some(Ok(tenants)) => tenants,
            Some(Err(e)) => {
                tracing::error!(error = %e, "TCM reconciliation skipped: the tenants are unknown.");
                reconciler.metrics.failures.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        if unless_stopped(shutdown.as_mut(), reconciler.tenants(&tenants))
            .await
            .is_none()
        {
            return;
        }
    }
}

// ---- metrics ----

/// The reconciliation's Prometheus metrics, beside the connectors' (`/metrics/connectors`).
#[derive(Debug, Default)]
pub struct ReconcileMetrics {
    /// Tenant reconciliations that completed.
    runs: AtomicU64,
    /// Tenant reconciliations (or whole runs) that could not read TCM, the database or the
    /// tenants.
    failures: AtomicU64,
    /// Per tenant, what its last completed reconciliation found.
    last: Mutex<BTreeMap<String, LastRun>>,
}

#[derive(Debug, Clone, Default)]
struct LastRun {
    differences: BTreeMap<DifferenceKind, u64>,
    platform: usize,
    tcm: usize,
    /// Unix seconds.
    finished_at: i64,
}

impl ReconcileMetrics {
    /// Counts a tenant's reconciliation (`finished_at`: Unix seconds, when it completed).
    fn observe(&self, report: &TenantReport, finished_at: i64) {
        if report.error.is_some() {
            self.failures.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.runs.fetch_add(1, Ordering::Relaxed);
        let mut run = LastRun {
            platform: report.platform_subscriptions,
            tcm: report.tcm_subscriptions,
            finished_at,
            ..LastRun::default()
        };
        for difference in &report.differences {
            *run.differences.entry(difference.kind).or_default() += 1;
        }
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(report.tenant.clone(), run);
    }

    /// The metrics in the Prometheus text format. Gauges per tenant (brands are few) and,
    /// for differences, per kind, every kind shown (0 too) so an alert can tell "none" from
    /// "never reconciled".
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        let mut series = |name: &str, kind: &str, help: &str, samples: Vec<(String, String)>| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (labels, value) in samples {
                out.push_str(&format!("{name}{labels} {value}\n"));
            }
        };
        series(
            "tcom_tcm_reconcile_runs_total",
            "counter",
            "Tenant reconciliations with TCM that completed",
            vec![(String::new(), self.runs.load(Ordering::Relaxed).to_string())],
        );
        series(
            "tcom_tcm_reconcile_failures_total",
            "counter",
            "Tenant reconciliations with TCM that could not read TCM, the database or the tenants",
            vec![(
                String::new(),
                self.failures.load(Ordering::Relaxed).to_string(),
            )],
        );
        let last = self
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let differences = last
            .iter()
            .flat_map(|(tenant, run)| {
                DifferenceKind::ALL.iter().map(move |kind| {
                    (
                        format!("{{tenant=\"{tenant}\",kind=\"{}\"}}", kind.code()),
                        run.differences.get(kind).copied().unwrap_or(0).to_string(),
                    )
                })
            })
            .collect();
        series(
            "tcom_tcm_reconcile_differences",
            "gauge",
            "Differences between the platform's subscriptions and TCM's at the tenant's last reconciliation",
            differences,
        );
        let subscriptions = last
            .iter()
            .flat_map(|(tenant, run)| {
                [("platform", run.platform), ("tcm", run.tcm)].map(|(side, count)| {
                    (
                        format!("{{tenant=\"{tenant}\",side=\"{side}\"}}"),
                        count.to_string(),
                    )
                })
            })
            .collect();
        series(
            "tcom_tcm_reconcile_subscriptions",
            "gauge",
            "Subscriptions compared at the tenant's last reconciliation, per side",
            subscriptions,
        );
        let finished = last
            .iter()
            .map(|(tenant, run)| {
                (
                    format!("{{tenant=\"{tenant}\"}}"),
                    run.finished_at.to_string(),
                )
            })
            .collect();
        series(
            "tcom_tcm_reconcile_last_success_timestamp_seconds",
            "gauge",
            "When the tenant's last completed reconciliation with TCM ran (Unix seconds)",
            finished,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcm::client::ListedSharedSim;

    fn product(id: &str, status: &str) -> PlatformSubscription {
        PlatformSubscription {
            subscription_id: id.to_owned(),
            order_id: format!("order-{id}"),
            item_id: "l1".to_owned(),
            status: status.to_owned(),
            msisdn: Some("+4520000001".to_owned()),
            iccid: Some("8945000000000000011".to_owned()),
            plan_code: Some("fri-5g".to_owned()),
            binding_end_date: Some("2027-07-15".to_owned()),
            shared_sims: vec![
                "8945000000000000029".to_owned(),
                "8945000000000000037".to_owned(),
            ],
        }
    }

    /// TCM's subscription matching [`product`].
    fn subscription(id: &str, status: &str) -> TcmSubscription {
        TcmSubscription {
            subscription_id: id.to_owned(),
            customer_id: "C0000001".to_owned(),
            external_ref: format!("order-{id}/l1"),
            tenant: "nordlys".to_owned(),
            plan_code: "fri-5g".to_owned(),
            msisdn: "+4520000001".to_owned(),
            iccid: Some("8945000000000000011".to_owned()),
            sim_type: "ESIM".to_owned(),
            binding_end_date: Some("2027-07-15".to_owned()),
            // Another order than the platform's: a set.
            shared_data_sims: vec![
                ListedSharedSim {
                    iccid: "8945000000000000037".to_owned(),
                },
                ListedSharedSim {
                    iccid: "8945000000000000029".to_owned(),
                },
            ],
            status: status.to_owned(),
            activated_at: Some("2027-01-15T08:00:00Z".to_owned()),
        }
    }

    fn kinds(comparison: &Comparison) -> Vec<(&str, &str)> {
        comparison
            .differences
            .iter()
            .map(|d| (d.subscription_id.as_str(), d.kind.code()))
            .collect()
    }

    #[test]
    fn agreeing_sides_differ_in_nothing_and_tcm_status_is_recorded() {
        let ours = [product("S1", "active"), product("S2", "pendingActive")];
        let theirs = [subscription("S2", "ACTIVE"), subscription("S1", "ACTIVE")];
        let comparison = compare("nordlys", &ours, &theirs, None);
        assert_eq!(comparison.differences, []);
        assert_eq!(
            comparison.tcm_status,
            [
                ("S1".to_owned(), "ACTIVE".to_owned()),
                ("S2".to_owned(), "ACTIVE".to_owned())
            ]
        );
        assert!(comparison.unsettled.is_empty());
    }

    #[test]
    fn every_kind_of_difference_is_found_with_both_values() {
        let mut changed = subscription("S3", "SUSPENDED");
        changed.external_ref = "order-other/l9".into();
        changed.msisdn = "+4520000999".into();
        changed.iccid = None;
        changed.shared_data_sims.pop();
        changed.plan_code = "fri-10g".into();
        changed.binding_end_date = Some("2027-08-15".into());
        let ours = [product("S1", "active"), product("S3", "active")];
        let theirs = [changed, subscription("S9", "TERMINATED")];
        let comparison = compare("nordlys", &ours, &theirs, None);
        assert_eq!(
            kinds(&comparison),
            [
                ("S1", "missing_in_tcm"),
                ("S3", "reference_differs"),
                ("S3", "msisdn_differs"),
                ("S3", "iccid_differs"),
                ("S3", "shared_sims_differ"),
                ("S3", "plan_differs"),
                ("S3", "binding_differs"),
                ("S3", "status_differs"),
                ("S9", "unknown_to_platform"),
            ]
        );
        let find = |kind| {
            comparison
                .differences
                .iter()
                .find(|d| d.kind == kind)
                .unwrap()
        };
        let status = find(DifferenceKind::StatusDiffers);
        assert_eq!(status.platform.as_deref(), Some("active"));
        assert_eq!(status.tcm.as_deref(), Some("SUSPENDED"));
        assert_eq!(status.external_ref, "order-S3/l1");
        let cards = find(DifferenceKind::SharedSimsDiffer);
        assert_eq!(
            cards.platform.as_deref(),
            Some("8945000000000000029,8945000000000000037")
        );
        assert_eq!(cards.tcm.as_deref(), Some("8945000000000000037"));
        assert_eq!(find(DifferenceKind::IccidDiffers).tcm, None);
        let unknown = find(DifferenceKind::UnknownToPlatform);
        assert_eq!(
            (unknown.platform.as_deref(), unknown.tcm.as_deref()),
            (None, Some("TERMINATED"))
        );
        assert_eq!(unknown.external_ref, "order-S9/l1");
        // What TCM says is recorded for every product, MISSING for the one it lacks; nothing
        // for the subscription the platform does not have.
        assert_eq!(
            comparison.tcm_status,
            [
                ("S1".to_owned(), MISSING.to_owned()),
                ("S3".to_owned(), "SUSPENDED".to_owned())
            ]
        );
    }

    #[test]
    fn statuses_agree_as_tcm_activates_at_once_and_a_failed_line_should_be_terminated() {
        for (platform, tcm, agrees) in [
            ("pendingActive", "ACTIVE", true),
            ("active", "ACTIVE", true),
            ("active", "SUSPENDED", false),
            ("active", "TERMINATED", false),
            ("pendingActive", "TERMINATED", false),
            ("suspended", "SUSPENDED", true),
            ("cancelled", "ACTIVE", false),
            ("cancelled", "TERMINATED", true),
            ("aborted", "TERMINATED", true),
            ("aborted", "SUSPENDED", false),
            ("terminated", "TERMINATED", true),
            ("pendingTerminate", "ACTIVE", true),
            ("somethingNew", "ACTIVE", false),
        ] {
            assert_eq!(status_agrees(platform, tcm), agrees, "{platform} / {tcm}");
        }
    }

    #[test]
    fn a_young_subscription_the_platform_lacks_is_unsettled_not_unknown() {
        let mut young = subscription("S5", "ACTIVE");
        young.activated_at = Some("2027-01-15T08:10:00Z".into());
        let old = subscription("S6", "ACTIVE");
        let mut undated = subscription("S7", "ACTIVE");
        undated.activated_at = Some("yesterday".into());
        let cutoff = DateTime::parse_from_rfc3339("2027-01-15T08:05:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let comparison = compare("nordlys", &[], &[young, old, undated], Some(cutoff));
        assert_eq!(comparison.unsettled, ["S5"]);
        // An activation time TCM wrote in a way that does not parse is reported, not hidden.
        assert_eq!(
            kinds(&comparison),
            [("S6", "unknown_to_platform"), ("S7", "unknown_to_platform")]
        );
    }

    #[test]
    fn another_tenants_subscriptions_are_never_reported_or_recorded_under_this_one() {
        let mut elsewhere = subscription("S1", "SUSPENDED");
        elsewhere.tenant = "brightwave".into();
        let mut stranger = subscription("S8", "ACTIVE");
        stranger.tenant = "brightwave".into();
        let comparison = compare(
            "nordlys",
            &[product("S1", "active")],
            &[elsewhere, stranger],
            None,
        );
        assert_eq!(comparison.foreign, 2);
        assert_eq!(kinds(&comparison), [("S1", "missing_in_tcm")]);
        assert_eq!(
            comparison.tcm_status,
            [("S1".to_owned(), MISSING.to_owned())]
        );
    }

    #[test]
    fn kind_codes_are_stable_and_the_report_carries_them() {
        let codes: Vec<&str> = DifferenceKind::ALL.iter().map(|k| k.code()).collect();
        assert_eq!(
            codes,
            [
                "missing_in_tcm",
                "unknown_to_platform",
                "reference_differs",
                "msisdn_differs",
                "iccid_differs",
                "shared_sims_differ",
                "plan_differs",
                "binding_differs",
                "status_differs"
            ]
        );
        for kind in DifferenceKind::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.code());
        }
    }

    #[test]
    fn the_cards_are_read_from_the_products_resources() {
        let document = serde_json::json!({"realizingResource": [
            {"id": "8945000000000000011", "name": "SIM", "@referredType": "SIM"},
            {"id": "8945000000000000029", "name": "data-sharing SIM", "@referredType": "SIM"},
            {"id": "+4520000001", "name": "MSISDN", "@referredType": "MSISDN"},
        ]});
        assert_eq!(shared_sims_of(&document), ["8945000000000000029"]);
        assert!(shared_sims_of(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn metrics_show_the_last_run_per_tenant_and_kind_and_count_failures() {
        let metrics = ReconcileMetrics::default();
        let mut report = TenantReport {
            tenant: "nordlys".into(),
            checked_at: "2027-01-15T08:00:00Z".into(),
            platform_subscriptions: 2,
            tcm_subscriptions: 3,
            differences: compare(
                "nordlys",
                &[product("S1", "active")],
                &[subscription("S1", "SUSPENDED")],
                None,
            )
            .differences,
            unsettled: 0,
            recorded: 2,
            error: None,
        };
        metrics.observe(&report, 1_800_000_000);
        report.error = Some("TCM unreadable".into());
        metrics.observe(&report, 0);
        let text = metrics.render_prometheus();
        for line in [
            "tcom_tcm_reconcile_runs_total 1",
            "tcom_tcm_reconcile_failures_total 1",
            "tcom_tcm_reconcile_differences{tenant=\"nordlys\",kind=\"status_differs\"} 1",
            "tcom_tcm_reconcile_differences{tenant=\"nordlys\",kind=\"missing_in_tcm\"} 0",
            "tcom_tcm_reconcile_subscriptions{tenant=\"nordlys\",side=\"tcm\"} 3",
            "tcom_tcm_reconcile_last_success_timestamp_seconds{tenant=\"nordlys\"} 1800000000",
            "# TYPE tcom_tcm_reconcile_differences gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
    }
}
