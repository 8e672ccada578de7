//! docs/rules.md §4: coverage indicators for monitoring the extension of coverage. For one month,
//! counts of insured workers and coverage rates by scheme, crossed with one dimension at a time
//! (jurisdiction, sex, age band, hukou category, contract form), computed from every worker's
//! projected facts. Cells under a minimum count are suppressed so no worker can be singled out.
//!
//! Definitions (README "Choices"):
//! - **Insured** in month M for scheme S: the worker has a live (not voided) contribution fact for
//!   M and S: a line of a `contributions_declared` (back pay included) or a
//!   `flexible_contribution`.
//! - **Place** of a worker for S in M: the jurisdiction of the first recorded (log order)
//!   contribution for M and S; else of the first contribution for M of any scheme; else of the
//!   first contract in force in M; else the registering agency's jurisdiction. Each worker has
//!   exactly one place per scheme and month, so a month paid twice counts once, where it was
//!   recorded first (as in docs/rules.md §1), and every dimension partitions the population.
//! - **Population** for S in scope J: registered persons born by M whose place for S lies within
//!   J (all persons when no J). The rate is insured ÷ population, so it never exceeds 1.
//! - Dimensions: `all` (the total), `jurisdiction` (the place), `sex`, `age_band` (completed
//!   years at M, [`AGE_BANDS`]), `hukou` (`local`: hukou on M's first day equals the place,
//!   `other_province`, `foreign`: no hukou) and `contract_form` (a contract in force in M,
//!   preferring the contributing employer's, then one in the place, then the first registered;
//!   `none` without one).
//! - **Suppression**: a cell whose population is under the minimum, or whose insured count is
//!   between 1 and the minimum − 1, is suppressed (counts and rate omitted). Since the values of
//!   a dimension add up to the `all` cell, a dimension with exactly one suppressed cell also
//!   suppresses its smallest other cell, so the hidden one cannot be recovered by subtraction;
//!   and it hides more until the hidden cells are neither all insured nor all uninsured (when the
//!   total is mixed), so their sum does not tell any hidden worker's status.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Params, Worker};
use crate::event::{ContractRegistered, Scheme};
use crate::fact::{Fact, FactKind};
use crate::ids::EmployerId;
use crate::jurisdiction::Jurisdiction;
use crate::time::{Date, Month};

/// The smallest count a published cell may show. Agencies may raise it (never lower it) with
/// the rule parameter [`MINIMUM_CELL_PARAMETER`].
pub const MIN_CELL_COUNT: u64 = 5;

/// Rule parameter (a count) raising the minimum cell count for a jurisdiction.
pub const MINIMUM_CELL_PARAMETER: &str = "indicator_minimum_cell";

/// An age band: completed years from `from_years` up to the next band's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgeBand {
    pub from_years: u32,
    pub label: &'static str,
}

/// The age bands, in ascending order (the first starts at 0).
pub const AGE_BANDS: &[AgeBand] = &[
    AgeBand {
        from_years: 0,
        label: "under_16",
    },
    AgeBand {
        from_years: 16,
        label: "16-24",
    },
    AgeBand {
        from_years: 25,
        label: "25-34",
    },
    AgeBand {
        from_years: 35,
        label: "35-44",
    },
    AgeBand {
        from_years: 45,
        label: "45-54",
    },
    AgeBand {
        from_years: 55,
        label: "55-64",
    },
    AgeBand {
        from_years: 65,
        label: "65+",
    },
];

/// The schemes reported, in output order.
pub const SCHEMES: [Scheme; 5] = [
    Scheme::Pension,
    Scheme::Injury,
    Scheme::Medical,
    Scheme::Unemployment,
    Scheme::Maternity,
];

/// The dimensions, in output order. `all` is the total every other dimension adds up to.
pub const DIMENSIONS: [&str; 6] = [
    "all",
    "jurisdiction",
    "sex",
    "age_band",
    "hukou",
    "contract_form",
];

/// `indicators --json` (docs/cli.md, documented in README).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Indicators {
    pub period: Month,
    /// The scope asked for; null for the whole ledger.
    pub jurisdiction: Option<Jurisdiction>,
    /// Cells with a population under this, or an insured count from 1 to this − 1, are
    /// suppressed.
    pub minimum_cell: u64,
    /// Sorted by scheme ([`SCHEMES`] order), dimension ([`DIMENSIONS`] order), then value (age
    /// bands in age order, others alphabetically).
    pub cells: Vec<Cell>,
    /// How many cells are suppressed.
    pub suppressed: u64,
}

