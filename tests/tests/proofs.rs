//! Proofs a worker can carry, end to end with real processes: a statement from a 3-node cluster,
//! cosigned by every node, verifies offline; any altered byte fails; removing, adding or
//! reordering an event fails; one node's key alone cannot make a statement that verifies; it
//! holds no other worker's lines; `audit` sees agreement; a stranger's note is refused without
//! alarm; a node shown a trusted node's conflicting checkpoint refuses to cosign it, keeps the
//! evidence (once) and reports the fork.

use std::process::Output;

use ledger_core::checkpoint::{Checkpoint, SignedNote, Trust};
use ledger_core::statement::{Contents, Statement};
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
    // The March line of W-S was declared in error: voided by a line correction.
    let march = receipts(&declared)[2]["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    let void = format!(
        r#"{{"type":"correction","target":"{march}","line":0,"action":"void","reason":"declared in error"}}"#
    );
    let voided = cluster.submit(1, &employer, &[void]);
    assert!(voided.status.success(), "{}", stderr(&voided));
    let size = cluster.status(1).unwrap()["log_size"].as_u64().unwrap();
    for i in 0..3 {
        wait_for("every node to apply the log", || {
            cluster.status(i).and_then(|s| s["log_size"].as_u64()) == Some(size)
        });
    }
    // The trust file: each node's checkpoint key with its jurisdiction, as the nodes use it.
    let trust = std::fs::read_to_string(cluster.trust_path()).unwrap();
    assert!(trust.starts_with("CN-44 node-"), "{trust}");
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
    let e = employer.to_str().unwrap();
    let proof = ok(&client(
        &cluster.url(2),
        &["--json", "proof", &first_id, "--key", e, "--trust", t],
    ));
    assert_eq!(proof["verified"], true);
    assert_eq!(proof["index"], size - 3);
    let by_agency = client(
        &cluster.url(2),
        &["proof", &first_id, "--key", a, "--trust", t],
    );
    assert!(by_agency.status.success(), "{}", stderr(&by_agency));
    // A key that neither signed the event nor is named in it hears what it would hear of an
    // event that does not exist.
    let stranger = cluster.dir.path().join("stranger.key");
    let spk = client(
        &cluster.url(0),
        &["keygen", "--out", stranger.to_str().unwrap()],
    );
    let spk = String::from_utf8_lossy(&spk.stdout).trim().to_string();
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
            "91440300MA5GOTHER",
            "--public-key",
            &spk,
        ],
    );
    assert!(reg.status.success(), "{}", stderr(&reg));
    let s = stranger.to_str().unwrap();
    let hidden = client(
        &cluster.url(0),
        &["proof", &first_id, "--key", s, "--trust", t],
    );
    let unknown = client(
        &cluster.url(0),
        &["proof", &"ab".repeat(32), "--key", s, "--trust", t],
    );
    assert!(!hidden.status.success() && !unknown.status.success());
    let msg = |o: &Output| {
        stderr(o)
            .replace(&first_id, "ID")
            .replace(&"ab".repeat(32), "ID")
    };
    assert_eq!(msg(&hidden), msg(&unknown), "existence is not revealed");
    assert!(stderr(&hidden).contains("no event"), "{}", stderr(&hidden));
    let size = cluster.status(1).unwrap()["log_size"].as_u64().unwrap();
    for i in 0..3 {
        wait_for("every node to apply the key", || {
            cluster.status(i).and_then(|s| s["log_size"].as_u64()) == Some(size)
        });
    }

    let file = carried.path().join("statement.json");
    let f = file.to_str().unwrap();
    let made = ok(&client(
        &cluster.url(0),
        &["--json", "statement", "W-S", "--key", a, "--out", f],
    ));
    assert_eq!(
        made["events"], 5,
        "the person, three declarations and the correction"
    );
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
    assert_eq!(v["contents_signed_by"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(v["quorum"], 2, "a majority of three keys");
    assert_eq!(v["entitlement"]["pension"]["insured_months"], 2);
    assert_eq!(v["entitlement"]["pension"]["individual_account"], "800.00");
    let other_file = carried.path().join("other.json");
    ok(&client(
        &cluster.url(1),
        &[
            "--json",
            "statement",
            "W-OTHER",
            "--key",
            a,
            "--out",
            other_file.to_str().unwrap(),
        ],
    ));
    let node1_key = std::fs::read_to_string(cluster.dir.path().join("node-1/node.key")).unwrap();
    // Verification is offline: it still passes with every node gone.
    drop(cluster);
    let again = std::process::Command::new(&binaries().client)
        .args(["verify", f, "--trust", t])
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("VALID"));

    // Every single altered byte fails verification (checked in-process for every position).
    let keys = ledger_client::proofs::load_trust_file(&trust_file).unwrap();
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

    let other = std::fs::read_to_string(&other_file).unwrap();
    shortened_grown_reordered_or_one_key_statements_fail(&text, &other, &node1_key, &keys, f, t);
}

