//! Coverage indicators (docs/rules.md §4) from facts built directly: worked examples for each
//! dimension, suppression (a small cell never shows a count, and cannot be recovered by
//! subtraction), scopes, and properties over random populations: cells add up across every
//! dimension, insured never exceeds population, and the output is the same whatever the order
//! workers are fed in.

mod common;

use common::*;
use ledger_core::event::*;
use ledger_core::fact::{Fact, FactKind};
use ledger_core::ids::ContractId;
use ledger_core::rulebook::Rulebook;
use ledger_core::rules::indicators::{
    indicators, Cell, Indicators, AGE_BANDS, DIMENSIONS, MIN_CELL_COUNT,
};
use ledger_core::rules::Params;
use proptest::prelude::*;

/// One worker's facts, with log positions handed out in order.
struct W {
    id: String,
    facts: Vec<Fact>,
}

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl W {
    fn new(id: &str, registered: &str, sex: Sex, birth: &str, hukou: Option<&str>) -> W {
        let mut w = W {
            id: id.into(),
            facts: Vec::new(),
        };
        w.push(FactKind::Person(PersonRegistered {
            worker: worker(id),
            jurisdiction: ju(registered),
            sex,
            birth_date: date(birth),
            female_category: (sex == Sex::Female).then_some(FemaleCategory::FiftyFive),
            nationality: ju(if hukou.is_some() { "CN" } else { "DE" }),
            hukou: hukou.map(ju),
        }));
        w
    }
    fn push(&mut self, what: FactKind) {
        let index = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.facts.push(Fact {
            index,
            line: 0,
            what,
        });
    }
    fn pay(mut self, e: &str, j: &str, period: &str, scheme: Scheme) -> W {
        self.push(FactKind::Contribution {
            employer: employer(e),
            jurisdiction: ju(j),
            period: month(period),
            back_pay: false,
            scheme,
            base: money("5000.00"),
            employer_amount: money("800.00"),
            employee_amount: money("400.00"),
        });
        self
    }
    fn flexible(mut self, j: &str, period: &str, scheme: Scheme) -> W {
        self.push(FactKind::Flexible(FlexibleContribution {
            worker: worker(&self.id),
            jurisdiction: ju(j),
            period: month(period),
            scheme,
            base: money("5000.00"),
            amount: money("1000.00"),
        }));
        self
    }
    fn contract(mut self, c: &str, e: &str, j: &str, form: ContractForm, start: &str) -> W {
        self.push(FactKind::Contract(ContractRegistered {
            contract: ContractId::new(c).unwrap(),
            worker: worker(&self.id),
            employer: employer(e),
            jurisdiction: ju(j),
            form,
            start: date(start),
            end: None,
            host: None,
        }));
        self
    }
    fn ended(mut self, c: &str, end: &str) -> W {
        self.push(FactKind::ContractEnded {
            contract: ContractId::new(c).unwrap(),
            end: date(end),
        });
        self
    }
}

fn run(workers: &[W], period: &str, scope: Option<&str>) -> Indicators {
    let rulebook = Rulebook::builtin();
    let params = Params {
        rulebook: &rulebook,
        published: &[],
    };
    let scope = scope.map(ju);
    indicators(
        workers.iter().map(|w| (w.id.as_str(), w.facts.as_slice())),
        &params,
        month(period),
        scope.as_ref(),
    )
}

fn cell<'a>(d: &'a Indicators, scheme: Scheme, dimension: &str, value: &str) -> &'a Cell {
    d.cells
        .iter()
        .find(|c| c.scheme == scheme && c.dimension == dimension && c.value == value)
        .unwrap_or_else(|| panic!("no cell {scheme:?} {dimension} {value}"))
}

/// (insured, population, rate) of a published cell.
fn shown(c: &Cell) -> (u64, u64, &str) {
    assert!(!c.suppressed, "{c:?} is suppressed");
    (
        c.insured.unwrap(),
        c.population.unwrap(),
        c.rate.as_deref().unwrap(),
    )
}

