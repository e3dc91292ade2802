//! Demo data for the local run, created through the platform's own APIs (so it is validated
//! like anything a platform operator or brand partner enters): a Danish MVNO in DKK (consumer
//! binding capped at 6 months by Danish law) and a UK brand in GBP (24 months), each with
//! plans, a data-sharing add-on, channel placements and overlapping campaigns, and Danish
//! marketing content in the Contentful simulator.
//!
//! Every request carries a fixed `Idempotency-Key`, so seeding twice changes nothing. Their
//! domains end in `.localhost`, which resolves to the loopback address:
//! `curl http://nordlys.localhost:8080/v1/storefront/catalog`.

use anyhow::{Context, bail};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tcom_ingress::Settings;
use tcom_ingress::auth::{AdminAuth, BRAND_ADMIN, PLATFORM_OPERATOR};

/// The demo tenants and the host each is reached on.
const DEMO_HOSTS: [(&str, &str); 2] = [
    ("nordlys", "nordlys.localhost"),
    ("brightwave", "brightwave.localhost"),
];

/// The demo tenants' onboarding requests.
fn tenants(broker_url: &str) -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "nordlys",
            "nordlys.localhost",
            json!({
                "name": "Nordlys Mobil",
                "domains": ["nordlys.localhost", "shop.nordlys.localhost"],
                "default_locale": "da-DK",
                "locales": ["da-DK", "en-GB"],
                "currency": "DKK",
                "country": "DK",
                "segments": [
                    {"name": "consumer", "max_binding_months": 6},
                    {"name": "business", "max_binding_months": 36}
                ],
                "channels": ["web", "app", "outbound-sales"],
                "theme": {"primary_color": "#0b3d91", "logo_url": "/assets/nordlys.svg"},
                "payment": {"provider": "stripe", "account_ref": "acct_demo_nordlys", "secret_ref": "file://stripe/nordlys", "webhook_secret_ref": "file://stripe/nordlys-webhook"},
                "content": {"space_id": "nordlys", "environment": "master", "access_token_ref": "env://CONTENTFUL_DEMO_TOKEN"},
                // MitID through the broker simulator: the owner of a subscription matches
                // their CPR and must be 18 on the order date.
                "identity": {"issuer": format!("{broker_url}/realms/nordlys"), "client_id": "nordlys-shop",
                             "client_secret_ref": "file://oidc/nordlys", "scopes": ["openid", "mitid", "ssn"],
                             "cpr_matching": true,
                             "owner_verification": {"min_assurance": "substantial", "min_age": 18,
                                                    "on_failure": "fail", "timeout_seconds": 1800}}
            }),
        ),
        (
            "brightwave",
            "brightwave.localhost",
            json!({
                "name": "Brightwave",
                "domains": ["brightwave.localhost"],
                "default_locale": "en-GB",
                "locales": ["en-GB"],
                "currency": "GBP",
                "country": "GB",
                "segments": [{"name": "consumer", "max_binding_months": 24}],
                "channels": ["web", "partner-portal"],
                "theme": {"primary_color": "#ff6f00", "logo_url": "/assets/brightwave.svg"},
                "payment": {"provider": "adyen", "account_ref": "BrightwaveECOM", "secret_ref": "file://adyen/brightwave", "webhook_secret_ref": "file://adyen/brightwave-webhook"},
                "identity": {"issuer": format!("{broker_url}/realms/brightwave"), "client_id": "brightwave-shop",
                             "client_secret_ref": "file://oidc/brightwave", "scopes": ["openid", "profile"]}
            }),
        ),
    ]
}

fn plan(
    name: &str,
    currency: &str,
    monthly: i64,
    activation: i64,
    binding: &[i32],
    channels: &[&str],
) -> Value {
    json!({
        "name": name,
        "specification_id": "mobile-subscription",
        "prices": [
            {"name": "activation", "price_type": "ONE_TIME", "amount_minor": activation, "currency": currency},
            {"name": "monthly", "price_type": "RECURRING", "amount_minor": monthly, "currency": currency, "recurring_period_months": 1}
        ],
        "binding_months": binding,
        "sim_types": ["PSIM", "ESIM"],
        "add_ons": [{"offering_id": "data-sharing", "min": 0, "max": 4}],
        "placements": channels.iter().enumerate().map(|(i, c)| json!({"channel": c, "sort_order": i})).collect::<Vec<_>>()
    })
}

