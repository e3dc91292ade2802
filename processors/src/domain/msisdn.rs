//! Phone numbers (MSISDNs) in E.164.
//!
//! Numbers are stored, keyed and compared in E.164 (`+4520123456`): a plus sign, a country
//! calling code that does not start with 0, and at most 15 digits in all. Shoppers type numbers
//! in many ways, so parsing accepts spaces, dashes, dots and parentheses, the `00`
//! international prefix, and — given the tenant's country — national numbers, dropping a
//! national trunk prefix `0` where the country uses one (UK `07700 900123` → `+447700900123`).

use std::fmt;

/// A number in E.164.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Msisdn(String);

/// Why a text is not a phone number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsisdnError {
    #[error("a phone number is empty")]
    Empty,
    #[error(
        "a phone number has only digits, spaces, '-', '.', '(', ')' and a leading '+', not {0:?}"
    )]
    Character(char),
    #[error("an international number has 8 to 15 digits, this one has {0}")]
    Length(usize),
    #[error("a country calling code never starts with 0")]
    CountryCode,
    #[error("a national number needs the country; none is known for {0:?}")]
    UnknownCountry(String),
}

/// The country calling code and whether national numbers start with a trunk prefix `0`,
/// for the countries our tenants sell in.
fn country_dialing(country: &str) -> Option<(&'static str, bool)> {
    Some(match country.to_ascii_uppercase().as_str() {
        "DK" => ("45", false),
        "NO" => ("47", false),
        "SE" => ("46", true),
        "FI" => ("358", true),
        "DE" => ("49", true),
        "NL" => ("31", true),
        "GB" => ("44", true),
        "IE" => ("353", true),
        "FR" => ("33", true),
        "ES" => ("34", false),
        "IT" => ("39", false),
        "PL" => ("48", false),
        _ => return None,
    })
}

impl Msisdn {
    /// Parses an international number (`+…` or `00…`).
    ///
    /// # Errors
    /// Not a number, too short or long, or a national number (use
    /// [`Msisdn::parse_in_country`] for those).
    pub fn parse(text: &str) -> Result<Self, MsisdnError> {
        let (international, digits) = digits_of(text)?;
        if !international {
            return Err(MsisdnError::UnknownCountry(String::new()));
        }
        Self::from_international_digits(digits)
    }

    /// Parses an international number, or a national one of `country` (ISO 3166-1 alpha-2).
    ///
    /// # Errors
    /// As [`Msisdn::parse`]; a national number of a country we have no dialing plan for.
    pub fn parse_in_country(text: &str, country: &str) -> Result<Self, MsisdnError> {
        let (international, digits) = digits_of(text)?;
        if international {
            return Self::from_international_digits(digits);
        }
        let (code, trunk_zero) = country_dialing(country)
            .ok_or_else(|| MsisdnError::UnknownCountry(country.to_owned()))?;
        let national = if trunk_zero {
            digits.trim_start_matches('0')
        } else {
            digits.as_str()
        };
        Self::from_international_digits(format!("{code}{national}"))
    }

    fn from_international_digits(digits: String) -> Result<Self, MsisdnError> {
        if digits.starts_with('0') {
            return Err(MsisdnError::CountryCode);
        }
        if !(8..=15).contains(&digits.len()) {
            return Err(MsisdnError::Length(digits.len()));
        }
        Ok(Self(format!("+{digits}")))
    }

    /// The E.164 text, `+` included.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The digits of a typed number and whether it was written internationally.
fn digits_of(text: &str) -> Result<(bool, String), MsisdnError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(MsisdnError::Empty);
    }
    let (plus, rest) = match trimmed.strip_prefix('+') {
        // "+44 (0)7700…": the "(0)" is the national trunk prefix, not part of the number.
        Some(rest) => (true, rest.replace("(0)", "")),
        None => (false, trimmed.to_owned()),
    };
    let mut digits = String::with_capacity(rest.len());
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            other => return Err(MsisdnError::Character(other)),
        }
    }
    if digits.is_empty() {
        return Err(MsisdnError::Empty);
    }
    if !plus && let Some(after) = digits.strip_prefix("00") {
        return Ok((true, after.to_owned()));
    }
    Ok((plus, digits))
}

impl fmt::Display for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e164(text: &str, country: &str) -> String {
        Msisdn::parse_in_country(text, country).unwrap().to_string()
    }

    #[test]
    fn international_forms_normalise_to_e164() {
        assert_eq!(
            Msisdn::parse("+45 20 12 34 56").unwrap().as_str(),
            "+4520123456"
        );
        assert_eq!(
            Msisdn::parse("0045-20123456").unwrap().as_str(),
            "+4520123456"
        );
        // "(0)" marks the trunk prefix that is dialled only nationally.
        assert_eq!(
            Msisdn::parse("+44 (0)7700.900123").unwrap().as_str(),
            "+447700900123"
        );
    }

    #[test]
    fn national_numbers_take_the_tenants_country() {
        assert_eq!(e164("20 12 34 56", "DK"), "+4520123456");
        assert_eq!(e164("07700 900123", "GB"), "+447700900123");
        assert_eq!(e164("+4520123456", "GB"), "+4520123456");
        assert_eq!(
            Msisdn::parse_in_country("20123456", "XX"),
            Err(MsisdnError::UnknownCountry("XX".into()))
        );
    }

    #[test]
    fn malformed_numbers_are_refused_with_the_reason() {
        assert_eq!(Msisdn::parse(""), Err(MsisdnError::Empty));
        assert_eq!(
            Msisdn::parse("+45 2012 345a"),
            Err(MsisdnError::Character('a'))
        );
        assert_eq!(Msisdn::parse("+4520"), Err(MsisdnError::Length(4)));
        assert_eq!(
            Msisdn::parse("+1234567890123456"),
            Err(MsisdnError::Length(16))
        );
        assert_eq!(Msisdn::parse("+0452012345"), Err(MsisdnError::CountryCode));
        assert!(matches!(
            Msisdn::parse("20123456"),
            Err(MsisdnError::UnknownCountry(_))
        ));
    }
}
