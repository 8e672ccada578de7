//! Who may sign what: the one signer policy of the ledger. [`signer_records`] looks up every
//! signer's key; [`authorize`] decides, per kind, whether those keys may sign the event. The
//! kinds whose rule depends on a stored record (the revoked key, the ended contract, the
//! completed transfer, the corrected event, the ledger's authority) are decided once the caller
//! has read it and passes it as [`About`]; a node's edge, which reads none, passes
//! [`About::Nothing`] and leaves them to apply.

use crate::authority::Authority;
use crate::envelope::VerifiedEvent;
use crate::event::*;
use crate::jurisdiction::Jurisdiction;
use crate::kv::{StateRead, StoreFault};
use crate::records::{self, ContractRecord, KeyRecord, TransferRecord};
use crate::refusal::Refusal;

/// The signers of an event with their key records, as the state knows them.
pub type Signers = Vec<(PublicKeyBytes, KeyRecord)>;

/// Looks up every signer's key: refuses an unknown or revoked one. Apply calls it for every
/// event, and a node's edge calls it (through [`precheck`]) before an event reaches consensus.
pub fn signer_records(
    view: &dyn StateRead,
    ev: &VerifiedEvent,
) -> Result<Result<Signers, Refusal>, StoreFault> {
    let mut signers = Vec::with_capacity(ev.envelope.signatures.len());
    for s in &ev.envelope.signatures {
        let Some(rec) = records::key_record(view, &s.public_key)? else {
            return Ok(Err(Refusal::UnknownKey(s.public_key.to_hex())));
        };
        if rec.revoked_at.is_some() {
            return Ok(Err(Refusal::RevokedKey(s.public_key.to_hex())));
        }
        signers.push((s.public_key, rec));
    }
    Ok(Ok(signers))
}

