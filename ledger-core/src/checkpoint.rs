//! Checkpoints of the log's Merkle tree in the C2SP formats: the body is a `tlog-checkpoint`
//! (origin line, tree size, base64 root hash), and signatures follow as `signed-note` lines
//! (`— <key name> <base64(key id ‖ ed25519 signature)>`), the key id being the first four bytes
//! of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key). The producing node signs first; every other
//! jurisdiction node that has verified the tree up to that size adds its own signature (a
//! cosignature in the same ed25519 note form).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::ids::{Hash32, PublicKeyBytes};

/// The em dash that opens a signature line.
const SIG_PREFIX: &str = "\u{2014} ";
/// Signature type byte of ed25519 in C2SP signed notes.
const ED25519_TYPE: u8 = 0x01;
/// Most signature lines a note may carry (one per jurisdiction node, with room to spare).
pub const MAX_NOTE_SIGNATURES: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("checkpoint: {0}")]
pub struct NoteError(pub String);

fn err<T>(m: impl Into<String>) -> Result<T, NoteError> {
    Err(NoteError(m.into()))
}

/// A tree head: what a checkpoint commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash32,
}

impl Checkpoint {
    /// The note text: `origin\nsize\nbase64(root)\n`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root.0)
        )
    }

    pub fn parse_body(text: &str) -> Result<Checkpoint, NoteError> {
        let mut lines = text.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or(NoteError("no origin line".into()))?;
        let size = lines
            .next()
            .and_then(|s| (!s.starts_with('+') && !s.starts_with('0') || s == "0").then_some(s))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or(NoteError(
                "the second line must be the tree size in decimal".into(),
            ))?;
        let root = lines
            .next()
            .and_then(|r| B64.decode(r).ok())
            .and_then(|b| Hash32::from_slice(&b).ok())
            .ok_or(NoteError(
                "the third line must be the base64 root hash (32 bytes)".into(),
            ))?;
        if !text.ends_with('\n') {
            return err("the body must end with a newline");
        }
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
        })
    }
}

/// A key that signs notes: a name (e.g. the node id) and an ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteKey {
    pub name: String,
    pub public_key: PublicKeyBytes,
}

impl NoteKey {
    pub fn new(name: &str, public_key: PublicKeyBytes) -> Result<NoteKey, NoteError> {
        if name.is_empty() || name.contains(char::is_whitespace) || name.contains('+') {
            return err(format!(
                "key name {name:?} must be non-empty without spaces or '+'"
            ));
        }
        Ok(NoteKey {
            name: name.to_string(),
            public_key,
        })
    }

    /// The C2SP key id: the first four bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ key).
    pub fn id(&self) -> u32 {
        let mut h = Sha256::new();
        h.update(self.name.as_bytes());
        h.update(b"\n");
        h.update([ED25519_TYPE]);
        h.update(self.public_key.0);
        let d = h.finalize();
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// The verifier key string of C2SP (`name+keyid(hex)+base64(0x01 ‖ key)`), for trust files.
    pub fn verifier_string(&self) -> String {
        let mut k = vec![ED25519_TYPE];
        k.extend_from_slice(&self.public_key.0);
        format!("{}+{:08x}+{}", self.name, self.id(), B64.encode(k))
    }

    pub fn parse_verifier(s: &str) -> Result<NoteKey, NoteError> {
        let mut parts = s.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return err(format!("{s:?} is not a verifier key (name+id+base64key)"));
        };
        let raw = B64
            .decode(key)
            .map_err(|_| NoteError(format!("verifier key of {name}: bad base64")))?;
        if raw.len() != 33 || raw[0] != ED25519_TYPE {
            return err(format!("verifier key of {name}: not an ed25519 key"));
        }
        let k = NoteKey::new(
            name,
            PublicKeyBytes::from_slice(&raw[1..]).map_err(NoteError)?,
        )?;
        if format!("{:08x}", k.id()) != id {
            return err(format!(
                "verifier key of {name}: its key id does not match the key"
            ));
        }
        Ok(k)
    }
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: u32,
    pub signature: [u8; 64],
}

impl NoteSignature {
    fn line(&self) -> String {
        let mut b = self.key_id.to_be_bytes().to_vec();
        b.extend_from_slice(&self.signature);
        format!("{SIG_PREFIX}{} {}\n", self.name, B64.encode(b))
    }
}

/// A note: its text and the signatures over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

