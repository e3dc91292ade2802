//! Baskets as pure values: configuring plan lines against the tenant's catalog, pricing every
//! line with the promotion engine, and the checkout-readiness check. The basket processor
//! feeds these functions what it read from its stores and global tables and does the I/O.

use serde::{Deserialize, Serialize};
use tcom_schemas::basket::{AddOnSelection, BasketStatus, NumberChoice, SimType};
use tcom_schemas::catalog::{LifecycleStatus, OfferingKind, ProductOffering};
use tcom_schemas::tenant::TenantSettings;

use super::catalog_rules::{campaign_concerns, list_price};
use super::msisdn::Msisdn;
use super::porting::Pac;
use super::pricing::{self, Minor, PricingContext, quote, standard_vat_basis_points, vat_share};
use super::text::TextKind;
use super::violation::{Violation, Violations, is_valid_entity_id};

/// How many plan lines one basket may hold.
pub const MAX_LINES: usize = 10;
/// How far ahead a port-in may be scheduled.
pub const MAX_PORT_AHEAD_DAYS: i32 = 90;
const DAY_MS: i64 = 86_400_000;

/// A basket as the storefront sees it (also the JSON document of the `baskets` topic).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Basket {
    pub basket_id: String,
    pub tenant_id: String,
    pub status: BasketStatus,
    pub channel: String,
    pub segment: String,
    pub customer_id: Option<String>,
    pub currency: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// Abandoned (and its numbers released) when untouched until then.
    pub expires_at: i64,
    pub lines: Vec<Line>,
    pub totals: Totals,
    /// For a merged basket: where its lines went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    /// For a checked-out basket: its order and how long its prices and numbers hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkout: Option<Checkout>,
}

/// A basket frozen for its order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkout {
    /// The basket's id: a basket has at most one order.
    pub order_id: String,
    /// Prices, campaigns and number holds stay as they were frozen until then.
    pub frozen_until: i64,
}

/// A plan line: one subscription with its number, SIM and add-ons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub line_id: String,
    pub offering_id: String,
    pub name: String,
    pub sim_type: SimType,
    pub number: LineNumber,
    /// The binding the shopper accepted; `None` for none.
    pub binding_months: Option<u32>,
    pub add_ons: Vec<AddOnLine>,
    pub price: LinePrice,
}

/// How a line gets its number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LineNumber {
    /// A number from the tenant's pool, held for this basket.
    NewNumber {
        msisdn: String,
        reservation: Reservation,
    },
    /// The shopper's number, ported in from another operator.
    PortIn {
        msisdn: String,
        current_operator: String,
        sim_icc: Option<String>,
        /// Days since the Unix epoch; `None`: as soon as possible.
        desired_port_date: Option<i32>,
        /// UK: the Porting Authorisation Code (3 letters, 6 digits), upper case.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pac: Option<String>,
    },
}

impl LineNumber {
    pub fn msisdn(&self) -> &str {
        match self {
            Self::NewNumber { msisdn, .. } | Self::PortIn { msisdn, .. } => msisdn,
        }
    }

    /// The pool number this line holds (or waits for), if any.
    pub fn reserved_msisdn(&self) -> Option<&str> {
        match self {
            Self::NewNumber {
                msisdn,
                reservation: Reservation::Pending | Reservation::Held { .. },
            } => Some(msisdn),
            _ => None,
        }
    }
}

/// Where a pool number's reservation stands, as far as the basket knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Reservation {
    /// Asked for, no answer yet.
    Pending,
    Held {
        until: i64,
    },
    /// Expired or taken back: the shopper must pick another number.
    Lost {
        reason: String,
    },
}

/// Add-ons of a line, e.g. data-sharing cards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddOnLine {
    pub offering_id: String,
    pub name: String,
    pub quantity: u32,
    pub price: LinePrice,
    /// The cards' SIM type when the shopper chose one apart from the line's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim_type: Option<SimType>,
}

/// What a line (or its add-ons, for their whole quantity) costs, VAT included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinePrice {
    pub one_time_minor: Minor,
    /// The first month's price.
    pub monthly_minor: Minor,
    /// "149.50 per month for 6 months, then 299.00".
    pub summary: String,
    pub phases: Vec<PricePhase>,
    /// The campaigns that changed the price, in order.
    pub applied: Vec<String>,
}

/// A stretch of months at one price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricePhase {
    pub months: Option<u32>,
    pub monthly_minor: Minor,
}

/// The basket's totals: what is due now and the first month's price.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub one_time_minor: Minor,
    pub monthly_minor: Minor,
    /// The VAT share of `monthly_minor`, when the tenant's country rate is known.
    pub monthly_vat_minor: Option<Minor>,
}

