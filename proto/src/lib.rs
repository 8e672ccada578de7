//! The gRPC wire contract of a ledger node, generated from `proto/ledger/v1/node.proto`.
//!
//! Event bodies and envelopes are `ledger_core::pb` (generated from `events.proto` in the pure
//! core); this crate adds the service and its request/response messages. Convert to the core's
//! model at the edge: nothing beyond ledger-node's `service` module and ledger-client's `sdk`
//! should see these types.
#![allow(clippy::all, missing_docs)] // generated code

pub mod node {
    tonic::include_proto!("ledger.v1.node");
}

/// The projection's queries: entitlement and coverage (`proto/ledger/v1/rights.proto`).
pub mod rights {
    tonic::include_proto!("ledger.v1.rights");
}

/// Cluster administration: ledger acts signed by agency keys (`proto/ledger/v1/admin.proto`).
pub mod admin {
    tonic::include_proto!("ledger.v1.admin");
}

/// The internal Raft service between nodes (`proto/ledger/v1/raft.proto`).
pub mod raft {
    tonic::include_proto!("ledger.v1.raft");
}

/// The encoded file descriptor set of every ledger proto, the internal Raft service included.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ledger_descriptor.bin"));

/// The encoded file descriptor set of the public services (Ledger, Rights, Admin and the event
/// messages they carry), for gRPC server reflection on the public port: the Raft service is
/// neither served nor described there.
pub const PUBLIC_FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/public_descriptor.bin"));
