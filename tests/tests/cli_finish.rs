//! `ledger-client`'s fit and finish as docs/cli.md gives it: a closed standard output ends it
//! quietly, `--json` errors are one JSON document with a code, each kind of error has its exit
//! code, the message is said once, and `--node` takes a bare HOST:PORT.

use std::process::{Command, Output, Stdio};

use ledger_tests::*;

/// The `--json` error document: the last line of stdout.
fn error_doc(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no error document on stdout; stderr: {}", stderr(out)));
    let doc: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {last}"));
    let keys: Vec<&String> = doc.as_object().expect("an object").keys().collect();
    assert_eq!(keys, ["error"], "{doc}");
    let inner: Vec<&String> = doc["error"]
        .as_object()
        .expect("an object")
        .keys()
        .collect();
    assert_eq!(inner, ["code", "message"], "{doc}");
    doc["error"].clone()
}

/// Runs the client with `--json`, expects exit `code` and the error `name`; returns the message.
fn fails_with(out: Output, code: i32, name: &str) -> String {
    assert_eq!(out.status.code(), Some(code), "stderr: {}", stderr(&out));
    let e = error_doc(&out);
    assert_eq!(e["code"], name, "{e}");
    e["message"].as_str().expect("a message").to_string()
}

#[test]
fn a_closed_pipe_ends_the_client_quietly() {
    let ledger = TestLedger::start();
    let (reader, writer) = std::io::pipe().expect("a pipe");
    // The reader is gone before the client writes a byte, as with `| head -0`.
    drop(reader);
    let out = Command::new(&binaries().client)
        .args(["--node", &ledger.url(), "--retry-for", "0", "status"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run ledger-client");
    assert_eq!(out.status.code(), Some(141), "stderr: {}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "quiet: {}", stderr(&out));
}

#[test]
fn json_errors_and_exit_codes_by_kind() {
    let ledger = TestLedger::start();
    let agency = ledger.key_path("CN-44");
    let agency = agency.to_str().unwrap();

    // Not found: exit 3, the worker named, the node's message said once (stderr and JSON).
    let out = ledger.client(&["--json", "entitlement", "W-NOBODY", "--key", agency]);
    let text = stderr(&out);
    let message = fails_with(out, 3, "not_found");
    assert!(message.contains("W-NOBODY"), "{message}");
    assert_eq!(
        message.matches("W-NOBODY").count(),
        1,
        "said once: {message}"
    );
    assert_eq!(text.matches("W-NOBODY").count(), 1, "said once: {text}");
    // An event the ledger does not hold is not found too.
    let trust = ledger.path().join("data").join("node.pub");
    let out = ledger.client(&[
        "--json",
        "proof",
        &"ab".repeat(32),
        "--key",
        agency,
        "--trust",
        trust.to_str().unwrap(),
    ]);
    fails_with(out, 3, "not_found");

    // Denied: a key the ledger does not know may read nothing; the message names no CLI flag.
    let (stranger, _) = ledger.keygen("stranger");
    let out = ledger.client(&[
        "--json",
        "entitlement",
        "W-NOBODY",
        "--key",
        stranger.to_str().unwrap(),
    ]);
    let message = fails_with(out, 5, "permission_denied");
    assert!(!message.contains("--"), "{message}");

    // Invalid input, found before anything is sent: exit 7.
    let out = ledger.client(&[
        "--json",
        "key",
        "register",
        "--key",
        agency,
        "--jurisdiction",
        "CN-44",
        "--role",
        "boss",
        "--subject",
        "X",
        "--public-key",
        &"00".repeat(32),
    ]);
    let message = fails_with(out, 7, "invalid_input");
    assert!(message.contains("--role"), "{message}");
    let missing = ledger.path().join("no-such.key");
    let out = ledger.client(&[
        "--json",
        "events",
        "W-1",
        "--key",
        missing.to_str().unwrap(),
    ]);
    fails_with(out, 7, "invalid_input");
    // The node refuses a malformed month as an invalid argument, naming the field.
    let out = ledger.client(&[
        "--json",
        "indicators",
        "--key",
        agency,
        "--period",
        "2024-13",
    ]);
    let message = fails_with(out, 7, "invalid_input");
    assert!(message.contains("period"), "{message}");

    // A command line that cannot be parsed: clap's exit 2, and under --json its document.
    let out = ledger.client(&["--json", "entitlement", "W-1"]);
    let message = fails_with(out, 2, "usage");
    assert!(message.contains("--key"), "{message}");

    // Unavailable: nothing listens there; nothing was decided.
    let url = format!("https://127.0.0.1:{}", free_port());
    let out = client(&url, &["--json", "status"]);
    fails_with(out, 6, "unavailable");

    // Without --json, errors stay text on stderr and stdout is empty.
    let out = ledger.client(&["entitlement", "W-NOBODY", "--key", agency]);
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
}

#[test]
fn node_takes_a_bare_host_and_port() {
    let ledger = TestLedger::start();
    // The harness's client config trusts node keys, so HOST:PORT means TLS.
    let out = Command::new(&binaries().client)
        .args([
            "--node",
            &format!("127.0.0.1:{}", ledger.port),
            "--retry-for",
            "0",
            "--json",
            "status",
        ])
        .output()
        .expect("run ledger-client");
    assert!(out.status.success(), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(status["node_id"], "node-1");
    // Spelled out, plaintext to a TLS node still says what to do.
    let out = client(&format!("http://127.0.0.1:{}", ledger.port), &["status"]);
    assert!(stderr(&out).contains("use https://"), "{}", stderr(&out));
}

#[test]
fn completions_and_the_man_page_come_from_the_command_definition() {
    let run = |args: &[&str]| {
        Command::new(&binaries().client)
            .args(args)
            .output()
            .expect("run ledger-client")
    };
    let bash = run(&["completions", "bash"]);
    assert!(bash.status.success(), "{}", stderr(&bash));
    let bash = String::from_utf8(bash.stdout).unwrap();
    assert!(bash.contains("complete -F"), "a bash completion script");
    assert!(bash.contains("--retry-for") && bash.contains("entitlement"));
    let man = run(&["man"]);
    assert!(man.status.success(), "{}", stderr(&man));
    let man = String::from_utf8(man.stdout).unwrap();
    assert!(
        man.contains(".TH ledger-client 1"),
        "{}",
        &man[..200.min(man.len())]
    );
    assert!(man.contains("statement"), "the subcommands are listed");
    let bad = run(&["completions", "cmd.exe"]);
    assert_eq!(bad.status.code(), Some(2));
}
