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
        Ok(())
    }

    /// The ledger's id: its genesis hash, which every event's signatures and id include.
    pub fn ledger_id(&self) -> crate::envelope::LedgerId {
        crate::envelope::LedgerId(self.hash())
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