fn edit(text: &str, f: impl FnOnce(&mut Statement)) -> String {
    let mut st: Statement = serde_json::from_str(text).unwrap();
    f(&mut st);
    serde_json::to_string_pretty(&st).unwrap()
}

fn refused(text: &str, trust: &Trust) -> String {
    match ledger_client::proofs::verify_statement(text, trust) {
        Ok(p) => panic!("an edited statement verified: {} events", p.events.len()),
        Err(e) => e.to_string(),
    }
}

/// The edits of a dishonest holder, and of one dishonest node, on real statements.
fn shortened_grown_reordered_or_one_key_statements_fail(
    text: &str,
    other: &str,
    node1_key: &str,
    trust: &Trust,
    file: &str,
    trust_file: &str,
) {
    let st: Statement = serde_json::from_str(text).unwrap();
    let correction = st.events.last().unwrap().index;
    // Remove the voiding correction: the month it voided would count again.
    let shortened = edit(text, |st| st.events.retain(|e| e.index != correction));
    let why = refused(&shortened, trust);
    assert!(why.contains("not the ones the nodes signed"), "{why}");
    std::fs::write(file, &shortened).unwrap();
    let cli = std::process::Command::new(&binaries().client)
        .args(["verify", file, "--trust", trust_file])
        .output()
        .unwrap();
    assert!(!cli.status.success());
    assert!(
        stderr(&cli).contains("removed or added"),
        "{}",
        stderr(&cli)
    );
    // Add an event from another worker's statement (in log order).
    let other: Statement = serde_json::from_str(other).unwrap();
    let foreign = other.events[0].clone();
    let grown = edit(text, |st| {
        st.events.push(foreign);
        st.events.sort_by_key(|e| e.index);
    });
    let why = refused(&grown, trust);
    assert!(why.contains("not the ones the nodes signed"), "{why}");
    // Reorder two events.
    let reordered = edit(text, |st| st.events.swap(1, 2));
    let why = refused(&reordered, trust);
    assert!(why.contains("not in log order"), "{why}");
    // One node's key alone: node 1 signs a checkpoint and a contents note listing the shortened
    // events; without a quorum the statement is refused, naming who signed.
    let key = ledger_core::envelope::parse_secret_key(node1_key).unwrap();
    let resign = |note: &str| {
        let mut n = SignedNote::parse(note).unwrap();
        n.signatures.clear();
        n.text.clone()
    };
    let forged = edit(&shortened, |st| {
        let cp = Checkpoint::parse_body(&resign(&st.checkpoint)).unwrap();
        let indexes: Vec<u64> = st.events.iter().map(|e| e.index).collect();
        let params: Vec<u64> = st.parameters.iter().map(|e| e.index).collect();
        let mut contents = SignedNote::new(Contents::new(cp, &st.worker, &indexes, &params).body());
        contents.sign("node-1", &key).unwrap();
        st.contents = contents.format();
        let mut checkpoint = SignedNote::new(resign(&st.checkpoint));
        checkpoint.sign("node-1", &key).unwrap();
        st.checkpoint = checkpoint.format();
    });
    let why = refused(&forged, trust);
    assert!(
        why.contains("signed by node-1 (CN-44): 1 of the 3 trusted node keys, 2 needed"),
        "{why}"
    );
    let one = trust.clone().with_quorum(1).unwrap();
    assert!(
        ledger_client::proofs::verify_statement(&forged, &one).is_ok(),
        "the forgery is well formed: only the quorum stops it"
    );
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

    // A forged checkpoint: node 1's size with another root.
    let node2_key = std::fs::read_to_string(cluster.dir.path().join("node-2/node.key")).unwrap();
    let node2_key = ledger_core::envelope::parse_secret_key(&node2_key).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(async {
        let mut c = ledger_client::Client::connect(&urls[0]).await.unwrap();
        let real = c.checkpoint().await.unwrap();
        let note = SignedNote::parse(&real.note).unwrap();
        let cp = Checkpoint::parse_body(&note.text).unwrap();
        // The genuine checkpoint is cosigned.
        let cosigned = c.cosign(&real.note).await.unwrap();
        assert!(cosigned.contains("node-1"));
        let forged = Checkpoint {
            root: ledger_core::event::Hash32([0xab; 32]),
            ..cp
        };
        // Signed by a stranger's key: refused before anything else, nothing kept.
        for seed in 40..43 {
            let mut rogue = SignedNote::new(forged.body());
            rogue
                .sign("rogue", &ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
                .unwrap();
            let refused = c.cosign(&rogue.format()).await.unwrap_err();
            assert!(refused.to_string().contains("trust"), "{refused}");
        }
        assert!(
            c.checkpoint().await.unwrap().forks.is_empty(),
            "no evidence from strangers"
        );
        forged
    });
    let status = cluster.status(0).unwrap();
    assert_eq!(status["forks"], 0, "a stranger raises no alarm: {status}");
    let audit = client(&urls[0], &args);
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stdout)
    );

    // Signed by node 2's key (a dishonest or compromised node): the evidence of a fork, kept
    // once however often it is shown.
    let mut fake = SignedNote::new(fake.body());
    fake.sign("node-2", &node2_key).unwrap();
    rt.block_on(async {
        let mut c = ledger_client::Client::connect(&urls[0]).await.unwrap();
        for _ in 0..3 {
            let refused = c.cosign(&fake.format()).await.unwrap_err();
            assert!(refused.to_string().contains("fork"), "{refused}");
        }
        let after = c.checkpoint().await.unwrap();
        assert_eq!(
            after.forks,
            vec![fake.format()],
            "the evidence is kept once and reported"
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

/// Node 1 holds a wrong key for node 3 in its trust file (as if node 3 answered with a
/// cosignature that does not verify): node 3's cosignatures are left out, not added, and the
/// statements of node 1 still verify with the quorum of node 1 and node 2.
#[test]
fn a_cosignature_that_does_not_verify_is_left_out_and_statements_still_verify() {
    let cluster = cluster();
    let real_trust = std::fs::read_to_string(cluster.trust_path()).unwrap();
    let carried = tempfile::tempdir().unwrap();
    let verifier_trust = carried.path().join("trust.txt");
    std::fs::write(&verifier_trust, &real_trust).unwrap();
    // The nodes' trust file now names another key for node-3.
    let wrong = ledger_core::checkpoint::NoteKey::new(
        "node-3",
        ledger_core::event::PublicKeyBytes(
            ed25519_dalek::SigningKey::from_bytes(&[7; 32])
                .verifying_key()
                .to_bytes(),
        ),
    )
    .unwrap();
    let lines: Vec<String> = real_trust
        .lines()
        .map(|l| {
            if l.contains(" node-3+") {
                format!("CN-44 {}", wrong.verifier_string())
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(cluster.trust_path(), lines.join("\n") + "\n").unwrap();

    let agency = cluster.key_path("CN-44");
    let out = cluster.submit(0, &agency, &[person("W-L", "CN-44")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let size = cluster.status(0).unwrap()["log_size"].as_u64().unwrap();
    for i in 0..3 {
        wait_for("every node to apply the log", || {
            cluster.status(i).and_then(|s| s["log_size"].as_u64()) == Some(size)
        });
    }
    let file = carried.path().join("statement.json");
    let f = file.to_str().unwrap();
    let a = agency.to_str().unwrap();
    ok(&client(
        &cluster.url(0),
        &["--json", "statement", "W-L", "--key", a, "--out", f],
    ));
    let v = ok(&client(
        &cluster.url(0),
        &[
            "--json",
            "verify",
            f,
            "--trust",
            verifier_trust.to_str().unwrap(),
        ],
    ));
    assert_eq!(v["valid"], true);
    assert_eq!(
        v["signed_by"],
        serde_json::json!(["node-1", "node-2"]),
        "{v}"
    );
    assert_eq!(
        v["contents_signed_by"],
        serde_json::json!(["node-1", "node-2"]),
        "{v}"
    );
}
