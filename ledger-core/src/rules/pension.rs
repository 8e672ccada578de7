//! docs/rules.md §1: the Chinese urban employees' basic pension. Aggregation with duplicates, the
//! pension relation and its transfers, temporary accounts, the claim province, statutory
//! retirement, the minimum, and the monthly estimate.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    div_half_up, money, percent_of, Age, ClaimTransfer, Estimate, Params, Pension, RuleError,
    TemporaryAccount, TransferOut, Worker,
};
use crate::event::{FemaleCategory, Scheme, Sex};
use crate::fact::FactKind;
use crate::ids::TransferId;
use crate::jurisdiction::Jurisdiction;
use crate::money::Money;
use crate::time::{Date, Month};

/// One month of pension contributions as the rules count it (minor units).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthRecord {
    pub period: Month,
    pub jurisdiction: Jurisdiction,
    pub base: i128,
    /// What the month credits to the individual account.
    pub account: i128,
    pub employer_amount: i128,
    pub employee_amount: i128,
}

/// The pension months of a worker up to `last`: those kept (the first committed for each month)
/// in period order, and the periods paid again (duplicates), ascending.
pub fn months(w: &Worker<'_>, params: &Params<'_>, last: Month) -> (Vec<MonthRecord>, Vec<Month>) {
    let mut kept: BTreeMap<Month, MonthRecord> = BTreeMap::new();
    let mut duplicates = std::collections::BTreeSet::new();
    // Facts come in log order (index, line): the first record of a month keeps it.
    for f in w.facts {
        let rec = match &f.what {
            FactKind::Contribution {
                jurisdiction,
                period,
                scheme: Scheme::Pension,
                base,
                employer_amount,
                employee_amount,
                ..
            } => MonthRecord {
                period: *period,
                jurisdiction: jurisdiction.clone(),
                base: base.minor().into(),
                account: employee_amount.minor().into(),
                employer_amount: employer_amount.minor().into(),
                employee_amount: employee_amount.minor().into(),
            },
            FactKind::Flexible(e) if e.scheme == Scheme::Pension => {
                let rate = params
                    .percent(
                        "flexible_account_rate",
                        &e.jurisdiction,
                        e.period.first_day(),
                    )
                    .unwrap_or(0);
                let account = percent_of(e.base.minor().into(), rate);
                let amount: i128 = e.amount.minor().into();
                MonthRecord {
                    period: e.period,
                    jurisdiction: e.jurisdiction.clone(),
                    base: e.base.minor().into(),
                    account,
                    employer_amount: (amount - account).max(0),
                    employee_amount: account.min(amount),
                }
            }
            _ => continue,
        };
        if rec.period > last || !rec.jurisdiction.is_chinese_province() {
            continue;
        }
        match kept.entry(rec.period) {
            std::collections::btree_map::Entry::Occupied(_) => {
                duplicates.insert(rec.period);
            }
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(rec);
            }
        }
    }
    (
        kept.into_values().collect(),
        duplicates.into_iter().collect(),
    )
}

/// A completed (or, for the check of a completion, about to complete) transfer.
struct TransferStep<'f> {
    id: &'f TransferId,
    from: &'f Jurisdiction,
    to: &'f Jurisdiction,
    requested: Month,
    index: u64,
}

fn transfers<'f>(
    w: &Worker<'f>,
    last: Month,
    completing: Option<&TransferId>,
) -> Vec<TransferStep<'f>> {
    let completed: std::collections::BTreeSet<&str> = w
        .facts
        .iter()
        .filter_map(|f| match &f.what {
            FactKind::TransferCompleted(t) => Some(t.transfer.as_str()),
            _ => None,
        })
        .collect();
    let mut out: Vec<TransferStep<'f>> = w
        .facts
        .iter()
        .filter_map(|f| match &f.what {
            FactKind::TransferRequested(t)
                if (completed.contains(t.transfer.as_str()) || completing == Some(&t.transfer))
                    && t.requested <= last =>
            {
                Some(TransferStep {
                    id: &t.transfer,
                    from: &t.from,
                    to: &t.to,
                    requested: t.requested,
                    index: f.index,
                })
            }
            _ => None,
        })
        .collect();
    out.sort_by_key(|t| (t.requested, t.index));
    out
}

