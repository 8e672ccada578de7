//! The node's notary: it signs checkpoints of its own tree, cosigns a peer's checkpoint only when
//! its own tree has the same root at that size, and keeps the evidence when shown one that does
//! not (a fork).
//!
//! Why this is safe without remembering what it signed: a node signs only checkpoints that match
//! its own tree, and its tree only grows (the log is append-only and verified at start-up), so it
//! can never sign two checkpoints of one size with different roots, nor two inconsistent ones.
//!
//! The notary key lives in `DATA_DIR/node.key` (created on first start, mode 0600); its C2SP
//! verifier string is written to `DATA_DIR/node.pub` for trust files. Fork evidence is kept in
//! `DATA_DIR/forks/`, one file per conflicting note, and reported by `status` and `Checkpoint`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use ledger_core::checkpoint::{Checkpoint, NoteKey, SignedNote};
use ledger_core::envelope::parse_secret_key;
use ledger_core::event::PublicKeyBytes;
use ledger_core::{log_tree, state};
use tonic::Status;

use crate::store::SledStore;

/// How long a statement waits for the peers' cosignatures.
pub const COSIGN_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Notary {
    key: SigningKey,
    name: String,
    origin: String,
    forks_dir: PathBuf,
    forks: Mutex<Vec<String>>,
    /// Public URLs of the other nodes asked to cosign.
    peers: Vec<String>,
    /// How the peers are reached (TLS pinned to the members' node keys).
    transport: ledger_client::transport::Transport,
}

#[derive(Debug, thiserror::Error)]
pub enum NotaryError {
    #[error("notary key {path}: {message}")]
    Key { path: String, message: String },
    #[error("fork evidence in {path}: {source}")]
    Evidence {
        path: String,
        source: std::io::Error,
    },
}

