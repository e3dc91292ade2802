//! Verifying a subscription's owner: how strongly they signed in and whether they are old
//! enough.
//!
//! The owner signs in with MitID through the tenant's broker, which reports the NSIS level of
//! assurance of the sign-in and — after the customer typed their CPR number and the broker
//! matched it to the MitID user — vouches for that CPR number, whose birth date gives the age.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::Date;

use super::cpr::Cpr;

/// The prefix of the NSIS level-of-assurance URIs brokers put in the `loa` claim.
const NSIS_LOA: &str = "https://data.gov.dk/concept/core/nsis/loa/";

/// The NSIS level of assurance of a sign-in, ordered from weakest to strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Assurance {
    Low,
    Substantial,
    High,
}

/// Why a text is not a level of assurance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "a level of assurance is low, substantial or high, or an NSIS level-of-assurance URI \
     ({NSIS_LOA}Low, …Substantial or …High)"
)]
pub struct AssuranceError;

impl Assurance {
    /// Parses `low`, `substantial` or `high` in any case (tenant settings), or an NSIS URI
    /// `https://data.gov.dk/concept/core/nsis/loa/Low|Substantial|High` exactly as the
    /// standard writes it (broker claims).
    ///
    /// # Errors
    /// Anything else.
    pub fn parse(text: &str) -> Result<Self, AssuranceError> {
        if let Some(level) = text.strip_prefix(NSIS_LOA) {
            return match level {
                "Low" => Ok(Self::Low),
                "Substantial" => Ok(Self::Substantial),
                "High" => Ok(Self::High),
                _ => Err(AssuranceError),
            };
        }
        [Self::Low, Self::Substantial, Self::High]
            .into_iter()
            .find(|level| text.eq_ignore_ascii_case(level.as_str()))
            .ok_or(AssuranceError)
    }

    /// `low`, `substantial` or `high`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Substantial => "substantial",
            Self::High => "high",
        }
    }
}

impl fmt::Display for Assurance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a tenant requires of a subscription's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerRequirement {
    pub min_assurance: Assurance,
    pub min_age: u32,
}

/// Why a signed-in person cannot be the owner. The message names the rule, never the CPR
/// number, the birth date or the age.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OwnerRefusal {
    #[error(
        "the owner must sign in with assurance {required} or higher; this sign-in was {actual}"
    )]
    AssuranceTooLow {
        required: Assurance,
        actual: Assurance,
    },
    #[error("the owner of a subscription must be at least {min_age} years old")]
    UnderAge { min_age: u32 },
}

impl OwnerRefusal {
    /// The stable machine-readable code (part of the API contract).
    pub fn code(&self) -> &'static str {
        match self {
            Self::AssuranceTooLow { .. } => "assurance_too_low",
            Self::UnderAge { .. } => "owner_under_age",
        }
    }
}

/// Whether the person who signed in with `assurance` and whose CPR number the broker matched
/// may own the subscription ordered on `order_date`.
///
/// `order_date` is the calendar date in Denmark (Europe/Copenhagen) when the order was placed:
/// a birthday starts at Danish midnight, not UTC's. The assurance is checked first, since an
/// age read from a weakly verified identity proves nothing.
///
/// # Errors
/// The first rule broken.
pub fn check_owner(
    requirement: OwnerRequirement,
    assurance: Assurance,
    cpr: &Cpr,
    order_date: Date,
) -> Result<(), OwnerRefusal> {
    if assurance < requirement.min_assurance {
        return Err(OwnerRefusal::AssuranceTooLow {
            required: requirement.min_assurance,
            actual: assurance,
        });
    }
    if !cpr.is_at_least(requirement.min_age, order_date) {
        return Err(OwnerRefusal::UnderAge {
            min_age: requirement.min_age,
        });
    }
    Ok(())
}

/// How many CPR numbers may be matched against one MitID authentication. MitID (and so every
/// broker: Signicat, Idura/Criipto, …) allows three; after that the customer must sign in
/// again, so a fourth request would only fail at the broker.
pub const MAX_CPR_MATCH_ATTEMPTS: u32 = 3;

/// The CPR-match attempts used within one authentication.
///
/// Spend an attempt *before* asking the broker and keep the result, match or not: an attempt
/// that was sent counts at MitID even if we never saw the answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CprMatchAttempts {
    used: u32,
}

/// All [`MAX_CPR_MATCH_ATTEMPTS`] attempts of this authentication are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "a CPR number can be matched at most {} times per MitID sign-in; sign in again to try again",
    MAX_CPR_MATCH_ATTEMPTS
)]
pub struct AttemptsExhausted;

impl AttemptsExhausted {
    /// The stable machine-readable code (part of the API contract).
    pub fn code(&self) -> &'static str {
        "cpr_match_attempts_exhausted"
    }
}

impl CprMatchAttempts {
    /// None used: a fresh authentication.
    pub fn new() -> Self {
        Self::default()
    }

    /// As many used as a stored count says.
    pub fn from_used(used: u32) -> Self {
        Self { used }
    }

