//! Checkout benchmark: checkouts across tenants through HTTP against a running platform
//! (`tcom run`, all roles, with the stack's Stripe and Adyen simulators), each paid by a
//! shopper on the provider's side and completed by the providers' webhooks.
//!
//! Usage (from the repository root, after `source .stack/env`):
//! checkout-bench [rate=50] [seconds=30] [tenants=4] [url=http://127.0.0.1:8080]
//!
//! Setup, not measured: the tenants (half pay with Stripe, half with Adyen; their keys in the
//! platform's secrets folder, webhook endpoints at the simulators pointing at `url`), a plan,
//! a number pool, and one ready customer basket per checkout. Then, open loop at `rate`
//! checkouts per second: `POST …/checkout` (measured: checkout → the order `pending` with its
//! payment set up, as the answer), then the shopper pays (Stripe: confirm with a test card;
//! Adyen: the hosted page), and the time from the payment to the order's `completed` record
//! on the `orders` topic is measured (webhook, the payment read again, authorisation, number
//! confirmation, capture). At the end the simulators' ledgers are checked: duplicate charges
//! (an order with more than one payment, or more captured than it costs) must be 0.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tcom_bench::{CpuSample, Latencies, machine_line, now_ms};
use tcom_ingress::Settings;
use tcom_ingress::auth::{AdminAuth, BRAND_ADMIN, PLATFORM_OPERATOR};
use tcom_schemas::order::{OrderSnapshot, OrderState};
use tokio::sync::Mutex;

const ACTIVATION: i64 = 9900;
const MONTHLY: i64 = 19900;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    Stripe,
    Adyen,
}

struct Tenant {
    id: String,
    host: String,
    provider: Provider,
    api_key: String,
}

struct Bench {
    http: Client,
    url: String,
    settings: Settings,
    auth: AdminAuth,
    identity: tcom_ingress::identity::Identity,
}

/// A basket ready for checkout.
struct Ready {
    tenant: usize,
    customer_token: String,
    basket: String,
}

