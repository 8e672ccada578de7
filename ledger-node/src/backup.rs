//! Backup and restore of a node's ledger.
//!
//! A backup is a format-2 ledger snapshot (`raft::snapshot`) written to a file: the events up
//! to one applied index, the head, Merkle root and Raft bookkeeping of that index, and a BLAKE3
//! trailer. It is taken **online** (`ledger-node backup`): the running node streams it over the
//! Admin service's `Backup` call to a connection that proves the node's own key, so a backup
//! needs no downtime and only the node's operator (who holds `DATA_DIR/node.key`) can take one;
//! the header is read under the apply lock (one applied state), the events below it never
//! change. Offline copying of the sled directory is not offered: it is neither consistent while
//! the node runs nor checkable on its own.
//!
//! A backup is checked exactly as a peer's snapshot is before install (`snapshot::stage`): into
//! a fresh store made from the genesis, every event opened again and replayed, the head link and
//! Merkle root compared with the header (`verify-backup`, and `backup` itself before it keeps
//! the file). `restore` does the same into the new data directory and commits it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use ledger_core::checkpoint::{Checkpoint, SignedNote, Trust};
use ledger_core::genesis::Genesis;
use ledger_core::records;
use ledger_core::state;
use ledger_proto::admin::BackupChunk;
use openraft::StoredMembership;
use tonic::Status;

use crate::config::{load_genesis, NodeConfig};
use crate::ledger::Ledger;
use crate::raft::snapshot::{self as snap, Header, Staged};
use crate::raft::state_machine::Layered;
use crate::store::{SledStore, Store};

/// Bytes per streamed chunk: far below the gRPC message limit, large enough to keep the
/// per-message overhead small.
pub const BACKUP_CHUNK_BYTES: usize = 256 * 1024;
/// Chunks buffered between the thread reading the store and the gRPC stream.
const BACKUP_CHANNEL_CHUNKS: usize = 4;

type Chunks = tokio::sync::mpsc::Sender<Result<BackupChunk, Status>>;

/// Feeds the snapshot writer's bytes into the gRPC stream, one chunk at a time.
struct ChunkWriter {
    tx: Chunks,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(BACKUP_CHUNK_BYTES));
        self.tx
            .blocking_send(Ok(BackupChunk { data }))
            .map_err(|_| std::io::Error::other("the backup client went away"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let room = BACKUP_CHUNK_BYTES - self.buf.len();
        let n = bytes.len().min(room);
        self.buf.extend_from_slice(&bytes[..n]);
        if self.buf.len() == BACKUP_CHUNK_BYTES {
            self.send()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// The header of a backup of `ledger` now: under Raft, one applied state with its Raft log id
/// and membership; a single node's head is one record, and its root at that size never changes.
async fn header(ledger: &Ledger) -> Result<Header, String> {
    match ledger.state_machine() {
        Some(sm) => sm.backup_header().await,
        None => snap::current_header(ledger.store(), None, StoredMembership::default()),
    }
}

/// Streams a backup of `ledger` (the Admin service's `Backup`).
pub async fn stream(
    ledger: Arc<Ledger>,
) -> Result<tokio_stream::wrappers::ReceiverStream<Result<BackupChunk, Status>>, Status> {
    let header = header(&ledger)
        .await
        .map_err(|e| Status::internal(format!("reading the ledger's head for a backup: {e}")))?;
    tracing::info!(events = header.size, applied = ?header.last_applied, "streaming a backup");
    let (tx, rx) = tokio::sync::mpsc::channel(BACKUP_CHANNEL_CHUNKS);
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(BACKUP_CHUNK_BYTES),
        };
        if let Err(e) = snap::write(ledger.store(), &header, &mut out) {
            tracing::warn!(error = %e, "a backup stopped");
            let _ = tx.blocking_send(Err(Status::internal(format!("writing the backup: {e}"))));
        }
    });
    Ok(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// A directory removed when dropped (a scratch store for checking a backup).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch_dir(near: &Path) -> anyhow::Result<Scratch> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = near.join(format!(".verify-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(Scratch(dir))
}

/// Checks `file` into `store` (which must hold only `genesis`'s writes), as a received snapshot
/// is checked: nothing is committed.
fn stage_into(store: &SledStore, genesis: &Genesis, file: &Path) -> anyhow::Result<Staged> {
    store
        .commit(&state::genesis_writes(genesis))
        .context("creating a store from the genesis")?;
    let input = std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
    snap::stage(store, input).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

/// What a checked backup holds.
pub struct Verified {
    pub header: Header,
    /// The checkpoint it was compared with: its size and signers.
    pub checkpoint: Option<(u64, Vec<String>)>,
}

/// Checks a backup completely against `genesis` (and a checkpoint when given): every event is
/// opened and replayed into a scratch store beside the file; head link and root must match.
pub fn verify(
    file: &Path,
    genesis: &Genesis,
    checkpoint: Option<(&Path, &Trust)>,
) -> anyhow::Result<Verified> {
    let near = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let scratch = scratch_dir(near)?;
    let store = SledStore::open(&scratch.0.join("store"))?;
    let staged = stage_into(&store, genesis, file)?;
    let checkpoint = match checkpoint {
        None => None,
        Some((path, trust)) => Some(against_checkpoint(&store, &staged, genesis, path, trust)?),
    };
    Ok(Verified {
        header: staged.header,
        checkpoint,
    })
}

/// A checkpoint note from a file: the note itself, or any JSON document with a `checkpoint`
/// note (a statement file).
fn read_checkpoint(path: &Path) -> anyhow::Result<SignedNote> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let note = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => v["checkpoint"]
            .as_str()
            .map(str::to_string)
            .with_context(|| {
                format!("{}: a JSON file without a checkpoint note", path.display())
            })?,
        Err(_) => text,
    };
    SignedNote::parse(&note).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.0))
}

