//! What a platform operator may configure for a tenant.
//!
//! Binding caps are legal terms, not preferences: a consumer segment's cap may not exceed what
//! the tenant's country allows (Denmark: 6 months, including binding through a promotion;
//! EU/EEA and the UK: 24 months). Business segments are capped only by the operator's own
//! setting.

use tcom_schemas::tenant::TenantSettings;

use super::hostname::normalise_host;
use super::text::{TextKind, control_character};
use super::violation::{Violation, Violations};

/// The sales channels the platform knows; a tenant picks some of them.
pub const CHANNELS: &[&str] = &["web", "app", "partner-portal", "outbound-sales"];

/// The segment name the consumer-protection caps apply to.
pub const CONSUMER_SEGMENT: &str = "consumer";

/// Payment providers the platform integrates with.
pub const PAYMENT_PROVIDERS: &[&str] = &["stripe", "adyen"];

/// The longest binding (months) the law of `country` allows for consumers, when known.
pub fn legal_consumer_binding_cap(country: &str) -> Option<i32> {
    const EU_EEA_UK: &[&str] = &[
        "AT", "BE", "BG", "HR", "CY", "CZ", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
        "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO", "GB",
    ];
    match country {
        "DK" => Some(6),
        c if EU_EEA_UK.contains(&c) => Some(24),
        _ => None,
    }
}

/// A reference to a secret held elsewhere (`file://…` under the secrets directory, `env://…`),
/// never a secret itself: the schemes the platform's secret store resolves.
fn is_secret_reference(text: &str) -> bool {
    ["file://", "env://"]
        .iter()
        .any(|scheme| text.starts_with(scheme) && text.len() > scheme.len())
}

fn is_locale(text: &str) -> bool {
    let mut parts = text.split('-');
    let language = parts.next().unwrap_or_default();
    let region = parts.next();
    (2..=3).contains(&language.len())
        && language.chars().all(|c| c.is_ascii_lowercase())
        && region.is_none_or(|r| r.len() == 2 && r.chars().all(|c| c.is_ascii_uppercase()))
        && parts.next().is_none()
}

fn is_upper_code(text: &str, len: usize) -> bool {
    text.len() == len && text.chars().all(|c| c.is_ascii_uppercase())
}