/// Twelve workers registered in CN-44, born 1990-06-15 (33 in 2024-01): six women with hukou
/// CN-44, six men with hukou CN-51. E1 declares pension for all six women and five men in
/// 2024-01, and injury for nobody.
fn twelve() -> Vec<W> {
    let mut v = Vec::new();
    for i in 0..6 {
        v.push(
            W::new(
                &format!("F{i}"),
                "CN-44",
                Sex::Female,
                "1990-06-15",
                Some("CN-44"),
            )
            .pay("E1", "CN-44", "2024-01", Scheme::Pension),
        );
    }
    for i in 0..6 {
        let w = W::new(
            &format!("M{i}"),
            "CN-44",
            Sex::Male,
            "1990-06-15",
            Some("CN-51"),
        );
        v.push(if i < 5 {
            w.pay("E1", "CN-44", "2024-01", Scheme::Pension)
        } else {
            w
        });
    }
    v
}

#[test]
fn counts_and_rates_by_sex_and_hukou() {
    let d = run(&twelve(), "2024-01", Some("CN-44"));
    assert_eq!(d.minimum_cell, MIN_CELL_COUNT);
    assert_eq!(d.suppressed, 0);
    // 11 of 12 insured: 11/12 = 0.9166666… → 0.916667 (half up).
    assert_eq!(
        shown(cell(&d, Scheme::Pension, "all", "all")),
        (11, 12, "0.916667")
    );
    assert_eq!(
        shown(cell(&d, Scheme::Pension, "sex", "F")),
        (6, 6, "1.000000")
    );
    // 5/6 = 0.8333333… → 0.833333.
    assert_eq!(
        shown(cell(&d, Scheme::Pension, "sex", "M")),
        (5, 6, "0.833333")
    );
    assert_eq!(
        shown(cell(&d, Scheme::Pension, "hukou", "local")),
        (6, 6, "1.000000")
    );
    assert_eq!(
        shown(cell(&d, Scheme::Pension, "hukou", "other_province")),
        (5, 6, "0.833333")
    );
    assert_eq!(
        shown(cell(&d, Scheme::Pension, "age_band", "25-34")),
        (11, 12, "0.916667")
    );
    assert_eq!(
        shown(cell(&d, Scheme::Pension, "jurisdiction", "CN-44")),
        (11, 12, "0.916667")
    );
    assert_eq!(
        shown(cell(&d, Scheme::Pension, "contract_form", "none")),
        (11, 12, "0.916667")
    );
    // Nobody is injury-insured: a zero is shown (it singles nobody out).
    assert_eq!(
        shown(cell(&d, Scheme::Injury, "all", "all")),
        (0, 12, "0.000000")
    );
    // Another month: the same population, nobody insured.
    let feb = run(&twelve(), "2024-02", None);
    assert_eq!(
        shown(cell(&feb, Scheme::Pension, "all", "all")),
        (0, 12, "0.000000")
    );
}

#[test]
fn the_json_form() {
    let d = run(&twelve(), "2024-01", Some("CN-44"));
    let v = serde_json::to_value(&d).unwrap();
    assert_eq!(v["period"], "2024-01");
    assert_eq!(v["jurisdiction"], "CN-44");
    assert_eq!(v["minimum_cell"], 5);
    assert_eq!(v["suppressed"], 0);
    assert_eq!(
        v["cells"][0],
        serde_json::json!({"scheme": "pension", "dimension": "all", "value": "all",
            "suppressed": false, "insured": 11, "population": 12, "rate": "0.916667"})
    );
    let whole = serde_json::to_value(run(&twelve(), "2024-01", None)).unwrap();
    assert_eq!(whole["jurisdiction"], serde_json::Value::Null);
}

#[test]
fn a_single_worker_never_shows_a_count() {
    let one = vec![
        W::new("ALONE", "CN-44", Sex::Female, "1960-01-01", Some("CN-44")).pay(
            "E1",
            "CN-44",
            "2024-01",
            Scheme::Pension,
        ),
    ];
    let d = run(&one, "2024-01", None);
    assert!(!d.cells.is_empty());
    assert!(d.cells.iter().all(|c| c.suppressed
        && c.insured.is_none()
        && c.population.is_none()
        && c.rate.is_none()));
    assert_eq!(d.suppressed, d.cells.len() as u64);
    let json = serde_json::to_string(&d).unwrap();
    assert!(!json.contains("\"insured\":1"), "{json}");
    assert!(!json.contains("\"population\":1"), "{json}");
}

