//! Sign the bytes, ship the bytes. An [`Envelope`] holds the author's encoded body, the encoded
//! lines of a batch, and signatures over `EVENT_DOMAIN || body`. Nothing is ever re-encoded to
//! check a signature; the event id is `BLAKE3(EVENT_DOMAIN || body)`.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::event::{EventBody, Hash32, PublicKeyBytes};
use crate::limits::{MAX_ENVELOPE_BYTES, MAX_SIGNATURES};
use crate::refusal::Refusal;
use crate::wire;

/// Domain separation for event signatures and ids: the ledger, the purpose, the format version.
pub const EVENT_DOMAIN: &[u8] = b"portable-contribution-ledger/event/v1\n";
/// Domain separation for read tokens, so a read signature can never pass for an event's.
pub const READ_DOMAIN: &[u8] = b"portable-contribution-ledger/read/v1\n";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureEntry {
    pub public_key: PublicKeyBytes,
    pub signature: [u8; 64],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub body: Vec<u8>,
    pub lines: Vec<Vec<u8>>,
    pub signatures: Vec<SignatureEntry>,
}

/// An event whose encoding, limits and signatures have been checked. Role and state checks are
/// the state machine's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEvent {
    pub id: Hash32,
    pub body: EventBody,
    pub envelope: Envelope,
}

pub fn event_id(body: &[u8]) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(EVENT_DOMAIN);
    h.update(body);
    Hash32(*h.finalize().as_bytes())
}

fn signing_message(body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(EVENT_DOMAIN.len() + body.len());
    m.extend_from_slice(EVENT_DOMAIN);
    m.extend_from_slice(body);
    m
}

impl Envelope {
    /// Encodes `body` once and signs the bytes with every key, in order.
    pub fn sign(body: &EventBody, keys: &[&SigningKey]) -> Envelope {
        let encoded = wire::encode_body(body);
        let message = signing_message(&encoded.body);
        let signatures = keys
            .iter()
            .map(|k| SignatureEntry {
                public_key: PublicKeyBytes(k.verifying_key().to_bytes()),
                signature: k.sign(&message).to_bytes(),
            })
            .collect();
        Envelope {
            body: encoded.body,
            lines: encoded.lines,
            signatures,
        }
    }

    pub fn id(&self) -> Hash32 {
        event_id(&self.body)
    }

    pub fn encoded_len(&self) -> usize {
        self.body.len()
            + self.lines.iter().map(Vec::len).sum::<usize>()
            + self.signatures.len() * 96
    }

    /// Checks limits, decodes the body canonically and verifies every signature strictly.
    pub fn open(self) -> Result<VerifiedEvent, Refusal> {
        if self.encoded_len() > MAX_ENVELOPE_BYTES {
            return Err(Refusal::TooLarge(format!(
                "envelope of {} bytes exceeds {MAX_ENVELOPE_BYTES}",
                self.encoded_len()
            )));
        }
        if self.signatures.is_empty() {
            return Err(Refusal::Unsigned);
        }
        if self.signatures.len() > MAX_SIGNATURES {
            return Err(Refusal::TooLarge(format!(
                "{} signatures exceed the limit of {MAX_SIGNATURES}",
                self.signatures.len()
            )));
        }
        let body = wire::decode_event(&self.body, &self.lines)?;
        self.verify_signatures()?;
        Ok(VerifiedEvent {
            id: self.id(),
            body,
            envelope: self,
        })
    }

    /// Strict verification (refuses non-canonical and small-order signature components).
    pub fn verify_signatures(&self) -> Result<(), Refusal> {
        let message = signing_message(&self.body);
        let mut seen = std::collections::BTreeSet::new();
        for s in &self.signatures {
            if !seen.insert(s.public_key) {
                return Err(Refusal::Malformed(format!(
                    "key {} signs twice",
                    s.public_key
                )));
            }
            let key = VerifyingKey::from_bytes(&s.public_key.0)
                .map_err(|_| Refusal::BadSignature(s.public_key.to_hex()))?;
            key.verify_strict(&message, &Signature::from_bytes(&s.signature))
                .map_err(|_| Refusal::BadSignature(s.public_key.to_hex()))?;
        }
        Ok(())
    }
}

/// The message a reader signs to read `subject` (a worker id or an event id in hex) at `issued_at`.
pub fn read_message(subject: &str, issued_at: i64) -> Vec<u8> {
    let mut m = READ_DOMAIN.to_vec();
    m.extend_from_slice(subject.as_bytes());
    m.push(0);
    m.extend_from_slice(issued_at.to_string().as_bytes());
    m
}

impl Envelope {
    pub fn to_pb(&self) -> crate::pb::Envelope {
        crate::pb::Envelope {
            body: self.body.clone(),
            lines: self.lines.clone(),
            signatures: self
                .signatures
                .iter()
                .map(|s| crate::pb::Signature {
                    public_key: s.public_key.0.to_vec(),
                    signature: s.signature.to_vec(),
                })
                .collect(),
        }
    }

    /// Converts from the wire, checking only the shapes of keys and signatures (what `open` needs).
    pub fn from_pb(p: crate::pb::Envelope) -> Result<Envelope, Refusal> {
        let signatures = p
            .signatures
            .into_iter()
            .map(|s| {
                let public_key =
                    PublicKeyBytes::from_slice(&s.public_key).map_err(Refusal::Malformed)?;
                let signature: [u8; 64] = s.signature.as_slice().try_into().map_err(|_| {
                    Refusal::Malformed(format!(
                        "signature by {public_key} must be 64 bytes, got {}",
                        s.signature.len()
                    ))
                })?;
                Ok(SignatureEntry {
                    public_key,
                    signature,
                })
            })
            .collect::<Result<_, Refusal>>()?;
        Ok(Envelope {
            body: p.body,
            lines: p.lines,
            signatures,
        })
    }
}

/// Parses a secret key file: 64 hex digits (the ed25519 seed), surrounding white space ignored.
pub fn parse_secret_key(text: &str) -> Result<SigningKey, String> {
    let t = text.trim();
    let bytes = hex::decode(t)
        .map_err(|_| "a key file holds 64 hex digits (an ed25519 secret key)".to_string())?;
    let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        format!(
            "a key file holds 32 bytes (64 hex digits), this one {}",
            bytes.len()
        )
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The text of a secret key file.
pub fn format_secret_key(key: &SigningKey) -> String {
    format!("{}\n", hex::encode(key.to_bytes()))
}
