//! Checkout, orders and payments through HTTP on the real stack: the storefront API, the
//! basket, order and MSISDN processors, the payments connector against the Stripe and Adyen
//! simulators, their signed webhooks into the ingress, and the order view.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tcom_ingress::auth::BRAND_ADMIN;
use tcom_tests::{
    TestApp, admin_token, customer_token, eventually, operator_token, platform,
    spawn_platform_ingress, unique,
};

/// Which provider a shop uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    Stripe,
    Adyen,
}

/// A tenant selling one plan (activation 99.00, 299.00 a month) with a pool of numbers and
/// a payment account at one of the simulators, whose webhooks reach this test's ingress.
struct Shop {
    app: TestApp,
    tenant: String,
    host: String,
    numbers: Vec<String>,
    provider: Provider,
    /// Stripe secret key, or Adyen API key.
    api_key: String,
    http: reqwest::Client,
}

struct Reply {
    status: StatusCode,
    body: Value,
}

const ACTIVATION: i64 = 9900;
const MONTHLY: i64 = 29900;

impl Shop {
    async fn open(provider: Provider, freeze_seconds: i32, pool_size: usize) -> Self {
        let platform = platform();
        let app = spawn_platform_ingress().await;
        let tenant = unique("co").chars().take(18).collect::<String>();
        let host = format!("{tenant}.shop.test");
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let (api_key, merchant_account, webhook_secret) = match provider {
            Provider::Stripe => {
                let key = format!("sk_test_{}", tenant.replace('-', ""));
                let secret = format!("whsec_{}", uuid::Uuid::new_v4().simple());
                let endpoint = http
                    .post(format!("{}/v1/webhook_endpoints", platform.stripe_url))
                    .bearer_auth(&key)
                    .form(&[
                        ("url", app.url(&format!("/v1/webhooks/stripe/{tenant}"))),
                        ("enabled_events[]", "*".to_owned()),
                        ("secret", secret.clone()),
                    ])
                    .send()
                    .await
                    .unwrap();
                assert!(
                    endpoint.status().is_success(),
                    "{:?}",
                    endpoint.text().await
                );
                (key, format!("acct_{tenant}"), secret)
            }
            Provider::Adyen => {
                let key = format!("AQE{}", uuid::Uuid::new_v4().simple());
                let merchant = format!("{}ECOM", tenant.replace('-', ""));
                let hooks = format!("{}/v3/merchants/{merchant}/webhooks", platform.adyen_url);
                let created: Value = http
                    .post(&hooks)
                    .header("x-api-key", &key)
                    .json(&json!({"url": app.url(&format!("/v1/webhooks/adyen/{tenant}")),
                                  "type": "standard", "active": true, "communicationFormat": "json"}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let id = created["id"].as_str().expect("a webhook id").to_owned();
                let hmac: Value = http
                    .post(format!("{hooks}/{id}/generateHmac"))
                    .header("x-api-key", &key)
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                (
                    key,
                    merchant,
                    hmac["hmacKey"].as_str().expect("an HMAC key").to_owned(),
                )
            }
        };
        let name = match provider {
            Provider::Stripe => "stripe",
            Provider::Adyen => "adyen",
        };
        let secret_ref = platform.put_secret(&format!("{name}/{tenant}/key"), &api_key);
        let webhook_ref = platform.put_secret(&format!("{name}/{tenant}/webhook"), &webhook_secret);
        let shop = Self {
            app,
            tenant: tenant.clone(),
            host: host.clone(),
            numbers: Vec::new(),
            provider,
            api_key,
            http,
        };
        let settings = json!({
            "name": "Checkout test brand",
            "domains": [host],
            "default_locale": "da-DK",
            "locales": ["da-DK"],
            "currency": "DKK",
            "country": "DK",
            "segments": [{"name": "consumer", "max_binding_months": 6}],
            "channels": ["web"],
            "payment": {"provider": name, "account_ref": merchant_account,
                        "secret_ref": secret_ref, "webhook_secret_ref": webhook_ref},
            "storefront": {"basket_ttl_seconds": 600, "reservation_ttl_seconds": 300,
                           "requests_per_second": 2000, "checkout_freeze_seconds": freeze_seconds},
        });
        let onboarded = shop
            .admin(
                Method::POST,
                "/v1/platform/tenants",
                &operator_token(),
                Some(json!({"tenant_id": tenant, "settings": settings})),
            )
            .await;
        assert_eq!(onboarded.status, StatusCode::CREATED, "{}", onboarded.body);
        let served = eventually(Duration::from_secs(5), || async {
            let r = shop
                .call(Method::GET, "/v1/storefront/tenant", None, None)
                .await;
            (r.status == StatusCode::OK).then_some(())
        })
        .await;
        assert!(served.is_some(), "{host} not served");
        shop.put_plan(MONTHLY).await;
        let activated = shop
            .admin(
                Method::POST,
                "/v1/admin/offerings/plan/activate",
                &shop.brand_admin(),
                Some(json!({})),
            )
            .await;
        assert_eq!(activated.status, StatusCode::OK, "{}", activated.body);
        let mut shop = shop;
        let base = 10_000_000 + (uuid::Uuid::new_v4().as_u128() % 80_000_000) as u64;
        shop.numbers = (0..pool_size as u64)
            .map(|i| format!("+45{}", base + i))
            .collect();
        if pool_size > 0 {
            let imported = shop
                .admin(
                    Method::POST,
                    "/v1/admin/number-pool",
                    &shop.brand_admin(),
                    Some(json!({"numbers": shop.numbers})),
                )
                .await;
            assert_eq!(imported.status, StatusCode::OK, "{}", imported.body);
        }
        shop
    }

    fn brand_admin(&self) -> String {
        admin_token(Some(&self.tenant), &[BRAND_ADMIN])
    }

    async fn put_plan(&self, monthly: i64) {
        let put = self
            .admin(
                Method::PUT,
                "/v1/admin/offerings/plan",
                &self.brand_admin(),
                Some(json!({
                    "name": "Fri 5G",
                    "specification_id": "mobile",
                    "kind": "PLAN",
                    "prices": [
                        {"name": "activation", "price_type": "ONE_TIME", "amount_minor": ACTIVATION, "currency": "DKK"},
                        {"name": "monthly", "price_type": "RECURRING", "amount_minor": monthly, "currency": "DKK", "recurring_period_months": 1}
                    ],
                    "binding_months": [0],
                    "sim_types": ["PSIM", "ESIM"],
                    "add_ons": [],
                    "placements": [{"channel": "web", "sort_order": 1}]
                })),
            )
            .await;
        assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        host: &str,
        bearer: Option<&str>,
        body: Option<Value>,
        key: Option<&str>,
    ) -> Reply {
        let mut request = self
            .app
            .http
            .request(method, self.app.url(path))
            .header("host", host);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let r = request.send().await.unwrap();
        let status = r.status();
        Reply {
            status,
            body: r.json().await.unwrap_or(Value::Null),
        }
    }

    async fn admin(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Reply {
        self.send(method, path, &self.host, Some(token), body, None)
            .await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        customer: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.send(method, path, &self.host, customer, body, None)
            .await
    }

    /// A customer's basket with one line holding `msisdn`, ready for checkout.
    async fn ready_basket(&self, customer: &str, msisdn: &str) -> String {
        // The basket processor learns a new shop's catalog from its global tables: retry the
        // first line until it sells the plan.
        let created = self
            .call(
                Method::POST,
                "/v1/storefront/baskets",
                Some(customer),
                Some(json!({"channel": "web"})),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let basket = created.body["basket_id"].as_str().unwrap().to_owned();
        let added = eventually(Duration::from_secs(10), || async {
            let r = self
                .call(
                    Method::POST,
                    &format!("/v1/storefront/baskets/{basket}/lines"),
                    Some(customer),
                    Some(json!({"offering_id": "plan", "sim_type": "ESIM",
                                "number": {"type": "new_number", "msisdn": msisdn}})),
                )
                .await;
            (r.status == StatusCode::OK).then_some(r)
        })
        .await
        .expect("the plan is sold with the number");
        assert_eq!(added.body["lines"].as_array().unwrap().len(), 1);
        basket
    }

    async fn checkout(&self, customer: &str, basket: &str, key: Option<&str>) -> Reply {
        self.send(
            Method::POST,
            &format!("/v1/storefront/baskets/{basket}/checkout"),
            &self.host,
            Some(customer),
            None,
            key,
        )
        .await
    }

    /// Waits for the order view to show `state`; returns the order.
    async fn order_in(&self, customer: &str, order: &str, state: &str, within: Duration) -> Value {
        let last = std::sync::Mutex::new(Value::Null);
        let found = eventually(within, || async {
            let r = self
                .call(
                    Method::GET,
                    &format!("/v1/storefront/orders/{order}"),
                    Some(customer),
                    None,
                )
                .await;
            *last.lock().unwrap() = r.body.clone();
            (r.status == StatusCode::OK && r.body["state"] == state).then_some(r.body)
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "order {order} never reached {state}; last seen: {}",
                last.lock().unwrap()
            )
        })
    }

    /// The number's status in the pool view.
    async fn number_status(&self, msisdn: &str) -> Option<String> {
        let pool = self
            .admin(
                Method::GET,
                "/v1/admin/number-pool",
                &self.brand_admin(),
                None,
            )
            .await;
        pool.body["items"]
            .as_array()?
            .iter()
            .find(|n| n["msisdn"] == msisdn)
            .and_then(|n| n["status"].as_str().map(str::to_owned))
    }

    async fn number_becomes(&self, msisdn: &str, status: &str, within: Duration) -> bool {
        eventually(within, || async {
            (self.number_status(msisdn).await.as_deref() == Some(status)).then_some(())
        })
        .await
        .is_some()
    }

    /// The simulator's ledger entries for `order` (Stripe intents by metadata, Adyen sessions
    /// by reference).
    async fn ledger(&self, order: &str) -> Vec<Value> {
        let platform = platform();
        let url = match self.provider {
            Provider::Stripe => format!("{}/_sim/ledger", platform.stripe_url),
            Provider::Adyen => format!("{}/_sim/ledger", platform.adyen_url),
        };
        let ledger: Value = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let entries = ledger
            .get("entries")
            .or_else(|| ledger.get("intents"))
            .or_else(|| ledger.get("data"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        entries
            .into_iter()
            .filter(|e| {
                e["metadata"]["order_id"] == order
                    || e["reference"] == order
                    || e["payment_intent"]["metadata"]["order_id"] == order
            })
            .collect()
    }

    /// Pays the order's payment as a shopper would on the provider's page: `visa`, `declined`
    /// or `3ds` (Stripe: confirming with the test payment method; Adyen: the hosted page).
    async fn pay(&self, order: &Value, how: &str) {
        match self.provider {
            Provider::Stripe => {
                let intent = order["payment"][0]["id"].as_str().expect("an intent id");
                let method = match how {
                    "visa" => "pm_card_visa",
                    "declined" => "pm_card_chargeDeclined",
                    _ => "pm_card_authenticationRequired",
                };
                let r = self
                    .http
                    .post(format!(
                        "{}/v1/payment_intents/{intent}/confirm",
                        platform().stripe_url
                    ))
                    .bearer_auth(&self.api_key)
                    .form(&[("payment_method", method)])
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                let body: Value = r.json().await.unwrap();
                if how == "declined" {
                    assert!(!status.is_success() || body["last_payment_error"].is_object());
                    return;
                }
                assert!(status.is_success(), "{body}");
                if how == "3ds" {
                    assert_eq!(body["status"], "requires_action", "{body}");
                    let challenge = body["next_action"]["redirect_to_url"]["url"]
                        .as_str()
                        .expect("a 3-D Secure page");
                    let done = self
                        .http
                        .post(challenge)
                        .form(&[("outcome", "complete")])
                        .send()
                        .await
                        .unwrap();
                    assert!(done.status().is_success() || done.status().is_redirection());
                }
            }
            Provider::Adyen => {
                let page = order["paymentAction"]["redirectUrl"]
                    .as_str()
                    .expect("a hosted payment page");
                let outcome = match how {
                    "visa" => "authorise",
                    "declined" => "refuse",
                    _ => "challenge",
                };
                let r = self
                    .http
                    .post(page)
                    .form(&[("outcome", outcome)])
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_redirection() || r.status().is_success());
                if how == "3ds" {
                    let challenge = page.replace("/_sim/checkout/", "/_sim/3ds/");
                    let done = self
                        .http
                        .post(challenge)
                        .form(&[("outcome", "complete")])
                        .send()
                        .await
                        .unwrap();
                    assert!(done.status().is_redirection() || done.status().is_success());
                }
            }
        }
    }
}

fn due_now() -> i64 {
    ACTIVATION + MONTHLY
}

async fn full_purchase(provider: Provider, how: &str) {
    let shop = Shop::open(provider, 600, 1).await;
    let alice = customer_token(&shop.tenant, "alice");
    let basket = shop.ready_basket(&alice, &shop.numbers[0]).await;
    let checkout = shop.checkout(&alice, &basket, None).await;
    assert_eq!(checkout.status, StatusCode::CREATED, "{}", checkout.body);
    let order = checkout.body;
    assert_eq!(order["id"], basket.as_str(), "an order has its basket's id");
    assert_eq!(order["state"], "pending", "{order}");
    assert_eq!(
        order["orderTotalPrice"][0]["price"]["taxIncludedAmount"]["valueMinor"],
        due_now()
    );
    assert_eq!(
        order["productOrderItem"][0]["productOffering"]["id"],
        "plan"
    );
    match provider {
        Provider::Stripe => assert!(
            order["paymentAction"]["clientSecret"].is_string(),
            "{order}"
        ),
        Provider::Adyen => assert!(order["paymentAction"]["redirectUrl"].is_string(), "{order}"),
    }
    shop.pay(&order, how).await;
    let completed = shop
        .order_in(&alice, &basket, "completed", Duration::from_secs(20))
        .await;
    assert_eq!(completed["productOrderItem"][0]["state"], "completed");
    assert_eq!(
        completed["payment"][0]["capturedAmount"]["valueMinor"],
        due_now()
    );
    assert!(
        shop.number_becomes(&shop.numbers[0], "ASSIGNED", Duration::from_secs(5))
            .await,
        "the order's number is assigned"
    );
    let ledger = shop.ledger(&basket).await;
    assert_eq!(ledger.len(), 1, "one payment for the order: {ledger:?}");
    match provider {
        Provider::Stripe => {
            assert_eq!(ledger[0]["status"], "succeeded", "{ledger:?}");
            assert_eq!(ledger[0]["amount_received"], due_now(), "{ledger:?}");
        }
        Provider::Adyen => {
            assert_eq!(ledger[0]["captured"], due_now(), "{ledger:?}");
        }
    }
    // The brand sees it among its completed orders.
    let listed = shop
        .admin(
            Method::GET,
            "/v1/admin/orders?state=completed",
            &shop.brand_admin(),
            None,
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert!(
        listed.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["id"] == basket.as_str())
    );
}

#[tokio::test]
async fn a_stripe_purchase_is_paid_captured_and_completed() {
    full_purchase(Provider::Stripe, "visa").await;
}

#[tokio::test]
async fn a_stripe_purchase_with_a_3ds_challenge_completes() {
    full_purchase(Provider::Stripe, "3ds").await;
}

#[tokio::test]
async fn an_adyen_purchase_is_paid_captured_and_completed() {
    full_purchase(Provider::Adyen, "visa").await;
}

#[tokio::test]
async fn an_adyen_purchase_with_a_3ds_challenge_completes() {
    full_purchase(Provider::Adyen, "3ds").await;
}

#[tokio::test]
async fn a_refused_payment_fails_the_order_when_the_freeze_window_ends() {
    for provider in [Provider::Stripe, Provider::Adyen] {
        let shop = Shop::open(provider, 4, 1).await;
        let bob = customer_token(&shop.tenant, "bob");
        let basket = shop.ready_basket(&bob, &shop.numbers[0]).await;
        let order = shop.checkout(&bob, &basket, None).await;
        assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
        shop.pay(&order.body, "declined").await;
        // Refused, but open for another try while the window lasts.
        let refused = eventually(Duration::from_secs(3), || async {
            let r = shop
                .call(
                    Method::GET,
                    &format!("/v1/storefront/orders/{basket}"),
                    Some(&bob),
                    None,
                )
                .await;
            r.body["paymentAction"]["lastRefusal"]
                .is_string()
                .then_some(r.body)
        })
        .await
        .unwrap_or_else(|| panic!("{provider:?}: the refusal is never shown"));
        assert_eq!(refused["state"], "pending");
        assert_eq!(
            shop.number_status(&shop.numbers[0]).await.as_deref(),
            Some("RESERVED")
        );
        let failed = shop
            .order_in(&bob, &basket, "failed", Duration::from_secs(15))
            .await;
        assert!(
            failed["stateReason"]
                .as_str()
                .unwrap()
                .contains("freeze window"),
            "{failed}"
        );
        assert!(
            shop.number_becomes(&shop.numbers[0], "AVAILABLE", Duration::from_secs(5))
                .await,
            "{provider:?}: the number goes back to the pool"
        );
        let ledger = shop.ledger(&basket).await;
        assert_eq!(ledger.len(), 1, "{ledger:?}");
        let captured = ledger[0]["amount_received"]
            .as_i64()
            .or_else(|| ledger[0]["captured"].as_i64())
            .unwrap_or_default();
        assert_eq!(captured, 0, "nothing captured: {ledger:?}");
    }
}

#[tokio::test]
async fn checking_out_again_meets_the_same_order_and_one_payment() {
    let shop = Shop::open(Provider::Stripe, 600, 1).await;
    let alice = customer_token(&shop.tenant, "alice");
    let basket = shop.ready_basket(&alice, &shop.numbers[0]).await;
    let first = shop.checkout(&alice, &basket, Some("pay-1")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let same_key = shop.checkout(&alice, &basket, Some("pay-1")).await;
    let other_key = shop.checkout(&alice, &basket, Some("pay-2")).await;
    let no_key = shop.checkout(&alice, &basket, None).await;
    for again in [&same_key, &other_key, &no_key] {
        assert!(again.status.is_success(), "{} {}", again.status, again.body);
        assert_eq!(
            again.body["id"], first.body["id"],
            "{} {}",
            again.status, again.body
        );
        assert_eq!(
            again.body["payment"][0]["id"],
            first.body["payment"][0]["id"]
        );
    }
    assert_eq!(
        shop.ledger(&basket).await.len(),
        1,
        "one intent for one order"
    );
    // The basket is frozen: no more changes.
    let change = shop
        .call(
            Method::POST,
            &format!("/v1/storefront/baskets/{basket}/lines"),
            Some(&alice),
            Some(json!({"offering_id": "plan", "sim_type": "ESIM",
                        "number": {"type": "port_in", "msisdn": "+4530123456", "current_operator": "Telia"}})),
        )
        .await;
    assert_eq!(change.status, StatusCode::CONFLICT, "{}", change.body);
    assert_eq!(change.body["code"], "basket_not_active");
}

#[tokio::test]
async fn a_basket_that_is_not_ready_is_refused_with_every_problem() {
    let shop = Shop::open(Provider::Stripe, 600, 0).await;
    let alice = customer_token(&shop.tenant, "alice");
    let created = shop
        .call(
            Method::POST,
            "/v1/storefront/baskets",
            Some(&alice),
            Some(json!({"channel": "web"})),
        )
        .await;
    let basket = created.body["basket_id"].as_str().unwrap().to_owned();
    let refused = shop.checkout(&alice, &basket, None).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert_eq!(refused.body["code"], "basket_empty");
    // A guest cannot check out at all.
    let guest = shop
        .send(
            Method::POST,
            &format!("/v1/storefront/baskets/{basket}/checkout"),
            &shop.host,
            None,
            None,
            None,
        )
        .await;
    assert_eq!(guest.status, StatusCode::UNAUTHORIZED, "{}", guest.body);
    // Nothing was ordered.
    let orders = shop
        .call(Method::GET, "/v1/storefront/orders", Some(&alice), None)
        .await;
    assert_eq!(orders.body["items"], json!([]));
}

#[tokio::test]
async fn a_price_change_after_checkout_does_not_change_the_amount_charged() {
    let shop = Shop::open(Provider::Stripe, 600, 1).await;
    let alice = customer_token(&shop.tenant, "alice");
    let basket = shop.ready_basket(&alice, &shop.numbers[0]).await;
    let order = shop.checkout(&alice, &basket, None).await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
    // The brand doubles the price, and the basket processor knows it before the payment.
    shop.put_plan(MONTHLY * 2).await;
    let repriced = eventually(Duration::from_secs(10), || async {
        let r = shop
            .call(Method::GET, "/v1/storefront/catalog", None, None)
            .await;
        r.body
            .to_string()
            .contains(&(MONTHLY * 2).to_string())
            .then_some(())
    })
    .await;
    assert!(repriced.is_some(), "the new price is published");
    shop.pay(&order.body, "visa").await;
    let completed = shop
        .order_in(&alice, &basket, "completed", Duration::from_secs(20))
        .await;
    assert_eq!(
        completed["payment"][0]["capturedAmount"]["valueMinor"],
        due_now()
    );
    let ledger = shop.ledger(&basket).await;
    assert_eq!(ledger[0]["amount_received"], due_now(), "{ledger:?}");
}

#[tokio::test]
async fn cancelling_before_payment_voids_it_and_frees_the_number() {
    let shop = Shop::open(Provider::Stripe, 600, 1).await;
    let alice = customer_token(&shop.tenant, "alice");
    let basket = shop.ready_basket(&alice, &shop.numbers[0]).await;
    let order = shop.checkout(&alice, &basket, None).await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
    let cancelled = shop
        .call(
            Method::POST,
            &format!("/v1/storefront/orders/{basket}/cancel"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["state"], "pendingCancellation");
    shop.order_in(&alice, &basket, "cancelled", Duration::from_secs(15))
        .await;
    assert!(
        shop.number_becomes(&shop.numbers[0], "AVAILABLE", Duration::from_secs(5))
            .await
    );
    let ledger = shop.ledger(&basket).await;
    assert_eq!(ledger[0]["status"], "canceled", "{ledger:?}");
    // A cancelled order cannot be cancelled again.
    let again = shop
        .call(
            Method::POST,
            &format!("/v1/storefront/orders/{basket}/cancel"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
}

#[tokio::test]
async fn orders_are_invisible_to_other_customers_and_other_tenants() {
    let shop = Shop::open(Provider::Stripe, 600, 1).await;
    let other = Shop::open(Provider::Stripe, 600, 0).await;
    let alice = customer_token(&shop.tenant, "alice");
    let basket = shop.ready_basket(&alice, &shop.numbers[0]).await;
    let order = shop.checkout(&alice, &basket, None).await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
    let path = format!("/v1/storefront/orders/{basket}");
    // Another customer of the same shop.
    let mallory = customer_token(&shop.tenant, "mallory");
    let r = shop.call(Method::GET, &path, Some(&mallory), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = shop
        .call(
            Method::POST,
            &format!("{path}/cancel"),
            Some(&mallory),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    // "alice" of another tenant, on the other tenant's host and on this one.
    let other_alice = customer_token(&other.tenant, "alice");
    let r = shop
        .send(
            Method::GET,
            &path,
            &other.host,
            Some(&other_alice),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = shop
        .send(
            Method::GET,
            &path,
            &shop.host,
            Some(&other_alice),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.body["code"], "tenant_mismatch");
    // The other brand's staff.
    let r = shop
        .send(
            Method::GET,
            &format!("/v1/admin/orders/{basket}"),
            &other.host,
            Some(&other.brand_admin()),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    // The order is still there and untouched for its owner.
    let mine = shop.call(Method::GET, &path, Some(&alice), None).await;
    assert_eq!(mine.body["state"], "pending");
}

/// `Stripe-Signature` for `body` signed with `secret` at `t`.
fn stripe_signature(secret: &str, t: i64, body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn forged_stale_and_cross_tenant_webhooks_change_nothing() {
    let shop = Shop::open(Provider::Stripe, 600, 1).await;
    let other = Shop::open(Provider::Stripe, 600, 0).await;
    let alice = customer_token(&shop.tenant, "alice");
    let basket = shop.ready_basket(&alice, &shop.numbers[0]).await;
    let order = shop.checkout(&alice, &basket, None).await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
    let intent = order.body["payment"][0]["id"].as_str().unwrap().to_owned();
    let version = order.body["version"].as_i64().unwrap();
    let event = json!({
        "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
        "object": "event",
        "type": "payment_intent.amount_capturable_updated",
        "data": {"object": {"id": intent, "object": "payment_intent", "status": "requires_capture",
                             "metadata": {"order_id": basket, "tenant_id": shop.tenant, "attempt": "1"}}}
    })
    .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let other_secret = std::fs::read_to_string(
        platform()
            .secrets_dir
            .join(format!("stripe/{}/webhook", other.tenant)),
    )
    .unwrap();
    let own_secret = std::fs::read_to_string(
        platform()
            .secrets_dir
            .join(format!("stripe/{}/webhook", shop.tenant)),
    )
    .unwrap();
    let cases = [
        ("no signature", None),
        ("garbage", Some("t=1,v1=00".to_owned())),
        (
            "another tenant's secret",
            Some(stripe_signature(&other_secret, now, &event)),
        ),
        (
            "stale",
            Some(stripe_signature(&own_secret, now - 301, &event)),
        ),
        (
            "from the future",
            Some(stripe_signature(&own_secret, now + 301, &event)),
        ),
        (
            "tampered body",
            Some(stripe_signature(
                &own_secret,
                now,
                &event.replace("requires_capture", "succeeded"),
            )),
        ),
    ];
    for (case, signature) in cases {
        let mut request = shop
            .http
            .post(
                shop.app
                    .url(&format!("/v1/webhooks/stripe/{}", shop.tenant)),
            )
            .header("content-type", "application/json")
            .body(event.clone());
        if let Some(signature) = signature {
            request = request.header("stripe-signature", signature);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{case}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "invalid_signature", "{case}");
    }
    // Tenant B's correctly signed event naming tenant A's order, sent to B's endpoint.
    let r = shop
        .http
        .post(
            shop.app
                .url(&format!("/v1/webhooks/stripe/{}", other.tenant)),
        )
        .header("content-type", "application/json")
        .header(
            "stripe-signature",
            stripe_signature(&other_secret, now, &event),
        )
        .body(event.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "a foreign payment on B's endpoint"
    );
    // A correctly signed event is taken; the connector reads the intent again and learns it
    // is unpaid, so even a genuine but lying event cannot move the order.
    let r = shop
        .http
        .post(
            shop.app
                .url(&format!("/v1/webhooks/stripe/{}", shop.tenant)),
        )
        .header("content-type", "application/json")
        .header(
            "stripe-signature",
            stripe_signature(&own_secret, now, &event),
        )
        .body(event.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = shop
        .call(
            Method::GET,
            &format!("/v1/storefront/orders/{basket}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(after.body["state"], "pending", "{}", after.body);
    assert_eq!(
        after.body["version"].as_i64().unwrap(),
        version,
        "nothing changed"
    );
}

#[tokio::test]
async fn webhooks_delivered_three_times_and_out_of_order_make_one_transition() {
    for provider in [Provider::Stripe, Provider::Adyen] {
        let shop = Shop::open(provider, 600, 1).await;
        let alice = customer_token(&shop.tenant, "alice");
        let basket = shop.ready_basket(&alice, &shop.numbers[0]).await;
        let order = shop.checkout(&alice, &basket, None).await;
        assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
        let sim = match provider {
            Provider::Stripe => &platform().stripe_url,
            Provider::Adyen => &platform().adyen_url,
        };
        let faults = |duplicate: u32, reorder: bool| {
            shop.http
                .post(format!("{sim}/_sim/faults"))
                .json(&json!({"fail_next_requests": 0, "latency_ms": 0,
                              "duplicate_webhooks": duplicate, "reorder_webhooks": reorder}))
                .send()
        };
        // The simulator's faults are global: other tests' webhooks are duplicated too, which
        // they must survive as well.
        assert!(faults(2, true).await.unwrap().status().is_success());
        shop.pay(&order.body, "visa").await;
        let completed = shop
            .order_in(&alice, &basket, "completed", Duration::from_secs(20))
            .await;
        assert!(faults(0, false).await.unwrap().status().is_success());
        // Every state was reached once: the version counts the changes. Acknowledged (1),
        // pending (2), inProgress (3), numbers confirmed + capture asked (4), completed (5).
        assert_eq!(completed["version"], 5, "{provider:?}: {completed}");
        let ledger = shop.ledger(&basket).await;
        assert_eq!(ledger.len(), 1, "{ledger:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let later = shop
            .call(
                Method::GET,
                &format!("/v1/storefront/orders/{basket}"),
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(later.body["version"], 5, "late duplicates changed nothing");
    }
}
