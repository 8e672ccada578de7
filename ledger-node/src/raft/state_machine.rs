//! The Raft state machine of the ledger: committed entries are applied with
//! `ledger_core::state::apply_entry` to the node's ledger store, together with the Raft
//! bookkeeping (last applied log id, membership) in the same atomic batch, so a crash never
//! leaves the ledger and the applied index apart.
//!
//! A snapshot is the whole ledger store (it is the ledger: events are never purged), framed and
//! checksummed; the receiver replaces its store with it and verifies the log before serving.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

use ledger_core::envelope::{Envelope, VerifiedEvent};
use ledger_core::pb;
use ledger_core::refusal::Refusal;
use ledger_core::state::{self, StateRead, StoreFault, Writes};
use ledger_core::time::Instant;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use prost::Message;

use super::{record, refused, LedgerRequest, LedgerResponse, NodeId, TypeConfig};
use crate::store::{Entry as KvEntry, SledStore, Store};

type Result<T> = std::result::Result<T, StorageError<NodeId>>;
/// The last applied log id and the membership it carries.
type AppliedState = (
    Option<LogId<NodeId>>,
    StoredMembership<NodeId, super::LedgerNode>,
);

/// Raft bookkeeping inside the ledger keyspace (`m` prefix), written with each applied batch.
const APPLIED_KEY: &[u8] = b"mraft_applied";
const MEMBERSHIP_KEY: &[u8] = b"mraft_membership";
const SNAPSHOT_TREE: &str = "raft_snapshot";
/// First bytes of a ledger snapshot (format version 1).
const SNAPSHOT_MAGIC: &[u8] = b"PCL-SNAPSHOT-1\n";

#[derive(Clone)]
pub struct LedgerStateMachine {
    store: Arc<SledStore>,
    snapshots: sled::Tree,
    /// Apply takes it for writing; building a snapshot for reading, so a snapshot never sees
    /// half of an apply.
    apply_lock: Arc<tokio::sync::RwLock<()>>,
}

/// Reads through writes not yet committed (earlier entries of the same apply call).
struct Layered<'a> {
    base: &'a SledStore,
    pending: &'a Writes,
}

impl StateRead for Layered<'_> {
    fn get(&self, key: &[u8]) -> std::result::Result<Option<Vec<u8>>, StoreFault> {
        match self.pending.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }
    fn scan_prefix(
        &self,
        prefix: &[u8],
    ) -> std::result::Result<Vec<(Vec<u8>, Vec<u8>)>, StoreFault> {
        Ok(ledger_core::state::scan_through(
            self.base.scan_prefix(prefix)?,
            self.pending,
            prefix,
        ))
    }
}

fn read_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(&std::io::Error::other(e.to_string())).into()
}
fn write_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(&std::io::Error::other(e.to_string())).into()
}

/// Applies one ledger request on `view`: the same bytes give the same outcomes and writes on
/// every node. Envelopes are opened again (signatures included): a follower does not take the
/// leader's word for them.
fn apply_request(
    view: &dyn StateRead,
    req: &LedgerRequest,
) -> std::result::Result<(LedgerResponse, Writes), StoreFault> {
    let Ok(stamp) = Instant::from_unix_utc(req.stamp_seconds, req.stamp_nanos) else {
        let r = Refusal::Malformed("the entry's stamp is out of range".into());
        return Ok((
            LedgerResponse {
                outcomes: req.envelopes.iter().map(|_| refused(&r)).collect(),
            },
            Writes::new(),
        ));
    };
    let opened: Vec<std::result::Result<VerifiedEvent, Refusal>> = req
        .envelopes
        .iter()
        .map(|bytes| {
            let env = pb::Envelope::decode(bytes.as_slice())
                .map_err(|e| Refusal::Malformed(format!("envelope: {e}")))?;
            Envelope::from_pb(env)?.open()
        })
        .collect();
    let verified: Vec<VerifiedEvent> = opened
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    let applied = state::apply_entry(view, stamp, &verified)?;
    let mut outcomes = applied.outcomes.into_iter();
    let records = opened
        .iter()
        .map(|r| match r {
            Err(refusal) => refused(refusal),
            Ok(_) => record(outcomes.next().expect("an outcome per verified event")),
        })
        .collect();
    Ok((LedgerResponse { outcomes: records }, applied.writes))
}

