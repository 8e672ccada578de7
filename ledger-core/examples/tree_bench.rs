//! Measures the log's Merkle tree at scale: appending N leaves (stored subtrees in memory, as
//! the state machine writes them), then inclusion and consistency proofs from the stored tree and
//! their verification. `cargo run --release -p ledger-core --example tree_bench -- [N]`.

use std::collections::BTreeMap;
use std::time::Instant;

use ledger_core::event::Hash32;
use ledger_core::kv::{KeyValue, Overlay, StateRead, StoreFault};
use ledger_core::log_tree;
use ledger_core::merkle::leaf_hash;
use ledger_core::records::{self, StoredTree};

struct Mem(BTreeMap<Vec<u8>, Vec<u8>>);

impl StateRead for Mem {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreFault> {
        Ok(self.0.get(key).cloned())
    }
    fn scan_prefix(&self, _: &[u8]) -> Result<Vec<KeyValue>, StoreFault> {
        Ok(Vec::new())
    }
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_048_576);
    let mut m = Mem(BTreeMap::new());
    let mut leaves: Vec<Hash32> = Vec::with_capacity(n as usize);
    let t = Instant::now();
    for i in 0..n {
        let leaf = leaf_hash(&i.to_be_bytes());
        let mut o = Overlay::new(&m);
        records::append_leaf(&mut o, i, leaf).expect("append");
        for (k, v) in o.into_writes() {
            m.0.insert(k, v.expect("no deletes"));
        }
        leaves.push(leaf);
    }
    let append = t.elapsed();
    let root = log_tree::root(&StoredTree(&m), n).expect("root");
    let samples = 10_000u64;
    let pick = |s: u64| (s.wrapping_mul(2_654_435_761) ^ 0x9e37) % n;
    let t = Instant::now();
    let proofs: Vec<(u64, Vec<Hash32>)> = (0..samples)
        .map(|s| {
            let i = pick(s);
            (
                i,
                log_tree::prove_inclusion(&StoredTree(&m), i, n).expect("proof"),
            )
        })
        .collect();
    let prove = t.elapsed();
    let t = Instant::now();
    for (i, p) in &proofs {
        assert!(log_tree::check_inclusion(
            &leaves[*i as usize],
            *i,
            n,
            p,
            &root
        ));
    }
    let verify = t.elapsed();
    let t = Instant::now();
    let cons: Vec<(u64, Vec<Hash32>)> = (0..1000)
        .map(|s| {
            let old = pick(s).max(1);
            (
                old,
                log_tree::prove_consistency(&StoredTree(&m), old, n).expect("proof"),
            )
        })
        .collect();
    let cprove = t.elapsed();
    let t = Instant::now();
    for (old, p) in &cons {
        let r = log_tree::root(&StoredTree(&m), *old).expect("root");
        assert!(log_tree::check_consistency(*old, n, &r, &root, p));
    }
    let cverify = t.elapsed();
    let per = |d: std::time::Duration, k: u64| d.as_secs_f64() * 1e6 / k as f64;
    println!("leaves: {n}; stored nodes: {}", m.0.len());
    println!("append: {:.2} µs/leaf", per(append, n));
    println!(
        "inclusion proof: {:.1} µs to build, {:.1} µs to verify ({} hashes)",
        per(prove, samples),
        per(verify, samples),
        proofs[0].1.len()
    );
    println!(
        "consistency proof: {:.1} µs to build, {:.1} µs to verify (incl. the old root)",
        per(cprove, 1000),
        per(cverify, 1000)
    );
}
