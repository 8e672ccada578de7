//! RFC 6962/9162-shaped Merkle trees with BLAKE3: leaf `H(0x00 || leaf)`, node
//! `H(0x01 || left || right)`, the left subtree always the largest power of two below the size.
//! Used for the lines of a batch event (one worker's line proven without the others) and, from
//! the proofs issue on, for the ledger itself. Pure paired functions: prove / check.

use crate::ids::Hash32;

/// The root of an empty tree: `H()` as RFC 9162 defines it.
pub fn empty_root() -> Hash32 {
    Hash32(*blake3::hash(&[]).as_bytes())
}

pub fn leaf_hash(leaf: &[u8]) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(&[0x00]);
    h.update(leaf);
    Hash32(*h.finalize().as_bytes())
}

pub fn node_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(&[0x01]);
    h.update(&left.0);
    h.update(&right.0);
    Hash32(*h.finalize().as_bytes())
}

/// Largest power of two strictly below `n` (n ≥ 2).
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// Root over already-hashed leaves.
pub fn root_of_hashes(hashes: &[Hash32]) -> Hash32 {
    match hashes.len() {
        0 => empty_root(),
        1 => hashes[0],
        n => {
            let k = split(n);
            node_hash(&root_of_hashes(&hashes[..k]), &root_of_hashes(&hashes[k..]))
        }
    }
}

pub fn root<L: AsRef<[u8]>>(leaves: &[L]) -> Hash32 {
    let hashes: Vec<Hash32> = leaves.iter().map(|l| leaf_hash(l.as_ref())).collect();
    root_of_hashes(&hashes)
}

/// Audit path for leaf `index` among `hashes` (RFC 9162 §2.1.3.1), bottom-up.
pub fn inclusion_proof(hashes: &[Hash32], index: usize) -> Vec<Hash32> {
    assert!(
        index < hashes.len(),
        "leaf {index} outside a tree of {}",
        hashes.len()
    );
    let mut path = Vec::new();
    prove(hashes, index, &mut path);
    path
}

fn prove(hashes: &[Hash32], index: usize, path: &mut Vec<Hash32>) {
    let n = hashes.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if index < k {
        prove(&hashes[..k], index, path);
        path.push(root_of_hashes(&hashes[k..]));
    } else {
        prove(&hashes[k..], index - k, path);
        path.push(root_of_hashes(&hashes[..k]));
    }
}

/// Checks an audit path (RFC 9162 §2.1.3.2). False for any mismatch, wrong length or index.
pub fn verify_inclusion(
    leaf: &Hash32,
    index: u64,
    size: u64,
    path: &[Hash32],
    root: &Hash32,
) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// Serializes a proof as concatenated 32-byte hashes (wire and statement form).
pub fn proof_to_bytes(path: &[Hash32]) -> Vec<u8> {
    path.iter().flat_map(|h| h.0).collect()
}

pub fn proof_from_bytes(bytes: &[u8]) -> Option<Vec<Hash32>> {
    if !bytes.len().is_multiple_of(32) || bytes.len() / 32 > 64 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(32)
            .map(|c| Hash32(c.try_into().expect("32-byte chunk")))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GOLDEN_ROOT_OF_3: &str =
        "e8a21b226e7dee1b97377e948a3bd99f65d63ab89334f3c29e0f089138fad8a2";

    fn leaves(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("leaf {i}").into_bytes()).collect()
    }

    #[test]
    fn golden_roots_pin_the_hash_shape() {
        // Pinned so a change of the leaf/node prefixes or split rule is never silent.
        assert_eq!(
            root::<Vec<u8>>(&[]).to_hex(),
            hex::encode(blake3::hash(b"").as_bytes())
        );
        let one = root(&leaves(1));
        assert_eq!(one, leaf_hash(b"leaf 0"));
        let three = root(&leaves(3));
        let expect = node_hash(
            &node_hash(&leaf_hash(b"leaf 0"), &leaf_hash(b"leaf 1")),
            &leaf_hash(b"leaf 2"),
        );
        assert_eq!(three, expect);
        assert_eq!(three.to_hex(), GOLDEN_ROOT_OF_3);
    }

    #[test]
    fn every_leaf_of_every_size_up_to_70_proves() {
        for n in 1..=70 {
            let l = leaves(n);
            let hashes: Vec<Hash32> = l.iter().map(|x| leaf_hash(x)).collect();
            let r = root_of_hashes(&hashes);
            for i in 0..n {
                let p = inclusion_proof(&hashes, i);
                assert!(
                    verify_inclusion(&hashes[i], i as u64, n as u64, &p, &r),
                    "n={n} i={i}"
                );
                // The same path must not prove another position. (It may verify under another size with
                // the same root: RFC 6962 roots bind the size only through the signed checkpoint.)
                if n > 1 {
                    let other = (i as u64 + 1) % n as u64;
                    assert!(
                        !verify_inclusion(&hashes[i], other, n as u64, &p, &r),
                        "n={n} i={i}"
                    );
                }
            }
        }
    }

    proptest! {
        #[test]
        fn tampered_proofs_fail(n in 1usize..300, i in 0usize..300, flip in 0usize..64) {
            let i = i % n;
            let hashes: Vec<Hash32> = leaves(n).iter().map(|x| leaf_hash(x)).collect();
            let r = root_of_hashes(&hashes);
            let mut p = inclusion_proof(&hashes, i);
            prop_assert!(verify_inclusion(&hashes[i], i as u64, n as u64, &p, &r));
            if !p.is_empty() {
                let k = flip % p.len();
                p[k].0[flip % 32] ^= 1;
                prop_assert!(!verify_inclusion(&hashes[i], i as u64, n as u64, &p, &r));
            }
        }
    }
}