pub fn load_or_create_key(path: &Path) -> Result<SigningKey, NotaryError> {
    let fail = |message: String| NotaryError::Key {
        path: path.display().to_string(),
        message,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => parse_secret_key(&text).map_err(|e| fail(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            crate::dev::write_key_file(path, &key).map_err(|e| fail(e.to_string()))?;
            Ok(key)
        }
        Err(e) => Err(fail(e.to_string())),
    }
}

impl Notary {
    pub fn open(
        data_dir: &Path,
        name: &str,
        origin: &str,
        peers: Vec<String>,
    ) -> Result<Notary, NotaryError> {
        std::fs::create_dir_all(data_dir).map_err(|e| NotaryError::Key {
            path: data_dir.display().to_string(),
            message: e.to_string(),
        })?;
        let key = load_or_create_key(&data_dir.join("node.key"))?;
        let notary_key = NoteKey::new(name, PublicKeyBytes(key.verifying_key().to_bytes()))
            .map_err(|e| NotaryError::Key {
                path: "node_id".into(),
                message: e.to_string(),
            })?;
        let pub_path = data_dir.join("node.pub");
        std::fs::write(&pub_path, format!("{}\n", notary_key.verifier_string())).map_err(|e| {
            NotaryError::Key {
                path: pub_path.display().to_string(),
                message: e.to_string(),
            }
        })?;
        let forks_dir = data_dir.join("forks");
        let mut forks = Vec::new();
        if let Ok(dir) = std::fs::read_dir(&forks_dir) {
            let mut files: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files {
                if let Ok(t) = std::fs::read_to_string(&f) {
                    forks.push(t);
                }
            }
        }
        if !forks.is_empty() {
            tracing::error!(count = forks.len(), dir = %forks_dir.display(), "this node holds evidence of a fork");
        }
        Ok(Notary {
            key,
            name: name.to_string(),
            origin: origin.to_string(),
            forks_dir,
            forks: Mutex::new(forks),
            peers,
            transport: ledger_client::transport::Transport::Plaintext,
        })
    }

    pub fn with_transport(mut self, transport: ledger_client::transport::Transport) -> Notary {
        self.transport = transport;
        self
    }

    pub fn verifier(&self) -> NoteKey {
        NoteKey::new(
            &self.name,
            PublicKeyBytes(self.key.verifying_key().to_bytes()),
        )
        .expect("checked at open")
    }

    pub fn forks(&self) -> Vec<String> {
        self.forks.lock().expect("lock").clone()
    }

    /// A checkpoint of the tree as the store holds it now, signed by this node.
    pub fn checkpoint(&self, store: &SledStore) -> Result<SignedNote, Status> {
        let read = |e: state::StoreFault| Status::internal(e.to_string());
        let size = state::read_head(store).map_err(read)?.size;
        let cp = Checkpoint {
            origin: self.origin.clone(),
            size,
            root: log_tree::root(store, size).map_err(read)?,
        };
        let mut note = SignedNote::new(cp.body());
        note.sign(&self.name, &self.key)
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(note)
    }

    /// Cosigns `text` when this node's tree agrees with it; refuses (and keeps the evidence of a
    /// fork) when it does not.
    pub fn cosign(&self, store: &SledStore, text: &str) -> Result<SignedNote, Status> {
        let mut note =
            SignedNote::parse(text).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let cp = Checkpoint::parse_body(&note.text)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if cp.origin != self.origin {
            return Err(Status::invalid_argument(format!(
                "the checkpoint is of ledger {:?}, this node keeps {:?}",
                cp.origin, self.origin
            )));
        }
        let read = |e: state::StoreFault| Status::internal(e.to_string());
        let size = state::read_head(store).map_err(read)?.size;
        if cp.size > size {
            return Err(Status::failed_precondition(format!(
                "this node has applied {size} events, fewer than the checkpoint's {}; ask again later",
                cp.size
            )));
        }
        let mine = log_tree::root(store, cp.size).map_err(read)?;
        if mine != cp.root {
            self.keep_evidence(text)?;
            return Err(Status::failed_precondition(format!(
                "fork: the checkpoint's root at size {} differs from this node's ({}); the \
                 checkpoint is kept as evidence",
                cp.size,
                mine.to_hex()
            )));
        }
        note.sign(&self.name, &self.key)
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(note)
    }

    fn keep_evidence(&self, text: &str) -> Result<(), Status> {
        let mut forks = self.forks.lock().expect("lock");
        if forks.iter().any(|f| f == text) {
            return Ok(());
        }
        std::fs::create_dir_all(&self.forks_dir)
            .and_then(|_| {
                std::fs::write(
                    self.forks_dir.join(format!("{:06}.note", forks.len() + 1)),
                    text,
                )
            })
            .map_err(|e| Status::internal(format!("keeping fork evidence: {e}")))?;
        forks.push(text.to_string());
        tracing::error!(note = %text.replace('\n', "\\n"), "FORK: a peer presented a checkpoint that conflicts with this node's tree");
        Ok(())
    }

    /// This node's checkpoint with the signatures of every peer that cosigns it within
    /// [`COSIGN_TIMEOUT`] (a peer still behind is asked again until then).
    pub async fn cosigned(&self, store: &SledStore) -> Result<SignedNote, Status> {
        let mut note = self.checkpoint(store)?;
        let text = note.format();
        let asks = self
            .peers
            .iter()
            .map(|url| ask_cosign(url.clone(), text.clone(), self.transport.clone()));
        for got in futures_join_all(asks).await.into_iter().flatten() {
            if got.text == note.text {
                for s in got.signatures {
                    if !note.signatures.contains(&s) {
                        note.signatures.push(s);
                    }
                }
            }
        }
        Ok(note)
    }
}

async fn ask_cosign(
    url: String,
    text: String,
    transport: ledger_client::transport::Transport,
) -> Option<SignedNote> {
    use ledger_proto::rights::{rights_client::RightsClient, CosignRequest};
    let deadline = tokio::time::Instant::now() + COSIGN_TIMEOUT;
    loop {
        let attempt = async {
            let channel = ledger_client::transport::channel(&url, &transport)
                .await
                .ok()?;
            let mut c = RightsClient::new(channel);
            match c.cosign(CosignRequest { note: text.clone() }).await {
                Ok(r) => Some(Ok(r.into_inner().note)),
                Err(s) => Some(Err(s)),
            }
        };
        match tokio::time::timeout_at(deadline, attempt).await {
            Ok(Some(Ok(note))) => return SignedNote::parse(&note).ok(),
            Ok(Some(Err(s)))
                if s.code() == tonic::Code::FailedPrecondition
                    && !s.message().starts_with("fork") => {}
            Ok(Some(Err(s))) => {
                tracing::warn!(peer = %url, error = %s.message(), "a peer refused to cosign");
                return None;
            }
            Ok(None) => {}
            Err(_) => return None,
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs futures concurrently and collects their outputs in order (no extra crate for one join).
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futs: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}
