//! An integrator's client in another language: `examples/python/pcl_example.py`, written from
//! docs/integration.md, registers keys, signs and submits a declaration over TLS (pinning the
//! node's P-256 certificate: gRPC's C core offers no ed25519) against a real node, checks the
//! receipts' event ids against its own computation, and reads the worker's records back with
//! a read token. Needs python3 with grpcio, grpcio-tools, protobuf, cryptography and blake3
//! (`.ci/run` installs them); where they are missing the test says that it did not run, unless
//! `LEDGER_REQUIRE_PYTHON=1` makes that a failure.

use std::path::Path;
use std::process::Command;

use ledger_tests::*;

const MODULES: &str = "import grpc, grpc_tools, google.protobuf, cryptography, blake3";

fn python_ready() -> Result<(), String> {
    let out = Command::new("python3")
        .args(["-c", MODULES])
        .output()
        .map_err(|e| format!("no python3 ({e})"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "python3 lacks a module: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[test]
fn a_python_client_signs_submits_and_reads_back_over_tls() {
    if let Err(why) = python_ready() {
        assert!(
            std::env::var_os("LEDGER_REQUIRE_PYTHON").is_none(),
            "LEDGER_REQUIRE_PYTHON is set but {why}"
        );
        eprintln!(
            "NOT RUN: the Python client test needs python3 with grpcio grpcio-tools protobuf \
             cryptography blake3 ({why})"
        );
        return;
    }
    let ledger = TestLedger::start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/python/pcl_example.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(["--node", &format!("127.0.0.1:{}", ledger.port)])
        .arg("--cert")
        .arg(ledger.path().join("data/node-p256.crt"))
        .arg("--agency-key")
        .arg(ledger.key_path("CN-44"))
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Python client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("a JSON report");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["ledger"], ledger.ledger_id().to_hex());
    assert_eq!(
        report["checks"].as_object().map(|c| c.len()),
        Some(6),
        "{report}"
    );
    // The events it signed are the ledger's: three appended, and the Rust client reads them.
    assert_eq!(ledger.log_size(), 3);
    let worker = report["worker"].as_str().unwrap();
    let events = ledger.client(&[
        "events",
        worker,
        "--key",
        ledger.key_path("CN-44").to_str().unwrap(),
        "--json",
    ]);
    assert!(events.status.success(), "{}", stderr(&events));
}
