//! Number porting: the rules a port-in must meet before it is submitted, and what the answer
//! means when it comes back.
//!
//! **Denmark** (*nummerflytning*): the gaining operator submits the port to the central
//! clearing house (OCH), which checks the SIM card number (ICC) and the owner against the
//! losing operator's records. A port date is a working day, from the next working day after
//! the request in Danish time to [`MAX_DAYS_AHEAD`] days ahead; the port executes at 02:00
//! Danish time on that date, and the losing operator has [`ANSWER_WINDOW`] to answer.
//! Working days are Monday to Friday except the days in [`danish_public_holidays`], computed
//! from the year (Easter included) rather than kept in a table that runs out.
//!
//! **United Kingdom** (Ofcom's text-to-switch): the customer texts the losing provider for a
//! PAC, three letters and six digits, valid for [`PAC_VALID_DAYS`] days, and gives it to us.
//!
//! Everything here is pure: "now" is always a parameter, so the rules can be tested on any
//! date, and the Danish clock is [`danish_date`]'s, the one an owner's age is checked with.

use time::{Date, Duration, Month, OffsetDateTime, UtcOffset, Weekday};

use super::Msisdn;
use super::basket::MAX_PORT_AHEAD_DAYS;
use super::identity::danish_date;

/// How far ahead a port date may be, in days after the Danish date of the request: the same
/// bound the basket checks a desired port date against, so the two cannot drift apart.
pub const MAX_DAYS_AHEAD: i64 = MAX_PORT_AHEAD_DAYS as i64;

/// The hour of Danish local time at which a port executes on its date.
pub const EXECUTION_HOUR: u8 = 2;

/// How long the losing operator has to answer a submitted port: 48 hours on the clock, not
/// two working days.
pub const ANSWER_WINDOW: Duration = Duration::hours(48);

/// How many days a UK PAC is valid, counting the day it was issued as the first.
pub const PAC_VALID_DAYS: i64 = 30;

/// The year Store Bededag stopped being a public holiday (abolished by law from 2024).
const STORE_BEDEDAG_LAST_YEAR: i32 = 2023;

// ---------------------------------------------------------------------------------------------
// Danish calendar
// ---------------------------------------------------------------------------------------------

/// A day on which nobody ports in Denmark besides Saturdays and Sundays.
///
/// Most are public holidays (*helligdage*) by law. Constitution Day and Christmas Eve are not,
/// but are closing days across Danish business, so no port is planned on them either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Holiday {
    NewYearsDay,
    MaundyThursday,
    GoodFriday,
    EasterSunday,
    EasterMonday,
    /// Store Bededag, the fourth Friday after Easter; only until 2023.
    GreatPrayerDay,
    AscensionDay,
    WhitSunday,
    WhitMonday,
    ConstitutionDay,
    ChristmasEve,
    ChristmasDay,
    BoxingDay,
}

impl Holiday {
    /// The day's Danish name, as a calendar shows it to the customer.
    pub fn danish_name(self) -> &'static str {
        match self {
            Self::NewYearsDay => "Nytårsdag",
            Self::MaundyThursday => "Skærtorsdag",
            Self::GoodFriday => "Langfredag",
            Self::EasterSunday => "Påskedag",
            Self::EasterMonday => "2. påskedag",
            Self::GreatPrayerDay => "Store bededag",
            Self::AscensionDay => "Kristi himmelfartsdag",
            Self::WhitSunday => "Pinsedag",
            Self::WhitMonday => "2. pinsedag",
            Self::ConstitutionDay => "Grundlovsdag",
            Self::ChristmasEve => "Juleaftensdag",
            Self::ChristmasDay => "Juledag",
            Self::BoxingDay => "2. juledag",
        }
    }
}

