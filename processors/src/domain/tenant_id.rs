//! Tenant identifiers.
//!
//! A tenant id is part of every record key (`"{tenant}:{entity}"`), every row and every cache
//! entry, so its alphabet is narrow: it can never contain the key separator, whitespace or
//! anything a URL, a header or SQL would treat specially.

use std::fmt;

/// A validated tenant id: 2–63 characters, lower-case ASCII letters, digits and `-`, starting
/// with a letter and not ending with `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

/// Why a text is not a tenant id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantIdError {
    #[error("a tenant id has 2 to 63 characters, this one has {0}")]
    Length(usize),
    #[error("a tenant id starts with a lower-case letter")]
    Start,
    #[error("a tenant id has only lower-case letters, digits and '-', not {0:?}")]
    Character(char),
    #[error("a tenant id does not end with '-'")]
    End,
}

impl TenantId {
    /// Validates a tenant id.
    ///
    /// # Errors
    /// The text breaks one of the rules above; the error says which.
    pub fn parse(text: &str) -> Result<Self, TenantIdError> {
        let length = text.chars().count();
        if !(2..=63).contains(&length) {
            return Err(TenantIdError::Length(length));
        }
        if !text.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(TenantIdError::Start);
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(TenantIdError::Character(bad));
        }
        if text.ends_with('-') {
            return Err(TenantIdError::End);
        }
        Ok(Self(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The record key of one of this tenant's entities.
    pub fn key(&self, entity: &str) -> String {
        format!("{}:{entity}", self.0)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_ids_and_builds_keys() {
        let id = TenantId::parse("nordlys-2").unwrap();
        assert_eq!(id.key("basket-1"), "nordlys-2:basket-1");
    }

    #[test]
    fn refuses_what_could_break_keys_urls_or_headers() {
        assert_eq!(TenantId::parse("a"), Err(TenantIdError::Length(1)));
        assert_eq!(
            TenantId::parse(&"a".repeat(64)),
            Err(TenantIdError::Length(64))
        );
        assert_eq!(TenantId::parse("1brand"), Err(TenantIdError::Start));
        assert_eq!(TenantId::parse("Brand"), Err(TenantIdError::Start));
        assert_eq!(TenantId::parse("a:b"), Err(TenantIdError::Character(':')));
        assert_eq!(TenantId::parse("a b"), Err(TenantIdError::Character(' ')));
        assert_eq!(
            TenantId::parse("brandé"),
            Err(TenantIdError::Character('é'))
        );
        assert_eq!(TenantId::parse("brand-"), Err(TenantIdError::End));
    }
}
