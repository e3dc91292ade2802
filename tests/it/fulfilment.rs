//! Fulfilment on the real stack: after payment an eSIM line gets its profile from the SM-DP+
//! simulator (ES2+) and its activation code as a QR code; a pSIM line gets a shipment at the
//! logistics simulator whose signed tracking webhooks move the item; each line becomes a
//! TMF637 product once TCM has its subscription.

use std::io::Cursor;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tcom_tests::{customer_token, eventually, platform};

use crate::checkout_shop::{Provider, Shop};

/// A GET as `customer` on the shop's host, answered as bytes.
async fn raw_get(shop: &Shop, customer: &str, path: &str) -> (StatusCode, String, Vec<u8>) {
    let r = shop
        .app
        .http
        .get(shop.app.url(path))
        .header("host", &shop.host)
        .bearer_auth(customer)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let cache = r
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, cache, r.bytes().await.unwrap().to_vec())
}

/// Reads the QR code of a PNG back with `rqrr`, a decoder independent of the encoder.
fn read_qr(png_bytes: &[u8]) -> String {
    let mut decoder = png::Decoder::new(Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let (width, height) = (info.width as usize, info.height as usize);
    let channels = info.buffer_size() / (width * height);
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| {
        pixels[(y * width + x) * channels]
    });
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().unwrap().1
}

