//! Subscriptions as TMF637 products: one `Product` per order line that TCM has a
//! subscription for, derived from the order's TMF622 document (so the view can be rebuilt
//! from the `orders` topic alone). The product's id is TCM's subscription id, the key a
//! reconciliation with TCM compares on.
//!
//! Status, as the order knows it: `pendingActive` while the line is being delivered (a pSIM
//! on its way, an order held for an agent), `active` once it is, `aborted` when the line
//! failed after all, `cancelled` when the order was. Suspension and termination happen in
//! TCM; the reconciliation reports them (it does not rewrite the order's history).

use serde_json::{Value, json};

/// A product as the view stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub product_id: String,
    pub customer_id: String,
    pub order_id: String,
    pub item_id: String,
    pub status: &'static str,
    pub msisdn: Option<String>,
    pub iccid: Option<String>,
    /// `YYYY-MM-DD`.
    pub start_date: Option<String>,
    pub binding_end_date: Option<String>,
    /// The TMF637 `Product` JSON.
    pub document: Value,
}

fn characteristic(item: &Value, name: &str) -> Option<String> {
    item.pointer("/product/productCharacteristic")?
        .as_array()?
        .iter()
        .find(|c| c["name"].as_str() == Some(name))?["value"]
        .as_str()
        .map(str::to_owned)
}

/// The TMF637 status of a line in this TMF622 item state.
pub fn status_of(item_state: &str) -> &'static str {
    match item_state {
        "completed" => "active",
        "failed" => "aborted",
        "cancelled" => "cancelled",
        _ => "pendingActive",
    }
}

