//! The promotion engine: from an offering's prices, the campaigns that could apply, and the
//! shopper's context (channel, segment, time, chosen binding) to a price with a waterfall that
//! explains every step.
//!
//! Rules, all deterministic:
//! - A campaign applies when its window contains the time, it targets the channel and the
//!   segment (an empty list targets all), and the chosen binding satisfies its requirement.
//! - Precedence: higher `priority` first; equal priorities by campaign id.
//! - An *exclusive* group lets only its first applicable campaign apply. A *best-deal* group
//!   lets only the one that makes the shopper pay least over the comparison horizon apply
//!   (ties: precedence).
//! - A campaign with `stop_after` ends the chain: no campaign after it applies.
//! - Alterations apply in order to the price as altered so far, per month for recurring
//!   prices, so "-50 % for 6 months" followed by "-10 kr ongoing" gives two phases.
//! - No price ever goes below zero.
//! - All amounts are VAT-inclusive minor units; a percentage rounds half away from zero to
//!   the minor unit; the VAT share is computed from the gross, rounded the same way.

use std::collections::BTreeMap;

/// Money in minor units (øre, pence), VAT included.
pub type Minor = i64;

/// Which price components an alteration touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    OneTime,
    Recurring,
}

/// How an alteration changes a price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Percentage off, in basis points (5000 = 50 %).
    PercentOff(u32),
    /// A fixed amount off.
    AmountOff(Minor),
    /// The price becomes this amount.
    FixedPrice(Minor),
}

/// One change a campaign makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alteration {
    pub target: Target,
    pub change: Change,
    /// For recurring prices: how many months it lasts; `None` for as long as the subscription.
    pub months: Option<u32>,
}

/// How campaigns of one group compete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    /// The first applicable campaign (by precedence) wins.
    Exclusive,
    /// The campaign cheapest for the shopper wins.
    BestDeal,
}

/// A campaign as the engine needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    pub id: String,
    pub priority: i32,
    /// Milliseconds since the Unix epoch, inclusive start and exclusive end.
    pub valid_from: i64,
    pub valid_until: Option<i64>,
    /// Empty: every channel.
    pub channels: Vec<String>,
    /// Empty: every segment.
    pub segments: Vec<String>,
    /// The shopper must have chosen at least this binding (months) for the campaign to apply.
    pub requires_binding_months: Option<u32>,
    /// The campaign does not apply with these bindings (e.g. `[0]`: not without binding).
    pub forbidden_binding_months: Vec<u32>,
    pub alterations: Vec<Alteration>,
    pub stop_after: bool,
    pub group: Option<(String, GroupKind)>,
}

/// The shopper's situation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricingContext {
    pub channel: String,
    pub segment: String,
    pub now: i64,
    /// The binding the shopper chose; 0 for none.
    pub binding_months: u32,
}

/// The offering's list prices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListPrice {
    pub one_time: Minor,
    pub monthly: Minor,
}

/// A stretch of months at one monthly price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phase {
    /// `None` for the last phase, which lasts as long as the subscription.
    pub months: Option<u32>,
    pub monthly: Minor,
}

/// One line of the explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub campaign: String,
    pub description: String,
}

/// The outcome: what the shopper pays and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub one_time: Minor,
    pub phases: Vec<Phase>,
    pub steps: Vec<Step>,
}

impl Quote {
    /// "199.00 per month for 6 months, then 299.00" (minor units with two decimals).
    pub fn describe_recurring(&self) -> String {
        let money = |m: Minor| format!("{}.{:02}", m / 100, (m % 100).abs());
        let parts: Vec<String> = self
            .phases
            .iter()
            .map(|p| match p.months {
                Some(n) => format!(
                    "{} per month for {n} month{}",
                    money(p.monthly),
                    if n == 1 { "" } else { "s" }
                ),
                None => money(p.monthly),
            })
            .collect();
        match parts.split_last() {
            Some((last, [])) => format!("{last} per month"),
            Some((last, rest)) => format!("{}, then {last}", rest.join(", then ")),
            None => String::new(),
        }
    }

