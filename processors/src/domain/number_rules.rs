//! The life of a pool number, decided one request at a time by the task that owns the number
//! (requests are keyed by the E.164 number, so they arrive in one order on one partition; no
//! lock is needed for "never to two baskets").
//!
//! A number enters a tenant's pool once (any other tenant is refused); it is then available,
//! reserved by one basket until a deadline, or assigned to an order. A reservation whose
//! deadline has passed counts as available even before the expiry timer has released it, so a
//! reservation is never held longer than its deadline, whatever the timer's delay.

use serde::{Deserialize, Serialize};
use tcom_schemas::msisdn::{
    MsisdnEventPayload, NumberConfirmed, NumberReleased, NumberReserved, NumberStatus,
    ReleaseReason, ReservationExtended, ReservationRejected,
};

/// Who holds a pool number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Holder {
    Available,
    /// Until `until` (ms since the epoch, exclusive).
    Reserved {
        basket_id: String,
        until: i64,
    },
    Assigned {
        basket_id: String,
        order_id: String,
    },
}

/// A number of a tenant's pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolNumber {
    pub tenant_id: String,
    pub holder: Holder,
    pub version: i64,
    pub updated_at: i64,
}

impl PoolNumber {
    /// The status as the view shows it: a lapsed reservation is already available.
    pub fn status(&self) -> NumberStatus {
        match &self.holder {
            Holder::Available => NumberStatus::Available,
            Holder::Reserved { .. } => NumberStatus::Reserved,
            Holder::Assigned { .. } => NumberStatus::Assigned,
        }
    }

    /// The reservation deadline, if reserved.
    pub fn reserved_until(&self) -> Option<i64> {
        match &self.holder {
            Holder::Reserved { until, .. } => Some(*until),
            _ => None,
        }
    }
}

/// What is asked of a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    AddToPool,
    Reserve {
        basket_id: &'a str,
        ttl_ms: i64,
    },
    Extend {
        basket_id: &'a str,
        ttl_ms: i64,
    },
    Release {
        basket_id: &'a str,
    },
    Confirm {
        basket_id: &'a str,
        order_id: &'a str,
    },
    Transfer {
        from: &'a str,
        to: &'a str,
        ttl_ms: i64,
    },
    /// The expiry timer.
    Expire,
}

/// A message to a basket about the number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub basket_id: String,
    pub payload: MsisdnEventPayload,
}

/// The decision on one request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// The number's new state, when it changed.
    pub changed: Option<PoolNumber>,
    /// What baskets must be told (the one asking, and one that lost a lapsed reservation).
    pub notices: Vec<Notice>,
    /// For pool imports: why the number was not added (a stable code).
    pub refused: Option<&'static str>,
}

fn notice(basket_id: &str, payload: MsisdnEventPayload) -> Notice {
    Notice {
        basket_id: basket_id.to_owned(),
        payload,
    }
}

fn rejected(basket_id: &str, code: &str) -> Notice {
    notice(
        basket_id,
        MsisdnEventPayload::ReservationRejected(ReservationRejected {
            basket_id: basket_id.to_owned(),
            reason_code: code.to_owned(),
        }),
    )
}

fn released(basket_id: &str, reason: ReleaseReason) -> Notice {
    notice(
        basket_id,
        MsisdnEventPayload::NumberReleased(NumberReleased {
            basket_id: basket_id.to_owned(),
            reason,
        }),
    )
}

