//! Field-level validation of an event against the catalogue (docs/events.md): everything that can be
//! decided from the event and the entry's stamp alone. Checks that need the ledger's state
//! (keys, persons, duplicates) are in [`crate::state`].

use std::collections::BTreeSet;

use crate::event::*;
use crate::ids::check_text;
use crate::limits::{
    FIRST_CONTRIBUTION_MONTH, MAX_LIST_ITEMS, MAX_PARAMETERS, MAX_SIGNED_AHEAD_SECONDS,
};
use crate::money::Money;
use crate::params::check_parameter;
use crate::refusal::Refusal;
use crate::time::{Date, Instant, Month};

fn invalid(msg: impl Into<String>) -> Refusal {
    Refusal::InvalidField(msg.into())
}

fn non_negative(field: &str, m: Money) -> Result<(), Refusal> {
    if m.is_negative() {
        return Err(Refusal::NegativeAmount(format!(
            "{field} is negative ({m}); amounts and bases must be ≥ 0"
        )));
    }
    Ok(())
}

fn text(field: &str, s: &str) -> Result<(), Refusal> {
    check_text(field, s).map_err(|e| invalid(e.0))
}

fn first_contribution_month() -> Month {
    Month::new(FIRST_CONTRIBUTION_MONTH.0, FIRST_CONTRIBUTION_MONTH.1).expect("valid constant")
}

/// A contribution period must lie between 1951-01 and the month of the entry's stamp.
fn contribution_period(field: &str, period: Month, stamp: Instant) -> Result<(), Refusal> {
    if period < first_contribution_month() {
        return Err(Refusal::TooEarly(format!(
            "{field} {period} is before {}, the first month of the contribution record",
            first_contribution_month()
        )));
    }
    let now = stamp.local_date().month();
    if period > now {
        return Err(Refusal::InFuture(format!(
            "{field} {period} is after the current month {now}"
        )));
    }
    Ok(())
}

fn not_after_stamp(field: &str, at: Instant, stamp: Instant) -> Result<(), Refusal> {
    if at.unix_nanos() > stamp.unix_nanos() {
        return Err(Refusal::InFuture(format!(
            "{field} {at} is after the ledger clock ({stamp})"
        )));
    }
    Ok(())
}

fn date_not_after_stamp(field: &str, d: Date, stamp: Instant) -> Result<(), Refusal> {
    // Compared with the stamp's date in UTC+14, the earliest date anywhere could already be d.
    // Past the end of the calendar (a stamp in the last hours of 9999) no date is in the future.
    let latest_today = stamp.plus_seconds(14 * 3600);
    let Ok(today) = Date::from_days_since_epoch(latest_today.unix_seconds().div_euclid(86_400))
    else {
        return Ok(());
    };
    if d > today {
        return Err(Refusal::InFuture(format!(
            "{field} {d} is after today ({})",
            stamp.local_date()
        )));
    }
    Ok(())
}

fn ordered<T: PartialOrd + std::fmt::Display>(
    what: &str,
    from: (&str, T),
    to: (&str, T),
) -> Result<(), Refusal> {
    if to.1 < from.1 {
        return Err(Refusal::ImpossiblePeriod(format!(
            "{what}: {} {} is before {} {}",
            to.0, to.1, from.0, from.1
        )));
    }
    Ok(())
}

fn list_size(field: &str, n: usize) -> Result<(), Refusal> {
    if n > MAX_LIST_ITEMS {
        return Err(Refusal::TooLarge(format!(
            "{field} has {n} items, over the limit of {MAX_LIST_ITEMS}"
        )));
    }
    Ok(())
}

/// Checks a body against the catalogue's field rules at the entry's `stamp`.
pub fn check_body(body: &EventBody, stamp: Instant) -> Result<(), Refusal> {
    // In nanoseconds: 300.5 s ahead is more than five minutes.
    if body.signed_at.unix_nanos()
        > stamp.unix_nanos() + i128::from(MAX_SIGNED_AHEAD_SECONDS) * 1_000_000_000
    {
        return Err(Refusal::SignedInFuture {
            signed_at: body.signed_at.to_string(),
            now: stamp.to_string(),
        });
    }
    check_kind(&body.kind, stamp)
}

