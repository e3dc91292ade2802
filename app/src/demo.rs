//! Demo tenants for the local run: a Danish MVNO in DKK (consumer binding capped at 6 months
//! by Danish law) and a UK brand in GBP (24 months, the EU-derived cap the UK kept).
//!
//! Their domains end in `.localhost`, which resolves to the loopback address, so
//! `curl http://nordlys.localhost:8080/v1/storefront/tenant` reaches the local ingress as that
//! brand.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tcom_ingress::Settings;
use tcom_schemas::tenant::{
    CustomerSegment, PaymentSettings, Tenant, TenantSettings, TenantStatus,
};
use tcom_schemas::{Codec, Contract};

/// A fixed timestamp, so seeding twice writes identical records.
const SEEDED_AT: i64 = 1_795_305_600_000;

fn theme(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The demo tenants.
pub(crate) fn tenants() -> Vec<Tenant> {
    vec![
        Tenant {
            tenant_id: "nordlys".into(),
            status: TenantStatus::Active,
            settings: TenantSettings {
                name: "Nordlys Mobil".into(),
                domains: vec!["nordlys.localhost".into(), "shop.nordlys.localhost".into()],
                default_locale: "da-DK".into(),
                locales: vec!["da-DK".into(), "en-GB".into()],
                currency: "DKK".into(),
                country: "DK".into(),
                segments: vec![
                    CustomerSegment {
                        name: "consumer".into(),
                        max_binding_months: 6,
                    },
                    CustomerSegment {
                        name: "business".into(),
                        max_binding_months: 36,
                    },
                ],
                channels: vec!["web".into(), "app".into(), "outbound".into()],
                theme: theme(&[
                    ("primary_color", "#0b3d91"),
                    ("logo_url", "/assets/nordlys.svg"),
                ]),
                payment: Some(PaymentSettings {
                    provider: "stripe".into(),
                    account_ref: "acct_demo_nordlys".into(),
                    secret_ref: "vault://payments/nordlys/stripe".into(),
                }),
                content: None,
            },
            version: 1,
            updated_at: SEEDED_AT,
        },
        Tenant {
            tenant_id: "brightwave".into(),
            status: TenantStatus::Active,
            settings: TenantSettings {
                name: "Brightwave".into(),
                domains: vec!["brightwave.localhost".into()],
                default_locale: "en-GB".into(),
                locales: vec!["en-GB".into()],
                currency: "GBP".into(),
                country: "GB".into(),
                segments: vec![CustomerSegment {
                    name: "consumer".into(),
                    max_binding_months: 24,
                }],
                channels: vec!["web".into(), "partner".into()],
                theme: theme(&[
                    ("primary_color", "#ff6f00"),
                    ("logo_url", "/assets/brightwave.svg"),
                ]),
                payment: Some(PaymentSettings {
                    provider: "adyen".into(),
                    account_ref: "BrightwaveECOM".into(),
                    secret_ref: "vault://payments/brightwave/adyen".into(),
                }),
                content: None,
            },
            version: 1,
            updated_at: SEEDED_AT,
        },
    ]
}

/// Publishes the demo tenants.
pub(crate) async fn seed(settings: &Settings) -> anyhow::Result<()> {
    let codec = Codec::new(&settings.schema_registry.url)?;
    let producer: FutureProducer = settings.kafka_settings().idempotent_producer().create()?;
    for tenant in tenants() {
        let payload = codec
            .encode(&tenant)
            .await
            .context("encoding a demo tenant")?;
        producer
            .send(
                FutureRecord::to(Tenant::TOPIC)
                    .key(&tenant.tenant_id)
                    .payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .with_context(|| format!("publishing tenant {}", tenant.tenant_id))?;
        println!(
            "tenant {} on {}",
            tenant.tenant_id,
            tenant.settings.domains.join(", ")
        );
    }
    Ok(())
}
