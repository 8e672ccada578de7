//! The storage vocabulary, and nothing else: reads of an ordered key-value state
//! ([`StateRead`]), the writes of one batch ([`Writes`]), the read failure ([`StoreFault`]), and
//! [`Overlay`], the one way to read a state through writes not yet committed. Every layer that
//! reads storage imports this module, never the state machine.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A read failure of the underlying store. Fatal for apply: a node that cannot read its state
/// must stop rather than decide differently from its peers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store fault: {0}")]
pub struct StoreFault(pub String);

/// Reads of the ledger state: point reads, and prefix scans for the projection.
pub trait StateRead {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreFault>;
    /// Every entry whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreFault>;
}

/// A key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Writes of one batch: `None` deletes. Ordered, so applying them is deterministic.
pub type Writes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// A prefix scan of `base` seen through `pending` writes (later writes win, `None` deletes).
pub fn scan_through(base: Vec<KeyValue>, pending: &Writes, prefix: &[u8]) -> Vec<KeyValue> {
    let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = base.into_iter().collect();
    for (k, v) in pending
        .range(prefix.to_vec()..)
        .take_while(|(k, _)| k.starts_with(prefix))
    {
        match v {
            Some(v) => merged.insert(k.clone(), v.clone()),
            None => merged.remove(k),
        };
    }
    merged.into_iter().collect()
}

/// A state seen through pending writes: a pending value hides the base's, and a pending delete
/// hides it too (it reads as absent, never as the base's older value).
pub struct Overlay<'a> {
    base: &'a dyn StateRead,
    writes: Writes,
}

impl<'a> Overlay<'a> {
    pub fn new(base: &'a dyn StateRead) -> Overlay<'a> {
        Overlay {
            base,
            writes: Writes::new(),
        }
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    pub fn put_json<T: Serialize>(&mut self, key: Vec<u8>, value: &T) {
        self.put(
            key,
            serde_json::to_vec(value).expect("state records serialize"),
        );
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// Adds writes made elsewhere (later ones win).
    pub fn extend(&mut self, writes: Writes) {
        self.writes.extend(writes);
    }

    /// The writes, for committing (or for merging into a parent overlay).
    pub fn into_writes(self) -> Writes {
        self.writes
    }
}

impl StateRead for Overlay<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreFault> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreFault> {
        Ok(scan_through(
            self.base.scan_prefix(prefix)?,
            &self.writes,
            prefix,
        ))
    }
}

/// A JSON record, if present.
pub fn get_json<T: DeserializeOwned>(
    view: &dyn StateRead,
    key: &[u8],
) -> Result<Option<T>, StoreFault> {
    view.get(key)?
        .map(|b| serde_json::from_slice(&b).map_err(|e| StoreFault(format!("state record: {e}"))))
        .transpose()
}

/// A big-endian u64 value (an index), if present; any other length is a fault, never a zero.
pub fn get_u64(view: &dyn StateRead, key: &[u8]) -> Result<Option<u64>, StoreFault> {
    view.get(key)?
        .map(|b| {
            <[u8; 8]>::try_from(b.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreFault(format!("index entry of {} bytes, expected 8", b.len())))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Base(BTreeMap<Vec<u8>, Vec<u8>>);
    impl StateRead for Base {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreFault> {
            Ok(self.0.get(key).cloned())
        }
        fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreFault> {
            Ok(self
                .0
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect())
        }
    }

    /// A pending delete reads as absent through every path, and nested overlays agree.
    #[test]
    fn a_pending_delete_hides_the_base_value() {
        let base = Base(BTreeMap::from([
            (b"a1".to_vec(), b"old".to_vec()),
            (b"a2".to_vec(), b"kept".to_vec()),
        ]));
        let mut o = Overlay::new(&base);
        o.delete(b"a1".to_vec());
        o.put(b"a3".to_vec(), b"new".to_vec());
        assert_eq!(o.get(b"a1").unwrap(), None);
        assert_eq!(o.get(b"a2").unwrap(), Some(b"kept".to_vec()));
        let keys: Vec<Vec<u8>> = o
            .scan_prefix(b"a")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec![b"a2".to_vec(), b"a3".to_vec()]);
        let child = Overlay::new(&o);
        assert_eq!(child.get(b"a1").unwrap(), None);
        assert_eq!(child.scan_prefix(b"a").unwrap().len(), 2);
    }

    #[test]
    fn an_index_of_the_wrong_length_is_a_fault_not_zero() {
        let base = Base(BTreeMap::from([
            (b"i1".to_vec(), 7u64.to_be_bytes().to_vec()),
            (b"i2".to_vec(), vec![1, 2, 3]),
        ]));
        assert_eq!(get_u64(&base, b"i1").unwrap(), Some(7));
        assert_eq!(get_u64(&base, b"i0").unwrap(), None);
        assert!(get_u64(&base, b"i2").is_err());
    }
}
