//! The genesis ceremony of three agencies, each in its own directory (its own machine): each makes
//! its keys and gives out only `public.toml`; a coordinator assembles the genesis; every agency
//! computes the same hash; each writes its node's config from the genesis; the cluster starts
//! from that output, takes a submission, and a statement verifies against the trust file fetched
//! from a node and checked against the genesis hash.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use ledger_tests::*;

/// Kills the node processes however the test ends.
struct Reaped(Vec<Child>);

impl Drop for Reaped {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn node(args: &[&str]) -> Output {
    Command::new(&binaries().node)
        .args(args)
        .output()
        .expect("run ledger-node")
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn genesis_hash(printed: &str) -> String {
    printed
        .lines()
        .find_map(|l| l.strip_prefix("genesis_hash="))
        .expect("genesis_hash=")
        .to_string()
}

#[test]
fn three_agencies_make_a_ledger_and_verify_a_statement() {
    let root = tempfile::tempdir().unwrap();
    let agencies = [("CN-44", "cn44"), ("CN-33", "cn33"), ("DE", "de")];
    let ports: Vec<(u16, u16)> = agencies
        .iter()
        .map(|_| (free_port(), free_port()))
        .collect();
    let dirs: Vec<PathBuf> = agencies
        .iter()
        .map(|(_, name)| root.path().join(format!("agency-{name}")))
        .collect();

    // 1. Each agency on its own machine: keys made there, public halves written.
    for (((j, name), (port, raft)), dir) in agencies.iter().zip(&ports).zip(&dirs) {
        ok(node(&[
            "ceremony",
            "agency",
            "--jurisdiction",
            j,
            "--node-id",
            name,
            "--public-address",
            &format!("https://127.0.0.1:{port}"),
            "--raft-address",
            &format!("https://127.0.0.1:{raft}"),
            "--out",
            p(dir),
        ]));
        let public = std::fs::read_to_string(dir.join("public.toml")).unwrap();
        for secret in ["agency.key", &format!("{name}/data/node.key")] {
            let text = std::fs::read_to_string(dir.join(secret)).unwrap();
            let hex = text.trim();
            assert!(!public.contains(hex), "{secret} must not leave the agency");
        }
    }

    // 2. The coordinator assembles the genesis from the three public files only.
    let coordinator = root.path().join("coordinator");
    std::fs::create_dir_all(&coordinator).unwrap();
    let publics: Vec<PathBuf> = dirs.iter().map(|d| d.join("public.toml")).collect();
    let genesis = coordinator.join("genesis.toml");
    let mut args = vec![
        "ceremony",
        "assemble",
        "--ledger",
        "pcl-ceremony",
        "--quorum",
        "2",
        "--out",
        p(&genesis),
    ];
    args.extend(publics.iter().map(|f| p(f)));
    let hash = genesis_hash(&ok(node(&args)));
    // Never replaced: the genesis of a ledger is made once.
    assert!(!node(&args).status.success());

    // 3. Every agency receives the genesis and computes the same hash (compared out of band).
    for dir in &dirs {
        std::fs::copy(&genesis, dir.join("genesis.toml")).unwrap();
        let theirs = genesis_hash(&ok(node(&[
            "ceremony",
            "hash",
            p(&dir.join("genesis.toml")),
        ])));
        assert_eq!(theirs, hash);
    }

    // 4. Each agency writes its node's config from the genesis and starts the node.
    let mut nodes = Reaped(Vec::new());
    for (((_, name), (port, raft)), dir) in agencies.iter().zip(&ports).zip(&dirs) {
        ok(node(&[
            "ceremony",
            "node-config",
            "--genesis",
            p(&dir.join("genesis.toml")),
            "--node-id",
            name,
            "--out",
            p(&dir.join("node.toml")),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--raft-listen",
            &format!("127.0.0.1:{raft}"),
        ]));
        let log = std::fs::File::create(dir.join("node.log")).unwrap();
        nodes.0.push(
            Command::new(&binaries().node)
                .args(["run", "--config"])
                .arg(dir.join("node.toml"))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }
    let client_toml = coordinator.join("client.toml");
    ok(node(&[
        "ceremony",
        "client-config",
        "--genesis",
        p(&genesis),
        "--out",
        p(&client_toml),
    ]));
    let urls: Vec<String> = ports
        .iter()
        .map(|(port, _)| format!("https://127.0.0.1:{port}"))
        .collect();
    let status = |i: usize| -> Option<serde_json::Value> {
        let out = client_with_config(&client_toml, &urls[i], &["--json", "status"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    };
    for i in 0..3 {
        wait_for("every node to know the leader", || {
            status(i).is_some_and(|s| s["leader"].as_str().is_some_and(|l| l.starts_with("raft ")))
        });
    }
    assert_eq!(status(0).unwrap()["genesis_hash"], hash.as_str());

    // The Guangdong agency's own key registers a person: the genesis carries it.
    let agency_key = dirs[0].join("agency.key");
    let person_file = root.path().join("person.jsonl");
    std::fs::write(&person_file, person("W-CER-1", "CN-44") + "\n").unwrap();
    ok(client_with_config(
        &client_toml,
        &urls[1],
        &["submit", "--key", p(&agency_key), p(&person_file)],
    ));

    // 5. A verifier fetches the trust file from any node, checked against the genesis hash.
    let verifier = root.path().join("verifier");
    std::fs::create_dir_all(&verifier).unwrap();
    let trust = verifier.join("trust.txt");
    let mut wrong = hash.clone().into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    let refused = client_with_config(
        &client_toml,
        &urls[2],
        &[
            "trust",
            "--genesis-hash",
            std::str::from_utf8(&wrong).unwrap(),
            "--out",
            p(&trust),
        ],
    );
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("hashes to"),
        "{}",
        stderr(&refused)
    );
    assert!(!trust.exists(), "nothing written for a wrong hash");
    ok(client_with_config(
        &client_toml,
        &urls[2],
        &["trust", "--genesis-hash", &hash, "--out", p(&trust)],
    ));
    let fetched =
        ledger_core::checkpoint::Trust::parse(&std::fs::read_to_string(&trust).unwrap()).unwrap();
    let made = verifier.join("made.txt");
    ok(node(&[
        "ceremony",
        "trust",
        "--genesis",
        p(&genesis),
        "--out",
        p(&made),
    ]));
    assert_eq!(
        fetched,
        ledger_core::checkpoint::Trust::parse(&std::fs::read_to_string(&made).unwrap()).unwrap()
    );
    assert_eq!(fetched.nodes.len(), 3);

    let statement = verifier.join("w.statement.json");
    ok(client_with_config(
        &client_toml,
        &urls[0],
        &[
            "statement",
            "W-CER-1",
            "--key",
            p(&agency_key),
            "--out",
            p(&statement),
        ],
    ));
    let verified = ok(Command::new(&binaries().client)
        .args(["verify", p(&statement), "--trust", p(&trust)])
        .output()
        .unwrap());
    assert!(verified.starts_with("VALID"), "{verified}");
}