#[test]
fn a_small_group_cannot_be_recovered_by_subtraction() {
    // Ten insured women and two insured men: the men's cell is under the minimum, and since
    // women + men = all, the women's cell is hidden too; the total is still shown.
    let mut v = Vec::new();
    for i in 0..10 {
        v.push(
            W::new(
                &format!("F{i}"),
                "CN-44",
                Sex::Female,
                "1990-01-01",
                Some("CN-44"),
            )
            .pay("E1", "CN-44", "2024-01", Scheme::Pension),
        );
    }
    for i in 0..2 {
        v.push(
            W::new(
                &format!("M{i}"),
                "CN-44",
                Sex::Male,
                "1990-01-01",
                Some("CN-44"),
            )
            .pay("E1", "CN-44", "2024-01", Scheme::Pension),
        );
    }
    let d = run(&v, "2024-01", None);
    assert_eq!(
        shown(cell(&d, Scheme::Pension, "all", "all")),
        (12, 12, "1.000000")
    );
    assert!(cell(&d, Scheme::Pension, "sex", "M").suppressed);
    assert!(cell(&d, Scheme::Pension, "sex", "F").suppressed);
    // An insured count of 2 out of 12 hides the cell even with a large population.
    let mut v = Vec::new();
    for i in 0..12 {
        let w = W::new(&format!("X{i}"), "CN-44", Sex::Female, "1990-01-01", None);
        v.push(if i < 2 {
            w.pay("E1", "CN-44", "2024-01", Scheme::Medical)
        } else {
            w
        });
    }
    let d = run(&v, "2024-01", None);
    assert!(cell(&d, Scheme::Medical, "all", "all").suppressed);
    assert_eq!(
        shown(cell(&d, Scheme::Pension, "all", "all")),
        (0, 12, "0.000000")
    );
}

#[test]
fn scopes_places_contract_forms_and_age_bands() {
    let mut v = Vec::new();
    for i in 0..5 {
        // Registered in CN-51, working in CN-44 under an open-ended contract.
        v.push(
            W::new(
                &format!("A{i}"),
                "CN-51",
                Sex::Male,
                "2000-03-01",
                Some("CN-51"),
            )
            .contract(
                &format!("CA{i}"),
                "E1",
                "CN-44",
                ContractForm::OpenEnded,
                "2023-01-01",
            )
            .pay("E1", "CN-44", "2024-01", Scheme::Pension),
        );
        // Registered in CN-44, working in CN-33 as platform workers paying flexibly.
        v.push(
            W::new(&format!("B{i}"), "CN-44", Sex::Female, "1960-02-01", None)
                .contract(
                    &format!("CB{i}"),
                    "P1",
                    "CN-33",
                    ContractForm::Platform,
                    "2023-06-01",
                )
                .flexible("CN-33", "2024-01", Scheme::Pension),
        );
        // Registered in CN-44, a fixed-term contract that ended in 2023: no contract in 2024-01,
        // nothing paid; their place is where they were registered.
        v.push(
            W::new(
                &format!("C{i}"),
                "CN-44",
                Sex::Female,
                "1999-12-31",
                Some("CN-44"),
            )
            .contract(
                &format!("CC{i}"),
                "E2",
                "CN-44",
                ContractForm::FixedTerm,
                "2022-01-01",
            )
            .ended(&format!("CC{i}"), "2023-12-31"),
        );
    }
    // CN-44: the A workers (placed by their contributions) and the C workers (registered there);
    // not the B workers, registered in CN-44 but insured in CN-33.
    let d = run(&v, "2024-01", Some("CN-44"));
    assert_eq!(
        shown(cell(&d, Scheme::Pension, "all", "all")),
        (5, 10, "0.500000")
    );
    assert_eq!(
        shown(cell(&d, Scheme::Pension, "contract_form", "open_ended")),
        (5, 5, "1.000000")
    );
    assert_eq!(
        shown(cell(&d, Scheme::Pension, "contract_form", "none")),
        (0, 5, "0.000000")
    );
    // Born 2000-03: 23 in 2024-01. Born 1999-12: 24.
    assert_eq!(
        shown(cell(&d, Scheme::Pension, "age_band", "16-24")),
        (5, 10, "0.500000")
    );
    assert_eq!(
        shown(cell(&d, Scheme::Pension, "hukou", "other_province")),
        (5, 5, "1.000000")
    );
    assert_eq!(
        shown(cell(&d, Scheme::Pension, "hukou", "local")),
        (0, 5, "0.000000")
    );
    // CN-33: the B workers, 63 years old, foreign (no hukou), platform contracts.
    let d = run(&v, "2024-01", Some("CN-33"));
    assert_eq!(
        shown(cell(&d, Scheme::Pension, "all", "all")),
        (5, 5, "1.000000")
    );
    assert_eq!(
        shown(cell(&d, Scheme::Pension, "age_band", "55-64")),
        (5, 5, "1.000000")
    );
    assert_eq!(
        shown(cell(&d, Scheme::Pension, "hukou", "foreign")),
        (5, 5, "1.000000")
    );
    assert_eq!(
        shown(cell(&d, Scheme::Pension, "contract_form", "platform")),
        (5, 5, "1.000000")
    );
    // The country holds both provinces: everyone, each in one place.
    let d = run(&v, "2024-01", Some("CN"));
    assert_eq!(
        shown(cell(&d, Scheme::Pension, "all", "all")),
        (10, 15, "0.666667")
    );
    assert_eq!(
        shown(cell(&d, Scheme::Pension, "jurisdiction", "CN-44")),
        (5, 10, "0.500000")
    );
    assert_eq!(
        shown(cell(&d, Scheme::Pension, "jurisdiction", "CN-33")),
        (5, 5, "1.000000")
    );
    assert_eq!(run(&v, "2024-01", None), {
        let mut d = run(&v, "2024-01", Some("CN"));
        d.jurisdiction = None;
        d
    });
    // Another country holds nobody: no cells.
    assert!(run(&v, "2024-01", Some("DE")).cells.is_empty());
    // Before the B workers were born nobody is counted; before the A and C workers were born,
    // only the B workers are.
    assert!(run(&v, "1959-12", None).cells.is_empty());
    let d = run(&v, "1990-01", None);
    assert_eq!(
        shown(cell(&d, Scheme::Pension, "all", "all")),
        (0, 5, "0.000000")
    );
}