    /// What the shopper pays over `months`, one-time price included.
    pub fn total_over(&self, months: u32) -> Minor {
        let mut total = self.one_time;
        let mut left = months;
        for phase in &self.phases {
            let n = phase.months.map_or(left, |m| m.min(left));
            total += phase.monthly * Minor::from(n);
            left -= n;
        }
        total
    }
}

/// The standard VAT rate of a country in basis points, for the countries the platform sells
/// in; `None` for others (the tenant must not show a VAT share it does not know).
pub fn standard_vat_basis_points(country: &str) -> Option<u32> {
    match country {
        "DK" | "SE" | "NO" => Some(2_500),
        "GB" | "FR" | "AT" => Some(2_000),
        "DE" => Some(1_900),
        "NL" | "ES" => Some(2_100),
        "FI" => Some(2_550),
        "IE" => Some(2_300),
        _ => None,
    }
}

/// Months compared when choosing the best deal; longer than any legal consumer binding.
pub const BEST_DEAL_HORIZON_MONTHS: u32 = 24;

/// Rounds `amount * basis_points / 10000` half away from zero.
pub fn apply_basis_points(amount: Minor, basis_points: u32) -> Minor {
    let scaled = i128::from(amount) * i128::from(basis_points);
    let (q, r) = (scaled / 10_000, scaled % 10_000);
    let rounded = if r.abs() * 2 >= 10_000 {
        q + scaled.signum()
    } else {
        q
    };
    rounded as Minor
}

/// The VAT included in a gross amount at `rate_basis_points` (2500 = 25 %), rounded half away
/// from zero.
pub fn vat_share(gross: Minor, rate_basis_points: u32) -> Minor {
    let numerator = i128::from(gross) * i128::from(rate_basis_points);
    let denominator = 10_000 + i128::from(rate_basis_points);
    let (q, r) = (numerator / denominator, numerator % denominator);
    (if r.abs() * 2 >= denominator {
        q + numerator.signum()
    } else {
        q
    }) as Minor
}

fn applies(campaign: &Campaign, ctx: &PricingContext) -> bool {
    let in_window =
        campaign.valid_from <= ctx.now && campaign.valid_until.is_none_or(|end| ctx.now < end);
    let channel = campaign.channels.is_empty() || campaign.channels.contains(&ctx.channel);
    let segment = campaign.segments.is_empty() || campaign.segments.contains(&ctx.segment);
    let binding = campaign
        .requires_binding_months
        .is_none_or(|months| ctx.binding_months >= months)
        && !campaign
            .forbidden_binding_months
            .contains(&ctx.binding_months);
    in_window && channel && segment && binding
}

fn altered(price: Minor, change: Change) -> Minor {
    match change {
        Change::PercentOff(bp) => price - apply_basis_points(price, bp.min(10_000)),
        Change::AmountOff(amount) => price - amount.max(0),
        Change::FixedPrice(amount) => amount,
    }
    .max(0)
}

/// Monthly prices month by month, up to the month after the last one any alteration limits.
#[derive(Debug, Clone)]
struct Schedule {
    one_time: Minor,
    /// `months[i]` for month i; the last entry repeats for ever.
    months: Vec<Minor>,
}

impl Schedule {
    fn new(list: ListPrice, horizon: usize) -> Self {
        Self {
            one_time: list.one_time.max(0),
            months: vec![list.monthly.max(0); horizon],
        }
    }

    fn apply(&mut self, campaign: &Campaign, steps: &mut Vec<Step>) {
        for alteration in &campaign.alterations {
            let description = match alteration.target {
                Target::OneTime => {
                    let before = self.one_time;
                    self.one_time = altered(before, alteration.change);
                    format!("one-time {before} -> {}", self.one_time)
                }
                Target::Recurring => {
                    let until = alteration
                        .months
                        .map_or(self.months.len(), |m| (m as usize).min(self.months.len()));
                    let before = self.months[0];
                    for month in &mut self.months[..until] {
                        *month = altered(*month, alteration.change);
                    }
                    match alteration.months {
                        Some(m) => format!("monthly {before} -> {} for {m} months", self.months[0]),
                        None => format!("monthly {before} -> {}", self.months[0]),
                    }
                }
            };
            steps.push(Step {
                campaign: campaign.id.clone(),
                description,
            });
        }
    }

