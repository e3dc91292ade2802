//! The legacy TCM simulator (`tcom tcm-sim`) seen from a client: started in-process on a free
//! port and driven over HTTP, its faults switched on through `/_sim/faults`, and what it
//! applied checked through `/_sim/ledger`.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tcom_connectors::tcm::tcm_sim;

const TENANT: &str = "nordlys";
const MSISDN: &str = "+4520304050";

/// A running simulator of its own.
struct Tcm {
    base: String,
    http: reqwest::Client,
}

impl Tcm {
    async fn start() -> Self {
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(tcm_sim::serve(
            "127.0.0.1:0".parse().unwrap(),
            std::future::pending(),
            move |address| {
                let _ = tx.send(address);
            },
        ));
        let base = format!("http://{}", rx.await.unwrap());
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        Self { base, http }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, body)
    }

    fn create(
        &self,
        path: &str,
        request_id: Option<&str>,
        body: &Value,
    ) -> reqwest::RequestBuilder {
        let request = self.http.post(self.url(path)).json(body);
        match request_id {
            Some(id) => request.header("X-Request-Id", id),
            None => request,
        }
    }

    async fn post(
        &self,
        path: &str,
        request_id: Option<&str>,
        body: &Value,
    ) -> (StatusCode, Value) {
        let response = self.create(path, request_id, body).send().await.unwrap();
        Self::answer(response).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        Self::answer(self.http.get(self.url(path)).send().await.unwrap()).await
    }

    async fn faults(&self, faults: Value) {
        let url = self.url("/_sim/faults");
        let response = self.http.post(url).json(&faults).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    async fn clear_faults(&self) {
        let response = self.http.delete(self.url("/_sim/faults")).send().await;
        assert_eq!(response.unwrap().status(), StatusCode::OK);
    }

    async fn ledger(&self) -> Value {
        let (status, ledger) = self.get("/_sim/ledger").await;
        assert_eq!(status, StatusCode::OK);
        ledger
    }

    /// Creates a customer of `tenant`; returns its id.
    async fn customer(&self, tenant: &str, request_id: &str) -> String {
        let (status, body) = self
            .post(
                "/tcm/v1/customers",
                Some(request_id),
                &customer_body(tenant),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["customerId"].as_str().unwrap().to_owned()
    }

    /// Creates a subscription; returns its id.
    async fn subscription(&self, body: &Value, request_id: &str) -> String {
        let (status, body) = self
            .post("/tcm/v1/subscriptions", Some(request_id), body)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["subscriptionId"].as_str().unwrap().to_owned()
    }
}

fn customer_body(tenant: &str) -> Value {
    json!({
        "externalRef": "cust-7f3a",
        "tenant": tenant,
        "name": "Freja Nielsen",
        "birthDate": "1990-03-14",
        "address": {"street": "Nørregade 1", "postalCode": "1165", "city": "København K", "country": "DK"},
    })
}

fn subscription_body(customer_id: &str, tenant: &str, msisdn: &str) -> Value {
    json!({
        "customerId": customer_id,
        "externalRef": format!("item-{msisdn}"),
        "tenant": tenant,
        "planCode": "FRI-100GB",
        "msisdn": msisdn,
        "iccid": "8945000000000000012",
        "simType": "PSIM",
        "bindingEndDate": "2026-09-30",
        "sharedDataSims": [{"iccid": "8945000000000000020"}],
    })
}

fn error_code(body: &Value) -> &str {
    body["errorCode"].as_str().unwrap_or_default()
}

fn is_timestamp(value: &Value) -> bool {
    let text = value.as_str().unwrap_or_default();
    text.len() == 20 && text.ends_with('Z') && text.as_bytes()[10] == b'T'
}

#[tokio::test]
async fn creates_a_customer_and_a_subscription() {
    let tcm = Tcm::start().await;
    let (status, customer) = tcm
        .post("/tcm/v1/customers", Some("r-1"), &customer_body(TENANT))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{customer}");
    assert_eq!(customer["customerId"], "C0000001");
    assert_eq!(customer["externalRef"], "cust-7f3a");
    assert_eq!(customer["address"]["postalCode"], "1165");
    assert_eq!(customer["email"], Value::Null, "absent members are null");
    assert!(is_timestamp(&customer["createdAt"]), "{customer}");
    assert_eq!(tcm.get("/tcm/v1/customers/C0000001").await.1, customer);

    let body = subscription_body("C0000001", TENANT, MSISDN);
    let (status, subscription) = tcm.post("/tcm/v1/subscriptions", Some("r-2"), &body).await;
    assert_eq!(status, StatusCode::CREATED, "{subscription}");
    assert_eq!(subscription["subscriptionId"], "S0000001");
    assert_eq!(subscription["status"], "ACTIVE");
    assert_eq!(subscription["simType"], "PSIM");
    assert_eq!(subscription["externalRef"], format!("item-{MSISDN}"));
    assert_eq!(
        subscription["sharedDataSims"][0]["iccid"],
        "8945000000000000020"
    );
    assert_eq!(subscription["terminatedAt"], Value::Null);
    assert!(is_timestamp(&subscription["activatedAt"]), "{subscription}");
    assert_eq!(
        tcm.get("/tcm/v1/subscriptions/S0000001").await.1,
        subscription
    );

    let customer_id = tcm.customer(TENANT, "r-3").await;
    assert_eq!(customer_id, "C0000002", "ids are sequential");
    let (status, missing) = tcm.get("/tcm/v1/subscriptions/S0000009").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&missing), "TCM-4040");
}

