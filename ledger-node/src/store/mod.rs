//! Storage behind a trait, so sled can be replaced: an ordered key-value space with atomic,
//! durable batches. [`conformance`] is the suite every backend must pass.
//!
//! The unit of durability is the batch: [`Store::commit`] returns only after the whole batch is
//! on disk (synced with `fdatasync`, not only handed to the kernel: see [`durable`]), and a crash
//! leaves either all of it or none.

pub mod conformance;
pub mod durable;
pub mod memory;
pub mod sled_store;

use ledger_core::kv::{StateRead, StoreFault, Writes};

pub use memory::MemoryStore;
pub use sled_store::SledStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage I/O failed: {0}")]
    Io(String),
    #[error("the store is corrupt: {0}")]
    Corrupt(String),
}

impl From<StoreError> for StoreFault {
    fn from(e: StoreError) -> Self {
        StoreFault(e.to_string())
    }
}

/// A key and its value, as scans return them.
pub type Entry = (Vec<u8>, Vec<u8>);

/// An ordered key-value store with atomic durable batches.
pub trait Store: StateRead + Send + Sync + 'static {
    /// Applies every write of the batch atomically and durably (one flush per batch).
    fn commit(&self, writes: &Writes) -> Result<(), StoreError>;
    /// Entries whose key starts with `prefix` and is greater than `after` (when given), in key
    /// order, at most `limit`.
    /// Replaces the whole content with `entries`, atomically and durably (installing a snapshot).
    fn replace_all(&self, entries: Vec<Entry>) -> Result<(), StoreError>;
    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError>;
}