/// Every violation in a tenant's settings, in field order; empty when they are valid.
pub fn validate_settings(settings: &TenantSettings) -> Vec<Violation> {
    let mut v = Violations::default();
    let s = settings;
    v.check(
        !s.name.trim().is_empty() && s.name.len() <= 200,
        "invalid_name",
        "name",
        || "a tenant has a name of 1 to 200 characters".into(),
    );
    v.check_text("name", &s.name, TextKind::Line);

    v.check(!s.domains.is_empty(), "domain_required", "domains", || {
        "a tenant needs at least one domain".into()
    });
    let mut seen = Vec::new();
    for (i, domain) in s.domains.iter().enumerate() {
        if let Some(bad) = control_character(format!("domains/{i}"), domain, TextKind::Line) {
            v.add(bad);
            continue;
        }
        match normalise_host(domain) {
            Some(normal) if normal == *domain && normal.contains('.') => {
                v.check(
                    !seen.contains(&normal),
                    "duplicate_domain",
                    format!("domains/{i}"),
                    || format!("{domain} is listed twice"),
                );
                seen.push(normal);
            }
            _ => v.push(
                "invalid_domain",
                format!("domains/{i}"),
                format!("{domain:?} is not a lower-case host name without port"),
            ),
        }
    }

    for (i, locale) in s.locales.iter().enumerate() {
        v.check(
            is_locale(locale),
            "invalid_locale",
            format!("locales/{i}"),
            || format!("{locale:?} is not a locale such as da-DK"),
        );
    }
    v.check(
        s.locales.contains(&s.default_locale),
        "invalid_default_locale",
        "default_locale",
        || format!("{} is not among the tenant's locales", s.default_locale),
    );
    v.check(
        is_upper_code(&s.currency, 3),
        "invalid_currency",
        "currency",
        || format!("{:?} is not an ISO 4217 code", s.currency),
    );
    v.check(
        is_upper_code(&s.country, 2),
        "invalid_country",
        "country",
        || format!("{:?} is not an ISO 3166-1 alpha-2 code", s.country),
    );

    v.check(
        !s.segments.is_empty(),
        "segment_required",
        "segments",
        || "a tenant sells to at least one customer segment".into(),
    );
    let legal_cap = legal_consumer_binding_cap(&s.country);
    for (i, segment) in s.segments.iter().enumerate() {
        let field = format!("segments/{i}");
        v.check(
            super::violation::is_valid_entity_id(&segment.name),
            "invalid_segment",
            format!("{field}/name"),
            || format!("{:?} is not a valid segment name", segment.name),
        );
        v.check(
            s.segments[..i].iter().all(|o| o.name != segment.name),
            "duplicate_segment",
            format!("{field}/name"),
            || format!("segment {} is listed twice", segment.name),
        );
        v.check(
            (0..=60).contains(&segment.max_binding_months),
            "invalid_binding_cap",
            format!("{field}/max_binding_months"),
            || "a binding cap is 0 to 60 months".into(),
        );
        if segment.name == CONSUMER_SEGMENT
            && let Some(cap) = legal_cap
        {
            v.check(
                segment.max_binding_months <= cap,
                "binding_cap_above_legal_maximum",
                format!("{field}/max_binding_months"),
                || {
                    format!(
                        "consumers in {} may be bound for at most {cap} months, not {}",
                        s.country, segment.max_binding_months
                    )
                },
            );
        }
    }

    v.check(
        !s.channels.is_empty(),
        "channel_required",
        "channels",
        || "a tenant sells through at least one channel".into(),
    );
    for (i, channel) in s.channels.iter().enumerate() {
        v.check(
            CHANNELS.contains(&channel.as_str()),
            "unknown_channel",
            format!("channels/{i}"),
            || format!("{channel:?} is not one of {}", CHANNELS.join(", ")),
        );
    }

    for (key, value) in &s.theme {
        // The key is not put into the field path when it is the offending text.
        if let Some(bad) = control_character("theme", key, TextKind::Line) {
            v.add(bad);
            continue;
        }
        v.check_text(format!("theme/{key}"), value, TextKind::Line);
        v.check(
            key.len() <= 64 && value.len() <= 1024,
            "invalid_theme",
            format!("theme/{key}"),
            || "theme keys have at most 64 characters, values at most 1024".into(),
        );
    }

    if let Some(payment) = &s.payment {
        v.check(
            PAYMENT_PROVIDERS.contains(&payment.provider.as_str()),
            "unknown_payment_provider",
            "payment/provider",
            || {
                format!(
                    "{:?} is not one of {}",
                    payment.provider,
                    PAYMENT_PROVIDERS.join(", ")
                )
            },
        );
        v.check(
            is_secret_reference(&payment.secret_ref),
            "secret_not_a_reference",
            "payment/secret_ref",
            || "give a reference to the secret (file://…, env://…), never the secret itself".into(),
        );
        if let Some(webhook) = &payment.webhook_secret_ref {
            v.check(
                is_secret_reference(webhook),
                "secret_not_a_reference",
                "payment/webhook_secret_ref",
                || "give a reference to the webhook secret (file://…, env://…), never the secret itself".into(),
            );
            v.check_text("payment/webhook_secret_ref", webhook, TextKind::Line);
        }
        v.check_text("payment/account_ref", &payment.account_ref, TextKind::Line);
        v.check_text("payment/secret_ref", &payment.secret_ref, TextKind::Line);
    }
    if let Some(content) = &s.content {
        v.check(
            !content.space_id.is_empty() && !content.environment.is_empty(),
            "invalid_content_settings",
            "content/space_id",
            || "a content space needs an id and an environment".into(),
        );
        v.check(
            is_secret_reference(&content.access_token_ref),
            "secret_not_a_reference",
            "content/access_token_ref",
            || "give a reference to the token (file://…, env://…), never the token itself".into(),
        );
        v.check_text("content/space_id", &content.space_id, TextKind::Line);
        v.check_text("content/environment", &content.environment, TextKind::Line);
        v.check_text(
            "content/access_token_ref",
            &content.access_token_ref,
            TextKind::Line,
        );
    }
    if let Some(policy) = &s.storefront {
        v.check(
            (2..=7 * 86_400).contains(&policy.basket_ttl_seconds),
            "invalid_storefront_policy",
            "storefront/basket_ttl_seconds",
            || "a basket lives 2 seconds to 7 days".into(),
        );
        v.check(
            (1..=policy.basket_ttl_seconds.max(1)).contains(&policy.reservation_ttl_seconds),
            "invalid_storefront_policy",
            "storefront/reservation_ttl_seconds",
            || "a number is held at least a second and at most as long as its basket lives".into(),
        );
        v.check(
            (1..=100_000).contains(&policy.requests_per_second),
            "invalid_storefront_policy",
            "storefront/requests_per_second",
            || "allow 1 to 100000 storefront requests per second".into(),
        );
    }
    if let Some(identity) = &s.identity {
        check_identity(&mut v, identity);
    }
    v.into_vec()
}

