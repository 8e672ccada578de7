//! Keeping the projection in step with the log: a store whose projection is missing or of
//! another format version is rebuilt from its log at start-up, and `ledger-node
//! rebuild-projections` rebuilds it on demand. A rebuild clears the projection, replays every
//! event in chunks (progress in the log), and writes the version last, so an interrupted rebuild
//! simply starts again on the next start.

use ledger_core::kv::Writes;
use ledger_core::projection::{self, PROJECTION_VERSION};
use ledger_core::records;
use ledger_core::rulebook::Rulebook;

use crate::store::{Store, StoreError};

/// Events replayed per committed chunk.
pub const REBUILD_CHUNK_EVENTS: u64 = 10_000;

fn fault(e: ledger_core::kv::StoreFault) -> StoreError {
    StoreError::Io(e.0)
}

/// True when the stored projection is of this build's format.
pub fn is_current(store: &dyn Store) -> Result<bool, StoreError> {
    Ok(store
        .get(ledger_core::schema::PROJECTION_VERSION)
        .map_err(fault)?
        .as_deref()
        == Some(&PROJECTION_VERSION.to_be_bytes()[..]))
}

/// Rebuilds the projection from the log; `progress(done, total)` after each chunk. Returns the
/// number of events replayed.
pub fn rebuild(store: &dyn Store, mut progress: impl FnMut(u64, u64)) -> Result<u64, StoreError> {
    let mut clear = Writes::new();
    for prefix in [
        &[ledger_core::schema::WORKER][..],
        &[ledger_core::schema::TREE][..],
        &[ledger_core::schema::PUBLISHED][..],
    ] {
        for (k, _) in store.scan_prefix(prefix).map_err(fault)? {
            clear.insert(k, None);
        }
    }
    clear.insert(ledger_core::schema::PROJECTION_VERSION.to_vec(), None);
    // A ledger created before rulebooks were stored gets this build's.
    if store
        .get(ledger_core::schema::RULEBOOK)
        .map_err(fault)?
        .is_none()
    {
        clear.insert(
            ledger_core::schema::RULEBOOK.to_vec(),
            Some(Rulebook::builtin().to_bytes()),
        );
    }
    store.commit(&clear)?;
    let head = records::read_head(store).map_err(fault)?;
    let mut from = 1;
    while from <= head.size {
        let to = (from + REBUILD_CHUNK_EVENTS - 1).min(head.size);
        let w = projection::replay(store, from, to).map_err(fault)?;
        store.commit(&w)?;
        progress(to, head.size);
        from = to + 1;
    }
    let mut done = Writes::new();
    done.insert(
        ledger_core::schema::PROJECTION_VERSION.to_vec(),
        Some(PROJECTION_VERSION.to_be_bytes().to_vec()),
    );
    store.commit(&done)?;
    Ok(head.size)
}

/// Rebuilds when the stored projection is missing or stale, logging progress.
pub fn ensure_current(store: &dyn Store) -> Result<(), StoreError> {
    if is_current(store)? {
        return Ok(());
    }
    tracing::info!("the projection is missing or of another version; rebuilding it from the log");
    let n = rebuild(store, |done, total| {
        tracing::info!(done, total, "rebuilding the projection");
    })?;
    tracing::info!(events = n, "projection rebuilt");
    Ok(())
}
