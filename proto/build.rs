//! Compiles the node service with protox (pure Rust: no `protoc` on the machine). The event
//! messages are generated once, in ledger-core, and referenced here by extern_path so that the
//! pure core owns the signed-bytes types.
use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "ledger/v1/node.proto",
        "ledger/v1/raft.proto",
        "ledger/v1/rights.proto",
        "ledger/v1/admin.proto",
    ];
    let fds = protox::compile(protos, ["."])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out.join("ledger_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    // What the public port's reflection describes: every service but the internal Raft one,
    // which is served on its own port to members only.
    let public = protox::compile(protos.iter().filter(|p| !p.ends_with("raft.proto")), ["."])?;
    fs::write(
        out.join("public_descriptor.bin"),
        prost::Message::encode_to_vec(&public),
    )?;
    tonic_prost_build::configure()
        .extern_path(".ledger.v1.events", "::ledger_core::pb")
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed=ledger");
    Ok(())
}
