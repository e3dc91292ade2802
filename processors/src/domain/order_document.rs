//! The order as the APIs show it: a TMF622 `ProductOrder` (v4) with the platform's few
//! additions under names TMF622 does not use (`paymentAction`, `step`, `@baseType`-free).
//! Money is TMF's `Money {unit, value}` with the value in major units (two decimals, as every
//! currency the platform sells in has), plus `valueMinor` so clients never round.

use serde_json::{Value, json};
use tcom_schemas::order::OrderState;

use super::basket::LinePrice;
use super::order::{Order, OrderItem, Step};
use super::pricing::Minor;

fn money(currency: &str, minor: Minor) -> Value {
    json!({
        "unit": currency,
        "value": (minor as f64) / 100.0,
        "valueMinor": minor,
    })
}

fn iso(ms: i64) -> Value {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map_or(Value::Null, Value::String)
}

/// TMF622 `OrderPrice[]` of one item: the one-time charge and the recurring one, with the
/// campaigns that altered them as `priceAlteration`.
fn item_prices(currency: &str, price: &LinePrice) -> Value {
    let alterations: Vec<Value> = price
        .applied
        .iter()
        .map(|campaign| json!({"name": campaign, "priceType": "recurring"}))
        .collect();
    let phases: Vec<Value> = price
        .phases
        .iter()
        .map(|p| {
            json!({
                "applicationDuration": p.months,
                "unitOfMeasure": "month",
                "price": {"taxIncludedAmount": money(currency, p.monthly_minor)},
            })
        })
        .collect();
    json!([
        {
            "name": "one-time",
            "priceType": "oneTime",
            "price": {"taxIncludedAmount": money(currency, price.one_time_minor)},
        },
        {
            "name": "monthly",
            "description": price.summary,
            "priceType": "recurring",
            "recurringChargePeriod": "month",
            "price": {"taxIncludedAmount": money(currency, price.monthly_minor)},
            "priceAlteration": alterations,
            "pricePhase": phases,
        }
    ])
}

/// The item's SIMs: ICCID and role; for an eSIM where its activation code is (QR as PNG or
/// SVG, the code as text) and whether a confirmation code is needed (fetched apart). The
/// sealed codes ride along for those endpoints; the APIs strip them.
fn sims(order_href: &str, item: &OrderItem) -> Vec<Value> {
    item.sims
        .iter()
        .enumerate()
        .map(|(n, sim)| {
            let base = format!("{order_href}/items/{}/sims/{n}", item.id);
            let activation = sim.activation_code_sealed.as_ref().map(|_| {
                json!({
                    "png": format!("{base}/activation-code.png"),
                    "svg": format!("{base}/activation-code.svg"),
                    "text": format!("{base}/activation-code"),
                })
            });
            let confirmation = sim
                .confirmation_code_sealed
                .as_ref()
                .map(|_| json!({"href": format!("{base}/confirmation-code")}));
            json!({
                "index": n,
                "iccid": sim.iccid,
                "role": if n == 0 { "line" } else { "dataSharing" },
                "activationCode": activation,
                "confirmationCode": confirmation,
                "sealed": {
                    "activationCode": sim.activation_code_sealed,
                    "confirmationCode": sim.confirmation_code_sealed,
                },
            })
        })
        .collect()
}

fn item(currency: &str, order_href: &str, item: &OrderItem, parent: Option<&str>) -> Value {
    let characteristics: Vec<Value> = item
        .characteristics
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    let relationship: Vec<Value> = parent
        .map(|p| vec![json!({"id": p, "relationshipType": "reliesOn"})])
        .unwrap_or_default();
    json!({
        "id": item.id,
        "action": "add",
        "quantity": item.quantity,
        "state": item.state.as_str(),
        "productOffering": {"id": item.offering_id, "name": item.name},
        "product": {"productCharacteristic": characteristics},
        "itemPrice": item_prices(currency, &item.price),
        "productOrderItemRelationship": relationship,
        "productOrderItem": item
            .add_ons
            .iter()
            .map(|a| self::item(currency, order_href, a, Some(&item.id)))
            .collect::<Vec<_>>(),
        "sim": sims(order_href, item),
        "shipment": item.shipment.as_ref().map(|s| json!({
            "id": s.shipment_id,
            "trackingNumber": s.tracking_number,
            "status": s.status,
        })),
    })
}