/// Decides `request` from `tenant_id` about a number in state `current` (`None`: not in any
/// pool) at time `now`.
pub fn decide(
    current: Option<&PoolNumber>,
    tenant_id: &str,
    request: Request<'_>,
    now: i64,
) -> Decision {
    let Some(number) = current else {
        return match request {
            Request::AddToPool => Decision {
                changed: Some(PoolNumber {
                    tenant_id: tenant_id.to_owned(),
                    holder: Holder::Available,
                    version: 1,
                    updated_at: now,
                }),
                ..Decision::default()
            },
            Request::Reserve { basket_id, .. } => Decision {
                notices: vec![rejected(basket_id, "number_not_in_pool")],
                ..Decision::default()
            },
            _ => Decision::default(),
        };
    };
    // Another tenant's number does not exist for this tenant: the same answer as unknown.
    if number.tenant_id != tenant_id {
        return match request {
            Request::AddToPool => Decision {
                refused: Some("number_unavailable"),
                ..Decision::default()
            },
            Request::Reserve { basket_id, .. } => Decision {
                notices: vec![rejected(basket_id, "number_not_in_pool")],
                ..Decision::default()
            },
            _ => Decision::default(),
        };
    }
    let change = |holder: Holder| PoolNumber {
        tenant_id: number.tenant_id.clone(),
        holder,
        version: number.version + 1,
        updated_at: now,
    };
    // A reservation past its deadline is over, timer or not.
    let live_holder = match &number.holder {
        Holder::Reserved { until, .. } if *until <= now => None,
        Holder::Reserved { basket_id, .. } => Some(basket_id.as_str()),
        _ => None,
    };
    let lapsed_holder = match &number.holder {
        Holder::Reserved { basket_id, until } if *until <= now => Some(basket_id.as_str()),
        _ => None,
    };

    match request {
        Request::AddToPool => Decision::default(),
        Request::Reserve { basket_id, ttl_ms } => match &number.holder {
            Holder::Assigned { .. } => Decision {
                notices: vec![rejected(basket_id, "number_assigned")],
                ..Decision::default()
            },
            _ if live_holder.is_some_and(|holder| holder != basket_id) => Decision {
                notices: vec![rejected(basket_id, "number_reserved")],
                ..Decision::default()
            },
            _ => {
                let until = now + ttl_ms;
                let mut notices = Vec::new();
                if let Some(previous) = lapsed_holder.filter(|b| *b != basket_id) {
                    notices.push(released(previous, ReleaseReason::Expired));
                }
                notices.push(notice(
                    basket_id,
                    MsisdnEventPayload::NumberReserved(NumberReserved {
                        basket_id: basket_id.to_owned(),
                        expires_at: until,
                    }),
                ));
                Decision {
                    changed: Some(change(Holder::Reserved {
                        basket_id: basket_id.to_owned(),
                        until,
                    })),
                    notices,
                    refused: None,
                }
            }
        },
        Request::Extend { basket_id, ttl_ms } => {
            if live_holder == Some(basket_id) {
                let until = now + ttl_ms;
                Decision {
                    changed: Some(change(Holder::Reserved {
                        basket_id: basket_id.to_owned(),
                        until,
                    })),
                    notices: vec![notice(
                        basket_id,
                        MsisdnEventPayload::ReservationExtended(ReservationExtended {
                            basket_id: basket_id.to_owned(),
                            expires_at: until,
                        }),
                    )],
                    refused: None,
                }
            } else if matches!(&number.holder, Holder::Assigned { basket_id: b, .. } if b == basket_id)
            {
                Decision::default()
            } else {
                // The basket thinks it holds a number it lost: tell it.
                release_lapsed(
                    number,
                    lapsed_holder,
                    now,
                    vec![released(basket_id, ReleaseReason::Expired)],
                )
            }
        }
        Request::Release { basket_id } => {
            // An order that was cancelled or failed after its numbers were confirmed gives
            // them back: only its own basket (through the order) can.
            let assigned_to_it =
                matches!(&number.holder, Holder::Assigned { basket_id: b, .. } if b == basket_id);
            if live_holder == Some(basket_id) || lapsed_holder == Some(basket_id) || assigned_to_it
            {
                Decision {
                    changed: Some(change(Holder::Available)),
                    ..Decision::default()
                }
            } else {
                Decision::default()
            }
        }
        Request::Confirm {
            basket_id,
            order_id,
        } => {
            let already_confirmed = matches!(&number.holder,
                Holder::Assigned { basket_id: b, order_id: o } if b == basket_id && o == order_id);
            if already_confirmed {
                // A confirmation asked again (a retried order step): the same answer, no change.
                Decision {
                    notices: vec![notice(
                        basket_id,
                        MsisdnEventPayload::NumberConfirmed(NumberConfirmed {
                            basket_id: basket_id.to_owned(),
                            order_id: order_id.to_owned(),
                        }),
                    )],
                    ..Decision::default()
                }
            } else if live_holder == Some(basket_id) {
                Decision {
                    changed: Some(change(Holder::Assigned {
                        basket_id: basket_id.to_owned(),
                        order_id: order_id.to_owned(),
                    })),
                    notices: vec![notice(
                        basket_id,
                        MsisdnEventPayload::NumberConfirmed(NumberConfirmed {
                            basket_id: basket_id.to_owned(),
                            order_id: order_id.to_owned(),
                        }),
                    )],
                    refused: None,
                }
            } else {
                Decision {
                    notices: vec![rejected(basket_id, "reservation_lost")],
                    ..Decision::default()
                }
            }
        }
        Request::Transfer { from, to, ttl_ms } => {
            if live_holder == Some(from) {
                let until = now + ttl_ms;
                Decision {
                    changed: Some(change(Holder::Reserved {
                        basket_id: to.to_owned(),
                        until,
                    })),
                    notices: vec![notice(
                        to,
                        MsisdnEventPayload::NumberReserved(NumberReserved {
                            basket_id: to.to_owned(),
                            expires_at: until,
                        }),
                    )],
                    refused: None,
                }
            } else {
                release_lapsed(
                    number,
                    lapsed_holder,
                    now,
                    vec![released(to, ReleaseReason::Expired)],
                )
            }
        }
        Request::Expire => release_lapsed(number, lapsed_holder, now, Vec::new()),
    }
}