/// Easter Sunday of `year` in the Gregorian calendar, by the anonymous Gregorian algorithm
/// (Meeus/Jones/Butcher): the first Sunday after the ecclesiastical full moon on or after
/// 21 March, somewhere from 22 March to 25 April. Proleptic before 1583.
///
/// # Panics
/// When `year` is outside the years [`Date`] holds (±9999).
pub fn easter_sunday(year: i32) -> Date {
    // The golden number: the year's place in the 19-year cycle of the moon.
    let a = year.rem_euclid(19);
    let (century, year_of_century) = (year.div_euclid(100), year.rem_euclid(100));
    // The Gregorian corrections: leap years skipped at centuries, and the moon's drift.
    let (skipped_leaps, century_leap) = (century / 4, century % 4);
    let moon_drift = (century - (century + 8) / 25 + 1) / 3;
    // Days from 21 March to the ecclesiastical full moon.
    let full_moon = (19 * a + century - skipped_leaps - moon_drift + 15) % 30;
    // Days from that full moon to the Sunday after it.
    let (leaps, leap_offset) = (year_of_century / 4, year_of_century % 4);
    let to_sunday = (32 + 2 * century_leap + 2 * leaps - full_moon - leap_offset) % 7;
    // The two exceptions that keep Easter on or before 25 April.
    let exception = (a + 11 * full_moon + 22 * to_sunday) / 451;
    let days = full_moon + to_sunday - 7 * exception + 114;
    let month = if days / 31 == 3 {
        Month::March
    } else {
        Month::April
    };
    let day = u8::try_from(days % 31 + 1).expect("a day of the month");
    Date::from_calendar_date(year, month, day).expect("Easter of a year Date holds")
}

/// The Danish non-working days of `year` besides weekends, in date order (two can fall on one
/// date: Whit Sunday is sometimes 5 June).
///
/// # Panics
/// When `year` is outside the years [`Date`] holds (±9999).
pub fn danish_public_holidays(year: i32) -> Vec<(Date, Holiday)> {
    let easter = easter_sunday(year);
    let after_easter = |days: i64| easter + Duration::days(days);
    let fixed = |month: Month, day: u8| {
        Date::from_calendar_date(year, month, day).expect("a fixed holiday exists every year")
    };
    let mut days = vec![
        (fixed(Month::January, 1), Holiday::NewYearsDay),
        (after_easter(-3), Holiday::MaundyThursday),
        (after_easter(-2), Holiday::GoodFriday),
        (easter, Holiday::EasterSunday),
        (after_easter(1), Holiday::EasterMonday),
        (after_easter(39), Holiday::AscensionDay),
        (after_easter(49), Holiday::WhitSunday),
        (after_easter(50), Holiday::WhitMonday),
        (fixed(Month::June, 5), Holiday::ConstitutionDay),
        (fixed(Month::December, 24), Holiday::ChristmasEve),
        (fixed(Month::December, 25), Holiday::ChristmasDay),
        (fixed(Month::December, 26), Holiday::BoxingDay),
    ];
    if year <= STORE_BEDEDAG_LAST_YEAR {
        days.push((after_easter(26), Holiday::GreatPrayerDay));
    }
    // Stable: on a shared date the order above is kept.
    days.sort_by_key(|&(date, _)| date);
    days
}

/// The holiday on `date`, if any (the first in [`danish_public_holidays`] order when two
/// share it).
pub fn holiday_on(date: Date) -> Option<Holiday> {
    danish_public_holidays(date.year())
        .into_iter()
        .find(|&(day, _)| day == date)
        .map(|(_, holiday)| holiday)
}

/// Whether a port can execute on `date`: Monday to Friday and not a [`Holiday`].
pub fn is_working_day(date: Date) -> bool {
    !matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday) && holiday_on(date).is_none()
}

/// The first working day after `date` (never `date` itself).
///
/// # Panics
/// When there is none before the end of year 9999, the last date [`Date`] holds.
pub fn next_working_day_after(date: Date) -> Date {
    let mut day = date;
    loop {
        day = day
            .next_day()
            .expect("a working day before the end of year 9999");
        if is_working_day(day) {
            return day;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Port dates (Denmark)
// ---------------------------------------------------------------------------------------------

/// Why a port date cannot be chosen. Dates are not personal data: messages name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PortDateError {
    #[error("the earliest port date is {earliest}, the next working day")]
    TooEarly { earliest: Date },
    #[error("{date} is not a working day; a port executes Monday to Friday, not on holidays")]
    NotWorkingDay { date: Date },
    #[error("a port date is at most {MAX_DAYS_AHEAD} days ahead, no later than {latest}")]
    TooFar { latest: Date },
}

impl PortDateError {
    /// The stable machine-readable code (part of the API contract).
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooEarly { .. } => "port_date_too_early",
            Self::NotWorkingDay { .. } => "port_date_not_working_day",
            Self::TooFar { .. } => "port_date_too_far",
        }
    }
}

/// The earliest port date for a request made at `requested_at`: the next working day after
/// the request's date in Denmark. The Danish date is what counts, not the UTC one: at 23:30
/// UTC on a Sunday in summer it is already Monday in Copenhagen, so the earliest is Tuesday.
///
/// Also the date "as soon as possible" means when the customer names none.
///
/// # Panics
/// In the last days of year 9999 (see [`next_working_day_after`]).
pub fn earliest_port_date(requested_at: OffsetDateTime) -> Date {
    next_working_day_after(danish_date(requested_at.unix_timestamp()))
}

