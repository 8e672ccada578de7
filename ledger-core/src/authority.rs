//! Ledger-wide acts and who may carry them out. A change of the cluster's membership or of an
//! agency's keys binds every jurisdiction, so no single agency may make it alone: a `ledger_act`
//! event names the act in a canonical text and a nonce, and is admitted only with agency
//! signatures of at least `m` distinct jurisdictions of the genesis (its `authority_quorum`).
//! The one exception is an agency's own keys: an agency adds or revokes keys of its own
//! jurisdiction with a current key of that jurisdiction (rotation); a jurisdiction that lost all
//! its keys is restored by `m` others. Recorded in the ledger, an act is ordered, replicated and
//! carried out once: its event id (and its content) can be recorded only once, and its nonce
//! can be used only once.

use std::collections::BTreeSet;
use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::event::{PublicKeyBytes, Role};
use crate::genesis::Genesis;
use crate::jurisdiction::Jurisdiction;
use crate::refusal::Refusal;
use crate::state::KeyRecord;

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

/// Who speaks for the ledger as a whole: the genesis jurisdictions and how many of them must
/// sign a ledger act. Written at genesis into the state (`mauthority`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authority {
    pub quorum: usize,
    pub jurisdictions: BTreeSet<Jurisdiction>,
}

impl Authority {
    pub fn of(genesis: &Genesis) -> Authority {
        Authority {
            quorum: genesis.authority_quorum(),
            jurisdictions: genesis
                .jurisdictions
                .iter()
                .map(|j| j.code.clone())
                .collect(),
        }
    }

