//! docs/rules.md §3: postings under bilateral agreements (exempt and double-coverage months), periods
//! reported by other countries, and totalization with pro-rata shares where an agreement
//! aggregates periods.

use std::collections::{BTreeMap, BTreeSet};

use super::{Coordination, ForeignMonths, Params, Posting, Worker};
use crate::event::{ContractForm, CoverageCertificateIssued, PeriodKind};
use crate::fact::FactKind;
use crate::jurisdiction::Jurisdiction;
use crate::rulebook::Agreement;
use crate::time::{Date, Month};

fn months_between(from: Month, to: Month) -> impl Iterator<Item = Month> {
    (from.ordinal()..=to.ordinal()).filter_map(|o| Month::from_ordinal(o).ok())
}

/// The agreement that binds two jurisdictions' countries, by name or by parties.
fn agreement_for<'a>(
    params: &Params<'a>,
    sending: &Jurisdiction,
    receiving: &Jurisdiction,
    named: Option<&str>,
) -> Option<&'a Agreement> {
    let all = params.agreements();
    if let Some(n) = named {
        if let Some(a) = all.iter().find(|a| a.agreement == n) {
            return Some(a);
        }
    }
    // A bilateral agreement is more specific than a multilateral one.
    all.iter()
        .filter(|a| a.binds(sending, receiving))
        .min_by_key(|a| a.parties.len())
}

fn same_place(a: &Jurisdiction, b: &Jurisdiction) -> bool {
    a == b || a.country() == b.country()
}

/// A posting: a posted contract with a host, or (where there is none) the span of certificates.
struct Span<'f> {
    sending: Jurisdiction,
    receiving: Jurisdiction,
    from: Month,
    to: Month,
    named: Option<&'f str>,
}

pub fn postings(w: &Worker<'_>, params: &Params<'_>, as_of: Date) -> Vec<Posting> {
    let certs: Vec<&CoverageCertificateIssued> = w
        .facts
        .iter()
        .filter_map(|f| match &f.what {
            FactKind::Certificate(c) => Some(c),
            _ => None,
        })
        .collect();
    let mut spans = posted_contracts(w, as_of);
    let loose = loose_certificates(&certs, &spans);
    spans.extend(loose);
    let mut out: Vec<Posting> = spans.iter().map(|s| posting(params, &certs, s)).collect();
    out.sort_by(|a, b| (a.from, &a.receiving, a.to).cmp(&(b.from, &b.receiving, b.to)));
    out
}

/// The spans of the worker's posted contracts (to their end, or the month asked about).
fn posted_contracts<'f>(w: &Worker<'f>, as_of: Date) -> Vec<Span<'f>> {
    let mut ends: BTreeMap<&str, Date> = BTreeMap::new();
    for f in w.facts {
        if let FactKind::ContractEnded { contract, end } = &f.what {
            ends.insert(contract.as_str(), *end);
        }
    }
    let mut spans: Vec<Span<'_>> = Vec::new();
    for f in w.facts {
        let FactKind::Contract(c) = &f.what else {
            continue;
        };
        let (ContractForm::Posted, Some(host)) = (c.form, &c.host) else {
            continue;
        };
        let from = c.start.month();
        // An open-ended posting runs to the month asked about.
        let end = ends.get(c.contract.as_str()).copied().or(c.end);
        let to = end.map_or(as_of.month(), Date::month).max(from);
        spans.push(Span {
            sending: c.jurisdiction.clone(),
            receiving: host.clone(),
            from,
            to,
            named: None,
        });
    }
    spans
}

/// Certificates no posted contract explains make postings of their own, merged when they
/// touch or overlap.
fn loose_certificates<'f>(
    certs: &[&'f CoverageCertificateIssued],
    spans: &[Span<'_>],
) -> Vec<Span<'f>> {
    let mut loose: Vec<&CoverageCertificateIssued> = certs
        .iter()
        .copied()
        .filter(|c| {
            !spans
                .iter()
                .any(|s| same_place(&s.receiving, &c.receiving) && c.from <= s.to && c.to >= s.from)
        })
        .collect();
    loose.sort_by_key(|c| (c.agreement.clone(), c.receiving.clone(), c.from));
    let mut merged: Vec<Span<'_>> = Vec::new();
    for c in loose {
        if let Some(last) = merged.last_mut() {
            if last.named == Some(c.agreement.as_str())
                && last.receiving == c.receiving
                && c.from.ordinal() <= last.to.ordinal() + 1
            {
                last.to = last.to.max(c.to);
                continue;
            }
        }
        merged.push(Span {
            sending: c.sending.clone(),
            receiving: c.receiving.clone(),
            from: c.from,
            to: c.to,
            named: Some(c.agreement.as_str()),
        });
    }
    merged
}