/// A campaign as the basket needs it: whom it concerns, and the engine's view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignEntry {
    pub targets: Vec<String>,
    pub campaign: pricing::Campaign,
}

/// The tenant's catalog as the basket reads it.
pub trait CatalogLookup {
    /// An offering by id, any status.
    fn offering(&self, offering_id: &str) -> Option<ProductOffering>;
    /// The tenant's active campaigns.
    fn campaigns(&self) -> &[CampaignEntry];
}

/// A plan line as the shopper asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRequest {
    pub line_id: String,
    pub offering_id: String,
    pub sim_type: SimType,
    pub number: NumberChoice,
    pub binding_months: Option<i32>,
    pub add_ons: Vec<AddOnSelection>,
}

/// Where and when a basket is priced.
#[derive(Debug, Clone, Copy)]
pub struct Shop<'a> {
    pub tenant: &'a TenantSettings,
    pub channel: &'a str,
    pub segment: &'a str,
    pub now: i64,
}

/// A new basket.
pub fn new_basket(
    tenant_id: &str,
    basket_id: &str,
    shop: Shop<'_>,
    customer_id: Option<String>,
    ttl_ms: i64,
) -> Result<Basket, Vec<Violation>> {
    let mut v = Violations::default();
    v.check(
        shop.tenant.channels.iter().any(|c| c == shop.channel),
        "unknown_channel",
        "channel",
        || format!("the shop does not sell through {:?}", shop.channel),
    );
    v.check(
        shop.tenant.segments.iter().any(|s| s.name == shop.segment),
        "unknown_segment",
        "segment",
        || format!("the shop has no customer segment {:?}", shop.segment),
    );
    let violations = v.into_vec();
    if !violations.is_empty() {
        return Err(violations);
    }
    Ok(Basket {
        basket_id: basket_id.to_owned(),
        tenant_id: tenant_id.to_owned(),
        status: BasketStatus::Active,
        channel: shop.channel.to_owned(),
        segment: shop.segment.to_owned(),
        customer_id,
        currency: shop.tenant.currency.clone(),
        version: 1,
        created_at: shop.now,
        updated_at: shop.now,
        expires_at: shop.now + ttl_ms,
        lines: Vec::new(),
        totals: Totals::default(),
        merged_into: None,
        checkout: None,
    })
}

/// Checks a requested plan line against the catalog and the basket (`others`: the basket's
/// other lines, pending ones included) and builds it, priced. Every problem is reported.
pub fn configure_line(
    request: &LineRequest,
    others: &[&Line],
    shop: Shop<'_>,
    catalog: &impl CatalogLookup,
) -> Result<Line, Vec<Violation>> {
    let mut v = Violations::default();
    v.check(
        is_valid_entity_id(&request.line_id),
        "invalid_line_id",
        "line_id",
        || "a line id is 1-64 lower-case letters, digits, '-', '_' or '.'".to_owned(),
    );
    let plan = catalog.offering(&request.offering_id);
    let plan = match plan {
        Some(offering)
            if offering.lifecycle_status == LifecycleStatus::Active
                && offering.definition.kind == OfferingKind::Plan
                && on_sale(&offering, shop) =>
        {
            Some(offering)
        }
        _ => {
            v.push(
                "unknown_offering",
                "offering_id",
                format!(
                    "no plan {:?} is on sale in this channel and segment",
                    request.offering_id
                ),
            );
            None
        }
    };
    let number = check_number(&mut v, &request.number, others, shop);
    let mut add_ons = Vec::new();
    let mut binding = None;
    if let Some(plan) = &plan {
        (binding, add_ons) = check_configuration(
            &mut v,
            plan,
            request.sim_type,
            request.binding_months,
            &request.add_ons,
            catalog,
        );
    }
    let violations = v.into_vec();
    match (violations.is_empty(), plan, number) {
        (true, Some(plan), Some(number)) => {
            let mut line = Line {
                line_id: request.line_id.clone(),
                offering_id: plan.offering_id.clone(),
                name: plan.definition.name.clone(),
                sim_type: request.sim_type,
                number,
                binding_months: binding,
                add_ons,
                price: empty_price(),
            };
            price_line(&mut line, shop, catalog);
            Ok(line)
        }
        _ => Err(violations),
    }
}

