//! Calendar values: contribution months, dates and instants, with the civil-calendar arithmetic
//! they need. Pure integer arithmetic (no clock, no time zone database): instants keep their
//! UTC offset so the author's text round-trips.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// Earliest year any calendar value may carry; contribution months have their own floor.
pub const MIN_YEAR: i32 = 1900;
/// Latest year any calendar value may carry.
pub const MAX_YEAR: i32 = 9999;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CalendarError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, CalendarError> {
    Err(CalendarError(msg.into()))
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

fn parse_digits(s: &str, len: usize) -> Option<u32> {
    if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A contribution period: one calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: u32,
}

impl Month {
    pub fn new(year: i32, month: u32) -> Result<Self, CalendarError> {
        if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
            return err(format!("year {year} is outside {MIN_YEAR}..={MAX_YEAR}"));
        }
        if !(1..=12).contains(&month) {
            return err(format!("month {month} does not exist"));
        }
        Ok(Self { year, month })
    }
    pub fn year(self) -> i32 {
        self.year
    }
    pub fn month(self) -> u32 {
        self.month
    }
    /// Wire form: YYYYMM.
    pub fn to_wire(self) -> u32 {
        self.year as u32 * 100 + self.month
    }
    pub fn from_wire(v: u32) -> Result<Self, CalendarError> {
        Self::new((v / 100) as i32, v % 100)
            .map_err(|e| CalendarError(format!("month {v} (YYYYMM): {e}")))
    }
    /// Months since year 0, for arithmetic.
    pub fn ordinal(self) -> i64 {
        i64::from(self.year) * 12 + i64::from(self.month) - 1
    }
    pub fn from_ordinal(ordinal: i64) -> Result<Self, CalendarError> {
        let year = i32::try_from(ordinal.div_euclid(12))
            .map_err(|_| CalendarError(format!("month ordinal {ordinal} out of range")))?;
        Self::new(year, (ordinal.rem_euclid(12) + 1) as u32)
    }
    pub fn first_day(self) -> Date {
        Date {
            year: self.year,
            month: self.month,
            day: 1,
        }
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl std::str::FromStr for Month {
    type Err = CalendarError;
    fn from_str(s: &str) -> Result<Self, CalendarError> {
        let bad = || CalendarError(format!("{s:?} is not a month (YYYY-MM)"));
        let (y, m) = s.split_once('-').ok_or_else(bad)?;
        let year = parse_digits(y, 4).ok_or_else(bad)?;
        let month = parse_digits(m, 2).ok_or_else(bad)?;
        Self::new(year as i32, month).map_err(|e| CalendarError(format!("{s:?}: {e}")))
    }
}

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: i32,
    month: u32,
    day: u32,
}

impl Date {
    pub fn new(year: i32, month: u32, day: u32) -> Result<Self, CalendarError> {
        let m = Month::new(year, month)?;
        if day == 0 || day > days_in_month(year, month) {
            return err(format!("{m}-{day:02} does not exist"));
        }
        Ok(Self { year, month, day })
    }
    pub fn month(self) -> Month {
        Month {
            year: self.year,
            month: self.month,
        }
    }
    pub fn day(self) -> u32 {
        self.day
    }
    /// Wire form: YYYYMMDD.
    pub fn to_wire(self) -> u32 {
        self.year as u32 * 10_000 + self.month * 100 + self.day
    }
    pub fn from_wire(v: u32) -> Result<Self, CalendarError> {
        Self::new((v / 10_000) as i32, v / 100 % 100, v % 100)
            .map_err(|e| CalendarError(format!("date {v} (YYYYMMDD): {e}")))
    }
    /// Days since 1970-01-01 (proleptic Gregorian; H. Hinnant's days_from_civil).
    pub fn days_since_epoch(self) -> i64 {
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }
    pub fn from_days_since_epoch(days: i64) -> Result<Self, CalendarError> {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        let year = i32::try_from(year).map_err(|_| CalendarError("date out of range".into()))?;
        Self::new(year, month, day)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl std::str::FromStr for Date {
    type Err = CalendarError;
    fn from_str(s: &str) -> Result<Self, CalendarError> {
        let bad = || CalendarError(format!("{s:?} is not a date (YYYY-MM-DD)"));
        let mut parts = s.split('-');
        let (Some(y), Some(m), Some(d), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let (y, m, d) = (
            parse_digits(y, 4).ok_or_else(bad)?,
            parse_digits(m, 2).ok_or_else(bad)?,
            parse_digits(d, 2).ok_or_else(bad)?,
        );
        Self::new(y as i32, m, d).map_err(|e| CalendarError(format!("{s:?}: {e}")))
    }
}

/// A point in time with the UTC offset its author wrote it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Instant {
    unix_seconds: i64,
    nanos: u32,
    offset_minutes: i32,
}

/// Offsets beyond ±18:00 do not exist (RFC 3339 allows ±23:59, real zones do not).
const MAX_OFFSET_MINUTES: i32 = 18 * 60;

impl Instant {
    pub fn new(unix_seconds: i64, nanos: u32, offset_minutes: i32) -> Result<Self, CalendarError> {
        if nanos >= 1_000_000_000 {
            return err(format!("{nanos} nanoseconds is not below one second"));
        }
        // Not `abs()`: i32::MIN has no absolute value (a body off the wire may carry it).
        if !(-MAX_OFFSET_MINUTES..=MAX_OFFSET_MINUTES).contains(&offset_minutes) {
            return err(format!(
                "UTC offset of {offset_minutes} minutes is beyond ±18:00"
            ));
        }
        let i = Self {
            unix_seconds,
            nanos,
            offset_minutes,
        };
        let y = i.local_date_parts().0;
        if !(MIN_YEAR as i64..=MAX_YEAR as i64).contains(&y) {
            return err(format!(
                "instant in year {y} is outside {MIN_YEAR}..={MAX_YEAR}"
            ));
        }
        Ok(i)
    }
    pub fn from_unix_utc(unix_seconds: i64, nanos: u32) -> Result<Self, CalendarError> {
        Self::new(unix_seconds, nanos, 0)
    }
    pub fn unix_seconds(self) -> i64 {
        self.unix_seconds
    }
    pub fn nanos(self) -> u32 {
        self.nanos
    }
    pub fn offset_minutes(self) -> i32 {
        self.offset_minutes
    }
    /// Nanoseconds since the epoch, for ordering and comparison across offsets.
    pub fn unix_nanos(self) -> i128 {
        i128::from(self.unix_seconds) * 1_000_000_000 + i128::from(self.nanos)
    }
    fn local_date_parts(self) -> (i64, i64) {
        // Saturating: called on unvalidated seconds (e.g. i64::MAX off the wire); a saturated
        // value lands far outside the year range and is refused.
        let local = self
            .unix_seconds
            .saturating_add(i64::from(self.offset_minutes) * 60);
        (
            Date::from_days_since_epoch(local.div_euclid(86_400))
                .map(|d| i64::from(d.year))
                .unwrap_or(i64::MIN),
            local.rem_euclid(86_400),
        )
    }
    /// The date at the author's offset.
    pub fn local_date(self) -> Date {
        let local = self.unix_seconds + i64::from(self.offset_minutes) * 60;
        Date::from_days_since_epoch(local.div_euclid(86_400)).expect("validated at construction")
    }
    /// The same instant shifted by `seconds` (offset kept).
    pub fn plus_seconds(self, seconds: i64) -> Self {
        Self {
            unix_seconds: self.unix_seconds.saturating_add(seconds),
            ..self
        }
    }
}

impl PartialOrd for Instant {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Instant {
    /// Instants order by the moment they name; the offset only breaks ties so Ord agrees with Eq.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.unix_nanos()
            .cmp(&other.unix_nanos())
            .then(self.offset_minutes.cmp(&other.offset_minutes))
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let local = self.unix_seconds + i64::from(self.offset_minutes) * 60;
        let date = Date::from_days_since_epoch(local.div_euclid(86_400)).map_err(|_| fmt::Error)?;
        let secs = local.rem_euclid(86_400);
        write!(
            f,
            "{date}T{:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )?;
        if self.nanos != 0 {
            let mut frac = format!("{:09}", self.nanos);
            while frac.ends_with('0') {
                frac.pop();
            }
            write!(f, ".{frac}")?;
        }
        if self.offset_minutes == 0 {
            write!(f, "Z")
        } else {
            let sign = if self.offset_minutes < 0 { '-' } else { '+' };
            let o = self.offset_minutes.abs();
            write!(f, "{sign}{:02}:{:02}", o / 60, o % 60)
        }
    }
}

impl std::str::FromStr for Instant {
    type Err = CalendarError;
    /// RFC 3339 with a mandatory offset (`Z` or `±HH:MM`), e.g. `2024-03-15T14:20:00+08:00`.
    fn from_str(s: &str) -> Result<Self, CalendarError> {
        let bad = |why: &str| {
            CalendarError(format!(
                "{s:?} is not an RFC 3339 instant with offset: {why}"
            ))
        };
        if s.len() < 20 || !s.is_ascii() {
            return Err(bad("too short"));
        }
        let date: Date = s[..10].parse().map_err(|e: CalendarError| bad(&e.0))?;
        let rest = &s[10..];
        if !rest.starts_with('T') && !rest.starts_with('t') {
            return Err(bad("expected 'T' after the date"));
        }
        let time = &rest[1..];
        let (h, m, sec) = (
            parse_digits(&time[0..2], 2),
            parse_digits(time.get(3..5).unwrap_or(""), 2),
            parse_digits(time.get(6..8).unwrap_or(""), 2),
        );
        let (Some(h), Some(m), Some(sec)) = (h, m, sec) else {
            return Err(bad("expected HH:MM:SS"));
        };
        if &time[2..3] != ":" || &time[5..6] != ":" || h > 23 || m > 59 || sec > 59 {
            return Err(bad("time of day out of range"));
        }
        let mut tail = &time[8..];
        let mut nanos = 0u32;
        if let Some(frac) = tail.strip_prefix('.') {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 9 {
                return Err(bad("fraction of a second must have 1 to 9 digits"));
            }
            nanos = format!("{:0<9}", &frac[..digits])
                .parse()
                .map_err(|_| bad("fraction"))?;
            tail = &frac[digits..];
        }
        let offset = match tail {
            "Z" | "z" => 0,
            t if t.len() == 6 && (t.starts_with('+') || t.starts_with('-')) && &t[3..4] == ":" => {
                let (Some(oh), Some(om)) = (parse_digits(&t[1..3], 2), parse_digits(&t[4..6], 2))
                else {
                    return Err(bad("offset must be ±HH:MM"));
                };
                if om > 59 {
                    return Err(bad("offset minutes out of range"));
                }
                let o = (oh * 60 + om) as i32;
                if t.starts_with('-') {
                    -o
                } else {
                    o
                }
            }
            _ => return Err(bad("missing or malformed UTC offset")),
        };
        let local = date.days_since_epoch() * 86_400 + i64::from(h * 3600 + m * 60 + sec);
        Self::new(local - i64::from(offset) * 60, nanos, offset)
    }
}

macro_rules! serde_via_str {
    ($t:ty, $what:literal) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                // A visitor (not a mapped error) so serde's own messages, such as a missing
                // field's name, reach the user unchanged.
                struct V;
                impl de::Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(concat!($what, " as a string"))
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$t, E> {
                        s.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

serde_via_str!(Month, "a month");
serde_via_str!(Date, "a date");
serde_via_str!(Instant, "an instant");

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn month_text_and_wire() {
        let m: Month = "2024-02".parse().unwrap();
        assert_eq!(m.to_wire(), 202402);
        assert_eq!(Month::from_wire(202402).unwrap(), m);
        assert!("2024-13".parse::<Month>().is_err());
        assert!("2024-2".parse::<Month>().is_err());
        assert!(Month::from_wire(202400).is_err());
    }

    #[test]
    fn dates_that_do_not_exist_are_refused() {
        assert!("2023-02-29".parse::<Date>().is_err());
        assert!("2024-02-29".parse::<Date>().is_ok());
        assert!("1900-02-29".parse::<Date>().is_err());
        assert!("2000-02-29".parse::<Date>().is_ok());
        assert!("2024-04-31".parse::<Date>().is_err());
        assert!(Date::from_wire(20230229).is_err());
    }

    #[test]
    fn instants_parse_with_offsets() {
        let i: Instant = "2024-03-15T14:20:00+08:00".parse().unwrap();
        assert_eq!(i.unix_seconds(), 1_710_483_600);
        assert_eq!(i.to_string(), "2024-03-15T14:20:00+08:00");
        assert_eq!(i.local_date().to_string(), "2024-03-15");
        let z: Instant = "2024-03-15T06:20:00.5Z".parse().unwrap();
        assert_eq!(z.nanos(), 500_000_000);
        assert_eq!(z.to_string(), "2024-03-15T06:20:00.5Z");
        assert!("2024-03-15T14:20:00".parse::<Instant>().is_err());
        assert!("2024-03-15 14:20:00Z".parse::<Instant>().is_err());
        assert!("2024-03-15T24:00:00Z".parse::<Instant>().is_err());
    }

    proptest! {
        #[test]
        fn days_round_trip(days in -25_000i64..2_900_000) {
            let d = Date::from_days_since_epoch(days).unwrap();
            prop_assert_eq!(d.days_since_epoch(), days);
            prop_assert_eq!(d.to_string().parse::<Date>().unwrap(), d);
            prop_assert_eq!(Date::from_wire(d.to_wire()).unwrap(), d);
        }

        #[test]
        fn instants_round_trip_text(secs in -2_000_000_000i64..200_000_000_000, nanos in 0u32..1_000_000_000, off in -1080i32..=1080) {
            let i = Instant::new(secs, nanos, off).unwrap();
            prop_assert_eq!(i.to_string().parse::<Instant>().unwrap(), i);
        }

        #[test]
        fn month_ordinals_round_trip(y in 1900i32..=9999, m in 1u32..=12) {
            let month = Month::new(y, m).unwrap();
            prop_assert_eq!(Month::from_ordinal(month.ordinal()).unwrap(), month);
        }
    }
}
