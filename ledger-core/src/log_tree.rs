//! The Merkle tree over the ledger's log (RFC 6962/9162 shape with BLAKE3, [`crate::merkle`]):
//! leaf i is the i-th appended event. Shaped like Go's `sumdb/tlog`: every complete subtree's
//! hash is stored once (level, position), and proofs are pure `prove_*` functions over a
//! [`HashReader`] that yields those stored hashes, each paired with a `check_*` that needs only
//! the proof. A root, an inclusion proof or a consistency proof between any two sizes reads
//! O(log² n) hashes and never rescans the log. This module knows no storage: the reader over
//! the ledger state is [`crate::records::StoredTree`], so a client that checks a proof links
//! none of it.

use crate::ids::Hash32;
use crate::merkle::{leaf_hash, node_hash};
use crate::time::Instant;

/// The stored hashes of a tree: the hash of the complete subtree of 2^level leaves that starts
/// at leaf `position × 2^level`.
pub trait HashReader {
    type Error: From<OutOfRange>;
    fn read_hash(&self, level: u8, position: u64) -> Result<Hash32, Self::Error>;
}

/// A proof asked for leaves or sizes the tree does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OutOfRange(pub String);

/// What a leaf commits to: the event id and the stamp of the entry that appended it, so a proof
/// of inclusion also proves when the event was appended.
pub fn leaf_data(event_id: &Hash32, stamp: Instant) -> [u8; 44] {
    let mut d = [0u8; 44];
    d[..32].copy_from_slice(&event_id.0);
    d[32..40].copy_from_slice(&stamp.unix_seconds().to_be_bytes());
    d[40..].copy_from_slice(&stamp.nanos().to_be_bytes());
    d
}

pub fn event_leaf(event_id: &Hash32, stamp: Instant) -> Hash32 {
    leaf_hash(&leaf_data(event_id, stamp))
}

/// The hashes to store when leaf number `size` (0-based) is appended to a tree of `size`
/// leaves: (level, position, hash) of the leaf and of every subtree it completes. Reads only
/// hashes of earlier leaves.
pub fn append<R: HashReader + ?Sized>(
    r: &R,
    size: u64,
    leaf: Hash32,
) -> Result<Vec<(u8, u64, Hash32)>, R::Error> {
    let (mut level, mut position, mut hash) = (0u8, size, leaf);
    let mut out = vec![(0, size, leaf)];
    while position & 1 == 1 {
        let left = r.read_hash(level, position - 1)?;
        hash = node_hash(&left, &hash);
        level += 1;
        position >>= 1;
        out.push((level, position, hash));
    }
    Ok(out)
}

/// Largest power of two strictly below `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The tree hash of leaves `start..start + len` (len ≥ 1).
fn subtree<R: HashReader + ?Sized>(r: &R, start: u64, len: u64) -> Result<Hash32, R::Error> {
    if len.is_power_of_two() && start.is_multiple_of(len) {
        return r.read_hash(len.trailing_zeros() as u8, start / len);
    }
    let k = split(len);
    Ok(node_hash(
        &subtree(r, start, k)?,
        &subtree(r, start + k, len - k)?,
    ))
}

/// The root of the tree of the first `size` leaves.
pub fn root<R: HashReader + ?Sized>(r: &R, size: u64) -> Result<Hash32, R::Error> {
    if size == 0 {
        return Ok(crate::merkle::empty_root());
    }
    subtree(r, 0, size)
}

/// The audit path of leaf `index` in the tree of `size` leaves (RFC 9162 §2.1.3.1), bottom-up;
/// checked by [`check_inclusion`].
pub fn prove_inclusion<R: HashReader + ?Sized>(
    r: &R,
    index: u64,
    size: u64,
) -> Result<Vec<Hash32>, R::Error> {
    if index >= size {
        return Err(OutOfRange(format!("leaf {index} is outside a tree of {size}")).into());
    }
    let mut path = Vec::new();
    let (mut m, mut start, mut n) = (index, 0u64, size);
    // Top-down, then reversed: the recursion of PATH(m, D[n]) unrolled.
    while n > 1 {
        let k = split(n);
        if m < k {
            path.push(subtree(r, start + k, n - k)?);
            n = k;
        } else {
            path.push(subtree(r, start, k)?);
            m -= k;
            start += k;
            n -= k;
        }
    }
    path.reverse();
    Ok(path)
}