/// A change to a line's SIM type, binding or add-ons (`None`: unchanged): the resulting
/// configuration is checked whole against the catalog as it is now. The number stays.
pub fn reconfigure_line(
    line: &Line,
    sim_type: Option<SimType>,
    binding_months: Option<i32>,
    add_ons: Option<Vec<AddOnSelection>>,
    shop: Shop<'_>,
    catalog: &impl CatalogLookup,
) -> Result<Line, Vec<Violation>> {
    let plan = catalog
        .offering(&line.offering_id)
        .filter(|o| o.lifecycle_status == LifecycleStatus::Active && on_sale(o, shop));
    let Some(plan) = plan else {
        return Err(vec![Violation::new(
            "unknown_offering",
            "offering_id",
            format!("{:?} is no longer on sale", line.offering_id),
        )]);
    };
    let sim_type = sim_type.unwrap_or(line.sim_type);
    let binding_months = binding_months.or(line.binding_months.map(|m| m as i32));
    let add_ons = add_ons.unwrap_or_else(|| {
        line.add_ons
            .iter()
            .map(|a| AddOnSelection {
                offering_id: a.offering_id.clone(),
                quantity: a.quantity as i32,
                sim_type: a.sim_type,
            })
            .collect()
    });
    let mut v = Violations::default();
    let (binding, add_ons) =
        check_configuration(&mut v, &plan, sim_type, binding_months, &add_ons, catalog);
    let violations = v.into_vec();
    if !violations.is_empty() {
        return Err(violations);
    }
    let mut changed = Line {
        sim_type,
        binding_months: binding,
        add_ons,
        ..line.clone()
    };
    price_line(&mut changed, shop, catalog);
    Ok(changed)
}

/// The plan-dependent checks of a line: SIM type, binding term, add-ons. Returns the accepted
/// binding and the add-on lines (unpriced).
fn check_configuration(
    v: &mut Violations,
    plan: &ProductOffering,
    sim_type: SimType,
    binding_months: Option<i32>,
    add_ons: &[AddOnSelection],
    catalog: &impl CatalogLookup,
) -> (Option<u32>, Vec<AddOnLine>) {
    let def = &plan.definition;
    v.check(
        def.sim_types.contains(&sim_type),
        "sim_type_not_offered",
        "sim_type",
        || {
            format!(
                "{} offers {:?} SIMs only",
                def.name,
                def.sim_types
                    .iter()
                    .map(|s| format!("{s:?}").to_uppercase())
                    .collect::<Vec<_>>()
            )
        },
    );
    let binding = check_binding(v, &def.binding_months, binding_months);
    (binding, check_add_ons(v, plan, sim_type, add_ons, catalog))
}

fn on_sale(offering: &ProductOffering, shop: Shop<'_>) -> bool {
    let def = &offering.definition;
    let in_channel = def
        .placements
        .iter()
        .any(|p| p.channel == shop.channel && p.visible);
    let in_segment =
        def.eligible_segments.is_empty() || def.eligible_segments.iter().any(|s| s == shop.segment);
    in_channel && in_segment
}

fn check_number(
    v: &mut Violations,
    choice: &NumberChoice,
    others: &[&Line],
    shop: Shop<'_>,
) -> Option<LineNumber> {
    let (text, field) = match choice {
        NumberChoice::NewNumber(n) => (&n.msisdn, "number/new_number/msisdn"),
        NumberChoice::PortIn(p) => (&p.msisdn, "number/port_in/msisdn"),
    };
    let msisdn = match Msisdn::parse_in_country(text, &shop.tenant.country) {
        Ok(m) => Some(m),
        Err(e) => {
            v.push("invalid_msisdn", field, e.to_string());
            None
        }
    };
    if let Some(m) = &msisdn {
        v.check(
            !others.iter().any(|l| l.number.msisdn() == m.as_str()),
            "number_already_in_basket",
            field,
            || format!("{m} is already on another line of this basket"),
        );
    }
    match choice {
        NumberChoice::NewNumber(_) => msisdn.map(|m| LineNumber::NewNumber {
            msisdn: m.as_str().to_owned(),
            reservation: Reservation::Pending,
        }),
        NumberChoice::PortIn(p) => {
            v.check(
                !p.current_operator.trim().is_empty() && p.current_operator.len() <= 100,
                "invalid_current_operator",
                "number/port_in/current_operator",
                || "name the operator the number comes from (at most 100 characters)".to_owned(),
            );
            v.check_text(
                "number/port_in/current_operator",
                &p.current_operator,
                TextKind::Line,
            );
            if let Some(icc) = &p.sim_icc {
                v.check(
                    is_valid_iccid(icc),
                    "invalid_sim_icc",
                    "number/port_in/sim_icc",
                    || {
                        "an ICCID has 19 or 20 digits, starts with 89 and ends with a Luhn check digit"
                            .to_owned()
                    },
                );
            }
            if let Some(day) = p.desired_port_date {
                let today = shop.now.div_euclid(DAY_MS) as i32;
                v.check(
                    day > today && day <= today + MAX_PORT_AHEAD_DAYS,
                    "invalid_port_date",
                    "number/port_in/desired_port_date",
                    || {
                        format!(
                            "a port date is from tomorrow to {MAX_PORT_AHEAD_DAYS} days ahead; leave it out for as soon as possible"
                        )
                    },
                );
            }
            let pac = check_pac(v, &shop.tenant.country, p.pac.as_deref());
            msisdn.map(|m| LineNumber::PortIn {
                msisdn: m.as_str().to_owned(),
                current_operator: p.current_operator.trim().to_owned(),
                sim_icc: p.sim_icc.clone(),
                desired_port_date: p.desired_port_date,
                pac,
            })
        }
    }
}

