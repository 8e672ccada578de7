//! The Raft log and vote on sled, in trees of the node's database beside the ledger. The vote
//! and appended entries are on the disk (sled's flush followed by `fdatasync`: see
//! `store::durable`) before openraft is told they are durable, so before a vote is granted or an
//! append acknowledged to the leader.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use serde::{de::DeserializeOwned, Serialize};

use super::{NodeId, TypeConfig};
use crate::store::durable::Durable;
use crate::store::SledStore;

type Result<T> = std::result::Result<T, StorageError<NodeId>>;

const LOG_TREE: &str = "raft_log";
const META_TREE: &str = "raft_meta";

/// The Raft log store. Cloning shares the trees (openraft's replication tasks read concurrently).
#[derive(Clone)]
pub struct RaftLogStore {
    durable: Durable,
    log: sled::Tree,
    meta: sled::Tree,
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl RaftLogStore {
    pub fn open(store: &SledStore) -> std::result::Result<Self, sled::Error> {
        let db = store.db();
        Ok(Self {
            durable: store.durable().clone(),
            log: db.open_tree(LOG_TREE)?,
            meta: db.open_tree(META_TREE)?,
        })
    }

    fn get_meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let v = self.meta.get(key).map_err(|e| StorageIOError::read(&e))?;
        v.map(|b| serde_json::from_slice(&b).map_err(|e| StorageIOError::read(&e).into()))
            .transpose()
    }

    /// Writes a meta value, durably when `durable` (openraft relies on the vote surviving).
    async fn put_meta<T: Serialize>(&self, key: &str, value: &T, durable: bool) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| StorageIOError::write(&e))?;
        self.meta
            .insert(key, bytes)
            .map_err(|e| StorageIOError::write(&e))?;
        if durable {
            self.durable
                .flush_async()
                .await
                .map_err(|e| StorageIOError::write(&e))?;
        }
        Ok(())
    }

    fn decode(bytes: &[u8]) -> Result<Entry<TypeConfig>> {
        super::decode(bytes)
            .map_err(|e| StorageIOError::read_logs(&std::io::Error::other(e)).into())
    }
}

impl RaftLogReader<TypeConfig> for RaftLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let mut out = Vec::new();
        for item in self.log.range(index_key(start)..) {
            let (k, v) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            let index = u64::from_be_bytes(
                k.as_ref()
                    .try_into()
                    .map_err(|e| StorageIOError::read_logs(&e))?,
            );
            if !range.contains(&index) {
                break;
            }
            out.push(Self::decode(&v)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for RaftLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId<NodeId>> = self.get_meta("last_purged")?;
        let last_log_id = match self.log.last().map_err(|e| StorageIOError::read_logs(&e))? {
            Some((_, v)) => Some(Self::decode(&v)?.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<()> {
        self.put_meta("vote", vote, true).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>> {
        self.get_meta("vote")
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<()> {
        // Not synced: the state machine syncs every applied batch before `apply` returns, so
        // openraft does not need the committed id to survive (openraft's `save_committed` docs);
        // the next durable flush carries it anyway.
        self.put_meta("committed", &committed, false).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>> {
        Ok(self
            .get_meta::<Option<LogId<NodeId>>>("committed")?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        for e in entries {
            let bytes = super::encode(&e)
                .map_err(|err| StorageIOError::write_logs(&std::io::Error::other(err)))?;
            batch.insert(&index_key(e.log_id.index), bytes);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        // Readable now; durable only after the flush and its fdatasync, and only then is openraft
        // told (and so the leader, or a client_write on the leader).
        let flushed = self.durable.flush_async().await;
        callback.log_io_completed(flushed);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        let mut batch = sled::Batch::default();
        for item in self.log.range(index_key(log_id.index)..) {
            batch.remove(item.map_err(|e| StorageIOError::write_logs(&e))?.0);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.durable
            .flush_async()
            .await
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        // Record the purge point first: a crash in between leaves extra entries, never a gap.
        self.put_meta("last_purged", &log_id, true).await?;
        let mut batch = sled::Batch::default();
        for item in self.log.range(..=index_key(log_id.index)) {
            batch.remove(item.map_err(|e| StorageIOError::write_logs(&e))?.0);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}
