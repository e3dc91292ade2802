//! The Danish personal identification number (CPR number, *personnummer*).
//!
//! A CPR number is ten digits, `DDMMYY-SSSS`: the birth date with a two-digit year, then a
//! serial whose first digit (the 7th of the number) tells the century of the year together with
//! `YY`. We read it for two things only: to match it against the signed-in MitID user at the
//! broker, and to know the owner's age from the birth date.
//!
//! Numbers are never refused for failing the old modulus-11 check: the CPR office stopped
//! issuing only numbers that pass it in 2007 because some birth dates had run out of them, so
//! many people born since (and a few born earlier) have valid numbers that fail it.
//!
//! The number is personal data that must not end up in logs, events or error messages, so
//! [`Cpr`] has no `Display` or `Serialize`, its `Debug` shows stars and [`CprError`] never
//! repeats the text it was given.

use std::fmt;

use time::{Date, Month};

/// A CPR number whose birth date exists.
///
/// No `Display` and no `Serialize` on purpose: the number cannot be formatted into a log line
/// or written into a record or event by accident. The only ways to the digits are
/// [`Cpr::digits`] and [`Cpr::masked`], which a reviewer can search for.
#[derive(Clone, PartialEq, Eq)]
pub struct Cpr {
    /// The ten digits, without the dash.
    digits: String,
    birth_date: Date,
}

/// Why a text is not a CPR number. The message never contains the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CprError {
    #[error("a CPR number is 10 digits, written DDMMYYSSSS or DDMMYY-SSSS")]
    Format,
    #[error("a CPR number starts with the birth date (DDMMYY), and this one is not a date")]
    Date,
}

impl CprError {
    /// The stable machine-readable code (part of the API contract).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Format => "cpr_format",
            Self::Date => "cpr_date",
        }
    }
}

/// Weights of the historic modulus-11 check, one per digit.
const HISTORIC_WEIGHTS: [u32; 10] = [4, 3, 2, 7, 6, 5, 4, 3, 2, 1];

impl Cpr {
    /// Parses `DDMMYY-SSSS` or `DDMMYYSSSS`; whitespace around it is ignored, nothing else is
    /// (no spaces, dots or slashes inside: what the customer typed is matched as is).
    ///
    /// # Errors
    /// [`CprError::Format`] when it is not ten ASCII digits in one of the two forms,
    /// [`CprError::Date`] when the birth date does not exist (31 April, 29 February of a
    /// year that is not a leap year, day 00, month 13). Never for the modulus-11 check.
    pub fn parse(text: &str) -> Result<Self, CprError> {
        let bytes = text.trim().as_bytes();
        let (date, serial) = match bytes.len() {
            10 => bytes.split_at(6),
            11 if bytes[6] == b'-' => (&bytes[..6], &bytes[7..]),
            _ => return Err(CprError::Format),
        };
        if !date.iter().chain(serial).all(u8::is_ascii_digit) {
            return Err(CprError::Format);
        }
        let digits: String = date.iter().chain(serial).map(|&b| char::from(b)).collect();
        let birth_date = birth_date_of(digits.as_bytes())?;
        Ok(Self { digits, birth_date })
    }

    /// The birth date, with the century from the 7th digit.
    pub fn birth_date(&self) -> Date {
        self.birth_date
    }

    /// Age in whole years on `date` (0 before the birth date).
    ///
    /// Someone born on 29 February has their birthday on 1 March in years that are not leap
    /// years: on 28 February they are still a year younger. This is how Danish law counts
    /// (the day of birth must have passed), and the safe side for an age limit.
    pub fn age_on(&self, date: Date) -> u32 {
        let birth = self.birth_date;
        let mut years = date.year() - birth.year();
        if (u8::from(date.month()), date.day()) < (u8::from(birth.month()), birth.day()) {
            years -= 1;
        }
        u32::try_from(years).unwrap_or(0)
    }

