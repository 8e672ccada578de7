//! An in-memory backend: the reference the conformance suite is checked against, and the store
//! of determinism tests that replay a log many times. Not durable; never used by a running node.

use std::collections::BTreeMap;
use std::sync::RwLock;

use ledger_core::kv::{StateRead, StoreFault, Writes};

use super::{Entry, Store, StoreError};

#[derive(Default)]
pub struct MemoryStore {
    map: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
    /// Every entry, for byte-for-byte comparison of two stores.
    pub fn dump(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        self.map.read().expect("lock").clone()
    }
}

impl StateRead for MemoryStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreFault> {
        Ok(self.map.read().expect("lock").get(key).cloned())
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<Entry>, StoreFault> {
        Ok(self
            .map
            .read()
            .expect("lock")
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

impl Store for MemoryStore {
    fn commit(&self, writes: &Writes) -> Result<(), StoreError> {
        let mut map = self.map.write().expect("lock");
        for (k, v) in writes {
            match v {
                Some(v) => map.insert(k.clone(), v.clone()),
                None => map.remove(k),
            };
        }
        Ok(())
    }

    fn replace_all(&self, entries: Vec<Entry>) -> Result<(), StoreError> {
        *self.map.write().expect("lock") = entries.into_iter().collect();
        Ok(())
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let map = self.map.read().expect("lock");
        let start = after.map_or_else(
            || prefix.to_vec(),
            |a| {
                let mut s = a.to_vec();
                s.push(0);
                s
            },
        );
        Ok(map
            .range(start..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}
