//! The payment providers' own libraries as outside oracles: Stripe's `stripe` and Adyen's
//! `@adyen/api-library` for Node, pinned in `tests/oracles/package-lock.json` and run through
//! the small CLIs beside it (`stripe.js`, `adyen.js`). The client's checks
//! ([`stripe::verify_signature`], [`adyen::verify_hmac`]) and the simulators' signatures are
//! otherwise only tested against each other: here a third party, the providers' own code,
//! signs what ours verifies and verifies what our simulators sign.
//!
//! `scripts/stack up` installs the libraries (`npm ci` in `tests/oracles`); without them every
//! test here fails, it never skips.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use tcom_connectors::payments::{adyen, adyen_sim, stripe, stripe_sim};

const ORACLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/oracles");

/// Stripe's default tolerance, which the platform uses too.
const TOLERANCE: i64 = 300;

// ---- the oracles ----

/// Runs `node tests/oracles/<script> <args…>` with `stdin`; returns its stdout, trimmed.
fn oracle(script: &str, args: &[&str], stdin: &[u8]) -> String {
    for package in ["stripe", "@adyen/api-library"] {
        let installed = Path::new(ORACLES).join("node_modules").join(package);
        assert!(
            installed.join("package.json").is_file(),
            "{} is missing: run `scripts/stack up`, which installs the providers' Node \
             libraries (npm ci in tests/oracles) that these tests use as oracles",
            installed.display()
        );
    }
    let mut child = Command::new("node")
        .arg(Path::new(ORACLES).join(script))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `node` ({e}): run `scripts/stack up`"));
    let mut input = child.stdin.take().expect("stdin piped");
    input.write_all(stdin).expect("write the oracle's stdin");
    drop(input);
    let output = child.wait_with_output().expect("the oracle runs");
    assert!(
        output.status.success(),
        "node {script} {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8 output")
        .trim_end()
        .to_owned()
}

/// `stripe.webhooks.generateTestHeaderString({payload, secret, timestamp})`.
fn stripe_sign(payload: &[u8], secret: &str, timestamp: i64) -> String {
    oracle(
        "stripe.js",
        &["sign", secret, &timestamp.to_string()],
        payload,
    )
}

/// `stripe.webhooks.constructEvent(payload, header, secret, tolerance)`: `Ok` or its error.
fn stripe_library_verify(payload: &[u8], header: &str, secret: &str) -> Result<(), String> {
    let tolerance = TOLERANCE.to_string();
    let answer = oracle(
        "stripe.js",
        &["verify", secret, header, &tolerance],
        payload,
    );
    match answer.as_str() {
        "ok" => Ok(()),
        _ => Err(answer),
    }
}

/// `hmacValidator.calculateHmac(item, key)`.
fn adyen_sign(item: &Value, key: &str) -> String {
    oracle("adyen.js", &["sign", key], item.to_string().as_bytes())
}

/// `hmacValidator.validateHMAC(item, key)`.
fn adyen_library_verify(item: &Value, key: &str) -> bool {
    match oracle("adyen.js", &["verify", key], item.to_string().as_bytes()).as_str() {
        "ok" => true,
        "invalid" => false,
        other => panic!("adyen.js verify answered {other:?}"),
    }
}

/// Ours, on an item as the webhook carries it.
fn adyen_ours_verify(item: &Value, key: &str) -> bool {
    let parsed: adyen::NotificationItem =
        serde_json::from_value(item.clone()).expect("a NotificationRequestItem");
    adyen::verify_hmac(&parsed, key)
}

fn now() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    i64::try_from(since.as_secs()).expect("seconds fit")
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

// ---- a webhook receiver ----

/// What a receiver saw of one webhook: the `Stripe-Signature` header (if any) and the raw body.
#[derive(Debug, Clone)]
struct Delivery {
    signature: Option<String>,
    body: Bytes,
}

#[derive(Debug, Clone)]
struct Receiver {
    got: Arc<Mutex<Vec<Delivery>>>,
    answer: &'static str,
}

