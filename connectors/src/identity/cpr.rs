//! Danish CPR numbers (personnummer): `DDMMYY-SSSS`, ten digits, the dash optional.
//!
//! The birth date is in the first six digits; the century comes from the seventh digit
//! together with the two-digit year:
//!
//! | 7th digit | YY 00–36 | YY 37–57 | YY 58–99 |
//! | --- | --- | --- | --- |
//! | 0–3 | 19YY | 19YY | 19YY |
//! | 4, 9 | 20YY | 19YY | 19YY |
//! | 5–8 | 20YY | 20YY | 18YY |
//!
//! The historic modulus-11 check (weights 4,3,2,7,6,5,4,3,2,1, weighted sum divisible by 11)
//! is *not* a validity test: since 2007 numbers are issued that fail it, because some birth
//! dates ran out of numbers that pass. [`Cpr::passes_mod11`] exists so tests can show that a
//! number is accepted without it.
//!
//! A [`Cpr`] never prints its digits through `Debug`, so it cannot end up in a log by accident.

use std::fmt;

/// The historic modulus-11 weights.
const MOD11_WEIGHTS: [u32; 10] = [4, 3, 2, 7, 6, 5, 4, 3, 2, 1];

/// A syntactically valid CPR number whose first six digits are a real date.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cpr([u8; 10]);

impl Cpr {
    /// Parses `DDMMYYSSSS` or `DDMMYY-SSSS`. `None` for anything else, and for a number whose
    /// birth date does not exist (31 April, 29 February of a common year).
    pub fn parse(input: &str) -> Option<Self> {
        let compact: String = match input.split_once('-') {
            Some((date, serial)) if date.len() == 6 => format!("{date}{serial}"),
            Some(_) => return None,
            None => input.to_owned(),
        };
        let bytes = compact.as_bytes();
        if bytes.len() != 10 || !bytes.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut digits = [0u8; 10];
        for (digit, byte) in digits.iter_mut().zip(bytes) {
            *digit = byte - b'0';
        }
        let cpr = Self(digits);
        cpr.birth_date().map(|_| cpr)
    }

    /// The birth date as (year, month, day), the century by the seventh digit.
    pub fn birth_date(&self) -> Option<(i32, u32, u32)> {
        let pair = |i: usize| u32::from(self.0[i]) * 10 + u32::from(self.0[i + 1]);
        let (day, month, yy) = (pair(0), pair(2), pair(4));
        let year = century(self.0[6], yy) + i32::try_from(yy).ok()?;
        (day >= 1 && day <= days_in_month(year, month)?).then_some((year, month, day))
    }

    /// The birth date as `YYYY-MM-DD`.
    pub fn birth_date_iso(&self) -> Option<String> {
        self.birth_date()
            .map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}"))
    }

    /// Whether the number passes the historic modulus-11 check (see the module docs: numbers
    /// issued since 2007 need not).
    pub fn passes_mod11(&self) -> bool {
        let sum: u32 = self
            .0
            .iter()
            .zip(MOD11_WEIGHTS)
            .map(|(d, w)| u32::from(*d) * w)
            .sum();
        sum.is_multiple_of(11)
    }

    /// The ten digits without the dash.
    pub fn digits(&self) -> String {
        self.0.iter().map(|d| char::from(b'0' + d)).collect()
    }
}

impl fmt::Debug for Cpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cpr(******-****)")
    }
}

/// The first year of the century a CPR's seventh digit and two-digit year point to.
fn century(seventh: u8, yy: u32) -> i32 {
    match seventh {
        0..=3 => 1900,
        4 | 9 if yy <= 36 => 2000,
        4 | 9 => 1900,
        _ if yy <= 57 => 2000,
        _ => 1800,
    }
}

fn days_in_month(year: i32, month: u32) -> Option<u32> {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => Some(31),
        4 | 6 | 9 | 11 => Some(30),
        2 if leap => Some(29),
        2 => Some(28),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_and_without_the_dash() {
        let dashed = Cpr::parse("140390-2086").unwrap();
        assert_eq!(Cpr::parse("1403902086"), Some(dashed));
        assert_eq!(dashed.digits(), "1403902086");
        for bad in [
            "",
            "140390208",
            "14039020860",
            "1403-902086",
            "14039O2086",
            "140390--2086",
            "140390 2086",
        ] {
            assert_eq!(Cpr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn refuses_dates_that_do_not_exist() {
        assert_eq!(Cpr::parse("3104901234"), None, "31 April");
        assert_eq!(Cpr::parse("0013901234"), None, "month 13");
        assert_eq!(Cpr::parse("0001901234"), None, "day 0");
        assert_eq!(Cpr::parse("2902011234"), None, "29 February 1901");
        assert_eq!(Cpr::parse("2902001234"), None, "29 February 1900");
        assert!(Cpr::parse("2902004234").is_some(), "29 February 2000");
    }

    #[test]
    fn century_rule() {
        let year = |cpr: &str| Cpr::parse(cpr).unwrap().birth_date().unwrap().0;
        assert_eq!(year("0101360000"), 1936);
        assert_eq!(year("0101993999"), 1999);
        assert_eq!(year("0101364000"), 2036);
        assert_eq!(year("0101374000"), 1937);
        assert_eq!(year("0101369000"), 2036);
        assert_eq!(year("0101379000"), 1937);
        assert_eq!(year("0101575000"), 2057);
        assert_eq!(year("0101588000"), 1858);
        assert_eq!(year("0101998999"), 1899);
    }

    #[test]
    fn modulus_11() {
        // 4·1 + 3·4 + 2·0 + 7·3 + 6·9 + 5·0 + 4·2 + 3·0 + 2·8 + 1·6 = 121 = 11·11
        assert!(Cpr::parse("1403902086").unwrap().passes_mod11());
        assert!(!Cpr::parse("1403902087").unwrap().passes_mod11());
    }

    #[test]
    fn debug_hides_the_digits() {
        let cpr = Cpr::parse("140390-2086").unwrap();
        assert!(!format!("{cpr:?}").contains("1403"));
    }
}
