//! Sign the bytes, ship the bytes. An [`Envelope`] holds the author's encoded body, the encoded
//! lines of a batch, and signatures over `EVENT_DOMAIN || ledger || body`, where `ledger` is the
//! ledger's genesis hash ([`LedgerId`]). Nothing is ever re-encoded to check a signature; the
//! event id is `BLAKE3(EVENT_DOMAIN || ledger || body)`.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::event::{EventBody, Hash32, PublicKeyBytes};
use crate::limits::{MAX_ENVELOPE_BYTES, MAX_SIGNATURES};
use crate::refusal::Refusal;
use crate::wire;

/// Domain separation for event signatures and ids: the product, the purpose, the format version.
/// The ledger's genesis hash follows it in every message, so an event signed for one ledger
/// never verifies on another. Format 1 (`.../event/v1`) named no ledger.
pub const EVENT_DOMAIN: &[u8] = b"portable-contribution-ledger/event/v2\n";
/// The format-1 domain, kept only to tell a signer that their software predates format 2.
const EVENT_DOMAIN_V1: &[u8] = b"portable-contribution-ledger/event/v1\n";
/// Domain separation for read tokens, so a read signature can never pass for an event's.
/// Format 2 binds a token to one ledger, one node, one method and one subject, with a nonce;
/// format 1 signed only the subject and the time.
pub const READ_DOMAIN: &[u8] = b"portable-contribution-ledger/read/v2\n";
/// Random bytes a reader puts in every token, so that each token can be used once.
pub const READ_NONCE_BYTES: usize = 16;

/// Which ledger an event belongs to: the hash of the ledger's genesis
/// ([`crate::genesis::Genesis::hash`]). Signers learn it from a node's `status` (over a
/// pinned TLS connection) or from the genesis file itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LedgerId(pub Hash32);

impl LedgerId {
    pub fn from_hex(s: &str) -> Result<LedgerId, String> {
        Hash32::from_hex(s)
            .map(LedgerId)
            .map_err(|_| format!("{s:?} is not a ledger id (64 hex digits: the genesis hash)"))
    }
    pub fn to_hex(&self) -> String {
        self.0.to_hex()
    }
}

impl std::fmt::Display for LedgerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

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

/// The event id: `BLAKE3(EVENT_DOMAIN || ledger || body)`.
pub fn event_id(ledger: &LedgerId, body: &[u8]) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(EVENT_DOMAIN);
    h.update(&ledger.0 .0);
    h.update(body);
    Hash32(*h.finalize().as_bytes())
}

/// What every signer of an event signs: `EVENT_DOMAIN || ledger || body`.
pub fn signing_message(ledger: &LedgerId, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(EVENT_DOMAIN.len() + 32 + body.len());
    m.extend_from_slice(EVENT_DOMAIN);
    m.extend_from_slice(&ledger.0 .0);
    m.extend_from_slice(body);
    m
}

impl Envelope {
    /// Encodes `body` once and signs the bytes, for `ledger`, with every key in order.
    pub fn sign(ledger: &LedgerId, body: &EventBody, keys: &[&SigningKey]) -> Envelope {
        let encoded = wire::encode_body(body);
        let message = signing_message(ledger, &encoded.body);
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

    pub fn id(&self, ledger: &LedgerId) -> Hash32 {
        event_id(ledger, &self.body)
    }

    pub fn encoded_len(&self) -> usize {
        self.body.len()
            + self.lines.iter().map(Vec::len).sum::<usize>()
            + self.signatures.len() * 96
    }

    /// Checks limits, decodes the body canonically and verifies every signature strictly, as
    /// signed for `ledger`.
    pub fn open(self, ledger: &LedgerId) -> Result<VerifiedEvent, Refusal> {
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
        self.verify_signatures(ledger)?;
        Ok(VerifiedEvent {
            id: self.id(ledger),
            body,
            envelope: self,
        })
    }

    /// Strict verification (refuses non-canonical and small-order signature components) of
    /// signatures made for `ledger`.
    pub fn verify_signatures(&self, ledger: &LedgerId) -> Result<(), Refusal> {
        let message = signing_message(ledger, &self.body);
        let mut seen = std::collections::BTreeSet::new();
        for s in &self.signatures {
            if !seen.insert(s.public_key) {
                return Err(Refusal::Malformed(format!(
                    "key {} signs twice",
                    s.public_key
                )));
            }
            let key = VerifyingKey::from_bytes(&s.public_key.0).map_err(|_| {
                Refusal::BadSignature(format!("{} is not an ed25519 public key", s.public_key))
            })?;
            let signature = Signature::from_bytes(&s.signature);
            if key.verify_strict(&message, &signature).is_err() {
                return Err(Refusal::BadSignature(self.why_not(&key, &signature, s)));
            }
        }
        Ok(())
    }

    /// Names the key of a signature that does not verify, and says so when it was made in
    /// format 1 (no ledger in the domain): the signer's software needs updating, not the key.
    fn why_not(&self, key: &VerifyingKey, signature: &Signature, s: &SignatureEntry) -> String {
        let mut v1 = EVENT_DOMAIN_V1.to_vec();
        v1.extend_from_slice(&self.body);
        if key.verify_strict(&v1, signature).is_ok() {
            format!(
                "{} does not verify: it was made in event format 1, which names no ledger; \
                 sign over format 2 (the domain, then this ledger's genesis hash, then the body)",
                s.public_key
            )
        } else {
            format!(
                "{} does not verify over this body for this ledger",
                s.public_key
            )
        }
    }
}

/// The read methods a token may name; a token for one is refused by every other.
pub mod read_method {
    pub const GET_EVENT: &str = "Ledger/GetEvent";
    pub const LIST_WORKER_EVENTS: &str = "Ledger/ListWorkerEvents";
    pub const ENTITLEMENT: &str = "Rights/Entitlement";
    pub const COVERAGE: &str = "Rights/Coverage";
    pub const STATEMENT: &str = "Rights/Statement";
    pub const PROOF: &str = "Rights/Proof";
    pub const INDICATORS: &str = "Rights/Indicators";
}

/// What one read token is good for: reading `subject` through `method` on the node named
/// `audience` (its `node_id`) of `ledger`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadScope<'a> {
    pub ledger: LedgerId,
    pub audience: &'a str,
    pub method: &'a str,
    pub subject: &'a str,
}

/// What a reader signs: `READ_DOMAIN || ledger || audience 0x00 method 0x00 subject 0x00 ||
/// nonce || issued_at` (decimal unix seconds). `None` when a text field holds a NUL byte
/// (it would make two scopes sign alike).
pub fn read_message(
    scope: &ReadScope<'_>,
    nonce: &[u8; READ_NONCE_BYTES],
    issued_at: i64,
) -> Option<Vec<u8>> {
    let texts = [scope.audience, scope.method, scope.subject];
    if texts.iter().any(|t| t.as_bytes().contains(&0)) {
        return None;
    }
    let mut m = READ_DOMAIN.to_vec();
    m.extend_from_slice(&scope.ledger.0 .0);
    for t in texts {
        m.extend_from_slice(t.as_bytes());
        m.push(0);
    }
    m.extend_from_slice(nonce);
    m.extend_from_slice(issued_at.to_string().as_bytes());
    Some(m)
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
