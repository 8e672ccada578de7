//! The sled backend. One tree, one `apply_batch` and one durable flush per committed batch:
//! sled's batches are atomic, and [`Durable::flush`] makes them durable (sled's own flush does
//! not reach the disk; see `durable`).

use std::path::Path;

use ledger_core::kv::{StateRead, StoreFault, Writes};

use super::durable::Durable;
use super::{Entry, Store, StoreError};

pub struct SledStore {
    db: sled::Db,
    durable: Durable,
}

impl SledStore {
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            // Larger cache than sled's 1 GiB default is not needed; smaller keeps dev clusters lean.
            .cache_capacity(256 * 1024 * 1024)
            .open()
            .map_err(|e| match e {
                sled::Error::Corruption { .. } => StoreError::Corrupt(format!(
                    "sled reports corruption at {}: {e}",
                    dir.display()
                )),
                other => {
                    StoreError::Io(format!("opening sled store at {}: {other}", dir.display()))
                }
            })?;
        let durable = Durable::open(db.clone(), dir).map_err(|e| StoreError::Io(e.to_string()))?;
        Ok(Self { db, durable })
    }

    /// The sled database, for the trees that live beside the ledger (the Raft log).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Flushes the database so that every write before the call is on the disk, for the trees
    /// beside the ledger (the Raft log and vote, the snapshot's name).
    pub fn durable(&self) -> &Durable {
        &self.durable
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.durable
            .flush()
            .map_err(|e| StoreError::Io(format!("flushing the store: {e}")))
    }
}

fn map_err(e: sled::Error) -> StoreError {
    match e {
        sled::Error::Corruption { .. } => StoreError::Corrupt(e.to_string()),
        other => StoreError::Io(other.to_string()),
    }
}

impl StateRead for SledStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreFault> {
        Ok(self.db.get(key).map_err(map_err)?.map(|v| v.to_vec()))
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<Entry>, StoreFault> {
        self.db
            .scan_prefix(prefix)
            .map(|item| {
                let (k, v) = item.map_err(map_err)?;
                Ok((k.to_vec(), v.to_vec()))
            })
            .collect()
    }
}

impl Store for SledStore {
    fn commit(&self, writes: &Writes) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (k, v) in writes {
            match v {
                Some(v) => batch.insert(k.as_slice(), v.as_slice()),
                None => batch.remove(k.as_slice()),
            }
        }
        self.db.apply_batch(batch).map_err(map_err)?;
        self.flush()
    }

    fn replace_all(&self, entries: Vec<Entry>) -> Result<(), StoreError> {
        // One batch removes every old key and inserts the new ones: atomic in sled.
        let mut batch = sled::Batch::default();
        for item in self.db.iter().keys() {
            batch.remove(item.map_err(map_err)?);
        }
        for (k, v) in entries {
            batch.insert(k, v);
        }
        self.db.apply_batch(batch).map_err(map_err)?;
        self.flush()
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = match after {
            Some(a) => {
                let mut start = a.to_vec();
                start.push(0);
                Box::new(self.db.range(start..))
            }
            None => Box::new(self.db.scan_prefix(prefix)),
        };
        for item in iter {
            let (k, v) = item.map_err(map_err)?;
            if !k.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }
}