    /// Attempts used so far.
    pub fn used(&self) -> u32 {
        self.used
    }

    /// Attempts left (0 once exhausted).
    pub fn remaining(&self) -> u32 {
        MAX_CPR_MATCH_ATTEMPTS.saturating_sub(self.used)
    }

    /// One more attempt used, if one is left.
    ///
    /// # Errors
    /// [`AttemptsExhausted`] when all are used; nothing changes then.
    pub fn try_spend(self) -> Result<Self, AttemptsExhausted> {
        if self.used >= MAX_CPR_MATCH_ATTEMPTS {
            return Err(AttemptsExhausted);
        }
        Ok(Self {
            used: self.used + 1,
        })
    }
}

/// The calendar date in Denmark (Europe/Copenhagen) at `unix_seconds`: the date an owner's
/// age is checked on. Central European Time, UTC+1, and summer time, UTC+2, from 01:00 UTC on
/// the last Sunday of March to 01:00 UTC on the last Sunday of October (the EU rule).
pub fn danish_date(unix_seconds: i64) -> Date {
    let utc = time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let year = utc.year();
    let summer_starts = last_sunday_at_one_utc(year, time::Month::March);
    let summer_ends = last_sunday_at_one_utc(year, time::Month::October);
    let offset_hours = if utc >= summer_starts && utc < summer_ends {
        2
    } else {
        1
    };
    (utc + time::Duration::hours(offset_hours)).date()
}