/// Where the relation and the money sit after replaying months and transfers in time order.
pub struct Relation {
    pub current: Option<Jurisdiction>,
    /// Relation places in order, with the month each started.
    pub history: Vec<(Jurisdiction, Month)>,
    /// Months held by each province outside temporary accounts (the relation's include those
    /// received by transfer).
    pub holdings: BTreeMap<Jurisdiction, Vec<MonthRecord>>,
    pub temporary: BTreeMap<Jurisdiction, Vec<MonthRecord>>,
    pub transfers: Vec<(TransferOut, String)>,
}

fn age_in_years(birth: Date, at: Month) -> i64 {
    (at.ordinal() - birth.month().ordinal()).div_euclid(12)
}

/// The pooled fund a holding carries: the rate × every base from the start month on.
fn pooled(params: &Params<'_>, from: &Jurisdiction, on: Date, held: &[MonthRecord]) -> i128 {
    let rate = params
        .percent("pooled_transfer_rate", from, on)
        .unwrap_or(0);
    let since = params
        .value_or_earliest("pooled_transfer_since", from, on)
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Month>().ok());
    let bases: i128 = held
        .iter()
        .filter(|m| since.is_none_or(|s| m.period >= s))
        .map(|m| m.base)
        .sum();
    percent_of(bases, rate)
}

pub fn relation(
    w: &Worker<'_>,
    params: &Params<'_>,
    kept: &[MonthRecord],
    last: Month,
    completing: Option<&TransferId>,
) -> Relation {
    let steps = transfers(w, last, completing);
    let mut r = Relation {
        current: None,
        history: Vec::new(),
        holdings: BTreeMap::new(),
        temporary: BTreeMap::new(),
        transfers: Vec::new(),
    };
    let mut steps = steps.into_iter().peekable();
    let mut stint: Option<(Jurisdiction, bool)> = None;
    for m in kept {
        while steps.peek().is_some_and(|t| t.requested <= m.period) {
            let t = steps.next().expect("peeked");
            r.transfer(params, t);
            // A transfer ends the stint it interrupts: the next month decides afresh.
            stint = None;
        }
        let j = &m.jurisdiction;
        let temporary = match &stint {
            Some((sj, temp)) if sj == j => *temp,
            _ => {
                let temp = is_temporary(w, params, r.current.as_ref(), m);
                stint = Some((j.clone(), temp));
                temp
            }
        };
        if r.current.is_none() {
            r.current = Some(j.clone());
            r.history.push((j.clone(), m.period));
        }
        if temporary {
            r.temporary.entry(j.clone()).or_default().push(m.clone());
        } else {
            r.holdings.entry(j.clone()).or_default().push(m.clone());
        }
    }
    for t in steps {
        r.transfer(params, t);
    }
    r
}

impl Relation {
    /// Carries out one transfer: the sending province's holdings move to the receiving one,
    /// which becomes the relation when the relation was the sender (or none yet).
    fn transfer(&mut self, params: &Params<'_>, t: TransferStep<'_>) {
        let held = self.holdings.remove(t.from).unwrap_or_default();
        let on = t.requested.first_day();
        let account: i128 = held.iter().map(|m| m.account).sum();
        let pooled_fund = pooled(params, t.from, on, &held);
        self.holdings.entry(t.to.clone()).or_default().extend(held);
        if self.current.is_none() || self.current.as_ref() == Some(t.from) {
            self.current = Some(t.to.clone());
            self.history.push((t.to.clone(), t.requested));
        }
        self.transfers.push((
            TransferOut {
                from: t.from.clone(),
                to: t.to.clone(),
                period: t.requested,
                individual_account: money(account),
                pooled_fund: money(pooled_fund),
            },
            t.id.to_string(),
        ));
    }
}