/// The backup's log must have the checkpoint's root at the checkpoint's size, and the
/// checkpoint must be signed by a quorum of `trust`.
fn against_checkpoint(
    store: &SledStore,
    staged: &Staged,
    genesis: &Genesis,
    path: &Path,
    trust: &Trust,
) -> anyhow::Result<(u64, Vec<String>)> {
    let note = read_checkpoint(path)?;
    let signers = trust
        .verify_quorum(&note, "the checkpoint")
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.0))?;
    let cp = Checkpoint::parse_body(&note.text)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.0))?;
    if cp.origin != genesis.ledger {
        bail!(
            "the checkpoint is of ledger {:?}, the genesis of {:?}",
            cp.origin,
            genesis.ledger
        );
    }
    if cp.size > staged.header.size {
        bail!(
            "the checkpoint is at {} events, the backup holds {}: compare with a checkpoint at \
             or before the backup",
            cp.size,
            staged.header.size
        );
    }
    let view = Layered {
        base: store,
        pending: &staged.writes,
    };
    let root = ledger_core::records::tree_root(&view, cp.size).map_err(|e| anyhow::anyhow!(e.0))?;
    if root != cp.root {
        bail!(
            "the backup's Merkle root at {} events is {}, the checkpoint signed by {} says {}: \
             this backup is not the ledger those nodes hold",
            cp.size,
            root.to_hex(),
            signers.join(", "),
            cp.root.to_hex()
        );
    }
    Ok((cp.size, signers))
}