/// Whether `requested` can be the port date of a request made at `now`.
///
/// The range is checked before the day of the week: a customer who picked a date out of
/// range needs the range, and telling them it is a Sunday would send them to a date that is
/// still refused.
///
/// # Errors
/// [`PortDateError::TooEarly`] before [`earliest_port_date`] (naming it),
/// [`PortDateError::TooFar`] more than [`MAX_DAYS_AHEAD`] days after today's Danish date,
/// [`PortDateError::NotWorkingDay`] on a weekend or [`Holiday`] in between.
pub fn check_port_date(requested: Date, now: OffsetDateTime) -> Result<(), PortDateError> {
    let today = danish_date(now.unix_timestamp());
    let earliest = next_working_day_after(today);
    if requested < earliest {
        return Err(PortDateError::TooEarly { earliest });
    }
    let latest = today.saturating_add(Duration::days(MAX_DAYS_AHEAD));
    if requested > latest {
        return Err(PortDateError::TooFar { latest });
    }
    if !is_working_day(requested) {
        return Err(PortDateError::NotWorkingDay { date: requested });
    }
    Ok(())
}

/// The instant a port on `date` executes: [`EXECUTION_HOUR`] (02:00) Danish time, in UTC —
/// 01:00 UTC in winter (UTC+1), 00:00 UTC in summer time (UTC+2).
///
/// On the two Sundays the clocks change, which are never port dates, 02:00 is ambiguous: in
/// March it does not exist and this is 01:00 UTC, the instant the clocks jump to 03:00; in
/// October it happens twice and this is the first, 00:00 UTC.
pub fn execution_instant(date: Date) -> OffsetDateTime {
    let midnight_utc = date.midnight().assume_utc();
    // Midnight starting `date` in Denmark is 22:00 UTC the day before in summer time, 23:00
    // in winter; the clocks only change at 01:00 UTC, so the offset at that 22:00 UTC is the
    // offset at 00:00 UTC on `date`, where 02:00 summer time would be.
    let summer_time = danish_date(midnight_utc.unix_timestamp() - 2 * 3600) == date;
    let offset_hours = if summer_time { 2 } else { 1 };
    midnight_utc + Duration::hours(i64::from(EXECUTION_HOUR) - offset_hours)
}

/// Until when the losing operator may answer a port submitted at `submitted_at`: [`ANSWER_WINDOW`]
/// later, in UTC. After it the port is overdue, to be chased rather than waited for.
pub fn answer_deadline(submitted_at: OffsetDateTime) -> OffsetDateTime {
    let deadline = submitted_at.saturating_add(ANSWER_WINDOW);
    deadline
        .checked_to_offset(UtcOffset::UTC)
        .unwrap_or(deadline)
}

// ---------------------------------------------------------------------------------------------
// UK PAC
// ---------------------------------------------------------------------------------------------

/// A UK Porting Authorisation Code: three letters and six digits, kept in upper case
/// (`ABC123456`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pac(String);

/// Why a PAC cannot be used. Messages never repeat the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacError {
    #[error("a PAC is 3 letters followed by 6 digits, like ABC123456")]
    Format,
    #[error(
        "a PAC is valid for {PAC_VALID_DAYS} days; this one was valid until {last_valid_day}: text PAC to 65075 for a new one"
    )]
    Expired { last_valid_day: Date },
    #[error("a PAC cannot have been issued after today")]
    IssuedInFuture,
}

impl PacError {
    /// The stable machine-readable code (part of the API contract).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Format => "pac_format",
            Self::Expired { .. } => "pac_expired",
            Self::IssuedInFuture => "pac_issued_in_future",
        }
    }
}

impl Pac {
    /// Parses three ASCII letters and six ASCII digits; lower-case letters are accepted and
    /// kept in upper case, whitespace around the code is ignored, nothing else is (no spaces
    /// or dashes inside: a PAC arrives by SMS in one piece).
    ///
    /// # Errors
    /// [`PacError::Format`] for anything else.
    pub fn parse(text: &str) -> Result<Self, PacError> {
        let bytes = text.trim().as_bytes();
        if bytes.len() != 9 {
            return Err(PacError::Format);
        }
        let (letters, digits) = bytes.split_at(3);
        if !letters.iter().all(u8::is_ascii_alphabetic) || !digits.iter().all(u8::is_ascii_digit) {
            return Err(PacError::Format);
        }
        let code = bytes.iter().map(|&b| char::from(b.to_ascii_uppercase()));
        Ok(Self(code.collect()))
    }