fn add_on(currency: &str, monthly: i64, channels: &[&str]) -> Value {
    json!({
        "name": "Data-sharing card",
        "kind": "ADD_ON",
        "specification_id": "data-sharing-card",
        "prices": [{"name": "monthly", "price_type": "RECURRING", "amount_minor": monthly, "currency": currency, "recurring_period_months": 1}],
        "sim_types": ["PSIM", "ESIM"],
        "placements": channels.iter().map(|c| json!({"channel": c})).collect::<Vec<_>>()
    })
}

/// (tenant, offering id, definition) in dependency order: add-ons before the plans naming them.
fn offerings() -> Vec<(&'static str, &'static str, Value)> {
    let dk = ["web", "app"];
    let uk = ["web", "partner-portal"];
    vec![
        ("nordlys", "data-sharing", add_on("DKK", 4900, &dk)),
        (
            "nordlys",
            "fri-tale-10gb",
            plan("Fri tale 10 GB", "DKK", 14900, 0, &[0], &dk),
        ),
        (
            "nordlys",
            "fri-5g",
            plan("Fri 5G", "DKK", 29900, 9900, &[0, 6], &dk),
        ),
        ("brightwave", "data-sharing", add_on("GBP", 500, &uk)),
        (
            "brightwave",
            "sim-only-30gb",
            plan("SIM only 30GB", "GBP", 1200, 0, &[0, 12], &uk),
        ),
        (
            "brightwave",
            "unlimited",
            plan("Unlimited", "GBP", 2500, 0, &[0, 12, 24], &uk),
        ),
    ]
}

fn campaigns() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "nordlys",
            "half-price-6",
            json!({
                "name": "Halv pris i 6 måneder", "priority": 20, "valid_from": 0,
                "offering_ids": ["fri-5g"], "requires_binding_months": 6,
                "group": {"name": "welcome", "kind": "EXCLUSIVE"},
                "alterations": [{"target": "RECURRING", "change": "PERCENT_OFF", "value": 5000, "duration_months": 6}]
            }),
        ),
        (
            "nordlys",
            "minus-20",
            json!({
                "name": "20 kr. rabat", "priority": 10, "valid_from": 0,
                "group": {"name": "welcome", "kind": "EXCLUSIVE"},
                "alterations": [{"target": "RECURRING", "change": "AMOUNT_OFF", "value": 2000, "duration_months": 3}]
            }),
        ),
        (
            "nordlys",
            "free-activation-web",
            json!({
                "name": "Gratis oprettelse på nettet", "priority": 5, "valid_from": 0, "channels": ["web"],
                "alterations": [{"target": "ONE_TIME", "change": "FIXED_PRICE", "value": 0}]
            }),
        ),
        (
            "brightwave",
            "best-of-spring",
            json!({
                "name": "Spring: 3 months half price", "priority": 10, "valid_from": 0,
                "group": {"name": "spring", "kind": "BEST_DEAL"},
                "alterations": [{"target": "RECURRING", "change": "PERCENT_OFF", "value": 5000, "duration_months": 3}]
            }),
        ),
        (
            "brightwave",
            "spring-fiver",
            json!({
                "name": "Spring: £5 off for a year", "priority": 10, "valid_from": 0,
                "requires_binding_months": 12,
                "group": {"name": "spring", "kind": "BEST_DEAL"},
                "alterations": [{"target": "RECURRING", "change": "AMOUNT_OFF", "value": 500, "duration_months": 12}]
            }),
        ),
    ]
}

async fn check(response: reqwest::Response, what: &str, tolerate: &[&str]) -> anyhow::Result<()> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body: Value = response.json().await.unwrap_or_default();
    let code = body["code"].as_str().unwrap_or_default();
    if tolerate.contains(&code) {
        return Ok(());
    }
    bail!("{what}: {status} {body}")
}