/// One scheme crossed with one value of one dimension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    pub scheme: Scheme,
    pub dimension: &'static str,
    pub value: String,
    pub suppressed: bool,
    /// Workers insured in the scheme that month; null when suppressed.
    pub insured: Option<u64>,
    /// Workers in the denominator; null when suppressed.
    pub population: Option<u64>,
    /// insured ÷ population, six decimals, half up; null when suppressed.
    pub rate: Option<String>,
}

/// (scheme, dimension, value rank, value): the sort key of a cell.
type Key = (usize, usize, usize, String);

/// The accumulator behind [`indicators`]: feed it worker by worker (e.g. from
/// `projection::for_each_worker`), then [`Tally::finish`].
pub struct Tally {
    period: Month,
    scope: Option<Jurisdiction>,
    minimum: u64,
    /// (insured, population) per cell.
    counts: BTreeMap<Key, (u64, u64)>,
}

/// The minimum cell count for a scope: the constant, raised by the highest value of
/// [`MINIMUM_CELL_PARAMETER`] (rulebook or published, whatever its effective date: a threshold
/// only goes up) of any jurisdiction whose figures the answer shows or contains: the scope, the
/// places within it, and its country (every jurisdiction when the scope is the whole ledger).
fn minimum_cell(params: &Params<'_>, scope: Option<&Jurisdiction>) -> u64 {
    let applies = |j: &Jurisdiction| scope.is_none_or(|s| j.within(s) || s.within(j));
    let rulebook = params
        .rulebook
        .values
        .iter()
        .filter(|v| v.name == MINIMUM_CELL_PARAMETER && applies(&v.jurisdiction))
        .map(|v| &v.value);
    let published = params
        .published
        .iter()
        .filter(|p| applies(&p.jurisdiction))
        .filter_map(|p| p.parameters.get(MINIMUM_CELL_PARAMETER));
    rulebook
        .chain(published)
        .filter_map(serde_json::Value::as_u64)
        .fold(MIN_CELL_COUNT, u64::max)
}

/// The band of an age in completed years.
pub fn age_band(years: u32) -> usize {
    AGE_BANDS
        .iter()
        .rposition(|b| b.from_years <= years)
        .unwrap_or(0)
}

/// A contribution of the month: (log position, scheme, jurisdiction, employer).
struct Paid<'f> {
    at: (u64, u32),
    scheme: Scheme,
    jurisdiction: &'f Jurisdiction,
    employer: Option<&'f EmployerId>,
}

/// Who a worker is for the indicators: their registration, hukou, sex and age band.
struct Who<'a> {
    home: &'a Jurisdiction,
    hukou: Option<&'a Jurisdiction>,
    sex: &'a str,
    band: usize,
}

/// The contributions of the month, in log order.
fn paid_in(facts: &[Fact], month: Month) -> Vec<Paid<'_>> {
    let mut paid: Vec<Paid<'_>> = facts
        .iter()
        .filter_map(|f| match &f.what {
            FactKind::Contribution {
                employer,
                jurisdiction,
                period,
                scheme,
                ..
            } if *period == month => Some(Paid {
                at: (f.index, f.line),
                scheme: *scheme,
                jurisdiction,
                employer: Some(employer),
            }),
            FactKind::Flexible(c) if c.period == month => Some(Paid {
                at: (f.index, f.line),
                scheme: c.scheme,
                jurisdiction: &c.jurisdiction,
                employer: None,
            }),
            _ => None,
        })
        .collect();
    paid.sort_by_key(|p| p.at);
    paid
}

/// Contracts in force at some time in the month, in log order.
fn contracts_in_force(facts: &[Fact], month: Month) -> Vec<(u64, u32, &ContractRegistered)> {
    let ended = |contract: &str| -> Option<Date> {
        facts
            .iter()
            .filter(|f| matches!(&f.what, FactKind::ContractEnded { contract: c, .. } if c.as_str() == contract))
            .max_by_key(|f| (f.index, f.line))
            .and_then(|f| match &f.what {
                FactKind::ContractEnded { end, .. } => Some(*end),
                _ => None,
            })
    };
    let mut contracts: Vec<(u64, u32, &ContractRegistered)> = facts
        .iter()
        .filter_map(|f| match &f.what {
            FactKind::Contract(c) => {
                let end = ended(c.contract.as_str()).or(c.end);
                let in_force = c.start.month() <= month && end.is_none_or(|e| e.month() >= month);
                in_force.then_some((f.index, f.line, c))
            }
            _ => None,
        })
        .collect();
    contracts.sort_by_key(|(i, l, _)| (*i, *l));
    contracts
}

