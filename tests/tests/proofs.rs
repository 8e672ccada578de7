//! Proofs a worker can carry, end to end with real processes: a statement from a 3-node cluster,
//! cosigned by every node, verifies offline; any altered byte fails; it holds no other worker's
//! lines; `audit` sees agreement; a node shown a conflicting checkpoint refuses to cosign it,
//! keeps the evidence and reports the fork.

use std::process::Output;

use ledger_tests::*;

fn ok(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

const E44: &str = "91440300MA5GPROOF";

/// A 3-node cluster whose nodes all know the leader.
fn cluster() -> TestCluster {
    let cluster = TestCluster::start(3);
    for i in 0..3 {
        wait_for("a leader", || cluster.leader_seen_by(i).is_some());
    }
    cluster
}

#[test]
fn a_cosigned_statement_verifies_offline_and_any_altered_byte_fails() {
    let cluster = cluster();
    let agency = cluster.key_path("CN-44");
    let a = agency.to_str().unwrap();
    let employer = cluster.dir.path().join("employer.key");
    let pk = client(
        &cluster.url(0),
        &["keygen", "--out", employer.to_str().unwrap()],
    );
    let pk = String::from_utf8_lossy(&pk.stdout).trim().to_string();
    let reg = client(
        &cluster.url(0),
        &[
            "key",
            "register",
            "--key",
            a,
            "--jurisdiction",
            "CN-44",
            "--role",
            "employer",
            "--subject",
            E44,
            "--public-key",
            &pk,
        ],
    );
    assert!(reg.status.success(), "{}", stderr(&reg));
    let out = cluster.submit(
        0,
        &agency,
        &[person("W-S", "CN-44"), person("W-OTHER", "CN-44")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Three payroll months, each one batch with both workers; W-OTHER's base is distinctive.
    let months: Vec<String> = ["2024-01", "2024-02", "2024-03"]
        .iter()
        .map(|m| {
            format!(
                r#"{{"type":"contributions_declared","employer":"{E44}","jurisdiction":"CN-44","period":"{m}","lines":[{{"worker":"W-S","scheme":"pension","base":"5000.00","employer_amount":"800.00","employee_amount":"400.00"}},{{"worker":"W-OTHER","scheme":"pension","base":"7777.00","employer_amount":"1244.32","employee_amount":"622.16"}}]}}"#
            )
        })
        .collect();
    let declared = cluster.submit(1, &employer, &months);
    assert!(declared.status.success(), "{}", stderr(&declared));
    let size = cluster.status(1).unwrap()["log_size"].as_u64().unwrap();
    for i in 0..3 {
        wait_for("every node to apply the log", || {
            cluster.status(i).and_then(|s| s["log_size"].as_u64()) == Some(size)
        });
    }
    // The trust file: each node's checkpoint key, as the nodes wrote them.
    let mut trust = String::new();
    for i in 1..=3 {
        trust.push_str(
            &std::fs::read_to_string(cluster.dir.path().join(format!("node-{i}/node.pub")))
                .unwrap(),
        );
    }
    // Kept apart from the cluster's directory: verification runs after the cluster is gone.
    let carried = tempfile::tempdir().unwrap();
    let trust_file = carried.path().join("trust.txt");
    std::fs::write(&trust_file, &trust).unwrap();
    let t = trust_file.to_str().unwrap();

    // The receipt proof of one declaration, fetched by its event id and checked by the client.
    let first_id = receipts(&declared)[0]["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    let proof = ok(&client(
        &cluster.url(2),
        &["--json", "proof", &first_id, "--trust", t],
    ));
    assert_eq!(proof["verified"], true);
    assert_eq!(proof["index"], size - 2);
    let unknown = client(&cluster.url(2), &["proof", &"ab".repeat(32)]);
    assert!(!unknown.status.success());

    let file = carried.path().join("statement.json");
    let f = file.to_str().unwrap();
    let made = ok(&client(
        &cluster.url(0),
        &["--json", "statement", "W-S", "--key", a, "--out", f],
    ));
    assert_eq!(made["events"], 4, "the person and three declarations");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("W-OTHER"), "another worker's id leaked");
    for amount in ["7777.00", "1244.32", "622.16"] {
        assert!(!text.contains(amount));
    }

    let v = ok(&client(
        &cluster.url(0),
        &["--json", "verify", f, "--trust", t, "--as-of", "2026-01-01"],
    ));
    assert_eq!(v["valid"], true);
    assert_eq!(
        v["signed_by"].as_array().unwrap().len(),
        3,
        "cosigned by every node: {v}"
    );
    assert_eq!(v["checkpoint"]["size"], size);
    assert_eq!(v["entitlement"]["pension"]["insured_months"], 3);
    assert_eq!(v["entitlement"]["pension"]["individual_account"], "1200.00");
    // Verification is offline: it still passes with every node gone.
    drop(cluster);
    let again = std::process::Command::new(&binaries().client)
        .args(["verify", f, "--trust", t])
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("VALID"));

    // Every single altered byte fails verification (checked in-process for every position).
    let keys = ledger_client::proofs::load_trust(&trust_file).unwrap();
    assert!(ledger_client::proofs::verify_statement(&text, &keys).is_ok());
    let bytes = text.as_bytes();
    for p in 0..bytes.len() {
        let mut b = bytes.to_vec();
        b[p] = match b[p] {
            b'0'..=b'8' | b'a'..=b'y' | b'A'..=b'Y' => b[p] + 1,
            b'9' => b'0',
            b'z' => b'a',
            b'Z' => b'A',
            _ => b'x',
        };
        let Ok(altered) = String::from_utf8(b) else {
            continue;
        };
        assert!(
            ledger_client::proofs::verify_statement(&altered, &keys).is_err(),
            "altering byte {p} ({:?}) went unnoticed",
            bytes[p] as char
        );
    }
    // And through the CLI: a non-zero exit with the reason.
    let pos = text.find("\"appended_at\": \"").expect("a stamp") + 16;
    let mut tampered = text.clone().into_bytes();
    tampered[pos] = if tampered[pos] == b'2' { b'1' } else { b'2' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_ne!(tampered, text);
    std::fs::write(&file, tampered).unwrap();
    let bad = std::process::Command::new(&binaries().client)
        .args(["verify", f, "--trust", t])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("does not verify"), "{}", stderr(&bad));
}

