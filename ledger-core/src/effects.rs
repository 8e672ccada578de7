//! What each kind of event checks in the ledger state and writes there (keys, persons,
//! contracts, transfers, duplicate guards, voids, nonces). One function per kind, each on the
//! event's own [`Overlay`]: the state machine merges it only when the event is appended, so a
//! refusal decided after a write still leaves nothing behind.

use crate::authority::{Act, Authority};
use crate::event::*;
use crate::fact::FactKind;
use crate::ids::WorkerId;
use crate::kv::{get_json, get_u64, Overlay, StateRead, StoreFault};
use crate::records::{self, ContractRecord, KeyRecord, PersonRecord, TransferRecord};
use crate::refusal::Refusal;
use crate::signers::{authorize, About};
use crate::time::Instant;
use crate::{projection, rules, schema};

/// A decision: `Ok(Err(refusal))` refuses the event, `Err` is a store fault.
type Decided = Result<Result<(), Refusal>, StoreFault>;

/// Returns the refusal, if `$r` is one.
macro_rules! refuse_if {
    ($r:expr) => {
        if let Err(refusal) = $r {
            return Ok(Err(refusal));
        }
    };
}

fn refuse(r: Refusal) -> Decided {
    Ok(Err(r))
}

/// The state checks and writes of one admitted kind (its signers already passed
/// [`authorize`] with what needs no record). One arm per kind.
pub(crate) fn apply(
    st: &mut Overlay<'_>,
    kind: &EventKind,
    signers: &[(PublicKeyBytes, KeyRecord)],
    index: u64,
    stamp: Instant,
) -> Decided {
    use EventKind as K;
    match kind {
        K::LedgerAct(a) => ledger_act(st, kind, a, signers, index),
        K::KeyRegistered(e) => key_registered(st, e, index),
        K::KeyRevoked(e) => key_revoked(st, kind, e, signers, index),
        K::PersonRegistered(e) => person_registered(st, e, index),
        K::ContractRegistered(e) => contract_registered(st, e, index),
        K::ContractEnded(e) => contract_ended(st, kind, e, signers, index),
        K::ContributionsDeclared(e) => contributions_declared(st, e, index),
        K::FlexibleContribution(e) => flexible_contribution(st, e, index),
        K::PlatformOrders(e) => {
            let workers = e.lines.iter().map(|l| &l.worker);
            need_persons(st, workers)
        }
        K::TransferRequested(e) => transfer_requested(st, e, index),
        K::TransferCompleted(e) => transfer_completed(st, kind, e, signers, index, stamp),
        K::HukouChanged(e) => need_person(st, &e.worker),
        K::InjuryOccurred(e) => need_person(st, &e.worker),
        K::CoverageCertificateIssued(e) => need_person(st, &e.worker),
        K::WorkPermitLinked(e) => need_person(st, &e.worker),
        K::ForeignPeriodsReported(e) => need_person(st, &e.worker),
        K::ParametersPublished(_) => Ok(Ok(())),
        K::Correction(c) => correction(st, kind, c, signers, index),
    }
}

fn need_person(st: &dyn StateRead, worker: &WorkerId) -> Decided {
    Ok(match st.get(&schema::person(worker.as_str()))? {
        Some(_) => Ok(()),
        None => Err(Refusal::UnregisteredWorker(worker.to_string())),
    })
}

/// Every line's worker is registered (the refusal names the line).
fn need_persons<'a>(st: &dyn StateRead, workers: impl Iterator<Item = &'a WorkerId>) -> Decided {
    for (i, w) in workers.enumerate() {
        if st.get(&schema::person(w.as_str()))?.is_none() {
            return refuse(Refusal::UnregisteredWorker(format!("{w} (lines[{i}])")));
        }
    }
    Ok(Ok(()))
}

fn key_registered(st: &mut Overlay<'_>, e: &KeyRegistered, index: u64) -> Decided {
    if st.get(&schema::key(&e.public_key))?.is_some() {
        return refuse(Refusal::AlreadyExists(format!(
            "key {} is already registered",
            e.public_key
        )));
    }
    let rec = KeyRecord {
        role: e.role,
        jurisdiction: e.jurisdiction.clone(),
        subject: e.subject.to_string(),
        registered_at: index,
        revoked_at: None,
    };
    st.put_json(schema::key(&e.public_key), &rec);
    Ok(Ok(()))
}

