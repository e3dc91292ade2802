//! What changed between two versions of a basket, as the events analytics count on
//! `basket.events`: created, line added / changed / removed, claimed by a customer, merged,
//! abandoned, expired. Derived from the two versions rather than from the commands, so every
//! path that changes a basket (a shopper's command, a reservation's answer, the expiry timer,
//! a merge step) reports the same way, and nothing is reported twice.

use tcom_schemas::basket::{
    BasketAbandoned, BasketCheckedOut, BasketClaimed, BasketCreated, BasketEventPayload,
    BasketExpired, BasketMerged, BasketStatus, LineChanged, LineRemoved, NewNumber, NumberChoice,
    PlanLineAdded, PortIn, SimType,
};

use super::basket::{Basket, Line, LineNumber};

/// The events that lead from `before` (none: a new basket) to `after`, in a stable order.
pub fn changes(before: Option<&Basket>, after: &Basket) -> Vec<BasketEventPayload> {
    let mut events = Vec::new();
    let Some(before) = before else {
        events.push(BasketEventPayload::BasketCreated(BasketCreated {
            channel: after.channel.clone(),
            customer_id: after.customer_id.clone(),
        }));
        events.extend(after.lines.iter().map(added));
        return events;
    };
    // A merge handed back (the target refused): the lines return, nothing a shopper did.
    if before.status != BasketStatus::Active && after.status == BasketStatus::Active {
        return events;
    }
    if before.customer_id.is_none()
        && let Some(customer) = &after.customer_id
    {
        events.push(BasketEventPayload::BasketClaimed(BasketClaimed {
            customer_id: customer.clone(),
        }));
    }
    // Lines that leave with the whole basket (merged into another one) are not "removed".
    let basket_ended = after.status != BasketStatus::Active;
    for line in &after.lines {
        match before.lines.iter().find(|l| l.line_id == line.line_id) {
            None => events.push(added(line)),
            Some(old) if configuration(old) != configuration(line) => {
                events.push(BasketEventPayload::LineChanged(LineChanged {
                    line_id: line.line_id.clone(),
                }));
            }
            Some(_) => {}
        }
    }
    if !basket_ended {
        for old in &before.lines {
            if !after.lines.iter().any(|l| l.line_id == old.line_id) {
                events.push(BasketEventPayload::LineRemoved(LineRemoved {
                    line_id: old.line_id.clone(),
                }));
            }
        }
    }
    if before.status != after.status {
        let lines = before.lines.len() as i32;
        match after.status {
            BasketStatus::Abandoned => {
                events.push(BasketEventPayload::BasketAbandoned(BasketAbandoned {
                    reason: None,
                }));
            }
            BasketStatus::Expired => {
                events.push(BasketEventPayload::BasketExpired(BasketExpired { lines }));
            }
            BasketStatus::Merged => events.push(BasketEventPayload::BasketMerged(BasketMerged {
                into_basket_id: after.merged_into.clone().unwrap_or_default(),
                lines,
            })),
            BasketStatus::CheckedOut => {
                if let Some(checkout) = &after.checkout {
                    events.push(BasketEventPayload::BasketCheckedOut(BasketCheckedOut {
                        order_id: checkout.order_id.clone(),
                        frozen_until: checkout.frozen_until,
                    }));
                }
            }
            BasketStatus::Active => unreachable!("handled above"),
        }
    }
    events
}

/// What the shopper chose for a line (its price and reservation state change by themselves).
fn configuration(line: &Line) -> impl PartialEq + '_ {
    let add_ons: Vec<(&str, u32, Option<SimType>)> = line
        .add_ons
        .iter()
        .map(|a| (a.offering_id.as_str(), a.quantity, a.sim_type))
        .collect();
    (
        line.offering_id.as_str(),
        line.sim_type,
        line.binding_months,
        add_ons,
    )
}

fn added(line: &Line) -> BasketEventPayload {
    let number = match &line.number {
        LineNumber::NewNumber { msisdn, .. } => NumberChoice::NewNumber(NewNumber {
            msisdn: msisdn.clone(),
        }),
        LineNumber::PortIn {
            msisdn,
            current_operator,
            sim_icc,
            desired_port_date,
            pac,
        } => NumberChoice::PortIn(PortIn {
            msisdn: msisdn.clone(),
            current_operator: current_operator.clone(),
            sim_icc: sim_icc.clone(),
            desired_port_date: *desired_port_date,
            pac: pac.clone(),
        }),
    };
    BasketEventPayload::PlanLineAdded(PlanLineAdded {
        line_id: line.line_id.clone(),
        offering_id: line.offering_id.clone(),
        sim_type: line.sim_type,
        number,
        binding_months: line.binding_months.map(|m| m as i32),
    })
}

#[cfg(test)]
mod tests {
    use tcom_schemas::basket::SimType;

    use super::super::basket::{AddOnLine, LinePrice, Reservation, Totals};
    use super::*;

    fn price() -> LinePrice {
        LinePrice {
            one_time_minor: 0,
            monthly_minor: 100,
            summary: String::new(),
            phases: Vec::new(),
            applied: Vec::new(),
        }
    }

    fn line(id: &str, sim: SimType, cards: u32) -> Line {
        Line {
            line_id: id.into(),
            offering_id: "fri-5g".into(),
            name: "Fri 5G".into(),
            sim_type: sim,
            number: LineNumber::NewNumber {
                msisdn: "+4591000001".into(),
                reservation: Reservation::Pending,
            },
            binding_months: Some(6),
            add_ons: (cards > 0)
                .then(|| AddOnLine {
                    offering_id: "data-sharing".into(),
                    name: "Card".into(),
                    quantity: cards,
                    price: price(),
                    sim_type: None,
                })
                .into_iter()
                .collect(),
            price: price(),
        }
    }