    /// The code in upper case, to submit with the port.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether a PAC issued on `issued_on` can still be used on `today`: from the day it was
/// issued to the 30th day, counting that day as the first (issued 1 June, usable to 30 June).
///
/// The issue date is what the customer tells us: we have no way to read it from the code,
/// and only the losing provider knows the truth. This check is there to catch a PAC that is
/// plainly too old early, when a new one is one text message away, rather than after the
/// order; counting the issue day in is the cautious reading of "valid for 30 days" for the
/// same reason, since the port is submitted after the check, not during it.
///
/// # Errors
/// [`PacError::Expired`] after the last valid day (naming it), [`PacError::IssuedInFuture`]
/// when `issued_on` is after `today` (a typo, which would stretch the validity).
pub fn check_pac_validity(issued_on: Date, today: Date) -> Result<(), PacError> {
    if issued_on > today {
        return Err(PacError::IssuedInFuture);
    }
    match issued_on.checked_add(Duration::days(PAC_VALID_DAYS - 1)) {
        Some(last_valid_day) if today > last_valid_day => Err(PacError::Expired { last_valid_day }),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Porting request and the clearing house's answer
// ---------------------------------------------------------------------------------------------

/// A port-in as submitted to the clearing house.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortingRequest {
    /// The number to bring.
    pub msisdn: Msisdn,
    /// The operator the number is with today, as the customer names it.
    pub current_operator: String,
    /// The ICCID of the SIM card at the current operator, when the customer gave it; the
    /// clearing house validates it against the losing operator's records.
    pub sim_icc: Option<String>,
    /// The owner's CPR number sealed (`pd1.…`) with the customer's data key; never the
    /// plaintext number, which only the connector opens to submit. `None`: not given.
    pub owner_cpr_sealed: Option<String>,
    /// The port date; "as soon as possible" is resolved with [`earliest_port_date`] before
    /// the request is made.
    pub requested_date: Date,
}

/// Why the clearing house (or the losing operator through it) refused a port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the SIM card number (ICC) does not match the number at the current operator")]
    WrongIcc,
    #[error("the owner does not match the owner of the number at the current operator")]
    OwnerMismatch,
    #[error("the number is not with the operator named")]
    NumberNotWithOperator,
    #[error("the port date cannot be used")]
    PortDateUnavailable,
    /// Any other reason, with the clearing house's own text for an agent to read.
    #[error("the port was refused: {reason}")]
    Other { reason: String },
}

impl Rejection {
    /// The stable machine-readable code (part of the API contract).
    pub fn code(&self) -> &'static str {
        match self {
            Self::WrongIcc => "wrong_icc",
            Self::OwnerMismatch => "owner_mismatch",
            Self::NumberNotWithOperator => "number_not_with_operator",
            Self::PortDateUnavailable => "port_date_unavailable",
            Self::Other { .. } => "other",
        }
    }
}