/// Checks an inclusion proof made by [`prove_inclusion`]: `leaf` is leaf `index` of the tree of
/// `size` leaves whose root is `root`.
pub fn check_inclusion(
    leaf: &Hash32,
    index: u64,
    size: u64,
    proof: &[Hash32],
    root: &Hash32,
) -> bool {
    crate::merkle::verify_inclusion(leaf, index, size, proof, root)
}

/// The consistency proof between the trees of `old` and `new` leaves (RFC 9162 §2.1.4.1),
/// checked by [`check_consistency`]. Empty when `old` is 0 or equals `new`.
pub fn prove_consistency<R: HashReader + ?Sized>(
    r: &R,
    old: u64,
    new: u64,
) -> Result<Vec<Hash32>, R::Error> {
    if old > new {
        return Err(OutOfRange(format!("no consistency proof from {old} down to {new}")).into());
    }
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    subproof(r, old, 0, new, true, &mut out)?;
    Ok(out)
}

fn subproof<R: HashReader + ?Sized>(
    r: &R,
    m: u64,
    start: u64,
    n: u64,
    complete: bool,
    out: &mut Vec<Hash32>,
) -> Result<(), R::Error> {
    if m == n {
        if !complete {
            out.push(subtree(r, start, n)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(r, m, start, k, complete, out)?;
        out.push(subtree(r, start + k, n - k)?);
    } else {
        subproof(r, m - k, start + k, n - k, false, out)?;
        out.push(subtree(r, start, k)?);
    }
    Ok(())
}

/// Checks a consistency proof (RFC 9162 §2.1.4.2): the tree of `old` leaves with root `old_root`
/// is a prefix of the tree of `new` leaves with root `new_root`.
pub fn check_consistency(
    old: u64,
    new: u64,
    old_root: &Hash32,
    new_root: &Hash32,
    proof: &[Hash32],
) -> bool {
    if old > new {
        return false;
    }
    if old == new {
        return proof.is_empty() && old_root == new_root;
    }
    if old == 0 {
        return proof.is_empty();
    }
    let mut path: Vec<Hash32> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    fr == *old_root && sr == *new_root && snode == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle;
    use std::collections::BTreeMap;

    /// The stored hashes, in memory.
    struct Mem(BTreeMap<(u8, u64), Hash32>);
    impl HashReader for Mem {
        type Error = OutOfRange;
        fn read_hash(&self, level: u8, position: u64) -> Result<Hash32, OutOfRange> {
            self.0
                .get(&(level, position))
                .copied()
                .ok_or_else(|| OutOfRange(format!("no node ({level}, {position})")))
        }
    }

    fn push(m: &mut Mem, size: u64, leaf: Hash32) {
        for (level, position, h) in append(m, size, leaf).unwrap() {
            m.0.insert((level, position), h);
        }
    }

    fn grown(n: u64) -> (Mem, Vec<Hash32>) {
        let mut m = Mem(BTreeMap::new());
        let mut leaves = Vec::new();
        for i in 0..n {
            let leaf = leaf_hash(&i.to_be_bytes());
            push(&mut m, i, leaf);
            leaves.push(leaf);
        }
        (m, leaves)
    }

    /// Every size 1..=300: the stored tree's root and every inclusion proof equal the in-memory
    /// reference, and verify; a consistency proof between every pair of sizes verifies, and
    /// fails against a wrong root.
    #[test]
    fn stored_tree_proofs_for_every_size_up_to_300() {
        const N: u64 = 300;
        let (m, leaves) = grown(N);
        let roots: Vec<Hash32> = (0..=N).map(|n| root(&m, n).unwrap()).collect();
        for n in 1..=N {
            let hashes = &leaves[..n as usize];
            assert_eq!(
                roots[n as usize],
                merkle::root_of_hashes(hashes),
                "root of {n}"
            );
            for i in 0..n {
                let p = prove_inclusion(&m, i, n).unwrap();
                assert_eq!(
                    p,
                    merkle::inclusion_proof(hashes, i as usize),
                    "path {i} of {n}"
                );
                assert!(check_inclusion(
                    &leaves[i as usize],
                    i,
                    n,
                    &p,
                    &roots[n as usize]
                ));
            }
        }
        let wrong = leaf_hash(b"not a root");
        for old in 0..=N {
            for new in old..=N {
                let p = prove_consistency(&m, old, new).unwrap();
                let (ro, rn) = (&roots[old as usize], &roots[new as usize]);
                assert!(check_consistency(old, new, ro, rn, &p), "{old} -> {new}");
                if old > 0 && old < new {
                    assert!(!check_consistency(old, new, &wrong, rn, &p));
                    assert!(!check_consistency(old, new, ro, &wrong, &p));
                }
            }
        }
    }

    #[test]
    fn a_tampered_consistency_proof_fails() {
        let (m, _) = grown(40);
        let (r7, r40) = (root(&m, 7).unwrap(), root(&m, 40).unwrap());
        let mut p = prove_consistency(&m, 7, 40).unwrap();
        assert!(check_consistency(7, 40, &r7, &r40, &p));
        p[0].0[0] ^= 1;
        assert!(!check_consistency(7, 40, &r7, &r40, &p));
        p.pop();
        assert!(!check_consistency(7, 40, &r7, &r40, &p));
    }

    /// Golden vector: the hash formats, recomputed with BLAKE3 directly (leaf `H(0x00‖d)`, node
    /// `H(0x01‖l‖r)`), and the leaf of an event (id ‖ stamp seconds ‖ nanos).
    #[test]
    fn golden_tree_of_three_leaves() {
        let h = |parts: &[&[u8]]| {
            let mut x = blake3::Hasher::new();
            for p in parts {
                x.update(p);
            }
            Hash32(*x.finalize().as_bytes())
        };
        let (a, b, c) = (h(&[&[0], b"a"]), h(&[&[0], b"b"]), h(&[&[0], b"c"]));
        let ab = h(&[&[1], &a.0, &b.0]);
        let expected = h(&[&[1], &ab.0, &c.0]);
        let mut m = Mem(BTreeMap::new());
        for (i, l) in [a, b, c].into_iter().enumerate() {
            push(&mut m, i as u64, l);
        }
        assert_eq!(root(&m, 3).unwrap(), expected);
        let stamp = Instant::from_unix_utc(1_700_000_000, 5).unwrap();
        let id = Hash32([7; 32]);
        let mut data = vec![0u8];
        data.extend_from_slice(&[7; 32]);
        data.extend_from_slice(&1_700_000_000i64.to_be_bytes());
        data.extend_from_slice(&5u32.to_be_bytes());
        assert_eq!(event_leaf(&id, stamp), h(&[&data]));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]
        /// Random sizes beyond the exhaustive range: proofs from the stored tree verify.
        #[test]
        fn random_sizes_prove_and_verify(n in 301u64..2500, i in 0u64..2500, old in 1u64..2500) {
            let (m, leaves) = grown(n);
            let i = i % n;
            let old = old % n + 1;
            let r = root(&m, n).unwrap();
            let p = prove_inclusion(&m, i, n).unwrap();
            proptest::prop_assert!(merkle::verify_inclusion(&leaves[i as usize], i, n, &p, &r));
            let c = prove_consistency(&m, old, n).unwrap();
            proptest::prop_assert!(check_consistency(old, n, &root(&m, old).unwrap(), &r, &c));
        }
    }
}