/// One posting: each month is exempt when a certificate of its agreement covers it within the
/// agreement's maximum (extended for the bases that extend it), else double coverage.
fn posting(params: &Params<'_>, certs: &[&CoverageCertificateIssued], s: &Span<'_>) -> Posting {
    let agreement = agreement_for(params, &s.sending, &s.receiving, s.named);
    let mut exempt = 0u32;
    let mut double = Vec::new();
    for (k, m) in months_between(s.from, s.to).enumerate() {
        let k = k as u32 + 1;
        let allowed = agreement.is_some_and(|a| {
            certs
                .iter()
                .filter(|c| {
                    c.agreement == a.agreement
                        && same_place(&c.receiving, &s.receiving)
                        && c.from <= m
                        && m <= c.to
                        && c.branches.iter().any(|b| a.branches.contains(b))
                })
                .any(|c| {
                    let max = if a.extension_bases.contains(&c.basis) {
                        a.extended_max_months
                    } else {
                        a.max_months
                    };
                    k <= max
                })
        });
        if allowed {
            exempt += 1;
        } else {
            double.push(m);
        }
    }
    let mut branches = agreement.map(|a| a.branches.clone()).unwrap_or_default();
    branches.sort_by_key(|b| b.as_str());
    Posting {
        agreement: agreement.map(|a| a.agreement.clone()),
        receiving: s.receiving.clone(),
        from: s.from,
        to: s.to,
        exempt_months: exempt,
        branches,
        double_coverage_months: double,
    }
}

/// Months reported by each foreign country (insurance and voluntary, overlaps once, up to the
/// month asked about), with every posting's receiving country listed; and totalization shares.
pub fn foreign(
    w: &Worker<'_>,
    params: &Params<'_>,
    as_of: Date,
    postings: &[Posting],
) -> (BTreeMap<String, ForeignMonths>, Vec<Coordination>) {
    let last = as_of.month();
    let mut by_country: BTreeMap<String, BTreeSet<Month>> = BTreeMap::new();
    for f in w.facts {
        let FactKind::Foreign(r) = &f.what else {
            continue;
        };
        let set = by_country
            .entry(r.country.country().to_string())
            .or_default();
        for p in &r.periods {
            if p.kind == PeriodKind::Residence {
                continue;
            }
            set.extend(months_between(p.from, p.to.min(last)));
        }
    }
    for p in postings {
        if p.receiving.country() != "CN" {
            by_country
                .entry(p.receiving.country().to_string())
                .or_default();
        }
    }
    let foreign = by_country
        .iter()
        .map(|(c, ms)| {
            (
                c.clone(),
                ForeignMonths {
                    months: ms.len() as u32,
                },
            )
        })
        .collect();
    (foreign, coordination(params, &by_country))
}

/// Totalization (883/2004 art. 6, 52, 57) for every agreement that aggregates and binds two or
/// more of the countries the worker has periods in.
fn coordination(
    params: &Params<'_>,
    by_country: &BTreeMap<String, BTreeSet<Month>>,
) -> Vec<Coordination> {
    let mut out = Vec::new();
    for a in params.agreements().iter().filter(|a| a.totalization) {
        let members: Vec<(&String, &BTreeSet<Month>)> = by_country
            .iter()
            .filter(|(c, ms)| !ms.is_empty() && a.parties.contains(c))
            .collect();
        if members.len() < 2 {
            continue;
        }
        let all: BTreeSet<Month> = members
            .iter()
            .flat_map(|(_, ms)| ms.iter().copied())
            .collect();
        let total = all.len() as u32;
        let minimum = a.minimum_pro_rata_months.unwrap_or(0);
        // A country under the minimum pays nothing; its months stay in the total (the
        // theoretical amount of the others) but leave the pro-rata denominator.
        let pays = |n: u32| n >= minimum;
        let denominator: u32 = total
            - members
                .iter()
                .filter(|(_, ms)| !pays(ms.len() as u32))
                .map(|(_, ms)| ms.len() as u32)
                .sum::<u32>();
        for (c, ms) in &members {
            let own = ms.len() as u32;
            let share = if pays(own) && denominator > 0 {
                let millionths = (u64::from(own) * 1_000_000 * 2 + u64::from(denominator))
                    / (2 * u64::from(denominator));
                format!("{}.{:06}", millionths / 1_000_000, millionths % 1_000_000)
            } else {
                "0.000000".to_string()
            };
            out.push(Coordination {
                agreement: a.agreement.clone(),
                country: (*c).clone(),
                own_months: own,
                total_months: total,
                pro_rata_denominator: denominator,
                pays: pays(own),
                pro_rata_share: share,
            });
        }
    }
    out
}