/// What an owner's verification may end in when it fails.
pub const OWNER_VERIFICATION_FAILURE_OUTCOMES: &[&str] = &["fail", "hold"];
/// NSIS levels of assurance a tenant may require.
pub const ASSURANCE_LEVELS: &[&str] = &["low", "substantial", "high"];

/// A broker's issuer: `https://…`, or `http://` on the loopback interface (simulators).
fn is_issuer_url(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once("://") else {
        return false;
    };
    let host = rest.split(['/', ':']).next().unwrap_or_default();
    let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
    !host.is_empty()
        && !text.ends_with('/')
        && !text.contains(['?', '#'])
        && (scheme == "https" || (scheme == "http" && loopback))
}

fn check_identity(v: &mut Violations, identity: &tcom_schemas::tenant::IdentitySettings) {
    v.check(
        is_issuer_url(&identity.issuer),
        "invalid_identity_settings",
        "identity/issuer",
        || "the broker's issuer is an https:// URL without a trailing slash (http:// only on the loopback interface)".into(),
    );
    v.check(
        !identity.client_id.trim().is_empty(),
        "invalid_identity_settings",
        "identity/client_id",
        || "the client id the broker registered for this tenant".into(),
    );
    v.check(
        is_secret_reference(&identity.client_secret_ref),
        "secret_not_a_reference",
        "identity/client_secret_ref",
        || {
            "give a reference to the client secret (file://…, env://…), never the secret itself"
                .into()
        },
    );
    v.check(
        identity.scopes.iter().any(|s| s == "openid"),
        "invalid_identity_settings",
        "identity/scopes",
        || "OpenID Connect needs the openid scope".into(),
    );
    v.check_text("identity/issuer", &identity.issuer, TextKind::Line);
    v.check_text("identity/client_id", &identity.client_id, TextKind::Line);
    v.check_text(
        "identity/client_secret_ref",
        &identity.client_secret_ref,
        TextKind::Line,
    );
    for (i, scope) in identity.scopes.iter().enumerate() {
        v.check(
            !scope.is_empty() && scope.chars().all(|c| c.is_ascii_graphic()),
            "invalid_identity_settings",
            format!("identity/scopes/{i}"),
            || "a scope is one word of visible ASCII characters".into(),
        );
    }
    if let Some(policy) = &identity.owner_verification {
        v.check(
            ASSURANCE_LEVELS.contains(&policy.min_assurance.as_str()),
            "invalid_identity_settings",
            "identity/owner_verification/min_assurance",
            || format!("one of {}", ASSURANCE_LEVELS.join(", ")),
        );
        v.check(
            (0..=120).contains(&policy.min_age),
            "invalid_identity_settings",
            "identity/owner_verification/min_age",
            || "an age from 0 to 120 years".into(),
        );
        v.check(
            OWNER_VERIFICATION_FAILURE_OUTCOMES.contains(&policy.on_failure.as_str()),
            "invalid_identity_settings",
            "identity/owner_verification/on_failure",
            || format!("one of {}", OWNER_VERIFICATION_FAILURE_OUTCOMES.join(", ")),
        );
        v.check(
            (60..=7 * 86_400).contains(&policy.timeout_seconds),
            "invalid_identity_settings",
            "identity/owner_verification/timeout_seconds",
            || "from a minute to 7 days".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn danish() -> TenantSettings {
        tcom_schemas::fixtures::danish_settings(&["nordlys.example"])
    }

    fn codes(settings: &TenantSettings) -> Vec<String> {
        validate_settings(settings)
            .into_iter()
            .map(|v| v.code)
            .collect()
    }

    #[test]
    fn valid_settings_pass() {
        assert_eq!(codes(&danish()), Vec::<String>::new());
    }

    #[test]
    fn a_danish_consumer_cap_above_six_months_is_refused() {
        let mut s = danish();
        s.segments[0].max_binding_months = 12;
        assert_eq!(codes(&s), ["binding_cap_above_legal_maximum"]);
        s.country = "DE".into();
        s.currency = "EUR".into();
        assert_eq!(
            codes(&s),
            Vec::<String>::new(),
            "12 months is fine in Germany"
        );
        s.segments[0].max_binding_months = 25;
        assert_eq!(codes(&s), ["binding_cap_above_legal_maximum"]);
    }

    #[test]
    fn control_characters_are_refused_in_every_stored_text_with_its_field() {
        let mut s = danish();
        s.name = "Nord\u{0}lys".into();
        s.domains = vec!["ok.example".into(), "bad\u{0}.example".into()];
        s.theme.insert("primary\u{1}".into(), "#fff".into());
        s.theme.insert("font".into(), "Inter\u{7f}".into());
        s.payment.as_mut().unwrap().account_ref = "acct\u{0}".into();
        s.payment.as_mut().unwrap().secret_ref = "file://x\u{0}".into();
        s.content = Some(tcom_schemas::tenant::ContentSettings {
            space_id: "space\n".into(),
            environment: "master\u{0}".into(),
            access_token_ref: "env://TOKEN\u{0}".into(),
        });
        let found: Vec<(String, String)> = validate_settings(&s)
            .into_iter()
            .map(|v| (v.code, v.field))
            .collect();
        let expected = [
            "name",
            "domains/1",
            "theme/font",
            "theme",
            "payment/account_ref",
            "payment/secret_ref",
            "content/space_id",
            "content/environment",
            "content/access_token_ref",
        ];
        assert_eq!(
            found,
            expected
                .iter()
                .map(|f| (
                    super::super::text::CONTROL_CHARACTER.to_owned(),
                    (*f).to_owned()
                ))
                .collect::<Vec<_>>()
        );
    }

    fn mitid() -> tcom_schemas::tenant::IdentitySettings {
        tcom_schemas::tenant::IdentitySettings {
            issuer: "https://broker.example/realms/nordlys".into(),
            client_id: "nordlys-shop".into(),
            client_secret_ref: "file://oidc/nordlys".into(),
            scopes: vec!["openid".into(), "mitid".into(), "ssn".into()],
            cpr_matching: true,
            owner_verification: Some(tcom_schemas::tenant::OwnerVerificationPolicy {
                min_assurance: "substantial".into(),
                min_age: 18,
                on_failure: "fail".into(),
                timeout_seconds: 1800,
            }),
        }
    }

    #[test]
    fn a_broker_is_configured_by_reference_with_a_known_policy() {
        let mut s = danish();
        s.identity = Some(mitid());
        assert_eq!(codes(&s), Vec::<String>::new());
        let loopback = s.identity.as_mut().unwrap();
        loopback.issuer = "http://127.0.0.1:38093/realms/nordlys".into();
        assert_eq!(
            codes(&s),
            Vec::<String>::new(),
            "simulators run on loopback"
        );

        let bad = s.identity.as_mut().unwrap();
        bad.issuer = "http://broker.example/realms/x".into();
        bad.client_secret_ref = "s3cr3t".into();
        bad.scopes = vec!["mitid".into(), "has space".into()];
        let policy = bad.owner_verification.as_mut().unwrap();
        policy.min_assurance = "medium".into();
        policy.min_age = -1;
        policy.on_failure = "ignore".into();
        policy.timeout_seconds = 5;
        let found: Vec<(String, String)> = validate_settings(&s)
            .into_iter()
            .map(|v| (v.code, v.field))
            .collect();
        let fields: Vec<&str> = found.iter().map(|(_, f)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "identity/issuer",
                "identity/client_secret_ref",
                "identity/scopes",
                "identity/scopes/1",
                "identity/owner_verification/min_assurance",
                "identity/owner_verification/min_age",
                "identity/owner_verification/on_failure",
                "identity/owner_verification/timeout_seconds",
            ]
        );
        assert_eq!(found[1].0, "secret_not_a_reference");
        for trailing in [
            "https://broker.example/",
            "https://broker.example?x=1",
            "ftp://x",
        ] {
            assert!(!is_issuer_url(trailing), "{trailing}");
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut s = danish();
        s.domains = vec![
            "Nordlys.example:80".into(),
            "ok.example".into(),
            "ok.example".into(),
        ];
        s.currency = "dkk".into();
        s.channels = vec!["fax".into()];
        s.payment.as_mut().unwrap().secret_ref = "sk_live_abc".into();
        assert_eq!(
            codes(&s),
            [
                "invalid_domain",
                "duplicate_domain",
                "invalid_currency",
                "unknown_channel",
                "secret_not_a_reference"
            ]
        );
    }
}
