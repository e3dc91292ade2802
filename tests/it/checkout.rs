//! Checkout, orders and payments through HTTP on the real stack: the storefront API, the
//! basket, order and MSISDN processors, the payments connector against the Stripe and Adyen
//! simulators, their signed webhooks into the ingress, and the order view.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tcom_tests::{customer_token, eventually, platform};

use crate::checkout_shop::{MONTHLY, Provider, Shop, due_now};

/// The order is exactly what `/openapi.json` says a `ProductOrder` is.
fn described(order: &Value) {
    if let Err(e) =
        serde_json::from_value::<tcom_ingress::order_schema::ProductOrder>(order.clone())
    {
        panic!("the order does not match its OpenAPI schema: {e}\n{order}");
    }
}

async fn full_purchase(provider: Provider, how: &str) {
    let shop = Shop::open(provider, 600, 1).await;
    let alice = customer_token(&shop.tenant, "alice").await;
    let basket = shop.ready_basket(&alice, &shop.numbers[0]).await;
    let checkout = shop.checkout(&alice, &basket, None).await;
    assert_eq!(checkout.status, StatusCode::CREATED, "{}", checkout.body);
    let order = checkout.body;
    assert_eq!(order["id"], basket.as_str(), "an order has its basket's id");
    assert_eq!(order["state"], "pending", "{order}");
    assert_eq!(
        order["orderTotalPrice"][0]["price"]["taxIncludedAmount"]["valueMinor"],
        due_now()
    );
    assert_eq!(
        order["productOrderItem"][0]["productOffering"]["id"],
        "plan"
    );
    match provider {
        Provider::Stripe => assert!(
            order["paymentAction"]["clientSecret"].is_string(),
            "{order}"
        ),
        Provider::Adyen => assert!(order["paymentAction"]["redirectUrl"].is_string(), "{order}"),
    }
    described(&order);
    shop.pay(&order, how).await;
    let completed = shop
        .order_in(&alice, &basket, "completed", Duration::from_secs(20))
        .await;
    described(&completed);
    assert_eq!(completed["productOrderItem"][0]["state"], "completed");
    assert_eq!(
        completed["payment"][0]["capturedAmount"]["valueMinor"],
        due_now()
    );
    assert!(
        shop.number_becomes(&shop.numbers[0], "ASSIGNED", Duration::from_secs(5))
            .await,
        "the order's number is assigned"
    );
    // Activated in TCM (the simulator): one subscription for the order's item, with its
    // number, named on the order.
    let tcm: Value = shop
        .http
        .get(format!("{}/_sim/ledger", tcom_tests::platform().tcm_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let subscriptions: Vec<&Value> = tcm["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["externalRef"]
                .as_str()
                .is_some_and(|r| r.starts_with(&basket))
        })
        .collect();
    assert_eq!(subscriptions.len(), 1, "{tcm}");
    assert_eq!(subscriptions[0]["msisdn"], shop.numbers[0].as_str());
    assert_eq!(subscriptions[0]["status"], "ACTIVE");
    let characteristics =
        completed["productOrderItem"][0]["product"]["productCharacteristic"].to_string();
    assert!(
        characteristics.contains(subscriptions[0]["subscriptionId"].as_str().unwrap()),
        "{completed}"
    );
    let ledger = shop.ledger(&basket).await;
    assert_eq!(ledger.len(), 1, "one payment for the order: {ledger:?}");
    match provider {
        Provider::Stripe => {
            assert_eq!(ledger[0]["status"], "succeeded", "{ledger:?}");
            assert_eq!(ledger[0]["amount_received"], due_now(), "{ledger:?}");
        }
        Provider::Adyen => {
            assert_eq!(ledger[0]["captured"], due_now(), "{ledger:?}");
        }
    }
    // The brand sees it among its completed orders.
    let listed = shop
        .admin(
            Method::GET,
            "/v1/admin/orders?state=completed",
            &shop.brand_admin(),
            None,
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert!(
        listed.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["id"] == basket.as_str())
    );
}

#[tokio::test]
async fn a_stripe_purchase_is_paid_captured_and_completed() {
    full_purchase(Provider::Stripe, "visa").await;
}

#[tokio::test]
async fn a_stripe_purchase_with_a_3ds_challenge_completes() {
    full_purchase(Provider::Stripe, "3ds").await;
}

#[tokio::test]
async fn an_adyen_purchase_is_paid_captured_and_completed() {
    full_purchase(Provider::Adyen, "visa").await;
}

#[tokio::test]
async fn an_adyen_purchase_with_a_3ds_challenge_completes() {
    full_purchase(Provider::Adyen, "3ds").await;
}

#[tokio::test]
async fn a_refused_payment_fails_the_order_when_the_freeze_window_ends() {
    for provider in [Provider::Stripe, Provider::Adyen] {
        let shop = Shop::open(provider, 4, 1).await;
        let bob = customer_token(&shop.tenant, "bob").await;
        let basket = shop.ready_basket(&bob, &shop.numbers[0]).await;
        let order = shop.checkout(&bob, &basket, None).await;
        assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
        shop.pay(&order.body, "declined").await;
        // Refused, but open for another try while the window lasts.
        let refused = eventually(Duration::from_secs(3), || async {
            let r = shop
                .call(
                    Method::GET,
                    &format!("/v1/storefront/orders/{basket}"),
                    Some(&bob),
                    None,
                )
                .await;
            r.body["paymentAction"]["lastRefusal"]
                .is_string()
                .then_some(r.body)
        })
        .await
        .unwrap_or_else(|| panic!("{provider:?}: the refusal is never shown"));
        assert_eq!(refused["state"], "pending");
        assert_eq!(
            shop.number_status(&shop.numbers[0]).await.as_deref(),
            Some("RESERVED")
        );
        let failed = shop
            .order_in(&bob, &basket, "failed", Duration::from_secs(15))
            .await;
        assert!(
            failed["stateReason"]
                .as_str()
                .unwrap()
                .contains("freeze window"),
            "{failed}"
        );
        assert!(
            shop.number_becomes(&shop.numbers[0], "AVAILABLE", Duration::from_secs(5))
                .await,
            "{provider:?}: the number goes back to the pool"
        );
        let ledger = shop.ledger(&basket).await;
        assert_eq!(ledger.len(), 1, "{ledger:?}");
        let captured = ledger[0]["amount_received"]
            .as_i64()
            .or_else(|| ledger[0]["captured"].as_i64())
            .unwrap_or_default();
        assert_eq!(captured, 0, "nothing captured: {ledger:?}");
    }
}

#[tokio::test]
async fn checking_out_again_meets_the_same_order_and_one_payment() {
    let shop = Shop::open(Provider::Stripe, 600, 1).await;
    let alice = customer_token(&shop.tenant, "alice").await;
    let basket = shop.ready_basket(&alice, &shop.numbers[0]).await;
    let first = shop.checkout(&alice, &basket, Some("pay-1")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let same_key = shop.checkout(&alice, &basket, Some("pay-1")).await;
    let other_key = shop.checkout(&alice, &basket, Some("pay-2")).await;
    let no_key = shop.checkout(&alice, &basket, None).await;
    for again in [&same_key, &other_key, &no_key] {
        assert!(again.status.is_success(), "{} {}", again.status, again.body);
        assert_eq!(
            again.body["id"], first.body["id"],
            "{} {}",
            again.status, again.body
        );
        assert_eq!(
            again.body["payment"][0]["id"],
            first.body["payment"][0]["id"]
        );
    }
    assert_eq!(
        shop.ledger(&basket).await.len(),
        1,
        "one intent for one order"
    );
    // The basket is frozen: no more changes.
    let change = shop
        .call(
            Method::POST,
            &format!("/v1/storefront/baskets/{basket}/lines"),
            Some(&alice),
            Some(json!({"offering_id": "plan", "sim_type": "ESIM",
                        "number": {"type": "port_in", "msisdn": "+4530123456", "current_operator": "Telia"}})),
        )
        .await;
    assert_eq!(change.status, StatusCode::CONFLICT, "{}", change.body);
    assert_eq!(change.body["code"], "basket_not_active");
}

#[tokio::test]
async fn a_basket_that_is_not_ready_is_refused_with_every_problem() {
    let shop = Shop::open(Provider::Stripe, 600, 0).await;
    let alice = customer_token(&shop.tenant, "alice").await;
    let created = shop
        .call(
            Method::POST,
            "/v1/storefront/baskets",
            Some(&alice),
            Some(json!({"channel": "web"})),
        )
        .await;
    let basket = created.body["basket_id"].as_str().unwrap().to_owned();
    let refused = shop.checkout(&alice, &basket, None).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert_eq!(refused.body["code"], "basket_empty");
    // A guest cannot check out at all.
    let guest = shop
        .send(
            Method::POST,
            &format!("/v1/storefront/baskets/{basket}/checkout"),
            &shop.host,
            None,
            None,
            None,
        )
        .await;
    assert_eq!(guest.status, StatusCode::UNAUTHORIZED, "{}", guest.body);
    // Nothing was ordered.
    let orders = shop
        .call(Method::GET, "/v1/storefront/orders", Some(&alice), None)
        .await;
    assert_eq!(orders.body["items"], json!([]));
}

#[tokio::test]
async fn a_price_change_after_checkout_does_not_change_the_amount_charged() {
    let shop = Shop::open(Provider::Stripe, 600, 1).await;
    let alice = customer_token(&shop.tenant, "alice").await;
    let basket = shop.ready_basket(&alice, &shop.numbers[0]).await;
    let order = shop.checkout(&alice, &basket, None).await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
    // The brand doubles the price, and the basket processor knows it before the payment.
    shop.put_plan(MONTHLY * 2).await;
    let repriced = eventually(Duration::from_secs(10), || async {
        let r = shop
            .call(Method::GET, "/v1/storefront/catalog", None, None)
            .await;
        r.body
            .to_string()
            .contains(&(MONTHLY * 2).to_string())
            .then_some(())
    })
    .await;
    assert!(repriced.is_some(), "the new price is published");
    shop.pay(&order.body, "visa").await;
    let completed = shop
        .order_in(&alice, &basket, "completed", Duration::from_secs(20))
        .await;
    assert_eq!(
        completed["payment"][0]["capturedAmount"]["valueMinor"],
        due_now()
    );
    let ledger = shop.ledger(&basket).await;
    assert_eq!(ledger[0]["amount_received"], due_now(), "{ledger:?}");
}

#[tokio::test]
async fn cancelling_before_payment_voids_it_and_frees_the_number() {
    let shop = Shop::open(Provider::Stripe, 600, 1).await;
    let alice = customer_token(&shop.tenant, "alice").await;
    let basket = shop.ready_basket(&alice, &shop.numbers[0]).await;
    let order = shop.checkout(&alice, &basket, None).await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
    let cancelled = shop
        .call(
            Method::POST,
            &format!("/v1/storefront/orders/{basket}/cancel"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["state"], "pendingCancellation");
    shop.order_in(&alice, &basket, "cancelled", Duration::from_secs(15))
        .await;
    assert!(
        shop.number_becomes(&shop.numbers[0], "AVAILABLE", Duration::from_secs(5))
            .await
    );
    let ledger = shop.ledger(&basket).await;
    assert_eq!(ledger[0]["status"], "canceled", "{ledger:?}");
    // A cancelled order cannot be cancelled again.
    let again = shop
        .call(
            Method::POST,
            &format!("/v1/storefront/orders/{basket}/cancel"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
}

#[tokio::test]
async fn orders_are_invisible_to_other_customers_and_other_tenants() {
    let shop = Shop::open(Provider::Stripe, 600, 1).await;
    let other = Shop::open(Provider::Stripe, 600, 0).await;
    let alice = customer_token(&shop.tenant, "alice").await;
    let basket = shop.ready_basket(&alice, &shop.numbers[0]).await;
    let order = shop.checkout(&alice, &basket, None).await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
    let path = format!("/v1/storefront/orders/{basket}");
    // Another customer of the same shop.
    let mallory = customer_token(&shop.tenant, "mallory").await;
    let r = shop.call(Method::GET, &path, Some(&mallory), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = shop
        .call(
            Method::POST,
            &format!("{path}/cancel"),
            Some(&mallory),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    // "alice" of another tenant, on the other tenant's host and on this one.
    let other_alice = customer_token(&other.tenant, "alice").await;
    let r = shop
        .send(
            Method::GET,
            &path,
            &other.host,
            Some(&other_alice),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = shop
        .send(
            Method::GET,
            &path,
            &shop.host,
            Some(&other_alice),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.body["code"], "tenant_mismatch");
    // The other brand's staff.
    let r = shop
        .send(
            Method::GET,
            &format!("/v1/admin/orders/{basket}"),
            &other.host,
            Some(&other.brand_admin()),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    // The order is still there and untouched for its owner.
    shop.order_in(&alice, &basket, "pending", Duration::from_secs(10))
        .await;
}

/// `Stripe-Signature` for `body` signed with `secret` at `t`.
fn stripe_signature(secret: &str, t: i64, body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn forged_stale_and_cross_tenant_webhooks_change_nothing() {
    let shop = Shop::open(Provider::Stripe, 600, 1).await;
    let other = Shop::open(Provider::Stripe, 600, 0).await;
    let alice = customer_token(&shop.tenant, "alice").await;
    let basket = shop.ready_basket(&alice, &shop.numbers[0]).await;
    let order = shop.checkout(&alice, &basket, None).await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
    let intent = order.body["payment"][0]["id"].as_str().unwrap().to_owned();
    let version = order.body["version"].as_i64().unwrap();
    let event = json!({
        "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
        "object": "event",
        "type": "payment_intent.amount_capturable_updated",
        "data": {"object": {"id": intent, "object": "payment_intent", "status": "requires_capture",
                             "metadata": {"order_id": basket, "tenant_id": shop.tenant, "attempt": "1"}}}
    })
    .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let other_secret = std::fs::read_to_string(
        platform()
            .secrets_dir
            .join(format!("stripe/{}/webhook", other.tenant)),
    )
    .unwrap();
    let own_secret = std::fs::read_to_string(
        platform()
            .secrets_dir
            .join(format!("stripe/{}/webhook", shop.tenant)),
    )
    .unwrap();
    let cases = [
        ("no signature", None),
        ("garbage", Some("t=1,v1=00".to_owned())),
        (
            "another tenant's secret",
            Some(stripe_signature(&other_secret, now, &event)),
        ),
        (
            "stale",
            Some(stripe_signature(&own_secret, now - 301, &event)),
        ),
        (
            "from the future",
            Some(stripe_signature(&own_secret, now + 301, &event)),
        ),
        (
            "tampered body",
            Some(stripe_signature(
                &own_secret,
                now,
                &event.replace("requires_capture", "succeeded"),
            )),
        ),
    ];
    for (case, signature) in cases {
        let mut request = shop
            .http
            .post(
                shop.app
                    .url(&format!("/v1/webhooks/stripe/{}", shop.tenant)),
            )
            .header("content-type", "application/json")
            .body(event.clone());
        if let Some(signature) = signature {
            request = request.header("stripe-signature", signature);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{case}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "invalid_signature", "{case}");
    }
    // Tenant B's correctly signed event naming tenant A's order, sent to B's endpoint.
    let r = shop
        .http
        .post(
            shop.app
                .url(&format!("/v1/webhooks/stripe/{}", other.tenant)),
        )
        .header("content-type", "application/json")
        .header(
            "stripe-signature",
            stripe_signature(&other_secret, now, &event),
        )
        .body(event.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "a foreign payment on B's endpoint"
    );
    // A correctly signed event is taken; the connector reads the intent again and learns it
    // is unpaid, so even a genuine but lying event cannot move the order.
    let r = shop
        .http
        .post(
            shop.app
                .url(&format!("/v1/webhooks/stripe/{}", shop.tenant)),
        )
        .header("content-type", "application/json")
        .header(
            "stripe-signature",
            stripe_signature(&own_secret, now, &event),
        )
        .body(event.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = shop
        .call(
            Method::GET,
            &format!("/v1/storefront/orders/{basket}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(after.body["state"], "pending", "{}", after.body);
    assert_eq!(
        after.body["version"].as_i64().unwrap(),
        version,
        "nothing changed"
    );
    // A later, real payment proves it beyond the wait: the order reaches `completed` in
    // exactly the six versions of a straight purchase, so none of the webhooks above (even
    // one processed late) added a change.
    shop.pay(&order.body, "visa").await;
    let completed = shop
        .order_in(&alice, &basket, "completed", Duration::from_secs(20))
        .await;
    assert_eq!(completed["version"], 7, "{completed}");
}

#[tokio::test]
async fn webhooks_delivered_three_times_and_out_of_order_make_one_transition() {
    for provider in [Provider::Stripe, Provider::Adyen] {
        let shop = Shop::open(provider, 600, 1).await;
        let alice = customer_token(&shop.tenant, "alice").await;
        let basket = shop.ready_basket(&alice, &shop.numbers[0]).await;
        let order = shop.checkout(&alice, &basket, None).await;
        assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
        let sim = match provider {
            Provider::Stripe => &platform().stripe_url,
            Provider::Adyen => &platform().adyen_url,
        };
        let faults = |duplicate: u32, reorder: bool| {
            shop.http
                .post(format!("{sim}/_sim/faults"))
                .json(&json!({"fail_next_requests": 0, "latency_ms": 0,
                              "duplicate_webhooks": duplicate, "reorder_webhooks": reorder}))
                .send()
        };
        // The simulator's faults are global: other tests' webhooks are duplicated too, which
        // they must survive as well.
        assert!(faults(2, true).await.unwrap().status().is_success());
        shop.pay(&order.body, "visa").await;
        let completed = shop
            .order_in(&alice, &basket, "completed", Duration::from_secs(20))
            .await;
        assert!(faults(0, false).await.unwrap().status().is_success());
        // Every state was reached once: the version counts the changes. Acknowledged (1),
        // pending (2), inProgress (3), numbers confirmed + capture asked (4), captured +
        // eSIM profile asked (5), profile ready + activation in TCM asked (6), activated and
        // completed (7).
        assert_eq!(completed["version"], 7, "{provider:?}: {completed}");
        let ledger = shop.ledger(&basket).await;
        assert_eq!(ledger.len(), 1, "{ledger:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let later = shop
            .call(
                Method::GET,
                &format!("/v1/storefront/orders/{basket}"),
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(later.body["version"], 7, "late duplicates changed nothing");
    }
}

#[tokio::test]
async fn a_shopper_refused_once_pays_with_another_card() {
    for provider in [Provider::Stripe, Provider::Adyen] {
        let shop = Shop::open(provider, 600, 1).await;
        let carol = customer_token(&shop.tenant, "carol").await;
        let basket = shop.ready_basket(&carol, &shop.numbers[0]).await;
        let order = shop.checkout(&carol, &basket, None).await;
        assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
        shop.pay(&order.body, "declined").await;
        let refused = eventually(Duration::from_secs(5), || async {
            let r = shop
                .call(
                    Method::GET,
                    &format!("/v1/storefront/orders/{basket}"),
                    Some(&carol),
                    None,
                )
                .await;
            r.body["paymentAction"]["lastRefusal"]
                .is_string()
                .then_some(r.body)
        })
        .await
        .unwrap_or_else(|| panic!("{provider:?}: the refusal is never shown"));
        // The same page (Adyen) or intent (Stripe) takes another card.
        shop.pay(&refused, "visa").await;
        let completed = shop
            .order_in(&carol, &basket, "completed", Duration::from_secs(20))
            .await;
        assert_eq!(
            completed["payment"][0]["capturedAmount"]["valueMinor"],
            due_now()
        );
        let ledger = shop.ledger(&basket).await;
        assert_eq!(ledger.len(), 1, "{provider:?}: one payment: {ledger:?}");
        let captured = ledger[0]["amount_received"]
            .as_i64()
            .or_else(|| ledger[0]["captured"].as_i64())
            .unwrap_or_default();
        assert_eq!(captured, due_now(), "{ledger:?}");
    }
}

#[tokio::test]
async fn an_adyen_order_cancelled_before_payment_voids_a_late_authorisation() {
    let shop = Shop::open(Provider::Adyen, 600, 1).await;
    let dave = customer_token(&shop.tenant, "dave").await;
    let basket = shop.ready_basket(&dave, &shop.numbers[0]).await;
    let order = shop.checkout(&dave, &basket, None).await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
    let cancelled = shop
        .call(
            Method::POST,
            &format!("/v1/storefront/orders/{basket}/cancel"),
            Some(&dave),
            None,
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    shop.order_in(&dave, &basket, "cancelled", Duration::from_secs(15))
        .await;
    assert!(
        shop.number_becomes(&shop.numbers[0], "AVAILABLE", Duration::from_secs(5))
            .await
    );
    // The session cannot be cancelled at Adyen; the shopper pays on the still-open page.
    shop.pay(&order.body, "visa").await;
    let voided = eventually(Duration::from_secs(15), || async {
        let ledger = shop.ledger(&basket).await;
        (ledger.len() == 1 && ledger[0]["status"] == "Cancelled").then_some(ledger)
    })
    .await;
    assert!(
        voided.is_some(),
        "the late authorisation is voided: {:?}",
        shop.ledger(&basket).await
    );
    let after = shop
        .call(
            Method::GET,
            &format!("/v1/storefront/orders/{basket}"),
            Some(&dave),
            None,
        )
        .await;
    assert_eq!(after.body["state"], "cancelled", "{}", after.body);
    assert_eq!(voided.unwrap()[0]["captured"], 0);
}
