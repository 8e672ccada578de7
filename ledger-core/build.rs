//! Generates the event messages (the signed-bytes contract) from `proto/ledger/v1/events.proto`
//! with protox, so a fresh machine needs no `protoc`. Only prost is generated here: the core
//! never links tonic.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fds = protox::compile(["ledger/v1/events.proto"], ["../proto"])?;
    prost_build::Config::new().compile_fds(fds)?;
    println!("cargo:rerun-if-changed=../proto/ledger/v1/events.proto");
    Ok(())
}
