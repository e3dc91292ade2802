//! The customer's contact and delivery details given at checkout, and the rules they must
//! meet before anything is sealed and sent.
//!
//! These are personal data: the ingress validates them, then seals the whole
//! [`ContactDetails`] value as one JSON document with the customer's data key, and only the
//! sealed value travels (basket command, order command, order state, order view). The
//! customer's data export opens it again.
//!
//! The rules are deliberately shallow: a storefront must be able to tell the shopper what to
//! correct, and the platform must refuse values no one could deliver to, but no rule here
//! claims an address or a mailbox exists.
//!
//! - **E-mail**: `local@domain.tld`, at most 254 characters (RFC 5321's path limit): one `@`,
//!   a local part without spaces, a domain of at least two dot-separated labels of letters,
//!   digits and inner hyphens, the last one (the top-level domain) at least two letters.
//! - **Phone** (optional): E.164, `+` and 8 to 15 digits, the first (the country code's) not
//!   `0` — no spaces, no punctuation.
//! - **Name, street, postal code, city**: not blank, at most 200 characters, one line.
//! - **Country**: ISO 3166-1 alpha-2, two upper-case letters (`DK`).

use serde::{Deserialize, Serialize};

use super::text::TextKind;
use super::violation::{Violation, Violations};

/// The longest e-mail address taken (RFC 5321's limit on a path).
pub const MAX_EMAIL_CHARS: usize = 254;
/// The longest name, street, postal code or city taken.
pub const MAX_TEXT_CHARS: usize = 200;
/// E.164: at most 15 digits after the `+`; fewer than 8 is no complete international number.
pub const MIN_PHONE_DIGITS: usize = 8;
pub const MAX_PHONE_DIGITS: usize = 15;

/// Who to reach about the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub name: String,
    pub email: String,
    /// E.164, e.g. `+4520123456`.
    #[serde(default)]
    pub phone: Option<String>,
}

/// Where a physical SIM card is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAddress {
    pub street: String,
    pub postal_code: String,
    pub city: String,
    /// ISO 3166-1 alpha-2, e.g. `DK`.
    pub country: String,
}

/// What the ingress seals as one value (`{"contact": …, "delivery_address": …}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactDetails {
    #[serde(default)]
    pub contact: Option<Contact>,
    #[serde(default)]
    pub delivery_address: Option<DeliveryAddress>,
}

impl ContactDetails {
    /// Nothing was given.
    pub fn is_empty(&self) -> bool {
        self.contact.is_none() && self.delivery_address.is_none()
    }
}

/// `local@domain.tld`, see the module documentation.
pub fn is_email(text: &str) -> bool {
    if text.chars().count() > MAX_EMAIL_CHARS {
        return false;
    }
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && !local
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '@');
    let labels: Vec<&str> = domain.split('.').collect();
    let labels_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    let tld_ok = labels
        .last()
        .is_some_and(|tld| tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic));
    local_ok && labels_ok && tld_ok
}