/// Complementary suppression in one dimension of one scheme. The values of a dimension add up
/// to the total, so what a dimension hides is known as a sum: it must hide no value alone, and
/// (unless the total itself says so) the hidden values must not be all insured or all
/// uninsured, which would tell every hidden worker's status.
fn suppress_group<'k>(
    counts: &'k BTreeMap<Key, (u64, u64)>,
    hidden: &mut BTreeMap<&'k Key, bool>,
    s: usize,
    d: usize,
) {
    let members: Vec<&Key> = counts.keys().filter(|k| k.0 == s && k.1 == d).collect();
    let total = members
        .iter()
        .fold((0, 0), |(i, p), k| (i + counts[*k].0, p + counts[*k].1));
    let mixed = |(i, p): (u64, u64)| i > 0 && i < p;
    loop {
        let (hi, hp, n) = members
            .iter()
            .filter(|k| hidden[*k])
            .fold((0u64, 0u64, 0usize), |(i, p, n), k| {
                (i + counts[*k].0, p + counts[*k].1, n + 1)
            });
        let need = if n == 1 {
            Some(None)
        } else if n > 1 && !mixed((hi, hp)) && mixed(total) {
            // A value that makes the hidden sum mixed: some insured, or some not.
            Some(Some(hi == 0))
        } else {
            None
        };
        let Some(want_insured) = need else {
            break;
        };
        let next = members
            .iter()
            .filter(|k| !hidden[*k])
            .filter(|k| {
                let (i, p) = counts[**k];
                match want_insured {
                    None => true,
                    Some(true) => i > 0,
                    Some(false) => i < p,
                }
            })
            .min_by_key(|k| (counts[**k], **k));
        match next {
            Some(k) => {
                hidden.insert(k, true);
            }
            None => break,
        }
    }
}

/// One published cell: its counts and rate, or nothing but its name when suppressed.
fn cell(k: &Key, (insured, population): (u64, u64), hidden: bool) -> Cell {
    let (scheme, dimension) = (SCHEMES[k.0], DIMENSIONS[k.1]);
    if hidden {
        return Cell {
            scheme,
            dimension,
            value: k.3.clone(),
            suppressed: true,
            insured: None,
            population: None,
            rate: None,
        };
    }
    Cell {
        scheme,
        dimension,
        value: k.3.clone(),
        suppressed: false,
        insured: Some(insured),
        population: Some(population),
        rate: Some(rate(insured, population)),
    }
}