    fn quote(self, steps: Vec<Step>) -> Quote {
        let mut phases: Vec<Phase> = Vec::new();
        for (i, monthly) in self.months.iter().enumerate() {
            let last = i + 1 == self.months.len();
            match phases.last_mut() {
                Some(phase) if phase.monthly == *monthly => {
                    phase.months = if last {
                        None
                    } else {
                        phase.months.map(|m| m + 1)
                    };
                }
                _ => phases.push(Phase {
                    months: if last { None } else { Some(1) },
                    monthly: *monthly,
                }),
            }
        }
        Quote {
            one_time: self.one_time,
            phases,
            steps,
        }
    }
}

/// Prices an offering for a shopper.
pub fn quote(list: ListPrice, campaigns: &[Campaign], ctx: &PricingContext) -> Quote {
    let mut applicable: Vec<&Campaign> = campaigns.iter().filter(|c| applies(c, ctx)).collect();
    applicable.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| a.id.cmp(&b.id)));

    // One more month than the longest limited alteration, so the "then" price is explicit.
    let horizon = campaigns
        .iter()
        .flat_map(|c| &c.alterations)
        .filter_map(|a| a.months)
        .max()
        .unwrap_or(0) as usize
        + 1;

    // Resolve groups first: each group keeps one campaign.
    let mut winners: BTreeMap<&str, &Campaign> = BTreeMap::new();
    let mut seen_groups: Vec<&str> = Vec::new();
    for campaign in &applicable {
        let Some((group, kind)) = &campaign.group else {
            continue;
        };
        if seen_groups.contains(&group.as_str()) {
            continue;
        }
        seen_groups.push(group);
        let members: Vec<&Campaign> = applicable
            .iter()
            .copied()
            .filter(|c| c.group.as_ref().is_some_and(|(g, _)| g == group))
            .collect();
        let winner = match kind {
            GroupKind::Exclusive => members[0],
            GroupKind::BestDeal => *members
                .iter()
                .min_by_key(|c| {
                    let mut alone = Schedule::new(list, horizon);
                    alone.apply(c, &mut Vec::new());
                    alone.quote(Vec::new()).total_over(BEST_DEAL_HORIZON_MONTHS)
                })
                .expect("a group has a member"),
        };
        winners.insert(group, winner);
    }

    let mut schedule = Schedule::new(list, horizon);
    let mut steps = Vec::new();
    for campaign in applicable {
        if let Some((group, _)) = &campaign.group
            && winners
                .get(group.as_str())
                .is_none_or(|w| w.id != campaign.id)
        {
            continue;
        }
        schedule.apply(campaign, &mut steps);
        if campaign.stop_after {
            break;
        }
    }
    schedule.quote(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIST: ListPrice = ListPrice {
        one_time: 9_900,
        monthly: 29_900,
    };

    fn ctx() -> PricingContext {
        PricingContext {
            channel: "web".into(),
            segment: "consumer".into(),
            now: 1_000,
            binding_months: 0,
        }
    }

    fn campaign(id: &str, priority: i32, alterations: Vec<Alteration>) -> Campaign {
        Campaign {
            id: id.into(),
            priority,
            valid_from: 0,
            valid_until: None,
            channels: vec![],
            segments: vec![],
            requires_binding_months: None,
            forbidden_binding_months: Vec::new(),
            alterations,
            stop_after: false,
            group: None,
        }
    }

    fn monthly(change: Change, months: Option<u32>) -> Alteration {
        Alteration {
            target: Target::Recurring,
            change,
            months,
        }
    }

    #[test]
    fn half_price_for_six_months_then_list_price() {
        let q = quote(
            LIST,
            &[campaign(
                "half",
                1,
                vec![monthly(Change::PercentOff(5000), Some(6))],
            )],
            &ctx(),
        );
        assert_eq!(
            q.phases,
            vec![
                Phase {
                    months: Some(6),
                    monthly: 14_950
                },
                Phase {
                    months: None,
                    monthly: 29_900
                }
            ]
        );
        assert_eq!(
            q.describe_recurring(),
            "149.50 per month for 6 months, then 299.00"
        );
        assert_eq!(q.one_time, 9_900);
        assert_eq!(q.total_over(12), 9_900 + 6 * 14_950 + 6 * 29_900);
    }

    #[test]
    fn precedence_is_by_priority_then_id_and_stop_after_ends_the_chain() {
        let first = Campaign {
            stop_after: true,
            ..campaign("b-first", 10, vec![monthly(Change::AmountOff(5_000), None)])
        };
        let never = campaign("a-never", 5, vec![monthly(Change::PercentOff(9000), None)]);
        let q = quote(LIST, &[never, first], &ctx());
        assert_eq!(
            q.phases,
            vec![Phase {
                months: None,
                monthly: 24_900
            }]
        );
        assert_eq!(q.steps.len(), 1);
        assert_eq!(q.steps[0].campaign, "b-first");

        // Equal priority: ids decide, so the order of the input does not.
        let x = campaign("x", 1, vec![monthly(Change::FixedPrice(10_000), None)]);
        let y = campaign("y", 1, vec![monthly(Change::PercentOff(1000), None)]);
        let forward = quote(LIST, &[x.clone(), y.clone()], &ctx());
        let backward = quote(LIST, &[y, x], &ctx());
        assert_eq!(forward, backward);
        assert_eq!(forward.phases[0].monthly, 9_000);
    }

    #[test]
    fn groups_keep_one_campaign() {
        let grouped = |id: &str, priority, kind, change| Campaign {
            group: Some(("g".into(), kind)),
            ..campaign(id, priority, vec![monthly(change, None)])
        };
        // Exclusive: the higher priority wins even though the other is cheaper.
        let q = quote(
            LIST,
            &[
                grouped("small", 2, GroupKind::Exclusive, Change::AmountOff(100)),
                grouped("big", 1, GroupKind::Exclusive, Change::AmountOff(10_000)),
            ],
            &ctx(),
        );
        assert_eq!(q.phases[0].monthly, 29_800);
        // Best deal: the cheaper one wins whatever its priority.
        let q = quote(
            LIST,
            &[
                grouped("small", 2, GroupKind::BestDeal, Change::AmountOff(100)),
                grouped("big", 1, GroupKind::BestDeal, Change::AmountOff(10_000)),
            ],
            &ctx(),
        );
        assert_eq!(q.phases[0].monthly, 19_900);
        assert_eq!(q.steps.len(), 1);
    }

    #[test]
    fn targeting_window_and_binding_decide_eligibility() {
        let mut c = campaign("c", 1, vec![monthly(Change::AmountOff(1_000), None)]);
        c.channels = vec!["app".into()];
        assert!(
            quote(LIST, std::slice::from_ref(&c), &ctx())
                .steps
                .is_empty()
        );
        c.channels = vec![];
        c.valid_until = Some(1_000);
        assert!(
            quote(LIST, std::slice::from_ref(&c), &ctx())
                .steps
                .is_empty(),
            "the end is exclusive"
        );
        c.valid_until = None;
        c.requires_binding_months = Some(6);
        assert!(
            quote(LIST, std::slice::from_ref(&c), &ctx())
                .steps
                .is_empty()
        );
        let bound = PricingContext {
            binding_months: 6,
            ..ctx()
        };
        assert_eq!(quote(LIST, &[c], &bound).steps.len(), 1);
    }

    #[test]
    fn rounding_is_half_away_from_zero_and_vat_comes_from_the_gross() {
        assert_eq!(apply_basis_points(14_999, 5000), 7_500);
        assert_eq!(apply_basis_points(3, 5000), 2);
        assert_eq!(apply_basis_points(1, 4999), 0);
        assert_eq!(vat_share(12_500, 2500), 2_500);
        assert_eq!(vat_share(9_900, 2500), 1_980);
        assert_eq!(vat_share(1, 2000), 0);
    }

    fn arb_change() -> impl Strategy<Value = Change> {
        prop_oneof![
            (0u32..=12_000).prop_map(Change::PercentOff),
            (-1_000i64..50_000).prop_map(Change::AmountOff),
            (0i64..50_000).prop_map(Change::FixedPrice),
        ]
    }

    fn arb_campaign() -> impl Strategy<Value = Campaign> {
        (
            "[a-e]",
            -3i32..3,
            proptest::collection::vec(
                (any::<bool>(), arb_change(), proptest::option::of(1u32..13)).prop_map(
                    |(one, change, months)| Alteration {
                        target: if one {
                            Target::OneTime
                        } else {
                            Target::Recurring
                        },
                        change,
                        months,
                    },
                ),
                0..3,
            ),
            any::<bool>(),
            proptest::option::of((prop_oneof![Just("g1"), Just("g2")], any::<bool>())),
        )
            .prop_map(|(id, priority, alterations, stop_after, group)| Campaign {
                stop_after,
                group: group.map(|(g, best)| {
                    (
                        g.to_owned(),
                        if best {
                            GroupKind::BestDeal
                        } else {
                            GroupKind::Exclusive
                        },
                    )
                }),
                ..campaign(&id, priority, alterations)
            })
    }

    proptest! {
        #[test]
        fn prices_are_never_negative_and_never_above_list_without_fixed_prices(
            one_time in 0i64..100_000,
            monthly_price in 0i64..100_000,
            campaigns in proptest::collection::vec(arb_campaign(), 0..6),
        ) {
            let list = ListPrice { one_time, monthly: monthly_price };
            let q = quote(list, &campaigns, &ctx());
            prop_assert!(q.one_time >= 0);
            prop_assert!(q.phases.iter().all(|p| p.monthly >= 0));
            prop_assert_eq!(q.phases.last().and_then(|p| p.months), None, "the last phase lasts");
            let raises = campaigns.iter().flat_map(|c| &c.alterations).any(|a| matches!(a.change, Change::FixedPrice(_) | Change::AmountOff(i64::MIN..=-1)));
            if !raises {
                prop_assert!(q.one_time <= one_time);
                prop_assert!(q.phases.iter().all(|p| p.monthly <= monthly_price));
            }
        }

        #[test]
        fn the_quote_does_not_depend_on_the_order_campaigns_are_listed_in(
            campaigns in proptest::collection::vec(arb_campaign(), 0..6),
        ) {
            // Ids may repeat in generated data; precedence needs unique ids.
            let mut unique = campaigns;
            unique.sort_by(|a, b| a.id.cmp(&b.id));
            unique.dedup_by(|a, b| a.id == b.id);
            let mut reversed = unique.clone();
            reversed.reverse();
            prop_assert_eq!(quote(LIST, &unique, &ctx()), quote(LIST, &reversed, &ctx()));
        }

        #[test]
        fn phases_add_up_to_the_month_by_month_price(
            campaigns in proptest::collection::vec(arb_campaign(), 0..6),
            months in 0u32..40,
        ) {
            let q = quote(LIST, &campaigns, &ctx());
            let by_phase = q.total_over(months);
            let mut by_month = q.one_time;
            let mut phases = q.phases.iter();
            let mut current = phases.next().copied();
            let mut used = 0;
            for _ in 0..months {
                let phase = current.expect("the last phase lasts for ever");
                by_month += phase.monthly;
                used += 1;
                if phase.months == Some(used) {
                    current = phases.next().copied();
                    used = 0;
                }
            }
            prop_assert_eq!(by_phase, by_month);
        }
    }
}
