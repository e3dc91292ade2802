//! What a brand partner may put in its catalog: offerings and campaigns, checked against the
//! tenant's settings and the rest of its catalog.
//!
//! The legal binding cap is checked twice: an offering's own binding terms (direct binding)
//! and a campaign's required binding (indirect binding: the discount only applies if the
//! shopper accepts it) must both stay within the cap of every segment they are sold to.

use tcom_schemas::campaign::{AlterationTarget, CampaignDefinition, ChangeKind};
use tcom_schemas::catalog::{OfferingDefinition, OfferingKind, PriceType};
use tcom_schemas::tenant::TenantSettings;

use super::text::TextKind;
use super::violation::{Violation, Violations, is_valid_entity_id};

/// What the validators need to know about the tenant's other offerings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownOffering {
    pub kind: OfferingKind,
}

/// The smallest binding cap among `segments` (all of the tenant's when empty), with the
/// segment that sets it.
fn tightest_cap<'a>(tenant: &'a TenantSettings, segments: &[String]) -> Option<(&'a str, i32)> {
    tenant
        .segments
        .iter()
        .filter(|s| segments.is_empty() || segments.contains(&s.name))
        .map(|s| (s.name.as_str(), s.max_binding_months))
        .min_by_key(|(_, cap)| *cap)
}

fn check_segments(v: &mut Violations, tenant: &TenantSettings, segments: &[String], field: &str) {
    for (i, segment) in segments.iter().enumerate() {
        v.check(
            tenant.segments.iter().any(|s| &s.name == segment),
            "unknown_segment",
            format!("{field}/{i}"),
            || format!("the tenant has no segment {segment:?}"),
        );
    }
}

fn check_channels(v: &mut Violations, tenant: &TenantSettings, channels: &[&str], field: &str) {
    for (i, channel) in channels.iter().enumerate() {
        v.check(
            tenant.channels.iter().any(|c| c == channel),
            "unknown_channel",
            format!("{field}/{i}"),
            || format!("the tenant does not sell through {channel:?}"),
        );
    }
}