async fn sim_ledger(url: &str) -> Value {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{url}/_sim/ledger"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn subscriptions(shop: &Shop, customer: &str) -> Value {
    let listed = shop
        .call(
            Method::GET,
            "/v1/storefront/subscriptions",
            Some(customer),
            None,
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    for product in listed.body["items"].as_array().unwrap() {
        if let Err(e) =
            serde_json::from_value::<tcom_ingress::product_api::Product>(product.clone())
        {
            panic!("the product does not match its OpenAPI schema: {e}\n{product}");
        }
    }
    listed.body
}

#[tokio::test]
async fn an_esim_order_shows_a_qr_code_of_exactly_its_activation_code_and_the_confirmation_code_apart()
 {
    let shop = Shop::open(Provider::Stripe, 600, 1).await;
    let alice = customer_token(&shop.tenant, "alice").await;
    let basket = shop.ready_basket(&alice, &shop.numbers[0]).await;
    let order = shop.checkout(&alice, &basket, None).await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
    shop.pay(&order.body, "visa").await;
    let completed = shop
        .order_in(&alice, &basket, "completed", Duration::from_secs(30))
        .await;
    assert!(
        !completed.to_string().contains("pd1."),
        "no sealed code in the order: {completed}"
    );
    let item = &completed["productOrderItem"][0];
    let sim = &item["sim"][0];
    let iccid = sim["iccid"].as_str().expect("an ICCID").to_owned();
    assert_eq!(sim["role"], "line");
    let steps: Vec<(&str, &str)> = completed["step"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert!(steps.contains(&("sim_delivery", "done")), "{steps:?}");

    // The code as text, and the QR code that must read back to exactly that text.
    let text = shop
        .call(
            Method::GET,
            sim["activationCode"]["text"].as_str().unwrap(),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(text.status, StatusCode::OK, "{}", text.body);
    let activation_code = text.body["activationCode"].as_str().unwrap().to_owned();
    assert!(activation_code.starts_with("LPA:1$"), "{activation_code}");
    assert_eq!(text.body["iccid"], iccid.as_str());
    assert_eq!(text.body["confirmationCodeRequired"], true);
    assert!(
        activation_code.ends_with("$$1"),
        "the code says a confirmation code is needed: {activation_code}"
    );
    let (status, cache, png) = raw_get(
        &shop,
        &alice,
        sim["activationCode"]["png"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cache, "no-store", "a credential is never cached");
    assert_eq!(read_qr(&png), activation_code);
    let (status, _, svg) = raw_get(
        &shop,
        &alice,
        sim["activationCode"]["svg"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let svg = String::from_utf8(svg).unwrap();
    assert!(
        svg.contains("<svg") && svg.trim_end().ends_with("</svg>"),
        "{svg}"
    );

    // The confirmation code comes apart and is not in the QR code.
    let confirmation = shop
        .call(
            Method::GET,
            sim["confirmationCode"]["href"].as_str().unwrap(),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(confirmation.status, StatusCode::OK, "{}", confirmation.body);
    let code = confirmation.body["confirmationCode"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(code.len(), 8, "{code}");
    assert!(!activation_code.contains(&code), "never inside the QR code");

    // The SM-DP+ confirmed the profile once, and a phone installs it with both codes.
    let ledger = sim_ledger(&platform().smdp_url).await;
    assert_eq!(ledger["orders"][&iccid]["state"], "released", "{ledger}");
    let confirms: Vec<&Value> = ledger["calls"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(id, call)| id.starts_with(&basket) && call["function"] == "confirmOrder")
        .map(|(_, call)| call)
        .collect();
    assert_eq!(confirms.len(), 1, "one profile confirmed once: {ledger}");
    assert_eq!(confirms[0]["seen"], 1, "{ledger}");
    let device = reqwest::Client::builder().no_proxy().build().unwrap();
    let download = |confirmation: Option<String>| {
        let device = device.clone();
        let body = json!({"activationCode": activation_code, "confirmationCode": confirmation});
        async move {
            device
                .post(format!("{}/_sim/download", platform().smdp_url))
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        download(None).await,
        StatusCode::FORBIDDEN,
        "the code alone is not enough"
    );
    assert_eq!(
        download(Some("00000000".into())).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(download(Some(code.clone())).await, StatusCode::OK);

    // TCM has the subscription with the eSIM's ICCID; it is the customer's TMF637 product.
    let tcm = sim_ledger(&platform().tcm_url).await;
    let subscription = tcm["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["externalRef"]
                .as_str()
                .is_some_and(|r| r.starts_with(&basket))
        })
        .expect("a TCM subscription")
        .clone();
    assert_eq!(subscription["iccid"], iccid.as_str());
    let mine = eventually(Duration::from_secs(10), || async {
        let listed = subscriptions(&shop, &alice).await;
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == subscription["subscriptionId"])
            .cloned()
    })
    .await
    .expect("the subscription is a product");
    assert_eq!(mine["status"], "active");
    assert_eq!(mine["productSerialNumber"], shop.numbers[0].as_str());
    assert_eq!(
        mine["productOrderItem"][0]["productOrderId"],
        basket.as_str()
    );
    assert!(mine["realizingResource"].to_string().contains(&iccid));

    // Nobody else gets the codes or the product: another customer, another shop.
    let bob = customer_token(&shop.tenant, "bob").await;
    for href in [
        sim["activationCode"]["text"].as_str().unwrap(),
        sim["activationCode"]["png"].as_str().unwrap(),
        sim["confirmationCode"]["href"].as_str().unwrap(),
    ] {
        let (status, _, body) = raw_get(&shop, &bob, href).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{href}");
        assert!(!String::from_utf8_lossy(&body).contains("LPA:"));
    }
    assert_eq!(subscriptions(&shop, &bob).await["items"], json!([]));
    let other = Shop::open(Provider::Stripe, 600, 0).await;
    let intruder = customer_token(&other.tenant, "alice").await;
    let stolen = other
        .call(
            Method::GET,
            sim["activationCode"]["text"].as_str().unwrap(),
            Some(&intruder),
            None,
        )
        .await;
    assert_eq!(stolen.status, StatusCode::NOT_FOUND, "{}", stolen.body);
    assert_eq!(subscriptions(&other, &intruder).await["items"], json!([]));
    // The brand sees it among its subscriptions.
    let brand = shop
        .admin(
            Method::GET,
            "/v1/admin/subscriptions?status=active",
            &shop.brand_admin(),
            None,
        )
        .await;
    assert_eq!(brand.status, StatusCode::OK, "{}", brand.body);
    assert!(
        brand.body["items"]
            .to_string()
            .contains(subscription["subscriptionId"].as_str().unwrap())
    );
    let bad = shop
        .admin(
            Method::GET,
            "/v1/admin/subscriptions?status=sleeping",
            &shop.brand_admin(),
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["code"], "invalid_query");
}

/// The logistics simulator's signed tracking webhooks for this shop go to its ingress.
async fn subscribe_tracking(shop: &Shop) {
    let secret = tcom_tests::settings().logistics.webhook_secret;
    let subscribed = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!(
            "{}/v1/webhook-subscriptions",
            platform().logistics_url
        ))
        .bearer_auth("test-logistics-token")
        .json(
            &json!({"url": shop.app.url("/v1/webhooks/logistics"), "secret": secret,
                      "tenant": shop.tenant}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(subscribed.status(), StatusCode::CREATED);
}

async fn advance(shipment: &str, status: &str) {
    let moved = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!(
            "{}/_sim/shipments/{shipment}/advance",
            platform().logistics_url
        ))
        .json(&json!({"status": status}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), StatusCode::OK, "{status}");
}

/// A paid pSIM order of a new shop, with the tracking webhooks subscribed; returns the shop,
/// the customer's token, the order id and the order once its shipment exists.
async fn shipped_psim_order() -> (Shop, String, String, Value) {
    let shop = Shop::open(Provider::Stripe, 600, 1).await;
    subscribe_tracking(&shop).await;
    let alice = customer_token(&shop.tenant, "alice").await;
    let basket = shop
        .ready_basket_with(&alice, &shop.numbers[0], "PSIM")
        .await;
    let order = shop
        .checkout_with(
            &alice,
            &basket,
            json!({
                "contact": {"name": "Alice Jensen", "email": "alice@example.dk"},
                "delivery_address": {"street": "Vesterbrogade 1", "postal_code": "1620",
                                     "city": "København V", "country": "DK"},
            }),
        )
        .await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
    shop.pay(&order.body, "visa").await;
    let with_shipment = eventually(Duration::from_secs(30), || async {
        let r = shop
            .call(
                Method::GET,
                &format!("/v1/storefront/orders/{basket}"),
                Some(&alice),
                None,
            )
            .await;
        let has_subscription = r.body["productOrderItem"][0]["product"]["productCharacteristic"]
            .to_string()
            .contains("tcmSubscriptionId");
        (r.body["productOrderItem"][0]["shipment"]["id"].is_string() && has_subscription)
            .then_some(r.body)
    })
    .await
    .expect("a shipment is created and the subscription activated");
    (shop, alice, basket, with_shipment)
}

#[tokio::test]
async fn a_psim_is_shipped_once_to_the_checkout_address_and_tracking_webhooks_complete_the_order() {
    let (shop, alice, basket, order) = shipped_psim_order().await;
    assert_eq!(order["state"], "inProgress", "not delivered yet: {order}");
    let item = &order["productOrderItem"][0];
    let shipment = item["shipment"]["id"].as_str().unwrap().to_owned();
    assert_eq!(item["shipment"]["status"], "created");
    let ledger = sim_ledger(&platform().logistics_url).await;
    let created = ledger["shipments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["shipmentId"] == shipment.as_str())
        .unwrap()
        .clone();
    assert_eq!(created["recipient"]["name"], "Alice Jensen");
    assert_eq!(created["recipient"]["postalCode"], "1620");
    assert_eq!(created["iccids"][0], item["sim"][0]["iccid"]);
    let creates: Vec<&Value> = ledger["requests"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(key, _)| key.starts_with(&basket))
        .map(|(_, log)| log)
        .collect();
    assert_eq!(creates.len(), 1, "one shipment for the item: {ledger}");
    assert_eq!(creates[0]["created"], shipment.as_str());
    // TCM has the pSIM's ICCID; the product is pending until the SIM arrives.
    let pending = eventually(Duration::from_secs(10), || async {
        let listed = subscriptions(&shop, &alice).await;
        let product = listed["items"].get(0).cloned()?;
        (product["status"] == "pendingActive").then_some(product)
    })
    .await
    .expect("a pending product");
    assert!(
        pending["realizingResource"]
            .to_string()
            .contains(created["iccids"][0].as_str().unwrap())
    );

    advance(&shipment, "shipped").await;
    eventually(Duration::from_secs(15), || async {
        let r = shop
            .call(
                Method::GET,
                &format!("/v1/storefront/orders/{basket}"),
                Some(&alice),
                None,
            )
            .await;
        (r.body["productOrderItem"][0]["shipment"]["status"] == "shipped").then_some(())
    })
    .await
    .expect("the shipped event moves the item");
    advance(&shipment, "delivered").await;
    let completed = shop
        .order_in(&alice, &basket, "completed", Duration::from_secs(15))
        .await;
    assert_eq!(
        completed["productOrderItem"][0]["shipment"]["status"],
        "delivered"
    );
    assert_eq!(completed["productOrderItem"][0]["state"], "completed");
    let active = eventually(Duration::from_secs(10), || async {
        let listed = subscriptions(&shop, &alice).await;
        (listed["items"][0]["status"] == "active").then_some(())
    })
    .await;
    assert!(
        active.is_some(),
        "the product is active once the SIM arrived"
    );
}

#[tokio::test]
async fn a_returned_sim_holds_the_order_and_forged_tracking_webhooks_change_nothing() {
    let (shop, alice, basket, order) = shipped_psim_order().await;
    let shipment = order["productOrderItem"][0]["shipment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A forged "delivered" (wrong secret) is refused and moves nothing.
    let body = json!({"id": "whe_forged", "type": "shipment.tracking", "shipmentId": shipment,
        "reference": format!("{}:{basket}:x", shop.tenant), "tenant": shop.tenant, "seq": 9,
        "status": "delivered", "at": "2026-12-01T00:00:00Z"})
    .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let forged = shop
        .app
        .http
        .post(shop.app.url("/v1/webhooks/logistics"))
        .header("content-type", "application/json")
        .header("x-logistics-timestamp", now.to_string())
        .header(
            "x-logistics-signature",
            tcom_connectors::logistics::webhook::sign("not-the-secret", now, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let problem: Value = forged.json().await.unwrap();
    assert_eq!(problem["code"], "invalid_signature");

    advance(&shipment, "shipped").await;
    advance(&shipment, "returned").await;
    let held = shop
        .order_in(&alice, &basket, "held", Duration::from_secs(15))
        .await;
    assert_eq!(held["productOrderItem"][0]["state"], "held");
    assert!(
        held["stateReason"].as_str().unwrap().contains("came back"),
        "{held}"
    );
    let sim_step = held["step"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "sim_delivery")
        .unwrap()
        .clone();
    assert_eq!(sim_step["state"], "failed", "{held}");
    // The house retried nothing: every notification was taken at the first attempt.
    let ledger = sim_ledger(&platform().logistics_url).await;
    let deliveries: Vec<&Value> = ledger["webhookDeliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| {
            d["url"]
                .as_str()
                .is_some_and(|u| u.starts_with(&shop.app.url("")))
        })
        .collect();
    assert_eq!(deliveries.len(), 2, "{ledger}");
    assert!(
        deliveries
            .iter()
            .all(|d| d["status"] == 200 && d["attempts"] == 1),
        "{deliveries:?}"
    );
}
