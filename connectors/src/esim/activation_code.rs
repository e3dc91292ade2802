//! The activation code of GSMA SGP.22 §4.1, as written into the eSIM QR code:
//!
//! ```text
//! LPA:1$<SM-DP+ address>$<matching ID>[$<SM-DP+ OID>[$<confirmation code required flag>]]
//! ```
//!
//! Fields are separated by `$` and optional fields at the end are left out together with their
//! delimiter; a field in the middle that is not used stays, empty, so the flag `1` without an
//! OID is written `$$1`. The confirmation code itself is never part of the activation code: it
//! is sent to the customer on another channel (SMS, the order page), and the flag only tells
//! the device to ask for it, so that a photo of the QR code alone does not give the profile
//! away.

use std::fmt;

/// The scheme the QR code payload starts with, before the activation code proper.
const SCHEME: &str = "LPA:";

/// `AC_Format`: the only format SGP.22 defines.
const FORMAT: &str = "1";

/// The only value of the confirmation code required flag; when no confirmation code is
/// required the field is left out.
const CONFIRMATION_CODE_REQUIRED: &str = "1";

/// Longest matching ID we accept: the matching ID is at most 255 characters.
const MAX_MATCHING_ID_LEN: usize = 255;

/// Longest host name DNS can carry (RFC 1035: 255 octets on the wire, 253 as text).
const MAX_FQDN_LEN: usize = 253;

/// Longest DNS label (RFC 1035).
const MAX_LABEL_LEN: usize = 63;

/// An activation code whose fields all have their SGP.22 form.
///
/// No `Display` and no `Serialize` on purpose: with the address and the matching ID anyone
/// can download the profile, so the code must not be formatted into a log line or an event by
/// accident. [`ActivationCode::to_lpa_string`] is the one way to the text.
#[derive(Clone, PartialEq, Eq)]
pub struct ActivationCode {
    smdp_address: String,
    matching_id: String,
    smdp_oid: Option<String>,
    confirmation_code_required: bool,
}

/// Why a text or a field is not an activation code. The message never contains the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ActivationCodeError {
    #[error("an eSIM activation code starts with \"LPA:\"")]
    Prefix,
    #[error("the eSIM activation code is not of format 1 (it must start with \"LPA:1$\")")]
    Format,
    #[error(
        "an eSIM activation code has 3 to 5 fields separated by \"$\": format, SM-DP+ address, \
         matching ID, then optionally the SM-DP+ OID and the confirmation code required flag"
    )]
    Fields,
    #[error(
        "the SM-DP+ address of an eSIM activation code is a fully qualified host name only \
         (no scheme such as https://, no port, no path)"
    )]
    SmdpAddress,
    #[error(
        "the matching ID of an eSIM activation code is 1 to 255 characters: upper-case letters \
         A-Z, digits and \"-\""
    )]
    MatchingId,
    #[error("the SM-DP+ OID of an eSIM activation code is an object identifier such as 1.3.6.1")]
    SmdpOid,
    #[error("the confirmation code required flag of an eSIM activation code is \"1\" or left out")]
    ConfirmationCodeFlag,
}

impl ActivationCodeError {
    /// The stable machine-readable code (part of the API contract).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Prefix => "esim_activation_code_prefix",
            Self::Format => "esim_activation_code_format",
            Self::Fields => "esim_activation_code_fields",
            Self::SmdpAddress => "esim_smdp_address",
            Self::MatchingId => "esim_matching_id",
            Self::SmdpOid => "esim_smdp_oid",
            Self::ConfirmationCodeFlag => "esim_confirmation_code_flag",
        }
    }
}

