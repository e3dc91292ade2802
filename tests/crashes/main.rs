//! The purchase under crashes, on the real stack: the payments connector aborted right after
//! the provider acted and before the outcome was recorded, and the order processor killed
//! mid-order, each several times, while the test platform's own instances (same consumer
//! groups) take over what the dead one dropped. What must hold: every order ends
//! `completed`, with exactly one payment at the provider, captured once for the frozen amount.
//!
//! A test binary of its own: joining and leaving the platform's consumer groups makes them
//! rebalance, which the `it` tests should not have to wait through.

#[path = "../support/checkout_shop.rs"]
mod checkout_shop;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tcom_tests::{customer_token, platform, stack, unique};

use checkout_shop::{Provider, Shop, due_now};

/// A `platform_worker` child whose stderr lines the test can wait for.
struct Worker {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Worker {
    fn start(role: &str, env: &[(&str, String)]) -> Self {
        let stack = stack();
        let platform = platform();
        let mut command = Command::new(env!("CARGO_BIN_EXE_platform_worker"));
        command
            .env("ROLE", role)
            .env("KAFKA_BOOTSTRAP_SERVERS", &stack.kafka)
            .env("SCHEMA_REGISTRY_URL", &stack.registry_url)
            .env("REDIS_URL", &stack.redis_url)
            .env("STRIPE_URL", &platform.stripe_url)
            .env("ADYEN_URL", &platform.adyen_url)
            .env("SECRETS_DIR", &platform.secrets_dir)
            .env("GROUP_ID", &platform.payments_group)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("platform_worker starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `text`.
    fn wait_for_line(&mut self, text: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        if self.seen.iter().any(|l| l.contains(text)) {
            return true;
        }
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(text);
                    self.seen.push(line);
                    if found {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Places `count` orders (one customer and number each), paying each with a card.
async fn place_and_pay(shop: &Shop, from: usize, count: usize) -> Vec<(String, String)> {
    let mut orders = Vec::new();
    for i in from..from + count {
        let customer = customer_token(&shop.tenant, &format!("customer-{i}")).await;
        let basket = shop.ready_basket(&customer, &shop.numbers[i]).await;
        let checkout = shop.checkout(&customer, &basket, None).await;
        assert!(
            checkout.status == StatusCode::CREATED || checkout.status == StatusCode::ACCEPTED,
            "{} {}",
            checkout.status,
            checkout.body
        );
        orders.push((customer, basket));
    }
    orders
}

/// Pays every order once its payment exists (reading the order until it shows one).
async fn pay_all(shop: &Shop, orders: &[(String, String)]) {
    for (customer, order) in orders {
        let pending = shop
            .order_in(customer, order, "pending", Duration::from_secs(60))
            .await;
        shop.pay(&pending, "visa").await;
    }
}

async fn assert_paid_once(shop: &Shop, orders: &[(String, String)]) {
    for (customer, order) in orders {
        let completed = shop
            .order_in(customer, order, "completed", Duration::from_secs(90))
            .await;
        assert_eq!(
            completed["payment"][0]["capturedAmount"]["valueMinor"],
            due_now()
        );
        let ledger = shop.ledger(order).await;
        assert_eq!(
            ledger.len(),
            1,
            "exactly one payment for {order}: {ledger:?}"
        );
        assert_eq!(ledger[0]["amount_received"], due_now(), "{ledger:?}");
        assert_eq!(ledger[0]["amount_refunded"], 0, "{ledger:?}");
    }
}

#[tokio::test]
async fn a_payments_connector_dying_after_the_provider_acted_never_charges_twice() {
    const ROUNDS: usize = 3;
    const PER_ROUND: usize = 6;
    let shop = Shop::open(Provider::Stripe, 600, ROUNDS * PER_ROUND).await;
    let mut orders = Vec::new();
    let mut crashes = 0;
    for round in 0..ROUNDS {
        // A second instance joins the group and dies the first time it has called Stripe
        // (a create, or later a capture) and before it recorded the answer.
        let mut worker = Worker::start(
            "payments",
            &[(
                "TCOM_FAILPOINT",
                "payments.after_provider_call:1".to_owned(),
            )],
        );
        assert!(
            worker.wait_for_line("assigned partitions", Duration::from_secs(30)),
            "round {round}: the second connector never got partitions: {:?}",
            worker.seen
        );
        // Give the platform's own instance time to give up the partitions it lost.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let placed = place_and_pay_round(&shop, round * PER_ROUND, PER_ROUND).await;
        if worker.wait_for_line(
            "failpoint payments.after_provider_call reached",
            Duration::from_secs(30),
        ) {
            crashes += 1;
        }
        let _ = worker.exited();
        orders.extend(placed);
    }
    assert!(
        crashes >= ROUNDS - 1,
        "the connector was to die after calling the provider in (nearly) every round: {crashes} of {ROUNDS}"
    );
    assert_paid_once(&shop, &orders).await;
}

async fn place_and_pay_round(shop: &Shop, from: usize, count: usize) -> Vec<(String, String)> {
    let orders = place_and_pay(shop, from, count).await;
    pay_all(shop, &orders).await;
    orders
}

#[tokio::test]
async fn an_order_processor_killed_mid_order_loses_and_duplicates_nothing() {
    const ROUNDS: usize = 3;
    const PER_ROUND: usize = 4;
    let shop = Shop::open(Provider::Stripe, 600, ROUNDS * PER_ROUND).await;
    let instance = unique("orders-worker");
    let state_dir = std::env::temp_dir().join(unique("tcom-orders-worker"));
    let env = [
        ("INSTANCE_ID", instance.clone()),
        ("STATE_DIR", state_dir.display().to_string()),
    ];
    let mut orders = Vec::new();
    for round in 0..ROUNDS {
        // The same instance restarts each round (as a pod does), fencing its predecessor.
        let mut worker = Worker::start("orders", &env);
        assert!(
            worker.wait_for_line("assigned", Duration::from_secs(60)),
            "round {round}: the order worker never got partitions: {:?}",
            worker.seen
        );
        let placed = place_and_pay(&shop, round * PER_ROUND, PER_ROUND).await;
        // Pay half, then kill the worker in the middle of the others' payments.
        let (first, second) = placed.split_at(PER_ROUND / 2);
        pay_all(&shop, first).await;
        let paying = pay_all(&shop, second);
        let killing = async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            worker.kill();
        };
        tokio::join!(paying, killing);
        orders.extend(placed);
    }
    // The platform's own instance takes every partition back and finishes every order.
    assert_paid_once(&shop, &orders).await;
    let _ = std::fs::remove_dir_all(&state_dir);
}