/// Whether a month starts a stint on a temporary account: worked outside the relation and the
/// hukou province at or above the age threshold of that province.
fn is_temporary(
    w: &Worker<'_>,
    params: &Params<'_>,
    current: Option<&Jurisdiction>,
    m: &MonthRecord,
) -> bool {
    let j = &m.jurisdiction;
    let threshold_name = match w.person.sex {
        Sex::Male => "temporary_account_age_men",
        Sex::Female => "temporary_account_age_women",
    };
    match current {
        None => false,
        Some(rel) if rel == j => false,
        Some(_) if w.hukou_on(m.period.first_day()).as_ref() == Some(j) => false,
        Some(_) => {
            let threshold = params
                .count(threshold_name, j, m.period.first_day())
                .unwrap_or(u64::MAX);
            age_in_years(w.person.birth_date, m.period) >= threshold as i64
        }
    }
}

/// What a `transfer_completed` must carry: the individual account and pooled fund the sending
/// province passes on when `transfer` completes on `on` (the entry's date).
pub fn transfer_amounts(
    w: &Worker<'_>,
    params: &Params<'_>,
    transfer: &TransferId,
    on: Date,
    requested: Month,
) -> (Money, Money) {
    let last = on.month().max(requested);
    let (kept, _) = months(w, params, last);
    let r = relation(w, params, &kept, last, Some(transfer));
    r.transfers
        .iter()
        .find(|(_, id)| id == transfer.as_str())
        .map(|(t, _)| (t.individual_account, t.pooled_fund))
        .unwrap_or((Money::ZERO, Money::ZERO))
}

/// Statutory retirement: (month, age) under the 2024 decision.
pub fn retirement(
    w: &Worker<'_>,
    params: &Params<'_>,
    on: Date,
) -> Result<(Month, Age), RuleError> {
    let category = match (w.person.sex, w.person.female_category) {
        (Sex::Male, _) => "men",
        (Sex::Female, Some(FemaleCategory::Fifty)) => "women_50",
        (Sex::Female, _) => "women_55",
    };
    let cn = Jurisdiction::new("CN").expect("valid");
    let missing = || RuleError::MissingParameter("retirement_schedule".into());
    let row = params
        .value_or_earliest("retirement_schedule", &cn, on)
        .and_then(|v| v.get(category))
        .ok_or_else(missing)?;
    let num = |k: &str| row.get(k).and_then(Value::as_i64).ok_or_else(missing);
    let first: Month = row
        .get("first_affected")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(missing)?;
    let (original, step, max) = (num("original_age")?, num("step")?.max(1), num("max_delay")?);
    let birth = w.person.birth_date.month();
    let delay = if birth < first {
        0
    } else {
        ((birth.ordinal() - first.ordinal()) / step + 1).min(max)
    };
    let total = original * 12 + delay;
    let month = Month::from_ordinal(birth.ordinal() + total).map_err(|_| missing())?;
    Ok((
        month,
        Age {
            years: (total / 12) as u32,
            months: (total % 12) as u32,
        },
    ))
}

/// Months required for a pension when retiring in `year`.
pub fn minimum_months(params: &Params<'_>, year: i32, on: Date) -> Result<u32, RuleError> {
    let cn = Jurisdiction::new("CN").expect("valid");
    let missing = || RuleError::MissingParameter("minimum_months".into());
    let v = params
        .value_or_earliest("minimum_months", &cn, on)
        .ok_or_else(missing)?;
    let num = |k: &str| v.get(k).and_then(Value::as_i64).ok_or_else(missing);
    let steps = (i64::from(year) - num("from_year")?).clamp(0, num("steps")?);
    Ok((num("base")? + num("step")? * steps) as u32)
}