/// The fields of the request the customer must correct before the port is submitted again;
/// empty when there is nothing they can correct (an agent must look).
///
/// `owner` is the owner as a whole (CPR number and name), not the sealed field: the customer
/// types the owner again and it is sealed anew. A number not with the operator named is either
/// the wrong operator or a mistyped number, so both are offered.
pub fn correctable_fields(rejection: &Rejection) -> &'static [&'static str] {
    match rejection {
        Rejection::WrongIcc => &["sim_icc"],
        Rejection::OwnerMismatch => &["owner"],
        Rejection::NumberNotWithOperator => &["current_operator", "msisdn"],
        Rejection::PortDateUnavailable => &["requested_date"],
        Rejection::Other { .. } => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::format_description::well_known::Rfc3339;

    fn date(year: i32, month: u8, day: u8) -> Date {
        Date::from_calendar_date(year, Month::try_from(month).unwrap(), day).unwrap()
    }

    fn at(text: &str) -> OffsetDateTime {
        OffsetDateTime::parse(text, &Rfc3339).unwrap()
    }

    fn table(year: i32) -> Vec<(Date, Holiday)> {
        danish_public_holidays(year)
    }

    #[test]
    fn easter_falls_on_known_dates() {
        for (year, month, day) in [
            (2024, 3, 31),
            (2025, 4, 20),
            (2026, 4, 5),
            (2000, 4, 23),
            (2008, 3, 23),
            (2011, 4, 24),
            (2019, 4, 21),
            (2023, 4, 9),
            (1818, 3, 22), // as early as it gets
            (2285, 3, 22),
            (1943, 4, 25), // as late as it gets
            (2038, 4, 25),
        ] {
            assert_eq!(easter_sunday(year), date(year, month, day), "{year}");
        }
    }

    #[test]
    fn the_2024_holidays_have_no_store_bededag() {
        use Holiday::*;
        assert_eq!(
            table(2024),
            vec![
                (date(2024, 1, 1), NewYearsDay),
                (date(2024, 3, 28), MaundyThursday),
                (date(2024, 3, 29), GoodFriday),
                (date(2024, 3, 31), EasterSunday),
                (date(2024, 4, 1), EasterMonday),
                (date(2024, 5, 9), AscensionDay),
                (date(2024, 5, 19), WhitSunday),
                (date(2024, 5, 20), WhitMonday),
                (date(2024, 6, 5), ConstitutionDay),
                (date(2024, 12, 24), ChristmasEve),
                (date(2024, 12, 25), ChristmasDay),
                (date(2024, 12, 26), BoxingDay),
            ]
        );
    }

    #[test]
    fn the_2025_holidays_put_constitution_day_before_whitsun() {
        use Holiday::*;
        assert_eq!(
            table(2025),
            vec![
                (date(2025, 1, 1), NewYearsDay),
                (date(2025, 4, 17), MaundyThursday),
                (date(2025, 4, 18), GoodFriday),
                (date(2025, 4, 20), EasterSunday),
                (date(2025, 4, 21), EasterMonday),
                (date(2025, 5, 29), AscensionDay),
                (date(2025, 6, 5), ConstitutionDay),
                (date(2025, 6, 8), WhitSunday),
                (date(2025, 6, 9), WhitMonday),
                (date(2025, 12, 24), ChristmasEve),
                (date(2025, 12, 25), ChristmasDay),
                (date(2025, 12, 26), BoxingDay),
            ]
        );
    }

    #[test]
    fn the_2026_holidays() {
        use Holiday::*;
        assert_eq!(
            table(2026),
            vec![
                (date(2026, 1, 1), NewYearsDay),
                (date(2026, 4, 2), MaundyThursday),
                (date(2026, 4, 3), GoodFriday),
                (date(2026, 4, 5), EasterSunday),
                (date(2026, 4, 6), EasterMonday),
                (date(2026, 5, 14), AscensionDay),
                (date(2026, 5, 24), WhitSunday),
                (date(2026, 5, 25), WhitMonday),
                (date(2026, 6, 5), ConstitutionDay),
                (date(2026, 12, 24), ChristmasEve),
                (date(2026, 12, 25), ChristmasDay),
                (date(2026, 12, 26), BoxingDay),
            ]
        );
    }

    #[test]
    fn store_bededag_is_a_holiday_only_until_2023() {
        // 2023: Easter on 9 April, Store Bededag on 5 May.
        assert!(table(2023).contains(&(date(2023, 5, 5), Holiday::GreatPrayerDay)));
        assert_eq!(holiday_on(date(2023, 5, 5)), Some(Holiday::GreatPrayerDay));
        assert!(!is_working_day(date(2023, 5, 5)));
        assert_eq!(table(2023).len(), 13);
        // 2024: the fourth Friday after Easter (26 April) is an ordinary Friday.
        assert_eq!(holiday_on(date(2024, 4, 26)), None);
        assert!(is_working_day(date(2024, 4, 26)));
        for year in 2024..=2030 {
            assert!(
                table(year)
                    .iter()
                    .all(|&(_, holiday)| holiday != Holiday::GreatPrayerDay),
                "{year}"
            );
        }
    }

    #[test]
    fn whit_sunday_and_constitution_day_can_share_a_date() {
        // 2022: Easter on 17 April, so Whit Sunday is 5 June.
        let shared: Vec<_> = table(2022)
            .into_iter()
            .filter(|&(day, _)| day == date(2022, 6, 5))
            .map(|(_, holiday)| holiday)
            .collect();
        assert_eq!(shared, [Holiday::WhitSunday, Holiday::ConstitutionDay]);
        assert_eq!(holiday_on(date(2022, 6, 5)), Some(Holiday::WhitSunday));
        assert!(!is_working_day(date(2022, 6, 6))); // Whit Monday
    }

    #[test]
    fn working_days_are_weekdays_that_are_not_holidays() {
        assert!(is_working_day(date(2025, 1, 2))); // Thursday
        assert!(!is_working_day(date(2025, 1, 4))); // Saturday
        assert!(!is_working_day(date(2025, 1, 5))); // Sunday
        assert!(!is_working_day(date(2025, 1, 1))); // New Year's Day, a Wednesday
        assert!(!is_working_day(date(2025, 6, 5))); // Constitution Day, a Thursday
        assert!(!is_working_day(date(2025, 12, 24))); // Christmas Eve, a Wednesday
        assert!(is_working_day(date(2025, 12, 31))); // New Year's Eve is not on the list
        assert_eq!(Holiday::ChristmasEve.danish_name(), "Juleaftensdag");
    }

    #[test]
    fn a_request_on_friday_evening_can_port_on_monday() {
        // 19:00 in Copenhagen (winter) and 00:30 on Saturday: both Monday.
        assert_eq!(
            earliest_port_date(at("2025-01-10T18:00:00Z")),
            date(2025, 1, 13)
        );
        assert_eq!(
            earliest_port_date(at("2025-01-10T23:30:00Z")),
            date(2025, 1, 13)
        );
        // On a weekday the earliest is the next day, however early the request.
        assert_eq!(
            earliest_port_date(at("2025-01-07T06:00:00Z")),
            date(2025, 1, 8)
        );
    }

    #[test]
    fn a_request_on_maundy_thursday_waits_until_after_easter_monday() {
        // 2025: Good Friday 18 April, the weekend, Easter Monday 21 April.
        assert_eq!(
            earliest_port_date(at("2025-04-17T09:00:00Z")),
            date(2025, 4, 22)
        );
        // Christmas 2025: 24–26 December, then the weekend.
        assert_eq!(
            earliest_port_date(at("2025-12-23T12:00:00Z")),
            date(2025, 12, 29)
        );
    }

    #[test]
    fn the_next_working_day_is_counted_from_the_danish_date() {
        // Sunday 15 June 2025: 21:30 UTC is 23:30 in Copenhagen (UTC+2), still Sunday…
        assert_eq!(
            earliest_port_date(at("2025-06-15T21:30:00Z")),
            date(2025, 6, 16)
        );
        // …23:30 UTC is 01:30 on Monday, so the earliest is Tuesday.
        assert_eq!(
            earliest_port_date(at("2025-06-15T23:30:00Z")),
            date(2025, 6, 17)
        );
        // The offset the instant is written with does not matter, only the instant.
        assert_eq!(
            earliest_port_date(at("2025-06-15T18:30:00-05:00")),
            date(2025, 6, 17)
        );
    }

    #[test]
    fn a_port_date_is_a_working_day_from_the_earliest_to_90_days_ahead() {
        let now = at("2025-01-10T12:00:00Z"); // Friday 10 January
        assert_eq!(check_port_date(date(2025, 1, 13), now), Ok(()));
        for early in [date(2025, 1, 9), date(2025, 1, 10), date(2025, 1, 11)] {
            let error = check_port_date(early, now).unwrap_err();
            assert_eq!(
                error,
                PortDateError::TooEarly {
                    earliest: date(2025, 1, 13)
                },
                "{early}"
            );
            assert_eq!(error.code(), "port_date_too_early");
            assert!(error.to_string().contains("2025-01-13"), "{error}");
        }
        let weekend = check_port_date(date(2025, 1, 18), now).unwrap_err();
        assert_eq!(
            weekend,
            PortDateError::NotWorkingDay {
                date: date(2025, 1, 18)
            }
        );
        assert_eq!(weekend.code(), "port_date_not_working_day");
        assert_eq!(
            check_port_date(date(2025, 4, 18), at("2025-04-01T12:00:00Z")).map_err(|e| e.code()),
            Err("port_date_not_working_day") // Good Friday
        );
        // 90 days after 10 January is Thursday 10 April.
        assert_eq!(check_port_date(date(2025, 4, 10), now), Ok(()));
        let far = check_port_date(date(2025, 4, 11), now).unwrap_err();
        assert_eq!(
            far,
            PortDateError::TooFar {
                latest: date(2025, 4, 10)
            }
        );
        assert_eq!(far.code(), "port_date_too_far");
        // Out of range is said before "not a working day".
        assert_eq!(
            check_port_date(date(2025, 4, 12), now).map_err(|e| e.code()),
            Err("port_date_too_far")
        );
    }

    #[test]
    fn the_90_days_are_counted_from_the_danish_date() {
        // 23:30 UTC on 10 January is 11 January in Copenhagen: 11 April is day 90.
        let now = at("2025-01-10T23:30:00Z");
        assert_eq!(check_port_date(date(2025, 4, 11), now), Ok(()));
        assert_eq!(
            check_port_date(date(2025, 4, 14), now).map_err(|e| e.code()),
            Err("port_date_too_far")
        );
    }

    #[test]
    fn a_port_executes_at_two_in_the_morning_danish_time() {
        // Winter (UTC+1): 01:00 UTC.
        assert_eq!(
            execution_instant(date(2025, 1, 13)),
            at("2025-01-13T01:00:00Z")
        );
        // Summer time (UTC+2): 00:00 UTC.
        assert_eq!(
            execution_instant(date(2025, 6, 16)),
            at("2025-06-16T00:00:00Z")
        );
        assert_eq!(
            execution_instant(date(2025, 6, 16)).offset(),
            UtcOffset::UTC
        );
        // The days either side of the 2025 changes (30 March, 26 October).
        assert_eq!(
            execution_instant(date(2025, 3, 28)),
            at("2025-03-28T01:00:00Z")
        );
        assert_eq!(
            execution_instant(date(2025, 3, 31)),
            at("2025-03-31T00:00:00Z")
        );
        assert_eq!(
            execution_instant(date(2025, 10, 24)),
            at("2025-10-24T00:00:00Z")
        );
        assert_eq!(
            execution_instant(date(2025, 10, 27)),
            at("2025-10-27T01:00:00Z")
        );
        // On the Sundays themselves: the jump to 03:00, and the first 02:00.
        assert_eq!(
            execution_instant(date(2025, 3, 30)),
            at("2025-03-30T01:00:00Z")
        );
        assert_eq!(
            execution_instant(date(2025, 10, 26)),
            at("2025-10-26T00:00:00Z")
        );
    }

    #[test]
    fn the_losing_operator_has_48_hours_to_answer() {
        assert_eq!(
            answer_deadline(at("2025-01-10T16:15:00Z")),
            at("2025-01-12T16:15:00Z")
        );
        // Given in Danish summer time, answered in UTC; the clock, not working days.
        let deadline = answer_deadline(at("2025-06-13T17:00:00+02:00"));
        assert_eq!(deadline, at("2025-06-15T15:00:00Z"));
        assert_eq!(deadline.offset(), UtcOffset::UTC);
    }

    #[test]
    fn a_pac_is_three_letters_and_six_digits_in_upper_case() {
        assert_eq!(Pac::parse("ABC123456").unwrap().as_str(), "ABC123456");
        assert_eq!(Pac::parse("abc123456").unwrap().as_str(), "ABC123456");
        assert_eq!(Pac::parse("aBc123456").unwrap().as_str(), "ABC123456");
        assert_eq!(Pac::parse(" XYZ000001\n").unwrap().as_str(), "XYZ000001");
    }

    #[test]
    fn anything_else_is_not_a_pac() {
        for text in [
            "",
            "   ",
            "AB1234567",   // two letters
            "ABCD12345",   // four letters
            "ABC12345",    // five digits
            "ABC1234567",  // seven digits
            "123456ABC",   // the wrong way round
            "ABC 123456",  // a space inside
            "ABC-123456",  // a dash
            "ÅBC123456",   // not ASCII
            "ABC12345６",  // a full-width digit
            "ABC12345O",   // a letter O for a zero
            "ABC123456\0", // a NUL
        ] {
            let error = Pac::parse(text).unwrap_err();
            assert_eq!(error, PacError::Format, "{text:?}");
            assert_eq!(error.code(), "pac_format");
        }
        let message = Pac::parse("QRS98765").unwrap_err().to_string();
        assert!(
            !message.contains("QRS") && !message.contains("98765"),
            "{message}"
        );
    }

    #[test]
    fn a_pac_is_valid_for_30_days_counting_the_day_it_was_issued() {
        let issued = date(2025, 6, 1);
        assert_eq!(check_pac_validity(issued, issued), Ok(()));
        assert_eq!(check_pac_validity(issued, date(2025, 6, 30)), Ok(()));
        let expired = check_pac_validity(issued, date(2025, 7, 1)).unwrap_err();
        assert_eq!(
            expired,
            PacError::Expired {
                last_valid_day: date(2025, 6, 30)
            }
        );
        assert_eq!(expired.code(), "pac_expired");
        assert!(expired.to_string().contains("2025-06-30"), "{expired}");
        // Across a month end and a year end.
        assert_eq!(
            check_pac_validity(date(2025, 12, 15), date(2026, 1, 13)),
            Ok(())
        );
        assert_eq!(
            check_pac_validity(date(2025, 12, 15), date(2026, 1, 14)).map_err(|e| e.code()),
            Err("pac_expired")
        );
        // An issue date after today is a typo, not a longer validity.
        let future = check_pac_validity(date(2025, 6, 2), date(2025, 6, 1)).unwrap_err();
        assert_eq!(future, PacError::IssuedInFuture);
        assert_eq!(future.code(), "pac_issued_in_future");
    }

    #[test]
    fn each_rejection_names_what_the_customer_corrects() {
        let other = Rejection::Other {
            reason: "number blocked".to_owned(),
        };
        let cases: [(Rejection, &str, &[&str]); 5] = [
            (Rejection::WrongIcc, "wrong_icc", &["sim_icc"]),
            (Rejection::OwnerMismatch, "owner_mismatch", &["owner"]),
            (
                Rejection::NumberNotWithOperator,
                "number_not_with_operator",
                &["current_operator", "msisdn"],
            ),
            (
                Rejection::PortDateUnavailable,
                "port_date_unavailable",
                &["requested_date"],
            ),
            (other.clone(), "other", &[]),
        ];
        for (rejection, code, fields) in cases {
            assert_eq!(rejection.code(), code);
            assert_eq!(correctable_fields(&rejection), fields, "{code}");
        }
        assert!(other.to_string().contains("number blocked"));
    }

    #[test]
    fn a_porting_request_carries_the_owner_only_sealed() {
        let request = PortingRequest {
            msisdn: Msisdn::parse("+4520123456").unwrap(),
            current_operator: "Telmore".to_owned(),
            sim_icc: None,
            owner_cpr_sealed: Some("pd1.cpr".to_owned()),
            requested_date: earliest_port_date(at("2025-01-10T18:00:00Z")),
        };
        assert_eq!(request.requested_date, date(2025, 1, 13));
        assert_eq!(
            check_port_date(request.requested_date, at("2025-01-10T18:00:00Z")),
            Ok(())
        );
        assert!(format!("{request:?}").contains("pd1.cpr"));
    }

    /// 2024-01-01T00:00:00Z to 2030-12-31T23:59:59Z.
    const FROM_2024: i64 = 1_704_067_200;
    const TO_2030: i64 = 1_924_991_999;

    proptest! {
        #[test]
        fn the_earliest_port_date_is_a_working_day_within_6_days(
            seconds in FROM_2024..=TO_2030,
        ) {
            let instant = OffsetDateTime::from_unix_timestamp(seconds).unwrap();
            let today = danish_date(seconds);
            let earliest = earliest_port_date(instant);
            prop_assert!(is_working_day(earliest), "{earliest}");
            prop_assert!(earliest > today, "{earliest} after {today}");
            prop_assert!(earliest - today <= Duration::days(6), "{earliest} from {today}");
            // Every day in between is a day nobody ports.
            let mut day = today.next_day().unwrap();
            while day < earliest {
                prop_assert!(!is_working_day(day), "{day} skipped");
                day = day.next_day().unwrap();
            }
            prop_assert_eq!(check_port_date(earliest, instant), Ok(()));
        }

        #[test]
        fn execution_is_at_two_in_the_morning_on_the_danish_date(
            julian in date(2024, 1, 1).to_julian_day()..=date(2030, 12, 31).to_julian_day(),
        ) {
            let day = Date::from_julian_day(julian).unwrap();
            let instant = execution_instant(day).unix_timestamp();
            // Two hours before is midnight starting `day` in Denmark, a second more the day
            // before, whichever the offset.
            prop_assert_eq!(danish_date(instant), day);
            prop_assert_eq!(danish_date(instant - 2 * 3600), day);
            prop_assert_eq!(danish_date(instant - 2 * 3600 - 1), day.previous_day().unwrap());
        }

        #[test]
        fn easter_is_a_sunday_from_22_march_to_25_april(year in 1583i32..=9999) {
            let easter = easter_sunday(year);
            prop_assert_eq!(easter.weekday(), Weekday::Sunday);
            prop_assert!(easter >= date(year, 3, 22) && easter <= date(year, 4, 25), "{easter}");
        }

        #[test]
        fn any_text_parses_as_a_pac_or_is_refused_without_panicking(text in any::<String>()) {
            if let Ok(pac) = Pac::parse(&text) {
                prop_assert_eq!(pac.as_str(), text.trim().to_ascii_uppercase());
            }
        }
    }
}