/// The products of an order document: its plan lines with a TCM subscription.
pub fn products_of(order: &Value) -> Vec<Product> {
    let order_id = order["id"].as_str().unwrap_or_default();
    let customer_id = order["relatedParty"]
        .as_array()
        .and_then(|parties| parties.iter().find(|p| p["role"] == "customer"))
        .and_then(|p| p["id"].as_str())
        .unwrap_or_default();
    let items = order["productOrderItem"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    items
        .iter()
        .filter_map(|item| {
            let product_id = characteristic(item, "tcmSubscriptionId")?;
            let item_id = item["id"].as_str().unwrap_or_default().to_owned();
            let status = status_of(item["state"].as_str().unwrap_or_default());
            let msisdn = characteristic(item, "MSISDN");
            let sims = item["sim"].as_array().cloned().unwrap_or_default();
            let iccid = sims
                .first()
                .and_then(|s| s["iccid"].as_str())
                .map(str::to_owned)
                .or_else(|| characteristic(item, "ICCID"));
            let start_date = characteristic(item, "activationDate");
            let binding_end_date = characteristic(item, "bindingEndDate");
            let mut characteristics = vec![
                json!({"name": "MSISDN", "value": msisdn}),
                json!({"name": "ICCID", "value": iccid}),
                json!({"name": "simType", "value": characteristic(item, "simType")}),
            ];
            let cards: Vec<Value> = sims
                .iter()
                .skip(1)
                .filter_map(|s| s["iccid"].as_str())
                .map(|iccid| json!({"id": iccid, "name": "data-sharing SIM", "@referredType": "SIM"}))
                .collect();
            characteristics.push(json!({"name": "dataSharingCards", "value": cards.len().to_string()}));
            let mut resources: Vec<Value> = Vec::new();
            if let Some(iccid) = &iccid {
                resources.push(json!({"id": iccid, "name": "SIM", "@referredType": "SIM"}));
            }
            resources.extend(cards);
            if let Some(msisdn) = &msisdn {
                resources.push(json!({"id": msisdn, "name": "MSISDN", "@referredType": "MSISDN"}));
            }
            let terms: Vec<Value> = binding_end_date
                .iter()
                .map(|end| {
                    json!({
                        "name": "binding",
                        "duration": {"amount": characteristic(item, "bindingMonths")
                            .and_then(|m| m.parse::<u32>().ok()), "units": "month"},
                        "validFor": {"startDateTime": start_date, "endDateTime": end},
                    })
                })
                .collect();
            let document = json!({
                "id": product_id,
                "@type": "Product",
                "name": item["productOffering"]["name"],
                "status": status,
                "isBundle": false,
                "isCustomerVisible": true,
                "productSerialNumber": msisdn,
                "orderDate": order["orderDate"],
                "startDate": start_date,
                "productOffering": item["productOffering"],
                "productCharacteristic": characteristics,
                "productTerm": terms,
                "productOrderItem": [{
                    "productOrderId": order_id,
                    "orderItemId": item_id,
                    "orderItemAction": "add",
                    "role": "realizes",
                }],
                "realizingResource": resources,
                "relatedParty": [{"id": customer_id, "role": "customer", "@referredType": "Individual"}],
            });
            Some(Product {
                product_id,
                customer_id: customer_id.to_owned(),
                order_id: order_id.to_owned(),
                item_id,
                status,
                msisdn,
                iccid,
                start_date,
                binding_end_date,
                document,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(item_state: &str, with_subscription: bool) -> Value {
        let mut characteristics = vec![
            json!({"name": "MSISDN", "value": "+4520000001"}),
            json!({"name": "simType", "value": "ESIM"}),
            json!({"name": "bindingMonths", "value": "6"}),
            json!({"name": "bindingEndDate", "value": "2027-07-15"}),
            json!({"name": "activationDate", "value": "2027-01-15"}),
        ];
        if with_subscription {
            characteristics.push(json!({"name": "tcmSubscriptionId", "value": "S0000007"}));
        }
        json!({
            "id": "b1",
            "orderDate": "2027-01-15T08:00:00Z",
            "relatedParty": [{"id": "alice", "role": "customer"}],
            "productOrderItem": [{
                "id": "l1",
                "state": item_state,
                "productOffering": {"id": "plan", "name": "Plan"},
                "product": {"productCharacteristic": characteristics},
                "sim": [
                    {"index": 0, "iccid": "8945000000000000011", "role": "line"},
                    {"index": 1, "iccid": "8945000000000000029", "role": "dataSharing"},
                ],
            }],
        })
    }

    #[test]
    fn an_activated_line_is_a_product_with_its_number_sims_and_binding() {
        let products = products_of(&order("completed", true));
        assert_eq!(products.len(), 1);
        let product = &products[0];
        assert_eq!(product.product_id, "S0000007");
        assert_eq!(product.customer_id, "alice");
        assert_eq!(product.status, "active");
        assert_eq!(product.iccid.as_deref(), Some("8945000000000000011"));
        assert_eq!(product.binding_end_date.as_deref(), Some("2027-07-15"));
        assert_eq!(product.start_date.as_deref(), Some("2027-01-15"));
        let document = &product.document;
        assert_eq!(document["productSerialNumber"], "+4520000001");
        assert_eq!(
            document["productTerm"][0]["validFor"]["endDateTime"],
            "2027-07-15"
        );
        assert_eq!(document["productTerm"][0]["duration"]["amount"], 6);
        assert_eq!(document["productOrderItem"][0]["orderItemId"], "l1");
        let resources: Vec<&str> = document["realizingResource"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            resources,
            ["8945000000000000011", "8945000000000000029", "+4520000001"]
        );
    }

    #[test]
    fn lines_without_a_subscription_are_no_product_and_states_map_to_tmf637() {
        assert!(products_of(&order("inProgress", false)).is_empty());
        assert_eq!(
            products_of(&order("inProgress", true))[0].status,
            "pendingActive"
        );
        assert_eq!(products_of(&order("held", true))[0].status, "pendingActive");
        assert_eq!(products_of(&order("failed", true))[0].status, "aborted");
        assert_eq!(
            products_of(&order("cancelled", true))[0].status,
            "cancelled"
        );
    }
}