impl SignedNote {
    pub fn new(text: String) -> SignedNote {
        SignedNote {
            text,
            signatures: Vec::new(),
        }
    }

    /// Adds `key`'s signature (a key signs a text once).
    pub fn sign(&mut self, name: &str, key: &SigningKey) -> Result<(), NoteError> {
        let nk = NoteKey::new(name, PublicKeyBytes(key.verifying_key().to_bytes()))?;
        if self
            .signatures
            .iter()
            .any(|s| s.name == name && s.key_id == nk.id())
        {
            return Ok(());
        }
        self.signatures.push(NoteSignature {
            name: name.to_string(),
            key_id: nk.id(),
            signature: key.sign(self.text.as_bytes()).to_bytes(),
        });
        Ok(())
    }

    /// The signed note as text: the body, a blank line, one line per signature.
    pub fn format(&self) -> String {
        let mut s = self.text.clone();
        s.push('\n');
        for sig in &self.signatures {
            s.push_str(&sig.line());
        }
        s
    }

    pub fn parse(s: &str) -> Result<SignedNote, NoteError> {
        let Some(split) = s.rfind("\n\n") else {
            return err("no blank line between the body and the signatures");
        };
        let (text, sigs) = (&s[..split + 1], &s[split + 2..]);
        if !sigs.ends_with('\n') {
            return err("the signature block must end with a newline");
        }
        let mut signatures = Vec::new();
        for line in sigs[..sigs.len() - 1].split('\n') {
            let rest = line
                .strip_prefix(SIG_PREFIX)
                .ok_or(NoteError(format!("{line:?} is not a signature line")))?;
            let (name, b) = rest
                .split_once(' ')
                .ok_or(NoteError(format!("{line:?} is not a signature line")))?;
            let raw = B64
                .decode(b)
                .map_err(|_| NoteError(format!("signature of {name}: bad base64")))?;
            if raw.len() != 68 {
                return err(format!("signature of {name}: not an ed25519 signature"));
            }
            signatures.push(NoteSignature {
                name: name.to_string(),
                key_id: u32::from_be_bytes(raw[..4].try_into().expect("4 bytes")),
                signature: raw[4..].try_into().expect("64 bytes"),
            });
        }
        if signatures.is_empty() {
            return err("the note carries no signature");
        }
        if signatures.len() > MAX_NOTE_SIGNATURES {
            return err(format!("more than {MAX_NOTE_SIGNATURES} signatures"));
        }
        Ok(SignedNote {
            text: text.to_string(),
            signatures,
        })
    }

    /// The names of the `trusted` keys whose signatures verify. A signature by a trusted key
    /// that does not verify is an error (a tampered note), not a shorter list.
    pub fn verify(&self, trusted: &[NoteKey]) -> Result<Vec<String>, NoteError> {
        let mut ok = Vec::new();
        for sig in &self.signatures {
            let Some(k) = trusted
                .iter()
                .find(|k| k.name == sig.name && k.id() == sig.key_id)
            else {
                continue;
            };
            let vk = VerifyingKey::from_bytes(&k.public_key.0)
                .map_err(|_| NoteError(format!("trusted key {} is not an ed25519 key", k.name)))?;
            vk.verify_strict(
                self.text.as_bytes(),
                &ed25519_dalek::Signature::from_bytes(&sig.signature),
            )
            .map_err(|_| NoteError(format!("the signature of {} does not verify", k.name)))?;
            if !ok.contains(&k.name) {
                ok.push(k.name.clone());
            }
        }
        Ok(ok)
    }
}

/// One trusted node key and the jurisdiction whose agency runs the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedNode {
    pub key: NoteKey,
    /// `None` for a key listed in the old one-key-per-line form.
    pub jurisdiction: Option<String>,
}

/// The node keys a verifier trusts, and how many of them must sign a note for it to count.
///
/// Text form, one node per line (`#` starts a comment): `JURISDICTION name+keyid+base64key`,
/// or the older bare `name+keyid+base64key`. A key or name listed twice is refused: it would
/// let one key count twice towards the quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    pub nodes: Vec<TrustedNode>,
    /// Distinct trusted signatures a checkpoint or statement needs.
    pub quorum: usize,
}

