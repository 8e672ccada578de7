//! Ledger-wide acts in their canonical text (what the signers of a `ledger_act` read and sign)
//! and their nonces. Who may carry an act out is [`crate::authority`]'s.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::PublicKeyBytes;
use crate::jurisdiction::Jurisdiction;

/// Longest nonce, in bytes.
pub const MAX_NONCE_BYTES: usize = 64;

/// One ledger-wide act, in its canonical text form (what the signers read and sign).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Act {
    /// `add-learner ID RAFT_URL PUBLIC_URL [NODE_KEY]`: a node joins as a learner.
    AddLearner {
        id: u64,
        raft_address: String,
        public_address: String,
        /// Lowercase hex node key; empty for clusters without TLS.
        node_key: String,
    },
    /// `promote ID`: a learner becomes a voter.
    Promote(u64),
    /// `remove ID`: a voter or learner leaves the cluster.
    Remove(u64),
    /// `register-agency-key JURISDICTION KEY`: a new agency key of a genesis jurisdiction.
    RegisterAgencyKey {
        jurisdiction: Jurisdiction,
        public_key: PublicKeyBytes,
    },
    /// `revoke-agency-key JURISDICTION KEY`: an agency key may no longer sign.
    RevokeAgencyKey {
        jurisdiction: Jurisdiction,
        public_key: PublicKeyBytes,
    },
}

impl Act {
    /// Parses the canonical text; anything else (extra spaces, upper-case hex, unknown words) is
    /// refused, so one act has exactly one text.
    pub fn parse(text: &str) -> Result<Act, String> {
        let words: Vec<&str> = text.split(' ').collect();
        let id = |w: &str| -> Result<u64, String> {
            let not_id = || format!("{w:?} is not a node id (a whole number from 1)");
            // Digits only, no leading zero: one id, one text.
            if w.is_empty() || w.starts_with('0') || !w.bytes().all(|b| b.is_ascii_digit()) {
                return Err(not_id());
            }
            w.parse().map_err(|_| not_id())
        };
        let act = match words.as_slice() {
            ["add-learner", n, raft, public] => Act::AddLearner {
                id: id(n)?,
                raft_address: url("raft", raft)?,
                public_address: url("public", public)?,
                node_key: String::new(),
            },
            ["add-learner", n, raft, public, key] => Act::AddLearner {
                id: id(n)?,
                raft_address: url("raft", raft)?,
                public_address: url("public", public)?,
                node_key: lower_key("node key", key)?.to_hex(),
            },
            ["promote", n] => Act::Promote(id(n)?),
            ["remove", n] => Act::Remove(id(n)?),
            ["register-agency-key", j, key] => Act::RegisterAgencyKey {
                jurisdiction: j.parse().map_err(|e| format!("{e}"))?,
                public_key: lower_key("agency key", key)?,
            },
            ["revoke-agency-key", j, key] => Act::RevokeAgencyKey {
                jurisdiction: j.parse().map_err(|e| format!("{e}"))?,
                public_key: lower_key("agency key", key)?,
            },
            _ => {
                return Err(format!(
                    "{text:?} is not an act: expected `add-learner ID RAFT_URL PUBLIC_URL [NODE_KEY]`, \
                     `promote ID`, `remove ID`, `register-agency-key JURISDICTION KEY` or \
                     `revoke-agency-key JURISDICTION KEY`, words separated by one space"
                ))
            }
        };
        Ok(act)
    }

    /// Whether the act changes the Raft membership (carried out by the leader once recorded).
    pub fn is_membership(&self) -> bool {
        matches!(
            self,
            Act::AddLearner { .. } | Act::Promote(_) | Act::Remove(_)
        )
    }

    /// The jurisdiction whose agency keys the act changes, if it is a key act.
    pub fn key_jurisdiction(&self) -> Option<&Jurisdiction> {
        match self {
            Act::RegisterAgencyKey { jurisdiction, .. }
            | Act::RevokeAgencyKey { jurisdiction, .. } => Some(jurisdiction),
            _ => None,
        }
    }
}

fn url(what: &str, s: &str) -> Result<String, String> {
    let ok = (s.starts_with("http://") || s.starts_with("https://"))
        && s.len() <= 200
        && s.bytes().all(|b| b.is_ascii_graphic());
    if !ok {
        return Err(format!(
            "the {what} address {s:?} must be a URL, e.g. https://10.0.0.4:7200"
        ));
    }
    Ok(s.to_string())
}

fn lower_key(what: &str, s: &str) -> Result<PublicKeyBytes, String> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("the {what} must be lowercase hex"));
    }
    PublicKeyBytes::from_hex(s).map_err(|e| format!("the {what}: {e}"))
}

impl fmt::Display for Act {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Act::AddLearner {
                id,
                raft_address,
                public_address,
                node_key,
            } if node_key.is_empty() => {
                write!(f, "add-learner {id} {raft_address} {public_address}")
            }
            Act::AddLearner {
                id,
                raft_address,
                public_address,
                node_key,
            } => write!(
                f,
                "add-learner {id} {raft_address} {public_address} {node_key}"
            ),
            Act::Promote(id) => write!(f, "promote {id}"),
            Act::Remove(id) => write!(f, "remove {id}"),
            Act::RegisterAgencyKey {
                jurisdiction,
                public_key,
            } => write!(f, "register-agency-key {jurisdiction} {public_key}"),
            Act::RevokeAgencyKey {
                jurisdiction,
                public_key,
            } => write!(f, "revoke-agency-key {jurisdiction} {public_key}"),
        }
    }
}

impl Serialize for Act {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Act {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Act::parse(&s).map_err(de::Error::custom)
    }
}

/// Checks a nonce: 1 to [`MAX_NONCE_BYTES`] printable ASCII characters without spaces.
pub fn check_nonce(nonce: &str) -> Result<(), String> {
    if nonce.is_empty()
        || nonce.len() > MAX_NONCE_BYTES
        || !nonce.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(format!(
            "nonce {nonce:?} must be 1 to {MAX_NONCE_BYTES} printable ASCII characters without \
             spaces (e.g. 2026-12-01-remove-3)"
        ));
    }
    Ok(())
}
