//! Why an event was refused. Each reason has a stable machine-readable code (what clients and
//! tests match on) and a message that tells the submitter what to fix.

/// A refused event: nothing of it is appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("malformed event: {0}")]
    Malformed(String),
    #[error("the body is not in canonical encoding (re-encoding it gives other bytes); encode it with a conforming protobuf encoder")]
    NonCanonical,
    #[error("unsupported body format version {0}; this ledger reads version 1")]
    UnsupportedVersion(u32),
    #[error("event too large: {0}")]
    TooLarge(String),
    #[error("invalid field: {0}")]
    InvalidField(String),
    #[error("the event carries no signature; sign it with the key of its author")]
    Unsigned,
    #[error("signature by key {0}")]
    BadSignature(String),
    #[error("key {0} is not registered on this ledger; an agency must register it first (key_registered)")]
    UnknownKey(String),
    #[error("key {0} was revoked and may no longer sign")]
    RevokedKey(String),
    #[error("wrong role: {0}")]
    WrongRole(String),
    #[error("wrong subject: {0}")]
    WrongSubject(String),
    #[error("wrong jurisdiction: {0}")]
    WrongJurisdiction(String),
    #[error("the body was signed at {signed_at}, more than 5 minutes ahead of the ledger clock ({now}); check the signer's clock")]
    SignedInFuture { signed_at: String, now: String },
    #[error("{0}")]
    InFuture(String),
    #[error("{0}")]
    TooEarly(String),
    #[error("{0}")]
    ImpossiblePeriod(String),
    #[error("{0}")]
    NegativeAmount(String),
    #[error("worker {0} has no person_registered event; an agency must register the person first")]
    UnregisteredWorker(String),
    #[error("{0}")]
    DuplicateDeclaration(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyVoided(String),
    #[error("{0}")]
    AmountMismatch(String),
    #[error("weak public key {0} (small order): refused for registration")]
    WeakKey(String),
    #[error("not enough authority: {0}")]
    InsufficientAuthority(String),
}

impl Refusal {
    /// Every code [`Refusal::code`] gives: a closed set, so that counting refusals by code (a
    /// node's metrics) can never grow without bound.
    pub const CODES: &'static [&'static str] = &[
        "malformed",
        "non_canonical",
        "unsupported_version",
        "too_large",
        "invalid_field",
        "unsigned",
        "bad_signature",
        "unknown_key",
        "revoked_key",
        "wrong_role",
        "wrong_subject",
        "wrong_jurisdiction",
        "signed_in_future",
        "in_future",
        "too_early",
        "impossible_period",
        "negative_amount",
        "unregistered_worker",
        "duplicate_declaration",
        "already_exists",
        "not_found",
        "already_voided",
        "amount_mismatch",
        "weak_key",
        "insufficient_authority",
    ];

    /// Stable snake_case code of the reason (a new one goes into [`Refusal::CODES`] too).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::NonCanonical => "non_canonical",
            Self::UnsupportedVersion(_) => "unsupported_version",
            Self::TooLarge(_) => "too_large",
            Self::InvalidField(_) => "invalid_field",
            Self::Unsigned => "unsigned",
            Self::BadSignature(_) => "bad_signature",
            Self::UnknownKey(_) => "unknown_key",
            Self::RevokedKey(_) => "revoked_key",
            Self::WrongRole(_) => "wrong_role",
            Self::WrongSubject(_) => "wrong_subject",
            Self::WrongJurisdiction(_) => "wrong_jurisdiction",
            Self::SignedInFuture { .. } => "signed_in_future",
            Self::InFuture(_) => "in_future",
            Self::TooEarly(_) => "too_early",
            Self::ImpossiblePeriod(_) => "impossible_period",
            Self::NegativeAmount(_) => "negative_amount",
            Self::UnregisteredWorker(_) => "unregistered_worker",
            Self::DuplicateDeclaration(_) => "duplicate_declaration",
            Self::AlreadyExists(_) => "already_exists",
            Self::NotFound(_) => "not_found",
            Self::AlreadyVoided(_) => "already_voided",
            Self::AmountMismatch(_) => "amount_mismatch",
            Self::WeakKey(_) => "weak_key",
            Self::InsufficientAuthority(_) => "insufficient_authority",
        }
    }
}

#[cfg(test)]
mod code_tests {
    use super::Refusal;

    #[test]
    fn every_code_is_listed_once() {
        let s = || String::from("x");
        let all = [
            Refusal::Malformed(s()),
            Refusal::NonCanonical,
            Refusal::UnsupportedVersion(3),
            Refusal::TooLarge(s()),
            Refusal::InvalidField(s()),
            Refusal::Unsigned,
            Refusal::BadSignature(s()),
            Refusal::UnknownKey(s()),
            Refusal::RevokedKey(s()),
            Refusal::WrongRole(s()),
            Refusal::WrongSubject(s()),
            Refusal::WrongJurisdiction(s()),
            Refusal::SignedInFuture {
                signed_at: s(),
                now: s(),
            },
            Refusal::InFuture(s()),
            Refusal::TooEarly(s()),
            Refusal::ImpossiblePeriod(s()),
            Refusal::NegativeAmount(s()),
            Refusal::UnregisteredWorker(s()),
            Refusal::DuplicateDeclaration(s()),
            Refusal::AlreadyExists(s()),
            Refusal::NotFound(s()),
            Refusal::AlreadyVoided(s()),
            Refusal::AmountMismatch(s()),
            Refusal::WeakKey(s()),
            Refusal::InsufficientAuthority(s()),
        ];
        let codes: Vec<&str> = all.iter().map(Refusal::code).collect();
        assert_eq!(codes, Refusal::CODES);
    }
}