/// Frees a lapsed reservation (telling its basket), plus `notices`.
fn release_lapsed(
    number: &PoolNumber,
    lapsed_holder: Option<&str>,
    now: i64,
    mut notices: Vec<Notice>,
) -> Decision {
    let Some(holder) = lapsed_holder else {
        return Decision {
            notices,
            ..Decision::default()
        };
    };
    if !notices.iter().any(|n| n.basket_id == holder) {
        notices.push(released(holder, ReleaseReason::Expired));
    }
    Decision {
        changed: Some(PoolNumber {
            tenant_id: number.tenant_id.clone(),
            holder: Holder::Available,
            version: number.version + 1,
            updated_at: now,
        }),
        notices,
        refused: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn pooled() -> PoolNumber {
        decide(None, "nordlys", Request::AddToPool, 0)
            .changed
            .unwrap()
    }

    fn reserve(basket_id: &str) -> Request<'_> {
        Request::Reserve {
            basket_id,
            ttl_ms: 15 * MIN,
        }
    }

    fn apply(number: &PoolNumber, request: Request<'_>, now: i64) -> (PoolNumber, Decision) {
        let decision = decide(Some(number), "nordlys", request, now);
        (
            decision.changed.clone().unwrap_or_else(|| number.clone()),
            decision,
        )
    }

    fn codes(decision: &Decision) -> Vec<(String, String)> {
        decision
            .notices
            .iter()
            .map(|n| {
                let what = match &n.payload {
                    MsisdnEventPayload::NumberReserved(_) => "reserved".to_owned(),
                    MsisdnEventPayload::ReservationExtended(_) => "extended".to_owned(),
                    MsisdnEventPayload::NumberReleased(r) => format!("released:{:?}", r.reason),
                    MsisdnEventPayload::NumberConfirmed(_) => "confirmed".to_owned(),
                    MsisdnEventPayload::ReservationRejected(r) => r.reason_code.clone(),
                };
                (n.basket_id.clone(), what)
            })
            .collect()
    }

    #[test]
    fn a_number_joins_one_pool_only() {
        let number = pooled();
        assert_eq!(number.status(), NumberStatus::Available);
        let again = decide(Some(&number), "nordlys", Request::AddToPool, 5);
        assert_eq!(again, Decision::default(), "a re-import changes nothing");
        let other = decide(Some(&number), "brightwave", Request::AddToPool, 5);
        assert_eq!(other.refused, Some("number_unavailable"));
        assert!(other.changed.is_none());
    }

    #[test]
    fn a_reserved_number_is_refused_to_a_second_basket_until_its_deadline() {
        let (held, first) = apply(&pooled(), reserve("b1"), 0);
        assert_eq!(codes(&first), [("b1".into(), "reserved".into())]);
        assert_eq!(held.reserved_until(), Some(15 * MIN));

        let (_, second) = apply(&held, reserve("b2"), 15 * MIN - 1);
        assert_eq!(codes(&second), [("b2".into(), "number_reserved".into())]);
        assert!(second.changed.is_none());

        // At the deadline the reservation is over even if the timer has not run yet; the
        // basket that lost it is told.
        let (taken, third) = apply(&held, reserve("b2"), 15 * MIN);
        assert_eq!(
            codes(&third),
            [
                ("b1".into(), "released:Expired".into()),
                ("b2".into(), "reserved".into())
            ]
        );
        assert!(
            matches!(taken.holder, Holder::Reserved { ref basket_id, .. } if basket_id == "b2")
        );
    }

    #[test]
    fn the_same_basket_reserving_again_extends_its_hold() {
        let (held, _) = apply(&pooled(), reserve("b1"), 0);
        let (again, decision) = apply(&held, reserve("b1"), MIN);
        assert_eq!(codes(&decision), [("b1".into(), "reserved".into())]);
        assert_eq!(again.reserved_until(), Some(16 * MIN));
    }

    #[test]
    fn other_tenants_numbers_look_like_numbers_outside_the_pool() {
        let number = pooled();
        let foreign = decide(Some(&number), "brightwave", reserve("b9"), 0);
        let unknown = decide(None, "brightwave", reserve("b9"), 0);
        assert_eq!(codes(&foreign), codes(&unknown));
        assert_eq!(
            codes(&unknown),
            [("b9".into(), "number_not_in_pool".into())]
        );
    }

    #[test]
    fn release_frees_only_the_holders_number() {
        let (held, _) = apply(&pooled(), reserve("b1"), 0);
        let (_, by_other) = apply(&held, Request::Release { basket_id: "b2" }, MIN);
        assert!(by_other.changed.is_none());
        let (freed, _) = apply(&held, Request::Release { basket_id: "b1" }, MIN);
        assert_eq!(freed.holder, Holder::Available);
    }

    #[test]
    fn the_timer_expires_lapsed_reservations_only() {
        let (held, _) = apply(&pooled(), reserve("b1"), 0);
        assert_eq!(
            apply(&held, Request::Expire, 15 * MIN - 1).1,
            Decision::default()
        );
        let (freed, decision) = apply(&held, Request::Expire, 15 * MIN);
        assert_eq!(freed.holder, Holder::Available);
        assert_eq!(codes(&decision), [("b1".into(), "released:Expired".into())]);
    }

    #[test]
    fn extending_a_lost_reservation_tells_the_basket() {
        let (held, _) = apply(&pooled(), reserve("b1"), 0);
        let (_, extended) = apply(
            &held,
            Request::Extend {
                basket_id: "b1",
                ttl_ms: MIN,
            },
            MIN,
        );
        assert_eq!(codes(&extended), [("b1".into(), "extended".into())]);
        let (_, lost) = apply(
            &held,
            Request::Extend {
                basket_id: "b1",
                ttl_ms: MIN,
            },
            16 * MIN,
        );
        assert_eq!(codes(&lost), [("b1".into(), "released:Expired".into())]);
    }

    #[test]
    fn confirm_assigns_and_then_nobody_can_reserve() {
        let (held, _) = apply(&pooled(), reserve("b1"), 0);
        let (assigned, _) = apply(
            &held,
            Request::Confirm {
                basket_id: "b1",
                order_id: "o1",
            },
            MIN,
        );
        assert_eq!(assigned.status(), NumberStatus::Assigned);
        let (_, late) = apply(&assigned, reserve("b2"), 100 * MIN);
        assert_eq!(codes(&late), [("b2".into(), "number_assigned".into())]);
        let (_, wrong) = apply(
            &held,
            Request::Confirm {
                basket_id: "b2",
                order_id: "o2",
            },
            MIN,
        );
        assert_eq!(codes(&wrong), [("b2".into(), "reservation_lost".into())]);
    }

    #[test]
    fn a_repeated_confirmation_answers_again_and_release_returns_an_assigned_number() {
        let (held, _) = apply(&pooled(), reserve("b1"), 0);
        let confirm = Request::Confirm {
            basket_id: "b1",
            order_id: "b1",
        };
        let (assigned, _) = apply(&held, confirm, MIN);
        // Long after the reservation would have lapsed: still the order's, same answer.
        let (again, repeated) = apply(&assigned, confirm, 100 * MIN);
        assert_eq!(again, assigned, "a repeated confirmation changes nothing");
        assert_eq!(codes(&repeated), [("b1".into(), "confirmed".into())]);
        // Another basket cannot free it; the order's own basket can (a cancelled order).
        let (kept, _) = apply(&assigned, Request::Release { basket_id: "b2" }, 2 * MIN);
        assert_eq!(kept.status(), NumberStatus::Assigned);
        let (freed, _) = apply(&assigned, Request::Release { basket_id: "b1" }, 2 * MIN);
        assert_eq!(freed.status(), NumberStatus::Available);
    }

    #[test]
    fn a_transfer_moves_a_live_reservation_and_reports_a_lapsed_one() {
        let (held, _) = apply(&pooled(), reserve("guest"), 0);
        let transfer = Request::Transfer {
            from: "guest",
            to: "customer",
            ttl_ms: 15 * MIN,
        };
        let (moved, decision) = apply(&held, transfer, MIN);
        assert!(
            matches!(moved.holder, Holder::Reserved { ref basket_id, .. } if basket_id == "customer")
        );
        assert_eq!(codes(&decision), [("customer".into(), "reserved".into())]);
        let (freed, late) = apply(&held, transfer, 15 * MIN);
        assert_eq!(freed.holder, Holder::Available);
        assert_eq!(
            codes(&late),
            [
                ("customer".into(), "released:Expired".into()),
                ("guest".into(), "released:Expired".into())
            ]
        );
    }
}