impl Receiver {
    /// A receiver on a free port answering 200 with `answer`; returns its URL (`…/hook`).
    async fn start(answer: &'static str) -> (String, Self) {
        let receiver = Self {
            got: Arc::default(),
            answer,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("address"));
        let app = Router::new()
            .route("/hook", post(Self::hook))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, receiver)
    }

    async fn hook(
        State(receiver): State<Self>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, &'static str) {
        let signature = headers
            .get("stripe-signature")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        receiver
            .got
            .lock()
            .expect("lock")
            .push(Delivery { signature, body });
        (StatusCode::OK, receiver.answer)
    }

    /// Waits (at most 15 s) until `done` holds for what arrived; returns it.
    async fn wait_until(&self, done: impl Fn(&[Delivery]) -> bool) -> Vec<Delivery> {
        for _ in 0..300 {
            let got = self.got.lock().expect("lock").clone();
            if done(&got) {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let got = self.got.lock().expect("lock").clone();
        let bodies: Vec<_> = got
            .iter()
            .map(|d| String::from_utf8_lossy(&d.body).into_owned())
            .collect();
        panic!("the expected webhooks did not arrive within 15 s; got {bodies:#?}");
    }
}

/// Starts a simulator's `serve` on a free port; returns its base URL.
async fn start_sim<F, S>(serve: S) -> String
where
    S: FnOnce(SocketAddr, std::future::Pending<()>, Box<dyn FnOnce(SocketAddr) + Send>) -> F,
    F: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let listen = "127.0.0.1:0".parse().expect("address");
    let on_bound: Box<dyn FnOnce(SocketAddr) + Send> = Box::new(move |address| {
        let _ = tx.send(address);
    });
    tokio::spawn(serve(listen, std::future::pending(), on_bound));
    format!("http://{}", rx.await.expect("simulator bound"))
}

// ---- Stripe ----

const STRIPE_SECRET: &str = "whsec_oracle_5eCr3t";

fn stripe_event(amount: i64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": "evt_1OracleTest",
        "object": "event",
        "api_version": "2024-06-20",
        "created": 1_760_000_000,
        "type": "payment_intent.amount_capturable_updated",
        "livemode": false,
        "data": {"object": {
            "id": "pi_1OracleTest",
            "object": "payment_intent",
            "amount": amount,
            "currency": "dkk",
            "status": "requires_capture",
            "metadata": {"order_id": "o-1", "tenant_id": "t-1", "attempt": "1"},
            "description": "Order «1»: 2 × SIM, æøå",
        }},
    }))
    .expect("JSON")
}

/// A header signed by Stripe's library, then checked by ours and by the library, case by case:
/// both must give the expected answer.
#[test]
fn stripe_signatures_ours_and_the_library_agree() {
    let payload = stripe_event(14_900);
    let now = now();
    let fresh = stripe_sign(&payload, STRIPE_SECRET, now);
    let (_, fresh_v1) = fresh.split_once(",v1=").expect("t=…,v1=…");
    let old = stripe_sign(&payload, STRIPE_SECRET, now - 301);
    let recent = stripe_sign(&payload, STRIPE_SECRET, now - 240);
    let other = stripe_sign(&payload, "whsec_other", now);
    let (_, other_v1) = other.split_once(",v1=").expect("t=…,v1=…");
    // A secret being rolled: Stripe signs with the old and the new secret at once.
    let rolled = format!("t={now},v1={other_v1},v1={fresh_v1}");

    let tampered = stripe_event(14_901);
    let cases: [(&str, &[u8], &str, &str, bool); 7] = [
        ("as signed", &payload, &fresh, STRIPE_SECRET, true),
        ("signed 240 s ago", &payload, &recent, STRIPE_SECRET, true),
        (
            "two v1 signatures, one ours",
            &payload,
            &rolled,
            STRIPE_SECRET,
            true,
        ),
        ("payload changed", &tampered, &fresh, STRIPE_SECRET, false),
        ("wrong secret", &payload, &fresh, "whsec_wrong", false),
        ("signed 301 s ago", &payload, &old, STRIPE_SECRET, false),
        (
            "signed with another secret",
            &payload,
            &other,
            STRIPE_SECRET,
            false,
        ),
    ];
    for (name, body, header, secret, accepted) in cases {
        let ours = stripe::verify_signature(header, body, &[secret], now, TOLERANCE);
        let library = stripe_library_verify(body, header, secret);
        assert_eq!(
            ours.is_ok(),
            accepted,
            "{name}: ours answered {ours:?} (header {header})"
        );
        assert_eq!(
            library.is_ok(),
            accepted,
            "{name}: Stripe's library answered {library:?} (header {header})"
        );
        if accepted {
            assert_eq!(ours, Ok(header_timestamp(header)), "{name}");
        }
    }
    // The library's header is exactly `t=<timestamp>,v1=<hex>`.
    assert!(fresh.starts_with(&format!("t={now},v1=")), "{fresh}");
}