impl ActivationCode {
    /// An activation code from the fields an SM-DP+ order returns (ES2+ `DownloadOrder` /
    /// `ConfirmOrder`: the SM-DP+ address and the matching ID), without an SM-DP+ OID.
    ///
    /// `confirmation_code_required` is whether the order was confirmed with a confirmation
    /// code: the device then asks the customer for it before the download.
    ///
    /// # Errors
    /// [`ActivationCodeError::SmdpAddress`] or [`ActivationCodeError::MatchingId`] when a field
    /// does not have the form [`ActivationCode::parse`] checks.
    pub fn new(
        smdp_address: &str,
        matching_id: &str,
        confirmation_code_required: bool,
    ) -> Result<Self, ActivationCodeError> {
        check_smdp_address(smdp_address)?;
        check_matching_id(matching_id)?;
        Ok(Self {
            smdp_address: smdp_address.to_owned(),
            matching_id: matching_id.to_owned(),
            smdp_oid: None,
            confirmation_code_required,
        })
    }

    /// The same code with the SM-DP+ OID, which a device uses to check the SM-DP+ certificate
    /// when the operator's SM-DP+ has one of its own. Rarely used; most codes have none.
    ///
    /// # Errors
    /// [`ActivationCodeError::SmdpOid`] when `oid` is not dotted decimal with at least two arcs.
    pub fn with_smdp_oid(mut self, oid: &str) -> Result<Self, ActivationCodeError> {
        check_oid(oid)?;
        self.smdp_oid = Some(oid.to_owned());
        Ok(self)
    }

    /// Parses the text of an eSIM QR code, `LPA:1$<address>$<matching ID>…`. Whitespace
    /// around it is ignored (a pasted code often ends in a line break); the scheme `LPA:` may
    /// be in any case, as URI schemes are, but nothing else is changed or repaired: a code the
    /// device would refuse is refused here.
    ///
    /// # Errors
    /// - [`ActivationCodeError::Prefix`] without the `LPA:` scheme;
    /// - [`ActivationCodeError::Format`] when the first field is not `1`;
    /// - [`ActivationCodeError::Fields`] with fewer than 3 or more than 5 fields, or an empty
    ///   OID field that no flag follows (a trailing `$`);
    /// - [`ActivationCodeError::SmdpAddress`], [`ActivationCodeError::MatchingId`],
    ///   [`ActivationCodeError::SmdpOid`] or [`ActivationCodeError::ConfirmationCodeFlag`] when
    ///   that field does not have its form.
    pub fn parse(text: &str) -> Result<Self, ActivationCodeError> {
        let text = text.trim();
        let code = match text.get(..SCHEME.len()) {
            Some(scheme) if scheme.eq_ignore_ascii_case(SCHEME) => &text[SCHEME.len()..],
            _ => return Err(ActivationCodeError::Prefix),
        };
        let fields: Vec<&str> = code.split('$').collect();
        if fields[0] != FORMAT {
            return Err(ActivationCodeError::Format);
        }
        let (smdp_address, matching_id, oid, flag) = match fields[..] {
            [_, address, matching_id] => (address, matching_id, None, None),
            [_, _, _, ""] => return Err(ActivationCodeError::Fields),
            [_, address, matching_id, oid] => (address, matching_id, Some(oid), None),
            [_, address, matching_id, oid, flag] => (
                address,
                matching_id,
                Some(oid).filter(|oid| !oid.is_empty()),
                Some(flag),
            ),
            _ => return Err(ActivationCodeError::Fields),
        };
        let confirmation_code_required = match flag {
            None => false,
            Some(CONFIRMATION_CODE_REQUIRED) => true,
            Some(_) => return Err(ActivationCodeError::ConfirmationCodeFlag),
        };
        let code = Self::new(smdp_address, matching_id, confirmation_code_required)?;
        match oid {
            Some(oid) => code.with_smdp_oid(oid),
            None => Ok(code),
        }
    }

    /// The QR code payload: `LPA:1$<address>$<matching ID>`, then `$<OID>` when there is an
    /// OID and `$1` (after an empty OID field if there is no OID) when a confirmation code is
    /// required. Secret for the customer: for the QR code and the customer's own order page,
    /// never for logs.
    pub fn to_lpa_string(&self) -> String {
        let mut text = format!(
            "{SCHEME}{FORMAT}${}${}",
            self.smdp_address, self.matching_id
        );
        if self.smdp_oid.is_some() || self.confirmation_code_required {
            text.push('$');
            text.push_str(self.smdp_oid.as_deref().unwrap_or_default());
        }
        if self.confirmation_code_required {
            text.push('$');
            text.push_str(CONFIRMATION_CODE_REQUIRED);
        }
        text
    }