/// A brand admin of a demo tenant calling the admin API.
struct Admin<'a> {
    http: &'a reqwest::Client,
    auth: &'a AdminAuth,
    url: &'a str,
}

impl Admin<'_> {
    /// Sends one request on the tenant's host with a fixed idempotency key.
    async fn send(
        &self,
        tenant: &str,
        method: reqwest::Method,
        path: &str,
        idempotency_key: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<()> {
        let host = DEMO_HOSTS
            .into_iter()
            .find_map(|(id, host)| (id == tenant).then_some(host))
            .context("not a demo tenant")?;
        let token = self
            .auth
            .issue("demo-seed", Some(tenant), &[BRAND_ADMIN], 600);
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token)
            .header("host", host)
            .header("idempotency-key", idempotency_key);
        if let Some(body) = body {
            request = request.json(body);
        }
        check(request.send().await?, &format!("{tenant} {path}"), &[]).await
    }
}

/// Seeds the demo data through the ingress at `url`, and the demo content into the
/// Contentful simulator.
pub(crate) async fn seed(settings: &Settings, url: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().no_proxy().build()?;
    let auth = AdminAuth::new(&settings.auth);
    // Content first: the content connector syncs a tenant as soon as it is onboarded.
    seed_content(&http, settings)
        .await
        .context("seeding the Contentful simulator")?;
    seed_payments(&http, settings, url)
        .await
        .context("setting up the demo tenants' accounts at the payment simulators")?;
    seed_fulfilment_webhooks(&http, settings, url)
        .await
        .context("subscribing the ingress to the logistics and clearing house simulators")?;
    let operator = auth.issue("demo-seed", None, &[PLATFORM_OPERATOR], 600);
    seed_identity(&http, settings)
        .await
        .context("registering the demo tenants' clients at the OIDC broker simulator")?;
    for (id, host, tenant_settings) in tenants(&settings.identity.broker_url) {
        // The key names the version of the demo settings: a stack seeded by an older
        // version gets the tenant's settings replaced instead.
        let response = http
            .post(format!("{url}/v1/platform/tenants"))
            .bearer_auth(&operator)
            .header("idempotency-key", format!("demo-onboard-{id}-v3"))
            .json(&json!({"tenant_id": id, "settings": tenant_settings}))
            .send()
            .await?;
        if response.status() == StatusCode::CONFLICT {
            let response = http
                .put(format!("{url}/v1/platform/tenants/{id}/settings"))
                .bearer_auth(&operator)
                .header("idempotency-key", format!("demo-settings-{id}-v3"))
                .json(&tenant_settings)
                .send()
                .await?;
            check(response, &format!("updating {id}'s settings"), &[]).await?;
        } else {
            check(response, &format!("onboarding {id}"), &["tenant_exists"]).await?;
        }
        // The ingress serves the new domain within moments.
        for _ in 0..50 {
            let served = http
                .get(format!("{url}/v1/storefront/tenant"))
                .header("host", host)
                .send()
                .await?;
            if served.status() == StatusCode::OK {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        println!("tenant {id} on {host}");
    }
    let admin = Admin {
        http: &http,
        auth: &auth,
        url,
    };
    for (tenant, offering, definition) in offerings() {
        let path = format!("/v1/admin/offerings/{offering}");
        admin
            .send(
                tenant,
                reqwest::Method::PUT,
                &path,
                &format!("demo-offering-{offering}-v1"),
                Some(&definition),
            )
            .await?;
        admin
            .send(
                tenant,
                reqwest::Method::POST,
                &format!("{path}/activate"),
                &format!("demo-activate-{offering}-v1"),
                None,
            )
            .await?;
        println!("offering {tenant}/{offering}");
    }
    for (tenant, campaign, definition) in campaigns() {
        let path = format!("/v1/admin/campaigns/{campaign}");
        admin
            .send(
                tenant,
                reqwest::Method::PUT,
                &path,
                &format!("demo-campaign-{campaign}-v1"),
                Some(&definition),
            )
            .await?;
        println!("campaign {tenant}/{campaign}");
    }
    for (tenant, numbers) in number_pools() {
        let body = json!({ "numbers": numbers });
        admin
            .send(
                tenant,
                reqwest::Method::POST,
                "/v1/admin/number-pool",
                &format!("demo-pool-{tenant}-v1"),
                Some(&body),
            )
            .await?;
        println!("number pool {tenant}: {} numbers", numbers.len());
    }
    verify(&http, &auth, url, std::time::Duration::from_secs(60)).await
}

/// What a seeded tenant must show through the API. A command's answer says it was decided;
/// only the views say a shopper or brand partner can see it. Seeding fails unless all of it
/// is visible within `timeout` (a processor that stopped would otherwise let the seed print
/// success over an empty catalog).
async fn verify(
    http: &reqwest::Client,
    auth: &AdminAuth,
    url: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let missing = missing_demo_data(http, auth, url).await;
        if missing.is_empty() {
            println!("verified: every demo tenant, offering, campaign and pool number is visible");
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "seeded data not visible through the API after {} s: {}",
                timeout.as_secs(),
                missing.join("; ")
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Everything seeded that the API does not show (yet), as readable lines.
async fn missing_demo_data(http: &reqwest::Client, auth: &AdminAuth, url: &str) -> Vec<String> {
    let operator = auth.issue("demo-seed", None, &[PLATFORM_OPERATOR], 600);
    let mut missing = Vec::new();
    let get = |host: &str, path: &str, token: Option<String>| {
        let mut request = http.get(format!("{url}{path}")).header("host", host);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            match request.send().await {
                Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
                _ => None,
            }
        }
    };
    let ids = |body: &Option<Value>, field: &str| -> Vec<String> {
        body.as_ref()
            .and_then(|b| b["items"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|item| item[field].as_str().map(str::to_owned))
            .collect()
    };
    for (tenant, host) in DEMO_HOSTS {
        if get(
            host,
            &format!("/v1/platform/tenants/{tenant}"),
            Some(operator.clone()),
        )
        .await
        .is_none()
        {
            missing.push(format!("tenant {tenant}"));
            continue;
        }
        let admin = || Some(auth.issue("demo-seed", Some(tenant), &[BRAND_ADMIN], 600));
        let listed_offerings = get(host, "/v1/admin/offerings", admin()).await;
        let active: Vec<String> = listed_offerings
            .as_ref()
            .and_then(|b| b["items"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter(|o| o["lifecycle_status"] == "ACTIVE")
            .filter_map(|o| o["offering_id"].as_str().map(str::to_owned))
            .collect();
        for (_, offering, _) in offerings().into_iter().filter(|(t, _, _)| *t == tenant) {
            if !active.iter().any(|id| id == offering) {
                missing.push(format!("active offering {tenant}/{offering}"));
            }
        }
        let listed_campaigns = ids(
            &get(host, "/v1/admin/campaigns", admin()).await,
            "campaign_id",
        );
        for (_, campaign, _) in campaigns().into_iter().filter(|(t, _, _)| *t == tenant) {
            if !listed_campaigns.iter().any(|id| id == campaign) {
                missing.push(format!("campaign {tenant}/{campaign}"));
            }
        }
        let pool = ids(&get(host, "/v1/admin/number-pool", admin()).await, "msisdn");
        for (_, numbers) in number_pools().into_iter().filter(|(t, _)| *t == tenant) {
            let absent = numbers.iter().filter(|n| !pool.contains(n)).count();
            if absent > 0 {
                missing.push(format!(
                    "{absent} of {} pool numbers of {tenant}",
                    numbers.len()
                ));
            }
        }
        let catalog = get(host, "/v1/storefront/catalog", None).await;
        let on_sale = catalog
            .as_ref()
            .and_then(|c| c["offerings"].as_array().map(Vec::len))
            .unwrap_or(0);
        if on_sale == 0 {
            missing.push(format!("storefront catalog of {tenant} (empty)"));
        }
    }
    missing
}

/// 200 numbers per demo tenant. Brightwave's come from Ofcom's range for drama and
/// examples (07700 900000–900999), which is never assigned to a real line.
fn number_pools() -> Vec<(&'static str, Vec<String>)> {
    vec![
        (
            "nordlys",
            (0..200).map(|i| format!("+459100{i:04}")).collect(),
        ),
        (
            "brightwave",
            (0..200).map(|i| format!("+447700900{i:03}")).collect(),
        ),
    ]
}

/// The logistics house's tracking webhooks and the clearing house's porting webhooks go to the
/// ingress at `url`, signed with the platform's secrets (the simulators keep one subscription
/// per URL, so seeding again changes nothing).
async fn seed_fulfilment_webhooks(
    http: &reqwest::Client,
    settings: &Settings,
    url: &str,
) -> anyhow::Result<()> {
    let logistics = http
        .post(format!(
            "{}/v1/webhook-subscriptions",
            settings.logistics.url.trim_end_matches('/')
        ))
        .bearer_auth(&settings.logistics.token)
        .json(&json!({"url": format!("{url}/v1/webhooks/logistics"),
                      "secret": settings.logistics.webhook_secret}))
        .send()
        .await
        .context("the logistics simulator")?;
    if !logistics.status().is_success() {
        bail!("the logistics simulator answered {}", logistics.status());
    }
    tcom_connectors::porting::client::CarrierClient::new(
        settings.carrier.url.clone(),
        settings.carrier.token.clone(),
        settings.carrier.timeout(),
    )
    .subscribe(
        &format!("{url}/v1/webhooks/carrier"),
        &settings.carrier.webhook_secret,
        None,
    )
    .await
    .map_err(|e| anyhow::anyhow!("the clearing house simulator: {e}"))
}

/// The demo tenants' API keys and webhook secrets in the secrets folder, and webhook
/// endpoints at the payment simulators pointing at the ingress: Nordlys pays with Stripe,
/// Brightwave with Adyen.
async fn seed_payments(
    http: &reqwest::Client,
    settings: &Settings,
    url: &str,
) -> anyhow::Result<()> {
    let secrets = &settings.payments.secrets_dir;
    let put = |name: &str, value: &str| -> anyhow::Result<()> {
        let path = secrets.join(name);
        std::fs::create_dir_all(path.parent().context("a secret has a folder")?)?;
        std::fs::write(&path, value).with_context(|| format!("writing {}", path.display()))
    };
    let stripe_key = "sk_test_nordlys_demo";
    let stripe_webhook = "whsec_nordlys_demo";
    put("stripe/nordlys", stripe_key)?;
    put("stripe/nordlys-webhook", stripe_webhook)?;
    http.post(format!(
        "{}/v1/webhook_endpoints",
        settings.payments.stripe_url
    ))
    .bearer_auth(stripe_key)
    .form(&[
        ("url", format!("{url}/v1/webhooks/stripe/nordlys")),
        ("enabled_events[]", "*".to_owned()),
        ("secret", stripe_webhook.to_owned()),
    ])
    .send()
    .await?
    .error_for_status()?;
    let adyen_key = "AQE_brightwave_demo_key";
    put("adyen/brightwave", adyen_key)?;
    let hooks = format!(
        "{}/v3/merchants/BrightwaveECOM/webhooks",
        settings.payments.adyen_url
    );
    let webhook: Value = http
        .post(&hooks)
        .header("x-api-key", adyen_key)
        .json(
            &json!({"url": format!("{url}/v1/webhooks/adyen/brightwave"), "type": "standard",
                      "active": true, "communicationFormat": "json"}),
        )
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = webhook["id"]
        .as_str()
        .context("the Adyen simulator's webhook id")?;
    let hmac: Value = http
        .post(format!("{hooks}/{id}/generateHmac"))
        .header("x-api-key", adyen_key)
        .json(&json!({}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    put(
        "adyen/brightwave-webhook",
        hmac["hmacKey"]
            .as_str()
            .context("the Adyen simulator's HMAC key")?,
    )?;
    println!(
        "payment accounts: nordlys at the Stripe simulator, brightwave at the Adyen simulator"
    );
    Ok(())
}

/// The demo tenants' OpenID Connect clients at the broker simulator, and their secrets.
async fn seed_identity(http: &reqwest::Client, settings: &Settings) -> anyhow::Result<()> {
    let broker = settings.identity.broker_url.trim_end_matches('/');
    for (tenant, client, domains) in [
        (
            "nordlys",
            "nordlys-shop",
            &["nordlys.localhost", "shop.nordlys.localhost"][..],
        ),
        (
            "brightwave",
            "brightwave-shop",
            &["brightwave.localhost"][..],
        ),
    ] {
        let secret = format!("{client}-demo-secret");
        let path = settings.payments.secrets_dir.join(format!("oidc/{tenant}"));
        std::fs::create_dir_all(path.parent().context("a secret has a folder")?)?;
        std::fs::write(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
        // The storefront's callback page on each domain (port 5173: the storefront's dev
        // server; 8080: a page served next to the API).
        let redirect_uris: Vec<String> = domains
            .iter()
            .flat_map(|d| {
                [
                    format!("http://{d}:5173/auth/callback"),
                    format!("http://{d}:8080/auth/callback"),
                ]
            })
            .collect();
        http.put(format!("{broker}/_sim/realms/{tenant}/clients/{client}"))
            .json(&json!({"client_secret": secret, "redirect_uris": redirect_uris}))
            .send()
            .await?
            .error_for_status()?;
    }
    // The platform operators' provider: the simulator's `platform` realm (test identity
    // `operator`), as `identity.operator_*` in config/default.toml names it.
    let operators = &settings.identity;
    if !operators.operator_issuer.is_empty() {
        let secret = "tcom-operators-demo-secret";
        let path = settings.payments.secrets_dir.join(
            operators
                .operator_client_secret_ref
                .trim_start_matches("file://"),
        );
        std::fs::create_dir_all(path.parent().context("a secret has a folder")?)?;
        std::fs::write(&path, secret).with_context(|| format!("writing {}", path.display()))?;
        http.put(format!(
            "{}/_sim/realms/platform/clients/{}",
            broker, operators.operator_client_id
        ))
        .json(&json!({"client_secret": secret, "redirect_uris": operators.operator_redirect_uris}))
        .send()
        .await?
        .error_for_status()?;
    }
    println!(
        "sign-in: nordlys (MitID, CPR matching) and brightwave at the broker simulator; \
         operators at its platform realm"
    );
    Ok(())
}

/// Danish and English marketing copy for Nordlys in the simulator's `nordlys` space.
async fn seed_content(http: &reqwest::Client, settings: &Settings) -> anyhow::Result<()> {
    let base = format!(
        "{}/_sim/spaces/nordlys/environments/master",
        settings.content.delivery_url.trim_end_matches('/')
    );
    let token = settings
        .content
        .tokens
        .get("env://CONTENTFUL_DEMO_TOKEN")
        .cloned()
        .unwrap_or_else(|| "demo-delivery-token".to_owned());
    http.put(&base)
        .json(&json!({"token": token}))
        .send()
        .await?
        .error_for_status()?;
    let entries = [
        (
            "fri-5g-copy",
            "fri-5g",
            "Fri tale og 5G i hele Danmark",
            "Unlimited calls and 5G across Denmark",
        ),
        (
            "fri-tale-copy",
            "fri-tale-10gb",
            "Alt det vigtige til en fast lav pris",
            "The essentials at a low fixed price",
        ),
    ];
    for (entry, offering, da, en) in entries {
        http.put(format!("{base}/entries/{entry}"))
            .json(&json!({"content_type": "offering", "fields": {
                "offeringId": {"da-DK": offering},
                "headline": {"da-DK": da, "en-GB": en}
            }}))
            .send()
            .await?
            .error_for_status()?;
    }
    println!("content for nordlys in the Contentful simulator");
    Ok(())
}