/// Every violation in an offering definition; empty when it may be saved.
/// `lookup` finds the tenant's other offerings by id.
pub fn validate_offering(
    offering_id: &str,
    def: &OfferingDefinition,
    tenant: &TenantSettings,
    lookup: &dyn Fn(&str) -> Option<KnownOffering>,
) -> Vec<Violation> {
    let mut v = Violations::default();
    v.check(
        is_valid_entity_id(offering_id),
        "invalid_id",
        "offering_id",
        || "an offering id has 1 to 64 lower-case letters, digits, '-', '_' or '.'".into(),
    );
    v.check(
        !def.name.trim().is_empty() && def.name.len() <= 200,
        "invalid_name",
        "name",
        || "an offering has a name of 1 to 200 characters".into(),
    );
    v.check_text("name", &def.name, TextKind::Line);
    if let Some(description) = &def.description {
        v.check_text("description", description, TextKind::Multiline);
    }
    v.check(
        is_valid_entity_id(&def.specification_id),
        "invalid_specification",
        "specification_id",
        || "an offering sells a product specification, named by a valid id".into(),
    );

    v.check(!def.prices.is_empty(), "price_required", "prices", || {
        "an offering has at least one price component".into()
    });
    for (i, price) in def.prices.iter().enumerate() {
        let field = format!("prices/{i}");
        v.check_text(format!("{field}/name"), &price.name, TextKind::Line);
        v.check(
            price.currency == tenant.currency,
            "currency_mismatch",
            format!("{field}/currency"),
            || format!("prices are in {}, not {}", tenant.currency, price.currency),
        );
        v.check(
            price.amount_minor >= 0,
            "negative_price",
            format!("{field}/amount_minor"),
            || "a price is never negative".into(),
        );
        v.check(
            def.prices[..i]
                .iter()
                .all(|o| o.price_type != price.price_type),
            "duplicate_price_component",
            format!("{field}/price_type"),
            || "an offering has at most one one-time and one recurring price".into(),
        );
        v.check(
            price.price_type == PriceType::OneTime
                || price.recurring_period_months.is_none_or(|m| m == 1),
            "unsupported_recurring_period",
            format!("{field}/recurring_period_months"),
            || "recurring prices are monthly".into(),
        );
    }
    let has_recurring = def
        .prices
        .iter()
        .any(|p| p.price_type == PriceType::Recurring);
    v.check(
        def.kind == OfferingKind::AddOn || has_recurring,
        "recurring_price_required",
        "prices",
        || "a plan has a monthly price".into(),
    );

    check_segments(&mut v, tenant, &def.eligible_segments, "eligible_segments");
    let cap = tightest_cap(tenant, &def.eligible_segments);
    for (i, months) in def.binding_months.iter().enumerate() {
        let field = format!("binding_months/{i}");
        v.check(*months >= 0, "invalid_binding", field.clone(), || {
            "a binding term is 0 months or more".into()
        });
        v.check(
            !def.binding_months[..i].contains(months),
            "duplicate_binding",
            field.clone(),
            || format!("{months} months is listed twice"),
        );
        if let Some((segment, cap)) = cap {
            v.check(*months <= cap, "binding_exceeds_legal_cap", field, || {
                format!("{months} months binding exceeds the {cap}-month cap of segment {segment}")
            });
        }
    }

    if def.kind == OfferingKind::Plan {
        v.check(
            !def.sim_types.is_empty(),
            "sim_type_required",
            "sim_types",
            || "a plan offers pSIM, eSIM or both".into(),
        );
    }
    for (i, sim) in def.sim_types.iter().enumerate() {
        v.check(
            !def.sim_types[..i].contains(sim),
            "duplicate_sim_type",
            format!("sim_types/{i}"),
            || "a SIM type is listed twice".into(),
        );
    }

    if def.kind == OfferingKind::AddOn {
        v.check(
            def.add_ons.is_empty(),
            "add_on_with_add_ons",
            "add_ons",
            || "an add-on cannot have add-ons of its own".into(),
        );
    }
    for (i, relation) in def.add_ons.iter().enumerate() {
        let field = format!("add_ons/{i}");
        v.check(
            0 <= relation.min && relation.min <= relation.max && relation.max <= 10,
            "invalid_add_on_limits",
            field.clone(),
            || "add-on limits need 0 <= min <= max <= 10".into(),
        );
        v.check(
            def.add_ons[..i]
                .iter()
                .all(|o| o.offering_id != relation.offering_id),
            "duplicate_add_on",
            field.clone(),
            || format!("{} is listed twice", relation.offering_id),
        );
        match lookup(&relation.offering_id) {
            Some(known) if known.kind == OfferingKind::AddOn => {}
            Some(_) => v.push(
                "not_an_add_on",
                field,
                format!("{} is a plan, not an add-on", relation.offering_id),
            ),
            None => v.push(
                "unknown_add_on",
                field,
                format!("the catalog has no offering {}", relation.offering_id),
            ),
        }
    }

    let channels: Vec<&str> = def.placements.iter().map(|p| p.channel.as_str()).collect();
    check_channels(&mut v, tenant, &channels, "placements");
    for (i, placement) in def.placements.iter().enumerate() {
        v.check(
            !channels[..i].contains(&placement.channel.as_str()),
            "duplicate_placement",
            format!("placements/{i}/channel"),
            || format!("{} is placed twice", placement.channel),
        );
        v.check(
            placement.monthly_price_minor.is_none_or(|p| p >= 0),
            "negative_price",
            format!("placements/{i}/monthly_price_minor"),
            || "a price is never negative".into(),
        );
        if let Some(name) = &placement.display_name {
            v.check_text(format!("placements/{i}/display_name"), name, TextKind::Line);
        }
        if let Some(description) = &placement.description {
            v.check_text(
                format!("placements/{i}/description"),
                description,
                TextKind::Multiline,
            );
        }
    }
    v.into_vec()
}

