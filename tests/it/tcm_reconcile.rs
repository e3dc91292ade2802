//! The TCM reconciliation on the real stack: orders placed and paid through the platform
//! become subscriptions in the test platform's TCM simulator and products in its view; one is
//! changed in TCM behind the platform's back (the simulator's drift control), and the
//! reconciliation, run against the platform's PostgreSQL and that simulator, reports it,
//! records TCM's status on the product, and keeps each tenant's products to that tenant.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tcom_connectors::tcm::client::TcmClient;
use tcom_connectors::tcm::reconcile::{DifferenceKind, Reconciler};
use tcom_tests::{closed_port, customer_token, eventually, platform, unique};

use crate::checkout_shop::{Provider, Shop};

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Orders one eSIM line for `customer` with the shop's number `n`, pays it and waits for the
/// brand's product (TMF637) of it; returns the product.
async fn subscribed(shop: &Shop, customer: &str, n: usize) -> Value {
    let token = customer_token(&shop.tenant, customer).await;
    let basket = shop.ready_basket(&token, &shop.numbers[n]).await;
    let order = shop.checkout(&token, &basket, None).await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
    shop.pay(&order.body, "visa").await;
    shop.order_in(&token, &basket, "completed", Duration::from_secs(60))
        .await;
    eventually(Duration::from_secs(20), || async {
        products(shop).await.into_iter().find(|p| {
            p["productOrderItem"][0]["productOrderId"] == basket.as_str() && p["status"] == "active"
        })
    })
    .await
    .unwrap_or_else(|| panic!("order {basket} never became an active product"))
}

/// The brand's products, as its staff sees them.
async fn products(shop: &Shop) -> Vec<Value> {
    let listed = shop
        .admin(
            Method::GET,
            "/v1/admin/subscriptions",
            &shop.brand_admin(),
            None,
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    listed.body["items"].as_array().unwrap().clone()
}

async fn product(shop: &Shop, id: &str) -> Value {
    products(shop)
        .await
        .into_iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("no product {id} in {}", shop.tenant))
}

fn id_of(product: &Value) -> String {
    product["id"].as_str().unwrap().to_owned()
}

