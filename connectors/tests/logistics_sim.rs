//! The SIM logistics simulator (`tcom logistics-sim`) driven through the platform's client
//! and raw HTTP: started in-process on a free port, parcels moved along through
//! `/_sim/shipments/{id}/advance`, faults switched on through `/_sim/faults`, and what it
//! created checked through `/_sim/ledger`.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tcom_connectors::logistics::client::{
    LogisticsClient, LogisticsError, LogisticsSettings, NewShipment, Recipient, ShipmentItem,
    ShipmentStatus,
};
use tcom_connectors::logistics::logistics_sim;

/// A running simulator of its own.
struct House {
    base: String,
    http: reqwest::Client,
}

impl House {
    async fn start() -> Self {
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(logistics_sim::serve(
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

    fn client(&self) -> LogisticsClient {
        LogisticsClient::new(&self.base, "test-token", Duration::from_secs(5))
    }

    async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, body)
    }

    async fn create(&self, key: Option<&str>, body: &Value) -> (StatusCode, Value) {
        let mut request = self
            .http
            .post(self.url("/v1/shipments"))
            .bearer_auth("test-token")
            .json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        Self::answer(request.send().await.unwrap()).await
    }

    async fn advance(&self, id: &str, status: &str) -> (StatusCode, Value) {
        let url = self.url(&format!("/_sim/shipments/{id}/advance"));
        let body = json!({ "status": status });
        Self::answer(self.http.post(url).json(&body).send().await.unwrap()).await
    }

    async fn faults(&self, faults: Value) {
        let url = self.url("/_sim/faults");
        let response = self.http.post(url).json(&faults).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    async fn ledger(&self) -> Value {
        let response = self.http.get(self.url("/_sim/ledger")).send().await;
        let (status, ledger) = Self::answer(response.unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        ledger
    }
}

fn shipment_body(reference: &str, quantity: u32) -> Value {
    json!({
        "reference": reference,
        "tenant": "nordlys",
        "recipient": {"name": "Freja Nielsen", "street": "Nørregade 1", "postalCode": "1165",
                      "city": "København K", "country": "DK"},
        "items": [{"sku": "PSIM", "quantity": quantity}],
    })
}

fn new_shipment(reference: &str, quantity: u32) -> NewShipment {
    NewShipment {
        reference: reference.to_owned(),
        tenant: "nordlys".to_owned(),
        recipient: Recipient {
            name: "Freja Nielsen".to_owned(),
            street: "Nørregade 1".to_owned(),
            postal_code: "1165".to_owned(),
            city: "København K".to_owned(),
            country: "DK".to_owned(),
        },
        items: vec![ShipmentItem::sims(quantity)],
    }
}

fn luhn_valid(number: &str) -> bool {
    let sum: u32 = number
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let twice = d * 2;
                if twice > 9 { twice - 9 } else { twice }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn code(error: &LogisticsError) -> &str {
    match error {
        LogisticsError::Refused { code, .. } => code,
        other => panic!("not refused: {other:?}"),
    }
}

#[tokio::test]
async fn a_shipment_is_created_with_an_iccid_per_sim() {
    let house = House::start().await;
    let client = house.client();
    let shipment = client
        .create_shipment("key-1", &new_shipment("nordlys:o-1:l1", 3))
        .await
        .unwrap();
    assert_eq!(shipment.shipment_id, "SHP0000001");
    assert_eq!(shipment.reference, "nordlys:o-1:l1");
    assert_eq!(shipment.status, ShipmentStatus::Created);
    assert_eq!(shipment.iccids.len(), 3, "one per SIM");
    for iccid in &shipment.iccids {
        assert_eq!(iccid.len(), 19, "{iccid}");
        assert!(iccid.starts_with("8945"), "{iccid}");
        assert!(luhn_valid(iccid), "{iccid}");
    }
    let distinct: std::collections::HashSet<&String> = shipment.iccids.iter().collect();
    assert_eq!(distinct.len(), 3);
    assert!(
        shipment.tracking_number.starts_with("RR") && shipment.tracking_number.ends_with("DK"),
        "{}",
        shipment.tracking_number
    );
    assert_eq!(shipment.events.len(), 1);
    assert_eq!(shipment.events[0].seq, 1);
    assert_eq!(shipment.events[0].status, ShipmentStatus::Created);
    assert_eq!(shipment.created_at.len(), 20, "{}", shipment.created_at);
    assert_eq!(client.shipment("SHP0000001").await.unwrap(), shipment);

    let second = client
        .create_shipment("key-2", &new_shipment("nordlys:o-2:l1", 1))
        .await
        .unwrap();
    assert_eq!(second.shipment_id, "SHP0000002");
    assert!(
        !shipment.iccids.contains(&second.iccids[0]),
        "never the same card twice"
    );
    assert_ne!(second.tracking_number, shipment.tracking_number);

    let (status, raw) = House::answer(
        house
            .http
            .get(house.url("/v1/shipments/SHP0000001"))
            .bearer_auth("t")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(raw["tenant"], "nordlys");
    assert_eq!(raw["recipient"]["postalCode"], "1165");
    assert_eq!(raw["items"], json!([{"sku": "PSIM", "quantity": 3}]));

    let missing = client.shipment("SHP0000009").await.unwrap_err();
    assert_eq!(code(&missing), "not_found");
    assert!(!missing.is_outage());
}

#[tokio::test]
async fn the_same_key_creates_once() {
    let house = House::start().await;
    let body = shipment_body("nordlys:o-1:l1", 2);
    let (first_status, first) = house.create(Some("k-1"), &body).await;
    assert_eq!(first_status, StatusCode::CREATED, "{first}");
    let (again_status, again) = house.create(Some("k-1"), &body).await;
    assert_eq!(again_status, StatusCode::OK);
    assert_eq!(again, first);

    let ledger = house.ledger().await;
    assert_eq!(ledger["shipments"].as_array().unwrap().len(), 1);
    assert_eq!(
        ledger["requests"]["k-1"],
        json!({"seen": 2, "created": "SHP0000001"})
    );

    // The same key for another shipment is a client bug, refused; nothing is created.
    let other = shipment_body("nordlys:o-1:l2", 2);
    let (status, refused) = house.create(Some("k-1"), &other).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(refused["code"], "idempotency_key_reused");
    let client = house.client();
    let refused = client
        .create_shipment("k-1", &new_shipment("nordlys:o-1:l2", 2))
        .await
        .unwrap_err();
    assert_eq!(code(&refused), "idempotency_key_reused");
    // The client's own body for the first key is the same request: the same shipment.
    let replay = client
        .create_shipment("k-1", &new_shipment("nordlys:o-1:l1", 2))
        .await
        .unwrap();
    assert_eq!(replay.shipment_id, "SHP0000001");
    let ledger = house.ledger().await;
    assert_eq!(ledger["shipments"].as_array().unwrap().len(), 1);
    assert_eq!(ledger["requests"]["k-1"]["seen"], 5);
}

#[tokio::test]
async fn a_create_needs_a_token_a_key_and_a_valid_body() {
    let house = House::start().await;
    let body = shipment_body("nordlys:o-1:l1", 1);
    let response = house
        .http
        .post(house.url("/v1/shipments"))
        .header("Idempotency-Key", "k-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let (status, refused) = house.create(None, &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refused["code"], "idempotency_key_required");
    assert_eq!(house.ledger().await["requests"], json!({}));

    let mut bad = body.clone();
    bad["recipient"]
        .as_object_mut()
        .unwrap()
        .remove("postalCode");
    bad["recipient"]["country"] = json!("Denmark");
    bad["items"] = json!([{"sku": "PSIM", "quantity": 11}, {"sku": "ESIM", "quantity": 1}]);
    let (status, refused) = house.create(Some("k-1"), &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["code"], "validation_failed");
    let fields: Vec<&str> = refused["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "recipient.postalCode",
            "recipient.country",
            "items[0].quantity",
            "items[1].sku"
        ]
    );
    let (status, refused) = house.create(Some("k-1"), &json!({"items": []})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused["fields"].as_array().unwrap().len(), 4, "{refused}");
    let response = house
        .http
        .post(house.url("/v1/shipments"))
        .bearer_auth("t")
        .header("Idempotency-Key", "k-1")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let client = house.client();
    let mut invalid = new_shipment("nordlys:o-1:l1", 1);
    invalid.recipient.city = " ".to_owned();
    match client.create_shipment("k-1", &invalid).await {
        Err(LogisticsError::Refused { code, fields, .. }) => {
            assert_eq!(code, "validation_failed");
            assert_eq!(fields.len(), 1);
            assert_eq!(fields[0].field, "recipient.city");
        }
        other => panic!("{other:?}"),
    }
    // Refused requests created nothing: the key still creates.
    let (status, _) = house.create(Some("k-1"), &body).await;
    assert_eq!(status, StatusCode::CREATED);
    let ledger = house.ledger().await;
    assert_eq!(ledger["shipments"].as_array().unwrap().len(), 1);
    assert_eq!(
        ledger["requests"]["k-1"],
        json!({"seen": 5, "created": "SHP0000001"})
    );
}

#[tokio::test]
async fn a_parcel_is_tracked_until_it_comes_back() {
    let house = House::start().await;
    let client = house.client();
    let id = client
        .create_shipment("k-1", &new_shipment("nordlys:o-1:l1", 1))
        .await
        .unwrap()
        .shipment_id;
    assert!(client.events_after(&id, 1).await.unwrap().is_empty());

    let (status, refused) = house.advance(&id, "delivered").await;
    assert_eq!(status, StatusCode::CONFLICT, "not shipped yet");
    assert_eq!(refused["code"], "invalid_transition");
    let (status, refused) = house.advance(&id, "returned").await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");

    let (status, shipped) = house.advance(&id, "shipped").await;
    assert_eq!(status, StatusCode::OK, "{shipped}");
    assert_eq!(shipped["status"], "shipped");
    let (status, _) = house.advance(&id, "shipped").await;
    assert_eq!(status, StatusCode::CONFLICT, "shipped twice");
    let events = client.events_after(&id, 1).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].seq, events[0].status),
        (2, ShipmentStatus::Shipped)
    );

    assert_eq!(house.advance(&id, "delivered").await.0, StatusCode::OK);
    assert_eq!(house.advance(&id, "returned").await.0, StatusCode::OK);
    for after_the_end in ["shipped", "delivered", "returned"] {
        let (status, refused) = house.advance(&id, after_the_end).await;
        assert_eq!(
            status,
            StatusCode::CONFLICT,
            "{after_the_end} after returned"
        );
        assert_eq!(refused["code"], "invalid_transition");
    }
    let (status, refused) = house.advance(&id, "created").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused["fields"][0]["field"], "status");
    assert_eq!(
        house.advance("SHP0000404", "shipped").await.0,
        StatusCode::NOT_FOUND
    );

    let all = client.events_after(&id, 0).await.unwrap();
    let seen: Vec<(u64, ShipmentStatus)> = all.iter().map(|e| (e.seq, e.status)).collect();
    assert_eq!(
        seen,
        [
            (1, ShipmentStatus::Created),
            (2, ShipmentStatus::Shipped),
            (3, ShipmentStatus::Delivered),
            (4, ShipmentStatus::Returned),
        ]
    );
    let later = client.events_after(&id, 2).await.unwrap();
    assert_eq!(later.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
    assert!(client.events_after(&id, 4).await.unwrap().is_empty());
    let shipment = client.shipment(&id).await.unwrap();
    assert_eq!(shipment.status, ShipmentStatus::Returned);
    assert_eq!(shipment.events, all);

    // A replay of the create answers the shipment as it is now.
    let replay = client
        .create_shipment("k-1", &new_shipment("nordlys:o-1:l1", 1))
        .await
        .unwrap();
    assert_eq!(replay.status, ShipmentStatus::Returned);

    let response = house
        .http
        .get(house.url(&format!("/v1/shipments/{id}/events?after=two")))
        .bearer_auth("t")
        .send()
        .await
        .unwrap();
    let (status, refused) = House::answer(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refused["code"], "invalid_query");
}

#[tokio::test]
async fn faults_sort_into_unavailable_and_rate_limited() {
    let house = House::start().await;
    let client = house.client();
    let request = new_shipment("nordlys:o-1:l1", 1);

    house.faults(json!({"fail_next": 1})).await;
    let failed = client.create_shipment("k-1", &request).await.unwrap_err();
    assert!(failed.is_outage(), "{failed:?}");
    house.faults(json!({"outage": true})).await;
    let down = client.create_shipment("k-1", &request).await.unwrap_err();
    assert!(
        matches!(&down, LogisticsError::Unavailable(why) if why.contains("503")),
        "{down:?}"
    );
    let response = house.http.get(house.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "30");
    assert_eq!(
        house.ledger().await["requests"],
        json!({}),
        "nothing reached the house"
    );

    house
        .faults(json!({"outage": false, "rate_limit_per_second": 1}))
        .await;
    client.create_shipment("k-1", &request).await.unwrap();
    let limited = client.shipment("SHP0000001").await.unwrap_err();
    assert!(
        matches!(
            limited,
            LogisticsError::RateLimited { retry_after } if retry_after == Duration::from_secs(1)
        ),
        "{limited:?}"
    );
    assert!(!limited.is_outage());

    let response = house.http.delete(house.url("/_sim/faults")).send().await;
    assert_eq!(response.unwrap().status(), StatusCode::OK);
    house.faults(json!({"timeout_next": 1})).await;
    let impatient = LogisticsClient::new(&house.base, "t", Duration::from_millis(400));
    let started = Instant::now();
    let hung = impatient.shipment("SHP0000001").await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        hung,
        LogisticsError::Unavailable("no answer in time".to_owned())
    );
    assert_eq!(client.shipment("SHP0000001").await.unwrap().iccids.len(), 1);
}

#[tokio::test]
async fn a_lost_answer_was_applied_and_a_retry_with_the_same_key_gets_it() {
    let house = House::start().await;
    let client = house.client();
    house.faults(json!({"lose_response_next": 1})).await;
    let request = new_shipment("nordlys:o-1:l1", 2);
    let lost = client.create_shipment("k-1", &request).await.unwrap_err();
    assert!(lost.is_outage(), "{lost:?}");
    let ledger = house.ledger().await;
    assert_eq!(ledger["shipments"].as_array().unwrap().len(), 1);
    let iccids = ledger["shipments"][0]["iccids"].clone();

    let retried = client.create_shipment("k-1", &request).await.unwrap();
    assert_eq!(retried.shipment_id, "SHP0000001");
    assert_eq!(json!(retried.iccids), iccids, "the same cards");
    let ledger = house.ledger().await;
    assert_eq!(ledger["shipments"].as_array().unwrap().len(), 1);
    assert_eq!(
        ledger["requests"]["k-1"],
        json!({"seen": 2, "created": "SHP0000001"})
    );
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let house = House::start().await;
    let (status, body) = House::answer(house.http.get(house.url("/")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");
    let response = house
        .http
        .delete(house.url("/v1/shipments"))
        .bearer_auth("t")
        .send()
        .await
        .unwrap();
    let (status, body) = House::answer(response).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["code"], "method_not_allowed");
    let (status, health) =
        House::answer(house.http.get(house.url("/healthz")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "UP");
}

#[test]
fn the_default_config_names_the_simulator() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/default.toml");
    let config = config::Config::builder()
        .add_source(config::File::from(file))
        .build()
        .unwrap();
    let settings: LogisticsSettings = config.get("logistics").unwrap();
    assert_eq!(settings.url, "http://127.0.0.1:38096");
    assert!(!settings.token.is_empty());
    assert_eq!(settings.timeout(), Duration::from_secs(10));
    assert_eq!(
        settings,
        LogisticsSettings::default(),
        "the serde defaults agree"
    );
}