#[tokio::test]
async fn the_same_request_id_creates_once() {
    let tcm = Tcm::start().await;
    let customer = customer_body(TENANT);
    let first = tcm.post("/tcm/v1/customers", Some("c-1"), &customer).await;
    let again = tcm.post("/tcm/v1/customers", Some("c-1"), &customer).await;
    assert_eq!(first.0, StatusCode::CREATED);
    assert_eq!(again.0, StatusCode::OK);
    assert_eq!(again.1, first.1);

    let body = subscription_body("C0000001", TENANT, MSISDN);
    let first = tcm.post("/tcm/v1/subscriptions", Some("s-1"), &body).await;
    let again = tcm.post("/tcm/v1/subscriptions", Some("s-1"), &body).await;
    assert_eq!(first.0, StatusCode::CREATED);
    assert_eq!(again.0, StatusCode::OK);
    assert_eq!(again.1["subscriptionId"], "S0000001");

    let ledger = tcm.ledger().await;
    assert_eq!(ledger["customers"].as_array().unwrap().len(), 1);
    assert_eq!(ledger["subscriptions"].as_array().unwrap().len(), 1);
    assert_eq!(
        ledger["requests"]["c-1"],
        json!({"seen": 2, "created": "C0000001"})
    );
    assert_eq!(
        ledger["requests"]["s-1"],
        json!({"seen": 2, "created": "S0000001"})
    );

    // The same id for another request is a client bug TCM refuses, not a replay.
    let mut other = body.clone();
    other["planCode"] = json!("FRI-10GB");
    let (status, refused) = tcm.post("/tcm/v1/subscriptions", Some("s-1"), &other).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&refused), "TCM-4092");
    let (status, refused) = tcm.post("/tcm/v1/subscriptions", Some("c-1"), &body).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&refused), "TCM-4092");
    assert_eq!(
        tcm.ledger().await["subscriptions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn an_active_msisdn_refuses_another_request_id() {
    let tcm = Tcm::start().await;
    let customer = tcm.customer(TENANT, "c-1").await;
    let body = subscription_body(&customer, TENANT, MSISDN);
    tcm.subscription(&body, "s-1").await;

    let (status, refused) = tcm.post("/tcm/v1/subscriptions", Some("s-2"), &body).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&refused), "TCM-4091");
    assert_eq!(refused["errorMessage"], "MSISDN already active");

    // Terminated, the number is free again.
    let terminate = tcm.url("/tcm/v1/subscriptions/S0000001/terminate");
    let response = tcm.http.post(terminate).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(tcm.subscription(&body, "s-3").await, "S0000002");
    let ledger = tcm.ledger().await;
    assert_eq!(
        ledger["requests"]["s-2"],
        json!({"seen": 1, "created": null})
    );
}

