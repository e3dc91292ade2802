//! A shop for checkout tests, shared by the `it` and `crashes` test binaries: a tenant with
//! one plan, a number pool and a payment account at the Stripe or Adyen simulator of the test
//! platform, whose webhooks reach the shop's own ingress.
// Each test binary uses a different part of it.
#![allow(dead_code)]

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tcom_ingress::auth::BRAND_ADMIN;
use tcom_tests::{
    TestApp, admin_token, eventually, operator_token, platform, spawn_platform_ingress, unique,
};

/// Which provider a shop uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Provider {
    Stripe,
    Adyen,
}

/// A tenant selling one plan (activation 99.00, 299.00 a month) with a pool of numbers and
/// a payment account at one of the simulators, whose webhooks reach this test's ingress.
pub(crate) struct Shop {
    pub(crate) app: TestApp,
    pub(crate) tenant: String,
    pub(crate) host: String,
    pub(crate) numbers: Vec<String>,
    pub(crate) provider: Provider,
    /// Stripe secret key, or Adyen API key.
    pub(crate) api_key: String,
    pub(crate) http: reqwest::Client,
    /// The shop's currency (its prices are in it).
    pub(crate) currency: String,
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
}

pub(crate) const ACTIVATION: i64 = 9900;
pub(crate) const MONTHLY: i64 = 29900;

impl Shop {
    pub(crate) async fn open(provider: Provider, freeze_seconds: i32, pool_size: usize) -> Self {
        Self::open_with(provider, freeze_seconds, pool_size, |_| None).await
    }

    /// [`Self::open`] with the `identity` settings (broker, owner policy) `identity` gives for
    /// the new tenant's id.
    pub(crate) async fn open_with(
        provider: Provider,
        freeze_seconds: i32,
        pool_size: usize,
        identity: impl FnOnce(&str) -> Option<Value>,
    ) -> Self {
        Self::open_customised(provider, freeze_seconds, pool_size, |tenant, settings| {
            if let Some(identity) = identity(tenant) {
                settings["identity"] = identity;
            }
        })
        .await
    }

