//! A second, independent record of the log head, kept outside the store. sled recovers from a
//! torn or corrupt tail by cutting the log at the damage; without a second witness a lost tail
//! would look like a shorter, valid log and acknowledged events would vanish silently. After every
//! committed batch (single node: each entry; replicated: each applied batch and each installed
//! snapshot) the head (size, chain link) is written and synced here, always after the store's own
//! sync, so the marker never runs ahead of a durable store; at start-up a store shorter than its
//! marker, or with another chain link at that size, is reported as corrupt.
//!
//! Two 64-byte slots written alternately, each with a sequence number and a checksum, so a torn
//! write of one slot leaves the other intact.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use ledger_core::event::Hash32;
use ledger_core::records::Head;

const SLOT: usize = 64;

pub struct HeadMarker {
    file: File,
    seq: u64,
    /// The head the marker holds now.
    last: Option<Head>,
}

fn encode(head: &Head, seq: u64) -> [u8; SLOT] {
    let mut b = [0u8; SLOT];
    b[..8].copy_from_slice(&head.size.to_be_bytes());
    b[8..40].copy_from_slice(&head.chain.0);
    b[40..48].copy_from_slice(&seq.to_be_bytes());
    let sum = blake3::hash(&b[..48]);
    b[48..64].copy_from_slice(&sum.as_bytes()[..16]);
    b
}

fn decode(b: &[u8]) -> Option<(Head, u64)> {
    if b.len() != SLOT || blake3::hash(&b[..48]).as_bytes()[..16] != b[48..64] {
        return None;
    }
    let size = u64::from_be_bytes(b[..8].try_into().ok()?);
    let chain = Hash32(b[8..40].try_into().ok()?);
    let seq = u64::from_be_bytes(b[40..48].try_into().ok()?);
    Some((Head { size, chain }, seq))
}

impl HeadMarker {
    /// Opens (or creates) the marker; returns it and the last head it holds, if any. The directory
    /// is synced so that a marker created now still exists after a crash.
    pub fn open(path: &Path) -> std::io::Result<(Self, Option<Head>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        let slots = [buf.get(..SLOT), buf.get(SLOT..2 * SLOT)];
        let best = slots
            .iter()
            .flatten()
            .filter_map(|s| decode(s))
            .max_by_key(|(_, seq)| *seq);
        let seq = best.map_or(0, |(_, s)| s);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::store::durable::sync_dir(dir)?;
        }
        let last = best.map(|(h, _)| h);
        Ok((Self { file, seq, last }, last))
    }

    /// The head the marker holds.
    pub fn head(&self) -> Option<Head> {
        self.last
    }

    /// Durably records `head` (one write and one fdatasync).
    pub fn write(&mut self, head: &Head) -> std::io::Result<()> {
        self.seq += 1;
        let slot = self.seq % 2;
        self.file.seek(SeekFrom::Start(slot * SLOT as u64))?;
        self.file.write_all(&encode(head, self.seq))?;
        self.file.sync_data()?;
        self.last = Some(*head);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_torn_slot() {
        // Corrupting the newest slot falls back to the previous head rather than losing both.
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("head");
        let (mut m, none) = HeadMarker::open(&p).unwrap();
        assert!(none.is_none());
        let h1 = Head {
            size: 1,
            chain: Hash32([1; 32]),
        };
        let h2 = Head {
            size: 2,
            chain: Hash32([2; 32]),
        };
        m.write(&h1).unwrap();
        m.write(&h2).unwrap();
        drop(m);
        assert_eq!(HeadMarker::open(&p).unwrap().1, Some(h2));
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[0] ^= 0xff; // slot 0 holds seq 2
        std::fs::write(&p, bytes).unwrap();
        assert_eq!(HeadMarker::open(&p).unwrap().1, Some(h1));
    }
}