    /// Whether the owner is `min_age` years or older on `date`, as [`Cpr::age_on`] counts.
    pub fn is_at_least(&self, min_age: u32, date: Date) -> bool {
        self.age_on(date) >= min_age
    }

    /// Whether the number passes the modulus-11 check numbers issued before 2007 were made
    /// to pass. For information only: failing it does not make a number invalid.
    pub fn passes_historic_checksum(&self) -> bool {
        let sum: u32 = self
            .digits
            .bytes()
            .zip(HISTORIC_WEIGHTS)
            .map(|(digit, weight)| u32::from(digit - b'0') * weight)
            .sum();
        sum.is_multiple_of(11)
    }

    /// The ten digits without the dash — to send to the broker for matching and to encrypt
    /// for storage, nothing else (never logs, events, errors or responses).
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// `DDMMYY-XXXX`, to echo back to the customer who typed it. Not for logs: the birth date
    /// is personal data too.
    pub fn masked(&self) -> String {
        format!("{}-XXXX", &self.digits[..6])
    }
}

/// The birth date of ten ASCII digits, `DDMMYYSSSS`.
fn birth_date_of(digits: &[u8]) -> Result<Date, CprError> {
    let digit = |i: usize| digits[i] - b'0';
    let day = digit(0) * 10 + digit(1);
    let month = digit(2) * 10 + digit(3);
    let yy = digit(4) * 10 + digit(5);
    let year = century(digit(6), yy) + i32::from(yy);
    let month = Month::try_from(month).map_err(|_| CprError::Date)?;
    Date::from_calendar_date(year, month, day).map_err(|_| CprError::Date)
}

/// The century of a birth year from the 7th digit and `YY`, as the CPR office assigns serials:
///
/// | 7th digit | `YY` 00–36 | `YY` 37–57 | `YY` 58–99 |
/// |-----------|------------|------------|------------|
/// | 0–3       | 1900       | 1900       | 1900       |
/// | 4, 9      | 2000       | 1900       | 1900       |
/// | 5–8       | 2000       | 2000       | 1800       |
fn century(seventh: u8, yy: u8) -> i32 {
    match seventh {
        0..=3 => 1900,
        4 | 9 if yy <= 36 => 2000,
        4 | 9 => 1900,
        _ if yy <= 57 => 2000,
        _ => 1800,
    }
}