    fn basket(lines: Vec<Line>) -> Basket {
        Basket {
            basket_id: "b1".into(),
            tenant_id: "nordlys".into(),
            status: BasketStatus::Active,
            channel: "web".into(),
            segment: "consumer".into(),
            customer_id: None,
            currency: "DKK".into(),
            version: 1,
            created_at: 0,
            updated_at: 0,
            expires_at: 0,
            lines,
            totals: Totals::default(),
            merged_into: None,
            checkout: None,
        }
    }

    fn names(events: &[BasketEventPayload]) -> Vec<&'static str> {
        events
            .iter()
            .map(|e| match e {
                BasketEventPayload::BasketCreated(_) => "created",
                BasketEventPayload::PlanLineAdded(_) => "added",
                BasketEventPayload::LineRemoved(_) => "removed",
                BasketEventPayload::BasketAbandoned(_) => "abandoned",
                BasketEventPayload::LineChanged(_) => "changed",
                BasketEventPayload::BasketClaimed(_) => "claimed",
                BasketEventPayload::BasketMerged(_) => "merged",
                BasketEventPayload::BasketExpired(_) => "expired",
                BasketEventPayload::BasketCheckedOut(_) => "checked_out",
            })
            .collect()
    }

    #[test]
    fn a_checkout_is_one_event_and_no_line_is_removed() {
        let before = basket(vec![line("l1", SimType::Esim, 0)]);
        let mut after = before.clone();
        after.status = BasketStatus::CheckedOut;
        after.checkout = Some(crate::domain::basket::Checkout {
            order_id: "o1".into(),
            frozen_until: 5,
        });
        let events = changes(Some(&before), &after);
        assert_eq!(names(&events), vec!["checked_out"]);
        assert!(
            matches!(&events[0], BasketEventPayload::BasketCheckedOut(c) if c.order_id == "o1" && c.frozen_until == 5)
        );
    }

    #[test]
    fn a_new_basket_is_created_with_its_lines() {
        let after = basket(vec![line("l1", SimType::Esim, 0)]);
        assert_eq!(names(&changes(None, &after)), vec!["created", "added"]);
    }

    #[test]
    fn added_changed_and_removed_lines_are_told_apart_from_price_and_reservation_updates() {
        let before = basket(vec![
            line("l1", SimType::Esim, 0),
            line("l2", SimType::Esim, 0),
        ]);
        let mut after = basket(vec![
            line("l1", SimType::Psim, 0),
            line("l3", SimType::Esim, 1),
        ]);
        assert_eq!(
            names(&changes(Some(&before), &after)),
            vec!["changed", "added", "removed"]
        );
        // A new price or a reservation that came back is not the shopper's change.
        let mut repriced = before.clone();
        repriced.lines[0].price.monthly_minor = 50;
        repriced.lines[1].number = LineNumber::NewNumber {
            msisdn: "+4591000001".into(),
            reservation: Reservation::Held { until: 9 },
        };
        assert!(changes(Some(&before), &repriced).is_empty());
        after.lines[1].add_ons[0].quantity = 2;
        let more_cards = changes(Some(&after.clone()), &{
            let mut b = after.clone();
            b.lines[1].add_ons[0].quantity = 3;
            b
        });
        assert_eq!(names(&more_cards), vec!["changed"]);
    }

    #[test]
    fn claims_merges_abandonment_and_expiry_are_reported_once() {
        let before = basket(vec![line("l1", SimType::Esim, 0)]);
        let mut claimed = before.clone();
        claimed.customer_id = Some("alice".into());
        assert_eq!(names(&changes(Some(&before), &claimed)), vec!["claimed"]);
        assert!(changes(Some(&claimed), &claimed).is_empty());

        let mut merged = before.clone();
        merged.status = BasketStatus::Merged;
        merged.merged_into = Some("b2".into());
        merged.lines.clear();
        let events = changes(Some(&before), &merged);
        assert_eq!(
            names(&events),
            vec!["merged"],
            "its lines moved, not removed"
        );
        assert_eq!(
            events[0],
            BasketEventPayload::BasketMerged(BasketMerged {
                into_basket_id: "b2".into(),
                lines: 1
            })
        );

        let mut expired = before.clone();
        expired.status = BasketStatus::Expired;
        assert_eq!(names(&changes(Some(&before), &expired)), vec!["expired"]);
        let mut abandoned = before.clone();
        abandoned.status = BasketStatus::Abandoned;
        assert_eq!(
            names(&changes(Some(&before), &abandoned)),
            vec!["abandoned"]
        );
    }

    #[test]
    fn a_merge_handed_back_reports_nothing_but_an_ended_basket_still_reports_its_end() {
        let mut merged = basket(Vec::new());
        merged.status = BasketStatus::Merged;
        merged.merged_into = Some("b2".into());
        // The target refused: the lines come back and the basket is active again.
        let back = basket(vec![line("l1", SimType::Esim, 0)]);
        assert!(changes(Some(&merged), &back).is_empty());
        // From one ended state to another (expired after a merge, say) is still reported.
        let mut expired = merged.clone();
        expired.status = BasketStatus::Expired;
        assert_eq!(names(&changes(Some(&merged), &expired)), vec!["expired"]);
    }
}
