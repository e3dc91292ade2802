//! Baskets and number reservations through HTTP on the real stack: the storefront API, the
//! basket and MSISDN processors, replies over Redis and the views in PostgreSQL.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tcom_ingress::auth::BRAND_ADMIN;
use tcom_tests::{
    TestApp, admin_token, customer_token, eventually, operator_token, platform,
    spawn_platform_ingress, unique,
};

/// A tenant with a plan (pSIM and eSIM, no binding or 6 months), a bound plan (6 months
/// required, eSIM only), a data-sharing add-on (0..=2) and a number pool.
struct Shop {
    app: TestApp,
    tenant: String,
    host: String,
    numbers: Vec<String>,
}

struct Response {
    status: StatusCode,
    body: Value,
    basket_token: Option<String>,
    retry_after: Option<String>,
}

/// Who calls: a customer token and/or a guest basket token, and the `Idempotency-Key` sent.
#[derive(Clone, Default)]
struct Caller {
    customer: Option<String>,
    guest: Option<String>,
    idempotency_key: Option<String>,
}

impl Caller {
    fn with_key(&self, key: &str) -> Self {
        Self {
            idempotency_key: Some(key.to_owned()),
            ..self.clone()
        }
    }
    fn guest(token: &str) -> Self {
        Self {
            guest: Some(token.to_owned()),
            ..Self::default()
        }
    }
    fn customer(token: String) -> Self {
        Self {
            customer: Some(token),
            ..Self::default()
        }
    }
}

fn settings(domain: &str, storefront: Option<Value>) -> Value {
    let mut settings = json!({
        "name": "Basket test brand",
        "domains": [domain],
        "default_locale": "da-DK",
        "locales": ["da-DK"],
        "currency": "DKK",
        "country": "DK",
        "segments": [{"name": "consumer", "max_binding_months": 6}],
        "channels": ["web"],
    });
    if let Some(policy) = storefront {
        settings["storefront"] = policy;
    }
    settings
}

fn offering(
    name: &str,
    kind: &str,
    monthly: i64,
    binding: &[i32],
    sims: &[&str],
    add_ons: Value,
) -> Value {
    json!({
        "name": name,
        "specification_id": "mobile",
        "kind": kind,
        "prices": [
            {"name": "activation", "price_type": "ONE_TIME", "amount_minor": 9900, "currency": "DKK"},
            {"name": "monthly", "price_type": "RECURRING", "amount_minor": monthly, "currency": "DKK", "recurring_period_months": 1}
        ],
        "binding_months": binding,
        "sim_types": sims,
        "add_ons": add_ons,
        "placements": [{"channel": "web", "sort_order": 1}]
    })
}

impl Shop {
    /// Onboards a tenant with a catalog and `pool_size` numbers, and waits until the basket
    /// processor sells its plan.
    async fn open(pool_size: usize, storefront: Option<Value>) -> Self {
        platform();
        let app = spawn_platform_ingress().await;
        let tenant = unique("b").chars().take(18).collect::<String>();
        let host = format!("{tenant}.shop.test");
        let admin = admin_token(Some(&tenant), &[BRAND_ADMIN]);
        let shop = Self {
            app,
            tenant: tenant.clone(),
            host: host.clone(),
            numbers: Vec::new(),
        };
        let onboarded = shop
            .admin(
                Method::POST,
                "/v1/platform/tenants",
                &operator_token(),
                json!({"tenant_id": tenant, "settings": settings(&host, storefront)}),
            )
            .await;
        assert_eq!(onboarded.0, StatusCode::CREATED, "{}", onboarded.1);
        let served = eventually(Duration::from_secs(5), || async {
            let r = shop
                .app
                .http
                .get(shop.app.url("/v1/storefront/tenant"))
                .header("host", &host)
                .send()
                .await
                .ok()?;
            (r.status() == StatusCode::OK).then_some(())
        })
        .await;
        assert!(served.is_some(), "{host} not served");
        let catalog = [
            (
                "share",
                offering(
                    "Data-sharing card",
                    "ADD_ON",
                    4900,
                    &[],
                    &["PSIM", "ESIM"],
                    json!([]),
                ),
            ),
            (
                "plan",
                offering(
                    "Fri 5G",
                    "PLAN",
                    29900,
                    &[0, 6],
                    &["PSIM", "ESIM"],
                    json!([{"offering_id": "share", "min": 0, "max": 2}]),
                ),
            ),
            (
                "bound",
                offering("Bundet", "PLAN", 19900, &[6], &["ESIM"], json!([])),
            ),
        ];
        for (id, definition) in catalog {
            let put = shop
                .admin(
                    Method::PUT,
                    &format!("/v1/admin/offerings/{id}"),
                    &admin,
                    definition,
                )
                .await;
            assert_eq!(put.0, StatusCode::OK, "{}", put.1);
            let activated = shop
                .admin(
                    Method::POST,
                    &format!("/v1/admin/offerings/{id}/activate"),
                    &admin,
                    json!({}),
                )
                .await;
            assert_eq!(activated.0, StatusCode::OK, "{}", activated.1);
        }
        let mut shop = shop;
        if pool_size > 0 {
            // Unique across runs: 8 random digits after +4520.
            let base = 10_000_000 + (uuid::Uuid::new_v4().as_u128() % 80_000_000) as u64;
            let numbers: Vec<String> = (0..pool_size as u64)
                .map(|i| format!("+45{}", base + i))
                .collect();
            let imported = shop
                .admin(
                    Method::POST,
                    "/v1/admin/number-pool",
                    &admin,
                    json!({"numbers": numbers}),
                )
                .await;
            assert_eq!(imported.0, StatusCode::OK, "{}", imported.1);
            assert_eq!(
                imported.1["imported"].as_array().unwrap().len(),
                pool_size,
                "{}",
                imported.1
            );
            shop.numbers = numbers;
        }
        // The basket processor follows the tenants and the catalog as global tables: wait
        // until it knows this shop's plan (a port-in line needs no pool number).
        let sells = eventually(Duration::from_secs(10), || async {
            let (basket, token) = shop.new_guest_basket_unchecked().await?;
            let added = shop
                .call(
                    Method::POST,
                    &format!("/v1/storefront/baskets/{basket}/lines"),
                    &Caller::guest(&token),
                    Some(port_in_line("probe")),
                )
                .await;
            (added.status == StatusCode::OK).then_some(())
        })
        .await;
        assert!(
            sells.is_some(),
            "the basket processor never sold the new shop's plan"
        );
        shop
    }

