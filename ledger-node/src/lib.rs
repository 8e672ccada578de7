//! A node of the portable contribution ledger: the durable store ([`store`], [`ledger`]), the
//! public gRPC service ([`service`], [`server`]), configuration ([`config`]) and the local
//! development cluster ([`dev`]). The rules of the ledger are in `ledger-core`; this crate adds
//! I/O around them and decides nothing the state machine decides.

pub mod admin;
pub mod backup;
pub mod ceremony;
pub mod config;
pub mod dev;
pub mod head_marker;
pub mod health;
pub mod http;
pub mod ledger;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod notary;
pub mod probe;
pub mod projection;
pub mod raft;
pub mod read_gate;
pub mod rights;
pub mod scrape;
pub mod server;
pub mod service;
pub mod signals;
pub mod store;
pub mod tls;