fn form_name(c: &ContractRegistered) -> String {
    serde_json::to_value(c.form)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl Tally {
    pub fn new(params: &Params<'_>, period: Month, scope: Option<&Jurisdiction>) -> Tally {
        Tally {
            period,
            scope: scope.cloned(),
            minimum: minimum_cell(params, scope),
            counts: BTreeMap::new(),
        }
    }

    /// Counts one worker. Facts without a `person_registered` (nobody to count) are skipped.
    pub fn add(&mut self, worker: &str, facts: &[Fact]) {
        let Ok(w) = Worker::new(worker, facts) else {
            return;
        };
        let month = self.period;
        let birth = w.person.birth_date.month();
        if birth > month {
            return;
        }
        let years = u32::try_from((month.ordinal() - birth.ordinal()) / 12).unwrap_or(0);
        let band = age_band(years);
        let hukou = w.hukou_on(month.first_day());
        let sex = serde_json::to_value(w.person.sex)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();

        let paid = paid_in(facts, month);
        let contracts = contracts_in_force(facts, month);
        let who = Who {
            home: &w.person.jurisdiction,
            hukou: hukou.as_ref(),
            sex: &sex,
            band,
        };
        for (s, scheme) in SCHEMES.iter().enumerate() {
            self.count(s, *scheme, &paid, &contracts, &who);
        }
    }

    /// The indicators, with primary and complementary suppression applied.
    /// Counts one worker under one scheme, in each dimension, at the place of the month.
    fn count(
        &mut self,
        s: usize,
        scheme: Scheme,
        paid: &[Paid<'_>],
        contracts: &[(u64, u32, &ContractRegistered)],
        who: &Who<'_>,
    ) {
        let own = paid.iter().find(|p| p.scheme == scheme);
        let first = own.or(paid.first());
        let place: &Jurisdiction = first
            .map(|p| p.jurisdiction)
            .or(contracts.first().map(|(_, _, c)| &c.jurisdiction))
            .unwrap_or(who.home);
        if self.scope.as_ref().is_some_and(|j| !place.within(j)) {
            return;
        }
        let employer = first.and_then(|p| p.employer);
        let form = contracts
            .iter()
            .min_by_key(|(i, l, c)| {
                (
                    Some(&c.employer) != employer,
                    &c.jurisdiction != place,
                    *i,
                    *l,
                )
            })
            .map_or_else(|| "none".to_string(), |(_, _, c)| form_name(c));
        let hukou_category = match who.hukou {
            None => "foreign",
            Some(h) if h == place => "local",
            Some(_) => "other_province",
        };
        let band = who.band;
        let values: [(usize, String); 6] = [
            (0, "all".into()),
            (0, place.to_string()),
            (0, who.sex.to_string()),
            (band, AGE_BANDS[band].label.into()),
            (0, hukou_category.into()),
            (0, form),
        ];
        for (d, (rank, value)) in values.into_iter().enumerate() {
            let cell = self.counts.entry((s, d, rank, value)).or_default();
            cell.1 += 1;
            if own.is_some() {
                cell.0 += 1;
            }
        }
    }

    pub fn finish(self) -> Indicators {
        let min = self.minimum;
        let small =
            |(insured, population): (u64, u64)| population < min || (insured > 0 && insured < min);
        let mut hidden: BTreeMap<&Key, bool> =
            self.counts.iter().map(|(k, c)| (k, small(*c))).collect();
        // Complementary suppression, per dimension of each scheme (see `suppress_group`).
        let groups: Vec<(usize, usize)> = {
            let mut g: Vec<(usize, usize)> = self
                .counts
                .keys()
                .filter(|k| k.1 != 0)
                .map(|k| (k.0, k.1))
                .collect();
            g.dedup();
            g
        };
        for (s, d) in groups {
            suppress_group(&self.counts, &mut hidden, s, d);
        }
        let mut suppressed = 0;
        let cells = self
            .counts
            .iter()
            .map(|(k, &counts)| {
                if hidden[k] {
                    suppressed += 1;
                }
                cell(k, counts, hidden[k])
            })
            .collect();
        Indicators {
            period: self.period,
            jurisdiction: self.scope,
            minimum_cell: min,
            cells,
            suppressed,
        }
    }
}

/// `n ÷ d` as a decimal string with six places, half up (`"0.600000"`); `"0.000000"` when `d`
/// is 0.
pub fn rate(n: u64, d: u64) -> String {
    if d == 0 {
        return "0.000000".into();
    }
    let millionths = super::div_half_up(i128::from(n) * 1_000_000, i128::from(d));
    format!("{}.{:06}", millionths / 1_000_000, millionths % 1_000_000)
}

/// The subject a read token for the indicators of `period` signs (`indicators:YYYY-MM`), so a
/// token for one query cannot stand for another.
pub fn read_subject(period: &str) -> String {
    format!("indicators:{period}")
}

/// The coverage indicators of `period` within `scope` (the whole ledger when none), from every
/// worker's facts (docs/rules.md §4).
pub fn indicators<'f>(
    workers: impl IntoIterator<Item = (&'f str, &'f [Fact])>,
    params: &Params<'_>,
    period: Month,
    scope: Option<&Jurisdiction>,
) -> Indicators {
    let mut tally = Tally::new(params, period, scope);
    for (worker, facts) in workers {
        tally.add(worker, facts);
    }
    tally.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ContractForm, FemaleCategory, PersonRegistered, Sex};
    use crate::money::Money;
    use crate::rulebook::Rulebook;

    fn j(s: &str) -> Jurisdiction {
        s.parse().unwrap()
    }

    /// A varied population from a fixed pseudo-random sequence: sexes, ages, hukou, places,
    /// contracts and payments of several schemes, some months paid twice.
    fn population(n: u64) -> Vec<(String, Vec<Fact>)> {
        let places = ["CN-44", "CN-33", "CN-51", "DE"];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        let mut index = 0;
        let mut fact = |what: FactKind| {
            index += 1;
            Fact {
                index,
                line: 0,
                what,
            }
        };
        (0..n)
            .map(|i| {
                let id = format!("W{i}");
                let female = next(2) == 0;
                let mut facts = vec![fact(FactKind::Person(PersonRegistered {
                    worker: crate::ids::WorkerId::new(id.clone()).unwrap(),
                    jurisdiction: j(places[next(4) as usize]),
                    sex: if female { Sex::Female } else { Sex::Male },
                    birth_date: Date::new(1940 + next(85) as i32, 1 + next(12) as u32, 1).unwrap(),
                    female_category: female.then_some(FemaleCategory::FiftyFive),
                    nationality: j("CN"),
                    hukou: [Some(j("CN-44")), Some(j("CN-51")), None][next(3) as usize].clone(),
                }))];
                if next(2) == 0 {
                    facts.push(fact(FactKind::Contract(ContractRegistered {
                        contract: crate::ids::ContractId::new(format!("C{i}")).unwrap(),
                        worker: crate::ids::WorkerId::new(id.clone()).unwrap(),
                        employer: EmployerId::new(format!("E{}", next(3))).unwrap(),
                        jurisdiction: j(places[next(4) as usize]),
                        form: [ContractForm::OpenEnded, ContractForm::PartTime][next(2) as usize],
                        start: Date::new(2020, 1, 1).unwrap(),
                        end: None,
                        host: None,
                    })));
                }
                for _ in 0..next(4) {
                    facts.push(fact(FactKind::Contribution {
                        employer: EmployerId::new(format!("E{}", next(3))).unwrap(),
                        jurisdiction: j(places[next(3) as usize]),
                        period: Month::new(2024, 1 + next(2) as u32).unwrap(),
                        back_pay: false,
                        scheme: SCHEMES[next(5) as usize],
                        base: Money::from_minor(500_000),
                        employer_amount: Money::from_minor(80_000),
                        employee_amount: Money::from_minor(40_000),
                    }));
                }
                (id, facts)
            })
            .collect()
    }

    #[test]
    fn every_dimension_adds_up_to_the_total_before_suppression() {
        let rulebook = Rulebook::builtin();
        let params = Params {
            rulebook: &rulebook,
            published: &[],
        };
        let workers = population(400);
        for scope in [None, Some(j("CN")), Some(j("CN-44")), Some(j("DE"))] {
            let mut tally = Tally::new(&params, Month::new(2024, 1).unwrap(), scope.as_ref());
            for (w, f) in &workers {
                tally.add(w, f);
            }
            let mut checked = 0;
            for (s, _) in SCHEMES.iter().enumerate() {
                let Some(&(ti, tp)) = tally.counts.get(&(s, 0, 0, "all".to_string())) else {
                    continue;
                };
                assert!(ti <= tp);
                for (d, name) in DIMENSIONS.iter().enumerate().skip(1) {
                    let (i, p) = tally
                        .counts
                        .iter()
                        .filter(|(k, _)| k.0 == s && k.1 == d)
                        .fold((0, 0), |(a, b), (_, (i, p))| (a + i, b + p));
                    assert_eq!((i, p), (ti, tp), "scheme {s} dimension {name}");
                    checked += 1;
                }
            }
            assert!(scope.is_some() || checked == 25);
        }
    }

    #[test]
    fn rates_are_rounded_half_up() {
        assert_eq!(rate(1, 3), "0.333333");
        assert_eq!(rate(2, 3), "0.666667");
        assert_eq!(rate(1, 8_000_000), "0.000000");
        assert_eq!(rate(1, 2_000_000), "0.000001");
        assert_eq!(rate(7, 7), "1.000000");
        assert_eq!(rate(0, 0), "0.000000");
    }

    #[test]
    fn age_bands_cover_every_age() {
        assert_eq!(AGE_BANDS[0].from_years, 0);
        assert!(AGE_BANDS
            .windows(2)
            .all(|w| w[0].from_years < w[1].from_years));
        assert_eq!(AGE_BANDS[age_band(15)].label, "under_16");
        assert_eq!(AGE_BANDS[age_band(16)].label, "16-24");
        assert_eq!(AGE_BANDS[age_band(64)].label, "55-64");
        assert_eq!(AGE_BANDS[age_band(120)].label, "65+");
    }

    #[test]
    fn a_published_minimum_raises_the_threshold_but_never_lowers_it() {
        use crate::fact::Published;
        let rulebook = Rulebook::builtin();
        let publish = |n: u64| Published {
            index: 1,
            jurisdiction: j("CN-44"),
            effective: Date::new(2024, 1, 1).unwrap(),
            parameters: [(MINIMUM_CELL_PARAMETER.to_string(), serde_json::json!(n))]
                .into_iter()
                .collect(),
        };
        for (n, scope, want) in [
            (10, Some(j("CN-44")), 10),
            (10, Some(j("CN")), 10),
            (10, None, 10),
            (10, Some(j("CN-33")), MIN_CELL_COUNT),
            (1, Some(j("CN-44")), MIN_CELL_COUNT),
        ] {
            let published = [publish(n)];
            let params = Params {
                rulebook: &rulebook,
                published: &published,
            };
            assert_eq!(minimum_cell(&params, scope.as_ref()), want);
        }
    }
}