/// The field rules of one kind (also applied to a correction's replacement).
pub fn check_kind(kind: &EventKind, stamp: Instant) -> Result<(), Refusal> {
    match kind {
        EventKind::KeyRegistered(e) => check_key_registered(e),
        EventKind::KeyRevoked(e) => text("reason", &e.reason),
        EventKind::PersonRegistered(e) => check_person_registered(e, stamp),
        EventKind::HukouChanged(e) => check_hukou_changed(e),
        EventKind::ContractRegistered(e) => check_contract_registered(e),
        EventKind::ContractEnded(e) => text("reason", &e.reason),
        EventKind::ContributionsDeclared(e) => check_contributions_declared(e, stamp),
        EventKind::FlexibleContribution(e) => check_flexible_contribution(e, stamp),
        EventKind::PlatformOrders(e) => check_platform_orders(e, stamp),
        EventKind::InjuryOccurred(e) => check_injury_occurred(e, stamp),
        EventKind::CoverageCertificateIssued(e) => check_coverage_certificate_issued(e),
        EventKind::WorkPermitLinked(e) => ordered(
            "permit",
            ("valid_from", e.valid_from),
            ("valid_to", e.valid_to),
        ),
        EventKind::TransferRequested(e) => check_transfer_requested(e, stamp),
        EventKind::TransferCompleted(e) => {
            non_negative("individual_account", e.individual_account)?;
            non_negative("pooled_fund", e.pooled_fund)
        }
        EventKind::ForeignPeriodsReported(e) => check_foreign_periods_reported(e, stamp),
        EventKind::Correction(e) => check_correction(e, stamp),
        EventKind::ParametersPublished(e) => check_parameters_published(e),
        EventKind::LedgerAct(e) => check_act(e),
    }
}

fn check_key_registered(e: &KeyRegistered) -> Result<(), Refusal> {
    if e.role == Role::Agency {
        return Err(Refusal::WrongRole(
            "agency keys come from the genesis, or from a ledger_act \
             `register-agency-key` (docs/events.md), not from key_registered"
                .into(),
        ));
    }
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&e.public_key.0).map_err(|_| {
        invalid(format!(
            "public_key {} is not an ed25519 point",
            e.public_key
        ))
    })?;
    if vk.is_weak() {
        return Err(Refusal::WeakKey(e.public_key.to_hex()));
    }
    Ok(())
}

fn check_person_registered(e: &PersonRegistered, stamp: Instant) -> Result<(), Refusal> {
    date_not_after_stamp("birth_date", e.birth_date, stamp)?;
    match (e.sex, e.female_category) {
        (Sex::Female, None) => {
            return Err(invalid("female_category (50 or 55) is required for women"))
        }
        (Sex::Male, Some(_)) => return Err(invalid("female_category applies to women only")),
        _ => {}
    }
    if e.nationality.is_province() {
        return Err(invalid(format!(
            "nationality {} must be a country code",
            e.nationality
        )));
    }
    if let Some(h) = &e.hukou {
        if e.nationality.as_str() != "CN" {
            return Err(invalid("hukou applies to Chinese nationals only"));
        }
        if !h.is_chinese_province() {
            return Err(invalid(format!(
                "hukou {h} must be a Chinese province, e.g. CN-51"
            )));
        }
    }
    Ok(())
}

fn check_hukou_changed(e: &HukouChanged) -> Result<(), Refusal> {
    if !e.hukou.is_chinese_province() {
        return Err(invalid(format!(
            "hukou {} must be a Chinese province",
            e.hukou
        )));
    }
    Ok(())
}

fn check_contract_registered(e: &ContractRegistered) -> Result<(), Refusal> {
    if let Some(end) = e.end {
        ordered("contract", ("start", e.start), ("end", end))?;
    }
    if e.host.is_some() && e.form != ContractForm::Posted {
        return Err(invalid(
            "host is for posted contracts (form \"posted\") only",
        ));
    }
    Ok(())
}