fn step(s: &Step) -> Value {
    json!({
        "name": s.name.as_str(),
        "state": s.state.as_str(),
        "detail": s.detail,
    })
}

/// The order as an API caller sees it: [`render`] without the sealed personal data.
pub fn render_public(order: &Order, href: &str) -> Value {
    let mut document = render(order, href);
    strip_sealed(&mut document);
    document
}

/// Removes the sealed personal data of a rendered order (only the data export and the eSIM
/// endpoints open it): the owner's identity, the checkout's contact and delivery details, and
/// the eSIM activation and confirmation codes.
pub fn strip_sealed(document: &mut Value) {
    for part in ["owner", "contact"] {
        if let Some(part) = document.get_mut(part).and_then(Value::as_object_mut) {
            part.remove("sealed");
        }
    }
    let items = document
        .get_mut("productOrderItem")
        .and_then(Value::as_array_mut);
    for item in items.into_iter().flatten() {
        let sims = item.get_mut("sim").and_then(Value::as_array_mut);
        for sim in sims.into_iter().flatten().filter_map(Value::as_object_mut) {
            sim.remove("sealed");
        }
    }
}

/// An item's SIM as a rendered (unstripped) order keeps it, with its sealed codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSim {
    pub iccid: String,
    /// `None`: a pSIM, or no activation code yet.
    pub activation_code: Option<String>,
    /// `None`: the profile needs no confirmation code.
    pub confirmation_code: Option<String>,
}

/// SIM `index` of item `item_id` in a rendered (unstripped) order.
pub fn sealed_sim_codes(document: &Value, item_id: &str, index: usize) -> Option<SealedSim> {
    let sim = document
        .get("productOrderItem")?
        .as_array()?
        .iter()
        .find(|i| i.get("id").and_then(Value::as_str) == Some(item_id))?
        .get("sim")?
        .get(index)?;
    let sealed = sim.get("sealed")?;
    let text = |name: &str| sealed.get(name).and_then(Value::as_str).map(str::to_owned);
    Some(SealedSim {
        iccid: sim.get("iccid")?.as_str()?.to_owned(),
        activation_code: text("activationCode"),
        confirmation_code: text("confirmationCode"),
    })
}

/// The order as TMF622 JSON, as the `orders` topic and view keep it; `href` is where the
/// caller reads it.
pub fn render(order: &Order, href: &str) -> Value {
    let currency = order.currency.as_str();
    let payment = &order.payment;
    // What the storefront needs to let the shopper pay, while the order waits for it.
    let action = matches!(order.state, OrderState::Acknowledged | OrderState::Pending).then(|| {
        json!({
            "provider": payment.provider,
            "clientSecret": payment.client_secret,
            "redirectUrl": payment.redirect_url,
            "lastRefusal": payment.last_refusal,
        })
    });
    json!({
        "id": order.order_id,
        "href": href,
        "@type": "ProductOrder",
        "externalId": order.basket_id,
        "category": "mobile subscription",
        "orderDate": iso(order.order_date),
        "lastUpdate": iso(order.updated_at),
        "requestedCompletionDate": iso(order.frozen_until),
        "completionDate": order.completion_date.map_or(Value::Null, iso),
        "cancellationDate": order.cancellation_date.map_or(Value::Null, iso),
        "cancellationReason": order.cancellation_reason,
        "state": order.state.as_str(),
        "stateReason": order.state_reason,
        "version": order.version,
        "channel": [{"id": order.channel, "name": order.channel, "role": "sales channel"}],
        "relatedParty": [{"id": order.customer_id, "role": "customer", "@referredType": "Individual"}],
        "productOrderItem": order.items.iter().map(|i| item(currency, href, i, None)).collect::<Vec<_>>(),
        "orderTotalPrice": [
            {"name": "due now", "priceType": "oneTime",
             "price": {"taxIncludedAmount": money(currency, payment.amount_minor)}},
            {"name": "monthly", "priceType": "recurring", "recurringChargePeriod": "month",
             "price": {"taxIncludedAmount": money(currency, order.totals.monthly_minor),
                       "taxAmount": order.totals.monthly_vat_minor.map(|v| money(currency, v))}},
        ],
        "payment": [{
            "id": payment.reference,
            "@referredType": "Payment",
            "name": payment.provider,
            "attempt": payment.attempt,
            "status": payment.state,
            "capturedAmount": money(currency, payment.captured_minor),
            "paymentMethodRef": payment.payment_method_ref,
        }],
        "paymentAction": action,
        "step": order.steps.iter().map(step).collect::<Vec<_>>(),
        "owner": owner(order),
        "contact": contact(order),
    })
}