#[tokio::test]
async fn a_create_needs_a_request_id() {
    let tcm = Tcm::start().await;
    let (status, refused) = tcm
        .post("/tcm/v1/customers", None, &customer_body(TENANT))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&refused), "TCM-4000");
    let body = subscription_body("C0000001", TENANT, MSISDN);
    let (status, refused) = tcm.post("/tcm/v1/subscriptions", None, &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&refused), "TCM-4000");
    let (status, _) = tcm.post("/tcm/v1/customers", Some(""), &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let ledger = tcm.ledger().await;
    assert_eq!(ledger["customers"], json!([]));
    assert_eq!(ledger["requests"], json!({}));
}

#[tokio::test]
async fn an_unknown_customer_is_422() {
    let tcm = Tcm::start().await;
    let other_tenants = tcm.customer("fjord", "c-1").await;
    let body = subscription_body(&other_tenants, TENANT, MSISDN);
    let (status, refused) = tcm.post("/tcm/v1/subscriptions", Some("s-1"), &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&refused), "TCM-4220");
    let unknown = subscription_body("C0000042", TENANT, MSISDN);
    let (status, _) = tcm
        .post("/tcm/v1/subscriptions", Some("s-1"), &unknown)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // A refused request created nothing: its id can be used once the customer exists.
    let customer = tcm.customer(TENANT, "c-2").await;
    let body = subscription_body(&customer, TENANT, MSISDN);
    assert_eq!(tcm.subscription(&body, "s-1").await, "S0000001");
}

#[tokio::test]
async fn invalid_bodies_are_400() {
    let tcm = Tcm::start().await;
    let customer = tcm.customer(TENANT, "c-1").await;
    let good = subscription_body(&customer, TENANT, MSISDN);
    let spoil = |member: &str, value: Value| {
        let mut body = good.clone();
        body[member] = value;
        body
    };
    let mut snake_case = good.clone();
    snake_case["plan_code"] = json!("FRI-100GB");
    let mut without_shared = good.clone();
    without_shared
        .as_object_mut()
        .unwrap()
        .remove("sharedDataSims");
    for (i, body) in [
        spoil("simType", json!("USIM")),
        spoil("msisdn", json!("20304050")),
        spoil("iccid", json!("12345")),
        spoil("bindingEndDate", json!("2026-02-30")),
        spoil("planCode", json!(" ")),
        snake_case,
        without_shared,
    ]
    .iter()
    .enumerate()
    {
        let id = format!("bad-{i}");
        let (status, refused) = tcm.post("/tcm/v1/subscriptions", Some(&id), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error_code(&refused), "TCM-4001", "{refused}");
    }
    let raw = tcm
        .http
        .post(tcm.url("/tcm/v1/customers"))
        .header("X-Request-Id", "raw")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    assert_eq!(tcm.ledger().await["subscriptions"], json!([]));
}

#[tokio::test]
async fn fail_next_answers_500_without_applying() {
    let tcm = Tcm::start().await;
    tcm.faults(json!({"fail_next": 2})).await;
    let body = customer_body(TENANT);
    for _ in 0..2 {
        let (status, failed) = tcm.post("/tcm/v1/customers", Some("c-1"), &body).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(error_code(&failed), "TCM-5000");
    }
    assert_eq!(
        tcm.ledger().await["requests"],
        json!({}),
        "never reached TCM"
    );
    let (status, _) = tcm.post("/tcm/v1/customers", Some("c-1"), &body).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn an_outage_is_the_load_balancers_html_page() {
    let tcm = Tcm::start().await;
    tcm.faults(json!({"outage": true})).await;
    for path in ["/tcm/v1/customers/C0000001", "/healthz", "/nothing-here"] {
        let response = tcm.http.get(tcm.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(response.headers()["retry-after"], "30");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(content_type.starts_with("text/html"), "{content_type}");
        let html = response.text().await.unwrap();
        assert!(
            html.contains("<html>") && html.contains("Unavailable"),
            "{html}"
        );
    }
    let create = tcm.create("/tcm/v1/customers", Some("c-1"), &customer_body(TENANT));
    let status = create.send().await.unwrap().status();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        tcm.ledger().await["customers"],
        json!([]),
        "/_sim still answers"
    );

    tcm.clear_faults().await;
    let (status, health) = tcm.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "UP");
}