impl Trust {
    /// Parses a trust file; the quorum is a majority of its keys.
    pub fn parse(text: &str) -> Result<Trust, NoteError> {
        let mut nodes: Vec<TrustedNode> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |e: NoteError| NoteError(format!("line {}: {}", n + 1, e.0));
            let (jurisdiction, verifier) = match line.split_once(char::is_whitespace) {
                Some((j, v)) => {
                    crate::jurisdiction::Jurisdiction::new(j.to_string())
                        .map_err(|e| at(NoteError(e.0)))?;
                    (Some(j.to_string()), v.trim())
                }
                None => (None, line),
            };
            let key = NoteKey::parse_verifier(verifier).map_err(at)?;
            if nodes
                .iter()
                .any(|t| t.key.name == key.name || t.key.public_key == key.public_key)
            {
                return Err(at(NoteError(format!(
                    "node {} or its key is listed twice",
                    key.name
                ))));
            }
            nodes.push(TrustedNode { key, jurisdiction });
        }
        if nodes.is_empty() {
            return err("the trust file lists no node key");
        }
        let quorum = nodes.len() / 2 + 1;
        Ok(Trust { nodes, quorum })
    }

    /// The same keys with another quorum (`--quorum`), between 1 and the number of keys.
    pub fn with_quorum(mut self, quorum: usize) -> Result<Trust, NoteError> {
        if quorum == 0 || quorum > self.nodes.len() {
            return err(format!(
                "a quorum of {quorum} is impossible with {} trusted node key(s)",
                self.nodes.len()
            ));
        }
        self.quorum = quorum;
        Ok(self)
    }

    pub fn keys(&self) -> Vec<NoteKey> {
        self.nodes.iter().map(|n| n.key.clone()).collect()
    }

    /// `name (JURISDICTION)`, or the name alone when the trust file does not say.
    pub fn describe(&self, name: &str) -> String {
        match self
            .nodes
            .iter()
            .find(|n| n.key.name == name)
            .and_then(|n| n.jurisdiction.as_deref())
        {
            Some(j) => format!("{name} ({j})"),
            None => name.to_string(),
        }
    }

    /// The trust file text (new form where jurisdictions are known).
    pub fn format(&self) -> String {
        self.nodes
            .iter()
            .map(|n| match &n.jurisdiction {
                Some(j) => format!("{j} {}\n", n.key.verifier_string()),
                None => format!("{}\n", n.key.verifier_string()),
            })
            .collect()
    }

    /// The names of the trusted signers of `note`, when they reach the quorum. `what` names the
    /// note in the reason ("its checkpoint"). Every signature line must be by a trusted key: a
    /// line that cannot be checked could be anything, so it is refused rather than skipped.
    pub fn verify_quorum(&self, note: &SignedNote, what: &str) -> Result<Vec<String>, NoteError> {
        let keys = self.keys();
        for s in &note.signatures {
            if !keys.iter().any(|k| k.name == s.name && k.id() == s.key_id) {
                return err(format!(
                    "{what} carries a signature by {:?}, a key not in the trust file (add that node's key to the trust file)",
                    s.name
                ));
            }
        }
        let signed = note.verify(&keys)?;
        if signed.len() < self.quorum {
            let who = if signed.is_empty() {
                "no trusted node".to_string()
            } else {
                signed
                    .iter()
                    .map(|n| self.describe(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return err(format!(
                "{what} is signed by {who}: {} of the {} trusted node keys, {} needed (a quorum; see --quorum)",
                signed.len(),
                self.nodes.len(),
                self.quorum
            ));
        }
        Ok(signed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn a_cosigned_checkpoint_round_trips_and_verifies() {
        let cp = Checkpoint {
            origin: "pcl-dev".into(),
            size: 42,
            root: Hash32([9; 32]),
        };
        let mut note = SignedNote::new(cp.body());
        note.sign("cn44-a", &key(1)).unwrap();
        note.sign("cn33-a", &key(2)).unwrap();
        let text = note.format();
        let parsed = SignedNote::parse(&text).unwrap();
        assert_eq!(parsed, note);
        assert_eq!(Checkpoint::parse_body(&parsed.text).unwrap(), cp);
        let trusted = [
            NoteKey::new("cn44-a", PublicKeyBytes(key(1).verifying_key().to_bytes())).unwrap(),
            NoteKey::new("cn33-a", PublicKeyBytes(key(2).verifying_key().to_bytes())).unwrap(),
        ];
        assert_eq!(parsed.verify(&trusted).unwrap(), vec!["cn44-a", "cn33-a"]);
        let back = NoteKey::parse_verifier(&trusted[0].verifier_string()).unwrap();
        assert_eq!(back, trusted[0]);
        // Any change of the body breaks every signature.
        let tampered = text.replacen("\n42\n", "\n43\n", 1);
        let t = SignedNote::parse(&tampered).unwrap();
        assert!(t.verify(&trusted).is_err());
    }

    /// Golden vector: the body format and the C2SP key id (SHA-256 of name ‖ LF ‖ 0x01 ‖ key).
    #[test]
    fn golden_body_and_key_id() {
        let cp = Checkpoint {
            origin: "example.org/log".into(),
            size: 3,
            root: Hash32([0; 32]),
        };
        assert_eq!(
            cp.body(),
            "example.org/log\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
        );
        let k = NoteKey::new("n", PublicKeyBytes([0; 32])).unwrap();
        let mut h = Sha256::new();
        h.update(b"n\n\x01");
        h.update([0u8; 32]);
        let d = h.finalize();
        assert_eq!(k.id(), u32::from_be_bytes([d[0], d[1], d[2], d[3]]));
    }

    #[test]
    fn malformed_notes_are_refused_with_a_reason() {
        for bad in [
            "",
            "origin\n1\nroot\n",
            "origin\n1\nAAAA\n\n\u{2014} n AAAA\n",
            "origin\n01\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        ] {
            let parsed =
                SignedNote::parse(bad).and_then(|n| Checkpoint::parse_body(&n.text).map(|_| n));
            let direct = Checkpoint::parse_body(bad);
            assert!(parsed.is_err() || direct.is_err(), "{bad:?}");
        }
    }

    fn trust_of(seeds: &[u8]) -> Trust {
        let text: String = seeds
            .iter()
            .map(|s| {
                let k = NoteKey::new(
                    &format!("n{s}"),
                    PublicKeyBytes(key(*s).verifying_key().to_bytes()),
                )
                .unwrap();
                format!("CN-44 {}\n", k.verifier_string())
            })
            .collect();
        Trust::parse(&text).unwrap()
    }

    #[test]
    fn a_minority_of_trusted_signatures_is_refused_with_who_and_how_many() {
        let trust = trust_of(&[1, 2, 3]);
        assert_eq!(trust.quorum, 2, "a majority by default");
        let mut note =
            SignedNote::new("pcl\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n".into());
        note.sign("n1", &key(1)).unwrap();
        let e = trust.verify_quorum(&note, "its checkpoint").unwrap_err();
        assert!(
            e.0.contains("n1 (CN-44)") && e.0.contains("1 of the 3") && e.0.contains("2 needed"),
            "{e}"
        );
        note.sign("n2", &key(2)).unwrap();
        assert_eq!(trust.verify_quorum(&note, "x").unwrap(), vec!["n1", "n2"]);
        let all = trust.clone().with_quorum(3).unwrap();
        assert!(all.verify_quorum(&note, "x").is_err());
        assert!(trust.clone().with_quorum(4).is_err());
        assert!(trust.with_quorum(0).is_err());
    }

    #[test]
    fn trust_files_old_and_new_forms_and_duplicates() {
        let k1 = NoteKey::new("a", PublicKeyBytes(key(1).verifying_key().to_bytes())).unwrap();
        let k2 = NoteKey::new("b", PublicKeyBytes(key(2).verifying_key().to_bytes())).unwrap();
        let old = format!(
            "# comment\n{}\n{}\n",
            k1.verifier_string(),
            k2.verifier_string()
        );
        let t = Trust::parse(&old).unwrap();
        assert_eq!(t.nodes[0].jurisdiction, None);
        assert_eq!(t.quorum, 2);
        let new = format!(
            "CN-44 {}\nDE {}\n",
            k1.verifier_string(),
            k2.verifier_string()
        );
        let t = Trust::parse(&new).unwrap();
        assert_eq!(t.nodes[1].jurisdiction.as_deref(), Some("DE"));
        assert_eq!(Trust::parse(&t.format()).unwrap(), t);
        let twice = format!("{}\n{}\n", k1.verifier_string(), k1.verifier_string());
        assert!(Trust::parse(&twice).unwrap_err().0.contains("twice"));
        let same_key = NoteKey::new("c", k1.public_key).unwrap();
        let alias = format!("{}\n{}\n", k1.verifier_string(), same_key.verifier_string());
        assert!(
            Trust::parse(&alias).is_err(),
            "one key under two names counts once"
        );
        assert!(Trust::parse("# nothing\n").is_err());
        assert!(Trust::parse(&format!("cn44 {}\n", k1.verifier_string())).is_err());
    }
}