/// The checkout's contact and delivery details: whether the customer gave any, and the
/// sealed value for the customer's data export (the APIs strip it). Null when none was given.
fn contact(order: &Order) -> Value {
    order.contact_sealed.as_ref().map_or(
        Value::Null,
        |sealed| json!({"provided": true, "sealed": sealed}),
    )
}

/// The owner verification; the sealed personal data rides along for the customer's data
/// export (the APIs strip it, it opens only with the customer's data key).
fn owner(order: &Order) -> Value {
    let Some(policy) = &order.owner_requirement else {
        return Value::Null;
    };
    let owner = order.owner.as_ref();
    json!({
        "verified": owner.is_some(),
        "requiredAssurance": policy.min_assurance.as_str(),
        "minAge": policy.min_age,
        "assurance": owner.map(|o| o.assurance.as_str()),
        "identityProvider": owner.and_then(|o| o.identity_provider.clone()),
        "verifiedAt": owner.map_or(Value::Null, |o| iso(o.verified_at)),
        "sealed": owner.map(|o| json!({"cpr": o.cpr_sealed, "name": o.name_sealed})),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::basket::{Basket, Totals};
    use crate::domain::order::{Owner, PaymentSetup, place};
    use tcom_schemas::basket::BasketStatus;

    fn order(contact_sealed: Option<&str>) -> Order {
        let basket = Basket {
            basket_id: "b1".into(),
            tenant_id: "nordlys".into(),
            status: BasketStatus::CheckedOut,
            channel: "web".into(),
            segment: "consumer".into(),
            customer_id: Some("alice".into()),
            currency: "DKK".into(),
            version: 3,
            created_at: 1_000,
            updated_at: 2_000,
            expires_at: 60_000,
            lines: Vec::new(),
            totals: Totals::default(),
            merged_into: None,
            checkout: None,
        };
        let setup = PaymentSetup {
            provider: "stripe".into(),
            account_ref: "acct".into(),
            secret_ref: "file://stripe/key".into(),
        };
        let mut order = place(&basket, 90_000, &setup, None, 2_000);
        order.contact_sealed = contact_sealed.map(str::to_owned);
        order
    }

    #[test]
    fn an_order_without_contact_details_shows_contact_null() {
        let document = render(&order(None), "/o/b1");
        assert_eq!(document["contact"], Value::Null);
    }

    #[test]
    fn the_order_document_keeps_the_sealed_contact_and_the_public_one_only_that_it_was_given() {
        let order = order(Some("pd1.contact"));
        let kept = render(&order, "/o/b1");
        assert_eq!(
            kept["contact"],
            json!({"provided": true, "sealed": "pd1.contact"})
        );
        let public = render_public(&order, "/o/b1");
        assert_eq!(public["contact"], json!({"provided": true}));
        assert!(!public.to_string().contains("pd1."), "{public}");
    }

    #[test]
    fn strip_sealed_removes_the_owner_and_the_contact_sealed_values() {
        let mut order = order(Some("pd1.contact"));
        order.owner_requirement = Some(crate::domain::order::OwnerPolicy {
            min_assurance: crate::domain::identity::Assurance::Substantial,
            min_age: 18,
            hold_on_failure: false,
            timeout_ms: 60_000,
        });
        order.owner = Some(Owner {
            assurance: crate::domain::identity::Assurance::High,
            identity_provider: Some("mitid".into()),
            verified_at: 3_000,
            cpr_sealed: Some("pd1.cpr".into()),
            name_sealed: Some("pd1.name".into()),
        });
        let mut document = render(&order, "/o/b1");
        assert_eq!(document["owner"]["sealed"]["cpr"], "pd1.cpr");
        strip_sealed(&mut document);
        assert!(!document.to_string().contains("pd1."), "{document}");
        assert_eq!(document["owner"]["verified"], true);
        assert_eq!(document["contact"]["provided"], true);
    }

    #[test]
    fn esim_codes_are_linked_kept_sealed_for_their_endpoints_and_stripped_from_the_api() {
        let mut order = order(None);
        order.items.push(crate::domain::order::OrderItem {
            id: "l1".into(),
            state: OrderState::InProgress,
            offering_id: "plan".into(),
            name: "Plan".into(),
            quantity: 1,
            characteristics: Vec::new(),
            new_number: None,
            number_confirmed: true,
            price: LinePrice {
                one_time_minor: 0,
                monthly_minor: 100,
                summary: String::new(),
                phases: Vec::new(),
                applied: Vec::new(),
            },
            add_ons: Vec::new(),
            subscription_id: None,
            sims: Vec::new(),
            shipment: None,
            port: None,
        });
        let item = &mut order.items[0];
        item.sims = vec![
            crate::domain::order::SimCard {
                iccid: "8945000000000000011".into(),
                activation_code_sealed: Some("pd1.activation".into()),
                confirmation_code_sealed: Some("pd1.confirmation".into()),
            },
            crate::domain::order::SimCard {
                iccid: "8945000000000000029".into(),
                activation_code_sealed: Some("pd1.card".into()),
                confirmation_code_sealed: None,
            },
        ];
        let item_id = item.id.clone();
        let mut document = render(&order, "/o/b1");
        let sim = &document["productOrderItem"][0]["sim"][0];
        assert_eq!(sim["iccid"], "8945000000000000011");
        assert_eq!(sim["role"], "line");
        assert_eq!(
            sim["activationCode"]["png"],
            format!("/o/b1/items/{item_id}/sims/0/activation-code.png")
        );
        assert_eq!(
            sim["confirmationCode"]["href"],
            format!("/o/b1/items/{item_id}/sims/0/confirmation-code")
        );
        let card = &document["productOrderItem"][0]["sim"][1];
        assert_eq!(card["role"], "dataSharing");
        assert_eq!(card["confirmationCode"], Value::Null);
        assert_eq!(
            sealed_sim_codes(&document, &item_id, 0),
            Some(SealedSim {
                iccid: "8945000000000000011".into(),
                activation_code: Some("pd1.activation".into()),
                confirmation_code: Some("pd1.confirmation".into()),
            })
        );
        assert_eq!(
            sealed_sim_codes(&document, &item_id, 1),
            Some(SealedSim {
                iccid: "8945000000000000029".into(),
                activation_code: Some("pd1.card".into()),
                confirmation_code: None,
            })
        );
        assert_eq!(sealed_sim_codes(&document, &item_id, 2), None);
        assert_eq!(sealed_sim_codes(&document, "other", 0), None);
        strip_sealed(&mut document);
        assert!(!document.to_string().contains("pd1."), "{document}");
        assert_eq!(
            document["productOrderItem"][0]["sim"][0]["iccid"],
            "8945000000000000011"
        );
    }
}