#[tokio::test]
async fn the_rate_limit_answers_429_beyond_its_calls_per_second() {
    let tcm = Tcm::start().await;
    tcm.faults(json!({"rate_limit_per_second": 3})).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let url = tcm.url("/tcm/v1/subscriptions");
        let response = tcm.http.get(url).send().await.unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(response.headers()["retry-after"], "1");
            let (_, body) = Tcm::answer(response).await;
            assert_eq!(error_code(&body), "TCM-4290");
            statuses.push(429);
        } else {
            statuses.push(response.status().as_u16());
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, _) = tcm.get("/tcm/v1/subscriptions").await;
    assert_eq!(status, StatusCode::OK, "a new second, new calls");
    assert_eq!(tcm.get("/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn latency_delays_every_call() {
    let tcm = Tcm::start().await;
    tcm.faults(json!({"latency_ms": 300})).await;
    let started = Instant::now();
    let (status, _) = tcm.get("/tcm/v1/subscriptions").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    let (_, faults) = tcm.get("/_sim/faults").await;
    assert_eq!(faults["latency_ms"], 300);
}

#[tokio::test]
async fn timeout_next_hangs_until_the_client_gives_up() {
    let tcm = Tcm::start().await;
    tcm.faults(json!({"timeout_next": 1})).await;
    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let started = Instant::now();
    let error = impatient
        .get(tcm.url("/tcm/v1/subscriptions"))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let (status, _) = tcm.get("/tcm/v1/subscriptions").await;
    assert_eq!(status, StatusCode::OK, "only the next call hangs");
}

#[tokio::test]
async fn a_lost_answer_was_applied_and_a_retry_answers_it() {
    let tcm = Tcm::start().await;
    let customer = tcm.customer(TENANT, "c-1").await;
    tcm.faults(json!({"lose_response_next": 1})).await;
    let body = subscription_body(&customer, TENANT, MSISDN);
    let error = tcm
        .create("/tcm/v1/subscriptions", Some("s-1"), &body)
        .send()
        .await
        .unwrap_err();
    assert!(!error.is_timeout() && error.status().is_none(), "{error:?}");

    let ledger = tcm.ledger().await;
    assert_eq!(ledger["subscriptions"][0]["subscriptionId"], "S0000001");
    assert_eq!(
        ledger["requests"]["s-1"],
        json!({"seen": 1, "created": "S0000001"})
    );

    let (status, answer) = tcm.post("/tcm/v1/subscriptions", Some("s-1"), &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["subscriptionId"], "S0000001");
    let ledger = tcm.ledger().await;
    assert_eq!(ledger["subscriptions"].as_array().unwrap().len(), 1);
    assert_eq!(ledger["requests"]["s-1"]["seen"], 2);
}

#[tokio::test]
async fn pages_are_in_a_stable_order() {
    let tcm = Tcm::start().await;
    let ours = tcm.customer(TENANT, "c-1").await;
    let theirs = tcm.customer("fjord", "c-2").await;
    for n in 0..7 {
        let (customer, tenant) = if n % 3 == 2 {
            (&theirs, "fjord")
        } else {
            (&ours, TENANT)
        };
        let msisdn = format!("+452030400{n}");
        let body = subscription_body(customer, tenant, &msisdn);
        tcm.subscription(&body, &format!("s-{n}")).await;
    }
    // S0000003 and S0000006 are fjord's.
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["subscriptionId"].as_str().unwrap().to_owned())
            .collect()
    };
    let drift = tcm.url("/_sim/subscriptions/S0000001/drift");
    let body = json!({"status": "SUSPENDED"});
    tcm.http.post(drift).json(&body).send().await.unwrap();

    let mut walked = Vec::new();
    for page in 1..=3 {
        let path = format!("/tcm/v1/subscriptions?tenant={TENANT}&page={page}&pageSize=2");
        let (status, answer) = tcm.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["totalItems"], 5);
        assert_eq!(answer["totalPages"], 3);
        assert_eq!(answer["pageSize"], 2);
        walked.extend(ids(&answer));
    }
    assert_eq!(
        walked,
        ["S0000001", "S0000002", "S0000004", "S0000005", "S0000007"]
    );
    let (_, past_the_end) = tcm
        .get(&format!(
            "/tcm/v1/subscriptions?tenant={TENANT}&page=4&pageSize=2"
        ))
        .await;
    assert_eq!(past_the_end["items"], json!([]));

    let by_number = tcm
        .http
        .get(tcm.url("/tcm/v1/subscriptions"))
        .query(&[("msisdn", "+4520304002")])
        .send()
        .await
        .unwrap();
    let (_, by_number) = Tcm::answer(by_number).await;
    assert_eq!(ids(&by_number), ["S0000003"]);
    let (_, everything) = tcm.get("/tcm/v1/subscriptions?tenant=").await;
    assert_eq!(everything["totalItems"], 7);
    let (status, refused) = tcm.get("/tcm/v1/subscriptions?pageSize=1000").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&refused), "TCM-4001");
}