impl fmt::Debug for Cpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cpr(**********)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn date(year: i32, month: u8, day: u8) -> Date {
        Date::from_calendar_date(year, Month::try_from(month).unwrap(), day).unwrap()
    }

    fn born(text: &str) -> Date {
        Cpr::parse(text).unwrap().birth_date()
    }

    #[test]
    fn the_seventh_digit_and_yy_give_the_century_at_every_edge() {
        let table = [
            // 7th digit 0–3: always 19YY.
            ("010100-0000", 1900),
            ("010136-0000", 1936),
            ("010137-0000", 1937),
            ("010199-0000", 1999),
            ("010100-3000", 1900),
            ("010136-3000", 1936),
            ("010137-3000", 1937),
            ("010199-3000", 1999),
            // 4 and 9: 20YY up to 36, then 19YY.
            ("010100-4000", 2000),
            ("010136-4000", 2036),
            ("010137-4000", 1937),
            ("010199-4000", 1999),
            ("010136-9000", 2036),
            ("010137-9000", 1937),
            // 5–8: 20YY up to 57, 18YY from 58.
            ("010100-5000", 2000),
            ("010157-5000", 2057),
            ("010158-5000", 1858),
            ("010199-5000", 1899),
            ("010157-6000", 2057),
            ("010158-6000", 1858),
            ("010157-7000", 2057),
            ("010158-7000", 1858),
            ("010157-8000", 2057),
            ("010158-8000", 1858),
        ];
        for (text, year) in table {
            assert_eq!(born(text), date(year, 1, 1), "{text}");
        }
    }

    #[test]
    fn both_forms_and_surrounding_whitespace_are_accepted() {
        let dashed = Cpr::parse("150307-4123").unwrap();
        assert_eq!(dashed.birth_date(), date(2007, 3, 15));
        assert_eq!(dashed.digits(), "1503074123");
        assert_eq!(dashed.masked(), "150307-XXXX");
        assert_eq!(Cpr::parse("1503074123").unwrap(), dashed);
        assert_eq!(Cpr::parse(" \t1503074123\n").unwrap(), dashed);
    }

    #[test]
    fn the_modulus_11_check_is_information_not_a_rule() {
        let fails = Cpr::parse("010190-1234").unwrap();
        assert!(!fails.passes_historic_checksum());
        assert_eq!(fails.birth_date(), date(1990, 1, 1));
        let passes = Cpr::parse("070761-4285").unwrap();
        assert!(passes.passes_historic_checksum());
        assert_eq!(passes.birth_date(), date(1961, 7, 7));
    }

    #[test]
    fn dates_that_do_not_exist_are_refused() {
        for text in [
            "310490-1234", // 31 April
            "290201-4000", // 2001 is not a leap year
            "290200-0000", // nor is 1900
            "000190-1234", // day 00
            "011390-1234", // month 13
            "010090-1234", // month 00
            "320190-1234", // day 32
        ] {
            assert_eq!(Cpr::parse(text), Err(CprError::Date), "{text}");
        }
        // 2000 is a leap year.
        assert_eq!(born("290200-4000"), date(2000, 2, 29));
    }

    #[test]
    fn anything_but_the_two_forms_is_a_format_error() {
        for text in [
            "",
            "   ",
            "01019O-1234",          // a letter O
            "010190-123a",          // a letter
            "010190-123",           // 9 digits
            "010190123",            // 9 digits
            "01019012345",          // 11 digits
            "010190-12345",         // 11 digits
            "010190/1234",          // another separator
            "010190 1234",          // a space inside
            "010190--1234",         // two dashes
            "01019-01234",          // a dash in the wrong place
            "-0101901234",          // a leading dash
            "010190-١٢٣٤",          // non-ASCII digits
            "０１０１９０１２３４", // full-width digits
        ] {
            assert_eq!(Cpr::parse(text), Err(CprError::Format), "{text:?}");
        }
    }

    #[test]
    fn errors_have_stable_codes_and_never_repeat_the_number() {
        assert_eq!(CprError::Format.code(), "cpr_format");
        assert_eq!(CprError::Date.code(), "cpr_date");
        for text in ["310490-1234", "3104901234x"] {
            let message = Cpr::parse(text).unwrap_err().to_string();
            assert!(!message.contains("3104"), "{message}");
            assert!(!message.contains("1234"), "{message}");
        }
    }

    #[test]
    fn age_counts_whole_years_up_to_the_birthday() {
        let cpr = Cpr::parse("150307-4123").unwrap(); // 15 March 2007
        assert_eq!(cpr.age_on(date(2025, 3, 14)), 17);
        assert!(!cpr.is_at_least(18, date(2025, 3, 14)));
        assert_eq!(cpr.age_on(date(2025, 3, 15)), 18);
        assert!(cpr.is_at_least(18, date(2025, 3, 15)));
        assert_eq!(cpr.age_on(date(2025, 12, 31)), 18);
        assert_eq!(cpr.age_on(date(2007, 3, 15)), 0);
        assert_eq!(cpr.age_on(date(2000, 1, 1)), 0); // before birth
    }

    #[test]
    fn a_29_february_birthday_is_reached_on_1_march_in_other_years() {
        let cpr = Cpr::parse("290204-4123").unwrap(); // 29 February 2004
        assert_eq!(cpr.age_on(date(2022, 2, 28)), 17);
        assert!(!cpr.is_at_least(18, date(2022, 2, 28)));
        assert_eq!(cpr.age_on(date(2022, 3, 1)), 18);
        assert!(cpr.is_at_least(18, date(2022, 3, 1)));
        // In a leap year the birthday itself counts.
        assert_eq!(cpr.age_on(date(2024, 2, 28)), 19);
        assert_eq!(cpr.age_on(date(2024, 2, 29)), 20);
    }

    /// Whether a type implements `Display` or `Serialize`, without an impl to call: an inherent
    /// associated const applies when its bound holds, the trait's default otherwise.
    struct Probe<T>(std::marker::PhantomData<T>);
    trait Otherwise {
        const DISPLAY: bool = false;
        const SERIALIZE: bool = false;
    }
    impl<T> Otherwise for Probe<T> {}
    impl<T: fmt::Display> Probe<T> {
        const DISPLAY: bool = true;
    }
    impl<T: serde::Serialize> Probe<T> {
        const SERIALIZE: bool = true;
    }

    #[test]
    fn the_number_cannot_be_formatted_or_serialized_by_accident() {
        let cpr = Cpr::parse("150307-4123").unwrap();
        assert_eq!(format!("{cpr:?}"), "Cpr(**********)");
        assert_eq!(format!("{:?}", Some(&cpr)), "Some(Cpr(**********))");
        assert!(!format!("{cpr:#?}").contains("1503"));
    }

    // Checked when the tests compile: `Cpr` has neither `Display` nor `Serialize`…
    const _: () = assert!(!Probe::<Cpr>::DISPLAY && !Probe::<Cpr>::SERIALIZE);
    // …and the probe does see impls that exist.
    const _: () = assert!(Probe::<String>::DISPLAY && Probe::<String>::SERIALIZE);

    /// A 7th digit that puts `year` (1858–2057) in its century, chosen by `pick`.
    fn seventh_digit_for(year: i32, pick: prop::sample::Index) -> u8 {
        let yy = year % 100;
        let choices: &[u8] = match year {
            1858..=1899 => &[5, 6, 7, 8],
            1900..=1936 => &[0, 1, 2, 3],
            1937..=1999 => &[0, 1, 2, 3, 4, 9],
            2000..=2057 if yy <= 36 => &[4, 5, 6, 7, 8, 9],
            2000..=2057 => &[5, 6, 7, 8],
            _ => unreachable!("year {year} outside 1858–2057"),
        };
        *pick.get(choices)
    }

    proptest! {
        #[test]
        fn every_date_from_1858_to_2057_round_trips(
            julian in date(1858, 1, 1).to_julian_day()..=date(2057, 12, 31).to_julian_day(),
            pick in any::<prop::sample::Index>(),
            serial in 0u16..1000,
            dashed in any::<bool>(),
        ) {
            let birth = Date::from_julian_day(julian).unwrap();
            let seventh = seventh_digit_for(birth.year(), pick);
            let text = format!(
                "{:02}{:02}{:02}{}{seventh}{serial:03}",
                birth.day(),
                u8::from(birth.month()),
                birth.year() % 100,
                if dashed { "-" } else { "" },
            );
            let cpr = Cpr::parse(&text).unwrap();
            prop_assert_eq!(cpr.birth_date(), birth);
            prop_assert_eq!(cpr.digits(), text.replace('-', ""));
        }

        #[test]
        fn ten_digits_parse_or_are_not_a_date(text in "[0-9]{10}") {
            match Cpr::parse(&text) {
                Ok(cpr) => {
                    prop_assert_eq!(cpr.digits(), text.as_str());
                    prop_assert_eq!(&cpr.masked()[..6], &text[..6]);
                }
                Err(error) => prop_assert_eq!(error, CprError::Date),
            }
        }

        #[test]
        fn any_text_parses_or_is_refused_without_panicking(text in any::<String>()) {
            let _ = Cpr::parse(&text);
        }
    }
}
