//! Number porting on the real stack, against the clearing house simulator: a port-in line's
//! request goes to the clearing house after the SIM, the losing operator's answer and the
//! completion on the port date come back as signed webhooks, a rejection holds the order until
//! the customer corrects it, and the subscription is created in TCM only once the number is
//! ours. Denmark ports OCH-style (the current SIM's ICC); the UK with a PAC, whose format the
//! basket checks already.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tcom_tests::{customer_token, eventually, platform};

use crate::checkout_shop::{Provider, Shop};

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A 19-digit ICCID ending in its Luhn check digit, from an 18-digit body (the test's own
/// arithmetic, checked against the platform's rules by the basket accepting it).
fn iccid(body: &str) -> String {
    assert_eq!(body.len(), 18);
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let twice = d * 2;
                if twice > 9 { twice - 9 } else { twice }
            } else {
                d
            }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// A number nobody else in this test run uses, in the country's form.
fn fresh_number(country_code: &str, digits: usize) -> String {
    let n = uuid::Uuid::new_v4().as_u128() % 10u128.pow(digits as u32 - 1);
    let first = if country_code == "44" { 7 } else { 3 };
    format!("+{country_code}{first}{n:0width$}", width = digits - 1)
}

/// The clearing house's notifications of this shop's ports go to its ingress.
async fn subscribe_porting(shop: &Shop) {
    let secret = tcom_tests::settings().carrier.webhook_secret;
    let subscribed = http()
        .post(format!(
            "{}/v1/webhook-subscriptions",
            platform().carrier_url
        ))
        .bearer_auth("test-carrier-token")
        .json(
            &json!({"url": shop.app.url("/v1/webhooks/carrier"), "secret": secret,
                      "tenant": shop.tenant}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(subscribed.status(), StatusCode::CREATED);
}

/// The number as the losing operator holds it.
async fn register(subscriber: Value) {
    let registered = http()
        .post(format!("{}/_sim/subscribers", platform().carrier_url))
        .json(&subscriber)
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);
}

/// Moves the clearing house's clock for the shop's ports past any port date.
async fn pass_the_port_date(shop: &Shop) {
    let moved = http()
        .post(format!("{}/_sim/clock", platform().carrier_url))
        .json(&json!({"advanceSeconds": 100 * 86_400, "tenant": shop.tenant}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), StatusCode::OK);
}

/// The clearing house's port requests for `msisdn`, oldest first.
async fn ports_of(msisdn: &str) -> Vec<Value> {
    let ledger: Value = http()
        .get(format!("{}/_sim/ledger", platform().carrier_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    ledger["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["msisdn"] == msisdn)
        .cloned()
        .collect()
}

fn characteristic<'v>(order: &'v Value, name: &str) -> Option<&'v str> {
    order["productOrderItem"][0]["product"]["productCharacteristic"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)?["value"]
        .as_str()
}

/// The order once `ready` says it is, polled as the customer.
async fn order_when(
    shop: &Shop,
    customer: &str,
    order: &str,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let last = std::sync::Mutex::new(Value::Null);
    let found = eventually(Duration::from_secs(30), || async {
        let r = shop
            .call(
                Method::GET,
                &format!("/v1/storefront/orders/{order}"),
                Some(customer),
                None,
            )
            .await;
        *last.lock().unwrap() = r.body.clone();
        ready(&r.body).then_some(r.body)
    })
    .await;
    found.unwrap_or_else(|| panic!("{what}; last seen: {}", last.lock().unwrap()))
}

/// Checks out and pays `basket` as `customer`; returns the order id.
async fn pay(shop: &Shop, customer: &str, basket: &str) -> String {
    let order = shop.checkout(customer, basket, None).await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
    shop.pay(&order.body, "visa").await;
    order.body["id"].as_str().unwrap().to_owned()
}

async fn correct(shop: &Shop, customer: &str, order: &str, item: &str, body: Value) -> Value {
    let r = shop
        .call(
            Method::POST,
            &format!("/v1/storefront/orders/{order}/items/{item}/port-in"),
            Some(customer),
            Some(body),
        )
        .await;
    json!({"status": r.status.as_u16(), "body": r.body})
}

#[tokio::test]
async fn a_rejected_danish_port_is_held_corrected_by_the_customer_and_completes_on_its_date() {
    let shop = Shop::open(Provider::Stripe, 600, 0).await;
    subscribe_porting(&shop).await;
    let alice = customer_token(&shop.tenant, "alice").await;
    let msisdn = fresh_number("45", 8);
    let right_icc = iccid("894502000000000011");
    let wrong_icc = iccid("894502000000000022");
    register(json!({"msisdn": msisdn, "operator": "Telia", "icc": right_icc})).await;

    let basket = shop
        .ready_basket_for(
            &alice,
            json!({"type": "port_in", "msisdn": msisdn, "current_operator": "Telia",
                   "sim_icc": wrong_icc}),
            "ESIM",
        )
        .await;
    let order = pay(&shop, &alice, &basket).await;

    // The losing operator refuses the wrong ICC: the order waits for the customer.
    let held = order_when(&shop, &alice, &order, "the port is rejected", |o| {
        o["state"] == "held" && characteristic(o, "portRejection").is_some()
    })
    .await;
    assert_eq!(characteristic(&held, "portRejection"), Some("wrong_icc"));
    assert_eq!(characteristic(&held, "portCorrectable"), Some("sim_icc"));
    assert_eq!(held["productOrderItem"][0]["state"], "held");
    assert!(
        characteristic(&held, "tcmSubscriptionId").is_none(),
        "no subscription before the number is ours: {held}"
    );
    let item = held["productOrderItem"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Corrections that break the rules change nothing.
    let pac = correct(&shop, &alice, &order, &item, json!({"pac": "ABC123456"})).await;
    assert_eq!(pac["status"], 422, "{pac}");
    assert_eq!(pac["body"]["code"], "pac_not_used");
    let bad_icc = correct(&shop, &alice, &order, &item, json!({"sim_icc": "8945"})).await;
    assert_eq!(bad_icc["status"], 422, "{bad_icc}");
    assert_eq!(bad_icc["body"]["code"], "invalid_sim_icc");
    let nothing = correct(&shop, &alice, &order, &item, json!({})).await;
    assert_eq!(nothing["body"]["code"], "nothing_to_correct", "{nothing}");
    let other_item = correct(
        &shop,
        &alice,
        &order,
        "l-none",
        json!({"sim_icc": right_icc}),
    )
    .await;
    assert_eq!(other_item["status"], 404, "{other_item}");
    // Another customer cannot correct Alice's order.
    let mallory = customer_token(&shop.tenant, "mallory").await;
    let theirs = correct(
        &shop,
        &mallory,
        &order,
        &item,
        json!({"sim_icc": right_icc}),
    )
    .await;
    assert_eq!(theirs["status"], 404, "{theirs}");
    assert_eq!(ports_of(&msisdn).await.len(), 1, "no second request yet");

    // The customer corrects the ICC: submitted again, accepted, the order goes on.
    let corrected = correct(&shop, &alice, &order, &item, json!({"sim_icc": right_icc})).await;
    assert_eq!(corrected["status"], 200, "{corrected}");
    let accepted = order_when(
        &shop,
        &alice,
        &order,
        "the corrected port is accepted",
        |o| characteristic(o, "portStatus") == Some("accepted"),
    )
    .await;
    assert_eq!(accepted["state"], "inProgress", "{accepted}");
    assert!(characteristic(&accepted, "portRejection").is_none());
    let port_date = characteristic(&accepted, "portDate").unwrap().to_owned();
    assert!(
        characteristic(&accepted, "tcmSubscriptionId").is_none(),
        "TCM waits for the port date: {accepted}"
    );
    // A port that is not rejected is not corrected.
    let again = correct(&shop, &alice, &order, &item, json!({"sim_icc": right_icc})).await;
    assert_eq!(again["status"], 409, "{again}");
    assert_eq!(again["body"]["code"], "port_not_correctable");

    let ports = ports_of(&msisdn).await;
    assert_eq!(ports.len(), 2, "one request per attempt: {ports:?}");
    assert_eq!(ports[0]["status"], "rejected");
    assert_eq!(ports[0]["rejection"]["code"], "wrong_icc");
    assert_eq!(ports[1]["status"], "accepted");
    assert_eq!(ports[1]["portDate"], port_date.as_str());
    assert_eq!(ports[1]["donorOperator"], "Telia");

    // On the port date the number moves; then TCM creates the subscription with it.
    pass_the_port_date(&shop).await;
    let completed = shop
        .order_in(&alice, &order, "completed", Duration::from_secs(30))
        .await;
    assert_eq!(characteristic(&completed, "portStatus"), Some("completed"));
    assert!(characteristic(&completed, "portedOn").is_some());
    assert!(characteristic(&completed, "tcmSubscriptionId").is_some());
    assert_eq!(characteristic(&completed, "MSISDN"), Some(msisdn.as_str()));
    assert_eq!(ports_of(&msisdn).await[1]["status"], "completed");
}

#[tokio::test]
async fn a_uk_port_needs_a_well_formed_pac_at_the_basket_and_completes_with_it() {
    let shop = Shop::open_customised(Provider::Stripe, 600, 0, |_, settings| {
        settings["country"] = json!("GB");
        settings["currency"] = json!("GBP");
        settings["default_locale"] = json!("en-GB");
        settings["locales"] = json!(["en-GB"]);
        settings["segments"] = json!([{"name": "consumer", "max_binding_months": 24}]);
    })
    .await;
    subscribe_porting(&shop).await;
    let bob = customer_token(&shop.tenant, "bob").await;
    let msisdn = fresh_number("44", 10);
    register(json!({"msisdn": msisdn, "operator": "EE", "pac": "EEX123456"})).await;
    let created = shop
        .call(
            Method::POST,
            "/v1/storefront/baskets",
            Some(&bob),
            Some(json!({"channel": "web"})),
        )
        .await;
    let basket = created.body["basket_id"].as_str().unwrap().to_owned();
    let line = |pac: Option<&str>| {
        let mut number = json!({"type": "port_in", "msisdn": msisdn, "current_operator": "EE"});
        if let Some(pac) = pac {
            number["pac"] = json!(pac);
        }
        json!({"offering_id": "plan", "sim_type": "ESIM", "number": number})
    };
    // Refused at the basket: a PAC of the wrong shape, and none at all.
    for (pac, code) in [(Some("EE-123456"), "pac_format"), (None, "pac_required")] {
        let refused = eventually(Duration::from_secs(10), || async {
            let r = shop
                .call(
                    Method::POST,
                    &format!("/v1/storefront/baskets/{basket}/lines"),
                    Some(&bob),
                    Some(line(pac)),
                )
                .await;
            (r.status == StatusCode::UNPROCESSABLE_ENTITY).then_some(r.body)
        })
        .await
        .expect("refused");
        let violations = refused["violations"].to_string();
        assert!(violations.contains(code), "{pac:?}: {refused}");
        assert!(violations.contains("number/port_in/pac"), "{refused}");
    }
    let basket = shop
        .ready_basket_for(
            &bob,
            json!({"type": "port_in", "msisdn": msisdn, "current_operator": "EE",
                   "pac": "eex123456"}),
            "ESIM",
        )
        .await;
    let order = pay(&shop, &bob, &basket).await;
    order_when(&shop, &bob, &order, "the port is accepted", |o| {
        characteristic(o, "portStatus") == Some("accepted")
    })
    .await;
    let ports = ports_of(&msisdn).await;
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert_eq!(ports[0]["scheme"], "pac");
    pass_the_port_date(&shop).await;
    let completed = shop
        .order_in(&bob, &order, "completed", Duration::from_secs(30))
        .await;
    assert_eq!(characteristic(&completed, "pac"), Some("EEX123456"));
    assert!(characteristic(&completed, "tcmSubscriptionId").is_some());
}