    /// [`Self::open`] with the tenant's settings changed by `customise` (given the tenant's
    /// id) before it is onboarded: a UK shop sets its country, currency and locales.
    pub(crate) async fn open_customised(
        provider: Provider,
        freeze_seconds: i32,
        pool_size: usize,
        customise: impl FnOnce(&str, &mut Value),
    ) -> Self {
        let platform = platform();
        let app = spawn_platform_ingress().await;
        let tenant = unique("co").chars().take(18).collect::<String>();
        let host = format!("{tenant}.shop.test");
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let (api_key, merchant_account, webhook_secret) = match provider {
            Provider::Stripe => {
                let key = format!("sk_test_{}", tenant.replace('-', ""));
                let secret = format!("whsec_{}", uuid::Uuid::new_v4().simple());
                let endpoint = http
                    .post(format!("{}/v1/webhook_endpoints", platform.stripe_url))
                    .bearer_auth(&key)
                    .form(&[
                        ("url", app.url(&format!("/v1/webhooks/stripe/{tenant}"))),
                        ("enabled_events[]", "*".to_owned()),
                        ("secret", secret.clone()),
                    ])
                    .send()
                    .await
                    .unwrap();
                assert!(
                    endpoint.status().is_success(),
                    "{:?}",
                    endpoint.text().await
                );
                (key, format!("acct_{tenant}"), secret)
            }
            Provider::Adyen => {
                let key = format!("AQE{}", uuid::Uuid::new_v4().simple());
                let merchant = format!("{}ECOM", tenant.replace('-', ""));
                let hooks = format!("{}/v3/merchants/{merchant}/webhooks", platform.adyen_url);
                let created: Value = http
                    .post(&hooks)
                    .header("x-api-key", &key)
                    .json(&json!({"url": app.url(&format!("/v1/webhooks/adyen/{tenant}")),
                                  "type": "standard", "active": true, "communicationFormat": "json"}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let id = created["id"].as_str().expect("a webhook id").to_owned();
                let hmac: Value = http
                    .post(format!("{hooks}/{id}/generateHmac"))
                    .header("x-api-key", &key)
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                (
                    key,
                    merchant,
                    hmac["hmacKey"].as_str().expect("an HMAC key").to_owned(),
                )
            }
        };
        let name = match provider {
            Provider::Stripe => "stripe",
            Provider::Adyen => "adyen",
        };
        let secret_ref = platform.put_secret(&format!("{name}/{tenant}/key"), &api_key);
        let webhook_ref = platform.put_secret(&format!("{name}/{tenant}/webhook"), &webhook_secret);
        let mut shop = Self {
            app,
            tenant: tenant.clone(),
            host: host.clone(),
            numbers: Vec::new(),
            provider,
            api_key,
            http,
            currency: "DKK".to_owned(),
        };
        let mut settings = json!({
            "name": "Checkout test brand",
            "domains": [host],
            "default_locale": "da-DK",
            "locales": ["da-DK"],
            "currency": "DKK",
            "country": "DK",
            "segments": [{"name": "consumer", "max_binding_months": 6}],
            "channels": ["web"],
            "payment": {"provider": name, "account_ref": merchant_account,
                        "secret_ref": secret_ref, "webhook_secret_ref": webhook_ref},
            "storefront": {"basket_ttl_seconds": 600, "reservation_ttl_seconds": 300,
                           "requests_per_second": 2000, "checkout_freeze_seconds": freeze_seconds},
        });
        customise(&tenant, &mut settings);
        settings["currency"]
            .as_str()
            .unwrap_or("DKK")
            .clone_into(&mut shop.currency);
        let onboarded = shop
            .admin(
                Method::POST,
                "/v1/platform/tenants",
                &operator_token(),
                Some(json!({"tenant_id": tenant, "settings": settings})),
            )
            .await;
        assert_eq!(onboarded.status, StatusCode::CREATED, "{}", onboarded.body);
        let served = eventually(Duration::from_secs(5), || async {
            let r = shop
                .call(Method::GET, "/v1/storefront/tenant", None, None)
                .await;
            (r.status == StatusCode::OK).then_some(())
        })
        .await;
        assert!(served.is_some(), "{host} not served");
        shop.put_plan(MONTHLY).await;
        let activated = shop
            .admin(
                Method::POST,
                "/v1/admin/offerings/plan/activate",
                &shop.brand_admin(),
                Some(json!({})),
            )
            .await;
        assert_eq!(activated.status, StatusCode::OK, "{}", activated.body);
        let base = 10_000_000 + (uuid::Uuid::new_v4().as_u128() % 80_000_000) as u64;
        shop.numbers = (0..pool_size as u64)
            .map(|i| format!("+45{}", base + i))
            .collect();
        if pool_size > 0 {
            let imported = shop
                .admin(
                    Method::POST,
                    "/v1/admin/number-pool",
                    &shop.brand_admin(),
                    Some(json!({"numbers": shop.numbers})),
                )
                .await;
            assert_eq!(imported.status, StatusCode::OK, "{}", imported.body);
        }
        shop
    }

    /// The same shop reached through another ingress instance.
    pub(crate) fn through(&self, app: TestApp) -> Self {
        Self {
            app,
            tenant: self.tenant.clone(),
            host: self.host.clone(),
            numbers: self.numbers.clone(),
            provider: self.provider,
            api_key: self.api_key.clone(),
            http: self.http.clone(),
            currency: self.currency.clone(),
        }
    }

    pub(crate) fn brand_admin(&self) -> String {
        admin_token(Some(&self.tenant), &[BRAND_ADMIN])
    }

    pub(crate) async fn put_plan(&self, monthly: i64) {
        let put = self
            .admin(
                Method::PUT,
                "/v1/admin/offerings/plan",
                &self.brand_admin(),
                Some(json!({
                    "name": "Fri 5G",
                    "specification_id": "mobile",
                    "kind": "PLAN",
                    "prices": [
                        {"name": "activation", "price_type": "ONE_TIME", "amount_minor": ACTIVATION, "currency": self.currency},
                        {"name": "monthly", "price_type": "RECURRING", "amount_minor": monthly, "currency": self.currency, "recurring_period_months": 1}
                    ],
                    "binding_months": [0],
                    "sim_types": ["PSIM", "ESIM"],
                    "add_ons": [],
                    "placements": [{"channel": "web", "sort_order": 1}]
                })),
            )
            .await;
        assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    }

    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        host: &str,
        bearer: Option<&str>,
        body: Option<Value>,
        key: Option<&str>,
    ) -> Reply {
        let mut request = self
            .app
            .http
            .request(method, self.app.url(path))
            .header("host", host);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let r = request.send().await.unwrap();
        let status = r.status();
        Reply {
            status,
            body: r.json().await.unwrap_or(Value::Null),
        }
    }

    pub(crate) async fn admin(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Reply {
        self.send(method, path, &self.host, Some(token), body, None)
            .await
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        customer: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.send(method, path, &self.host, customer, body, None)
            .await
    }

    /// A customer's basket with one line holding `msisdn`, ready for checkout.
    pub(crate) async fn ready_basket(&self, customer: &str, msisdn: &str) -> String {
        self.ready_basket_with(customer, msisdn, "ESIM").await
    }

    /// [`Self::ready_basket`] with a line of `sim_type` (`ESIM` or `PSIM`).
    pub(crate) async fn ready_basket_with(
        &self,
        customer: &str,
        msisdn: &str,
        sim_type: &str,
    ) -> String {
        let number = json!({"type": "new_number", "msisdn": msisdn});
        self.ready_basket_for(customer, number, sim_type).await
    }

    /// A basket with one plan line of `sim_type` getting its number as `number` says (the
    /// API's `number` object: a new number or a port-in).
    pub(crate) async fn ready_basket_for(
        &self,
        customer: &str,
        number: Value,
        sim_type: &str,
    ) -> String {
        // The basket processor learns a new shop's catalog from its global tables: retry the
        // first line until it sells the plan.
        let created = self
            .call(
                Method::POST,
                "/v1/storefront/baskets",
                Some(customer),
                Some(json!({"channel": "web"})),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let basket = created.body["basket_id"].as_str().unwrap().to_owned();
        let last = std::sync::Mutex::new(Value::Null);
        let added = eventually(Duration::from_secs(10), || async {
            let r = self
                .call(
                    Method::POST,
                    &format!("/v1/storefront/baskets/{basket}/lines"),
                    Some(customer),
                    Some(json!({"offering_id": "plan", "sim_type": sim_type,
                                "number": number.clone()})),
                )
                .await;
            *last.lock().unwrap() = r.body.clone();
            (r.status == StatusCode::OK).then_some(r)
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "the plan is not sold with the number; last answer: {}",
                last.lock().unwrap()
            )
        });
        assert_eq!(added.body["lines"].as_array().unwrap().len(), 1);
        basket
    }

    pub(crate) async fn checkout(&self, customer: &str, basket: &str, key: Option<&str>) -> Reply {
        self.send(
            Method::POST,
            &format!("/v1/storefront/baskets/{basket}/checkout"),
            &self.host,
            Some(customer),
            None,
            key,
        )
        .await
    }

    /// Checks out with a body (contact and delivery details).
    pub(crate) async fn checkout_with(&self, customer: &str, basket: &str, body: Value) -> Reply {
        self.send(
            Method::POST,
            &format!("/v1/storefront/baskets/{basket}/checkout"),
            &self.host,
            Some(customer),
            Some(body),
            None,
        )
        .await
    }

    /// Waits for the order view to show `state`; returns the order.
    pub(crate) async fn order_in(
        &self,
        customer: &str,
        order: &str,
        state: &str,
        within: Duration,
    ) -> Value {
        let last = std::sync::Mutex::new(Value::Null);
        let found = eventually(within, || async {
            let r = self
                .call(
                    Method::GET,
                    &format!("/v1/storefront/orders/{order}"),
                    Some(customer),
                    None,
                )
                .await;
            *last.lock().unwrap() = r.body.clone();
            (r.status == StatusCode::OK && r.body["state"] == state).then_some(r.body)
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "order {order} never reached {state}; last seen: {}",
                last.lock().unwrap()
            )
        })
    }

    /// The number's status in the pool view.
    pub(crate) async fn number_status(&self, msisdn: &str) -> Option<String> {
        let pool = self
            .admin(
                Method::GET,
                "/v1/admin/number-pool",
                &self.brand_admin(),
                None,
            )
            .await;
        pool.body["items"]
            .as_array()?
            .iter()
            .find(|n| n["msisdn"] == msisdn)
            .and_then(|n| n["status"].as_str().map(str::to_owned))
    }

    pub(crate) async fn number_becomes(
        &self,
        msisdn: &str,
        status: &str,
        within: Duration,
    ) -> bool {
        eventually(within, || async {
            (self.number_status(msisdn).await.as_deref() == Some(status)).then_some(())
        })
        .await
        .is_some()
    }

    /// The simulator's ledger entries for `order` (Stripe intents by metadata, Adyen sessions
    /// by reference).
    pub(crate) async fn ledger(&self, order: &str) -> Vec<Value> {
        let platform = platform();
        let url = match self.provider {
            Provider::Stripe => format!("{}/_sim/ledger", platform.stripe_url),
            Provider::Adyen => format!("{}/_sim/ledger", platform.adyen_url),
        };
        let ledger: Value = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let entries = ledger
            .get("entries")
            .or_else(|| ledger.get("intents"))
            .or_else(|| ledger.get("data"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        entries
            .into_iter()
            .filter(|e| {
                e["metadata"]["order_id"] == order
                    || e["reference"] == order
                    || e["payment_intent"]["metadata"]["order_id"] == order
            })
            .collect()
    }

    /// Pays the order's payment as a shopper would on the provider's page: `visa`, `declined`
    /// or `3ds` (Stripe: confirming with the test payment method; Adyen: the hosted page).
    pub(crate) async fn pay(&self, order: &Value, how: &str) {
        match self.provider {
            Provider::Stripe => {
                let intent = order["payment"][0]["id"].as_str().expect("an intent id");
                let method = match how {
                    "visa" => "pm_card_visa",
                    "declined" => "pm_card_chargeDeclined",
                    _ => "pm_card_authenticationRequired",
                };
                let r = self
                    .http
                    .post(format!(
                        "{}/v1/payment_intents/{intent}/confirm",
                        platform().stripe_url
                    ))
                    .bearer_auth(&self.api_key)
                    .form(&[("payment_method", method)])
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                let body: Value = r.json().await.unwrap();
                if how == "declined" {
                    assert!(!status.is_success() || body["last_payment_error"].is_object());
                    return;
                }
                assert!(status.is_success(), "{body}");
                if how == "3ds" {
                    assert_eq!(body["status"], "requires_action", "{body}");
                    let challenge = body["next_action"]["redirect_to_url"]["url"]
                        .as_str()
                        .expect("a 3-D Secure page");
                    let done = self
                        .http
                        .post(challenge)
                        .form(&[("outcome", "complete")])
                        .send()
                        .await
                        .unwrap();
                    assert!(done.status().is_success() || done.status().is_redirection());
                }
            }
            Provider::Adyen => {
                let page = order["paymentAction"]["redirectUrl"]
                    .as_str()
                    .expect("a hosted payment page");
                let outcome = match how {
                    "visa" => "authorise",
                    "declined" => "refuse",
                    _ => "challenge",
                };
                let r = self
                    .http
                    .post(page)
                    .form(&[("outcome", outcome)])
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_redirection() || r.status().is_success());
                if how == "3ds" {
                    let challenge = page.replace("/_sim/checkout/", "/_sim/3ds/");
                    let done = self
                        .http
                        .post(challenge)
                        .form(&[("outcome", "complete")])
                        .send()
                        .await
                        .unwrap();
                    assert!(done.status().is_redirection() || done.status().is_success());
                }
            }
        }
    }
}

pub(crate) fn due_now() -> i64 {
    ACTIVATION + MONTHLY
}
