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
        let mut request = self
            .app
            .http
            .request(method, self.app.url(path))
            .header("host", host);
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
        let basket_token = r
            .headers()
            .get("basket-token")
            .map(|v| v.to_str().unwrap().to_owned());
        Response {
            status,
            body: r.json().await.unwrap_or(Value::Null),
            basket_token,
        }
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

fn port_in_line(line: &str) -> Value {
    json!({"line_id": line, "offering_id": "plan", "sim_type": "PSIM",
           "number": {"type": "port_in", "msisdn": "+4530123456", "current_operator": "Telia"}})
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

#[tokio::test]
async fn expiry_and_abandonment_release_numbers_for_other_baskets() {
    let shop = Shop::open(2, Some(json!({"basket_ttl_seconds": 4, "reservation_ttl_seconds": 2, "requests_per_second": 1000}))).await;
    let (number, other) = (shop.numbers[0].clone(), shop.numbers[1].clone());
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

    // The reservation lapses after 2 s: the number is free and the first basket knows it.
    assert!(
        shop.pool_shows(&number, "AVAILABLE", Duration::from_secs(6))
            .await,
        "the reservation never expired"
    );
    let readiness = shop
        .call(
            Method::GET,
            &format!("/v1/storefront/baskets/{first}/readiness"),
            &Caller::guest(&first_token),
            None,
        )
        .await;
    let codes: Vec<&str> = readiness.body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"number_reservation_lost"),
        "{}",
        readiness.body
    );
    let taken = shop
        .add_number_line(&second, &Caller::guest(&second_token), "l1", &number)
        .await;
    assert_eq!(taken.status, StatusCode::OK, "{}", taken.body);

    // Abandoning a basket gives its numbers back at once.
    let abandoned = shop
        .call(
            Method::DELETE,
            &format!("/v1/storefront/baskets/{second}"),
            &Caller::guest(&second_token),
            None,
        )
        .await;
    assert_eq!(abandoned.status, StatusCode::OK, "{}", abandoned.body);
    assert_eq!(abandoned.body["status"], "ABANDONED");
    assert!(
        shop.pool_shows(&number, "AVAILABLE", Duration::from_secs(2))
            .await,
        "abandonment kept the number"
    );
    let (third, third_token) = shop.guest_basket().await;
    let again = shop
        .add_number_line(&third, &Caller::guest(&third_token), "l1", &number)
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);

    // An untouched basket expires (4 s) and releases what it holds.
    let (idle, idle_token) = shop.guest_basket().await;
    let idle_held = shop
        .add_number_line(&idle, &Caller::guest(&idle_token), "l1", &other)
        .await;
    assert_eq!(idle_held.status, StatusCode::OK, "{}", idle_held.body);
    let expired = eventually(Duration::from_secs(8), || async {
        let r = shop
            .call(
                Method::GET,
                &format!("/v1/storefront/baskets/{idle}"),
                &Caller::guest(&idle_token),
                None,
            )
            .await;
        (r.body["status"] == "EXPIRED").then_some(())
    })
    .await;
    assert!(expired.is_some(), "the idle basket never expired");
    assert!(
        shop.pool_shows(&other, "AVAILABLE", Duration::from_secs(4))
            .await
    );
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

    // Nothing was written: the basket is as created and the number is still free.
    let read = shop
        .call(
            Method::GET,
            &format!("/v1/storefront/baskets/{basket}"),
            &guest,
            None,
        )
        .await;
    assert_eq!(read.body["version"], 1, "{}", read.body);
    assert_eq!(read.body["lines"], json!([]));
    assert_eq!(shop.pool().await[&number].0, "AVAILABLE");
    // And the number can still be had.
    let ok = shop.add_number_line(&basket, &guest, "l1", &number).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["version"], 2);
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
    // A customer token of tenant A on tenant B's host is refused outright.
    let alice = Caller::customer(customer_token(&a.tenant, "alice"));
    let mismatch = a.call_on(&b.host, Method::GET, &path, &alice, None).await;
    assert_eq!(mismatch.status, StatusCode::FORBIDDEN);
    assert_eq!(mismatch.body["code"], "tenant_mismatch");
    // Another customer of tenant A cannot read or change Alice's basket.
    let alices = a.customer_basket(&alice).await;
    let bob = Caller::customer(customer_token(&a.tenant, "bob"));
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
    let alices_own = a.call(Method::GET, &alices_path, &alice, None).await;
    assert_eq!(alices_own.status, StatusCode::OK);
    assert_eq!(
        alices_own.body["lines"],
        json!([]),
        "Bob's line never landed"
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
    let carol = Caller::customer(customer_token(&shop.tenant, "carol"));
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
        customer: Some(customer_token(&shop.tenant, "dave")),
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
    let erin = customer_token(&shop.tenant, "erin");
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

#[tokio::test]
async fn one_shop_over_its_rate_is_slowed_down_and_others_are_not() {
    let slow = Shop::open(0, Some(json!({"basket_ttl_seconds": 600, "reservation_ttl_seconds": 300, "requests_per_second": 5}))).await;
    let other = Shop::open(0, None).await;
    // Let the probe's requests fall out of the current second's window.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let anonymous = Caller::default();
    let searches = (0..20).map(|_| {
        slow.call(
            Method::GET,
            "/v1/storefront/numbers?random=1",
            &anonymous,
            None,
        )
    });
    let results = join_all(searches).await;
    let limited: Vec<&Response> = results
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert!(
        limited.len() >= 10,
        "only {} of 20 were limited",
        limited.len()
    );
    assert!(limited.iter().all(|r| r.body["code"] == "rate_limited"));
    let unaffected = other
        .call(
            Method::GET,
            "/v1/storefront/numbers?random=1",
            &Caller::default(),
            None,
        )
        .await;
    assert_eq!(unaffected.status, StatusCode::OK, "{}", unaffected.body);
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
    let alice = Caller::customer(customer_token(&shop.tenant, "alice"));
    let bob = Caller::customer(customer_token(&shop.tenant, "bob"));
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
    let alice = Caller::customer(customer_token(&shop.tenant, "alice"));
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
    let alice = Caller::customer(customer_token(&shop.tenant, "alice"));
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