    async fn admin(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let r = self
            .app
            .http
            .request(method, self.app.url(path))
            .header("host", &self.host)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn call_on(
        &self,
        host: &str,
        method: Method,
        path: &str,
        caller: &Caller,
        body: Option<Value>,
    ) -> Response {
        call_via(&self.app, host, method, path, caller, body).await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        caller: &Caller,
        body: Option<Value>,
    ) -> Response {
        self.call_on(&self.host, method, path, caller, body).await
    }

    async fn new_guest_basket_unchecked(&self) -> Option<(String, String)> {
        let r = self
            .call(
                Method::POST,
                "/v1/storefront/baskets",
                &Caller::default(),
                Some(json!({"channel": "web"})),
            )
            .await;
        (r.status == StatusCode::CREATED).then(|| {
            (
                r.body["basket_id"].as_str().unwrap().to_owned(),
                r.basket_token.unwrap(),
            )
        })
    }

    /// A guest basket and its token.
    async fn guest_basket(&self) -> (String, String) {
        self.new_guest_basket_unchecked()
            .await
            .expect("a guest basket is created")
    }

    /// A customer's basket.
    async fn customer_basket(&self, caller: &Caller) -> String {
        let r = self
            .call(
                Method::POST,
                "/v1/storefront/baskets",
                caller,
                Some(json!({"channel": "web"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert!(
            r.basket_token.is_none(),
            "customer baskets need no guest token"
        );
        r.body["basket_id"].as_str().unwrap().to_owned()
    }

    async fn add_number_line(
        &self,
        basket: &str,
        caller: &Caller,
        line: &str,
        msisdn: &str,
    ) -> Response {
        self.call(
            Method::POST,
            &format!("/v1/storefront/baskets/{basket}/lines"),
            caller,
            Some(json!({"line_id": line, "offering_id": "plan", "sim_type": "ESIM", "number": {"type": "new_number", "msisdn": msisdn}})),
        )
        .await
    }

    /// The pool as the brand partner sees it: number → (status, basket).
    async fn pool(&self) -> HashMap<String, (String, Option<String>)> {
        let (status, body) = self
            .admin(
                Method::GET,
                "/v1/admin/number-pool",
                &admin_token(Some(&self.tenant), &[BRAND_ADMIN]),
                Value::Null,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n["msisdn"].as_str().unwrap().to_owned(),
                    (
                        n["status"].as_str().unwrap().to_owned(),
                        n["basket_id"].as_str().map(str::to_owned),
                    ),
                )
            })
            .collect()
    }

    /// Waits until the pool view shows `msisdn` in `status`.
    async fn pool_shows(&self, msisdn: &str, status: &str, within: Duration) -> bool {
        eventually(within, || async {
            (self.pool().await.get(msisdn).map(|(s, _)| s.as_str()) == Some(status)).then_some(())
        })
        .await
        .is_some()
    }
}

/// A storefront call through `app` (any ingress instance) on `host`.
async fn call_via(
    app: &TestApp,
    host: &str,
    method: Method,
    path: &str,
    caller: &Caller,
    body: Option<Value>,
) -> Response {
    let mut request = app.http.request(method, app.url(path)).header("host", host);
    if let Some(token) = &caller.customer {
        request = request.bearer_auth(token);
    }
    if let Some(token) = &caller.guest {
        request = request.header("basket-token", token);
    }
    if let Some(key) = &caller.idempotency_key {
        request = request.header("idempotency-key", key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.unwrap();
    let status = r.status();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (basket_token, retry_after) = (header("basket-token"), header("retry-after"));
    Response {
        status,
        body: r.json().await.unwrap_or(Value::Null),
        basket_token,
        retry_after,
    }
}

fn port_in_line(line: &str) -> Value {
    json!({"line_id": line, "offering_id": "plan", "sim_type": "PSIM",
           "number": {"type": "port_in", "msisdn": "+4530123456", "current_operator": "Telia"}})
}

fn line_ids(basket: &Value) -> Vec<String> {
    basket["lines"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .filter_map(|l| l["line_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn msisdns(basket: &Value) -> Vec<String> {
    basket["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["number"]["msisdn"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn baskets_racing_for_the_same_numbers_get_each_number_once() {
    let shop = Shop::open(4, None).await;
    let mut baskets = Vec::new();
    for _ in 0..12 {
        baskets.push(shop.guest_basket().await);
    }
    // Every basket tries every number at the same time, in its own order.
    let attempts = baskets.iter().enumerate().flat_map(|(b, (basket, token))| {
        let shop = &shop;
        (0..shop.numbers.len()).map(move |i| {
            let msisdn = shop.numbers[(i + b) % shop.numbers.len()].clone();
            async move {
                let r = shop
                    .add_number_line(basket, &Caller::guest(token), &format!("l{i}"), &msisdn)
                    .await;
                (basket.clone(), msisdn, r)
            }
        })
    });
    let results = join_all(attempts).await;
    let mut winners: HashMap<String, Vec<String>> = HashMap::new();
    for (basket, msisdn, r) in &results {
        match r.status {
            StatusCode::OK => winners
                .entry(msisdn.clone())
                .or_default()
                .push(basket.clone()),
            StatusCode::CONFLICT => assert_eq!(r.body["code"], "number_reserved", "{}", r.body),
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    for msisdn in &shop.numbers {
        let holders = winners.get(msisdn).cloned().unwrap_or_default();
        assert_eq!(holders.len(), 1, "{msisdn} went to {holders:?}");
        // No reservation lost: the pool names the winner, and the winner's basket has it.
        assert!(
            shop.pool_shows(msisdn, "RESERVED", Duration::from_secs(5))
                .await
        );
        let pool = shop.pool().await;
        assert_eq!(pool[msisdn].1.as_deref(), Some(holders[0].as_str()));
        let token = &baskets.iter().find(|(b, _)| *b == holders[0]).unwrap().1;
        let basket = shop
            .call(
                Method::GET,
                &format!("/v1/storefront/baskets/{}", holders[0]),
                &Caller::guest(token),
                None,
            )
            .await;
        assert!(msisdns(&basket.body).contains(msisdn), "{}", basket.body);
    }
}

/// Milliseconds since the Unix epoch, as the processors count.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The codes of a basket's readiness problems.
async fn readiness_codes(shop: &Shop, basket: &str, caller: &Caller) -> Vec<String> {
    let r = shop
        .call(
            Method::GET,
            &format!("/v1/storefront/baskets/{basket}/readiness"),
            caller,
            None,
        )
        .await;
    r.body["problems"]
        .as_array()
        .map(|p| {
            p.iter()
                .filter_map(|p| p["code"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_lapsed_reservation_frees_the_number_and_the_basket_knows_it() {
    // Baskets live 10 minutes, reservations 2 s: only the reservation's expiry frees the number.
    let shop = Shop::open(1, Some(json!({"basket_ttl_seconds": 600, "reservation_ttl_seconds": 2, "requests_per_second": 1000}))).await;
    let number = shop.numbers[0].clone();
    let (first, first_token) = shop.guest_basket().await;
    let held = shop
        .add_number_line(&first, &Caller::guest(&first_token), "l1", &number)
        .await;
    assert_eq!(held.status, StatusCode::OK, "{}", held.body);
    let (second, second_token) = shop.guest_basket().await;
    let refused = shop
        .add_number_line(&second, &Caller::guest(&second_token), "l1", &number)
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);

    assert!(
        shop.pool_shows(&number, "AVAILABLE", Duration::from_secs(6))
            .await,
        "the reservation never expired"
    );
    let lost = eventually(Duration::from_secs(3), || async {
        readiness_codes(&shop, &first, &Caller::guest(&first_token))
            .await
            .contains(&"number_reservation_lost".to_owned())
            .then_some(())
    })
    .await;
    assert!(
        lost.is_some(),
        "the first basket never learnt it lost its number"
    );
    let taken = shop
        .add_number_line(&second, &Caller::guest(&second_token), "l1", &number)
        .await;
    assert_eq!(taken.status, StatusCode::OK, "{}", taken.body);
}

// Shown to fail: with `self.release_all(..)` removed from the `AbandonBasket` arm of
// `BasketProcessor::on_command`, the basket still ends ABANDONED but the number stays RESERVED
// (for its 10-minute reservation) and this test fails at "abandonment kept the number".
#[tokio::test]
async fn abandoning_a_basket_releases_its_numbers_at_once() {
    // Reservations and baskets both live 10 minutes: within the seconds this test allows, only
    // the abandonment can free the number.
    let shop = Shop::open(1, Some(json!({"basket_ttl_seconds": 600, "reservation_ttl_seconds": 600, "requests_per_second": 1000}))).await;
    let number = shop.numbers[0].clone();
    let (first, first_token) = shop.guest_basket().await;
    let held = shop
        .add_number_line(&first, &Caller::guest(&first_token), "l1", &number)
        .await;
    assert_eq!(held.status, StatusCode::OK, "{}", held.body);
    let held_at = std::time::Instant::now();
    let until = held.body["lines"][0]["number"]["reservation"]["until"]
        .as_i64()
        .unwrap();
    assert!(until > now_ms() + 500_000, "{}", held.body);
    let (second, second_token) = shop.guest_basket().await;
    let refused = shop
        .add_number_line(&second, &Caller::guest(&second_token), "l1", &number)
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);

    let abandoned = shop
        .call(
            Method::DELETE,
            &format!("/v1/storefront/baskets/{first}"),
            &Caller::guest(&first_token),
            None,
        )
        .await;
    assert_eq!(abandoned.status, StatusCode::OK, "{}", abandoned.body);
    assert_eq!(abandoned.body["status"], "ABANDONED");
    assert!(
        shop.pool_shows(&number, "AVAILABLE", Duration::from_secs(3))
            .await,
        "abandonment kept the number"
    );
    let again = shop
        .add_number_line(&second, &Caller::guest(&second_token), "l1", &number)
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert!(
        held_at.elapsed() < Duration::from_secs(60),
        "far within the reservation's 10 minutes"
    );
}

// Shown to fail: with `self.release_all(..)` removed from `BasketProcessor::punctuate`, the
// basket still turns EXPIRED but its number stays RESERVED (its reservation runs 300 s) and
// this test fails at "the expired basket kept its number".
#[tokio::test]
async fn an_idle_basket_expires_and_releases_numbers_its_reservations_would_still_hold() {
    // The tenant rules keep `reservation_ttl_seconds <= basket_ttl_seconds`, so a reservation
    // outlives its basket only when the brand shortens its basket TTL: the number below is held
    // for 300 s under the first policy, while the basket, touched under the new 2 s policy,
    // expires 2 s later. Only the basket's expiry can free the number in time.
    let shop = Shop::open(1, Some(json!({"basket_ttl_seconds": 300, "reservation_ttl_seconds": 300, "requests_per_second": 1000}))).await;
    let number = shop.numbers[0].clone();
    let (idle, idle_token) = shop.guest_basket().await;
    let guest = Caller::guest(&idle_token);
    let held = shop.add_number_line(&idle, &guest, "l1", &number).await;
    assert_eq!(held.status, StatusCode::OK, "{}", held.body);
    let until = held.body["lines"][0]["number"]["reservation"]["until"]
        .as_i64()
        .unwrap();
    assert!(until > now_ms() + 250_000, "{}", held.body);

    let short =
        json!({"basket_ttl_seconds": 2, "reservation_ttl_seconds": 2, "requests_per_second": 1000});
    let (status, body) = shop
        .admin(
            Method::PUT,
            &format!("/v1/platform/tenants/{}/settings", shop.tenant),
            &operator_token(),
            settings(&shop.host, Some(short)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The basket processor follows the tenants as a global table: touch the basket until a
    // change is decided under the new policy (the basket then expires 2 s after it).
    let touched = eventually(Duration::from_secs(10), || async {
        let r = shop
            .call(
                Method::PATCH,
                &format!("/v1/storefront/baskets/{idle}/lines/l1"),
                &guest,
                Some(json!({"add_ons": []})),
            )
            .await;
        let expires_at = r.body["expires_at"].as_i64()?;
        (r.status == StatusCode::OK && expires_at < now_ms() + 10_000).then_some(r)
    })
    .await
    .expect("the basket processor never applied the 2 s basket TTL");
    // The touch did not extend the hold: it ends long after the basket.
    assert_eq!(
        touched.body["lines"][0]["number"]["reservation"]["until"], until,
        "{}",
        touched.body
    );

    let expired = eventually(Duration::from_secs(8), || async {
        let r = shop
            .call(
                Method::GET,
                &format!("/v1/storefront/baskets/{idle}"),
                &guest,
                None,
            )
            .await;
        (r.body["status"] == "EXPIRED").then_some(())
    })
    .await;
    assert!(expired.is_some(), "the idle basket never expired");
    assert!(
        shop.pool_shows(&number, "AVAILABLE", Duration::from_secs(4))
            .await,
        "the expired basket kept its number"
    );
    assert!(
        now_ms() < until - 200_000,
        "freed long before the reservation's end"
    );
    let (other, other_token) = shop.guest_basket().await;
    let taken = shop
        .add_number_line(&other, &Caller::guest(&other_token), "l1", &number)
        .await;
    assert_eq!(taken.status, StatusCode::OK, "{}", taken.body);
}

#[tokio::test]
async fn removing_a_line_releases_its_number_and_prices_follow_every_change() {
    let shop = Shop::open(1, None).await;
    let number = shop.numbers[0].clone();
    let (basket, token) = shop.guest_basket().await;
    let guest = Caller::guest(&token);
    let added = shop.add_number_line(&basket, &guest, "main", &number).await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    assert_eq!(added.body["totals"]["monthly_minor"], 29900);
    assert_eq!(
        added.body["lines"][0]["number"]["reservation"]["state"],
        "held"
    );
    let version = added.body["version"].as_i64().unwrap();

    let updated = shop
        .call(
            Method::PATCH,
            &format!("/v1/storefront/baskets/{basket}/lines/main"),
            &guest,
            Some(json!({"add_ons": [{"offering_id": "share", "quantity": 2}]})),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["totals"]["monthly_minor"], 29900 + 2 * 4900);
    assert_eq!(updated.body["version"].as_i64().unwrap(), version + 1);
    // Read-your-writes: the view answers with at least the version just written.
    let read = shop
        .call(
            Method::GET,
            &format!(
                "/v1/storefront/baskets/{basket}?min_version={}",
                version + 1
            ),
            &guest,
            None,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["totals"]["monthly_minor"], 29900 + 2 * 4900);

    let removed = shop
        .call(
            Method::DELETE,
            &format!("/v1/storefront/baskets/{basket}/lines/main"),
            &guest,
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.body);
    assert_eq!(removed.body["totals"]["monthly_minor"], 0);
    assert!(
        shop.pool_shows(&number, "AVAILABLE", Duration::from_secs(2))
            .await,
        "removal kept the number"
    );
}

#[tokio::test]
async fn bad_input_is_refused_with_a_problem_and_nothing_is_written() {
    let shop = Shop::open(1, None).await;
    let number = shop.numbers[0].clone();
    let (basket, token) = shop.guest_basket().await;
    let guest = Caller::guest(&token);
    let lines = format!("/v1/storefront/baskets/{basket}/lines");
    let line = |offering: &str, sim: &str, msisdn: &str| json!({"line_id": "l1", "offering_id": offering, "sim_type": sim, "number": {"type": "new_number", "msisdn": msisdn}});
    let cases = [
        (
            line("plan", "ESIM", "+45 20 12"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_msisdn",
        ),
        (
            line("nope", "ESIM", &number),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_offering",
        ),
        (
            line("bound", "PSIM", &number),
            StatusCode::UNPROCESSABLE_ENTITY,
            "sim_type_not_offered",
        ),
        (
            line("bound", "ESIM", &number),
            StatusCode::UNPROCESSABLE_ENTITY,
            "binding_not_accepted",
        ),
        (
            json!({"line_id": "l1", "offering_id": "plan", "sim_type": "ESIM", "number": {"type": "new_number", "msisdn": number}, "add_ons": [{"offering_id": "share", "quantity": 3}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_add_ons",
        ),
        (
            json!({"line_id": "l1", "offering_id": "plan", "sim_type": "QSIM", "number": {"type": "new_number", "msisdn": number}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"line_id": "l1", "offering_id": "plan", "sim_type": "ESIM", "colour": "red", "number": {"type": "new_number", "msisdn": number}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ];
    for (body, status, code) in cases {
        let r = shop
            .call(Method::POST, &lines, &guest, Some(body.clone()))
            .await;
        assert_eq!(r.status, status, "{body} → {}", r.body);
        assert_eq!(r.body["code"], code, "{}", r.body);
        assert_eq!(
            r.body["status"],
            status.as_u16(),
            "problem+json carries the status"
        );
    }
    // Every problem at once.
    let several = shop
        .call(Method::POST, &lines, &guest, Some(json!({"line_id": "l1", "offering_id": "bound", "sim_type": "PSIM", "number": {"type": "new_number", "msisdn": "12"}})))
        .await;
    let codes: HashSet<&str> = several.body["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        HashSet::from([
            "invalid_msisdn",
            "sim_type_not_offered",
            "binding_not_accepted"
        ])
    );

    let raw = |body: Vec<u8>| {
        shop.app
            .http
            .post(shop.app.url(&lines))
            .header("host", &shop.host)
            .header("basket-token", &token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let malformed = raw(b"{\"line_id\": ".to_vec()).await.unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        malformed.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(
        malformed.json::<Value>().await.unwrap()["code"],
        "malformed_json"
    );
    let oversized = raw(vec![b' '; 200 * 1024]).await.unwrap();
    assert_eq!(oversized.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        oversized.json::<Value>().await.unwrap()["code"],
        "body_too_large"
    );

    // Nothing was written. A later accepted change is version 2 (the refused ones took no
    // version), and once the view shows that version it holds that line only; the number was
    // still free for it.
    // Shown to fail: making the basket processor commit the basket (a version) before
    // answering a refusal (`Outcome::violated`) makes this change version 3.
    let ok = shop.add_number_line(&basket, &guest, "l1", &number).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["version"], 2, "{}", ok.body);
    let read = shop
        .call(
            Method::GET,
            &format!("/v1/storefront/baskets/{basket}?min_version=2"),
            &guest,
            None,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["version"], 2, "{}", read.body);
    assert_eq!(msisdns(&read.body), vec![number.clone()], "{}", read.body);
    let line = &read.body["lines"][0];
    assert_eq!(
        (&line["line_id"], &line["offering_id"], &line["sim_type"]),
        (&json!("l1"), &json!("plan"), &json!("ESIM")),
        "{}",
        read.body
    );
    assert_eq!(line["add_ons"], json!([]), "{}", read.body);
}

#[tokio::test]
async fn a_basket_is_reachable_only_by_its_own_shopper_on_its_own_shop() {
    let a = Shop::open(0, None).await;
    let b = Shop::open(0, None).await;
    let (guest_basket, guest_token) = a.guest_basket().await;
    let path = format!("/v1/storefront/baskets/{guest_basket}");
    // Read-your-writes: the view may not show the new basket at once.
    let own = a
        .call(
            Method::GET,
            &format!("{path}?min_version=1"),
            &Caller::guest(&guest_token),
            None,
        )
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);

    // Tenant B's host with A's guest token: not found, for reads and changes.
    let across = a
        .call_on(
            &b.host,
            Method::GET,
            &path,
            &Caller::guest(&guest_token),
            None,
        )
        .await;
    assert_eq!(across.status, StatusCode::NOT_FOUND, "{}", across.body);
    let change = a
        .call_on(
            &b.host,
            Method::POST,
            &format!("{path}/lines"),
            &Caller::guest(&guest_token),
            Some(port_in_line("x")),
        )
        .await;
    assert_eq!(change.status, StatusCode::NOT_FOUND, "{}", change.body);
    // No token, or another basket's token: not found.
    let (_, other_token) = a.guest_basket().await;
    for caller in [
        Caller::default(),
        Caller::guest(&other_token),
        Caller::guest("00"),
    ] {
        let r = a.call(Method::GET, &path, &caller, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let w = a.call(Method::DELETE, &path, &caller, None).await;
        assert_eq!(w.status, StatusCode::NOT_FOUND, "{}", w.body);
    }
    // None of those refused writes landed: the guest's own next change is version 2, and the
    // view at that version shows an active basket with that line only.
    // Shown to fail: letting the basket processor apply a stranger's command and still answer
    // `not_found` (the `owned` filter in `BasketProcessor::on_command` bypassed) leaves the
    // basket ABANDONED, and this change is refused.
    let mine = a
        .call(
            Method::POST,
            &format!("{path}/lines"),
            &Caller::guest(&guest_token),
            Some(port_in_line("mine")),
        )
        .await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.body);
    assert_eq!(mine.body["version"], 2, "{}", mine.body);
    let seen = a
        .call(
            Method::GET,
            &format!("{path}?min_version=2"),
            &Caller::guest(&guest_token),
            None,
        )
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    assert_eq!(seen.body["status"], "ACTIVE", "{}", seen.body);
    assert_eq!(line_ids(&seen.body), ["mine"], "{}", seen.body);
    // A customer token of tenant A on tenant B's host is refused outright.
    let alice = Caller::customer(customer_token(&a.tenant, "alice").await);
    let mismatch = a.call_on(&b.host, Method::GET, &path, &alice, None).await;
    assert_eq!(mismatch.status, StatusCode::FORBIDDEN);
    assert_eq!(mismatch.body["code"], "tenant_mismatch");
    // Another customer of tenant A cannot read or change Alice's basket.
    let alices = a.customer_basket(&alice).await;
    let bob = Caller::customer(customer_token(&a.tenant, "bob").await);
    let alices_path = format!("/v1/storefront/baskets/{alices}");
    assert_eq!(
        a.call(Method::GET, &alices_path, &bob, None).await.status,
        StatusCode::NOT_FOUND
    );
    let bobs_change = a
        .call(
            Method::POST,
            &format!("{alices_path}/lines"),
            &bob,
            Some(port_in_line("x")),
        )
        .await;
    assert_eq!(
        bobs_change.status,
        StatusCode::NOT_FOUND,
        "{}",
        bobs_change.body
    );
    // ... and a customer token with a guessed guest basket id gets nothing either.
    assert_eq!(
        a.call(Method::GET, &path, &bob, None).await.status,
        StatusCode::NOT_FOUND
    );
    // Bob's line never landed: Alice's own next change is version 2, and the view at that
    // version holds her line only (same mutation as above shows it can fail).
    let alices_line = a
        .call(
            Method::POST,
            &format!("{alices_path}/lines"),
            &alice,
            Some(port_in_line("alices")),
        )
        .await;
    assert_eq!(alices_line.status, StatusCode::OK, "{}", alices_line.body);
    assert_eq!(alices_line.body["version"], 2, "{}", alices_line.body);
    let alices_own = a
        .call(
            Method::GET,
            &format!("{alices_path}?min_version=2"),
            &alice,
            None,
        )
        .await;
    assert_eq!(alices_own.status, StatusCode::OK, "{}", alices_own.body);
    assert_eq!(
        line_ids(&alices_own.body),
        ["alices"],
        "Bob's line never landed: {}",
        alices_own.body
    );
    // A forged customer token is not a customer.
    let forged = a
        .call(
            Method::GET,
            &alices_path,
            &Caller::customer("e30.e30.sig".into()),
            None,
        )
        .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_guest_basket_merges_into_the_customers_basket_on_login_once() {
    let shop = Shop::open(1, None).await;
    let number = shop.numbers[0].clone();
    let carol = Caller::customer(customer_token(&shop.tenant, "carol").await);
    let carols = shop.customer_basket(&carol).await;
    let first = shop
        .call(
            Method::POST,
            &format!("/v1/storefront/baskets/{carols}/lines"),
            &carol,
            Some(port_in_line("home")),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let carols_version = first.body["version"].as_i64().unwrap();

    let (guest, guest_token) = shop.guest_basket().await;
    let held = shop
        .add_number_line(&guest, &Caller::guest(&guest_token), "new", &number)
        .await;
    assert_eq!(held.status, StatusCode::OK, "{}", held.body);
    // The customer's basket must be visible to the login's lookup.
    let seen = shop
        .call(
            Method::GET,
            &format!("/v1/storefront/baskets/{carols}?min_version={carols_version}"),
            &carol,
            None,
        )
        .await;
    assert_eq!(seen.status, StatusCode::OK);

    let signing_in = Caller {
        customer: carol.customer.clone(),
        guest: Some(guest_token.clone()),
        ..Caller::default()
    };
    let merged = shop
        .call(
            Method::POST,
            &format!("/v1/storefront/baskets/{guest}/login"),
            &signing_in,
            Some(json!({"strategy": "merge_into_customer_basket"})),
        )
        .await;
    assert_eq!(merged.status, StatusCode::OK, "{}", merged.body);
    assert_eq!(merged.body["basket_id"], carols.as_str());
    let mut numbers = msisdns(&merged.body);
    numbers.sort();
    let mut expected = vec!["+4530123456".to_owned(), number.clone()];
    expected.sort();
    assert_eq!(numbers, expected);
    // The reservation moved with the line.
    let moved = eventually(Duration::from_secs(3), || async {
        (shop.pool().await[&number].1.as_deref() == Some(carols.as_str())).then_some(())
    })
    .await;
    assert!(moved.is_some(), "the number stayed with the guest basket");
    let old = shop
        .call(
            Method::GET,
            &format!("/v1/storefront/baskets/{guest}"),
            &carol,
            None,
        )
        .await;
    assert_eq!(old.body["status"], "MERGED", "{}", old.body);

    // A second login with the same guest token takes nothing over.
    let dave = Caller {
        customer: Some(customer_token(&shop.tenant, "dave").await),
        guest: Some(guest_token.clone()),
        ..Caller::default()
    };
    for strategy in ["merge_into_customer_basket", "use_guest_basket"] {
        let r = shop
            .call(
                Method::POST,
                &format!("/v1/storefront/baskets/{guest}/login"),
                &dave,
                Some(json!({"strategy": strategy})),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{strategy}: {}", r.body);
    }
    // The guest token alone no longer opens the basket either.
    let guest_only = shop
        .call(
            Method::GET,
            &format!("/v1/storefront/baskets/{guest}"),
            &Caller::guest(&guest_token),
            None,
        )
        .await;
    assert_eq!(guest_only.status, StatusCode::NOT_FOUND);

    // The other strategy: a fresh guest basket becomes Erin's, ready for checkout.
    let erin = customer_token(&shop.tenant, "erin").await;
    let (fresh, fresh_token) = shop.guest_basket().await;
    let line = shop
        .call(
            Method::POST,
            &format!("/v1/storefront/baskets/{fresh}/lines"),
            &Caller::guest(&fresh_token),
            Some(port_in_line("p")),
        )
        .await;
    assert_eq!(line.status, StatusCode::OK, "{}", line.body);
    let claimed = shop
        .call(
            Method::POST,
            &format!("/v1/storefront/baskets/{fresh}/login"),
            &Caller {
                customer: Some(erin.clone()),
                guest: Some(fresh_token),
                ..Caller::default()
            },
            Some(json!({"strategy": "use_guest_basket"})),
        )
        .await;
    assert_eq!(claimed.status, StatusCode::OK, "{}", claimed.body);
    assert_eq!(claimed.body["customer_id"], "erin");
    let ready = shop
        .call(
            Method::GET,
            &format!(
                "/v1/storefront/baskets/{fresh}/readiness?min_version={}",
                claimed.body["version"]
            ),
            &Caller::customer(erin),
            None,
        )
        .await;
    assert_eq!(ready.body["ready"], true, "{}", ready.body);
}

/// Sleeps until 30 ms into the next wall-clock second (the rate limit's window), and returns
/// that second.
async fn next_second() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let into = now.subsec_millis() as u64;
    tokio::time::sleep(Duration::from_millis(1000 - into + 30)).await;
    now.as_secs() + 1
}

fn this_second() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `count` number searches on `host` through `app`, all at once.
async fn searches(app: &TestApp, host: &str, count: usize) -> Vec<Response> {
    let anonymous = Caller::default();
    join_all((0..count).map(|_| {
        call_via(
            app,
            host,
            Method::GET,
            "/v1/storefront/numbers?random=1",
            &anonymous,
            None,
        )
    }))
    .await
}

fn admitted(results: &[Response]) -> usize {
    results
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count()
}

// Shown to fail: counting in one Redis key for all tenants (`tcom:rate:{second}` instead of
// `tcom:rate:{tenant}:{second}` in `RateLimits::spend`) throttles the quiet shop too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shop_over_its_rate_is_slowed_down_and_others_are_not() {
    let slow = Shop::open(0, Some(json!({"basket_ttl_seconds": 600, "reservation_ttl_seconds": 300, "requests_per_second": 5}))).await;
    let other = Shop::open(0, Some(json!({"basket_ttl_seconds": 600, "reservation_ttl_seconds": 300, "requests_per_second": 20}))).await;
    // Both shops are loaded in the same second: 30 requests to the one allowed 5, 15 to the one
    // allowed 20 (even split over two seconds it never passes 20).
    // The quiet shop's requests come right after the busy shop's, in the same second: a count
    // shared between shops would be far over 20 by then.
    let second = next_second().await;
    let slowed = searches(&slow.app, &slow.host, 30).await;
    let spared = searches(&other.app, &other.host, 15).await;
    assert_eq!(
        this_second(),
        second,
        "the round straddled a second; too slow a machine"
    );
    let limited: Vec<&Response> = slowed
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(limited.len() + admitted(&slowed), 30);
    assert!(
        limited.len() >= 20,
        "only {} of 30 were limited",
        limited.len()
    );
    for r in &limited {
        assert_eq!(r.body["code"], "rate_limited", "{}", r.body);
        assert_eq!(
            r.retry_after.as_deref(),
            Some("1"),
            "429 without Retry-After"
        );
    }
    let statuses: Vec<StatusCode> = spared.iter().map(|r| r.status).collect();
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "the other shop was throttled by the first one's load: {statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shops_rate_is_counted_across_ingress_instances() {
    let shop = Shop::open(0, Some(json!({"basket_ttl_seconds": 600, "reservation_ttl_seconds": 300, "requests_per_second": 10}))).await;
    let second_instance = spawn_platform_ingress().await;
    let known = eventually(Duration::from_secs(10), || async {
        let r = call_via(
            &second_instance,
            &shop.host,
            Method::GET,
            "/v1/storefront/tenant",
            &Caller::default(),
            None,
        )
        .await;
        (r.status == StatusCode::OK).then_some(())
    })
    .await;
    assert!(known.is_some(), "the second ingress never served the shop");
    // 15 requests to each instance within one second: together they admit the shop's 10,
    // where counting per instance would admit 20. A round that straddles a second is retried.
    for _ in 0..3 {
        let second = next_second().await;
        let (first, other) = futures::join!(
            searches(&shop.app, &shop.host, 15),
            searches(&second_instance, &shop.host, 15)
        );
        if this_second() != second {
            continue;
        }
        assert_eq!(
            admitted(&first) + admitted(&other),
            10,
            "first instance admitted {}, second {}",
            admitted(&first),
            admitted(&other)
        );
        return;
    }
    panic!("no round of 30 requests fitted in one second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_pass_unmetered_when_redis_is_down() {
    let shop = Shop::open(0, Some(json!({"basket_ttl_seconds": 600, "reservation_ttl_seconds": 300, "requests_per_second": 2}))).await;
    let port = tcom_tests::closed_port();
    let without_redis = tcom_tests::spawn_platform_ingress_with(|s| {
        s.redis.url = format!("redis://127.0.0.1:{port}");
    })
    .await;
    let known = eventually(Duration::from_secs(10), || async {
        let r = call_via(
            &without_redis,
            &shop.host,
            Method::GET,
            "/v1/storefront/tenant",
            &Caller::default(),
            None,
        )
        .await;
        (r.status == StatusCode::OK).then_some(())
    })
    .await;
    assert!(
        known.is_some(),
        "the ingress without Redis never served the shop"
    );
    // With Redis the shop's limit bites...
    next_second().await;
    let metered = searches(&shop.app, &shop.host, 8).await;
    assert!(
        admitted(&metered) <= 4,
        "{} of 8 admitted",
        admitted(&metered)
    );
    // ... without it every request passes.
    next_second().await;
    let unmetered = searches(&without_redis, &shop.host, 8).await;
    let statuses: Vec<StatusCode> = unmetered.iter().map(|r| r.status).collect();
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}: {}",
        unmetered[0].body
    );
}

#[tokio::test]
async fn numbers_are_searched_by_prefix_pattern_and_at_random_and_unique_across_tenants() {
    let a = Shop::open(3, None).await;
    let b = Shop::open(0, None).await;
    let first = &a.numbers[0];
    let found = eventually(Duration::from_secs(3), || async {
        let r = a
            .call(
                Method::GET,
                &format!(
                    "/v1/storefront/numbers?prefix={}",
                    &first[..8].replace('+', "%2B")
                ),
                &Caller::default(),
                None,
            )
            .await;
        r.body["numbers"]
            .as_array()
            .filter(|n| n.iter().any(|n| n == first.as_str()))
            .map(|_| ())
    })
    .await;
    assert!(found.is_some(), "prefix search misses {first}");
    let tail = &first[first.len() - 4..];
    let by_pattern = a
        .call(
            Method::GET,
            &format!("/v1/storefront/numbers?pattern=*{tail}"),
            &Caller::default(),
            None,
        )
        .await;
    assert!(
        by_pattern.body["numbers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == first.as_str()),
        "{}",
        by_pattern.body
    );
    let random = a
        .call(
            Method::GET,
            "/v1/storefront/numbers?random=2",
            &Caller::default(),
            None,
        )
        .await;
    assert_eq!(random.body["numbers"].as_array().unwrap().len(), 2);
    let bad = a
        .call(
            Method::GET,
            "/v1/storefront/numbers?pattern=12_%25",
            &Caller::default(),
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Tenant B sees none of A's numbers and cannot import them.
    let in_b = b
        .call(
            Method::GET,
            &format!("/v1/storefront/numbers?pattern=*{tail}"),
            &Caller::default(),
            None,
        )
        .await;
    assert_eq!(in_b.body["numbers"], json!([]));
    let (status, body) = b
        .admin(
            Method::POST,
            "/v1/admin/number-pool",
            &admin_token(Some(&b.tenant), &[BRAND_ADMIN]),
            json!({"numbers": [first, "+45 2x"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let codes: Vec<&str> = body["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["invalid_msisdn", "number_unavailable"], "{body}");
    // And B's basket cannot reserve A's number.
    let (basket, token) = b.guest_basket().await;
    let r = b
        .add_number_line(&basket, &Caller::guest(&token), "l1", first)
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["code"], "number_not_in_pool");
}

// --- idempotency keys belong to whoever sent them -----------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_replayed_by_someone_else_is_a_new_request_to_them() {
    let shop = Shop::open(0, None).await;
    let alice = Caller::customer(customer_token(&shop.tenant, "alice").await);
    let bob = Caller::customer(customer_token(&shop.tenant, "bob").await);
    let key = unique("create");
    let create = |caller: Caller| {
        let shop = &shop;
        async move {
            shop.call(
                Method::POST,
                "/v1/storefront/baskets",
                &caller,
                Some(json!({"channel": "web"})),
            )
            .await
        }
    };
    let first = create(alice.with_key(&key)).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let retry = create(alice.with_key(&key)).await;
    assert_eq!(
        retry.body["basket_id"], first.body["basket_id"],
        "the owner's retry replays"
    );
    let replayed_by_bob = create(bob.with_key(&key)).await;
    assert_eq!(replayed_by_bob.status, StatusCode::CREATED);
    assert_ne!(replayed_by_bob.body["basket_id"], first.body["basket_id"]);
    assert_eq!(replayed_by_bob.body["customer_id"], "bob");

    // A guest has no principal before it has a basket: a stranger sending its key gets a
    // basket (and token) of its own, which does not open the guest's.
    let guest_key = unique("guest-create");
    let guest = create(Caller::default().with_key(&guest_key)).await;
    let stranger = create(Caller::default().with_key(&guest_key)).await;
    assert_eq!(stranger.status, StatusCode::CREATED);
    assert_ne!(stranger.body["basket_id"], guest.body["basket_id"]);
    let guest_basket = guest.body["basket_id"].as_str().unwrap().to_owned();
    let with_strangers_token = shop
        .call(
            Method::GET,
            &format!("/v1/storefront/baskets/{guest_basket}"),
            &Caller::guest(stranger.basket_token.as_deref().unwrap()),
            None,
        )
        .await;
    assert_eq!(with_strangers_token.status, StatusCode::NOT_FOUND);

    // A command on the guest's basket replayed without its token: refused, and nothing of
    // the basket comes back.
    let guest_caller = Caller::guest(guest.basket_token.as_deref().unwrap());
    let lines = format!("/v1/storefront/baskets/{guest_basket}/lines");
    let line_key = unique("line");
    let added = shop
        .call(
            Method::POST,
            &lines,
            &guest_caller.with_key(&line_key),
            Some(port_in_line("l1")),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    let replayed = shop
        .call(
            Method::POST,
            &lines,
            &Caller::default().with_key(&line_key),
            Some(port_in_line("l1")),
        )
        .await;
    assert_eq!(replayed.status, StatusCode::NOT_FOUND, "{}", replayed.body);
    assert!(replayed.body.get("lines").is_none(), "{}", replayed.body);
    let by_bob = shop
        .call(
            Method::POST,
            &lines,
            &bob.with_key(&line_key),
            Some(port_in_line("l1")),
        )
        .await;
    assert_eq!(by_bob.status, StatusCode::NOT_FOUND, "{}", by_bob.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_for_a_different_request_is_refused_and_changes_nothing() {
    let shop = Shop::open(0, None).await;
    let alice = Caller::customer(customer_token(&shop.tenant, "alice").await);
    let basket = shop.customer_basket(&alice).await;
    let lines = format!("/v1/storefront/baskets/{basket}/lines");
    let key = unique("line");
    let first = shop
        .call(
            Method::POST,
            &lines,
            &alice.with_key(&key),
            Some(port_in_line("l1")),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let version = first.body["version"].as_i64().unwrap();
    let other = shop
        .call(
            Method::POST,
            &lines,
            &alice.with_key(&key),
            Some(port_in_line("l2")),
        )
        .await;
    assert_eq!(
        other.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        other.body
    );
    assert_eq!(other.body["code"], "idempotency_key_reused");
    // Same key, same request: the first answer.
    let again = shop
        .call(
            Method::POST,
            &lines,
            &alice.with_key(&key),
            Some(port_in_line("l1")),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, first.body);
    // A later change proves the view is current; it shows one line, never l2.
    let later = shop
        .call(Method::DELETE, &format!("{lines}/l1"), &alice, None)
        .await;
    assert_eq!(later.status, StatusCode::OK, "{}", later.body);
    assert_eq!(later.body["version"].as_i64().unwrap(), version + 1);
    let read = shop
        .call(
            Method::GET,
            &format!(
                "/v1/storefront/baskets/{basket}?min_version={}",
                version + 1
            ),
            &alice,
            None,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["lines"], json!([]), "{}", read.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_with_one_key_all_get_the_first_answer() {
    let shop = Shop::open(2, None).await;
    let alice = Caller::customer(customer_token(&shop.tenant, "alice").await);
    let basket = shop.customer_basket(&alice).await;
    let lines = format!("/v1/storefront/baskets/{basket}/lines");
    let key = unique("retry");
    // A new number: the answer comes at the end of the reservation saga.
    let body = json!({"line_id": "l1", "offering_id": "plan", "sim_type": "ESIM",
        "number": {"type": "new_number", "msisdn": shop.numbers[0]}});
    let caller = alice.with_key(&key);
    let answers =
        join_all((0..20).map(|_| shop.call(Method::POST, &lines, &caller, Some(body.clone()))))
            .await;
    let statuses: Vec<StatusCode> = answers.iter().map(|a| a.status).collect();
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let first = &answers[0].body;
    assert_eq!(first["lines"].as_array().unwrap().len(), 1, "{first}");
    for answer in &answers {
        assert_eq!(&answer.body, first, "every retry gets the first answer");
    }
}

// --- control characters never reach storage -------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_with_a_control_character_is_refused_at_the_edge_and_nothing_is_written() {
    let shop = Shop::open(0, None).await;
    let admin = admin_token(Some(&shop.tenant), &[BRAND_ADMIN]);
    let mut bad = offering("Plan\u{0}X", "PLAN", 100, &[0], &["ESIM"], json!([]));
    bad["placements"][0]["display_name"] = json!("bell\u{7}");
    let (status, body) = shop
        .admin(Method::PUT, "/v1/admin/offerings/nul-plan", &admin, bad)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "control_character");
    let fields: Vec<&str> = body["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["name", "placements[0].display_name"], "{body}");
    // A later offering reaches the view; the refused one never does.
    let good = offering("Clean", "PLAN", 100, &[0], &["ESIM"], json!([]));
    let (status, body) = shop
        .admin(Method::PUT, "/v1/admin/offerings/clean-plan", &admin, good)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed = eventually(Duration::from_secs(10), || async {
        let r = shop
            .app
            .http
            .get(shop.app.url("/v1/admin/offerings"))
            .header("host", &shop.host)
            .bearer_auth(&admin)
            .send()
            .await
            .ok()?;
        let body: Value = r.json().await.ok()?;
        let ids: Vec<String> = body["items"]
            .as_array()?
            .iter()
            .filter_map(|o| o["offering_id"].as_str().map(str::to_owned))
            .collect();
        ids.contains(&"clean-plan".to_owned()).then_some(ids)
    })
    .await
    .expect("the clean offering reaches the view");
    assert!(!listed.contains(&"nul-plan".to_owned()), "{listed:?}");
}

// --- basket lifecycle events for analytics ---------------------------------------------

/// The ends of `topic`'s partitions now.
fn topic_ends(topic: &str) -> Vec<(i32, i64)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = tcom_tests::stack()
        .kafka_settings()
        .client_config()
        .create()
        .unwrap();
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout).unwrap();
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            let (_, high) = consumer.fetch_watermarks(topic, p.id(), timeout).unwrap();
            (p.id(), high)
        })
        .collect()
}

/// The payloads of `basket.events` records keyed `key` from `from` on, in order, until
/// `count` arrived or ten seconds passed.
async fn basket_events(
    key: String,
    from: Vec<(i32, i64)>,
    count: usize,
) -> Vec<tcom_schemas::basket::BasketEventPayload> {
    use rdkafka::Message;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let records = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = tcom_tests::stack()
            .kafka_settings()
            .read_committed_consumer(&unique("events-reader"))
            .create()
            .unwrap();
        let mut assignment = rdkafka::TopicPartitionList::new();
        for (partition, offset) in from {
            assignment
                .add_partition_offset(
                    tcom_schemas::topics::BASKET_EVENTS,
                    partition,
                    rdkafka::Offset::Offset(offset),
                )
                .unwrap();
        }
        consumer.assign(&assignment).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut found = Vec::new();
        while found.len() < count && std::time::Instant::now() < deadline {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100))
                && message.key() == Some(key.as_bytes())
            {
                found.push(message.payload().unwrap_or_default().to_vec());
            }
        }
        found
    })
    .await
    .unwrap();
    let codec = tcom_schemas::Codec::new(&tcom_tests::stack().registry_url).unwrap();
    let mut events = Vec::new();
    for bytes in records {
        let event: tcom_schemas::basket::BasketEvent = codec.decode(&bytes).await.unwrap();
        events.push(event.payload);
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_of_a_basket_is_an_event_analytics_can_count() {
    use tcom_schemas::basket::BasketEventPayload as Event;
    let shop = Shop::open(1, None).await;
    let from = tokio::task::spawn_blocking(|| topic_ends(tcom_schemas::topics::BASKET_EVENTS))
        .await
        .unwrap();
    let alice = Caller::customer(customer_token(&shop.tenant, "alice").await);
    let basket = shop.customer_basket(&alice).await;
    let added = shop
        .add_number_line(&basket, &alice, "l1", &shop.numbers[0])
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    let path = format!("/v1/storefront/baskets/{basket}");
    let changed = shop
        .call(
            Method::PATCH,
            &format!("{path}/lines/l1"),
            &alice,
            Some(json!({"sim_type": "PSIM"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let removed = shop
        .call(Method::DELETE, &format!("{path}/lines/l1"), &alice, None)
        .await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.body);
    let abandoned = shop.call(Method::DELETE, &path, &alice, None).await;
    assert_eq!(abandoned.status, StatusCode::OK, "{}", abandoned.body);

    let events = basket_events(format!("{}:{basket}", shop.tenant), from, 5).await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            Event::BasketCreated(_) => "created",
            Event::PlanLineAdded(_) => "line_added",
            Event::LineChanged(_) => "line_changed",
            Event::LineRemoved(_) => "line_removed",
            Event::BasketAbandoned(_) => "abandoned",
            Event::BasketClaimed(_) => "claimed",
            Event::BasketMerged(_) => "merged",
            Event::BasketExpired(_) => "expired",
            Event::BasketCheckedOut(_) => "checked_out",
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            "created",
            "line_added",
            "line_changed",
            "line_removed",
            "abandoned"
        ]
    );
    match &events[1] {
        Event::PlanLineAdded(line) => assert_eq!(line.offering_id, "plan"),
        other => panic!("{other:?}"),
    }
}

// --- logins, holds and port dates ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customers_active_basket_is_never_taken_over_by_another_login() {
    let shop = Shop::open(0, None).await;
    let erin = Caller::customer(customer_token(&shop.tenant, "erin").await);
    let (basket, guest_token) = shop.guest_basket().await;
    let path = format!("/v1/storefront/baskets/{basket}");
    let line = shop
        .call(
            Method::POST,
            &format!("{path}/lines"),
            &Caller::guest(&guest_token),
            Some(port_in_line("p")),
        )
        .await;
    assert_eq!(line.status, StatusCode::OK, "{}", line.body);
    let claimed = shop
        .call(
            Method::POST,
            &format!("{path}/login"),
            &Caller {
                guest: Some(guest_token.clone()),
                ..erin.clone()
            },
            Some(json!({"strategy": "use_guest_basket"})),
        )
        .await;
    assert_eq!(claimed.status, StatusCode::OK, "{}", claimed.body);
    assert_eq!(claimed.body["customer_id"], "erin");
    assert_eq!(claimed.body["status"], "ACTIVE");

    // Frank holds the guest token (leaked, or the same device): with no basket of his own (a
    // claim) and with one (a merge), for both strategies, he gets nothing.
    let frank_token = customer_token(&shop.tenant, "frank").await;
    let frank = Caller {
        customer: Some(frank_token.clone()),
        guest: Some(guest_token.clone()),
        ..Caller::default()
    };
    let attempt = |strategy: &'static str| {
        let (shop, frank, path) = (&shop, &frank, &path);
        async move {
            let r = shop
                .call(
                    Method::POST,
                    &format!("{path}/login"),
                    frank,
                    Some(json!({"strategy": strategy})),
                )
                .await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{strategy}: {}", r.body);
        }
    };
    attempt("use_guest_basket").await;
    attempt("merge_into_customer_basket").await;
    let franks = shop
        .customer_basket(&Caller::customer(frank_token.clone()))
        .await;
    let visible = shop
        .call(
            Method::GET,
            &format!("/v1/storefront/baskets/{franks}?min_version=1"),
            &Caller::customer(frank_token),
            None,
        )
        .await;
    assert_eq!(visible.status, StatusCode::OK, "{}", visible.body);
    attempt("merge_into_customer_basket").await;
    attempt("use_guest_basket").await;

    // Still Erin's, still active, still holding her line: her next change is the version after
    // the claim, and the view at that version shows it.
    let version = claimed.body["version"].as_i64().unwrap();
    let mut second_line = port_in_line("q");
    second_line["number"]["msisdn"] = json!("+4530123457");
    let next = shop
        .call(
            Method::POST,
            &format!("{path}/lines"),
            &erin,
            Some(second_line),
        )
        .await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.body);
    assert_eq!(
        next.body["version"].as_i64(),
        Some(version + 1),
        "{}",
        next.body
    );
    let read = shop
        .call(
            Method::GET,
            &format!("{path}?min_version={}", version + 1),
            &erin,
            None,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["customer_id"], "erin", "{}", read.body);
    assert_eq!(read.body["status"], "ACTIVE", "{}", read.body);
    assert_eq!(line_ids(&read.body), ["p", "q"], "{}", read.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn using_the_guest_basket_abandons_the_customers_older_one_and_frees_its_numbers() {
    // Reservations last 10 minutes: only the abandonment can free the number in time.
    let shop = Shop::open(1, Some(json!({"basket_ttl_seconds": 600, "reservation_ttl_seconds": 600, "requests_per_second": 1000}))).await;
    let number = shop.numbers[0].clone();
    let gina = Caller::customer(customer_token(&shop.tenant, "gina").await);
    let older = shop.customer_basket(&gina).await;
    let held = shop.add_number_line(&older, &gina, "old", &number).await;
    assert_eq!(held.status, StatusCode::OK, "{}", held.body);
    // The login looks the customer's basket up in the view.
    let seen = shop
        .call(
            Method::GET,
            &format!(
                "/v1/storefront/baskets/{older}?min_version={}",
                held.body["version"]
            ),
            &gina,
            None,
        )
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);

    let (guest, guest_token) = shop.guest_basket().await;
    let line = shop
        .call(
            Method::POST,
            &format!("/v1/storefront/baskets/{guest}/lines"),
            &Caller::guest(&guest_token),
            Some(port_in_line("new")),
        )
        .await;
    assert_eq!(line.status, StatusCode::OK, "{}", line.body);
    let claimed = shop
        .call(
            Method::POST,
            &format!("/v1/storefront/baskets/{guest}/login"),
            &Caller {
                guest: Some(guest_token),
                ..gina.clone()
            },
            Some(json!({"strategy": "use_guest_basket"})),
        )
        .await;
    assert_eq!(claimed.status, StatusCode::OK, "{}", claimed.body);
    assert_eq!(claimed.body["basket_id"], guest.as_str());
    assert_eq!(claimed.body["customer_id"], "gina");

    let abandoned = eventually(Duration::from_secs(5), || async {
        let r = shop
            .call(
                Method::GET,
                &format!("/v1/storefront/baskets/{older}"),
                &gina,
                None,
            )
            .await;
        (r.body["status"] == "ABANDONED").then_some(())
    })
    .await;
    assert!(abandoned.is_some(), "the older basket was not abandoned");
    assert!(
        shop.pool_shows(&number, "AVAILABLE", Duration::from_secs(3))
            .await,
        "the older basket's number was not released"
    );
    let (other, other_token) = shop.guest_basket().await;
    let taken = shop
        .add_number_line(&other, &Caller::guest(&other_token), "l1", &number)
        .await;
    assert_eq!(taken.status, StatusCode::OK, "{}", taken.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_to_the_basket_extends_the_numbers_it_holds() {
    // Holds of 6 s; a change in the second half of a hold extends it.
    let shop = Shop::open(1, Some(json!({"basket_ttl_seconds": 20, "reservation_ttl_seconds": 6, "requests_per_second": 1000}))).await;
    let number = shop.numbers[0].clone();
    let (basket, token) = shop.guest_basket().await;
    let guest = Caller::guest(&token);
    let held = shop.add_number_line(&basket, &guest, "l1", &number).await;
    assert_eq!(held.status, StatusCode::OK, "{}", held.body);
    let until = held.body["lines"][0]["number"]["reservation"]["until"]
        .as_i64()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let changed = shop
        .call(
            Method::PATCH,
            &format!("/v1/storefront/baskets/{basket}/lines/l1"),
            &guest,
            Some(json!({"add_ons": [{"offering_id": "share", "quantity": 1}]})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    // The extension comes back as a later version of the basket.
    let extended = eventually(Duration::from_secs(2), || async {
        let r = shop
            .call(
                Method::GET,
                &format!(
                    "/v1/storefront/baskets/{basket}?min_version={}",
                    changed.body["version"].as_i64().unwrap() + 1
                ),
                &guest,
                None,
            )
            .await;
        let now = r.body["lines"][0]["number"]["reservation"]["until"].as_i64()?;
        (r.status == StatusCode::OK && now > until).then_some(now)
    })
    .await
    .expect("the change never extended the hold");
    assert!(
        extended >= until + 3000,
        "extended to {extended}, first {until}"
    );
    // Past the first hold's end the number is still this basket's.
    let wait = (until + 500 - now_ms()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let pool = shop.pool().await;
    assert_eq!(
        pool[&number],
        ("RESERVED".to_owned(), Some(basket.clone())),
        "the hold lapsed at its first deadline"
    );
    let (other, other_token) = shop.guest_basket().await;
    let refused = shop
        .add_number_line(&other, &Caller::guest(&other_token), "l1", &number)
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
}

/// `YYYY-MM-DD` of the UTC day `days` from today.
fn utc_date_in(days: i64) -> String {
    let day = now_ms().div_euclid(86_400_000) + days;
    // Days since 1970-01-01 to a civil date (proleptic Gregorian).
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_date_is_from_tomorrow_to_90_days_ahead() {
    assert_eq!(
        utc_date_in(-(now_ms().div_euclid(86_400_000))),
        "1970-01-01"
    );
    let shop = Shop::open(0, None).await;
    let (basket, token) = shop.guest_basket().await;
    let guest = Caller::guest(&token);
    let port = |line: &str, msisdn: &str, date: String| {
        json!({"line_id": line, "offering_id": "plan", "sim_type": "PSIM",
               "number": {"type": "port_in", "msisdn": msisdn, "current_operator": "Telia",
                          "desired_port_date": date}})
    };
    let lines = format!("/v1/storefront/baskets/{basket}/lines");
    for (days, line) in [(91, "too-late"), (0, "today"), (365, "next-year")] {
        let body = port(line, "+4530123456", utc_date_in(days));
        let r = shop.call(Method::POST, &lines, &guest, Some(body)).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{days} days: {}",
            r.body
        );
        let fields: Vec<&str> = r.body["violations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["code"] == "invalid_port_date")
            .filter_map(|v| v["field"].as_str())
            .collect();
        assert_eq!(
            fields,
            ["number/port_in/desired_port_date"],
            "{days} days: {}",
            r.body
        );
    }
    for (days, line, msisdn) in [
        (1, "tomorrow", "+4530123456"),
        (90, "last-day", "+4530123457"),
    ] {
        let body = port(line, msisdn, utc_date_in(days));
        let r = shop.call(Method::POST, &lines, &guest, Some(body)).await;
        assert_eq!(r.status, StatusCode::OK, "{days} days: {}", r.body);
    }
}

// Shown to fail: with `FORCE ROW LEVEL SECURITY` dropped for `baskets` and `phone_numbers` in
// migrations/20261122000003_storefront_views.sql (the platform's role owns the tables, so the
// policy then does not apply to it) the unscoped counts see the rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basket_and_number_views_show_nothing_without_the_tenant_setting() {
    let shop = Shop::open(1, None).await;
    let number = shop.numbers[0].clone();
    let (basket, token) = shop.guest_basket().await;
    let held = shop
        .add_number_line(&basket, &Caller::guest(&token), "l1", &number)
        .await;
    assert_eq!(held.status, StatusCode::OK, "{}", held.body);
    let pool = sqlx::PgPool::connect(&platform().database_url)
        .await
        .unwrap();
    let count = |sql: &'static str, tenant: Option<String>| {
        let pool = &pool;
        async move {
            match tenant {
                Some(tenant) => {
                    let mut tx = tcom_connectors::postgres::begin_for_tenant(pool, &tenant)
                        .await
                        .unwrap();
                    sqlx::query_scalar::<_, i64>(sql)
                        .fetch_one(&mut *tx)
                        .await
                        .unwrap()
                }
                None => sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(pool)
                    .await
                    .unwrap(),
            }
        }
    };
    // The shop's rows are there (its scope sees them) before anything is counted without one.
    let present = eventually(Duration::from_secs(5), || async {
        let baskets = count(
            "SELECT count(*) FROM baskets WHERE version >= 2 AND tenant_id = current_setting('app.tenant_id')",
            Some(shop.tenant.clone()),
        )
        .await;
        let numbers = count(
            "SELECT count(*) FROM phone_numbers WHERE status = 'RESERVED' AND tenant_id = current_setting('app.tenant_id')",
            Some(shop.tenant.clone()),
        )
        .await;
        (baskets >= 1 && numbers == 1).then_some(())
    })
    .await;
    assert!(present.is_some(), "the shop's rows never reached the views");
    for table in ["baskets", "phone_numbers"] {
        let sql: &'static str = match table {
            "baskets" => "SELECT count(*) FROM baskets",
            _ => "SELECT count(*) FROM phone_numbers",
        };
        assert_eq!(count(sql, None).await, 0, "{table} without app.tenant_id");
        assert_eq!(
            count(sql, Some(unique("nobody"))).await,
            0,
            "{table} scoped to another tenant"
        );
    }
}

// --- answers that take too long --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_without_an_answer_in_time_is_202_with_a_location_to_poll() {
    let shop = Shop::open(0, None).await;
    let impatient =
        tcom_tests::spawn_platform_ingress_with(|s| s.commands.reply_timeout_ms = 1).await;
    let known = eventually(Duration::from_secs(10), || async {
        let r = call_via(
            &impatient,
            &shop.host,
            Method::GET,
            "/v1/storefront/tenant",
            &Caller::default(),
            None,
        )
        .await;
        (r.status == StatusCode::OK).then_some(())
    })
    .await;
    assert!(known.is_some());
    let response = impatient
        .http
        .post(impatient.url("/v1/storefront/baskets"))
        .header("host", &shop.host)
        .json(&json!({"channel": "web"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let token = response.headers()["basket-token"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "pending", "{body}");
    assert_eq!(body["location"], location.as_str());
    assert!(
        location.starts_with("/v1/storefront/baskets/"),
        "{location}"
    );
    // The command was written and decided: polling the location finds the basket.
    let found = eventually(Duration::from_secs(5), || async {
        let r = shop
            .call(Method::GET, &location, &Caller::guest(&token), None)
            .await;
        (r.status == StatusCode::OK).then_some(r.body)
    })
    .await
    .expect("the location never showed the basket");
    assert_eq!(
        format!(
            "/v1/storefront/baskets/{}",
            found["basket_id"].as_str().unwrap()
        ),
        location
    );
    assert_eq!(found["status"], "ACTIVE");
}
