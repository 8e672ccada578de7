//! The genesis of a ledger: its name and the jurisdictions that run it, each with the public keys
//! of its agency. Genesis keys are the roots of trust: every other key is registered by one of
//! them. A store remembers the hash of the genesis it was created with and refuses another.

use serde::{Deserialize, Serialize};

use crate::event::{Hash32, PublicKeyBytes};
use crate::jurisdiction::Jurisdiction;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// The ledger's name (the checkpoint origin), e.g. "pcl-dev".
    pub ledger: String,
    pub jurisdictions: Vec<GenesisJurisdiction>,
    /// How many jurisdictions must sign a ledger act (membership, agency keys); absent: a
    /// majority of `jurisdictions`. Left out of the canonical form when absent, so the hash of
    /// a genesis written before this field existed does not change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority_quorum: Option<u32>,
    /// The initial Raft members with their node identities, as a genesis ceremony assembles
    /// them (`ledger-node ceremony assemble`), so that comparing the genesis hash also
    /// compares every node key. Left out of the canonical form when empty, like
    /// `authority_quorum`, so genesis files written without it keep their hash.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<GenesisMember>,
}

/// One initial member of a replicated ledger: its Raft id, the name its checkpoint signatures
/// carry, the jurisdiction whose agency runs it, where it is reached, and its node key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisMember {
    pub id: u64,
    pub node_id: String,
    pub jurisdiction: Jurisdiction,
    pub public_address: String,
    pub raft_address: String,
    pub node_key: PublicKeyBytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisJurisdiction {
    pub code: Jurisdiction,
    pub agency_keys: Vec<PublicKeyBytes>,
}

impl Genesis {
    /// Checks what a node relies on: a name, unique jurisdictions, at least one agency key each,
    /// no key twice, no weak (small-order) key.
    pub fn validate(&self) -> Result<(), String> {
        if self.ledger.is_empty()
            || self.ledger.len() > 64
            || self.ledger.chars().any(char::is_whitespace)
        {
            return Err(
                "genesis: ledger name must be 1 to 64 characters without white space".into(),
            );
        }
        if self.jurisdictions.is_empty() {
            return Err("genesis: no jurisdiction".into());
        }
        let mut codes = std::collections::BTreeSet::new();
        let mut keys = std::collections::BTreeSet::new();
        for j in &self.jurisdictions {
            if !codes.insert(&j.code) {
                return Err(format!("genesis: jurisdiction {} listed twice", j.code));
            }
            if j.agency_keys.is_empty() {
                return Err(format!(
                    "genesis: jurisdiction {} has no agency key",
                    j.code
                ));
            }
            for k in &j.agency_keys {
                if !keys.insert(k) {
                    return Err(format!("genesis: agency key {k} listed twice"));
                }
                let vk = ed25519_dalek::VerifyingKey::from_bytes(&k.0)
                    .map_err(|_| format!("genesis: {k} is not an ed25519 public key"))?;
                if vk.is_weak() {
                    return Err(format!("genesis: agency key {k} is weak (small order)"));
                }
            }
        }
        self.validate_members(&codes)?;
        if let Some(m) = self.authority_quorum {
            let n = self.jurisdictions.len();
            if m == 0 || m as usize > n {
                return Err(format!(
                    "genesis: authority_quorum {m} must be between 1 and the number of \
                     jurisdictions ({n})"
                ));
            }
        }
        Ok(())
    }

    /// Members: unique ids, names and keys, each of a genesis jurisdiction, each key a usable
    /// ed25519 key (it signs checkpoints and is pinned by TLS peers).
    fn validate_members(
        &self,
        codes: &std::collections::BTreeSet<&Jurisdiction>,
    ) -> Result<(), String> {
        let mut ids = std::collections::BTreeSet::new();
        let mut names = std::collections::BTreeSet::new();
        let mut keys = std::collections::BTreeSet::new();
        for m in &self.members {
            let name = &m.node_id;
            if m.id == 0 || !ids.insert(m.id) {
                return Err(format!(
                    "genesis: member {name}: Raft id {} is 0 or listed twice",
                    m.id
                ));
            }
            crate::checkpoint::NoteKey::new(name, m.node_key)
                .map_err(|e| format!("genesis: member {name}: {}", e.0))?;
            if !names.insert(name) {
                return Err(format!("genesis: member {name} listed twice"));
            }
            if !keys.insert(m.node_key) {
                return Err(format!(
                    "genesis: member {name}: node key {} listed twice",
                    m.node_key
                ));
            }
            if !codes.contains(&m.jurisdiction) {
                return Err(format!(
                    "genesis: member {name}: jurisdiction {} is not a genesis jurisdiction",
                    m.jurisdiction
                ));
            }
            let vk = ed25519_dalek::VerifyingKey::from_bytes(&m.node_key.0)
                .map_err(|_| format!("genesis: member {name}: not an ed25519 node key"))?;
            if vk.is_weak() {
                return Err(format!("genesis: member {name}: weak node key"));
            }
            if m.public_address.is_empty() || m.raft_address.is_empty() {
                return Err(format!("genesis: member {name}: an address is empty"));
            }
        }
        Ok(())
    }