/// Where the two differ, on purpose: Stripe's library only refuses timestamps too far in the
/// past; ours also refuses one too far ahead of its clock (`SignatureError::Stale`).
#[test]
fn stripe_a_timestamp_ahead_of_the_clock_only_ours_refuses() {
    let payload = stripe_event(14_900);
    let now = now();
    let ahead = stripe_sign(&payload, STRIPE_SECRET, now + 301);
    assert_eq!(
        stripe::verify_signature(&ahead, &payload, &[STRIPE_SECRET], now, TOLERANCE),
        Err(stripe::SignatureError::Stale)
    );
    assert_eq!(
        stripe_library_verify(&payload, &ahead, STRIPE_SECRET),
        Ok(())
    );
}

fn header_timestamp(header: &str) -> i64 {
    header
        .split(',')
        .find_map(|item| item.strip_prefix("t="))
        .and_then(|t| t.parse().ok())
        .expect("a timestamp")
}

async fn stripe_post(base: &str, sk: &str, path: &str, form: &[(&str, &str)]) -> Value {
    let response = http()
        .post(format!("{base}{path}"))
        .bearer_auth(sk)
        .form(form)
        .send()
        .await
        .expect("simulator reachable");
    let status = response.status();
    let body: Value = response.json().await.expect("JSON");
    assert!(status.is_success(), "POST {path}: {status} {body}");
    body
}

/// Every webhook the Stripe simulator sends verifies with Stripe's own `constructEvent`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_simulator_webhooks_verify_with_the_library() {
    let base = start_sim(stripe_sim::serve).await;
    let sk = format!("sk_test_{}", uuid::Uuid::new_v4().simple());
    let (url, receiver) = Receiver::start("").await;
    let endpoint = stripe_post(
        &base,
        &sk,
        "/v1/webhook_endpoints",
        &[
            ("url", url.as_str()),
            ("enabled_events[]", "*"),
            ("secret", STRIPE_SECRET),
        ],
    )
    .await;
    assert_eq!(endpoint["secret"], STRIPE_SECRET);

    let intent = stripe_post(
        &base,
        &sk,
        "/v1/payment_intents",
        &[
            ("amount", "14900"),
            ("currency", "dkk"),
            ("capture_method", "manual"),
            ("description", "Order «o-1»: æøå & more"),
            ("metadata[order_id]", "o-1"),
        ],
    )
    .await;
    let id = intent["id"].as_str().expect("intent id");
    let confirm = format!("/v1/payment_intents/{id}/confirm");
    let confirmed = stripe_post(&base, &sk, &confirm, &[("payment_method", "pm_card_visa")]).await;
    assert_eq!(confirmed["status"], "requires_capture", "{confirmed}");
    let capture = format!("/v1/payment_intents/{id}/capture");
    stripe_post(&base, &sk, &capture, &[]).await;
    stripe_post(
        &base,
        &sk,
        "/v1/refunds",
        &[("payment_intent", id), ("amount", "4900")],
    )
    .await;

    let expected = [
        "payment_intent.created",
        "payment_intent.amount_capturable_updated",
        "payment_intent.succeeded",
        "charge.refunded",
    ];
    let types = |deliveries: &[Delivery]| -> Vec<String> {
        deliveries
            .iter()
            .map(|d| {
                let event: Value = serde_json::from_slice(&d.body).expect("JSON event");
                event["type"].as_str().unwrap_or_default().to_owned()
            })
            .collect()
    };
    let deliveries = receiver
        .wait_until(|got| {
            let seen = types(got);
            expected.iter().all(|e| seen.iter().any(|s| s == e))
        })
        .await;
    for delivery in &deliveries {
        let header = delivery.signature.as_deref().expect("Stripe-Signature");
        let event = String::from_utf8_lossy(&delivery.body);
        assert_eq!(
            stripe_library_verify(&delivery.body, header, STRIPE_SECRET),
            Ok(()),
            "Stripe's library refuses the simulator's webhook {event}"
        );
        assert!(
            stripe::verify_signature(header, &delivery.body, &[STRIPE_SECRET], now(), TOLERANCE)
                .is_ok(),
            "ours refuses the simulator's webhook {event}"
        );
        // And both refuse it under another secret.
        assert!(stripe_library_verify(&delivery.body, header, "whsec_wrong").is_err());
    }
}