impl Bench {
    async fn call(
        &self,
        method: Method,
        host: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("host", host)
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        match request.send().await {
            Ok(r) => {
                let status = r.status();
                (status, r.json().await.unwrap_or(Value::Null))
            }
            Err(e) => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": e.to_string()}),
            ),
        }
    }

    fn put_secret(&self, name: &str, value: &str) -> String {
        let path = self.settings.payments.secrets_dir.join(name);
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("secrets folder");
        std::fs::write(&path, value).expect("a secret file");
        format!("file://{name}")
    }

    /// A payment account at the provider's simulator with webhooks to the platform.
    async fn account(&self, tenant: &str, provider: Provider) -> (String, String, String) {
        let payments = &self.settings.payments;
        match provider {
            Provider::Stripe => {
                let key = format!("sk_test_{}", tenant.replace('-', ""));
                let secret = format!("whsec_{}", uuid::Uuid::new_v4().simple());
                let r = self
                    .http
                    .post(format!("{}/v1/webhook_endpoints", payments.stripe_url))
                    .bearer_auth(&key)
                    .form(&[
                        ("url", format!("{}/v1/webhooks/stripe/{tenant}", self.url)),
                        ("enabled_events[]", "*".to_owned()),
                        ("secret", secret.clone()),
                    ])
                    .send()
                    .await
                    .expect("the Stripe simulator answers");
                assert!(r.status().is_success(), "Stripe webhook endpoint");
                (key, format!("acct_{tenant}"), secret)
            }
            Provider::Adyen => {
                let key = format!("AQE{}", uuid::Uuid::new_v4().simple());
                let merchant = format!("{}ECOM", tenant.replace('-', ""));
                let hooks = format!("{}/v3/merchants/{merchant}/webhooks", payments.adyen_url);
                let created: Value = self
                    .http
                    .post(&hooks)
                    .header("x-api-key", &key)
                    .json(&json!({"url": format!("{}/v1/webhooks/adyen/{tenant}", self.url),
                                  "type": "standard", "active": true, "communicationFormat": "json"}))
                    .send()
                    .await
                    .expect("the Adyen simulator answers")
                    .json()
                    .await
                    .expect("a webhook");
                let id = created["id"].as_str().expect("a webhook id");
                let hmac: Value = self
                    .http
                    .post(format!("{hooks}/{id}/generateHmac"))
                    .header("x-api-key", &key)
                    .json(&json!({}))
                    .send()
                    .await
                    .expect("an HMAC key")
                    .json()
                    .await
                    .expect("an HMAC key");
                let hmac = hmac["hmacKey"].as_str().expect("an HMAC key").to_owned();
                (key, merchant, hmac)
            }
        }
    }

    async fn open_tenant(&self, index: usize, numbers: usize) -> (Tenant, Vec<String>) {
        let id = format!(
            "cb{}-{index}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let host = format!("{id}.bench.test");
        let provider = if index.is_multiple_of(2) {
            Provider::Stripe
        } else {
            Provider::Adyen
        };
        let (api_key, account, webhook) = self.account(&id, provider).await;
        let name = match provider {
            Provider::Stripe => "stripe",
            Provider::Adyen => "adyen",
        };
        let secret_ref = self.put_secret(&format!("{name}/{id}/key"), &api_key);
        let webhook_ref = self.put_secret(&format!("{name}/{id}/webhook"), &webhook);
        let operator = self.auth.issue("bench", None, &[PLATFORM_OPERATOR], 3600);
        let settings = json!({
            "name": format!("Checkout bench {index}"), "domains": [host],
            "default_locale": "da-DK", "locales": ["da-DK"], "currency": "DKK", "country": "DK",
            "segments": [{"name": "consumer", "max_binding_months": 6}], "channels": ["web"],
            "payment": {"provider": name, "account_ref": account, "secret_ref": secret_ref,
                        "webhook_secret_ref": webhook_ref},
        });
        let (status, body) = self
            .call(
                Method::POST,
                &host,
                "/v1/platform/tenants",
                &operator,
                Some(json!({"tenant_id": id, "settings": settings})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "onboarding: {body}");
        for _ in 0..100 {
            let r = self
                .http
                .get(format!("{}/v1/storefront/tenant", self.url))
                .header("host", &host)
                .send()
                .await;
            if r.is_ok_and(|r| r.status() == StatusCode::OK) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let admin = self.auth.issue("bench", Some(&id), &[BRAND_ADMIN], 3600);
        let plan = json!({
            "name": "Bench 5G", "specification_id": "mobile", "kind": "PLAN",
            "prices": [
                {"name": "activation", "price_type": "ONE_TIME", "amount_minor": ACTIVATION, "currency": "DKK"},
                {"name": "monthly", "price_type": "RECURRING", "amount_minor": MONTHLY, "currency": "DKK", "recurring_period_months": 1}
            ],
            "binding_months": [0], "sim_types": ["ESIM"], "add_ons": [],
            "placements": [{"channel": "web", "sort_order": 1}]
        });
        let (status, body) = self
            .call(
                Method::PUT,
                &host,
                "/v1/admin/offerings/plan",
                &admin,
                Some(plan),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "offering: {body}");
        let (status, body) = self
            .call(
                Method::POST,
                &host,
                "/v1/admin/offerings/plan/activate",
                &admin,
                Some(json!({})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "activation: {body}");
        let base = 10_000_000 + (uuid::Uuid::new_v4().as_u128() % 80_000_000) as u64;
        let pool: Vec<String> = (0..numbers as u64)
            .map(|i| format!("+45{}", base + i))
            .collect();
        for chunk in pool.chunks(1000) {
            let (status, body) = self
                .call(
                    Method::POST,
                    &host,
                    "/v1/admin/number-pool",
                    &admin,
                    Some(json!({"numbers": chunk})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "pool: {body}");
        }
        (
            Tenant {
                id,
                host,
                provider,
                api_key,
            },
            pool,
        )
    }

    /// A customer basket with one line holding `msisdn`; retried while the new shop's catalog
    /// reaches the basket processor.
    async fn ready_basket(&self, tenant: &Tenant, index: usize, msisdn: &str) -> Option<Ready> {
        let token = self
            .identity
            .issue_local_session(&tenant.id, &format!("bench-{index}"), None)
            .await
            .expect("a local customer session")
            .access_token;
        let (status, body) = self
            .call(
                Method::POST,
                &tenant.host,
                "/v1/storefront/baskets",
                &token,
                Some(json!({"channel": "web"})),
            )
            .await;
        if status != StatusCode::CREATED {
            return None;
        }
        let basket = body["basket_id"].as_str()?.to_owned();
        for _ in 0..50 {
            let (status, _) = self
                .call(
                    Method::POST,
                    &tenant.host,
                    &format!("/v1/storefront/baskets/{basket}/lines"),
                    &token,
                    Some(json!({"offering_id": "plan", "sim_type": "ESIM",
                                "number": {"type": "new_number", "msisdn": msisdn}})),
                )
                .await;
            if status == StatusCode::OK {
                return Some(Ready {
                    tenant: 0,
                    customer_token: token,
                    basket,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        None
    }

    /// Pays like the shopper: Stripe's test card on the intent, or Adyen's hosted page.
    async fn pay(&self, tenant: &Tenant, order: &Value) -> bool {
        let payments = &self.settings.payments;
        match tenant.provider {
            Provider::Stripe => {
                let Some(intent) = order["payment"][0]["id"].as_str() else {
                    return false;
                };
                self.http
                    .post(format!(
                        "{}/v1/payment_intents/{intent}/confirm",
                        payments.stripe_url
                    ))
                    .bearer_auth(&tenant.api_key)
                    .form(&[("payment_method", "pm_card_visa")])
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
            Provider::Adyen => {
                let Some(page) = order["paymentAction"]["redirectUrl"].as_str() else {
                    return false;
                };
                self.http
                    .post(page)
                    .form(&[("outcome", "authorise")])
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_redirection() || r.status().is_success())
            }
        }
    }

    /// Ledger entries per order id, from both simulators.
    async fn ledgers(&self) -> HashMap<String, Vec<Value>> {
        let payments = &self.settings.payments;
        let mut by_order: HashMap<String, Vec<Value>> = HashMap::new();
        for (url, list, order_of) in [
            (
                format!("{}/_sim/ledger", payments.stripe_url),
                "intents",
                "/metadata/order_id",
            ),
            (
                format!("{}/_sim/ledger", payments.adyen_url),
                "entries",
                "/reference",
            ),
        ] {
            let ledger: Value = match self.http.get(url).send().await {
                Ok(r) => r.json().await.unwrap_or(Value::Null),
                Err(_) => Value::Null,
            };
            for entry in ledger[list].as_array().cloned().unwrap_or_default() {
                if let Some(order) = entry.pointer(order_of).and_then(Value::as_str) {
                    by_order.entry(order.to_owned()).or_default().push(entry);
                }
            }
        }
        by_order
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The `orders` topic from now on: order id → when its `completed` snapshot was written.
fn follow_completions(
    settings: &Settings,
    codec: Arc<tcom_schemas::Codec>,
) -> Arc<Mutex<HashMap<String, i64>>> {
    let completed = Arc::new(Mutex::new(HashMap::new()));
    let consumer: StreamConsumer = settings
        .kafka_settings()
        .read_committed_consumer(&format!("checkout-bench-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "latest")
        .create()
        .expect("a consumer");
    consumer
        .subscribe(&[tcom_schemas::topics::ORDERS])
        .expect("subscribed");
    let seen = completed.clone();
    tokio::spawn(async move {
        loop {
            let Ok(message) = consumer.recv().await else {
                continue;
            };
            let Some(bytes) = message.payload() else {
                continue;
            };
            let Ok(order) = codec.decode::<OrderSnapshot>(bytes).await else {
                continue;
            };
            if order.state == OrderState::Completed {
                let at = message.timestamp().to_millis().unwrap_or_else(now_ms);
                seen.lock().await.entry(order.order_id).or_insert(at);
            }
        }
    });
    completed
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_owned());
    let rate: f64 = arg(0, "50").parse().expect("rate: checkouts per second");
    let seconds: u64 = arg(1, "30").parse().expect("seconds");
    let tenant_count: usize = arg(2, "4").parse().expect("tenants");
    let url = arg(3, "http://127.0.0.1:8080");
    let settings = Settings::load(std::path::Path::new("config")).expect("config/ loads");
    let codec =
        Arc::new(tcom_schemas::Codec::new(&settings.schema_registry.url).expect("a registry URL"));
    let bench = Arc::new(Bench {
        http: Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(256)
            .build()
            .expect("an HTTP client"),
        url,
        auth: AdminAuth::new(&settings.auth),
        identity: tcom_ingress::identity::Identity::from_settings(&settings)
            .expect("identity settings"),
        settings,
    });
    let total = (rate * seconds as f64).ceil() as usize;
    let per_tenant = total.div_ceil(tenant_count);
    println!(
        "checkout-bench: {total} checkouts at {rate}/s over {seconds} s across {tenant_count} tenants (half Stripe, half Adyen)"
    );
    let mut tenants = Vec::new();
    let mut pools = Vec::new();
    for i in 0..tenant_count {
        let (tenant, pool) = bench.open_tenant(i, per_tenant).await;
        tenants.push(tenant);
        pools.push(pool);
    }
    let tenants = Arc::new(tenants);
    // Ready baskets, a few at a time (setup, not measured).
    let prepared = Instant::now();
    let mut ready = Vec::new();
    let mut jobs = tokio::task::JoinSet::new();
    let mut next = 0;
    let work: Vec<(usize, usize, String)> = (0..per_tenant)
        .flat_map(|i| (0..tenant_count).map(move |t| (t, i)))
        .map(|(t, i)| (t, i, pools[t][i].clone()))
        .take(total)
        .collect();
    while next < work.len() || !jobs.is_empty() {
        while next < work.len() && jobs.len() < 16 {
            let (t, i, msisdn) = work[next].clone();
            let (bench, tenants) = (bench.clone(), tenants.clone());
            jobs.spawn(async move {
                bench
                    .ready_basket(&tenants[t], i, &msisdn)
                    .await
                    .map(|r| Ready { tenant: t, ..r })
            });
            next += 1;
        }
        if let Some(Ok(Some(r))) = jobs.join_next().await {
            ready.push(r);
        }
    }
    println!(
        "setup: {} ready baskets in {:.1} s",
        ready.len(),
        prepared.elapsed().as_secs_f64()
    );

    let completions = follow_completions(&bench.settings, codec);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu = CpuSample::take();
    let checkout_latency = Arc::new(Mutex::new(Latencies::default()));
    let paid_at = Arc::new(Mutex::new(HashMap::<String, i64>::new()));
    let failures = Arc::new(Mutex::new(HashMap::<String, u64>::new()));
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut running = tokio::task::JoinSet::new();
    for (n, r) in ready.into_iter().enumerate() {
        let due = started + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due.into()).await;
        let (bench, tenants) = (bench.clone(), tenants.clone());
        let (checkout_latency, paid_at, failures) =
            (checkout_latency.clone(), paid_at.clone(), failures.clone());
        running.spawn(async move {
            let tenant = &tenants[r.tenant];
            let sent = Instant::now();
            let (status, order) = bench
                .call(
                    Method::POST,
                    &tenant.host,
                    &format!("/v1/storefront/baskets/{}/checkout", r.basket),
                    &r.customer_token,
                    None,
                )
                .await;
            let took = sent.elapsed();
            if status != StatusCode::CREATED || order["state"] != "pending" {
                *failures
                    .lock()
                    .await
                    .entry(format!("checkout {status} {}", order["state"]))
                    .or_default() += 1;
                return;
            }
            checkout_latency.lock().await.push(took);
            if bench.pay(tenant, &order).await {
                paid_at.lock().await.insert(r.basket.clone(), now_ms());
            } else {
                *failures.lock().await.entry("pay".into()).or_default() += 1;
            }
        });
    }
    while running.join_next().await.is_some() {}
    let offered = started.elapsed();
    // Wait for the stragglers to complete.
    let paid: HashMap<String, i64> = paid_at.lock().await.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let done = completions.lock().await;
        if paid.keys().all(|o| done.contains_key(o)) {
            break;
        }
        drop(done);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let done = completions.lock().await.clone();
    let mut to_completed = Latencies::default();
    let mut last_completion = 0;
    for (order, at) in &paid {
        if let Some(completed) = done.get(order) {
            to_completed.push(Duration::from_millis((completed - at).max(0) as u64));
            last_completion = last_completion.max(*completed);
        }
    }
    let completed = paid.keys().filter(|o| done.contains_key(*o)).count();
    let first_start = now_ms() - started.elapsed().as_millis() as i64;
    let span = Duration::from_millis((last_completion - first_start).max(1) as u64);
    let ledgers = bench.ledgers().await;
    let due = ACTIVATION + MONTHLY;
    let orders: HashSet<&String> = paid.keys().collect();
    let mut duplicates = 0;
    for order in &orders {
        let entries = ledgers.get(*order).map(Vec::as_slice).unwrap_or_default();
        let captured: i64 = entries
            .iter()
            .map(|e| {
                e["amount_received"]
                    .as_i64()
                    .or_else(|| e["captured"].as_i64())
                    .unwrap_or_default()
            })
            .sum();
        if entries.len() > 1 || captured > due {
            duplicates += 1;
        }
    }
    let mut checkout = std::mem::take(&mut *checkout_latency.lock().await);
    println!(
        "offered {:.1} checkouts/s for {:.1} s; {} checked out, {} paid, {} completed ({:.1} orders/s completed)",
        paid.len() as f64 / offered.as_secs_f64(),
        offered.as_secs_f64(),
        checkout.len(),
        paid.len(),
        completed,
        completed as f64 / span.as_secs_f64()
    );
    println!(
        "checkout → pending (HTTP answer): p50 {} p99 {} max {} (n={})",
        ms(checkout.percentile(50.0)),
        ms(checkout.percentile(99.0)),
        ms(checkout.percentile(100.0)),
        checkout.len()
    );
    println!(
        "paid → completed (webhook, read-back, authorise, number confirmed, capture): p50 {} p99 {} max {} (n={})",
        ms(to_completed.percentile(50.0)),
        ms(to_completed.percentile(99.0)),
        ms(to_completed.percentile(100.0)),
        to_completed.len()
    );
    println!(
        "duplicate charges: {duplicates} (orders with more than one payment or more captured than due, of {})",
        orders.len()
    );
    let failures = failures.lock().await;
    if !failures.is_empty() {
        println!("failures: {failures:?}");
    }
    println!("{}", machine_line(&cpu));
}
