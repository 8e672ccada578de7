//! Offline verification of statements, trust files, and the audit of checkpoints across nodes.

use ledger_core::checkpoint::{Checkpoint, NoteKey, SignedNote, Trust};
use ledger_core::fact::Published;
use ledger_core::log_tree::check_consistency;
use ledger_core::rulebook::Rulebook;
use ledger_core::rules::{self, Params};
use ledger_core::statement::{self, Proven};
use ledger_core::time::Date;

use crate::{Client, ClientError};

/// Reads a trust file (see [`Trust`]: `JURISDICTION name+keyid+base64key` per line, or the
/// older bare key per line; `#` comments). The quorum is a majority of its keys.
pub fn load_trust_file(path: &std::path::Path) -> Result<Trust, ClientError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ClientError::Key(format!("cannot read trust file {}: {e}", path.display())))?;
    Trust::parse(&text).map_err(|e| ClientError::Key(format!("{}: {}", path.display(), e.0)))
}

/// The trust file's keys, for a caller that needs no quorum (audit).
pub fn load_trust(path: &std::path::Path) -> Result<Vec<NoteKey>, ClientError> {
    Ok(load_trust_file(path)?.keys())
}

/// Verifies a statement file's content against a quorum of trusted keys, fully offline.
pub fn verify_statement(text: &str, trust: &Trust) -> Result<Proven, ClientError> {
    statement::verify(text, trust).map_err(|e| ClientError::Invalid(e.to_string()))
}

/// The entitlement recomputed from a statement's proven events (and the parameters it carries),
/// with this build's rulebook.
pub fn recompute(proven: &Proven, as_of: Date) -> Result<rules::Entitlement, ClientError> {
    let facts = statement::facts(proven);
    let rulebook = Rulebook::builtin();
    let published: Vec<Published> = proven.parameters.clone();
    let params = Params {
        rulebook: &rulebook,
        published: &published,
    };
    rules::entitlement(&proven.worker, &facts, &params, as_of)
        .map_err(|e| ClientError::Invalid(e.to_string()))
}

/// One node's answer in an audit.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeCheckpoint {
    pub url: String,
    pub name: Option<String>,
    pub size: Option<u64>,
    pub root: Option<String>,
    pub error: Option<String>,
    pub forks: Vec<String>,
}

/// Evidence that two nodes' trees disagree.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Fork {
    pub a: String,
    pub b: String,
    pub why: String,
    pub notes: [String; 2],
}

/// Fetches every node's checkpoint, checks each one's signature with the key the node states
/// (and with `trusted` when given), then checks every pair: the same root at the same size, or a
/// consistency proof from the smaller to the larger that verifies against both roots.
pub async fn audit(
    urls: &[String],
    trusted: Option<&[NoteKey]>,
) -> (Vec<NodeCheckpoint>, Vec<Fork>) {
    let mut nodes = Vec::new();
    let mut good: Vec<(usize, Checkpoint, String)> = Vec::new();
    for url in urls {
        let mut n = NodeCheckpoint {
            url: url.clone(),
            name: None,
            size: None,
            root: None,
            error: None,
            forks: Vec::new(),
        };
        match signed_checkpoint(url, trusted).await {
            Ok((name, cp, note, forks)) => {
                n.name = Some(name);
                n.size = Some(cp.size);
                n.root = Some(cp.root.to_hex());
                n.forks = forks;
                good.push((nodes.len(), cp, note));
            }
            Err(e) => n.error = Some(e.to_string()),
        }
        nodes.push(n);
    }
    let mut forks = Vec::new();
    for (i, (ia, a, na)) in good.iter().enumerate() {
        for (ib, b, nb) in good.iter().skip(i + 1) {
            let large_url = if a.size <= b.size {
                &nodes[*ib].url
            } else {
                &nodes[*ia].url
            };
            if let Some(why) = disagreement(a, b, large_url).await {
                forks.push(Fork {
                    a: nodes[*ia].url.clone(),
                    b: nodes[*ib].url.clone(),
                    why,
                    notes: [na.clone(), nb.clone()],
                });
            }
        }
    }
    (nodes, forks)
}

/// A node's checkpoint, signed by the key it states (which must be in `trusted` when given):
/// the key's name, the checkpoint, its note and the fork evidence the node holds.
async fn signed_checkpoint(
    url: &str,
    trusted: Option<&[NoteKey]>,
) -> Result<(String, Checkpoint, String, Vec<String>), ClientError> {
    let invalid = |e: &dyn std::fmt::Display| ClientError::Invalid(e.to_string());
    let mut c = Client::connect(url).await?;
    let r = c.checkpoint().await?;
    let key = NoteKey::parse_verifier(&r.verifier).map_err(|e| invalid(&e))?;
    if let Some(t) = trusted {
        if !t.contains(&key) {
            return Err(ClientError::Invalid(format!(
                "its key {} is not in the trust file",
                key.name
            )));
        }
    }
    let note = SignedNote::parse(&r.note).map_err(|e| invalid(&e))?;
    let signed = note
        .verify(std::slice::from_ref(&key))
        .map_err(|e| invalid(&e))?;
    if signed.is_empty() {
        return Err(ClientError::Invalid(
            "its checkpoint is not signed by its own key".into(),
        ));
    }
    let cp = Checkpoint::parse_body(&note.text).map_err(|e| invalid(&e))?;
    Ok((key.name, cp, r.note, r.forks))
}

/// Why two checkpoints cannot both be true, if they cannot: another ledger, two roots for one
/// size, or a larger tree (held by `large_url`) that does not extend the smaller.
async fn disagreement(a: &Checkpoint, b: &Checkpoint, large_url: &str) -> Option<String> {
    let (small, large) = if a.size <= b.size { (a, b) } else { (b, a) };
    if a.origin != b.origin {
        return Some(format!(
            "different ledgers: {:?} and {:?}",
            a.origin, b.origin
        ));
    }
    if small.size == large.size {
        return (small.root != large.root).then(|| format!("two roots for size {}", small.size));
    }
    let proof = match Client::connect(large_url).await {
        Ok(mut c) => c.consistency(small.size, large.size).await.ok(),
        Err(_) => None,
    };
    match proof {
        Some(p) if check_consistency(small.size, large.size, &small.root, &large.root, &p) => None,
        Some(_) => Some(format!(
            "the tree of {} events is not a prefix of the tree of {}",
            small.size, large.size
        )),
        None => Some(format!(
            "no consistency proof from {} to {} could be obtained",
            small.size, large.size
        )),
    }
}
