//! A broken rule, as every validator in the domain reports it.

use serde::{Deserialize, Serialize};

/// One broken rule: a stable machine-readable `code` (snake_case like every problem code of the API, part of its contract),
/// the field it concerns (JSON-pointer-like, e.g. `definition/prices/0/currency`) and a
/// sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub code: String,
    pub field: String,
    pub detail: String,
}

impl Violation {
    pub fn new(code: &str, field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            field: field.into(),
            detail: detail.into(),
        }
    }
}

/// Collects violations while a validator walks a value.
#[derive(Debug, Default)]
pub struct Violations(Vec<Violation>);

impl Violations {
    pub fn push(&mut self, code: &str, field: impl Into<String>, detail: impl Into<String>) {
        self.0.push(Violation::new(code, field, detail));
    }

    /// Adds a violation built elsewhere (e.g. by [`super::text::control_character`]).
    pub fn add(&mut self, violation: Violation) {
        self.0.push(violation);
    }

    /// Adds a violation when `ok` is false.
    pub fn check(
        &mut self,
        ok: bool,
        code: &str,
        field: impl Into<String>,
        detail: impl FnOnce() -> String,
    ) {
        if !ok {
            self.push(code, field, detail());
        }
    }

    pub fn into_vec(self) -> Vec<Violation> {
        self.0
    }
}

/// An identifier chosen by a brand partner (offering, campaign, specification): 1–64
/// characters of lower-case letters, digits, `-`, `_` and `.`, starting with a letter or digit.
/// Narrow for the same reason as tenant ids: it ends up in keys, URLs and rows.
pub fn is_valid_entity_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_ids_are_narrow() {
        assert!(is_valid_entity_id("unlimited_5g"));
        assert!(is_valid_entity_id("2025.promo_1"));
        for bad in ["", "Upper", "-lead", "a:b", "a b", &"x".repeat(65)] {
            assert!(!is_valid_entity_id(bad), "{bad:?}");
        }
    }
}