    /// Decides whether `signers` may carry out `act` (see the module doc for the rule).
    pub fn permits(
        &self,
        act: &Act,
        signers: &[(PublicKeyBytes, KeyRecord)],
    ) -> Result<(), Refusal> {
        let mut signed_by = BTreeSet::new();
        for (pk, rec) in signers {
            if rec.role != Role::Agency {
                return Err(Refusal::WrongRole(format!(
                    "a ledger act must be signed by agency keys only; key {} is a {:?} key",
                    &pk.to_hex()[..16],
                    rec.role
                )));
            }
            if self.jurisdictions.contains(&rec.jurisdiction) {
                signed_by.insert(&rec.jurisdiction);
            }
        }
        if let Some(j) = act.key_jurisdiction() {
            if signed_by.len() == 1 && signed_by.contains(j) {
                return Ok(());
            }
        }
        if signed_by.len() >= self.quorum {
            return Ok(());
        }
        let names: Vec<&str> = signed_by.iter().map(|j| j.as_str()).collect();
        Err(Refusal::InsufficientAuthority(format!(
            "`{act}` needs agency signatures of {} of the {} jurisdictions, got {} ({}){}",
            self.quorum,
            self.jurisdictions.len(),
            signed_by.len(),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            },
            match act.key_jurisdiction() {
                Some(j) => format!("; or of {j} alone, for its own keys"),
                None => String::new(),
            }
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genesis::GenesisJurisdiction;

    fn rec(role: Role, j: &str) -> KeyRecord {
        KeyRecord {
            role,
            jurisdiction: j.parse().unwrap(),
            subject: j.into(),
            registered_at: 0,
            revoked_at: None,
        }
    }

    fn pk(n: u8) -> PublicKeyBytes {
        PublicKeyBytes([n; 32])
    }

    fn authority(quorum: usize) -> Authority {
        Authority {
            quorum,
            jurisdictions: ["CN-44", "CN-33", "DE"]
                .iter()
                .map(|j| j.parse().unwrap())
                .collect(),
        }
    }

    #[test]
    fn quorum_counts_distinct_jurisdictions() {
        let a = authority(2);
        let remove = Act::Remove(3);
        let one = [(pk(1), rec(Role::Agency, "CN-44"))];
        let err = a.permits(&remove, &one).unwrap_err();
        assert_eq!(err.code(), "insufficient_authority");
        assert!(err.to_string().contains("2 of the 3"), "{err}");
        // Two keys of one jurisdiction are still one jurisdiction.
        let same = [
            (pk(1), rec(Role::Agency, "CN-44")),
            (pk(2), rec(Role::Agency, "CN-44")),
        ];
        assert!(a.permits(&remove, &same).is_err());
        let two = [
            (pk(1), rec(Role::Agency, "CN-44")),
            (pk(2), rec(Role::Agency, "DE")),
        ];
        assert!(a.permits(&remove, &two).is_ok());
    }

    #[test]
    fn only_agency_keys_of_genesis_jurisdictions_count() {
        let a = authority(2);
        let with_employer = [
            (pk(1), rec(Role::Agency, "CN-44")),
            (pk(2), rec(Role::Employer, "DE")),
        ];
        let err = a.permits(&Act::Promote(4), &with_employer).unwrap_err();
        assert_eq!(err.code(), "wrong_role");
        let foreign = [
            (pk(1), rec(Role::Agency, "CN-44")),
            (pk(2), rec(Role::Agency, "FR")),
        ];
        assert!(a.permits(&Act::Promote(4), &foreign).is_err());
    }

    #[test]
    fn an_agency_changes_its_own_keys_alone_but_not_anothers() {
        let a = authority(2);
        let own = Act::RegisterAgencyKey {
            jurisdiction: "CN-44".parse().unwrap(),
            public_key: pk(9),
        };
        let cn44 = [(pk(1), rec(Role::Agency, "CN-44"))];
        assert!(a.permits(&own, &cn44).is_ok());
        let de = [(pk(2), rec(Role::Agency, "DE"))];
        assert!(a.permits(&own, &de).is_err());
        let revoke = Act::RevokeAgencyKey {
            jurisdiction: "CN-44".parse().unwrap(),
            public_key: pk(1),
        };
        // Restoring or cleaning up another jurisdiction's keys takes the quorum.
        let others = [
            (pk(2), rec(Role::Agency, "DE")),
            (pk(3), rec(Role::Agency, "CN-33")),
        ];
        assert!(a.permits(&revoke, &others).is_ok());
    }

    #[test]
    fn act_text_is_canonical() {
        let key = "ab".repeat(32);
        for text in [
            "remove 3".to_string(),
            "promote 12".to_string(),
            "add-learner 4 https://10.0.0.4:7200 https://10.0.0.4:7100".to_string(),
            format!("add-learner 4 https://h:1 https://h:2 {key}"),
            format!("register-agency-key CN-44 {key}"),
            format!("revoke-agency-key DE {key}"),
        ] {
            let act = Act::parse(&text).unwrap();
            assert_eq!(act.to_string(), text);
        }
        for bad in [
            "remove  3",
            "remove 03",
            "remove 0",
            "remove x",
            "remove +3",
            "demote 3",
            "add-learner 4 10.0.0.4 https://h",
            "register-agency-key cn-44 00",
        ] {
            assert!(Act::parse(bad).is_err(), "{bad}");
        }
        let upper = format!("register-agency-key CN-44 {}", "AB".repeat(32));
        assert!(Act::parse(&upper).unwrap_err().contains("lowercase"));
        assert!(check_nonce("n-1").is_ok());
        assert!(check_nonce("").is_err());
        assert!(check_nonce("a b").is_err());
        assert!(check_nonce(&"x".repeat(65)).is_err());
    }

    #[test]
    fn default_quorum_is_a_majority_of_the_genesis() {
        let j = |c: &str, n: u8| GenesisJurisdiction {
            code: c.parse().unwrap(),
            agency_keys: vec![pk(n)],
        };
        let mut g = Genesis {
            ledger: "t".into(),
            jurisdictions: vec![j("CN-44", 1)],
            authority_quorum: None,
            members: Vec::new(),
        };
        assert_eq!(Authority::of(&g).quorum, 1);
        g.jurisdictions.push(j("CN-33", 2));
        assert_eq!(Authority::of(&g).quorum, 2);
        g.jurisdictions.push(j("DE", 3));
        assert_eq!(Authority::of(&g).quorum, 2);
        g.jurisdictions.push(j("FR", 4));
        assert_eq!(Authority::of(&g).quorum, 3);
        g.authority_quorum = Some(1);
        assert_eq!(Authority::of(&g).quorum, 1);
    }
}
