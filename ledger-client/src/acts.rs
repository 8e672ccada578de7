//! Act files: a ledger act passed from agency to agency for signatures. The proposer writes the
//! signed body once (`act new`), so every agency signs the same bytes, on its own machine
//! (`act sign`); anyone submits the file when enough agencies have signed (`act submit`). The
//! file is JSON (docs/cli.md, "Act files"): the act and nonce for people to read, the body in
//! hex, and the signatures so far. Every signature is checked whenever the file is read.

use ed25519_dalek::SigningKey;
use ledger_core::authority::{check_nonce, Act};
use ledger_core::envelope::{Envelope, LedgerId, SignatureEntry};
use ledger_core::event::{EventBody, EventKind, LedgerAct, PublicKeyBytes};
use ledger_core::time::Instant;
use serde::{Deserialize, Serialize};

/// The `format` of an act file.
pub const ACT_FILE_FORMAT: &str = "ledger-act/1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActSignature {
    pub public_key: PublicKeyBytes,
    /// 64 bytes, hex.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActFile {
    pub format: String,
    /// The ledger the act is for (its genesis hash, hex): part of every signature.
    pub ledger: String,
    /// The act's canonical text (what the signers agree to).
    pub act: String,
    pub nonce: String,
    pub signed_at: Instant,
    /// The encoded event body every signature covers, hex.
    pub body: String,
    pub signatures: Vec<ActSignature>,
}

/// A fresh nonce: the day and 64 random bits, so two proposals never share one by chance.
pub fn fresh_nonce(signed_at: Instant) -> String {
    let day = signed_at.to_string();
    let day = day.get(..10).unwrap_or("act");
    format!("{day}-{:016x}", rand::random::<u64>())
}

fn body_of(act: &Act, nonce: &str, signed_at: Instant) -> EventBody {
    EventBody {
        signed_at,
        kind: EventKind::LedgerAct(LedgerAct {
            act: act.clone(),
            nonce: nonce.to_string(),
        }),
    }
}

impl ActFile {
    /// An unsigned act file for `ledger`.
    pub fn new(
        ledger: &LedgerId,
        act: &Act,
        nonce: &str,
        signed_at: Instant,
    ) -> Result<ActFile, String> {
        check_nonce(nonce)?;
        let body = ledger_core::wire::encode_body(&body_of(act, nonce, signed_at)).body;
        Ok(ActFile {
            format: ACT_FILE_FORMAT.into(),
            ledger: ledger.to_hex(),
            act: act.to_string(),
            nonce: nonce.into(),
            signed_at,
            body: hex::encode(body),
            signatures: Vec::new(),
        })
    }

    /// Reads an act file and checks it: the body says what `act`, `nonce` and `signed_at` say,
    /// and every signature verifies over it.
    pub fn parse(text: &str) -> Result<ActFile, String> {
        let file: ActFile =
            serde_json::from_str(text).map_err(|e| format!("not an act file: {e}"))?;
        if file.format != ACT_FILE_FORMAT {
            return Err(format!(
                "act file format {:?}: this client reads {ACT_FILE_FORMAT:?}",
                file.format
            ));
        }
        let act = Act::parse(&file.act)?;
        let ledger = file.ledger_id()?;
        let expected = ActFile::new(&ledger, &act, &file.nonce, file.signed_at)?;
        if expected.body != file.body {
            return Err(
                "the body does not match the act, nonce and signed_at the file shows; it was \
                 altered: ask the proposer for the file again"
                    .into(),
            );
        }
        file.envelope()?
            .verify_signatures(&ledger)
            .map_err(|e| format!("a signature in the act file is not valid: {e}"))?;
        Ok(file)
    }

    pub fn act(&self) -> Result<Act, String> {
        Act::parse(&self.act)
    }

    pub fn ledger_id(&self) -> Result<LedgerId, String> {
        LedgerId::from_hex(&self.ledger)
    }

    /// Adds `key`'s signature; refuses a key that already signed.
    pub fn sign(&mut self, key: &SigningKey) -> Result<(), String> {
        let public_key = PublicKeyBytes(key.verifying_key().to_bytes());
        if self.signatures.iter().any(|s| s.public_key == public_key) {
            return Err(format!("key {public_key} has already signed this act"));
        }
        let signed = Envelope::sign(
            &self.ledger_id()?,
            &body_of(&self.act()?, &self.nonce, self.signed_at),
            &[key],
        );
        if hex::encode(&signed.body) != self.body {
            return Err("the act file's body does not encode its act; it was altered".into());
        }
        let s = &signed.signatures[0];
        self.signatures.push(ActSignature {
            public_key,
            signature: hex::encode(s.signature),
        });
        Ok(())
    }

    /// The signed envelope, as the node takes it.
    pub fn envelope(&self) -> Result<Envelope, String> {
        let body = hex::decode(&self.body).map_err(|_| "the body is not hex".to_string())?;
        let signatures = self
            .signatures
            .iter()
            .map(|s| {
                let signature: [u8; 64] = hex::decode(&s.signature)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| {
                        format!("the signature by {} is not 64 bytes of hex", s.public_key)
                    })?;
                Ok(SignatureEntry {
                    public_key: s.public_key,
                    signature,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Envelope {
            body,
            lines: Vec::new(),
            signatures,
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("act files serialize") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEDGER: LedgerId = LedgerId(ledger_core::event::Hash32([0x1e; 32]));

    fn at() -> Instant {
        "2026-12-01T08:00:00Z".parse().unwrap()
    }

    #[test]
    fn signatures_gather_over_the_same_bytes_and_survive_a_round_trip() {
        let (a, b) = (
            SigningKey::from_bytes(&[1; 32]),
            SigningKey::from_bytes(&[2; 32]),
        );
        let mut file = ActFile::new(&LEDGER, &Act::Remove(3), "n-1", at()).unwrap();
        file.sign(&a).unwrap();
        let mut file = ActFile::parse(&file.to_json()).unwrap();
        file.sign(&b).unwrap();
        assert!(file.sign(&a).unwrap_err().contains("already signed"));
        let env = file.envelope().unwrap();
        assert_eq!(env.signatures.len(), 2);
        let opened = env.clone().open(&LEDGER).unwrap();
        // Signed for one ledger, an act does not verify on another.
        let other = LedgerId(ledger_core::event::Hash32([0x2f; 32]));
        assert!(env.open(&other).is_err());
        let EventKind::LedgerAct(act) = opened.body.kind else {
            panic!("not an act")
        };
        assert_eq!(act.act, Act::Remove(3));
    }

    #[test]
    fn an_altered_file_is_refused() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let mut file = ActFile::new(&LEDGER, &Act::Remove(3), "n-1", at()).unwrap();
        file.sign(&key).unwrap();
        let mut shown = file.clone();
        shown.act = "remove 4".into();
        assert!(ActFile::parse(&shown.to_json())
            .unwrap_err()
            .contains("altered"));
        let mut forged = file.clone();
        forged.signatures[0].signature = "00".repeat(64);
        assert!(ActFile::parse(&forged.to_json())
            .unwrap_err()
            .contains("signature"));
        assert!(ActFile::new(&LEDGER, &Act::Remove(3), "has space", at()).is_err());
    }
}