#[tokio::test]
async fn drift_changes_a_subscription_behind_the_platforms_back() {
    let tcm = Tcm::start().await;
    let customer = tcm.customer(TENANT, "c-1").await;
    let body = subscription_body(&customer, TENANT, MSISDN);
    tcm.subscription(&body, "s-1").await;
    let drift = |status: &str| {
        tcm.http
            .post(tcm.url("/_sim/subscriptions/S0000001/drift"))
            .json(&json!({ "status": status }))
            .send()
    };

    let (status, drifted) = Tcm::answer(drift("SUSPENDED").await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(drifted["status"], "SUSPENDED");
    let (_, seen) = tcm.get("/tcm/v1/subscriptions/S0000001").await;
    assert_eq!(seen["status"], "SUSPENDED");
    let (status, _) = tcm.post("/tcm/v1/subscriptions", Some("s-2"), &body).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a suspended subscription keeps its number"
    );

    let (_, drifted) = Tcm::answer(drift("TERMINATED").await.unwrap()).await;
    assert_eq!(drifted["status"], "TERMINATED");
    assert!(is_timestamp(&drifted["terminatedAt"]), "{drifted}");

    // Someone else takes the number; the old subscription cannot come back to it.
    tcm.subscription(&body, "s-3").await;
    let (status, refused) = Tcm::answer(drift("ACTIVE").await.unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&refused), "TCM-4091");
    let (status, refused) = Tcm::answer(drift("GONE").await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&refused), "TCM-4001");
}

#[tokio::test]
async fn terminate() {
    let tcm = Tcm::start().await;
    let customer = tcm.customer(TENANT, "c-1").await;
    let body = subscription_body(&customer, TENANT, MSISDN);
    tcm.subscription(&body, "s-1").await;
    let terminate = |id: &str| {
        let url = tcm.url(&format!("/tcm/v1/subscriptions/{id}/terminate"));
        tcm.http.post(url).send()
    };

    let (status, terminated) = Tcm::answer(terminate("S0000001").await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(terminated["status"], "TERMINATED");
    assert!(is_timestamp(&terminated["terminatedAt"]), "{terminated}");
    assert_eq!(
        tcm.get("/tcm/v1/subscriptions/S0000001").await.1,
        terminated
    );

    let (status, again) = Tcm::answer(terminate("S0000001").await.unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&again), "TCM-4093");
    let (status, unknown) = Tcm::answer(terminate("S0000404").await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&unknown), "TCM-4040");
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_tcm_errors() {
    let tcm = Tcm::start().await;
    let (status, body) = tcm.get("/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "TCM-4040");
    let response = tcm.http.delete(tcm.url("/tcm/v1/customers")).send().await;
    let (status, body) = Tcm::answer(response.unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(&body), "TCM-4050");
}