fn check_contributions_declared(e: &ContributionsDeclared, stamp: Instant) -> Result<(), Refusal> {
    contribution_period("period", e.period, stamp)?;
    let mut seen = BTreeSet::new();
    for (i, l) in e.lines.iter().enumerate() {
        non_negative(&format!("lines[{i}]: base"), l.base)?;
        non_negative(&format!("lines[{i}]: employer_amount"), l.employer_amount)?;
        non_negative(&format!("lines[{i}]: employee_amount"), l.employee_amount)?;
        if !seen.insert((&l.worker, l.scheme)) {
            return Err(Refusal::DuplicateDeclaration(format!(
                "lines[{i}]: worker {} and scheme {} appear twice in this declaration",
                l.worker,
                l.scheme.as_str()
            )));
        }
    }
    Ok(())
}

fn check_flexible_contribution(e: &FlexibleContribution, stamp: Instant) -> Result<(), Refusal> {
    contribution_period("period", e.period, stamp)?;
    if !matches!(e.scheme, Scheme::Pension | Scheme::Medical) {
        return Err(invalid(
            "flexible workers contribute to pension or medical only",
        ));
    }
    non_negative("base", e.base)?;
    non_negative("amount", e.amount)
}

fn check_platform_orders(e: &PlatformOrders, stamp: Instant) -> Result<(), Refusal> {
    date_not_after_stamp("date", e.date, stamp)?;
    let mut seen = BTreeSet::new();
    for (i, l) in e.lines.iter().enumerate() {
        non_negative(&format!("lines[{i}]: premium"), l.premium)?;
        if l.completed_at < l.accepted_at {
            return Err(Refusal::ImpossiblePeriod(format!(
                "lines[{i}]: completed_at {} is before accepted_at {}",
                l.completed_at, l.accepted_at
            )));
        }
        not_after_stamp(&format!("lines[{i}]: completed_at"), l.completed_at, stamp)?;
        if !seen.insert(&l.order) {
            return Err(invalid(format!(
                "lines[{i}]: order {} appears twice",
                l.order
            )));
        }
    }
    Ok(())
}

fn check_injury_occurred(e: &InjuryOccurred, stamp: Instant) -> Result<(), Refusal> {
    not_after_stamp("at", e.at, stamp)?;
    if e.employer.is_some() == e.platform.is_some() {
        return Err(invalid("name exactly one of employer or platform"));
    }
    if e.order.is_some() && e.platform.is_none() {
        return Err(invalid("order goes with platform"));
    }
    text("description", &e.description)
}

fn check_coverage_certificate_issued(e: &CoverageCertificateIssued) -> Result<(), Refusal> {
    ordered("certificate", ("from", e.from), ("to", e.to))?;
    let parties = agreement_parties(&e.agreement)?;
    for (field, j) in [("sending", &e.sending), ("receiving", &e.receiving)] {
        if !parties.iter().any(|p| j.country() == p) {
            return Err(invalid(format!(
                "{field} {j} is not a party to agreement {}",
                e.agreement
            )));
        }
    }
    if e.sending.country() == e.receiving.country() {
        return Err(invalid(
            "sending and receiving must be in different countries",
        ));
    }
    if e.branches.is_empty() {
        return Err(invalid("branches: name at least one branch"));
    }
    list_size("branches", e.branches.len())?;
    let unique: BTreeSet<_> = e.branches.iter().collect();
    if unique.len() != e.branches.len() {
        return Err(invalid("branches: a branch is listed twice"));
    }
    Ok(())
}

fn check_transfer_requested(e: &TransferRequested, stamp: Instant) -> Result<(), Refusal> {
    for (f, j) in [("from", &e.from), ("to", &e.to)] {
        if !j.is_chinese_province() {
            return Err(invalid(format!("{f} {j} must be a Chinese province")));
        }
    }
    if e.from == e.to {
        return Err(invalid("from and to are the same province"));
    }
    contribution_period("requested", e.requested, stamp)
}