    /// The SM-DP+ host name, as the SM-DP+ gave it.
    pub fn smdp_address(&self) -> &str {
        &self.smdp_address
    }

    /// The matching ID that selects the profile at the SM-DP+. As secret as the whole code:
    /// for manual entry on the customer's own order page only.
    pub fn matching_id(&self) -> &str {
        &self.matching_id
    }

    /// The SM-DP+ OID, when the code has one.
    pub fn smdp_oid(&self) -> Option<&str> {
        self.smdp_oid.as_deref()
    }

    /// Whether the device will ask the customer for a confirmation code before the download.
    pub fn confirmation_code_required(&self) -> bool {
        self.confirmation_code_required
    }
}

impl fmt::Debug for ActivationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActivationCode")
            .field("smdp_address", &self.smdp_address)
            .field("matching_id", &"****")
            .field("smdp_oid", &self.smdp_oid)
            .field(
                "confirmation_code_required",
                &self.confirmation_code_required,
            )
            .finish()
    }
}

/// The SM-DP+ address is the FQDN of the SM-DP+: the device itself puts `https://` in front
/// and uses the standard port, so a scheme, port or path here would make a code no device can
/// use. Upper-case letters are allowed (host names are case-insensitive and GSMA's own example
/// address is upper case: it keeps the whole payload in the QR alphanumeric set, which makes
/// a smaller QR code). The last label must not be all digits, which rules out IPv4 addresses.
fn check_smdp_address(address: &str) -> Result<(), ActivationCodeError> {
    let labels: Vec<&str> = address.split('.').collect();
    let top_level_is_numeric = labels
        .last()
        .is_some_and(|label| label.bytes().all(|b| b.is_ascii_digit()));
    let valid = address.len() <= MAX_FQDN_LEN
        && labels.len() >= 2
        && labels.iter().all(|label| is_dns_label(label))
        && !top_level_is_numeric;
    if valid {
        Ok(())
    } else {
        Err(ActivationCodeError::SmdpAddress)
    }
}

/// A DNS label as host names use them (RFC 1123): 1 to 63 letters, digits and `-`, not
/// starting or ending with `-`.
fn is_dns_label(label: &str) -> bool {
    (1..=MAX_LABEL_LEN).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// The matching ID is upper-case letters, digits and `-` only. Lower case is refused rather
/// than upper-cased: the SM-DP+ compares matching IDs exactly, so a changed one would not
/// find the profile, and a provider sending lower case is a bug to see, not to hide.
fn check_matching_id(matching_id: &str) -> Result<(), ActivationCodeError> {
    let valid = (1..=MAX_MATCHING_ID_LEN).contains(&matching_id.len())
        && matching_id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(ActivationCodeError::MatchingId)
    }
}