/// Every violation in a campaign definition; empty when it may be saved.
pub fn validate_campaign(
    campaign_id: &str,
    def: &CampaignDefinition,
    tenant: &TenantSettings,
    lookup: &dyn Fn(&str) -> Option<KnownOffering>,
) -> Vec<Violation> {
    let mut v = Violations::default();
    v.check(
        is_valid_entity_id(campaign_id),
        "invalid_id",
        "campaign_id",
        || "a campaign id has 1 to 64 lower-case letters, digits, '-', '_' or '.'".into(),
    );
    v.check(
        !def.name.trim().is_empty() && def.name.len() <= 200,
        "invalid_name",
        "name",
        || "a campaign has a name of 1 to 200 characters".into(),
    );
    v.check_text("name", &def.name, TextKind::Line);
    v.check(
        def.valid_until.is_none_or(|end| end > def.valid_from),
        "invalid_window",
        "valid_until",
        || "a campaign ends after it starts".into(),
    );
    let channels: Vec<&str> = def.channels.iter().map(String::as_str).collect();
    check_channels(&mut v, tenant, &channels, "channels");
    check_segments(&mut v, tenant, &def.segments, "segments");
    for (i, id) in def.offering_ids.iter().enumerate() {
        v.check(
            lookup(id).is_some(),
            "unknown_offering",
            format!("offering_ids/{i}"),
            || format!("the catalog has no offering {id}"),
        );
    }

    v.check(
        !def.alterations.is_empty(),
        "alteration_required",
        "alterations",
        || "a campaign changes at least one price".into(),
    );
    for (i, alteration) in def.alterations.iter().enumerate() {
        let field = format!("alterations/{i}");
        let value_ok = match alteration.change {
            ChangeKind::PercentOff => (1..=10_000).contains(&alteration.value),
            ChangeKind::AmountOff | ChangeKind::FixedPrice => alteration.value >= 0,
        };
        v.check(
            value_ok,
            "invalid_alteration",
            format!("{field}/value"),
            || "a percentage is 1 to 10000 basis points; an amount is never negative".into(),
        );
        match (alteration.target, alteration.duration_months) {
            (AlterationTarget::OneTime, Some(_)) => v.push(
                "duration_on_one_time_price",
                format!("{field}/duration_months"),
                "only recurring prices are altered for a number of months",
            ),
            (AlterationTarget::Recurring, Some(months)) => v.check(
                (1..=120).contains(&months),
                "invalid_duration",
                format!("{field}/duration_months"),
                || "a duration is 1 to 120 months".into(),
            ),
            _ => {}
        }
    }

    if let Some(required) = def.requires_binding_months {
        v.check(
            required >= 0,
            "invalid_binding",
            "requires_binding_months",
            || "a binding term is 0 months or more".into(),
        );
        if let Some((segment, cap)) = tightest_cap(tenant, &def.segments) {
            v.check(
                required <= cap,
                "indirect_binding_exceeds_legal_cap",
                "requires_binding_months",
                || {
                    format!(
                        "requiring {required} months binding binds indirectly beyond the {cap}-month cap of segment {segment}"
                    )
                },
            );
        }
        v.check(
            !def.forbidden_binding_months.contains(&required),
            "contradictory_binding",
            "forbidden_binding_months",
            || format!("{required} months is both required and forbidden"),
        );
    }
    if let Some(group) = &def.group {
        v.check(
            is_valid_entity_id(&group.name),
            "invalid_group",
            "group/name",
            || "a group is named by a valid id".into(),
        );
    }
    v.into_vec()
}

/// An offering's list prices in a channel: the one-time price, and the recurring price or the
/// channel's own monthly price where its placement sets one.
pub fn list_price(def: &OfferingDefinition, channel: &str) -> super::pricing::ListPrice {
    let price_of = |kind: PriceType| {
        def.prices
            .iter()
            .find(|p| p.price_type == kind)
            .map_or(0, |p| p.amount_minor)
    };
    let channel_price = def
        .placements
        .iter()
        .find(|p| p.channel == channel)
        .and_then(|p| p.monthly_price_minor);
    super::pricing::ListPrice {
        one_time: price_of(PriceType::OneTime),
        monthly: channel_price.unwrap_or_else(|| price_of(PriceType::Recurring)),
    }
}

/// Whether a campaign naming `targets` concerns an offering: campaigns naming offerings apply
/// to those, the others to every plan (never to add-ons unnamed).
pub fn campaign_concerns(targets: &[String], offering_id: &str, kind: OfferingKind) -> bool {
    if targets.is_empty() {
        kind == OfferingKind::Plan
    } else {
        targets.iter().any(|t| t == offering_id)
    }
}

