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

use serde::{Deserialize, Serialize};

use crate::event::{PublicKeyBytes, Role};
use crate::genesis::Genesis;
use crate::jurisdiction::Jurisdiction;
use crate::kv::{get_json, StateRead, StoreFault};
use crate::records::KeyRecord;
use crate::refusal::Refusal;
use crate::schema;

pub use crate::act::{check_nonce, Act, MAX_NONCE_BYTES};

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

    /// The ledger's authority: written at genesis; for a store created before it was, derived
    /// the same way from the genesis agency keys (registered at index 0), so every node agrees.
    pub fn read(view: &dyn StateRead) -> Result<Authority, StoreFault> {
        if let Some(a) = get_json::<Authority>(view, schema::AUTHORITY)? {
            return Ok(a);
        }
        let mut jurisdictions = BTreeSet::new();
        for (_, v) in view.scan_prefix(&[schema::KEY])? {
            let rec: KeyRecord =
                serde_json::from_slice(&v).map_err(|e| StoreFault(format!("key record: {e}")))?;
            if rec.role == Role::Agency && rec.registered_at == 0 {
                jurisdictions.insert(rec.jurisdiction);
            }
        }
        Ok(Authority {
            quorum: jurisdictions.len() / 2 + 1,
            jurisdictions,
        })
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
