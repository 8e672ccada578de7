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
        }
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
