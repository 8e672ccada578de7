//! Money in integer minor units (fen for CNY, cents for EUR). Never floating point. The JSON
//! form is a decimal string with two places ("5000.00"); anything finer than a minor unit is
//! refused rather than rounded.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// Minor units per major unit for every currency this ledger carries (two decimal places, as the
/// JSON contract fixes).
pub const MINOR_PER_MAJOR: i64 = 100;

/// The largest single amount accepted: 10^11 major units (a hundred billion) exceeds any real
/// contribution base while keeping sums of millions of amounts far from i64 overflow.
pub const MAX_MINOR: i64 = 100_000_000_000 * MINOR_PER_MAJOR;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MoneyError(pub String);

/// An amount in minor units. Signed so that differences can be expressed; events refuse
/// negative amounts at validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(i64);

impl Money {
    pub const ZERO: Money = Money(0);

    pub fn from_minor(minor: i64) -> Self {
        Money(minor)
    }
    pub fn minor(self) -> i64 {
        self.0
    }
    pub fn is_negative(self) -> bool {
        self.0 < 0
    }
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).map(Money)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let per = MINOR_PER_MAJOR as u64;
        write!(f, "{sign}{}.{:02}", abs / per, abs % per)
    }
}

impl std::str::FromStr for Money {
    type Err = MoneyError;
    /// Accepts `123`, `123.4`, `123.45` and a leading `-`; refuses more than two decimals,
    /// exponents, signs other than a leading minus, and amounts beyond [`MAX_MINOR`].
    fn from_str(s: &str) -> Result<Self, MoneyError> {
        let bad = |why: &str| MoneyError(format!("{s:?} is not an amount: {why}"));
        let (neg, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("expected digits, e.g. \"5000.00\""));
        }
        if digits.contains('.') && frac.is_empty() {
            return Err(bad("expected digits after the decimal point"));
        }
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("expected digits after the decimal point"));
        }
        if frac.len() > 2 {
            return Err(bad(
                "not a whole number of minor units (at most two decimals)",
            ));
        }
        let int: i64 = int.parse().map_err(|_| bad("too large"))?;
        let frac: i64 = format!("{frac:0<2}").parse().map_err(|_| bad("fraction"))?;
        let minor = int
            .checked_mul(MINOR_PER_MAJOR)
            .and_then(|v| v.checked_add(frac))
            .filter(|v| *v <= MAX_MINOR)
            .ok_or_else(|| bad("too large"))?;
        Ok(Money(if neg { -minor } else { minor }))
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A JSON number would invite floating point: the contract is a decimal string.
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Money;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an amount as a decimal string, e.g. \"5000.00\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Money, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_formats() {
        assert_eq!("5000.00".parse::<Money>().unwrap().minor(), 500_000);
        assert_eq!("5000".parse::<Money>().unwrap().minor(), 500_000);
        assert_eq!("0.5".parse::<Money>().unwrap().minor(), 50);
        assert_eq!("-1.25".parse::<Money>().unwrap().minor(), -125);
        assert_eq!(Money::from_minor(500_001).to_string(), "5000.01");
        assert_eq!(Money::from_minor(-5).to_string(), "-0.05");
    }

    #[test]
    fn refuses_fractions_of_minor_units_and_junk() {
        for s in [
            "5000.001",
            "1e3",
            "+5",
            "",
            ".5",
            "5.",
            "5,00",
            "NaN",
            "99999999999999999999",
        ] {
            assert!(s.parse::<Money>().is_err(), "{s} accepted");
        }
        assert!(
            serde_json::from_str::<Money>("5000.0").is_err(),
            "numbers are not amounts"
        );
    }

    proptest! {
        #[test]
        fn text_round_trip(minor in -MAX_MINOR..=MAX_MINOR) {
            let m = Money::from_minor(minor);
            prop_assert_eq!(m.to_string().parse::<Money>().unwrap(), m);
        }
    }
}
