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
    tonic_prost_build::configure()
        .extern_path(".ledger.v1.events", "::ledger_core::pb")
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed=ledger");
    Ok(())
}
