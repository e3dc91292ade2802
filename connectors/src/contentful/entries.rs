//! Turning Sync API items into rows of `offering_content`: pure, no I/O.
//!
//! The Sync API returns every locale of a field (`{"headline": {"da-DK": "…", "en-GB": "…"}}`);
//! the view keeps one row per entry and locale with that locale's fields. Only entries of the
//! `offering` content type carry marketing content for an offering, linked by its
//! `offeringId` field.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The content type whose entries describe offerings.
pub const OFFERING_CONTENT_TYPE: &str = "offering";
/// The field linking an entry to its offering.
pub const OFFERING_ID_FIELD: &str = "offeringId";

/// What one sync item means for the view.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentChange {
    /// An offering entry in its current revision: its fields per locale.
    Upsert {
        entry_id: String,
        offering_id: String,
        revision: i32,
        locales: BTreeMap<String, Value>,
    },
    /// The entry is gone (deleted or unpublished), whatever it was.
    Remove { entry_id: String },
    /// Not for this view (another content type, an asset, a malformed item).
    Ignore,
}

/// Interprets one item of a sync page.
pub fn interpret(item: &Value) -> ContentChange {
    let sys = &item["sys"];
    let Some(entry_id) = sys["id"].as_str().map(str::to_owned) else {
        return ContentChange::Ignore;
    };
    match sys["type"].as_str() {
        Some("DeletedEntry") => ContentChange::Remove { entry_id },
        Some("Entry") => {
            if sys["contentType"]["sys"]["id"].as_str() != Some(OFFERING_CONTENT_TYPE) {
                return ContentChange::Ignore;
            }
            let Some(fields) = item["fields"].as_object() else {
                return ContentChange::Ignore;
            };
            let Some(offering_id) = fields
                .get(OFFERING_ID_FIELD)
                .and_then(Value::as_object)
                .and_then(|by_locale| by_locale.values().find_map(Value::as_str))
                .map(str::to_owned)
            else {
                // An offering entry without its link cannot be placed; treat it as absent.
                return ContentChange::Remove { entry_id };
            };
            let mut locales: BTreeMap<String, Value> = BTreeMap::new();
            for (field, by_locale) in fields {
                if field == OFFERING_ID_FIELD {
                    continue;
                }
                let Some(by_locale) = by_locale.as_object() else {
                    continue;
                };
                for (locale, value) in by_locale {
                    let row = locales
                        .entry(locale.clone())
                        .or_insert_with(|| Value::Object(Map::new()));
                    row[field] = value.clone();
                }
            }
            ContentChange::Upsert {
                entry_id,
                offering_id,
                revision: sys["revision"].as_i64().unwrap_or(0) as i32,
                locales,
            }
        }
        _ => ContentChange::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_offering_entry_becomes_one_row_per_locale() {
        let item = json!({
            "sys": {"type": "Entry", "id": "e1", "revision": 3,
                    "contentType": {"sys": {"type": "Link", "linkType": "ContentType", "id": "offering"}}},
            "fields": {
                "offeringId": {"da-DK": "fri-5g"},
                "headline": {"da-DK": "Fri tale", "en-GB": "Unlimited talk"},
                "badge": {"da-DK": "Nyhed"}
            }
        });
        let ContentChange::Upsert {
            entry_id,
            offering_id,
            revision,
            locales,
        } = interpret(&item)
        else {
            panic!("not an upsert");
        };
        assert_eq!(
            (entry_id.as_str(), offering_id.as_str(), revision),
            ("e1", "fri-5g", 3)
        );
        assert_eq!(
            locales["da-DK"],
            json!({"headline": "Fri tale", "badge": "Nyhed"})
        );
        assert_eq!(locales["en-GB"], json!({"headline": "Unlimited talk"}));
    }

    #[test]
    fn deletions_other_types_and_unlinked_entries() {
        assert_eq!(
            interpret(&json!({"sys": {"type": "DeletedEntry", "id": "e1"}})),
            ContentChange::Remove {
                entry_id: "e1".into()
            }
        );
        let banner = json!({"sys": {"type": "Entry", "id": "b", "contentType": {"sys": {"id": "banner"}}}, "fields": {}});
        assert_eq!(interpret(&banner), ContentChange::Ignore);
        let unlinked = json!({"sys": {"type": "Entry", "id": "u", "contentType": {"sys": {"id": "offering"}}}, "fields": {"headline": {"da-DK": "x"}}});
        assert_eq!(
            interpret(&unlinked),
            ContentChange::Remove {
                entry_id: "u".into()
            }
        );
        assert_eq!(
            interpret(&json!({"sys": {"type": "Asset", "id": "a"}})),
            ContentChange::Ignore
        );
    }
}
