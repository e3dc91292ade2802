//! Storefront basket benchmark: shoppers across several tenants, each a closed loop over HTTP
//! against a running platform (`tcom run`, all roles), then a contention scenario where many
//! shoppers race for a handful of numbers. Prints round-trip throughput and latency
//! percentiles per command and overall, and the contention outcome.
//!
//! It onboards its own tenants (plan, data-sharing add-on, number pool) through the APIs,
//! with tokens signed by the secrets in `config/` (the platform's local defaults).
//!
//! Usage: basket-bench [shoppers=500] [seconds=30] [tenants=4] [think_ms=2000] [url=http://127.0.0.1:8080]
//!
//! A shopper pauses between steps for a random 0.5–1.5 × `think_ms` (people read and click;
//! `think_ms=0` makes every shopper a closed loop, which measures capacity instead). One
//! shopper's loop: create a guest basket; search a random available number; add a plan
//! line with that number (reserved through the MSISDN processor: three processor hops);
//! add data-sharing cards to it; add a second line porting a number in; remove that line;
//! abandon the basket (its number goes back to the pool).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tcom_ingress::auth::{AdminAuth, BRAND_ADMIN, PLATFORM_OPERATOR};
use tokio::sync::Mutex;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Latencies by operation.
#[derive(Default)]
struct Recorder {
    latencies: HashMap<&'static str, Vec<Duration>>,
    failures: HashMap<String, u64>,
}

impl Recorder {
    fn add(&mut self, operation: &'static str, latency: Duration) {
        self.latencies.entry(operation).or_default().push(latency);
    }

    fn fail(&mut self, what: String) {
        *self.failures.entry(what).or_default() += 1;
    }
}

/// The commands (not the reads) whose round trips the target is about.
const COMMANDS: &[&str] = &[
    "create basket",
    "add line, new number",
    "update line",
    "add line, port-in",
    "remove line",
    "abandon basket",
];

struct Setup {
    http: Client,
    url: String,
    auth: AdminAuth,
}