#[test]
fn a_month_paid_twice_counts_once_where_it_was_first_recorded() {
    let v: Vec<W> = (0..5)
        .map(|i| {
            W::new(
                &format!("D{i}"),
                "CN-44",
                Sex::Male,
                "1980-01-01",
                Some("CN-44"),
            )
            .pay("E1", "CN-44", "2024-01", Scheme::Pension)
            .pay("E3", "CN-33", "2024-01", Scheme::Pension)
        })
        .collect();
    let d = run(&v, "2024-01", None);
    assert_eq!(
        shown(cell(&d, Scheme::Pension, "all", "all")),
        (5, 5, "1.000000")
    );
    assert_eq!(
        shown(cell(&d, Scheme::Pension, "jurisdiction", "CN-44")),
        (5, 5, "1.000000")
    );
    assert!(run(&v, "2024-01", Some("CN-33")).cells.is_empty());
}

fn sex_of(n: u8) -> Sex {
    if n.is_multiple_of(2) {
        Sex::Female
    } else {
        Sex::Male
    }
}

const PLACES: &[&str] = &["CN-44", "CN-33", "CN-51"];
const SCHEMES: &[Scheme] = &[Scheme::Pension, Scheme::Injury, Scheme::Medical];

/// A random worker: (sex, birth year, hukou index (3 = none), registered place, payments as
/// (place, scheme, flexible), contract (place, form)).
type Spec = (
    u8,
    i32,
    usize,
    usize,
    Vec<(usize, usize, bool)>,
    Option<(usize, u8)>,
);