pub fn pension(
    w: &Worker<'_>,
    params: &Params<'_>,
    as_of: Date,
    flags: &mut Vec<String>,
) -> Result<Pension, RuleError> {
    let last = as_of.month();
    let (kept, duplicate_months) = months(w, params, last);
    let r = relation(w, params, &kept, last, None);

    let mut by_j: BTreeMap<String, u32> = BTreeMap::new();
    for m in &kept {
        *by_j.entry(m.jurisdiction.to_string()).or_default() += 1;
        base_bounds(params, m, flags);
    }
    let temporary_account_months = r
        .temporary
        .iter()
        .map(|(j, ms)| (j.to_string(), ms.len() as u32))
        .collect();
    let insured = kept.len() as u32;
    let account: i128 = kept.iter().map(|m| m.account).sum();

    let (retirement_month, retirement_age) = retirement(w, params, as_of)?;
    let minimum = minimum_months(params, retirement_month.year(), as_of)?;

    let claim = claim_province(w, params, &r, &by_j, as_of);
    for j in r.holdings.keys() {
        if Some(j) != r.current.as_ref() {
            flags.push(format!("pending_transfer:{j}"));
        }
    }

    let claim_transfer = claim_transfer(params, &r, claim.as_ref(), retirement_month);

    let estimated_monthly = claim.as_ref().and_then(|c| {
        estimate(
            params,
            c,
            &kept,
            account,
            retirement_month,
            retirement_age,
            as_of,
        )
    });

    Ok(Pension {
        insured_months: insured,
        months_by_jurisdiction: by_j,
        temporary_account_months,
        duplicate_months,
        relation_jurisdiction: r.current,
        individual_account: money(account),
        transfers: r.transfers.into_iter().map(|(t, _)| t).collect(),
        retirement_month,
        retirement_age,
        minimum_months: minimum,
        vested: insured >= minimum,
        shortfall_months: minimum.saturating_sub(insured),
        claim_jurisdiction: claim,
        claim_transfer,
        estimated_monthly,
    })
}

/// The claim province (2009 measures art. 6): the relation province when it is home or holds
/// enough months, else the latest earlier relation province that does, else home.
fn claim_province(
    w: &Worker<'_>,
    params: &Params<'_>,
    r: &Relation,
    by_j: &BTreeMap<String, u32>,
    as_of: Date,
) -> Option<Jurisdiction> {
    let first_insured = r.history.first().map(|(j, _)| j.clone());
    let home = w.hukou_on(as_of).or(first_insured);
    let threshold = |j: &Jurisdiction| {
        params
            .count("claim_province_months", j, as_of)
            .unwrap_or(120) as u32
    };
    let months_in = |j: &Jurisdiction| by_j.get(j.as_str()).copied().unwrap_or(0);
    match &r.current {
        None => home.clone(),
        Some(rel) if Some(rel) == home.as_ref() => Some(rel.clone()),
        Some(rel) if months_in(rel) >= threshold(rel) => Some(rel.clone()),
        Some(rel) => r
            .history
            .iter()
            .rev()
            .map(|(j, _)| j)
            .find(|j| *j != rel && months_in(j) >= threshold(j))
            .cloned()
            .or(home.clone()),
    }
}

/// What moves to the claim province at retirement: the relation's holdings (when the claim is
/// elsewhere) and every temporary account outside it; `None` when nothing moves.
fn claim_transfer(
    params: &Params<'_>,
    r: &Relation,
    claim: Option<&Jurisdiction>,
    retirement_month: Month,
) -> Option<ClaimTransfer> {
    let (Some(rel), Some(to)) = (&r.current, claim) else {
        return None;
    };
    let temporary_accounts: Vec<TemporaryAccount> = r
        .temporary
        .iter()
        .filter(|(j, _)| *j != to)
        .map(|(j, ms)| TemporaryAccount {
            jurisdiction: j.clone(),
            months: ms.len() as u32,
            employer_amount: money(ms.iter().map(|m| m.employer_amount).sum()),
            employee_amount: money(ms.iter().map(|m| m.employee_amount).sum()),
        })
        .collect();
    if rel == to && temporary_accounts.is_empty() {
        None
    } else if rel == to {
        Some(ClaimTransfer {
            from: None,
            to: to.clone(),
            individual_account: Money::ZERO,
            pooled_fund: Money::ZERO,
            temporary_accounts,
        })
    } else {
        let held = r.holdings.get(rel).map(Vec::as_slice).unwrap_or(&[]);
        Some(ClaimTransfer {
            from: Some(rel.clone()),
            to: to.clone(),
            individual_account: money(held.iter().map(|m| m.account).sum()),
            pooled_fund: money(pooled(params, rel, retirement_month.first_day(), held)),
            temporary_accounts,
        })
    }
}