fn key_revoked(
    st: &mut Overlay<'_>,
    kind: &EventKind,
    e: &KeyRevoked,
    signers: &[(PublicKeyBytes, KeyRecord)],
    index: u64,
) -> Decided {
    let Some(mut rec) = records::key_record(st, &e.public_key)? else {
        return refuse(Refusal::NotFound(format!(
            "key {} is not registered",
            e.public_key
        )));
    };
    refuse_if!(authorize(kind, signers, &About::Key(&rec)));
    if rec.revoked_at.is_some() {
        return refuse(Refusal::AlreadyVoided(format!(
            "key {} is already revoked",
            e.public_key
        )));
    }
    rec.revoked_at = Some(index);
    st.put_json(schema::key(&e.public_key), &rec);
    Ok(Ok(()))
}

fn person_registered(st: &mut Overlay<'_>, e: &PersonRegistered, index: u64) -> Decided {
    if st.get(&schema::person(e.worker.as_str()))?.is_some() {
        return refuse(Refusal::AlreadyExists(format!(
            "person {} is already registered",
            e.worker
        )));
    }
    let rec = PersonRecord {
        index,
        jurisdiction: e.jurisdiction.clone(),
    };
    st.put_json(schema::person(e.worker.as_str()), &rec);
    Ok(Ok(()))
}

fn contract_registered(st: &mut Overlay<'_>, e: &ContractRegistered, index: u64) -> Decided {
    refuse_if!(need_person(st, &e.worker)?);
    if st.get(&schema::contract(e.contract.as_str()))?.is_some() {
        return refuse(Refusal::AlreadyExists(format!(
            "contract {} is already registered",
            e.contract
        )));
    }
    let rec = ContractRecord {
        index,
        start: e.start,
        employer: e.employer.to_string(),
        worker: e.worker.to_string(),
        jurisdiction: e.jurisdiction.clone(),
        ended_at: None,
    };
    st.put_json(schema::contract(e.contract.as_str()), &rec);
    Ok(Ok(()))
}

fn contract_ended(
    st: &mut Overlay<'_>,
    kind: &EventKind,
    e: &ContractEnded,
    signers: &[(PublicKeyBytes, KeyRecord)],
    index: u64,
) -> Decided {
    let Some(mut c) = records::contract_record(st, e.contract.as_str())? else {
        return refuse(Refusal::NotFound(format!(
            "contract {} is not registered",
            e.contract
        )));
    };
    refuse_if!(authorize(kind, signers, &About::Contract(&c)));
    if c.ended_at.is_some() {
        return refuse(Refusal::AlreadyExists(format!(
            "contract {} has already ended",
            e.contract
        )));
    }
    if e.end < c.start {
        return refuse(Refusal::ImpossiblePeriod(format!(
            "contract {} cannot end on {}, before it started on {}",
            e.contract, e.end, c.start
        )));
    }
    c.ended_at = Some(index);
    st.put_json(schema::contract(e.contract.as_str()), &c);
    Ok(Ok(()))
}

fn contributions_declared(st: &mut Overlay<'_>, e: &ContributionsDeclared, index: u64) -> Decided {
    let period = e.period.to_string();
    let mut guards = Vec::with_capacity(e.lines.len());
    for (i, l) in e.lines.iter().enumerate() {
        if st.get(&schema::person(l.worker.as_str()))?.is_none() {
            return refuse(Refusal::UnregisteredWorker(format!(
                "{} (lines[{i}])",
                l.worker
            )));
        }
        let k = schema::declaration(
            e.employer.as_str(),
            l.worker.as_str(),
            &e.jurisdiction,
            &period,
            l.scheme,
        );
        let guarded = st.get(&k)?.is_some();
        if !e.back_pay && guarded {
            return refuse(Refusal::DuplicateDeclaration(format!(
                "lines[{i}]: {} already declared {} for worker {} in {} for {period}; \
                 use a correction to change it, or back_pay for a late payment",
                e.employer,
                l.scheme.as_str(),
                l.worker,
                e.jurisdiction
            )));
        }
        // The guard names the declaration that holds the month; a back-pay declaration
        // never takes it over, so voiding the back pay cannot free the original's month.
        if !guarded {
            guards.push(k);
        }
    }
    for k in guards {
        st.put(k, index.to_be_bytes().to_vec());
    }
    Ok(Ok(()))
}

