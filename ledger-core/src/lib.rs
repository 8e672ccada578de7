//! The pure core of the portable contribution ledger.
//!
//! Everything here is a deterministic function of its inputs: the event model and its JSON form
//! ([`event`]), the signed wire form ([`wire`], [`envelope`]), Merkle math ([`merkle`]), the
//! validation rules ([`validate`]) and the state machine that applies committed entries
//! ([`state`]). No clock, no randomness, no I/O, no async: the compiler keeps it that way because
//! this crate does not depend on tokio, tonic or sled. Time comes from the entry's stamp.
//!
//! Modules import downwards only (ARCHITECTURE.md draws the layers; `tests/tidy.rs` fails on an
//! import cycle): the storage vocabulary [`kv`] < the key layout [`schema`] < [`records`] <
//! [`fact`] < [`rules`] < [`projection`] < [`state`], over the event model and its encodings.

pub mod act;
pub mod authority;
pub mod checkpoint;
mod effects;
pub mod envelope;
pub mod event;
pub mod fact;
pub mod genesis;
pub mod ids;
pub mod json;
pub mod jurisdiction;
pub mod kv;
pub mod limits;
pub mod log_tree;
pub mod merkle;
pub mod money;
pub mod params;
pub mod projection;
pub mod records;
pub mod refusal;
pub mod rulebook;
pub mod rules;
pub mod schema;
pub mod signers;
pub mod state;
pub mod statement;
pub mod time;
pub mod validate;
pub mod wire;

/// Generated from `proto/ledger/v1/events.proto`: the signed-bytes messages. Converted to the
/// model in [`wire`]; nothing else should use them.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/ledger.v1.events.rs"));
}

pub use envelope::{Envelope, SignatureEntry, VerifiedEvent};
pub use event::{EventBody, EventKind, Hash32, PublicKeyBytes};
pub use refusal::Refusal;