fn check_foreign_periods_reported(
    e: &ForeignPeriodsReported,
    stamp: Instant,
) -> Result<(), Refusal> {
    if e.country.is_province() {
        return Err(invalid(format!(
            "country {} must be a country code",
            e.country
        )));
    }
    if e.periods.is_empty() {
        return Err(invalid("periods: report at least one period"));
    }
    list_size("periods", e.periods.len())?;
    for (i, p) in e.periods.iter().enumerate() {
        ordered(&format!("period {i}"), ("from", p.from), ("to", p.to))?;
        let now = stamp.local_date().month();
        if p.to > now {
            return Err(Refusal::InFuture(format!(
                "period {i}: to {} is after the current month {now}",
                p.to
            )));
        }
    }
    Ok(())
}

fn check_correction(e: &Correction, stamp: Instant) -> Result<(), Refusal> {
    text("reason", &e.reason)?;
    match (e.action, &e.replacement) {
        (CorrectionAction::Void, Some(_)) => {
            Err(invalid("a void correction carries no replacement"))
        }
        (CorrectionAction::Replace, None) => {
            Err(invalid("a replace correction needs a replacement"))
        }
        (CorrectionAction::Replace, Some(Replacement::Line(_))) if e.line.is_none() => Err(
            invalid("a replacement line needs the line it replaces (line)"),
        ),
        (CorrectionAction::Replace, Some(Replacement::Event(_))) if e.line.is_some() => Err(
            invalid("with line, the replacement is a line, not an event"),
        ),
        (CorrectionAction::Replace, Some(Replacement::Event(k))) => check_kind(k, stamp),
        (CorrectionAction::Replace, Some(Replacement::Line(l))) => check_line(l, stamp),
        _ => Ok(()),
    }
}

fn check_parameters_published(e: &ParametersPublished) -> Result<(), Refusal> {
    if e.parameters.is_empty() {
        return Err(invalid("parameters_published names no parameter"));
    }
    if e.parameters.len() > MAX_PARAMETERS {
        return Err(Refusal::TooLarge(format!(
            "over {MAX_PARAMETERS} parameters"
        )));
    }
    for (name, v) in &e.parameters {
        check_parameter(name, v).map_err(invalid)?;
    }
    Ok(())
}

fn check_act(e: &LedgerAct) -> Result<(), Refusal> {
    use crate::act::{check_nonce, Act};
    check_nonce(&e.nonce).map_err(invalid)?;
    if let Act::RegisterAgencyKey { public_key, .. } = &e.act {
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&public_key.0)
            .map_err(|_| invalid(format!("agency key {public_key} is not an ed25519 point")))?;
        if vk.is_weak() {
            return Err(Refusal::WeakKey(public_key.to_hex()));
        }
    }
    Ok(())
}

fn check_line(line: &Line, stamp: Instant) -> Result<(), Refusal> {
    match line {
        Line::Contribution(l) => {
            non_negative("base", l.base)?;
            non_negative("employer_amount", l.employer_amount)?;
            non_negative("employee_amount", l.employee_amount)
        }
        Line::Order(l) => {
            non_negative("premium", l.premium)?;
            if l.completed_at < l.accepted_at {
                return Err(Refusal::ImpossiblePeriod(
                    "completed_at is before accepted_at".into(),
                ));
            }
            not_after_stamp("completed_at", l.completed_at, stamp)
        }
    }
}

/// The two country codes of an agreement such as `CN-DE`.
pub fn agreement_parties(agreement: &str) -> Result<[String; 2], Refusal> {
    let bad = || {
        invalid(format!(
            "agreement {agreement:?} must name two countries, e.g. \"CN-DE\""
        ))
    };
    let (a, b) = agreement.split_once('-').ok_or_else(bad)?;
    let ok = |c: &str| c.len() == 2 && c.bytes().all(|x| x.is_ascii_uppercase());
    if !ok(a) || !ok(b) || a == b {
        return Err(bad());
    }
    Ok([a.to_string(), b.to_string()])
}
