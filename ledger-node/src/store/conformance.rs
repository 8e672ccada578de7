//! The conformance suite every [`Store`] backend must pass. Backends call [`run_all`] from their
//! tests with a constructor of fresh, empty stores.

use ledger_core::kv::Writes;

use super::Store;

fn writes(pairs: &[(&[u8], Option<&[u8]>)]) -> Writes {
    pairs
        .iter()
        .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
        .collect()
}

/// Runs every check against fresh stores from `make`.
pub fn run_all<S: Store>(mut make: impl FnMut() -> S) {
    get_after_commit(&make());
    deletes_remove(&make());
    batch_is_applied_whole(&make());
    scan_respects_prefix_order_after_and_limit(&make());
    empty_values_are_values(&make());
    large_values_round_trip(&make());
    replace_all_replaces_everything(&make());
}

/// `replace_all` leaves exactly the new entries.
pub fn replace_all_replaces_everything<S: Store>(s: &S) {
    s.commit(&writes(&[(b"old", Some(b"1")), (b"keep", Some(b"old"))]))
        .unwrap();
    s.replace_all(vec![
        (b"keep".to_vec(), b"new".to_vec()),
        (b"fresh".to_vec(), b"2".to_vec()),
    ])
    .unwrap();
    assert_eq!(s.get(b"old").unwrap(), None);
    assert_eq!(s.get(b"keep").unwrap().as_deref(), Some(&b"new"[..]));
    assert_eq!(s.scan(b"", None, 10).unwrap().len(), 2);
}

/// A committed value is read back; a missing key reads as None.
pub fn get_after_commit<S: Store>(s: &S) {
    assert_eq!(s.get(b"a").unwrap(), None);
    s.commit(&writes(&[(b"a", Some(b"1"))])).unwrap();
    assert_eq!(s.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    s.commit(&writes(&[(b"a", Some(b"2"))])).unwrap();
    assert_eq!(
        s.get(b"a").unwrap().as_deref(),
        Some(&b"2"[..]),
        "overwrite wins"
    );
}

/// A `None` write deletes.
pub fn deletes_remove<S: Store>(s: &S) {
    s.commit(&writes(&[(b"k", Some(b"v"))])).unwrap();
    s.commit(&writes(&[(b"k", None)])).unwrap();
    assert_eq!(s.get(b"k").unwrap(), None);
}

/// Every write of a batch is visible after commit.
pub fn batch_is_applied_whole<S: Store>(s: &S) {
    let w: Writes = (0u32..500)
        .map(|i| {
            (
                format!("b{i:04}").into_bytes(),
                Some(i.to_be_bytes().to_vec()),
            )
        })
        .collect();
    s.commit(&w).unwrap();
    for i in 0u32..500 {
        assert_eq!(
            s.get(format!("b{i:04}").as_bytes()).unwrap(),
            Some(i.to_be_bytes().to_vec())
        );
    }
}

/// Scans return only the prefix, in key order, after the given key, at most `limit`.
pub fn scan_respects_prefix_order_after_and_limit<S: Store>(s: &S) {
    s.commit(&writes(&[
        (b"w\x00", Some(b"")),
        (b"wa\x00\x02", Some(b"2")),
        (b"wa\x00\x01", Some(b"1")),
        (b"wa\x00\x03", Some(b"3")),
        (b"wb\x00\x01", Some(b"x")),
        (b"x", Some(b"y")),
    ]))
    .unwrap();
    let all = s.scan(b"wa\x00", None, 100).unwrap();
    let keys: Vec<_> = all.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(
        keys,
        vec![
            b"wa\x00\x01".to_vec(),
            b"wa\x00\x02".to_vec(),
            b"wa\x00\x03".to_vec()
        ]
    );
    let after = s.scan(b"wa\x00", Some(b"wa\x00\x01"), 100).unwrap();
    assert_eq!(after.len(), 2);
    assert_eq!(after[0].1, b"2".to_vec());
    assert_eq!(s.scan(b"wa\x00", None, 1).unwrap().len(), 1);
    assert!(s.scan(b"zz", None, 10).unwrap().is_empty());
}

/// An empty value is a value, not an absence.
pub fn empty_values_are_values<S: Store>(s: &S) {
    s.commit(&writes(&[(b"e", Some(b""))])).unwrap();
    assert_eq!(s.get(b"e").unwrap(), Some(Vec::new()));
}

/// Values of megabytes (a large payroll event) round-trip intact.
pub fn large_values_round_trip<S: Store>(s: &S) {
    let big: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    s.commit(&writes(&[(b"big", Some(&big))])).unwrap();
    assert_eq!(s.get(b"big").unwrap().unwrap(), big);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, SledStore};
    use ledger_core::kv::StateRead;

    #[test]
    fn memory_store_conforms() {
        run_all(MemoryStore::new);
    }

    #[test]
    fn sled_store_conforms() {
        let dirs: Vec<tempfile::TempDir> = Vec::new();
        let dirs = std::cell::RefCell::new(dirs);
        run_all(|| {
            let d = tempfile::tempdir().unwrap();
            let s = SledStore::open(d.path()).unwrap();
            dirs.borrow_mut().push(d);
            s
        });
    }

    #[test]
    fn sled_commits_survive_reopen() {
        // Durability across a clean reopen: what commit acknowledged is there after.
        let d = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(d.path()).unwrap();
            s.commit(&writes(&[(b"durable", Some(b"yes"))])).unwrap();
        }
        let s = SledStore::open(d.path()).unwrap();
        assert_eq!(s.get(b"durable").unwrap().as_deref(), Some(&b"yes"[..]));
    }
}