fn build(specs: &[Spec]) -> Vec<W> {
    let forms = [
        ContractForm::OpenEnded,
        ContractForm::FixedTerm,
        ContractForm::Platform,
    ];
    specs
        .iter()
        .enumerate()
        .map(|(i, (sex, year, hukou, reg, pays, contract))| {
            let mut w = W::new(
                &format!("R{i:04}"),
                PLACES[*reg],
                sex_of(*sex),
                &format!("{year}-07-01"),
                PLACES.get(*hukou).copied(),
            );
            if let Some((p, f)) = contract {
                w = w.contract(
                    &format!("K{i}"),
                    "E1",
                    PLACES[*p],
                    forms[*f as usize % 3],
                    "2020-01-01",
                );
            }
            for (p, s, flexible) in pays {
                w = if *flexible {
                    w.flexible(PLACES[*p], "2024-01", SCHEMES[*s])
                } else {
                    w.pay("E1", PLACES[*p], "2024-01", SCHEMES[*s])
                };
            }
            w
        })
        .collect()
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0u8..2,
        1950i32..2010,
        0usize..4,
        0usize..3,
        proptest::collection::vec((0usize..3, 0usize..3, any::<bool>()), 0..3),
        proptest::option::of((0usize..3, 0u8..3)),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Published cells never show a count under the minimum; insured never exceeds population;
    /// no dimension hides exactly one value, nor a set of values all insured or all uninsured; a
    /// dimension with nothing hidden adds up to the total; and the order workers are fed in
    /// changes nothing.
    #[test]
    fn cells_add_up_and_small_cells_stay_hidden(
        specs in proptest::collection::vec(spec(), 0..120),
        scope in proptest::option::of(0usize..4),
    ) {
        let workers = build(&specs);
        let scope = scope.map(|s| ["CN-44", "CN-33", "CN-51", "CN"][s]);
        let d = run(&workers, "2024-01", scope);
        let min = d.minimum_cell;
        prop_assert_eq!(d.suppressed, d.cells.iter().filter(|c| c.suppressed).count() as u64);
        for c in &d.cells {
            if c.suppressed {
                prop_assert!(c.insured.is_none() && c.population.is_none() && c.rate.is_none());
            } else {
                let (i, p) = (c.insured.unwrap(), c.population.unwrap());
                prop_assert!(i <= p);
                prop_assert!(p >= min && (i == 0 || i >= min), "{:?}", c);
            }
        }
        // Sorted by scheme, dimension, value; no duplicates.
        let order = |c: &Cell| {
            let s = ledger_core::rules::indicators::SCHEMES.iter().position(|x| *x == c.scheme).unwrap();
            let d = DIMENSIONS.iter().position(|x| *x == c.dimension).unwrap();
            let r = if c.dimension == "age_band" {
                AGE_BANDS.iter().position(|b| b.label == c.value).unwrap()
            } else {
                0
            };
            (s, d, r, c.value.clone())
        };
        let keys: Vec<_> = d.cells.iter().map(order).collect();
        prop_assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for scheme in ledger_core::rules::indicators::SCHEMES {
            let Some(total) = d.cells.iter().find(|c| c.scheme == scheme && c.dimension == "all") else {
                prop_assert!(d.cells.iter().all(|c| c.scheme != scheme));
                continue;
            };
            for dim in &DIMENSIONS[1..] {
                let cells: Vec<&Cell> = d.cells.iter().filter(|c| c.scheme == scheme && c.dimension == *dim).collect();
                prop_assert!(!cells.is_empty());
                let hidden = cells.iter().filter(|c| c.suppressed).count();
                // A lone hidden value could be recovered from the total, unless it is the only
                // value (then it is the total, hidden alike).
                prop_assert!(
                    hidden != 1 || (cells.len() == 1 && total.suppressed),
                    "{} {:?}: one hidden cell", dim, scheme
                );
                // What a dimension hides, known as total − shown, is never all insured or all
                // uninsured when the total is mixed.
                if hidden > 0 && !total.suppressed {
                    let (ti, tp) = (total.insured.unwrap(), total.population.unwrap());
                    let shown_i: u64 = cells.iter().filter_map(|c| c.insured).sum();
                    let shown_p: u64 = cells.iter().filter_map(|c| c.population).sum();
                    let (hi, hp) = (ti - shown_i, tp - shown_p);
                    prop_assert!(
                        !(ti > 0 && ti < tp) || (hi > 0 && hi < hp),
                        "{} {:?}: hidden {}/{} of {}/{}", dim, scheme, hi, hp, ti, tp
                    );
                }
                if hidden == 0 && !total.suppressed {
                    let sum = |f: fn(&Cell) -> Option<u64>| cells.iter().map(|c| f(c).unwrap()).sum::<u64>();
                    prop_assert_eq!(sum(|c| c.insured), total.insured.unwrap());
                    prop_assert_eq!(sum(|c| c.population), total.population.unwrap());
                }
            }
        }
        let reversed: Vec<W> = build(&specs).into_iter().rev().collect();
        // Log positions differ between the two builds, but only their order within a worker
        // matters.
        prop_assert_eq!(run(&reversed, "2024-01", scope), d);
    }
}