/// Builds a new data directory for `cfg` from a backup: checked like `verify`, then committed
/// in one batch, with the head marker of its head. The data directory must hold no store.
pub fn restore(file: &Path, cfg: &NodeConfig) -> anyhow::Result<Header> {
    let genesis = load_genesis(&cfg.genesis)?;
    let header = snap::read_header(
        std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?,
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    if let Some(raft) = &cfg.raft {
        if header.membership.membership().get_node(&raft.id).is_some() {
            bail!(
                "Raft id {} is a member in the backup: a restored node has lost its vote and \
                 the log entries it acknowledged after the backup, so under its old id it \
                 could help the cluster lose committed entries. Give it a new [raft] id (not \
                 among [[raft.members]]); it then joins like a new node (member add, promote, \
                 and member remove of the old id)",
                raft.id
            );
        }
    }
    let store_dir = cfg.data_dir.join("store");
    if store_dir.exists() {
        bail!(
            "{} exists: move the damaged data directory aside (keep it for analysis) and \
             restore into an empty one; nothing changed",
            store_dir.display()
        );
    }
    crate::store::durable::create_dir_all_synced(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let store = SledStore::open(&store_dir)?;
    let staged = match stage_into(&store, &genesis, file) {
        Ok(s) => s,
        Err(e) => {
            drop(store);
            let _ = std::fs::remove_dir_all(&store_dir);
            return Err(e.context("the backup is refused; the data directory is left empty"));
        }
    };
    store.commit(&staged.writes)?;
    let head = records::read_head(&store).map_err(|e| anyhow::anyhow!(e.0))?;
    let marker = cfg.data_dir.join("head");
    let (mut m, _) = crate::head_marker::HeadMarker::open(&marker)
        .with_context(|| format!("opening {}", marker.display()))?;
    m.write(&head)
        .with_context(|| format!("writing {}", marker.display()))?;
    Ok(staged.header)
}

/// How the operator's tool reaches its own node: TLS pinned to the node key, presenting a
/// certificate over that same key (which only the node's operator holds).
fn operator_transport(
    cfg: &NodeConfig,
) -> anyhow::Result<(String, ledger_client::transport::Transport)> {
    use ledger_client::transport::{Pins, Transport};
    if cfg.tls.mode == crate::config::TlsMode::Plaintext {
        bail!(
            "the node runs without TLS, so it cannot tell its operator from anyone else: \
             online backups need TLS"
        );
    }
    let path = cfg.data_dir.join("node.key");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (the node's own key)", path.display()))?;
    let key = ledger_core::envelope::parse_secret_key(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let identity = crate::tls::node_identity(&key, &["localhost".into()])?;
    Ok((
        format!("https://{}", crate::probe::local_address(cfg.listen)),
        Transport::Tls {
            pins: Pins::keys([key.verifying_key().to_bytes()]),
            identity: Some(Arc::new(identity)),
        },
    ))
}

/// `ledger-node backup`: asks the node of `cfg`, on this machine, for a backup over TLS with
/// the node's own key, writes it to `out` (never replacing a file), and checks it.
pub async fn take(cfg: &NodeConfig, out: &Path) -> anyhow::Result<Verified> {
    use ledger_proto::admin::{admin_client::AdminClient, BackupRequest};
    if out.exists() {
        bail!("{} exists: a backup never replaces a file", out.display());
    }
    let genesis = load_genesis(&cfg.genesis)?;
    let (url, transport) = operator_transport(cfg)?;
    let ch = ledger_client::transport::channel(&url, &transport)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the node at {url}: {e}"))?;
    let mut stream = AdminClient::new(ch)
        .max_decoding_message_size(2 * BACKUP_CHUNK_BYTES)
        .backup(BackupRequest {})
        .await
        .map_err(|s| anyhow::anyhow!("the node refused the backup: {}", s.message()))?
        .into_inner();
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    let partial = out.with_file_name(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let received = async {
        while let Some(chunk) = stream.message().await? {
            file.write_all(&chunk.data)?;
        }
        file.sync_all()?;
        anyhow::Ok(())
    };
    let kept = match received.await {
        Ok(()) => verify(&partial, &genesis, None).and_then(|v| keep(&partial, out).map(|()| v)),
        Err(e) => Err(e.context("receiving the backup")),
    };
    if kept.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    kept
}

/// Renames the checked backup into place (never over a file) and syncs the directory.
fn keep(partial: &Path, out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        bail!("{} exists: a backup never replaces a file", out.display());
    }
    std::fs::rename(partial, out).with_context(|| format!("writing {}", out.display()))?;
    crate::store::durable::sync_dir(
        out.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )?;
    Ok(())
}

/// One line about a checked backup.
pub fn describe(h: &Header) -> String {
    format!(
        "{} events, Merkle root {}, head link {}, Raft applied {}",
        h.size,
        h.root.to_hex(),
        h.head_chain.to_hex(),
        h.last_applied.map_or("none".to_string(), |l| format!(
            "{} (term {})",
            l.index, l.leader_id.term
        ))
    )
}
