//! docs/rules.md §2: who answers for a work injury at an instant. Employment-injury insurance under a
//! labour contract (fund, employer then fund, or employer), else the platform occupational-injury
//! pilot inside an order window, else nothing.

use super::{Coverage, Params, RuleError, Worker};
use crate::event::Scheme;
use crate::fact::{Fact, FactKind};
use crate::jurisdiction::Jurisdiction;
use crate::time::{Date, Instant};

/// How a month of a worker is insured against injury by one employer: 2 fund (declared in
/// time), 1 employer then fund (only by back pay), 0 not insured.
fn insured(
    w: &Worker<'_>,
    employer: Option<&str>,
    month: crate::time::Month,
) -> Option<(u8, Jurisdiction)> {
    let mut best: Option<(u8, Jurisdiction)> = None;
    for f in w.facts {
        if let FactKind::Contribution {
            employer: e,
            jurisdiction,
            period,
            back_pay,
            scheme: Scheme::Injury,
            ..
        } = &f.what
        {
            if *period != month || employer.is_some_and(|x| x != e.as_str()) {
                continue;
            }
            let rank = if *back_pay { 1 } else { 2 };
            if best.as_ref().is_none_or(|(r, _)| rank > *r) {
                best = Some((rank, jurisdiction.clone()));
            }
        }
    }
    best
}

fn payer(rank: u8) -> &'static str {
    match rank {
        2 => "fund",
        1 => "employer_then_fund",
        _ => "employer",
    }
}

pub fn coverage(
    worker_id: &str,
    facts: &[Fact],
    params: &Params<'_>,
    at: Instant,
    place: &Jurisdiction,
) -> Result<Coverage, RuleError> {
    let w = Worker::new(worker_id, facts)?;
    let date = at.local_date();
    let month = date.month();
    let answer = |basis,
                  payer,
                  insurer: Option<Jurisdiction>,
                  platform: Option<String>,
                  order: Option<String>| Coverage {
        worker: worker_id.to_string(),
        at,
        jurisdiction: place.clone(),
        covered: insurer.is_some(),
        basis,
        payer,
        insurer,
        platform,
        order,
    };

    let best = contract_in_force(&w, date);
    // Insured through a contract in force; or an insured month outside a registered contract,
    // which still protects.
    let insurance = match &best {
        Some((rank, insurer)) if *rank > 0 => Some((*rank, insurer.clone())),
        Some(_) => None,
        None => insured(&w, None, month),
    };
    if let Some((rank, insurer)) = insurance {
        return Ok(answer(
            "employment_injury_insurance",
            payer(rank),
            Some(insurer),
            None,
            None,
        ));
    }

    if let Some((platform, order)) = pilot_order(&w, params, at, place) {
        return Ok(answer(
            "occupational_injury_pilot",
            "fund",
            Some(place.clone()),
            Some(platform),
            Some(order),
        ));
    }

    if let Some((_, insurer)) = best {
        // Under a contract but uninsured: still a work injury; the employer owes the benefits.
        return Ok(answer(
            "employment_injury_insurance",
            "employer",
            Some(insurer),
            None,
            None,
        ));
    }
    Ok(answer("none", "none", None, None, None))
}

/// Of the contracts in force on `date`, the best insured one: (rank of how its employer's
/// province insured the month, 0 for not at all; that province), `None` without a contract.
fn contract_in_force(w: &Worker<'_>, date: Date) -> Option<(u8, Jurisdiction)> {
    let month = date.month();
    let ended = |contract: &str| -> Option<Date> {
        w.facts.iter().rev().find_map(|f| match &f.what {
            FactKind::ContractEnded { contract: c, end } if c.as_str() == contract => Some(*end),
            _ => None,
        })
    };
    let mut best: Option<(u8, Jurisdiction)> = None;
    for f in w.facts {
        let FactKind::Contract(c) = &f.what else {
            continue;
        };
        let end = ended(c.contract.as_str()).or(c.end);
        if c.start > date || end.is_some_and(|e| e < date) {
            continue;
        }
        // The employer's province insures, wherever the work is done (a posted worker's home).
        let rank = insured(w, Some(c.employer.as_str()), month).map_or(0, |(r, _)| r);
        if best.as_ref().is_none_or(|(r, _)| rank > *r) {
            best = Some((rank, c.jurisdiction.clone()));
        }
    }
    best
}

/// The pilot: executing an order, in a pilot province, for a pilot platform, at that instant;
/// (platform, order).
fn pilot_order(
    w: &Worker<'_>,
    params: &Params<'_>,
    at: Instant,
    place: &Jurisdiction,
) -> Option<(String, String)> {
    let date = at.local_date();
    let provinces = params.codes("pilot_provinces", place, date);
    if !provinces.contains(&place.as_str()) {
        return None;
    }
    let platforms = params.codes("pilot_platforms", place, date);
    w.facts.iter().find_map(|f| match &f.what {
        FactKind::Order {
            platform,
            jurisdiction,
            order,
            accepted_at,
            completed_at,
        } if jurisdiction == place
            && accepted_at.unix_nanos() <= at.unix_nanos()
            && at.unix_nanos() <= completed_at.unix_nanos()
            && platforms.contains(&platform.as_str()) =>
        {
            Some((platform.to_string(), order.to_string()))
        }
        _ => None,
    })
}