/// Changes a subscription in TCM as one of its agents would.
async fn drift(id: &str, status: &str) {
    let drifted = http()
        .post(format!(
            "{}/_sim/subscriptions/{id}/drift",
            platform().tcm_url
        ))
        .json(&json!({ "status": status }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        drifted.status(),
        StatusCode::OK,
        "{:?}",
        drifted.text().await
    );
}

/// A subscription created in TCM by someone else than the platform (an agent, another
/// system): a customer and a subscription in `tenant`; returns its id.
async fn created_outside(tenant: &str, msisdn: &str) -> String {
    let tcm = &platform().tcm_url;
    let customer: Value = http()
        .post(format!("{tcm}/tcm/v1/customers"))
        .header("x-request-id", unique("agent-customer"))
        .json(&json!({"externalRef": "walk-in", "tenant": tenant, "name": "Walk-in customer"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let subscription: Value = http()
        .post(format!("{tcm}/tcm/v1/subscriptions"))
        .header("x-request-id", unique("agent-subscription"))
        .json(&json!({
            "customerId": customer["customerId"], "externalRef": "agent/desk", "tenant": tenant,
            "planCode": "plan", "msisdn": msisdn, "simType": "PSIM", "sharedDataSims": [],
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    subscription["subscriptionId"]
        .as_str()
        .unwrap_or_else(|| panic!("not created: {subscription}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_changed_in_tcm_is_reported_and_recorded_for_its_tenant_only() {
    let (shop, other) = tokio::join!(
        Shop::open(Provider::Stripe, 600, 2),
        Shop::open(Provider::Stripe, 600, 1)
    );
    let (drifted, steady) = (
        subscribed(&shop, "alice", 0).await,
        subscribed(&shop, "bob", 1).await,
    );
    let elsewhere = subscribed(&other, "carol", 0).await;
    let (drifted_id, steady_id, elsewhere_id) =
        (id_of(&drifted), id_of(&steady), id_of(&elsewhere));
    // An agent suspends alice's subscription, and another tenant's is terminated; neither
    // tells the platform.
    drift(&drifted_id, "SUSPENDED").await;
    drift(&elsewhere_id, "TERMINATED").await;
    // And someone creates a subscription in TCM that no order of the platform made.
    // (TCM refuses a number live anywhere in it, and the simulator is the whole suite's.)
    let number = format!("+4479{:08}", uuid::Uuid::new_v4().as_u128() % 100_000_000);
    let orphan = created_outside(&shop.tenant, &number).await;

    let pool = sqlx::PgPool::connect(&platform().database_url)
        .await
        .unwrap();
    let tcm = TcmClient::new(&platform().tcm_url, Duration::from_secs(5));
    // With the default settle time, the orphan (seconds old) may still be on its way to an
    // order: counted, not reported.
    let report = Reconciler::new(pool.clone(), tcm.clone())
        .tenant(&shop.tenant)
        .await;
    assert_eq!(report.error, None, "{report:?}");
    assert_eq!(report.unsettled, 1, "{report:?}");
    let kinds: Vec<(String, DifferenceKind)> = report
        .differences
        .iter()
        .map(|d| (d.subscription_id.clone(), d.kind))
        .collect();
    assert_eq!(
        kinds,
        [(drifted_id.clone(), DifferenceKind::StatusDiffers)],
        "{report:?}"
    );

    let reconciler = Reconciler::new(pool.clone(), tcm.clone()).with_settle(Duration::ZERO);
    let report = reconciler.tenant(&shop.tenant).await;
    assert_eq!(report.error, None, "{report:?}");
    assert_eq!(
        (report.platform_subscriptions, report.tcm_subscriptions),
        (2, 3),
        "{report:?}"
    );
    let status = report
        .differences
        .iter()
        .find(|d| d.kind == DifferenceKind::StatusDiffers)
        .expect("the suspension is found");
    assert_eq!(status.subscription_id, drifted_id);
    assert_eq!(
        (status.platform.as_deref(), status.tcm.as_deref()),
        (Some("active"), Some("SUSPENDED"))
    );
    assert!(
        status.external_ref.starts_with(
            drifted["productOrderItem"][0]["productOrderId"]
                .as_str()
                .unwrap()
        ),
        "{status:?}"
    );
    let unknown: Vec<&str> = report
        .differences
        .iter()
        .filter(|d| d.kind == DifferenceKind::UnknownToPlatform)
        .map(|d| d.subscription_id.as_str())
        .collect();
    assert_eq!(unknown, [orphan.as_str()], "{report:?}");
    assert_eq!(report.differences.len(), 2, "nothing else: {report:?}");
    assert_eq!(report.recorded, 2, "both products got TCM's status");
    // The other tenant is not in this tenant's report at all.
    let text = serde_json::to_string(&report).unwrap();
    assert!(!text.contains(&elsewhere_id), "{text}");
    assert!(!text.contains(&other.tenant), "{text}");

    // TCM's status is on the products, as the brand's API shows them; the order-derived
    // status is not rewritten.
    let seen = product(&shop, &drifted_id).await;
    assert_eq!(seen["tcm"]["status"], "SUSPENDED", "{seen}");
    assert!(seen["tcm"]["checkedAt"].as_str().is_some(), "{seen}");
    assert_eq!(seen["status"], "active", "{seen}");
    assert_eq!(product(&shop, &steady_id).await["tcm"]["status"], "ACTIVE");
    // The other tenant's product was not touched by this tenant's reconciliation.
    let untouched = product(&other, &elsewhere_id).await;
    assert!(untouched.get("tcm").is_none(), "{untouched}");
    let metrics = reconciler.metrics().render_prometheus();
    for line in [
        format!(
            "tcom_tcm_reconcile_differences{{tenant=\"{}\",kind=\"status_differs\"}} 1",
            shop.tenant
        ),
        format!(
            "tcom_tcm_reconcile_differences{{tenant=\"{}\",kind=\"unknown_to_platform\"}} 1",
            shop.tenant
        ),
        "tcom_tcm_reconcile_runs_total 1".to_owned(),
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}\n{metrics}");
    }
    assert!(!metrics.contains(&other.tenant), "{metrics}");

    // Its own reconciliation finds its own termination, and leaves the first tenant's notes.
    let report = reconciler.tenant(&other.tenant).await;
    assert_eq!(report.error, None, "{report:?}");
    let kinds: Vec<(&str, &str)> = report
        .differences
        .iter()
        .map(|d| (d.subscription_id.as_str(), d.kind.code()))
        .collect();
    assert_eq!(kinds, [(elsewhere_id.as_str(), "status_differs")]);
    assert_eq!(
        product(&other, &elsewhere_id).await["tcm"]["status"],
        "TERMINATED"
    );
    assert_eq!(
        product(&shop, &drifted_id).await["tcm"]["status"],
        "SUSPENDED"
    );

    // TCM unreachable: the tenant fails, and nothing is written (no product is "MISSING").
    let down = Reconciler::new(
        pool,
        TcmClient::new(
            format!("http://127.0.0.1:{}", closed_port()),
            Duration::from_secs(1),
        ),
    );
    let report = down.tenants(std::slice::from_ref(&shop.tenant)).await;
    assert!(!report.is_complete(), "{report:?}");
    let why = report.tenants[0].error.as_deref().unwrap_or_default();
    assert!(why.starts_with("TCM unreadable"), "{why}");
    assert_eq!(report.tenants[0].recorded, 0);
    assert_eq!(
        product(&shop, &drifted_id).await["tcm"]["status"],
        "SUSPENDED"
    );
    assert!(
        down.metrics()
            .render_prometheus()
            .lines()
            .any(|l| l == "tcom_tcm_reconcile_failures_total 1")
    );
}