    /// The verifiers' trust file of the initial members (each member's jurisdiction and
    /// checkpoint verifier key), a majority of them the quorum. `None` without members.
    pub fn trust(&self) -> Option<crate::checkpoint::Trust> {
        let nodes: Vec<crate::checkpoint::TrustedNode> = self
            .members
            .iter()
            .filter_map(|m| {
                Some(crate::checkpoint::TrustedNode {
                    key: crate::checkpoint::NoteKey::new(&m.node_id, m.node_key).ok()?,
                    jurisdiction: Some(m.jurisdiction.to_string()),
                })
            })
            .collect();
        (!nodes.is_empty()).then(|| crate::checkpoint::Trust {
            quorum: nodes.len() / 2 + 1,
            nodes,
        })
    }

    /// The ledger's id: its genesis hash, which every event's signatures and id include.
    pub fn ledger_id(&self) -> crate::envelope::LedgerId {
        crate::envelope::LedgerId(self.hash())
    }

    /// How many jurisdictions must sign a ledger act: `authority_quorum`, or a majority.
    pub fn authority_quorum(&self) -> usize {
        match self.authority_quorum {
            Some(m) => m as usize,
            None => self.jurisdictions.len() / 2 + 1,
        }
    }

    /// Hash of the canonical JSON form: what a store pins.
    pub fn hash(&self) -> Hash32 {
        let bytes = serde_json::to_vec(self).expect("genesis serializes");
        let mut h = blake3::Hasher::new();
        h.update(b"portable-contribution-ledger/genesis/v1\n");
        h.update(&bytes);
        Hash32(*h.finalize().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn genesis(quorum: Option<u32>) -> Genesis {
        Genesis {
            ledger: "pcl-test".into(),
            jurisdictions: vec![GenesisJurisdiction {
                code: "CN-44".parse().unwrap(),
                agency_keys: vec![PublicKeyBytes(
                    ed25519_dalek::SigningKey::from_bytes(&[7; 32])
                        .verifying_key()
                        .to_bytes(),
                )],
            }],
            authority_quorum: quorum,
            members: Vec::new(),
        }
    }

    fn member(id: u64, seed: u8) -> GenesisMember {
        GenesisMember {
            id,
            node_id: format!("node-{id}"),
            jurisdiction: "CN-44".parse().unwrap(),
            public_address: format!("https://10.0.0.{id}:7100"),
            raft_address: format!("https://10.0.0.{id}:7200"),
            node_key: PublicKeyBytes(
                ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
                    .verifying_key()
                    .to_bytes(),
            ),
        }
    }

    #[test]
    fn members_are_hashed_checked_and_give_the_trust_file() {
        let mut g = genesis(None);
        assert!(g.trust().is_none());
        let before = g.hash();
        g.members = vec![member(1, 1), member(2, 2), member(3, 3)];
        assert!(g.validate().is_ok());
        assert_ne!(g.hash(), before, "the members are part of the hash");
        let trust = g.trust().unwrap();
        assert_eq!(trust.quorum, 2);
        let text = trust.format();
        assert_eq!(text.lines().count(), 3);
        assert!(text.starts_with("CN-44 node-1+"), "{text}");
        assert_eq!(crate::checkpoint::Trust::parse(&text).unwrap(), trust);
        let mut same_key = g.clone();
        same_key.members[1].node_key = same_key.members[0].node_key;
        assert!(same_key.validate().unwrap_err().contains("listed twice"));
        let mut same_id = g.clone();
        same_id.members[2].id = 1;
        assert!(same_id.validate().unwrap_err().contains("Raft id 1"));
        let mut foreign = g.clone();
        foreign.members[0].jurisdiction = "DE".parse().unwrap();
        assert!(foreign
            .validate()
            .unwrap_err()
            .contains("not a genesis jurisdiction"));
    }

    #[test]
    fn an_absent_quorum_keeps_the_hash_of_older_genesis_files() {
        let g = genesis(None);
        let json = serde_json::to_string(&g).unwrap();
        assert!(!json.contains("authority_quorum"), "{json}");
        let before: Genesis = serde_json::from_str(&json).unwrap();
        assert_eq!(before.hash(), g.hash());
        assert_ne!(genesis(Some(1)).hash(), g.hash());
    }

    #[test]
    fn quorum_must_be_between_one_and_the_jurisdictions() {
        assert!(genesis(Some(1)).validate().is_ok());
        assert!(genesis(None).validate().is_ok());
        for m in [0, 2] {
            let err = genesis(Some(m)).validate().unwrap_err();
            assert!(err.contains("authority_quorum"), "{err}");
        }
    }
}