/// An object identifier in dotted decimal (`1.3.6.1.4.1.…`): at least two arcs, each a
/// decimal number without leading zeros.
fn check_oid(oid: &str) -> Result<(), ActivationCodeError> {
    let arcs: Vec<&str> = oid.split('.').collect();
    let valid = arcs.len() >= 2
        && arcs.iter().all(|arc| {
            !arc.is_empty()
                && arc.bytes().all(|b| b.is_ascii_digit())
                && (arc.len() == 1 || !arc.starts_with('0'))
        });
    if valid {
        Ok(())
    } else {
        Err(ActivationCodeError::SmdpOid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDRESS: &str = "smdp.example.com";
    const MATCHING_ID: &str = "QR-G-5C-1LS-1W1Z9P7";

    fn error(text: &str) -> ActivationCodeError {
        ActivationCode::parse(text).expect_err(text)
    }

    #[test]
    fn the_three_field_code_is_written_and_parsed_back() {
        let code = ActivationCode::new(ADDRESS, MATCHING_ID, false).unwrap();
        let text = code.to_lpa_string();
        assert_eq!(text, "LPA:1$smdp.example.com$QR-G-5C-1LS-1W1Z9P7");
        let parsed = ActivationCode::parse(&text).unwrap();
        assert_eq!(parsed, code);
        assert_eq!(parsed.smdp_address(), ADDRESS);
        assert_eq!(parsed.matching_id(), MATCHING_ID);
        assert_eq!(parsed.smdp_oid(), None);
        assert!(!parsed.confirmation_code_required());
    }

    #[test]
    fn a_required_confirmation_code_is_flagged_after_an_empty_oid_field() {
        let code = ActivationCode::new(ADDRESS, MATCHING_ID, true).unwrap();
        let text = code.to_lpa_string();
        assert_eq!(text, "LPA:1$smdp.example.com$QR-G-5C-1LS-1W1Z9P7$$1");
        let parsed = ActivationCode::parse(&text).unwrap();
        assert!(parsed.confirmation_code_required());
        assert_eq!(parsed.smdp_oid(), None);
        assert_eq!(parsed, code);
    }

    #[test]
    fn the_oid_is_written_before_the_flag_and_parsed_back() {
        let with_oid = ActivationCode::new("SMDP.GSMA.COM", "04386-AGYFT-A74Y8-3F815", false)
            .unwrap()
            .with_smdp_oid("1.3.6.1.4.1.31746")
            .unwrap();
        let text = with_oid.to_lpa_string();
        assert_eq!(
            text,
            "LPA:1$SMDP.GSMA.COM$04386-AGYFT-A74Y8-3F815$1.3.6.1.4.1.31746"
        );
        assert_eq!(ActivationCode::parse(&text).unwrap(), with_oid);

        let flagged = ActivationCode::new("SMDP.GSMA.COM", "04386-AGYFT-A74Y8-3F815", true)
            .unwrap()
            .with_smdp_oid("2.999")
            .unwrap();
        let text = flagged.to_lpa_string();
        assert_eq!(text, "LPA:1$SMDP.GSMA.COM$04386-AGYFT-A74Y8-3F815$2.999$1");
        assert_eq!(ActivationCode::parse(&text).unwrap(), flagged);
    }

    #[test]
    fn surrounding_whitespace_and_the_scheme_case_are_tolerated() {
        let parsed = ActivationCode::parse(" lpa:1$smdp.example.com$ABC-123\r\n").unwrap();
        assert_eq!(parsed.to_lpa_string(), "LPA:1$smdp.example.com$ABC-123");
    }

    #[test]
    fn a_wrong_or_missing_prefix_is_refused() {
        for text in [
            "1$smdp.example.com$ABC",
            "LPA1$smdp.example.com$ABC",
            "LPB:1$smdp.example.com$ABC",
            "https://smdp.example.com/ABC",
            "",
            "LP",
            "ÆØÅ:1$smdp.example.com$ABC",
        ] {
            assert_eq!(error(text), ActivationCodeError::Prefix, "{text:?}");
        }
    }

    #[test]
    fn another_format_is_refused() {
        for text in [
            "LPA:2$smdp.example.com$ABC",
            "LPA:$smdp.example.com$ABC",
            "LPA:01$smdp.example.com$ABC",
            "LPA:",
        ] {
            assert_eq!(error(text), ActivationCodeError::Format, "{text:?}");
        }
    }

    #[test]
    fn too_few_or_too_many_fields_or_a_trailing_delimiter_are_refused() {
        for text in [
            "LPA:1",
            "LPA:1$smdp.example.com",
            "LPA:1$smdp.example.com$ABC$",
            "LPA:1$smdp.example.com$ABC$$1$",
            "LPA:1$smdp.example.com$ABC$1.2$1$x",
        ] {
            assert_eq!(error(text), ActivationCodeError::Fields, "{text:?}");
        }
    }

    #[test]
    fn an_address_with_a_scheme_port_path_or_no_domain_is_refused() {
        for address in [
            "https://smdp.example.com",
            "smdp.example.com:443",
            "smdp.example.com/",
            "smdp.example.com.",
            "localhost",
            "192.168.0.1",
            "-smdp.example.com",
            "smdp-.example.com",
            "smdp..example.com",
            "smdp_1.example.com",
            "smdp.exämple.com",
            "",
        ] {
            let text = format!("LPA:1${address}$ABC");
            assert_eq!(error(&text), ActivationCodeError::SmdpAddress, "{text:?}");
            assert_eq!(
                ActivationCode::new(address, "ABC", false).unwrap_err(),
                ActivationCodeError::SmdpAddress
            );
        }
        let long_label = format!("{}.example.com", "a".repeat(64));
        assert_eq!(
            error(&format!("LPA:1${long_label}$ABC")),
            ActivationCodeError::SmdpAddress
        );
        let too_long = format!("{}com", "abcdefghi.".repeat(25));
        assert_eq!(too_long.len(), 253);
        assert!(ActivationCode::new(&too_long, "ABC", false).is_ok());
        let too_long = format!("a{too_long}");
        assert_eq!(
            ActivationCode::new(&too_long, "ABC", false).unwrap_err(),
            ActivationCodeError::SmdpAddress
        );
    }

    #[test]
    fn upper_case_and_numeric_labels_are_fine_in_an_address() {
        for address in ["SMDP.GSMA.COM", "rsp-01.1und1.de", "a.b"] {
            assert!(
                ActivationCode::new(address, "ABC", false).is_ok(),
                "{address}"
            );
        }
    }

    #[test]
    fn a_matching_id_outside_upper_case_digits_and_dash_or_too_long_is_refused() {
        for matching_id in [
            "abc-123", "ABC-12x", "ABC_123", "ABC 123", "ABC.123", "ÆBLE", "",
        ] {
            let text = format!("LPA:1$smdp.example.com${matching_id}");
            assert_eq!(error(&text), ActivationCodeError::MatchingId, "{text:?}");
        }
        let longest = "A".repeat(255);
        assert!(ActivationCode::new(ADDRESS, &longest, false).is_ok());
        let too_long = "A".repeat(256);
        assert_eq!(
            ActivationCode::new(ADDRESS, &too_long, false).unwrap_err(),
            ActivationCodeError::MatchingId
        );
        assert_eq!(
            error(&format!("LPA:1${ADDRESS}${too_long}")),
            ActivationCodeError::MatchingId
        );
    }

    #[test]
    fn a_malformed_oid_or_flag_is_refused() {
        for oid in ["1", "1.", ".1", "1..2", "1.02", "a.b", "1.2a"] {
            let text = format!("LPA:1${ADDRESS}$ABC${oid}");
            assert_eq!(error(&text), ActivationCodeError::SmdpOid, "{text:?}");
        }
        for flag in ["0", "", "2", "true", "11"] {
            let text = format!("LPA:1${ADDRESS}$ABC$${flag}");
            assert_eq!(
                error(&text),
                ActivationCodeError::ConfirmationCodeFlag,
                "{text:?}"
            );
        }
    }

    #[test]
    fn debug_and_errors_do_not_show_the_matching_id() {
        let code = ActivationCode::new(ADDRESS, MATCHING_ID, true).unwrap();
        let debug = format!("{code:?}");
        assert!(!debug.contains(MATCHING_ID), "{debug}");
        assert!(debug.contains(ADDRESS), "{debug}");

        let err = error("LPA:1$smdp.example.com$secret-id");
        assert!(!err.to_string().contains("secret-id"));
    }

    #[test]
    fn error_codes_are_stable_and_distinct() {
        let all = [
            (ActivationCodeError::Prefix, "esim_activation_code_prefix"),
            (ActivationCodeError::Format, "esim_activation_code_format"),
            (ActivationCodeError::Fields, "esim_activation_code_fields"),
            (ActivationCodeError::SmdpAddress, "esim_smdp_address"),
            (ActivationCodeError::MatchingId, "esim_matching_id"),
            (ActivationCodeError::SmdpOid, "esim_smdp_oid"),
            (
                ActivationCodeError::ConfirmationCodeFlag,
                "esim_confirmation_code_flag",
            ),
        ];
        for (error, code) in all {
            assert_eq!(error.code(), code);
        }
    }
}