// ---- Adyen ----

/// 64 hex characters, as the Customer Area shows an HMAC key.
const ADYEN_KEY: &str = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056";

fn adyen_items() -> Vec<(&'static str, Value)> {
    vec![
        (
            "AUTHORISATION success",
            json!({
                "additionalData": {"authCode": "074687", "cardSummary": "1111",
                                   "recurring.recurringDetailReference": "M5N7TQ4TG5PFWR50"},
                "amount": {"value": 12_900, "currency": "DKK"},
                "eventCode": "AUTHORISATION",
                "eventDate": "2025-03-01T12:00:00+01:00",
                "merchantAccountCode": "TestMerchantECOM",
                "merchantReference": "order-1",
                "pspReference": "QFQTPCQ8HXSKGK82",
                "reason": "074687:1111:03/2030",
                "success": "true",
                "paymentMethod": "visa",
                "operations": ["CANCEL", "CAPTURE", "REFUND"],
            }),
        ),
        (
            "AUTHORISATION refused",
            json!({
                "amount": {"value": 12_900, "currency": "DKK"},
                "eventCode": "AUTHORISATION",
                "eventDate": "2025-03-01T12:00:00+01:00",
                "merchantAccountCode": "TestMerchantECOM",
                "merchantReference": "order-2",
                "pspReference": "V4HZ4RBFJGXXGN82",
                "reason": "Refused",
                "success": "false",
                "paymentMethod": "mc",
            }),
        ),
        (
            "CAPTURE with originalReference",
            json!({
                "amount": {"value": 12_900, "currency": "DKK"},
                "eventCode": "CAPTURE",
                "eventDate": "2025-03-01T12:05:00+01:00",
                "merchantAccountCode": "TestMerchantECOM",
                "merchantReference": "order-1",
                "originalReference": "QFQTPCQ8HXSKGK82",
                "pspReference": "JVBXGSDM53RZNN82",
                "success": "true",
                "paymentMethod": "visa",
            }),
        ),
        (
            "merchantReference with colons",
            json!({
                "amount": {"value": 4_900, "currency": "DKK"},
                "eventCode": "REFUND",
                "eventDate": "2025-03-02T09:00:00+01:00",
                "merchantAccountCode": "TestMerchantECOM",
                "merchantReference": "tenant-a:order-1:refund-1",
                "originalReference": "QFQTPCQ8HXSKGK82",
                "pspReference": "LZ3Q7T3M2KJ3NN82",
                "success": "true",
            }),
        ),
    ]
}

/// The library signs, ours verifies; a tampered amount is refused by both.
#[test]
fn adyen_hmacs_ours_and_the_library_agree() {
    // The oracle itself, on the fixture of Adyen's own libraries.
    let fixture = json!({
        "amount": {"value": 1130, "currency": "EUR"},
        "pspReference": "7914073381342284",
        "eventCode": "AUTHORISATION",
        "merchantAccountCode": "TestMerchant",
        "merchantReference": "TestPayment-1407325143704",
        "success": "true",
    });
    assert_eq!(
        adyen_sign(&fixture, ADYEN_KEY),
        "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="
    );

    for (name, item) in adyen_items() {
        let signature = adyen_sign(&item, ADYEN_KEY);
        let mut signed = item.clone();
        signed["additionalData"]["hmacSignature"] = json!(signature);
        assert!(
            adyen_library_verify(&signed, ADYEN_KEY),
            "{name}: the library refuses its own signature"
        );
        assert!(
            adyen_ours_verify(&signed, ADYEN_KEY),
            "{name}: ours refuses the HMAC Adyen's library computed ({signature})"
        );

        let mut tampered = signed.clone();
        let value = tampered["amount"]["value"].as_i64().expect("value");
        tampered["amount"]["value"] = json!(value + 1);
        assert!(
            !adyen_library_verify(&tampered, ADYEN_KEY),
            "{name}: the library accepts a tampered amount"
        );
        assert!(
            !adyen_ours_verify(&tampered, ADYEN_KEY),
            "{name}: ours accepts a tampered amount"
        );

        let other_key = ADYEN_KEY.replace('4', "5");
        assert!(!adyen_library_verify(&signed, &other_key), "{name}");
        assert!(!adyen_ours_verify(&signed, &other_key), "{name}");
    }
}