fn flexible_contribution(st: &mut Overlay<'_>, e: &FlexibleContribution, index: u64) -> Decided {
    refuse_if!(need_person(st, &e.worker)?);
    let k = schema::flexible(
        e.worker.as_str(),
        &e.jurisdiction,
        &e.period.to_string(),
        e.scheme,
    );
    if st.get(&k)?.is_some() {
        return refuse(Refusal::DuplicateDeclaration(format!(
            "worker {} already contributed {} in {} for {}; use a correction to change it",
            e.worker,
            e.scheme.as_str(),
            e.jurisdiction,
            e.period
        )));
    }
    st.put(k, index.to_be_bytes().to_vec());
    Ok(Ok(()))
}

fn transfer_requested(st: &mut Overlay<'_>, e: &TransferRequested, index: u64) -> Decided {
    refuse_if!(need_person(st, &e.worker)?);
    if st.get(&schema::transfer(e.transfer.as_str()))?.is_some() {
        return refuse(Refusal::AlreadyExists(format!(
            "transfer {} already exists",
            e.transfer
        )));
    }
    let rec = TransferRecord {
        index,
        worker: e.worker.to_string(),
        from: e.from.clone(),
        to: e.to.clone(),
        completed_at: None,
    };
    st.put_json(schema::transfer(e.transfer.as_str()), &rec);
    Ok(Ok(()))
}

fn transfer_completed(
    st: &mut Overlay<'_>,
    kind: &EventKind,
    e: &TransferCompleted,
    signers: &[(PublicKeyBytes, KeyRecord)],
    index: u64,
    stamp: Instant,
) -> Decided {
    let Some(mut t) = records::transfer_record(st, e.transfer.as_str())? else {
        return refuse(Refusal::NotFound(format!(
            "transfer {} was never requested",
            e.transfer
        )));
    };
    refuse_if!(authorize(kind, signers, &About::Transfer(&t)));
    if t.completed_at.is_some() {
        return refuse(Refusal::AlreadyExists(format!(
            "transfer {} is already completed",
            e.transfer
        )));
    }
    refuse_if!(check_transfer_amounts(st, &t, e, stamp)?);
    t.completed_at = Some(index);
    st.put_json(schema::transfer(e.transfer.as_str()), &t);
    Ok(Ok(()))
}

/// A `transfer_completed` must carry exactly what the rules compute at that point (docs/rules.md §1).
fn check_transfer_amounts(
    st: &dyn StateRead,
    t: &TransferRecord,
    e: &TransferCompleted,
    stamp: Instant,
) -> Result<Result<(), Refusal>, StoreFault> {
    let facts = projection::worker_facts(st, &t.worker)?;
    let requested = facts.iter().find_map(|f| match &f.what {
        FactKind::TransferRequested(r) if r.transfer == e.transfer => Some(r.requested),
        _ => None,
    });
    let Some(requested) = requested else {
        return Ok(Err(Refusal::NotFound(format!(
            "transfer {} has no request in force (was it voided?)",
            e.transfer
        ))));
    };
    let stored = projection::StoredParams::read(st)?;
    let params = stored.params();
    let Ok(w) = rules::Worker::new(&t.worker, &facts) else {
        return Ok(Err(Refusal::UnregisteredWorker(t.worker.clone())));
    };
    let (account, pooled) =
        rules::pension::transfer_amounts(&w, &params, &e.transfer, stamp.local_date(), requested);
    if (account, pooled) != (e.individual_account, e.pooled_fund) {
        return Ok(Err(Refusal::AmountMismatch(format!(
            "transfer {} from {} to {} carries individual_account {account} and pooled_fund \
             {pooled} (the whole account the relation holds, and the pooled-fund rate of every \
             monthly base it carries); the event says {} and {}",
            e.transfer, t.from, t.to, e.individual_account, e.pooled_fund
        ))));
    }
    Ok(Ok(()))
}