impl LedgerStateMachine {
    pub fn open(store: Arc<SledStore>) -> std::result::Result<Self, sled::Error> {
        let snapshots = store.db().open_tree(SNAPSHOT_TREE)?;
        Ok(Self {
            store,
            snapshots,
            apply_lock: Arc::default(),
        })
    }

    fn applied_meta(&self) -> Result<AppliedState> {
        let applied = match self.store.get(APPLIED_KEY).map_err(read_err)? {
            Some(b) => serde_json::from_slice(&b).map_err(read_err)?,
            None => None,
        };
        let membership = match self.store.get(MEMBERSHIP_KEY).map_err(read_err)? {
            Some(b) => serde_json::from_slice(&b).map_err(read_err)?,
            None => StoredMembership::default(),
        };
        Ok((applied, membership))
    }

    /// Frames every entry of the ledger store: magic, then (u32 length, key, u32 length, value)*,
    /// then the BLAKE3 of everything before.
    fn dump(&self) -> Result<Vec<u8>> {
        let mut out = SNAPSHOT_MAGIC.to_vec();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self
                .store
                .scan(b"", after.as_deref(), 4096)
                .map_err(read_err)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (k, v) in &page {
                for part in [k, v] {
                    let len = u32::try_from(part.len()).map_err(read_err)?;
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(part);
                }
            }
        }
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        Ok(out)
    }

    pub(super) fn parse(data: &[u8]) -> std::result::Result<Vec<KvEntry>, String> {
        if data.len() < SNAPSHOT_MAGIC.len() + 32 || !data.starts_with(SNAPSHOT_MAGIC) {
            return Err("not a ledger snapshot (bad magic or truncated)".into());
        }
        let (body, sum) = data.split_at(data.len() - 32);
        if blake3::hash(body).as_bytes() != sum {
            return Err("snapshot checksum mismatch".into());
        }
        let mut rest = &body[SNAPSHOT_MAGIC.len()..];
        let take = |rest: &mut &[u8]| -> std::result::Result<Vec<u8>, String> {
            let len_bytes: [u8; 4] = rest
                .get(..4)
                .ok_or("truncated length")?
                .try_into()
                .map_err(|_| "length")?;
            let len = u32::from_be_bytes(len_bytes) as usize;
            let part = rest.get(4..4 + len).ok_or("truncated entry")?.to_vec();
            *rest = &rest[4 + len..];
            Ok(part)
        };
        let mut entries = Vec::new();
        while !rest.is_empty() {
            let k = take(&mut rest)?;
            let v = take(&mut rest)?;
            entries.push((k, v));
        }
        Ok(entries)
    }

    fn save_snapshot(
        &self,
        meta: &SnapshotMeta<NodeId, super::LedgerNode>,
        data: &[u8],
    ) -> Result<()> {
        let meta_bytes = serde_json::to_vec(meta).map_err(write_err)?;
        let mut batch = sled::Batch::default();
        batch.insert("meta", meta_bytes);
        batch.insert("data", data);
        self.snapshots.apply_batch(batch).map_err(write_err)?;
        self.store.db().flush().map_err(write_err)?;
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for LedgerStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>> {
        let (data, applied, membership) = {
            let _consistent = self.apply_lock.read().await;
            let (applied, membership) = self.applied_meta()?;
            (self.dump()?, applied, membership)
        };
        let head = state::read_head(self.store.as_ref())
            .map(|h| h.size)
            .unwrap_or(0);
        let meta = SnapshotMeta {
            last_log_id: applied,
            last_membership: membership,
            snapshot_id: format!(
                "{}-{}-ledger-{head}",
                applied.map_or(0, |l| l.leader_id.term),
                applied.map_or(0, |l| l.index)
            ),
        };
        self.save_snapshot(&meta, &data)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for LedgerStateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(
        Option<LogId<NodeId>>,
        StoredMembership<NodeId, super::LedgerNode>,
    )> {
        self.applied_meta()
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<LedgerResponse>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let _exclusive = self.apply_lock.write().await;
        let (mut applied, mut membership) = self.applied_meta()?;
        let mut pending: Writes = BTreeMap::new();
        let mut responses = Vec::new();
        for e in entries {
            applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => responses.push(LedgerResponse::default()),
                EntryPayload::Membership(m) => {
                    membership = StoredMembership::new(Some(e.log_id), m);
                    responses.push(LedgerResponse::default());
                }
                EntryPayload::Normal(req) => {
                    let view = Layered {
                        base: &self.store,
                        pending: &pending,
                    };
                    let (response, writes) = apply_request(&view, &req).map_err(|f| {
                        StorageError::from(StorageIOError::apply(
                            e.log_id,
                            &std::io::Error::other(f.0),
                        ))
                    })?;
                    pending.extend(writes);
                    responses.push(response);
                }
            }
        }
        pending.insert(
            APPLIED_KEY.to_vec(),
            Some(serde_json::to_vec(&applied).map_err(write_err)?),
        );
        pending.insert(
            MEMBERSHIP_KEY.to_vec(),
            Some(serde_json::to_vec(&membership).map_err(write_err)?),
        );
        // One atomic, flushed batch for the whole range: ledger writes and Raft bookkeeping.
        self.store.commit(&pending).map_err(write_err)?;
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, super::LedgerNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<()> {
        let data = snapshot.into_inner();
        let signature = meta.signature();
        let snap_err = |e: String| -> StorageError<NodeId> {
            StorageIOError::read_snapshot(Some(signature.clone()), &std::io::Error::other(e)).into()
        };
        let entries = Self::parse(&data).map_err(snap_err)?;
        let _exclusive = self.apply_lock.write().await;
        self.store.replace_all(entries).map_err(write_err)?;
        // The snapshot is a ledger: check every record and the chain before serving it.
        crate::ledger::verify_log(self.store.as_ref(), None)
            .map_err(|why| snap_err(format!("installed snapshot fails verification: {why}")))?;
        let (applied, _) = self.applied_meta()?;
        if applied != meta.last_log_id {
            return Err(snap_err(format!(
                "snapshot says applied {:?}, its data {applied:?}",
                meta.last_log_id
            )));
        }
        self.save_snapshot(meta, &data)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>> {
        let meta = self.snapshots.get("meta").map_err(read_err)?;
        let data = self.snapshots.get("data").map_err(read_err)?;
        match (meta, data) {
            (Some(m), Some(d)) => {
                let meta: SnapshotMeta<NodeId, super::LedgerNode> =
                    serde_json::from_slice(&m).map_err(read_err)?;
                Ok(Some(Snapshot {
                    meta,
                    snapshot: Box::new(Cursor::new(d.to_vec())),
                }))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{OutcomeRecord, RaftLogStore};
    use openraft::testing::{StoreBuilder, Suite};

    struct Builder;

    fn genesis() -> ledger_core::genesis::Genesis {
        let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        ledger_core::genesis::Genesis {
            ledger: "pcl-raft-test".into(),
            jurisdictions: vec![ledger_core::genesis::GenesisJurisdiction {
                code: "CN-44".parse().unwrap(),
                agency_keys: vec![ledger_core::event::PublicKeyBytes(
                    key.verifying_key().to_bytes(),
                )],
            }],
        }
    }

    impl StoreBuilder<TypeConfig, RaftLogStore, LedgerStateMachine, tempfile::TempDir> for Builder {
        async fn build(&self) -> Result<(tempfile::TempDir, RaftLogStore, LedgerStateMachine)> {
            let dir = tempfile::tempdir().map_err(write_err)?;
            let store = Arc::new(SledStore::open(dir.path()).map_err(write_err)?);
            store
                .commit(&state::genesis_writes(&genesis()))
                .map_err(write_err)?;
            let log = RaftLogStore::open(store.db()).map_err(write_err)?;
            let sm = LedgerStateMachine::open(store).map_err(write_err)?;
            Ok((dir, log, sm))
        }
    }

    #[test]
    fn openraft_storage_suite() -> Result<()> {
        // openraft's own conformance suite for log storage and state machine (not a tokio test:
        // the suite runs its own runtime per case).
        Suite::test_all(Builder)
    }

    #[test]
    fn snapshots_round_trip_and_reject_damage() {
        // A dumped ledger parses back to the same entries; one flipped byte is refused.
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        store.commit(&state::genesis_writes(&genesis())).unwrap();
        let sm = LedgerStateMachine::open(store.clone()).unwrap();
        let data = sm.dump().unwrap();
        let entries = LedgerStateMachine::parse(&data).unwrap();
        assert_eq!(entries, store.scan(b"", None, usize::MAX).unwrap());
        let mut bad = data.clone();
        bad[SNAPSHOT_MAGIC.len() + 3] ^= 1;
        assert!(LedgerStateMachine::parse(&bad).is_err());
    }

    fn fresh() -> (tempfile::TempDir, Arc<SledStore>, LedgerStateMachine) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        store.commit(&state::genesis_writes(&genesis())).unwrap();
        let sm = LedgerStateMachine::open(store.clone()).unwrap();
        (dir, store, sm)
    }

    fn entries() -> Vec<Entry<TypeConfig>> {
        let agency = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let signed_at: Instant = "2024-06-01T00:00:00Z".parse().unwrap();
        let env = |json: String| {
            let (kind, _) = ledger_core::event::parse_json_event(&json).unwrap();
            Envelope::sign(
                &ledger_core::event::EventBody { signed_at, kind },
                &[&agency],
            )
            .to_pb()
            .encode_to_vec()
        };
        (1..=5u64)
            .map(|i| {
                let person = format!(
                    r#"{{"type":"person_registered","worker":"W-{i}","jurisdiction":"CN-44","sex":"M","birth_date":"1980-01-01","nationality":"CN"}}"#
                );
                let req = LedgerRequest {
                    stamp_seconds: signed_at.unix_seconds() + i as i64,
                    stamp_nanos: 0,
                    // The second copy is a duplicate; the third a refusal (a second registration
                    // of the same worker with other bytes).
                    envelopes: vec![env(person.clone()), env(person.clone()), env(person.replace("1980", "1981"))],
                };
                Entry { log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), i), payload: EntryPayload::Normal(req) }
            })
            .collect()
    }

    #[tokio::test]
    async fn the_same_log_gives_byte_identical_ledgers() {
        // Two fresh state machines fed the same Raft entries (in different apply batches) end
        // with byte-identical stores, and answer the same outcomes.
        let (_a, store_a, mut sm_a) = fresh();
        let (_b, store_b, mut sm_b) = fresh();
        let all = entries();
        let out_a = sm_a.apply(all.clone()).await.unwrap();
        let mut out_b = sm_b.apply(all[..2].to_vec()).await.unwrap();
        out_b.extend(sm_b.apply(all[2..].to_vec()).await.unwrap());
        assert_eq!(out_a, out_b);
        assert!(matches!(
            out_a[0].outcomes[1],
            OutcomeRecord::Appended {
                duplicate: true,
                ..
            }
        ));
        assert!(
            matches!(&out_a[0].outcomes[2], OutcomeRecord::Refused { code, .. } if code == "already_exists")
        );
        assert_eq!(
            store_a.scan(b"", None, usize::MAX).unwrap(),
            store_b.scan(b"", None, usize::MAX).unwrap()
        );
        assert_eq!(state::read_head(store_a.as_ref()).unwrap().size, 5);
        assert_eq!(sm_a.applied_state().await.unwrap().0, Some(all[4].log_id));
    }

    #[tokio::test]
    async fn an_installed_snapshot_is_the_same_ledger() {
        // A follower that installs a leader's snapshot holds the same bytes, verified.
        let (_a, store_a, mut leader) = fresh();
        leader.apply(entries()).await.unwrap();
        let snap = leader.build_snapshot().await.unwrap();
        let (_b, store_b, mut follower) = fresh();
        follower
            .install_snapshot(&snap.meta, snap.snapshot)
            .await
            .unwrap();
        assert_eq!(
            store_a.scan(b"", None, usize::MAX).unwrap(),
            store_b.scan(b"", None, usize::MAX).unwrap()
        );
        assert_eq!(
            follower.get_current_snapshot().await.unwrap().unwrap().meta,
            snap.meta
        );
    }
}