/// E.164: `+`, then 8 to 15 ASCII digits, the first not `0`.
pub fn is_e164(text: &str) -> bool {
    let Some(digits) = text.strip_prefix('+') else {
        return false;
    };
    (MIN_PHONE_DIGITS..=MAX_PHONE_DIGITS).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// ISO 3166-1 alpha-2 in form: two upper-case ASCII letters.
pub fn is_country_code(text: &str) -> bool {
    text.len() == 2 && text.bytes().all(|b| b.is_ascii_uppercase())
}

/// A required one-line text: not blank, at most [`MAX_TEXT_CHARS`], no control character.
fn check_line(v: &mut Violations, code: &str, field: String, text: &str, what: &str) {
    v.check(
        !text.trim().is_empty() && text.chars().count() <= MAX_TEXT_CHARS,
        code,
        field.clone(),
        || format!("{what} is 1 to {MAX_TEXT_CHARS} characters and not blank"),
    );
    v.check_text(field, text, TextKind::Line);
}

/// Every broken rule of the checkout's contact and delivery details, with field paths
/// (`contact/email`, `delivery_address/country`, …); empty when they may be sealed and sent.
pub fn validate(details: &ContactDetails) -> Vec<Violation> {
    let mut v = Violations::default();
    if let Some(contact) = &details.contact {
        check_line(
            &mut v,
            "invalid_name",
            "contact/name".into(),
            &contact.name,
            "a name",
        );
        v.check(
            is_email(&contact.email),
            "invalid_email",
            "contact/email",
            || {
                format!(
                    "an e-mail address is local@domain.tld, at most {MAX_EMAIL_CHARS} characters"
                )
            },
        );
        if let Some(phone) = &contact.phone {
            v.check(is_e164(phone), "invalid_phone", "contact/phone", || {
                format!(
                    "a phone number is E.164: '+' and {MIN_PHONE_DIGITS} to {MAX_PHONE_DIGITS} \
                     digits, no spaces (e.g. +4520123456)"
                )
            });
        }
    }
    if let Some(address) = &details.delivery_address {
        check_line(
            &mut v,
            "invalid_street",
            "delivery_address/street".into(),
            &address.street,
            "a street",
        );
        check_line(
            &mut v,
            "invalid_postal_code",
            "delivery_address/postal_code".into(),
            &address.postal_code,
            "a postal code",
        );
        check_line(
            &mut v,
            "invalid_city",
            "delivery_address/city".into(),
            &address.city,
            "a city",
        );
        v.check(
            is_country_code(&address.country),
            "invalid_country",
            "delivery_address/country",
            || "a country is its ISO 3166-1 alpha-2 code, two upper-case letters (DK)".into(),
        );
    }
    v.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(name: &str, email: &str, phone: Option<&str>) -> Contact {
        Contact {
            name: name.into(),
            email: email.into(),
            phone: phone.map(str::to_owned),
        }
    }

    fn address(street: &str, postal_code: &str, city: &str, country: &str) -> DeliveryAddress {
        DeliveryAddress {
            street: street.into(),
            postal_code: postal_code.into(),
            city: city.into(),
            country: country.into(),
        }
    }

    fn fields(details: &ContactDetails) -> Vec<(String, String)> {
        validate(details)
            .into_iter()
            .map(|v| (v.field, v.code))
            .collect()
    }

    #[test]
    fn good_details_and_none_at_all_pass() {
        let details = ContactDetails {
            contact: Some(contact(
                "Søren Ærø",
                "soren.aero+shop@post.example.dk",
                Some("+4520123456"),
            )),
            delivery_address: Some(address("Nørregade 7, 2. th.", "1165", "København K", "DK")),
        };
        assert_eq!(validate(&details), Vec::new());
        assert_eq!(validate(&ContactDetails::default()), Vec::new());
        assert!(ContactDetails::default().is_empty());
        assert!(!details.is_empty());
        // The phone is optional, and so is each part.
        let only_contact = ContactDetails {
            contact: Some(contact("A", "a@b.co", None)),
            delivery_address: None,
        };
        assert_eq!(validate(&only_contact), Vec::new());
    }

    #[test]
    fn e_mail_addresses_need_a_local_part_a_domain_and_a_top_level_domain() {
        for good in [
            "a@b.co",
            "first.last@sub.example.com",
            "x+tag@ex-ample.dk",
            "æble@æble.dk",
            "o'brien@example.ie",
        ] {
            assert!(is_email(good), "{good:?}");
        }
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@localhost",
            "a@example.c",
            "a@example.123",
            "a@@example.com",
            "a@b@example.com",
            "a b@example.com",
            "a@exa mple.com",
            "a@.example.com",
            "a@example..com",
            "a@example.com.",
            "a@-example.com",
            "a@example-.com",
            "a@exa_mple.com",
        ] {
            assert!(!is_email(bad), "{bad:?}");
        }
    }

    #[test]
    fn e_mail_addresses_are_at_most_254_characters() {
        let domain = "@example.com";
        let longest = format!("{}{domain}", "a".repeat(MAX_EMAIL_CHARS - domain.len()));
        assert_eq!(longest.chars().count(), MAX_EMAIL_CHARS);
        assert!(is_email(&longest));
        let too_long = format!("a{longest}");
        assert!(!is_email(&too_long));
    }

    #[test]
    fn phone_numbers_are_e164() {
        for good in [
            "+4520123456",
            "+12025550123",
            "+49301234",
            "+123456789012345",
        ] {
            assert!(is_e164(good), "{good:?}");
        }
        for bad in [
            "",
            "4520123456",
            "+",
            "+4520123",          // 7 digits
            "+1234567890123456", // 16 digits
            "+45 20 12 34 56",
            "+45-20123456",
            "++4520123456",
            "+0520123456",
            "+４５20123456", // full-width digits
        ] {
            assert!(!is_e164(bad), "{bad:?}");
        }
    }

    #[test]
    fn countries_are_two_upper_case_letters() {
        assert!(is_country_code("DK"));
        assert!(is_country_code("SE"));
        for bad in ["", "D", "dk", "Dk", "DNK", "D1", "ÆØ", " DK"] {
            assert!(!is_country_code(bad), "{bad:?}");
        }
    }

    #[test]
    fn every_broken_rule_is_reported_with_its_field_path() {
        let details = ContactDetails {
            contact: Some(contact("  ", "not-an-address", Some("20123456"))),
            delivery_address: Some(address("", &"9".repeat(201), "\t", "dk")),
        };
        assert_eq!(
            fields(&details),
            [
                ("contact/name", "invalid_name"),
                ("contact/email", "invalid_email"),
                ("contact/phone", "invalid_phone"),
                ("delivery_address/street", "invalid_street"),
                ("delivery_address/postal_code", "invalid_postal_code"),
                ("delivery_address/city", "invalid_city"),
                ("delivery_address/city", "control_character"),
                ("delivery_address/country", "invalid_country"),
            ]
            .map(|(f, c)| (f.to_owned(), c.to_owned()))
        );
    }

    #[test]
    fn texts_may_have_200_characters_not_bytes_and_no_control_character() {
        let at_limit = "ø".repeat(MAX_TEXT_CHARS);
        assert!(at_limit.len() > MAX_TEXT_CHARS);
        let details = |name: &str| ContactDetails {
            contact: Some(contact(name, "a@b.co", None)),
            delivery_address: Some(address(name, name, name, "DK")),
        };
        assert_eq!(validate(&details(&at_limit)), Vec::new());
        let over = format!("{at_limit}ø");
        assert_eq!(
            fields(&details(&over))
                .iter()
                .map(|(f, _)| f.as_str())
                .collect::<Vec<_>>(),
            [
                "contact/name",
                "delivery_address/street",
                "delivery_address/postal_code",
                "delivery_address/city"
            ]
        );
        assert_eq!(
            fields(&details("Line\u{0}break"))
                .iter()
                .filter(|(_, c)| c == "control_character")
                .count(),
            4
        );
    }

    #[test]
    fn an_absent_phone_is_not_checked_but_a_given_one_is() {
        let without = ContactDetails {
            contact: Some(contact("A", "a@b.co", None)),
            delivery_address: None,
        };
        assert!(validate(&without).is_empty());
        let empty = ContactDetails {
            contact: Some(contact("A", "a@b.co", Some(""))),
            delivery_address: None,
        };
        assert_eq!(
            fields(&empty),
            [("contact/phone".to_owned(), "invalid_phone".to_owned())]
        );
    }

    #[test]
    fn the_sealed_value_has_the_documented_shape() {
        let details = ContactDetails {
            contact: Some(contact("A", "a@b.co", None)),
            delivery_address: Some(address("S 1", "1000", "C", "DK")),
        };
        let json = serde_json::to_value(&details).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "contact": {"name": "A", "email": "a@b.co", "phone": null},
                "delivery_address": {"street": "S 1", "postal_code": "1000", "city": "C",
                                     "country": "DK"},
            })
        );
        let back: ContactDetails = serde_json::from_value(
            serde_json::json!({"contact": {"name": "A", "email": "a@b.co"}}),
        )
        .unwrap();
        assert_eq!(back.contact.unwrap().phone, None);
        assert_eq!(back.delivery_address, None);
    }
}