/// ICCID (ITU-T E.118): 19 or 20 digits, issuer prefix 89 (telecom), Luhn check digit.
/// The PAC of a UK port-in: required there (the losing provider gives it by text message),
/// three letters and six digits; elsewhere ports go without one and a PAC is refused rather
/// than silently dropped. Returns the PAC normalised, when it is valid.
fn check_pac(v: &mut Violations, country: &str, pac: Option<&str>) -> Option<String> {
    const FIELD: &str = "number/port_in/pac";
    match (country, pac) {
        ("GB", None) => {
            v.push(
                "pac_required",
                FIELD,
                "a UK number moves with the PAC its current provider gives (text PAC to 65075)",
            );
            None
        }
        ("GB", Some(text)) => match Pac::parse(text) {
            Ok(pac) => Some(pac.as_str().to_owned()),
            Err(e) => {
                v.push(e.code(), FIELD, e.to_string());
                None
            }
        },
        (_, Some(_)) => {
            v.push(
                "pac_not_used",
                FIELD,
                format!("ports in {country} do not use a PAC; leave it out"),
            );
            None
        }
        (_, None) => None,
    }
}

pub fn is_valid_iccid(text: &str) -> bool {
    let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() != text.len() || !(19..=20).contains(&digits.len()) || !text.starts_with("89") {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                *d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The accepted binding: one of the offered terms; required when "none" (0) is not offered.
fn check_binding(v: &mut Violations, offered: &[i32], chosen: Option<i32>) -> Option<u32> {
    let without_binding_allowed = offered.is_empty() || offered.contains(&0);
    match chosen {
        None | Some(0) if without_binding_allowed => None,
        None => {
            v.push(
                "binding_not_accepted",
                "binding_months",
                format!("this plan is sold with a binding of {offered:?} months: accept one"),
            );
            None
        }
        Some(months) if offered.contains(&months) => Some(months as u32),
        Some(months) => {
            v.push(
                "binding_not_offered",
                "binding_months",
                format!("a binding of {months} months is not offered (offered: {offered:?})"),
            );
            None
        }
    }
}

fn check_add_ons(
    v: &mut Violations,
    plan: &ProductOffering,
    line_sim_type: SimType,
    selections: &[AddOnSelection],
    catalog: &impl CatalogLookup,
) -> Vec<AddOnLine> {
    let mut lines = Vec::new();
    for (i, selection) in selections.iter().enumerate() {
        let field = format!("add_ons/{i}");
        if selections[..i]
            .iter()
            .any(|s| s.offering_id == selection.offering_id)
        {
            v.push(
                "duplicate_add_on",
                field,
                "list each add-on once, with its quantity",
            );
            continue;
        }
        let Some(relation) = plan
            .definition
            .add_ons
            .iter()
            .find(|r| r.offering_id == selection.offering_id)
        else {
            v.push(
                "add_on_not_eligible",
                format!("{field}/offering_id"),
                format!(
                    "{:?} cannot be added to {}",
                    selection.offering_id, plan.definition.name
                ),
            );
            continue;
        };
        let add_on = catalog
            .offering(&selection.offering_id)
            .filter(|o| o.lifecycle_status == LifecycleStatus::Active);
        let Some(add_on) = add_on else {
            v.push(
                "add_on_not_eligible",
                format!("{field}/offering_id"),
                format!("{:?} is not on sale", selection.offering_id),
            );
            continue;
        };
        if selection.quantity < relation.min || selection.quantity > relation.max {
            v.push(
                if selection.quantity > relation.max {
                    "too_many_add_ons"
                } else {
                    "too_few_add_ons"
                },
                format!("{field}/quantity"),
                format!(
                    "{} allows {} to {} of {}",
                    plan.definition.name, relation.min, relation.max, add_on.definition.name
                ),
            );
            continue;
        }
        if selection.quantity == 0 {
            continue;
        }
        // A card's SIM type is one its offering (or, when it names none, the plan) sells; the
        // line's own type is not repeated.
        let offered = if add_on.definition.sim_types.is_empty() {
            &plan.definition.sim_types
        } else {
            &add_on.definition.sim_types
        };
        if let Some(chosen) = selection.sim_type
            && !offered.contains(&chosen)
        {
            v.push(
                "sim_type_not_offered",
                format!("{field}/sim_type"),
                format!("{} comes as {offered:?} SIMs only", add_on.definition.name),
            );
            continue;
        }
        lines.push(AddOnLine {
            offering_id: add_on.offering_id.clone(),
            name: add_on.definition.name.clone(),
            quantity: selection.quantity as u32,
            price: empty_price(),
            sim_type: selection.sim_type.filter(|t| *t != line_sim_type),
        });
    }
    // Required add-ons the shopper left out.
    for relation in plan.definition.add_ons.iter().filter(|r| r.min > 0) {
        if !selections
            .iter()
            .any(|s| s.offering_id == relation.offering_id)
        {
            v.push(
                "too_few_add_ons",
                "add_ons",
                format!(
                    "{} needs at least {} of {:?}",
                    plan.definition.name, relation.min, relation.offering_id
                ),
            );
        }
    }
    lines
}

fn empty_price() -> LinePrice {
    LinePrice {
        one_time_minor: 0,
        monthly_minor: 0,
        summary: String::new(),
        phases: Vec::new(),
        applied: Vec::new(),
    }
}

/// Prices one offering for `quantity` units with the campaigns that concern it.
fn price_offering(
    offering: &ProductOffering,
    quantity: u32,
    binding_months: Option<u32>,
    shop: Shop<'_>,
    catalog: &impl CatalogLookup,
) -> LinePrice {
    let applicable: Vec<pricing::Campaign> = catalog
        .campaigns()
        .iter()
        .filter(|c| campaign_concerns(&c.targets, &offering.offering_id, offering.definition.kind))
        .map(|c| c.campaign.clone())
        .collect();
    let ctx = PricingContext {
        channel: shop.channel.to_owned(),
        segment: shop.segment.to_owned(),
        now: shop.now,
        binding_months: binding_months.unwrap_or(0),
    };
    let q = quote(
        list_price(&offering.definition, shop.channel),
        &applicable,
        &ctx,
    );
    let times = Minor::from(quantity);
    LinePrice {
        one_time_minor: q.one_time * times,
        monthly_minor: q.phases.first().map_or(0, |p| p.monthly) * times,
        summary: q.describe_recurring(),
        phases: q
            .phases
            .iter()
            .map(|p| PricePhase {
                months: p.months,
                monthly_minor: p.monthly * times,
            })
            .collect(),
        applied: q.steps.into_iter().map(|s| s.campaign).collect(),
    }
}

/// Prices a line and its add-ons as of `shop.now`. An offering that disappeared keeps its
/// last price (the readiness check reports it).
pub fn price_line(line: &mut Line, shop: Shop<'_>, catalog: &impl CatalogLookup) {
    if let Some(plan) = catalog.offering(&line.offering_id) {
        line.price = price_offering(&plan, 1, line.binding_months, shop, catalog);
    }
    for add_on in &mut line.add_ons {
        if let Some(offering) = catalog.offering(&add_on.offering_id) {
            add_on.price = price_offering(
                &offering,
                add_on.quantity,
                line.binding_months,
                shop,
                catalog,
            );
        }
    }
}

/// Prices every line again (campaigns change with time) and sums the totals.
pub fn reprice(
    basket: &mut Basket,
    tenant: &TenantSettings,
    now: i64,
    catalog: &impl CatalogLookup,
) {
    let channel = basket.channel.clone();
    let segment = basket.segment.clone();
    let shop = Shop {
        tenant,
        channel: &channel,
        segment: &segment,
        now,
    };
    let mut totals = Totals::default();
    for line in &mut basket.lines {
        price_line(line, shop, catalog);
        totals.one_time_minor += line.price.one_time_minor;
        totals.monthly_minor += line.price.monthly_minor;
        for add_on in &line.add_ons {
            totals.one_time_minor += add_on.price.one_time_minor;
            totals.monthly_minor += add_on.price.monthly_minor;
        }
    }
    totals.monthly_vat_minor = standard_vat_basis_points(&tenant.country)
        .map(|rate| vat_share(totals.monthly_minor, rate));
    basket.totals = totals;
}

/// Freezes a basket that passed [`readiness`] for its order: priced once more as of `now`
/// (the price the customer sees at checkout is the price charged), then nothing changes it.
pub fn freeze(
    basket: &mut Basket,
    tenant: &TenantSettings,
    now: i64,
    freeze_ms: i64,
    catalog: &impl CatalogLookup,
) -> Checkout {
    reprice(basket, tenant, now, catalog);
    let checkout = Checkout {
        order_id: basket.basket_id.clone(),
        frozen_until: now + freeze_ms,
    };
    basket.status = BasketStatus::CheckedOut;
    basket.checkout = Some(checkout.clone());
    checkout
}

/// Every reason the basket cannot go to checkout now; empty when it can.
pub fn readiness(basket: &Basket, now: i64) -> Vec<Violation> {
    let mut v = Violations::default();
    v.check(
        basket.status == BasketStatus::Active,
        "basket_not_active",
        "status",
        || format!("the basket is {:?}", basket.status).to_lowercase(),
    );
    v.check(
        now < basket.expires_at,
        "basket_expired",
        "expires_at",
        || "the basket has expired".to_owned(),
    );
    v.check(!basket.lines.is_empty(), "basket_empty", "lines", || {
        "add a plan first".to_owned()
    });
    v.check(
        basket.customer_id.is_some(),
        "customer_not_signed_in",
        "customer_id",
        || "sign in before checkout: the subscription needs its owner".to_owned(),
    );
    let today = now.div_euclid(DAY_MS) as i32;
    for (i, line) in basket.lines.iter().enumerate() {
        match &line.number {
            LineNumber::NewNumber {
                msisdn,
                reservation,
            } => match reservation {
                Reservation::Held { until } if *until > now => {}
                Reservation::Pending => v.push(
                    "number_reservation_pending",
                    format!("lines/{i}/number"),
                    format!("{msisdn} is still being reserved"),
                ),
                _ => v.push(
                    "number_reservation_lost",
                    format!("lines/{i}/number"),
                    format!("{msisdn} is no longer held for this basket: pick another number"),
                ),
            },
            LineNumber::PortIn {
                desired_port_date: Some(day),
                ..
            } if *day <= today => v.push(
                "invalid_port_date",
                format!("lines/{i}/number/desired_port_date"),
                "the desired port date has passed",
            ),
            LineNumber::PortIn { .. } => {}
        }
    }
    v.into_vec()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tcom_schemas::basket::{NewNumber, PortIn};
    use tcom_schemas::catalog::{
        AddOnRelation, ChannelPlacement, OfferingDefinition, OfferingPrice, PriceType,
    };
    use tcom_schemas::fixtures::danish_settings;

    use super::*;

    struct Catalog(HashMap<String, ProductOffering>, Vec<CampaignEntry>);

    impl CatalogLookup for Catalog {
        fn offering(&self, offering_id: &str) -> Option<ProductOffering> {
            self.0.get(offering_id).cloned()
        }
        fn campaigns(&self) -> &[CampaignEntry] {
            &self.1
        }
    }

    fn offering(id: &str, kind: OfferingKind, monthly: i64) -> ProductOffering {
        ProductOffering {
            tenant_id: "nordlys".into(),
            offering_id: id.into(),
            lifecycle_status: LifecycleStatus::Active,
            definition: OfferingDefinition {
                name: id.to_uppercase(),
                description: None,
                specification_id: "mobile".into(),
                prices: vec![
                    OfferingPrice {
                        name: "monthly".into(),
                        price_type: PriceType::Recurring,
                        amount_minor: monthly,
                        currency: "DKK".into(),
                        recurring_period_months: Some(1),
                    },
                    OfferingPrice {
                        name: "activation".into(),
                        price_type: PriceType::OneTime,
                        amount_minor: 9_900,
                        currency: "DKK".into(),
                        recurring_period_months: None,
                    },
                ],
                binding_months: if kind == OfferingKind::Plan {
                    vec![0, 6]
                } else {
                    Vec::new()
                },
                sim_types: vec![SimType::Esim],
                add_ons: if kind == OfferingKind::Plan {
                    vec![AddOnRelation {
                        offering_id: "share".into(),
                        min: 0,
                        max: 3,
                    }]
                } else {
                    Vec::new()
                },
                kind,
                eligible_segments: Vec::new(),
                placements: vec![ChannelPlacement {
                    channel: "web".into(),
                    visible: true,
                    display_name: None,
                    description: None,
                    sort_order: 0,
                    monthly_price_minor: None,
                }],
            },
            version: 1,
            updated_at: 0,
        }
    }

    fn catalog() -> Catalog {
        let mut offerings = HashMap::new();
        offerings.insert("plan".into(), offering("plan", OfferingKind::Plan, 29_900));
        offerings.insert(
            "share".into(),
            offering("share", OfferingKind::AddOn, 4_900),
        );
        let mut bound = offering("bound", OfferingKind::Plan, 19_900);
        bound.definition.binding_months = vec![6];
        offerings.insert("bound".into(), bound);
        Catalog(offerings, Vec::new())
    }

    const NOW: i64 = 1_795_305_600_000;

    fn web_shop(tenant: &TenantSettings) -> Shop<'_> {
        Shop {
            tenant,
            channel: "web",
            segment: "consumer",
            now: NOW,
        }
    }

    fn request(number: NumberChoice) -> LineRequest {
        LineRequest {
            line_id: "l1".into(),
            offering_id: "plan".into(),
            sim_type: SimType::Esim,
            number,
            binding_months: None,
            add_ons: vec![AddOnSelection {
                offering_id: "share".into(),
                quantity: 2,
                sim_type: None,
            }],
        }
    }

    fn new_number(msisdn: &str) -> NumberChoice {
        NumberChoice::NewNumber(NewNumber {
            msisdn: msisdn.into(),
        })
    }

    fn codes(result: Result<Line, Vec<Violation>>) -> Vec<String> {
        result.unwrap_err().into_iter().map(|v| v.code).collect()
    }

    #[test]
    fn a_valid_line_is_priced_with_its_add_ons() {
        let tenant = danish_settings(&["x.example"]);
        let shop = web_shop(&tenant);
        let line =
            configure_line(&request(new_number("20 12 34 56")), &[], shop, &catalog()).unwrap();
        assert_eq!(
            line.number.msisdn(),
            "+4520123456",
            "national input becomes E.164"
        );
        assert_eq!(line.price.monthly_minor, 29_900);
        assert_eq!(line.add_ons[0].price.monthly_minor, 2 * 4_900);
        let mut basket = new_basket("nordlys", "b1", shop, None, 60_000).unwrap();
        basket.lines.push(line);
        reprice(&mut basket, &tenant, NOW, &catalog());
        assert_eq!(basket.totals.monthly_minor, 29_900 + 9_800);
        assert_eq!(basket.totals.one_time_minor, 3 * 9_900);
        assert_eq!(
            basket.totals.monthly_vat_minor,
            Some(7_940),
            "25 % VAT is a fifth of the gross"
        );
    }

    #[test]
    fn a_data_sharing_card_comes_as_a_sim_type_its_offering_sells() {
        let tenant = danish_settings(&["x.example"]);
        let shop = web_shop(&tenant);
        let mut psim_cards = catalog();
        psim_cards.0.get_mut("share").unwrap().definition.sim_types =
            vec![SimType::Esim, SimType::Psim];
        let mut line = request(new_number("20 12 34 56"));
        line.add_ons[0].sim_type = Some(SimType::Psim);
        let configured = configure_line(&line, &[], shop, &psim_cards).unwrap();
        assert_eq!(configured.add_ons[0].sim_type, Some(SimType::Psim));
        // The line's own type is not kept apart.
        line.add_ons[0].sim_type = Some(SimType::Esim);
        let same = configure_line(&line, &[], shop, &psim_cards).unwrap();
        assert_eq!(same.add_ons[0].sim_type, None);
        // A card the catalog sells as eSIM only is not shipped as a pSIM.
        line.add_ons[0].sim_type = Some(SimType::Psim);
        let refused = configure_line(&line, &[], shop, &catalog()).unwrap_err();
        assert_eq!(
            refused
                .iter()
                .map(|v| (v.code.as_str(), v.field.as_str()))
                .collect::<Vec<_>>(),
            [("sim_type_not_offered", "add_ons/0/sim_type")]
        );
    }

    #[test]
    fn every_problem_of_a_line_is_reported_at_once() {
        let tenant = danish_settings(&["x.example"]);
        let shop = web_shop(&tenant);
        let mut bad = request(new_number("12ab"));
        bad.sim_type = SimType::Psim;
        bad.add_ons[0].quantity = 4;
        bad.binding_months = Some(12);
        assert_eq!(
            codes(configure_line(&bad, &[], shop, &catalog())),
            [
                "invalid_msisdn",
                "sim_type_not_offered",
                "binding_not_offered",
                "too_many_add_ons"
            ]
        );
        let mut bound = request(new_number("+4520123456"));
        bound.offering_id = "bound".into();
        bound.add_ons.clear();
        assert_eq!(
            codes(configure_line(&bound, &[], shop, &catalog())),
            ["binding_not_accepted"]
        );
        let mut unknown = request(new_number("+4520123456"));
        unknown.offering_id = "nope".into();
        assert_eq!(
            codes(configure_line(&unknown, &[], shop, &catalog())),
            ["unknown_offering"]
        );
        let mut not_eligible = request(new_number("+4520123456"));
        not_eligible.add_ons[0].offering_id = "plan".into();
        assert_eq!(
            codes(configure_line(&not_eligible, &[], shop, &catalog())),
            ["add_on_not_eligible"]
        );
    }

    #[test]
    fn a_number_can_be_on_one_line_only() {
        let tenant = danish_settings(&["x.example"]);
        let shop = web_shop(&tenant);
        let first =
            configure_line(&request(new_number("+4520123456")), &[], shop, &catalog()).unwrap();
        let mut second = request(new_number("+45 20 12 34 56"));
        second.line_id = "l2".into();
        assert_eq!(
            codes(configure_line(&second, &[&first], shop, &catalog())),
            ["number_already_in_basket"]
        );
    }

    #[test]
    fn port_in_details_are_checked() {
        let tenant = danish_settings(&["x.example"]);
        let shop = web_shop(&tenant);
        let today = (NOW / DAY_MS) as i32;
        let port = |icc: &str, day: i32| {
            request(NumberChoice::PortIn(PortIn {
                msisdn: "+4530123456".into(),
                current_operator: "Telia".into(),
                sim_icc: Some(icc.into()),
                desired_port_date: Some(day),
                pac: None,
            }))
        };
        assert!(
            configure_line(
                &port("8945020000000000004", today + 1),
                &[],
                shop,
                &catalog()
            )
            .is_ok()
        );
        assert_eq!(
            codes(configure_line(
                &port("8945020000000000005", today),
                &[],
                shop,
                &catalog()
            )),
            ["invalid_sim_icc", "invalid_port_date"]
        );
    }

    #[test]
    fn a_port_in_operator_with_a_control_character_is_refused_with_the_field() {
        let tenant = danish_settings(&["x.example"]);
        let shop = web_shop(&tenant);
        let line = request(NumberChoice::PortIn(PortIn {
            msisdn: "+4530123456".into(),
            current_operator: "Tel\u{0}ia".into(),
            sim_icc: None,
            desired_port_date: None,
            pac: None,
        }));
        let violations = configure_line(&line, &[], shop, &catalog()).unwrap_err();
        assert_eq!(
            violations
                .iter()
                .map(|v| (v.code.as_str(), v.field.as_str()))
                .collect::<Vec<_>>(),
            [("control_character", "number/port_in/current_operator")]
        );
    }

    #[test]
    fn iccids_need_the_telecom_prefix_and_a_luhn_digit() {
        assert!(is_valid_iccid("8945020000000000004"));
        assert!(!is_valid_iccid("8945020000000000005"));
        assert!(!is_valid_iccid("1945020000000000001"));
        assert!(!is_valid_iccid("894502000000000004"));
    }

    #[test]
    fn readiness_lists_every_problem() {
        let tenant = danish_settings(&["x.example"]);
        let shop = web_shop(&tenant);
        let mut basket = new_basket("nordlys", "b1", shop, None, 60_000).unwrap();
        let problems: Vec<String> = readiness(&basket, NOW)
            .into_iter()
            .map(|v| v.code)
            .collect();
        assert_eq!(problems, ["basket_empty", "customer_not_signed_in"]);
        let mut line =
            configure_line(&request(new_number("+4520123456")), &[], shop, &catalog()).unwrap();
        line.number = LineNumber::NewNumber {
            msisdn: "+4520123456".into(),
            reservation: Reservation::Held { until: NOW + 1_000 },
        };
        basket.lines.push(line);
        basket.customer_id = Some("c1".into());
        assert!(readiness(&basket, NOW).is_empty());
        let late: Vec<String> = readiness(&basket, NOW + 1_000)
            .into_iter()
            .map(|v| v.code)
            .collect();
        assert_eq!(late, ["number_reservation_lost"]);
        let expired: Vec<String> = readiness(&basket, NOW + 60_000)
            .into_iter()
            .map(|v| v.code)
            .collect();
        assert_eq!(expired, ["basket_expired", "number_reservation_lost"]);
    }
}