/// Flags a base outside 60%–300% of the province's average wage of the month's year (when known).
fn base_bounds(params: &Params<'_>, m: &MonthRecord, flags: &mut Vec<String>) {
    let Some(wage) = params.average_wage(&m.jurisdiction, m.period.year()) else {
        return;
    };
    let on = m.period.first_day();
    let wage = i128::from(wage.minor());
    let scaled = m.base * 10_000;
    if let Some(floor) = params.percent("base_floor_percent", &m.jurisdiction, on) {
        if scaled < wage * i128::from(floor) {
            flags.push(format!("base_below_floor:{}:{}", m.jurisdiction, m.period));
        }
    }
    if let Some(ceiling) = params.percent("base_ceiling_percent", &m.jurisdiction, on) {
        if scaled > wage * i128::from(ceiling) {
            flags.push(format!(
                "base_above_ceiling:{}:{}",
                m.jurisdiction, m.period
            ));
        }
    }
}

/// Scale of the contribution index sum: enough digits that a decimal index is exact.
const INDEX_SCALE: i128 = 1_000_000_000_000_000;

/// The monthly pension (国发〔2005〕38号): basic = (C + C×I)/2 × N × 1%, account = IA ÷ divisor,
/// each rounded half up to the fen; none when a needed wage or divisor is unknown.
fn estimate(
    params: &Params<'_>,
    claim: &Jurisdiction,
    kept: &[MonthRecord],
    account: i128,
    retirement: Month,
    age: Age,
    on: Date,
) -> Option<Estimate> {
    if kept.is_empty() {
        return None;
    }
    let c = i128::from(params.average_wage(claim, retirement.year() - 1)?.minor());
    // Σ base_m / W_year(m), scaled; grouped by year so each division rounds once.
    let mut by_year: BTreeMap<i32, i128> = BTreeMap::new();
    for m in kept {
        *by_year.entry(m.period.year()).or_default() += m.base;
    }
    let mut index_sum: i128 = 0;
    for (year, bases) in by_year {
        let w = i128::from(params.average_wage(claim, year)?.minor());
        if w <= 0 {
            return None;
        }
        index_sum = index_sum.checked_add(div_half_up(bases.checked_mul(INDEX_SCALE)?, w))?;
    }
    let n = kept.len() as i128;
    let cn = Jurisdiction::new("CN").expect("valid");
    let accrual = i128::from(
        // The claim province's value, else the national one (`Params` falls back by itself).
        params.percent("basic_pension_accrual_percent", claim, on)?,
    );
    // basic = C × (1 + Σ/n)/2 × n/12 × accrual/100 = C × (n×S + Σ) × accrual / (S × 2 × 12 × 10000)
    let numerator = c
        .checked_mul(n.checked_mul(INDEX_SCALE)?.checked_add(index_sum)?)?
        .checked_mul(accrual)?;
    let basic = div_half_up(numerator, INDEX_SCALE * 2 * 12 * 10_000);
    let divisor = params
        .value_or_earliest("annuity_divisors", &cn, on)?
        .get(age.years.to_string())?
        .as_u64()? as u32;
    let account_part = div_half_up(account, i128::from(divisor));
    Some(Estimate {
        basic: money(basic),
        account: money(account_part),
        total: money(basic + account_part),
        divisor,
    })
}
