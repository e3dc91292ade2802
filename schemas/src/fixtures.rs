//! Example values for tests across the workspace and for documentation: one valid Danish
//! tenant's settings that each test adjusts with struct update syntax, instead of every crate
//! spelling out its own copy. (Kept in the library rather than behind a feature so that
//! `cargo test -p tcom-schemas` and the workspace build compile the same code.)

use crate::tenant::{CustomerSegment, PaymentSettings, TenantSettings};

/// Valid settings of a Danish brand on `domains`: DKK, locales da-DK and en-GB, segments
/// `consumer` (6 months, the Danish legal cap) and `business` (36), channels `web` and
/// `app`, Stripe by secret reference, no content space, no theme.
pub fn danish_settings(domains: &[&str]) -> TenantSettings {
    TenantSettings {
        name: "Nordlys".into(),
        domains: domains.iter().map(|d| (*d).to_owned()).collect(),
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
        channels: vec!["web".into(), "app".into()],
        theme: Default::default(),
        payment: Some(PaymentSettings {
            provider: "stripe".into(),
            account_ref: "acct_1".into(),
            secret_ref: "file://stripe/nordlys".into(),
            webhook_secret_ref: None,
        }),
        content: None,
        storefront: None,
        identity: None,
    }
}