/// What the rule of some kinds needs from the state.
pub enum About<'a> {
    /// Nothing read: the kinds whose rule needs a record pass, to be decided when it is read.
    Nothing,
    /// The key a `key_revoked` revokes.
    Key(&'a KeyRecord),
    /// The contract a `contract_ended` ends.
    Contract(&'a ContractRecord),
    /// The transfer a `transfer_completed` completes.
    Transfer(&'a TransferRecord),
    /// The event a correction corrects: its signers and its kind.
    Target {
        signers: &'a [PublicKeyBytes],
        kind: &'a EventKind,
    },
    /// The ledger's authority, for a `ledger_act`.
    Authority(&'a Authority),
}

/// The role and jurisdiction rule of each kind, from the event, its signers' key records and,
/// for the kinds that need one, the stored record it is [`About`].
pub fn authorize(
    kind: &EventKind,
    signers: &[(PublicKeyBytes, KeyRecord)],
    about: &About<'_>,
) -> Result<(), Refusal> {
    use EventKind as K;
    match (kind, about) {
        (K::KeyRegistered(e), _) => need_agency(signers, &e.jurisdiction, "key_registered"),
        (K::PersonRegistered(e), _) => need_agency(signers, &e.jurisdiction, "person_registered"),
        // Any agency may record a hukou move (like person_registered): the hukou authority
        // is outside the insurance agencies, which only relay it.
        (K::HukouChanged(_), _) => need_any_agency(signers, "hukou_changed"),
        (K::ContractRegistered(e), _) => authorize_contract(e, signers),
        (K::ContributionsDeclared(e), _) => all_employer(
            signers,
            e.employer.as_str(),
            &e.jurisdiction,
            false,
            "contributions_declared",
        ),
        (K::FlexibleContribution(e), _) => authorize_flexible(e, signers),
        (K::PlatformOrders(e), _) => all_employer(
            signers,
            e.platform.as_str(),
            &e.jurisdiction,
            true,
            "platform_orders",
        ),
        (K::InjuryOccurred(e), _) => need_agency(signers, &e.jurisdiction, "injury_occurred"),
        (K::CoverageCertificateIssued(e), _) => need_agency(
            signers,
            &e.sending,
            "coverage_certificate_issued (by the agency of `sending`)",
        ),
        (K::WorkPermitLinked(e), _) => need_agency(signers, &e.jurisdiction, "work_permit_linked"),
        (K::TransferRequested(e), _) => need_agency(
            signers,
            &e.to,
            "transfer_requested (by the agency of the receiving province `to`)",
        ),
        (K::ForeignPeriodsReported(e), _) => need_agency(
            signers,
            &e.country,
            "foreign_periods_reported (by the agency of `country`)",
        ),
        (K::ParametersPublished(e), _) => {
            need_agency(signers, &e.jurisdiction, "parameters_published")
        }
        (K::KeyRevoked(_), About::Key(rec)) => {
            need_agency(signers, &rec.jurisdiction, "key_revoked")
        }
        (K::ContractEnded(_), About::Contract(c)) => authorize_contract_end(c, signers),
        (K::TransferCompleted(_), About::Transfer(t)) => need_agency(
            signers,
            &t.from,
            "transfer_completed (by the agency of the sending province)",
        ),
        (
            K::Correction(_),
            About::Target {
                signers: authors,
                kind,
            },
        ) => authorize_correction(authors, kind, signers),
        (K::LedgerAct(a), About::Authority(authority)) => authority.permits(&a.act, signers),
        // The record these kinds need is not read yet.
        (
            K::KeyRevoked(_)
            | K::ContractEnded(_)
            | K::TransferCompleted(_)
            | K::Correction(_)
            | K::LedgerAct(_),
            _,
        ) => Ok(()),
    }
}

/// Every signer is an employer (or platform) key of `employer` in `j`.
fn all_employer(
    signers: &[(PublicKeyBytes, KeyRecord)],
    employer: &str,
    j: &Jurisdiction,
    platform_only: bool,
    what: &str,
) -> Result<(), Refusal> {
    signers
        .iter()
        .try_for_each(|(pk, rec)| check_employer(pk, rec, employer, j, platform_only, what))
}

/// A contract is ended by its employer, or by the agency of its jurisdiction.
fn authorize_contract_end(
    c: &ContractRecord,
    signers: &[(PublicKeyBytes, KeyRecord)],
) -> Result<(), Refusal> {
    for (pk, rec) in signers {
        if rec.role == Role::Agency {
            need_agency(&[(*pk, rec.clone())], &c.jurisdiction, "contract_ended")?;
        } else {
            check_employer(
                pk,
                rec,
                &c.employer,
                &c.jurisdiction,
                false,
                "contract_ended",
            )?;
        }
    }
    Ok(())
}

/// Who may correct: a signer of the target, or the agency of the target's jurisdiction.
fn authorize_correction(
    authors: &[PublicKeyBytes],
    target: &EventKind,
    signers: &[(PublicKeyBytes, KeyRecord)],
) -> Result<(), Refusal> {
    let home = event_jurisdiction(target);
    for (pk, rec) in signers {
        let is_author = authors.contains(pk);
        let is_home_agency = rec.role == Role::Agency && home.as_ref() == Some(&rec.jurisdiction);
        if !is_author && !is_home_agency {
            return Err(Refusal::WrongRole(format!(
                "a correction must be signed by a signer of the corrected event or by the agency of its jurisdiction ({}); key {}… is neither",
                home.map_or("none".to_string(), |j| j.to_string()),
                short(pk)
            )));
        }
    }
    Ok(())
}

fn need_any_agency(signers: &[(PublicKeyBytes, KeyRecord)], what: &str) -> Result<(), Refusal> {
    for (pk, rec) in signers {
        if rec.role != Role::Agency {
            return Err(Refusal::WrongRole(format!(
                "{what} must be signed by an agency key; key {}… is a {:?} key",
                short(pk),
                rec.role
            )));
        }
    }
    Ok(())
}

fn authorize_contract(
    e: &ContractRegistered,
    signers: &[(PublicKeyBytes, KeyRecord)],
) -> Result<(), Refusal> {
    let mut employer_signed = false;
    for (pk, rec) in signers {
        if rec.role == Role::Worker {
            if rec.subject != e.worker.as_str() {
                return Err(Refusal::WrongSubject(format!(
                    "worker key {}… belongs to {}, not to the contract's worker {}",
                    short(pk),
                    rec.subject,
                    e.worker
                )));
            }
            continue;
        }
        check_employer(
            pk,
            rec,
            e.employer.as_str(),
            &e.jurisdiction,
            false,
            "contract_registered",
        )?;
        employer_signed = true;
    }
    if !employer_signed {
        return Err(Refusal::WrongRole(
            "contract_registered needs the employer's or platform's signature".into(),
        ));
    }
    Ok(())
}

fn authorize_flexible(
    e: &FlexibleContribution,
    signers: &[(PublicKeyBytes, KeyRecord)],
) -> Result<(), Refusal> {
    for (pk, rec) in signers {
        match rec.role {
            Role::Agency => need_agency(
                &[(*pk, rec.clone())],
                &e.jurisdiction,
                "flexible_contribution",
            )?,
            Role::Worker => {
                if rec.subject != e.worker.as_str() {
                    return Err(Refusal::WrongSubject(format!(
                        "worker key {}… belongs to {}, not to {}",
                        short(pk),
                        rec.subject,
                        e.worker
                    )));
                }
                if rec.jurisdiction != e.jurisdiction {
                    return Err(Refusal::WrongJurisdiction(format!(
                        "the contribution is for {}, but worker key {}… is registered in {}",
                        e.jurisdiction,
                        short(pk),
                        rec.jurisdiction
                    )));
                }
            }
            other => {
                return Err(Refusal::WrongRole(format!(
                    "flexible_contribution must be signed by the worker or an agency; key {}… is a {other:?} key",
                    short(pk)
                )))
            }
        }
    }
    Ok(())
}

pub(crate) fn short(pk: &PublicKeyBytes) -> String {
    pk.to_hex()[..16].to_string()
}

/// Requires every signer to be an agency of `j`.
fn need_agency(
    signers: &[(PublicKeyBytes, KeyRecord)],
    j: &Jurisdiction,
    what: &str,
) -> Result<(), Refusal> {
    for (pk, rec) in signers {
        if rec.role != Role::Agency {
            return Err(Refusal::WrongRole(format!(
                "{what} must be signed by an agency key; key {}… is a {:?} key",
                short(pk),
                rec.role
            )));
        }
        if &rec.jurisdiction != j {
            return Err(Refusal::WrongJurisdiction(format!(
                "{what} concerns {j}, but agency key {}… belongs to {}",
                short(pk),
                rec.jurisdiction
            )));
        }
    }
    Ok(())
}

/// Requires an employer (or platform) key of `employer` in `j`.
fn check_employer(
    pk: &PublicKeyBytes,
    rec: &KeyRecord,
    employer: &str,
    j: &Jurisdiction,
    platform_only: bool,
    what: &str,
) -> Result<(), Refusal> {
    let role_ok = match rec.role {
        Role::Platform => true,
        Role::Employer => !platform_only,
        _ => false,
    };
    if !role_ok {
        let need = if platform_only {
            "a platform key"
        } else {
            "an employer or platform key"
        };
        return Err(Refusal::WrongRole(format!(
            "{what} must be signed by {need}; key {}… is a {:?} key",
            short(pk),
            rec.role
        )));
    }
    if rec.subject != employer {
        return Err(Refusal::WrongSubject(format!(
            "key {}… is registered for {}, not for {employer}",
            short(pk),
            rec.subject
        )));
    }
    if &rec.jurisdiction != j {
        return Err(Refusal::WrongJurisdiction(format!(
            "{what} is for {j}, but key {}… is registered in {}",
            short(pk),
            rec.jurisdiction
        )));
    }
    Ok(())
}

/// The jurisdiction an event belongs to, for corrections by an agency.
fn event_jurisdiction(kind: &EventKind) -> Option<Jurisdiction> {
    Some(match kind {
        EventKind::KeyRegistered(e) => e.jurisdiction.clone(),
        EventKind::PersonRegistered(e) => e.jurisdiction.clone(),
        EventKind::HukouChanged(e) => e.hukou.clone(),
        EventKind::ContractRegistered(e) => e.jurisdiction.clone(),
        EventKind::ContributionsDeclared(e) => e.jurisdiction.clone(),
        EventKind::FlexibleContribution(e) => e.jurisdiction.clone(),
        EventKind::PlatformOrders(e) => e.jurisdiction.clone(),
        EventKind::InjuryOccurred(e) => e.jurisdiction.clone(),
        EventKind::CoverageCertificateIssued(e) => e.sending.clone(),
        EventKind::WorkPermitLinked(e) => e.jurisdiction.clone(),
        EventKind::TransferRequested(e) => e.to.clone(),
        EventKind::ForeignPeriodsReported(e) => e.country.clone(),
        EventKind::ParametersPublished(e) => e.jurisdiction.clone(),
        EventKind::KeyRevoked(_)
        | EventKind::ContractEnded(_)
        | EventKind::TransferCompleted(_)
        | EventKind::Correction(_)
        | EventKind::LedgerAct(_) => return None,
    })
}