const ADYEN_API_KEY: &str = "AQEyhmfxOracleTestKey";
const ADYEN_MERCHANT: &str = "OracleMerchantECOM";

async fn adyen_post(url: &str, body: &Value) -> Value {
    let response = http()
        .post(url)
        .header("X-API-Key", ADYEN_API_KEY)
        .json(body)
        .send()
        .await
        .expect("simulator reachable");
    let status = response.status();
    let answer: Value = response.json().await.expect("JSON");
    assert!(status.is_success(), "POST {url}: {status} {answer}");
    answer
}

/// Every notification the Adyen simulator sends validates with Adyen's own `validateHMAC`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adyen_simulator_notifications_validate_with_the_library() {
    let base = start_sim(adyen_sim::serve).await;
    let (url, receiver) = Receiver::start("[accepted]").await;
    let hooks = format!("{base}/v3/merchants/{ADYEN_MERCHANT}/webhooks");
    let webhook = adyen_post(
        &hooks,
        &json!({"url": url, "type": "standard", "active": true,
                "communicationFormat": "json"}),
    )
    .await;
    let id = webhook["id"].as_str().expect("webhook id");
    let generated = adyen_post(&format!("{hooks}/{id}/generateHmac"), &json!({})).await;
    let key = generated["hmacKey"].as_str().expect("hmacKey").to_owned();

    let session = adyen_post(
        &format!("{base}/v71/sessions"),
        &json!({
            "merchantAccount": ADYEN_MERCHANT,
            "amount": {"value": 12_900, "currency": "DKK"},
            "reference": "tenant-a:order-1",
            "returnUrl": "https://shop.example/return?step=paid",
            "shopperReference": "customer-1",
            "mode": "hosted",
            "additionalData": {"manualCapture": "true"},
        }),
    )
    .await;
    let session_id = session["id"].as_str().expect("session id");
    let paid = http()
        .post(format!("{base}/_sim/checkout/{session_id}"))
        .form(&[("outcome", "authorise")])
        .send()
        .await
        .expect("simulator reachable");
    assert!(
        paid.status().is_success() || paid.status().is_redirection(),
        "paying: {}",
        paid.status()
    );

    let items_of = |deliveries: &[Delivery]| -> Vec<Value> {
        deliveries
            .iter()
            .flat_map(|d| {
                let body: Value = serde_json::from_slice(&d.body).expect("JSON notification");
                body["notificationItems"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .map(|wrapper| wrapper["NotificationRequestItem"].clone())
            .collect()
    };
    let has = |deliveries: &[Delivery], code: &str| {
        items_of(deliveries).iter().any(|i| i["eventCode"] == code)
    };
    let got = receiver.wait_until(|got| has(got, "AUTHORISATION")).await;
    let authorisation = items_of(&got)
        .into_iter()
        .find(|i| i["eventCode"] == "AUTHORISATION")
        .expect("AUTHORISATION");
    assert_eq!(authorisation["success"], "true", "{authorisation}");
    let psp = authorisation["pspReference"]
        .as_str()
        .expect("pspReference");

    // A capture and a refund whose references (the webhooks' merchantReference) hold colons.
    for (operation, reference, value) in [
        ("captures", "tenant-a:order-1:capture-1", 12_900),
        ("refunds", "tenant-a:order-1:refund-1", 4_900),
    ] {
        adyen_post(
            &format!("{base}/v71/payments/{psp}/{operation}"),
            &json!({"merchantAccount": ADYEN_MERCHANT, "reference": reference,
                    "amount": {"value": value, "currency": "DKK"}}),
        )
        .await;
    }
    let got = receiver
        .wait_until(|got| has(got, "CAPTURE") && has(got, "REFUND"))
        .await;

    let items = items_of(&got);
    assert!(items.len() >= 3, "{items:#?}");
    for item in &items {
        assert!(
            item["additionalData"]["hmacSignature"].is_string(),
            "unsigned notification {item}"
        );
        assert!(
            adyen_library_verify(item, &key),
            "Adyen's library refuses the simulator's notification {item}"
        );
        assert!(
            adyen_ours_verify(item, &key),
            "ours refuses the simulator's notification {item}"
        );
    }
    let capture = items
        .iter()
        .find(|i| i["eventCode"] == "CAPTURE")
        .expect("CAPTURE");
    assert_eq!(capture["originalReference"], psp);
    assert_eq!(capture["merchantReference"], "tenant-a:order-1:capture-1");
}