/// A ledger act: the authority rule, a fresh nonce, then the act's own state change (a
/// membership act changes no ledger state: the leader carries it out once it is recorded).
fn ledger_act(
    st: &mut Overlay<'_>,
    kind: &EventKind,
    a: &LedgerAct,
    signers: &[(PublicKeyBytes, KeyRecord)],
    index: u64,
) -> Decided {
    let authority = Authority::read(st)?;
    refuse_if!(authorize(kind, signers, &About::Authority(&authority)));
    let nonce_key = schema::act_nonce(&a.nonce);
    if let Some(used) = get_u64(st, &nonce_key)? {
        return refuse(Refusal::AlreadyExists(format!(
            "nonce {:?} was already used by the ledger act at index {used}; sign the act again \
             with a new nonce",
            a.nonce
        )));
    }
    refuse_if!(match &a.act {
        Act::RegisterAgencyKey {
            jurisdiction,
            public_key,
        } => register_agency_key(st, &authority, jurisdiction, public_key, index)?,
        Act::RevokeAgencyKey {
            jurisdiction,
            public_key,
        } => revoke_agency_key(st, jurisdiction, public_key, index)?,
        Act::AddLearner { .. } | Act::Promote(_) | Act::Remove(_) => Ok(()),
    });
    st.put(nonce_key, index.to_be_bytes().to_vec());
    Ok(Ok(()))
}

fn register_agency_key(
    st: &mut Overlay<'_>,
    authority: &Authority,
    jurisdiction: &crate::jurisdiction::Jurisdiction,
    public_key: &PublicKeyBytes,
    index: u64,
) -> Decided {
    if !authority.jurisdictions.contains(jurisdiction) {
        return refuse(Refusal::NotFound(format!(
            "{jurisdiction} is not a jurisdiction of this ledger's genesis"
        )));
    }
    if st.get(&schema::key(public_key))?.is_some() {
        return refuse(Refusal::AlreadyExists(format!(
            "key {public_key} is already registered"
        )));
    }
    let rec = KeyRecord {
        role: Role::Agency,
        jurisdiction: jurisdiction.clone(),
        subject: jurisdiction.to_string(),
        registered_at: index,
        revoked_at: None,
    };
    st.put_json(schema::key(public_key), &rec);
    Ok(Ok(()))
}

fn revoke_agency_key(
    st: &mut Overlay<'_>,
    jurisdiction: &crate::jurisdiction::Jurisdiction,
    public_key: &PublicKeyBytes,
    index: u64,
) -> Decided {
    let found = records::key_record(st, public_key)?;
    let Some(mut rec) = found.filter(|r| r.role == Role::Agency) else {
        return refuse(Refusal::NotFound(format!(
            "{public_key} is not an agency key of this ledger"
        )));
    };
    if &rec.jurisdiction != jurisdiction {
        return refuse(Refusal::WrongJurisdiction(format!(
            "agency key {public_key} belongs to {}, not to {jurisdiction}",
            rec.jurisdiction
        )));
    }
    if rec.revoked_at.is_some() {
        return refuse(Refusal::AlreadyVoided(format!(
            "key {public_key} is already revoked"
        )));
    }
    rec.revoked_at = Some(index);
    st.put_json(schema::key(public_key), &rec);
    Ok(Ok(()))
}

/// A correction: its target must exist, be correctable and not be voided, and its signers must
/// be the target's authors or its jurisdiction's agency; then the line or the whole event.
fn correction(
    st: &mut Overlay<'_>,
    kind: &EventKind,
    c: &Correction,
    signers: &[(PublicKeyBytes, KeyRecord)],
    index: u64,
) -> Decided {
    let Some(target_index) = records::index_of(st, &c.target)? else {
        return refuse(Refusal::NotFound(format!(
            "correction target {} is not in the ledger",
            c.target
        )));
    };
    let target = records::record(st, target_index)?;
    let body = target.body()?;
    let authors: Vec<PublicKeyBytes> = target
        .envelope
        .signatures
        .iter()
        .map(|s| s.public_key)
        .collect();
    let about = About::Target {
        signers: &authors,
        kind: &body.kind,
    };
    refuse_if!(authorize(kind, signers, &about));
    refuse_if!(correctable(&body.kind));
    if st.get(&schema::voided(&c.target, None))?.is_some() {
        return refuse(Refusal::AlreadyVoided(format!(
            "event {} is already voided",
            c.target
        )));
    }
    match c.line {
        Some(line) => correct_line(st, c, line, target_index, &body.kind, index),
        None => correct_event(st, c, target_index, &body.kind, index),
    }
}