#[test]
fn nodes_agree_in_an_audit_and_a_conflicting_checkpoint_is_refused_and_reported() {
    let cluster = cluster();
    let agency = cluster.key_path("CN-44");
    let out = cluster.submit(
        0,
        &agency,
        &[person("W-A", "CN-44"), person("W-B", "CN-44")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let urls: Vec<String> = (0..3).map(|i| cluster.url(i)).collect();
    let mut args = vec!["--json", "audit"];
    for u in &urls {
        args.extend(["--endpoint", u.as_str()]);
    }
    let audit = client(&urls[0], &args);
    let report: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    assert!(audit.status.success(), "{report}");
    assert_eq!(report["agree"], true);

    // A forged checkpoint: node 1's size with another root, signed by a key of the forger's.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = ledger_client::Client::connect(&urls[0]).await.unwrap();
        let real = c.checkpoint().await.unwrap();
        let note = ledger_core::checkpoint::SignedNote::parse(&real.note).unwrap();
        let cp = ledger_core::checkpoint::Checkpoint::parse_body(&note.text).unwrap();
        // The genuine checkpoint is cosigned.
        let cosigned = c.cosign(&real.note).await.unwrap();
        assert!(cosigned.contains("node-1"));
        let forged = ledger_core::checkpoint::Checkpoint {
            root: ledger_core::event::Hash32([0xab; 32]),
            ..cp
        };
        let mut fake = ledger_core::checkpoint::SignedNote::new(forged.body());
        fake.sign("rogue", &ed25519_dalek::SigningKey::from_bytes(&[42; 32]))
            .unwrap();
        let refused = c.cosign(&fake.format()).await.unwrap_err();
        assert!(refused.to_string().contains("fork"), "{refused}");
        let after = c.checkpoint().await.unwrap();
        assert_eq!(
            after.forks,
            vec![fake.format()],
            "the evidence is kept and reported"
        );
    });
    let status = cluster.status(0).unwrap();
    assert_eq!(status["forks"], 1, "status raises the alarm: {status}");
    let audit = client(&urls[0], &args);
    assert!(
        !audit.status.success(),
        "an audit reports the held fork evidence"
    );
    let report: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    assert_eq!(report["agree"], false);
    assert_eq!(report["nodes"][0]["forks"].as_array().unwrap().len(), 1);
}
