//! Rule parameters as the rules read them: the ledger's rulebook overlaid with published values.
//!
//! The value of a parameter for jurisdiction J on a date D is the one with the latest effective
//! date not after D among J's own values; a published value beats a rulebook value of the same
//! effective date, and a later publication beats an earlier one. When J has no value, its
//! country's (`CN` for `CN-44`) applies. Rates and schedules with nothing in force yet on D fall
//! back to their earliest value ([`Params::value_or_earliest`]); pilot lists do not (before a
//! pilot starts there is no pilot).

use serde_json::Value;

use crate::fact::Published;
use crate::jurisdiction::Jurisdiction;
use crate::money::Money;
use crate::rulebook::{Agreement, Rulebook};
use crate::time::Date;

pub struct Params<'a> {
    pub rulebook: &'a Rulebook,
    pub published: &'a [Published],
}

/// (effective, rank, index): the order in which candidate values win.
type Precedence = (Date, u8, u64);

impl<'a> Params<'a> {
    fn candidates(&self, name: &str, j: &str) -> Vec<(Precedence, &'a Value)> {
        let mut out: Vec<(Precedence, &'a Value)> = self
            .rulebook
            .values
            .iter()
            .filter(|v| v.name == name && v.jurisdiction.as_str() == j)
            .map(|v| ((v.effective, 0u8, 0u64), &v.value))
            .collect();
        for p in self
            .published
            .iter()
            .filter(|p| p.jurisdiction.as_str() == j)
        {
            if let Some(v) = p.parameters.get(name) {
                out.push(((p.effective, 1u8, p.index), v));
            }
        }
        out
    }

    fn pick(&self, name: &str, j: &Jurisdiction, on: Date, earliest: bool) -> Option<&'a Value> {
        for scope in [j.as_str(), j.country()] {
            let all = self.candidates(name, scope);
            if all.is_empty() {
                continue;
            }
            if let Some((_, v)) = all
                .iter()
                .filter(|(p, _)| p.0 <= on)
                .max_by_key(|(p, _)| *p)
            {
                return Some(v);
            }
            if earliest {
                return all.iter().min_by_key(|(p, _)| *p).map(|(_, v)| *v);
            }
            return None;
        }
        None
    }

    /// The value in force on `on`, or none.
    pub fn value(&self, name: &str, j: &Jurisdiction, on: Date) -> Option<&'a Value> {
        self.pick(name, j, on, false)
    }

    /// The value in force on `on`, or the earliest one when none is yet.
    pub fn value_or_earliest(&self, name: &str, j: &Jurisdiction, on: Date) -> Option<&'a Value> {
        self.pick(name, j, on, true)
    }

    /// A percentage in hundredths of a percent (`"16"` → 1600).
    pub fn percent(&self, name: &str, j: &Jurisdiction, on: Date) -> Option<i64> {
        let s = self.value_or_earliest(name, j, on)?.as_str()?;
        s.parse::<Money>().ok().map(Money::minor)
    }

    pub fn count(&self, name: &str, j: &Jurisdiction, on: Date) -> Option<u64> {
        self.value_or_earliest(name, j, on)?.as_u64()
    }

    /// A list of codes in force on `on` (none before the first value takes effect).
    pub fn codes(&self, name: &str, j: &Jurisdiction, on: Date) -> Vec<&'a str> {
        self.value(name, j, on)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// The province's average monthly wage of `year`: the latest value published for that year
    /// (or the rulebook's), whatever its effective date.
    pub fn average_wage(&self, j: &Jurisdiction, year: i32) -> Option<Money> {
        self.candidates("average_wage", j.as_str())
            .into_iter()
            .filter(|(_, v)| v.get("year").and_then(Value::as_i64) == Some(i64::from(year)))
            .max_by_key(|(p, _)| *p)
            .and_then(|(_, v)| v.get("monthly")?.as_str()?.parse::<Money>().ok())
    }

    pub fn agreements(&self) -> &'a [Agreement] {
        &self.rulebook.agreements
    }
}