/// Corrections, keys and ledger acts are not corrected; each names what to do instead.
fn correctable(kind: &EventKind) -> Result<(), Refusal> {
    let instead = match kind {
        EventKind::Correction(_) => "; correct the original event again",
        EventKind::LedgerAct(_) => "; a new ledger act undoes it",
        EventKind::KeyRegistered(_) | EventKind::KeyRevoked(_) => "; revoke the key instead",
        _ => return Ok(()),
    };
    Err(Refusal::InvalidField(format!(
        "a {} cannot be corrected{instead}",
        kind.type_name()
    )))
}

/// Voids or replaces one line of a batch event.
fn correct_line(
    st: &mut Overlay<'_>,
    c: &Correction,
    line: u32,
    target_index: u64,
    t_kind: &EventKind,
    index: u64,
) -> Decided {
    let lines = t_kind.lines();
    let Some(old) = lines.get(line as usize) else {
        return refuse(Refusal::InvalidField(format!(
            "line {line} does not exist: event {} has {} lines (numbered from 0)",
            c.target,
            lines.len()
        )));
    };
    if st.get(&schema::voided(&c.target, Some(line)))?.is_some() {
        return refuse(Refusal::AlreadyVoided(format!(
            "line {line} of event {} is already voided",
            c.target
        )));
    }
    if let Some(Replacement::Line(new)) = &c.replacement {
        let same = match (old, new) {
            (Line::Contribution(a), Line::Contribution(b)) => {
                a.worker == b.worker && a.scheme == b.scheme
            }
            (Line::Order(a), Line::Order(b)) => a.worker == b.worker && a.order == b.order,
            _ => false,
        };
        if !same {
            return refuse(Refusal::InvalidField(
                "a replacement line keeps the line's kind, worker and scheme (or order); to move a contribution to another worker, void the line and declare it anew".into(),
            ));
        }
    }
    if c.action == CorrectionAction::Void {
        st.put(
            schema::voided(&c.target, Some(line)),
            index.to_be_bytes().to_vec(),
        );
        if let (EventKind::ContributionsDeclared(d), Line::Contribution(l)) = (t_kind, old) {
            release_declaration(st, d, l, target_index)?;
        }
    }
    Ok(Ok(()))
}

/// Replaces or voids a whole event.
fn correct_event(
    st: &mut Overlay<'_>,
    c: &Correction,
    target_index: u64,
    t_kind: &EventKind,
    index: u64,
) -> Decided {
    if let Some(Replacement::Event(new)) = &c.replacement {
        refuse_if!(replace_event(st, t_kind, new)?);
    }
    if c.action == CorrectionAction::Void {
        refuse_if!(void_event(st, c, target_index, t_kind, index)?);
    }
    Ok(Ok(()))
}

/// A whole-event replacement: same kind and identity; the records it names follow it.
fn replace_event(st: &mut Overlay<'_>, old: &EventKind, new: &EventKind) -> Decided {
    if new.type_name() != old.type_name() {
        return refuse(Refusal::InvalidField(format!(
            "the replacement is a {} but the target is a {}",
            new.type_name(),
            old.type_name()
        )));
    }
    if let Err(why) = same_identity(old, new) {
        return refuse(Refusal::InvalidField(why));
    }
    match new {
        EventKind::ContractRegistered(n) => {
            let key = schema::contract(n.contract.as_str());
            if let Some(mut rec) = get_json::<ContractRecord>(st, &key)? {
                rec.start = n.start;
                rec.employer = n.employer.to_string();
                rec.jurisdiction = n.jurisdiction.clone();
                st.put_json(key, &rec);
            }
        }
        EventKind::TransferRequested(n) => {
            let key = schema::transfer(n.transfer.as_str());
            if let Some(mut rec) = get_json::<TransferRecord>(st, &key)? {
                if rec.completed_at.is_some() {
                    return refuse(Refusal::InvalidField(format!(
                        "transfer {} is completed; void its completion before changing the request",
                        n.transfer
                    )));
                }
                rec.from = n.from.clone();
                rec.to = n.to.clone();
                st.put_json(key, &rec);
            }
        }
        _ => {}
    }
    Ok(Ok(()))
}