/// The engine's view of a campaign.
pub fn pricing_campaign(campaign_id: &str, def: &CampaignDefinition) -> super::pricing::Campaign {
    use super::pricing::{Alteration, Change, GroupKind, Target};
    use tcom_schemas::campaign::GroupKind as SchemaGroupKind;
    super::pricing::Campaign {
        id: campaign_id.to_owned(),
        priority: def.priority,
        valid_from: def.valid_from,
        valid_until: def.valid_until,
        channels: def.channels.clone(),
        segments: def.segments.clone(),
        requires_binding_months: def.requires_binding_months.map(|m| m.max(0) as u32),
        forbidden_binding_months: def
            .forbidden_binding_months
            .iter()
            .map(|m| (*m).max(0) as u32)
            .collect(),
        alterations: def
            .alterations
            .iter()
            .map(|a| Alteration {
                target: match a.target {
                    AlterationTarget::OneTime => Target::OneTime,
                    AlterationTarget::Recurring => Target::Recurring,
                },
                change: match a.change {
                    ChangeKind::PercentOff => Change::PercentOff(a.value.clamp(0, 10_000) as u32),
                    ChangeKind::AmountOff => Change::AmountOff(a.value),
                    ChangeKind::FixedPrice => Change::FixedPrice(a.value),
                },
                months: a.duration_months.map(|m| m.max(0) as u32),
            })
            .collect(),
        stop_after: def.stop_after,
        group: def.group.as_ref().map(|g| {
            (
                g.name.clone(),
                match g.kind {
                    SchemaGroupKind::Exclusive => GroupKind::Exclusive,
                    SchemaGroupKind::BestDeal => GroupKind::BestDeal,
                },
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use tcom_schemas::campaign::{CampaignGroup, PriceAlteration};
    use tcom_schemas::catalog::{AddOnRelation, ChannelPlacement, OfferingPrice, SimType};

    use super::*;

    fn tenant() -> TenantSettings {
        tcom_schemas::fixtures::danish_settings(&["nordlys.example"])
    }

    fn plan() -> OfferingDefinition {
        OfferingDefinition {
            name: "Fri 5G".into(),
            description: None,
            specification_id: "mobile-5g".into(),
            prices: vec![OfferingPrice {
                name: "monthly".into(),
                price_type: PriceType::Recurring,
                amount_minor: 19_900,
                currency: "DKK".into(),
                recurring_period_months: Some(1),
            }],
            binding_months: vec![0, 6],
            sim_types: vec![SimType::Psim, SimType::Esim],
            add_ons: vec![AddOnRelation {
                offering_id: "datadeling".into(),
                min: 0,
                max: 3,
            }],
            kind: OfferingKind::Plan,
            eligible_segments: vec![],
            placements: vec![ChannelPlacement {
                channel: "web".into(),
                visible: true,
                display_name: None,
                description: None,
                sort_order: 1,
                monthly_price_minor: None,
            }],
        }
    }

    fn lookup(id: &str) -> Option<KnownOffering> {
        match id {
            "datadeling" => Some(KnownOffering {
                kind: OfferingKind::AddOn,
            }),
            "fri-5g" => Some(KnownOffering {
                kind: OfferingKind::Plan,
            }),
            _ => None,
        }
    }

    fn offering_codes(def: &OfferingDefinition) -> Vec<String> {
        validate_offering("fri-5g", def, &tenant(), &lookup)
            .into_iter()
            .map(|v| v.code)
            .collect()
    }

    fn campaign() -> CampaignDefinition {
        CampaignDefinition {
            name: "Halv pris".into(),
            priority: 1,
            valid_from: 0,
            valid_until: Some(10),
            channels: vec!["web".into()],
            segments: vec![],
            offering_ids: vec!["fri-5g".into()],
            requires_binding_months: Some(6),
            forbidden_binding_months: vec![],
            alterations: vec![PriceAlteration {
                target: AlterationTarget::Recurring,
                change: ChangeKind::PercentOff,
                value: 5_000,
                duration_months: Some(6),
            }],
            stop_after: false,
            group: Some(CampaignGroup {
                name: "welcome".into(),
                kind: tcom_schemas::campaign::GroupKind::Exclusive,
            }),
        }
    }

    fn campaign_codes(def: &CampaignDefinition) -> Vec<String> {
        validate_campaign("halv-pris", def, &tenant(), &lookup)
            .into_iter()
            .map(|v| v.code)
            .collect()
    }

    #[test]
    fn a_valid_plan_passes() {
        assert_eq!(offering_codes(&plan()), Vec::<String>::new());
    }

    #[test]
    fn direct_binding_beyond_the_cap_of_any_eligible_segment_is_refused() {
        let mut def = plan();
        def.binding_months = vec![0, 12];
        assert_eq!(offering_codes(&def), ["binding_exceeds_legal_cap"]);
        // Sold to businesses only, 12 months is within their 36-month cap.
        def.eligible_segments = vec!["business".into()];
        assert_eq!(offering_codes(&def), Vec::<String>::new());
    }

    #[test]
    fn indirect_binding_through_a_campaign_is_capped_too() {
        let mut def = campaign();
        assert_eq!(campaign_codes(&def), Vec::<String>::new());
        def.requires_binding_months = Some(12);
        assert_eq!(campaign_codes(&def), ["indirect_binding_exceeds_legal_cap"]);
        def.segments = vec!["business".into()];
        assert_eq!(campaign_codes(&def), Vec::<String>::new());
    }

    #[test]
    fn references_and_shapes_are_checked() {
        let mut def = plan();
        def.prices[0].currency = "EUR".into();
        def.add_ons = vec![
            AddOnRelation {
                offering_id: "nope".into(),
                min: 0,
                max: 1,
            },
            AddOnRelation {
                offering_id: "fri-5g".into(),
                min: 2,
                max: 1,
            },
        ];
        def.sim_types.clear();
        def.placements[0].channel = "outbound-sales".into();
        assert_eq!(
            offering_codes(&def),
            [
                "currency_mismatch",
                "sim_type_required",
                "unknown_add_on",
                "invalid_add_on_limits",
                "not_an_add_on",
                "unknown_channel"
            ]
        );
    }

    #[test]
    fn campaign_shapes_are_checked() {
        let mut def = campaign();
        def.valid_until = Some(0);
        def.offering_ids = vec!["ghost".into()];
        def.alterations.push(PriceAlteration {
            target: AlterationTarget::OneTime,
            change: ChangeKind::PercentOff,
            value: 20_000,
            duration_months: Some(3),
        });
        def.forbidden_binding_months = vec![6];
        assert_eq!(
            campaign_codes(&def),
            [
                "invalid_window",
                "unknown_offering",
                "invalid_alteration",
                "duration_on_one_time_price",
                "contradictory_binding"
            ]
        );
    }

    fn control_character_fields(violations: Vec<Violation>) -> Vec<String> {
        violations
            .into_iter()
            .filter(|v| v.code == super::super::text::CONTROL_CHARACTER)
            .map(|v| v.field)
            .collect()
    }

    #[test]
    fn an_offering_named_with_a_nul_is_refused_with_the_field() {
        let mut def = plan();
        def.name = "Plan\u{0}X".into();
        let violations = validate_offering("fri-5g", &def, &tenant(), &lookup);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert_eq!(
            (violations[0].code.as_str(), violations[0].field.as_str()),
            ("control_character", "name")
        );
    }

    #[test]
    fn every_stored_text_of_an_offering_and_a_campaign_is_checked() {
        let mut def = plan();
        def.description = Some("Two paragraphs,\n\tindented.".into());
        def.placements[0].description = Some("Line one\nline two".into());
        assert_eq!(
            offering_codes(&def),
            Vec::<String>::new(),
            "descriptions may have line feeds and tabs"
        );
        def.description = Some("bell\u{7}".into());
        def.prices[0].name = "month\u{1b}ly".into();
        def.placements[0].display_name = Some("Fri\n5G".into());
        def.placements[0].description = Some("nul\u{0}".into());
        assert_eq!(
            control_character_fields(validate_offering("fri-5g", &def, &tenant(), &lookup)),
            [
                "description",
                "prices/0/name",
                "placements/0/display_name",
                "placements/0/description"
            ]
        );

        let mut c = campaign();
        c.name = "Halv\u{0}pris".into();
        assert_eq!(
            control_character_fields(validate_campaign("halv-pris", &c, &tenant(), &lookup)),
            ["name"]
        );
    }

    #[test]
    fn campaigns_convert_for_the_engine() {
        let engine = pricing_campaign("halv-pris", &campaign());
        assert_eq!(engine.requires_binding_months, Some(6));
        assert_eq!(engine.alterations.len(), 1);
        assert_eq!(engine.alterations[0].months, Some(6));
    }
}