fn last_sunday_at_one_utc(year: i32, month: time::Month) -> time::OffsetDateTime {
    let last_day = time::util::days_in_month(month, year);
    let last = Date::from_calendar_date(year, month, last_day).expect("a valid last day");
    let back = i64::from(last.weekday().number_days_from_sunday());
    (last - time::Duration::days(back))
        .with_hms(1, 0, 0)
        .expect("01:00 is a valid time")
        .assume_utc()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Month;

    fn date(year: i32, month: Month, day: u8) -> Date {
        Date::from_calendar_date(year, month, day).unwrap()
    }

    /// Born 15 March 2007.
    fn cpr() -> Cpr {
        Cpr::parse("150307-4123").unwrap()
    }

    const ADULT_SUBSTANTIAL: OwnerRequirement = OwnerRequirement {
        min_assurance: Assurance::Substantial,
        min_age: 18,
    };

    #[test]
    fn levels_are_ordered_from_low_to_high() {
        assert!(Assurance::Low < Assurance::Substantial);
        assert!(Assurance::Substantial < Assurance::High);
    }

    #[test]
    fn levels_parse_from_words_in_any_case_and_from_nsis_uris() {
        for (text, level) in [
            ("low", Assurance::Low),
            ("Substantial", Assurance::Substantial),
            ("HIGH", Assurance::High),
            (
                "https://data.gov.dk/concept/core/nsis/loa/Low",
                Assurance::Low,
            ),
            (
                "https://data.gov.dk/concept/core/nsis/loa/Substantial",
                Assurance::Substantial,
            ),
            (
                "https://data.gov.dk/concept/core/nsis/loa/High",
                Assurance::High,
            ),
        ] {
            assert_eq!(Assurance::parse(text), Ok(level), "{text}");
        }
        for text in [
            "",
            "medium",
            " low",
            "low ",
            "https://data.gov.dk/concept/core/nsis/loa/Medium",
            "https://data.gov.dk/concept/core/nsis/loa/",
            // Identity and authenticator assurance are other scales.
            "https://data.gov.dk/concept/core/nsis/ial/High",
            "https://data.gov.dk/concept/core/nsis/aal/High",
            "https://example.com/concept/core/nsis/loa/High",
        ] {
            assert_eq!(Assurance::parse(text), Err(AssuranceError), "{text:?}");
        }
    }

    #[test]
    fn levels_are_written_and_read_in_lower_case() {
        assert_eq!(Assurance::Substantial.as_str(), "substantial");
        assert_eq!(Assurance::High.to_string(), "high");
        assert_eq!(
            serde_json::to_string(&Assurance::Substantial).unwrap(),
            "\"substantial\""
        );
        assert_eq!(
            serde_json::from_str::<Assurance>("\"low\"").unwrap(),
            Assurance::Low
        );
        assert!(serde_json::from_str::<Assurance>("\"Low\"").is_err());
    }

    #[test]
    fn assurance_below_the_requirement_is_refused_and_at_it_accepted() {
        let on = date(2030, Month::January, 1);
        assert_eq!(
            check_owner(ADULT_SUBSTANTIAL, Assurance::Low, &cpr(), on),
            Err(OwnerRefusal::AssuranceTooLow {
                required: Assurance::Substantial,
                actual: Assurance::Low,
            })
        );
        assert_eq!(
            check_owner(ADULT_SUBSTANTIAL, Assurance::Substantial, &cpr(), on),
            Ok(())
        );
        assert_eq!(
            check_owner(ADULT_SUBSTANTIAL, Assurance::High, &cpr(), on),
            Ok(())
        );
    }

    #[test]
    fn the_owner_is_old_enough_from_their_birthday_on() {
        let day_before = date(2025, Month::March, 14);
        let birthday = date(2025, Month::March, 15);
        assert_eq!(
            check_owner(ADULT_SUBSTANTIAL, Assurance::High, &cpr(), day_before),
            Err(OwnerRefusal::UnderAge { min_age: 18 })
        );
        assert_eq!(
            check_owner(ADULT_SUBSTANTIAL, Assurance::High, &cpr(), birthday),
            Ok(())
        );
        let no_age_limit = OwnerRequirement {
            min_age: 0,
            ..ADULT_SUBSTANTIAL
        };
        assert_eq!(
            check_owner(no_age_limit, Assurance::Substantial, &cpr(), day_before),
            Ok(())
        );
    }

    #[test]
    fn too_low_an_assurance_is_reported_before_the_age() {
        let refusal = check_owner(
            ADULT_SUBSTANTIAL,
            Assurance::Low,
            &cpr(),
            date(2020, Month::January, 1),
        );
        assert_eq!(refusal.unwrap_err().code(), "assurance_too_low");
    }

    #[test]
    fn refusals_have_stable_codes_and_say_nothing_of_the_person() {
        let too_low = OwnerRefusal::AssuranceTooLow {
            required: Assurance::High,
            actual: Assurance::Substantial,
        };
        assert_eq!(too_low.code(), "assurance_too_low");
        assert_eq!(
            too_low.to_string(),
            "the owner must sign in with assurance high or higher; this sign-in was substantial"
        );
        let under_age = check_owner(
            ADULT_SUBSTANTIAL,
            Assurance::High,
            &cpr(),
            date(2025, Month::March, 14),
        )
        .unwrap_err();
        assert_eq!(under_age.code(), "owner_under_age");
        assert_eq!(
            under_age.to_string(),
            "the owner of a subscription must be at least 18 years old"
        );
    }

    #[test]
    fn three_cpr_matches_per_authentication_then_none() {
        let fresh = CprMatchAttempts::new();
        assert_eq!((fresh.used(), fresh.remaining()), (0, 3));
        let first = fresh.try_spend().unwrap();
        let second = first.try_spend().unwrap();
        let third = second.try_spend().unwrap();
        assert_eq!((third.used(), third.remaining()), (3, 0));
        assert_eq!(third.try_spend(), Err(AttemptsExhausted));
        assert_eq!(AttemptsExhausted.code(), "cpr_match_attempts_exhausted");
        assert!(AttemptsExhausted.to_string().contains("at most 3 times"));
    }

    #[test]
    fn a_stored_count_resumes_where_it_was() {
        assert_eq!(
            CprMatchAttempts::from_used(2).try_spend(),
            Ok(CprMatchAttempts::from_used(3))
        );
        // A count above the limit (never written by us) is exhausted, not wrapped.
        let beyond = CprMatchAttempts::from_used(u32::MAX);
        assert_eq!(beyond.remaining(), 0);
        assert_eq!(beyond.try_spend(), Err(AttemptsExhausted));
        assert_eq!(
            serde_json::to_string(&CprMatchAttempts::from_used(3)).unwrap(),
            "3"
        );
        assert_eq!(
            serde_json::from_str::<CprMatchAttempts>("1").unwrap(),
            CprMatchAttempts::from_used(1)
        );
    }

    #[test]
    fn the_danish_date_follows_central_european_and_summer_time() {
        let at = |text: &str| {
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .unwrap()
                .unix_timestamp()
        };
        let date = |y, m, d| Date::from_calendar_date(y, m, d).unwrap();
        // Winter: 23:30 UTC is already the next day in Copenhagen (UTC+1).
        assert_eq!(
            danish_date(at("2026-01-14T22:59:59Z")),
            date(2026, time::Month::January, 14)
        );
        assert_eq!(
            danish_date(at("2026-01-14T23:00:00Z")),
            date(2026, time::Month::January, 15)
        );
        // Summer (UTC+2): 22:00 UTC is midnight.
        assert_eq!(
            danish_date(at("2026-06-14T21:59:59Z")),
            date(2026, time::Month::June, 14)
        );
        assert_eq!(
            danish_date(at("2026-06-14T22:00:00Z")),
            date(2026, time::Month::June, 15)
        );
        // 2026: summer time from 29 March 01:00 UTC to 25 October 01:00 UTC.
        assert_eq!(
            danish_date(at("2026-03-29T00:59:59Z")),
            date(2026, time::Month::March, 29)
        );
        assert_eq!(
            danish_date(at("2026-10-24T22:00:00Z")),
            date(2026, time::Month::October, 25)
        );
        assert_eq!(
            danish_date(at("2026-10-25T22:59:59Z")),
            date(2026, time::Month::October, 25)
        );
        assert_eq!(
            danish_date(at("2026-10-25T23:00:00Z")),
            date(2026, time::Month::October, 26)
        );
    }
}