/// Voids a whole event: its transfer may complete again, its declaration guards are freed.
fn void_event(
    st: &mut Overlay<'_>,
    c: &Correction,
    target_index: u64,
    t_kind: &EventKind,
    index: u64,
) -> Decided {
    match t_kind {
        EventKind::TransferCompleted(t) => {
            // The transfer may complete again, with the right amounts.
            let key = schema::transfer(t.transfer.as_str());
            if let Some(mut rec) = get_json::<TransferRecord>(st, &key)? {
                rec.completed_at = None;
                st.put_json(key, &rec);
            }
        }
        EventKind::TransferRequested(t)
            if records::transfer_record(st, t.transfer.as_str())?
                .is_some_and(|r| r.completed_at.is_some()) =>
        {
            return refuse(Refusal::InvalidField(format!(
                "transfer {} is completed; void its completion first",
                t.transfer
            )));
        }
        _ => {}
    }
    st.put(
        schema::voided(&c.target, None),
        index.to_be_bytes().to_vec(),
    );
    if let EventKind::ContributionsDeclared(d) = t_kind {
        for l in &d.lines {
            release_declaration(st, d, l, target_index)?;
        }
    }
    Ok(Ok(()))
}

/// Frees the duplicate guard of a voided declaration line, if that declaration holds it (the
/// guard may belong to a later declaration of the month, made after an earlier void).
fn release_declaration(
    st: &mut Overlay<'_>,
    declaration: &ContributionsDeclared,
    line: &ContributionLine,
    voided_index: u64,
) -> Result<(), StoreFault> {
    let key = schema::declaration(
        declaration.employer.as_str(),
        line.worker.as_str(),
        &declaration.jurisdiction,
        &declaration.period.to_string(),
        line.scheme,
    );
    if st.get(&key)?.as_deref() == Some(&voided_index.to_be_bytes()[..]) {
        st.delete(key);
    }
    Ok(())
}

/// A whole-event replacement may change what an event says, not whom or what it is about: the
/// same workers (in the same line positions) and the same contract, transfer, employer, place
/// and period. Anything else is a void and a new event, so every guard and index stays true.
fn same_identity(old: &EventKind, new: &EventKind) -> Result<(), String> {
    if old.workers() != new.workers() {
        return Err("a replacement keeps the event's workers (and their line positions); void the event and submit a new one instead".into());
    }
    let same =
        match (old, new) {
            (EventKind::ContractRegistered(a), EventKind::ContractRegistered(b)) => {
                a.contract == b.contract
            }
            (EventKind::ContractEnded(a), EventKind::ContractEnded(b)) => a.contract == b.contract,
            (EventKind::TransferRequested(a), EventKind::TransferRequested(b)) => {
                a.transfer == b.transfer
            }
            (EventKind::TransferCompleted(_), _) => return Err(
                "a transfer_completed cannot be replaced; void it and complete the transfer again"
                    .into(),
            ),
            (EventKind::ContributionsDeclared(a), EventKind::ContributionsDeclared(b)) => {
                a.employer == b.employer
                    && a.jurisdiction == b.jurisdiction
                    && a.period == b.period
                    && a.back_pay == b.back_pay
                    && a.lines
                        .iter()
                        .map(|l| l.scheme)
                        .eq(b.lines.iter().map(|l| l.scheme))
            }
            (EventKind::FlexibleContribution(a), EventKind::FlexibleContribution(b)) => {
                a.jurisdiction == b.jurisdiction && a.period == b.period && a.scheme == b.scheme
            }
            (EventKind::PlatformOrders(a), EventKind::PlatformOrders(b)) => {
                a.platform == b.platform
                    && a.jurisdiction == b.jurisdiction
                    && a.lines
                        .iter()
                        .map(|l| &l.order)
                        .eq(b.lines.iter().map(|l| &l.order))
            }
            (EventKind::ParametersPublished(a), EventKind::ParametersPublished(b)) => {
                a.jurisdiction == b.jurisdiction
            }
            _ => true,
        };
    if same {
        Ok(())
    } else {
        Err(format!(
            "a replacement {} keeps the identity of the original (its contract, transfer, employer or platform, jurisdiction, period and line schemes or orders); void it and submit a new event to change those",
            new.type_name()
        ))
    }
}
