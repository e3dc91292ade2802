//! The TCM client against the TCM simulator, with the circuit breaker in front of it, through
//! every failure the simulator can produce: a lost answer retried with the same request id
//! creates nothing twice, an outage opens the breaker and a probe closes it again, a refusal
//! is a refusal, a rate limit is not an outage, a hang is a timeout.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tcom_connectors::circuit_breaker::{Admission, BreakerSettings, CircuitBreaker};
use tcom_connectors::tcm::client::{NewCustomer, NewSubscription, TcmClient, TcmError};
use tcom_connectors::tcm::tcm_sim;

async fn start() -> (String, reqwest::Client) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(tcm_sim::serve(
        "127.0.0.1:0".parse().unwrap(),
        std::future::pending(),
        move |address| {
            let _ = tx.send(address);
        },
    ));
    let base = format!("http://{}", rx.await.unwrap());
    (base, reqwest::Client::builder().no_proxy().build().unwrap())
}

async fn faults(http: &reqwest::Client, base: &str, faults: Value) {
    let r = http
        .post(format!("{base}/_sim/faults"))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

async fn ledger(http: &reqwest::Client, base: &str) -> Value {
    http.get(format!("{base}/_sim/ledger"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn customer() -> NewCustomer {
    NewCustomer {
        external_ref: "cus_1".into(),
        tenant: "nordlys".into(),
        name: "Freja Nielsen".into(),
        birth_date: Some("1990-03-14".into()),
        email: None,
        address: None,
    }
}

fn subscription(customer_id: &str, msisdn: &str) -> NewSubscription {
    NewSubscription {
        customer_id: customer_id.into(),
        external_ref: "order-1/l1".into(),
        tenant: "nordlys".into(),
        plan_code: "fri-5g".into(),
        msisdn: msisdn.into(),
        iccid: Some("8945000000000000001".into()),
        sim_type: "ESIM".into(),
        binding_end_date: Some("2027-06-01".into()),
        shared_data_sims: Vec::new(),
    }
}

#[tokio::test]
async fn a_lost_answer_is_retried_with_the_same_request_id_and_creates_once() {
    let (base, http) = start().await;
    let tcm = TcmClient::new(&base, Duration::from_secs(5));
    let created = tcm.create_customer("req-c1", &customer()).await.unwrap();
    faults(&http, &base, json!({"lose_response_next": 1})).await;
    let lost = tcm
        .create_subscription("req-s1", &subscription(&created.customer_id, "+4520000001"))
        .await;
    assert!(matches!(&lost, Err(e) if e.is_outage()), "{lost:?}");
    let again = tcm
        .create_subscription("req-s1", &subscription(&created.customer_id, "+4520000001"))
        .await
        .unwrap();
    assert_eq!(again.status, "ACTIVE");
    let book = ledger(&http, &base).await;
    assert_eq!(book["subscriptions"].as_array().unwrap().len(), 1, "{book}");
    assert_eq!(
        book["requests"]["req-s1"]["created"],
        again.subscription_id.as_str()
    );

    // The same number under another request id: TCM refuses, and that is no outage.
    let duplicate = tcm
        .create_subscription("req-s2", &subscription(&created.customer_id, "+4520000001"))
        .await;
    match duplicate {
        Err(TcmError::Refused { code, .. }) => assert_eq!(code, "TCM-4091"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_outage_opens_the_breaker_and_a_probe_after_it_closes_it() {
    let (base, http) = start().await;
    let tcm = TcmClient::new(&base, Duration::from_secs(5));
    let mut breaker = CircuitBreaker::new(BreakerSettings {
        failure_threshold: 2,
        open_for: Duration::from_millis(200),
        close_after: 1,
    });
    faults(&http, &base, json!({"outage": true})).await;
    for _ in 0..2 {
        assert_eq!(breaker.admit(Instant::now()), Admission::Allowed);
        let failed = tcm.create_customer("req-c1", &customer()).await;
        let Err(e) = failed else {
            panic!("created during an outage")
        };
        assert!(e.is_outage(), "{e:?}");
        breaker.failed(Instant::now());
    }
    assert_eq!(breaker.state().name(), "open");
    let seen_before = ledger(&http, &base).await["requests"].clone();
    assert!(matches!(
        breaker.admit(Instant::now()),
        Admission::Refused { .. }
    ));
    // TCM back; once the open period passed, one probe goes and closes the breaker.
    faults(&http, &base, json!({"outage": false})).await;
    tokio::time::sleep(Duration::from_millis(220)).await;
    assert_eq!(breaker.admit(Instant::now()), Admission::Allowed);
    tcm.create_customer("req-c1", &customer()).await.unwrap();
    breaker.succeeded();
    assert_eq!(breaker.state().name(), "closed");
    assert_eq!(
        seen_before,
        json!({}),
        "nothing reached TCM during the outage"
    );
}

#[tokio::test]
async fn a_rate_limit_is_not_an_outage_and_a_hang_is_a_timeout() {
    let (base, http) = start().await;
    faults(&http, &base, json!({"rate_limit_per_second": 1})).await;
    let tcm = TcmClient::new(&base, Duration::from_millis(400));
    tcm.create_customer("req-c1", &customer()).await.unwrap();
    let limited = tcm.create_customer("req-c2", &customer()).await;
    match limited {
        Err(e @ TcmError::RateLimited { .. }) => assert!(!e.is_outage()),
        other => panic!("{other:?}"),
    }
    faults(
        &http,
        &base,
        json!({"rate_limit_per_second": null, "timeout_next": 1}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let started = Instant::now();
    let hung = tcm.create_customer("req-c3", &customer()).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    match hung {
        Err(TcmError::Unavailable(why)) => assert_eq!(why, "no answer in time"),
        other => panic!("{other:?}"),
    }
}