impl Setup {
    async fn call(
        &self,
        method: Method,
        host: &str,
        path: &str,
        token: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("host", host)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("platform reachable");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Onboards a tenant with a plan, a data-sharing card and `pool` numbers; returns its
    /// host and numbers.
    async fn tenant(&self, index: usize, pool: usize) -> (String, Vec<String>) {
        let id = format!(
            "bench{index}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let host = format!("{id}.bench.localhost");
        let operator = self.auth.issue("bench", None, &[PLATFORM_OPERATOR], 3600);
        let settings = json!({
            "name": format!("Bench {index}"), "domains": [host], "default_locale": "da-DK",
            "locales": ["da-DK"], "currency": "DKK", "country": "DK",
            "segments": [{"name": "consumer", "max_binding_months": 6}], "channels": ["web"],
            "storefront": {"basket_ttl_seconds": 1800, "reservation_ttl_seconds": 900, "requests_per_second": 100000}
        });
        let (status, body) = self
            .call(
                Method::POST,
                &host,
                "/v1/platform/tenants",
                &operator,
                json!({"tenant_id": id, "settings": settings}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "onboarding: {body}");
        let admin = self.auth.issue("bench", Some(&id), &[BRAND_ADMIN], 3600);
        let price = |monthly: i64| json!([{"name": "monthly", "price_type": "RECURRING", "amount_minor": monthly, "currency": "DKK", "recurring_period_months": 1}]);
        let offerings = [
            (
                "share",
                json!({"name": "Data-sharing card", "specification_id": "sharing", "kind": "ADD_ON", "prices": price(4900), "sim_types": ["ESIM", "PSIM"], "placements": [{"channel": "web"}]}),
            ),
            (
                "plan",
                json!({"name": "Fri 5G", "specification_id": "mobile", "prices": price(29900), "binding_months": [0, 6], "sim_types": ["ESIM", "PSIM"], "add_ons": [{"offering_id": "share", "min": 0, "max": 4}], "placements": [{"channel": "web"}]}),
            ),
        ];
        for (offering, definition) in offerings {
            for _ in 0..100 {
                // The tenant reaches the ingress and the catalog processor within moments.
                let (status, _) = self
                    .call(
                        Method::PUT,
                        &host,
                        &format!("/v1/admin/offerings/{offering}"),
                        &admin,
                        definition.clone(),
                    )
                    .await;
                if status == StatusCode::OK {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let (status, body) = self
                .call(
                    Method::POST,
                    &host,
                    &format!("/v1/admin/offerings/{offering}/activate"),
                    &admin,
                    json!({}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "activating {offering}: {body}");
        }
        let base = 10_000_000 + (uuid::Uuid::new_v4().as_u128() % 80_000_000) as u64;
        let numbers: Vec<String> = (0..pool as u64)
            .map(|i| format!("+45{}", base + i))
            .collect();
        for chunk in numbers.chunks(1000) {
            let (status, body) = self
                .call(
                    Method::POST,
                    &host,
                    "/v1/admin/number-pool",
                    &admin,
                    json!({"numbers": chunk}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "pool: {body}");
            assert_eq!(
                body["imported"].as_array().map_or(0, Vec::len),
                chunk.len(),
                "pool: {body}"
            );
        }
        // Wait until the basket processor sells the plan (it follows the catalog).
        for attempt in 0.. {
            let shopper = Shopper::new(self.http.clone(), self.url.clone(), host.clone());
            if let Some((basket, token)) = shopper.create().await
                && shopper.port_in(&basket, &token, "probe").await == StatusCode::OK
            {
                break;
            }
            assert!(attempt < 100, "the basket processor never sold {id}'s plan");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (host, numbers)
    }
}

/// One shopper's HTTP calls.
struct Shopper {
    http: Client,
    url: String,
    host: String,
}

impl Shopper {
    fn new(http: Client, url: String, host: String) -> Self {
        Self { http, url, host }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Option<(StatusCode, Value, Option<String>)> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("host", &self.host);
        if let Some(token) = token {
            request = request.header("basket-token", token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.ok()?;
        let status = response.status();
        let token = response
            .headers()
            .get("basket-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Some((status, response.json().await.unwrap_or(Value::Null), token))
    }

    async fn create(&self) -> Option<(String, String)> {
        let (status, body, token) = self
            .send(
                Method::POST,
                "/v1/storefront/baskets",
                None,
                Some(json!({"channel": "web"})),
            )
            .await?;
        (status == StatusCode::CREATED).then(|| {
            (
                body["basket_id"].as_str().unwrap_or_default().to_owned(),
                token.unwrap_or_default(),
            )
        })
    }

    async fn port_in(&self, basket: &str, token: &str, line: &str) -> StatusCode {
        let body = json!({"line_id": line, "offering_id": "plan", "sim_type": "PSIM",
            "number": {"type": "port_in", "msisdn": "+4530123456", "current_operator": "Telia"}});
        self.send(
            Method::POST,
            &format!("/v1/storefront/baskets/{basket}/lines"),
            Some(token),
            Some(body),
        )
        .await
        .map_or(StatusCode::SERVICE_UNAVAILABLE, |r| r.0)
    }

    async fn new_number(
        &self,
        basket: &str,
        token: &str,
        line: &str,
        msisdn: &str,
    ) -> Option<(StatusCode, Value)> {
        let body = json!({"line_id": line, "offering_id": "plan", "sim_type": "ESIM",
            "number": {"type": "new_number", "msisdn": msisdn}});
        self.send(
            Method::POST,
            &format!("/v1/storefront/baskets/{basket}/lines"),
            Some(token),
            Some(body),
        )
        .await
        .map(|(s, b, _)| (s, b))
    }
}

/// Times one call; records its latency on success (`ok`), a failure otherwise.
async fn timed<T>(
    recorder: &mut Recorder,
    operation: &'static str,
    call: impl Future<Output = Option<T>>,
    ok: impl Fn(&T) -> bool,
) -> Option<T> {
    let started = Instant::now();
    let result = call.await;
    match &result {
        Some(value) if ok(value) => {
            recorder.add(operation, started.elapsed());
            result
        }
        _ => {
            recorder.fail(operation.to_owned());
            None
        }
    }
}

/// A random pause of 0.5–1.5 × `think`.
async fn think(think: Duration) {
    if think.is_zero() {
        return;
    }
    let factor = 0.5 + (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
    tokio::time::sleep(think.mul_f64(factor)).await;
}

/// One shopper's loop until `deadline`.
async fn shop(shopper: Shopper, deadline: Instant, pause: Duration) -> Recorder {
    let mut r = Recorder::default();
    let success = |x: &(StatusCode, Value, Option<String>)| x.0.is_success();
    // Shoppers arrive spread over one think time, not all in the same millisecond.
    think(pause).await;
    while Instant::now() < deadline {
        let Some((_, body, token)) = timed(
            &mut r,
            "create basket",
            shopper.send(
                Method::POST,
                "/v1/storefront/baskets",
                None,
                Some(json!({"channel": "web"})),
            ),
            success,
        )
        .await
        else {
            continue;
        };
        let basket = body["basket_id"].as_str().unwrap_or_default().to_owned();
        let token = token.unwrap_or_default();
        let path = format!("/v1/storefront/baskets/{basket}");
        think(pause).await;
        // Pick a number; a lost race means searching again.
        let mut held = false;
        for _ in 0..5 {
            let Some((_, found, _)) = timed(
                &mut r,
                "search numbers (read)",
                shopper.send(Method::GET, "/v1/storefront/numbers?random=1", None, None),
                success,
            )
            .await
            else {
                break;
            };
            let Some(msisdn) = found["numbers"][0].as_str().map(str::to_owned) else {
                r.fail("pool empty".into());
                break;
            };
            think(pause).await;
            let started = Instant::now();
            match shopper.new_number(&basket, &token, "main", &msisdn).await {
                Some((StatusCode::OK, _)) => {
                    r.add("add line, new number", started.elapsed());
                    held = true;
                    break;
                }
                Some((StatusCode::CONFLICT, body)) => {
                    r.add("add line, new number", started.elapsed());
                    r.fail(format!(
                        "number race lost ({})",
                        body["code"].as_str().unwrap_or("?")
                    ));
                }
                Some((status, body)) => {
                    r.fail(format!(
                        "add line, new number: {status} {}",
                        body["code"].as_str().unwrap_or("")
                    ));
                    break;
                }
                None => {
                    r.fail("add line, new number: no answer".into());
                    break;
                }
            }
        }
        if held {
            think(pause).await;
            let _ = timed(
                &mut r,
                "update line",
                shopper.send(
                    Method::PATCH,
                    &format!("{path}/lines/main"),
                    Some(&token),
                    Some(json!({"add_ons": [{"offering_id": "share", "quantity": 2}]})),
                ),
                success,
            )
            .await;
        }
        think(pause).await;
        let started = Instant::now();
        if shopper.port_in(&basket, &token, "second").await == StatusCode::OK {
            r.add("add line, port-in", started.elapsed());
            think(pause).await;
            let _ = timed(
                &mut r,
                "remove line",
                shopper.send(
                    Method::DELETE,
                    &format!("{path}/lines/second"),
                    Some(&token),
                    None,
                ),
                success,
            )
            .await;
        } else {
            r.fail("add line, port-in".into());
        }
        think(pause).await;
        let _ = timed(
            &mut r,
            "abandon basket",
            shopper.send(Method::DELETE, &path, Some(&token), None),
            success,
        )
        .await;
    }
    r
}

fn report(title: &str, recorders: &[Recorder], seconds: f64) {
    println!("\n{title}");
    println!("| operation | count | per second | p50 | p95 | p99 | max |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut merged: HashMap<&str, Vec<Duration>> = HashMap::new();
    let mut failures: HashMap<String, u64> = HashMap::new();
    for r in recorders {
        for (op, l) in &r.latencies {
            merged.entry(op).or_default().extend(l);
        }
        for (what, n) in &r.failures {
            *failures.entry(what.clone()).or_default() += n;
        }
    }
    let mut all_commands = Vec::new();
    let mut operations: Vec<&&str> = merged.keys().collect();
    operations.sort();
    for op in operations {
        let mut l = merged[*op].clone();
        l.sort();
        if COMMANDS.contains(op) {
            all_commands.extend(&l);
        }
        println!(
            "| {op} | {} | {:.0} | {} | {} | {} | {} |",
            l.len(),
            l.len() as f64 / seconds,
            ms(percentile(&l, 50.0)),
            ms(percentile(&l, 95.0)),
            ms(percentile(&l, 99.0)),
            ms(*l.last().unwrap_or(&Duration::ZERO))
        );
    }
    all_commands.sort();
    println!(
        "| **all basket commands** | {} | {:.0} | {} | {} | {} | {} |",
        all_commands.len(),
        all_commands.len() as f64 / seconds,
        ms(percentile(&all_commands, 50.0)),
        ms(percentile(&all_commands, 95.0)),
        ms(percentile(&all_commands, 99.0)),
        ms(*all_commands.last().unwrap_or(&Duration::ZERO))
    );
    let mut failures: Vec<_> = failures.into_iter().collect();
    failures.sort();
    for (what, n) in failures {
        println!("not counted above: {what}: {n}");
    }
}

/// Many shoppers race for a few numbers of one tenant at once; every number must go to
/// exactly one basket.
async fn contention(setup: &Setup, shoppers: usize, pool: usize) {
    let (host, numbers) = setup.tenant(999, pool).await;
    let mut baskets = Vec::new();
    for _ in 0..shoppers {
        let shopper = Shopper::new(setup.http.clone(), setup.url.clone(), host.clone());
        let (basket, token) = shopper.create().await.expect("basket");
        baskets.push((shopper, basket, token));
    }
    let winners: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, (shopper, basket, token)) in baskets.into_iter().enumerate() {
        let numbers = numbers.clone();
        let winners = winners.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let (mut won, mut refused, mut other) = (0u64, 0u64, 0u64);
            for k in 0..numbers.len() {
                let msisdn = &numbers[(i + k) % numbers.len()];
                let at = Instant::now();
                match shopper
                    .new_number(&basket, &token, &format!("l{k}"), msisdn)
                    .await
                {
                    Some((StatusCode::OK, _)) => {
                        won += 1;
                        winners
                            .lock()
                            .await
                            .entry(msisdn.clone())
                            .or_default()
                            .push(basket.clone());
                    }
                    Some((StatusCode::CONFLICT, _)) => refused += 1,
                    _ => other += 1,
                }
                latencies.push(at.elapsed());
            }
            (latencies, won, refused, other)
        }));
    }
    let mut latencies = Vec::new();
    let (mut won, mut refused, mut other) = (0, 0, 0);
    for task in tasks {
        let (l, w, r, o) = task.await.unwrap();
        latencies.extend(l);
        won += w;
        refused += r;
        other += o;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let winners = winners.lock().await;
    let doubly: Vec<_> = winners.iter().filter(|(_, b)| b.len() > 1).collect();
    println!(
        "\nContention: {shoppers} shoppers × {pool} numbers, every shopper tries every number at once"
    );
    println!(
        "attempts {} in {:.2} s; reserved {won}, refused (number_reserved) {refused}, other {other}",
        latencies.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "latency p50 {} p95 {} p99 {} max {}",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 95.0)),
        ms(percentile(&latencies, 99.0)),
        ms(*latencies.last().unwrap_or(&Duration::ZERO))
    );
    println!(
        "numbers reserved: {} of {pool}; reserved by more than one basket: {}",
        winners.len(),
        doubly.len()
    );
    assert!(doubly.is_empty(), "double allocation: {doubly:?}");
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let shoppers: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(500);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(30);
    let tenants: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(4);
    let think_ms: u64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let url = args
        .get(5)
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let pause = Duration::from_millis(think_ms);
    let config_dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config");
    let settings = tcom_ingress::Settings::load(&config_dir).expect("config/ loads");
    let http = Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(shoppers + 50)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let setup = Setup {
        http: http.clone(),
        url: url.clone(),
        auth: AdminAuth::new(&settings.auth),
    };
    // Enough numbers that shoppers rarely collide: contention is measured separately.
    let pool = (shoppers * 3 / tenants).max(50);
    let mut hosts = Vec::new();
    for index in 0..tenants {
        let (host, _) = setup.tenant(index, pool).await;
        println!("tenant {host}: {pool} numbers");
        hosts.push(host);
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..shoppers)
        .map(|i| {
            let shopper = Shopper::new(http.clone(), url.clone(), hosts[i % hosts.len()].clone());
            tokio::spawn(shop(shopper, deadline, pause))
        })
        .collect();
    let mut recorders = Vec::new();
    for worker in workers {
        recorders.push(worker.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    report(
        &format!(
            "{shoppers} shoppers over {tenants} tenants for {elapsed:.1} s, think time {think_ms} ms ±50 %"
        ),
        &recorders,
        elapsed,
    );
    contention(&setup, 100, 5).await;
}
