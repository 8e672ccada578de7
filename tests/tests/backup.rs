//! Backup and restore against a live 3-node cluster: an online backup of a node (refused to
//! anyone but the node's operator), checked against the genesis and a checkpoint cosigned by
//! the nodes; then the node is killed and its store corrupted, it refuses to start (exit 4), a
//! new node is restored from the backup, joins (member add, promote; the old member removed),
//! catches up, and every node holds the same log and Merkle root.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use ledger_tests::*;

/// Kills the restored node however the test ends.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn node(args: &[&str]) -> Output {
    Command::new(&binaries().node)
        .args(args)
        .output()
        .expect("run ledger-node")
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// Flips one byte of the first occurrence of `needle` in any file under `dir`.
fn flip_byte_of(dir: &Path, needle: &[u8]) -> bool {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if flip_byte_of(&path, needle) {
                return true;
            }
            continue;
        }
        let mut bytes = std::fs::read(&path).unwrap();
        if let Some(pos) = bytes.windows(needle.len()).position(|w| w == needle) {
            bytes[pos + needle.len() / 2] ^= 0x20;
            std::fs::write(&path, bytes).unwrap();
            return true;
        }
    }
    false
}

/// (log size, head hash, checkpoint root) as the node at `url` reports them.
fn view(url: &str) -> Option<(u64, String, String)> {
    let out = client(url, &["--json", "status"]);
    if !out.status.success() {
        return None;
    }
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some((
        s["log_size"].as_u64()?,
        s["head_hash"].as_str()?.to_string(),
        s["checkpoint"]["root"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    ))
}

#[test]
fn a_node_restored_from_a_backup_rejoins_and_the_cluster_is_identical() {
    let mut cluster = TestCluster::start(3);
    for i in 0..3 {
        wait_for("a leader", || cluster.leader_seen_by(i).is_some());
    }
    let dir = cluster.dir.path().to_path_buf();
    let agency = cluster.key_path("CN-44");
    let before: Vec<String> = (0..6)
        .map(|i| person(&format!("W-BK-{i}"), "CN-44"))
        .collect();
    let out = cluster.submit(0, &agency, &before);
    assert!(out.status.success(), "{}", stderr(&out));
    let size = view(&cluster.url(0)).unwrap().0;
    wait_for("node 3 to apply", || {
        view(&cluster.url(2)).is_some_and(|v| v.0 == size)
    });
    // A statement cosigned by the nodes: its checkpoint is what the backup is compared with.
    let statement = dir.join("w.statement.json");
    let out = cluster.client(
        &cluster.url(0),
        &[
            "statement",
            "W-BK-0",
            "--key",
            p(&agency),
            "--out",
            p(&statement),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // Only the node's operator may take a backup: a client without the node key is refused.
    let refused = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let ch = test_channel(&cluster.url(2)).await;
            ledger_proto::admin::admin_client::AdminClient::new(ch)
                .backup(ledger_proto::admin::BackupRequest {})
                .await
                .map(|_| ())
        })
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused}");

    // An online backup of node 3 while it serves.
    let backup = dir.join("node-3.backup");
    let out = node(&[
        "backup",
        "--config",
        p(&dir.join("node-3.toml")),
        "--out",
        p(&backup),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains(&format!("{size} events")), "{printed}");
    // Never replaced.
    assert!(!node(&[
        "backup",
        "--config",
        p(&dir.join("node-3.toml")),
        "--out",
        p(&backup)
    ])
    .status
    .success());

    let genesis = dir.join("genesis.toml");
    let out = node(&[
        "verify-backup",
        p(&backup),
        "--genesis",
        p(&genesis),
        "--checkpoint",
        p(&statement),
        "--trust",
        p(&cluster.trust_path()),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.starts_with("VALID"), "{printed}");
    assert!(
        printed.contains("is the checkpoint's, signed by"),
        "{printed}"
    );
    // A damaged copy is refused, naming why.
    let damaged = dir.join("damaged.backup");
    let mut bytes = std::fs::read(&backup).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&damaged, bytes).unwrap();
    let out = node(&["verify-backup", p(&damaged), "--genesis", p(&genesis)]);
    assert!(!out.status.success(), "a damaged backup must fail");
    assert!(!stderr(&out).is_empty());

    // The ledger moves on after the backup.
    let after: Vec<String> = (0..4)
        .map(|i| person(&format!("W-AF-{i}"), "CN-44"))
        .collect();
    let out = cluster.submit(0, &agency, &after);
    assert!(out.status.success(), "{}", stderr(&out));

    // Node 3 dies and its store is damaged: it refuses to start, with exit code 4.
    cluster.kill9(2);
    assert!(flip_byte_of(&dir.join("node-3").join("store"), b"W-BK-3"));
    let log = std::fs::File::create(dir.join("node-3-corrupt.log")).unwrap();
    let status = Command::new(&binaries().node)
        .args(["run", "--config", p(&dir.join("node-3.toml"))])
        .stdout(Stdio::null())
        .stderr(log)
        .status()
        .unwrap();
    assert_eq!(
        status.code(),
        Some(4),
        "{}",
        std::fs::read_to_string(dir.join("node-3-corrupt.log")).unwrap()
    );

    // Restoring under its old Raft id is refused: it lost its vote and its acknowledged tail.
    let out = node(&[
        "restore",
        p(&backup),
        "--config",
        p(&dir.join("node-3.toml")),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("new [raft] id"), "{}", stderr(&out));

    // A new node (id 4) from the backup: its own key, the current members in its config.
    let (port, raft) = (free_port(), free_port());
    let key4 = new_node_key(&dir.join("node-4"));
    let mut members = String::new();
    for i in 0..3 {
        members.push_str(&format!(
            "\n[[raft.members]]\nid = {}\nraft_address = \"https://127.0.0.1:{}\"\npublic_address = \"{}\"\nnode_key = \"{}\"\n",
            i + 1,
            cluster.raft_ports[i],
            cluster.url(i),
            cluster.node_keys[i]
        ));
    }
    std::fs::write(
        dir.join("node-4.toml"),
        format!("node_id = \"node-4\"\njurisdiction = \"CN-51\"\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"node-4\"\ngenesis = \"genesis.toml\"\ntrust = \"trust.txt\"\n\n[raft]\nid = 4\nlisten = \"127.0.0.1:{raft}\"\n{members}"),
    )
    .unwrap();
    let out = node(&[
        "restore",
        p(&backup),
        "--config",
        p(&dir.join("node-4.toml")),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A second restore into the same directory changes nothing.
    let again = node(&[
        "restore",
        p(&backup),
        "--config",
        p(&dir.join("node-4.toml")),
    ]);
    assert!(
        stderr(&again).contains("move the damaged data directory aside"),
        "{}",
        stderr(&again)
    );

    let log = std::fs::File::create(dir.join("node-4.log")).unwrap();
    let _node4 = Reaped(
        Command::new(&binaries().node)
            .args(["run", "--config", p(&dir.join("node-4.toml"))])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let url4 = format!("https://127.0.0.1:{port}");
    wait_for("the restored node to serve", || view(&url4).is_some());
    assert_eq!(
        view(&url4).unwrap().0,
        size,
        "the restored node serves the backup's events before it rejoins"
    );

    // The agencies add it, promote it and remove the dead member (acts of 3 jurisdictions).
    let quorum: Vec<String> = ["CN-44", "CN-33", "CN-51"]
        .iter()
        .flat_map(|j| ["--key".to_string(), p(&cluster.key_path(j)).to_string()])
        .collect();
    let leader = cluster.leader_seen_by(0).unwrap();
    let act = |args: &[&str]| {
        let mut all: Vec<&str> = vec!["--json", "member"];
        all.extend(args);
        all.extend(quorum.iter().map(String::as_str));
        json(&client(&cluster.url(leader), &all))
    };
    let raft4 = format!("https://127.0.0.1:{raft}");
    act(&[
        "add",
        "--id",
        "4",
        "--raft-address",
        &raft4,
        "--public-address",
        &url4,
        "--node-key",
        &key4,
    ]);
    act(&["promote", "--id", "4"]);
    act(&["remove", "--id", "3"]);

    // Every remaining node holds the same log, head and Merkle root; the restored node has the
    // events appended after the backup too.
    let urls = [cluster.url(0), cluster.url(1), url4.clone()];
    wait_for("every node to hold the same log", || {
        let views: Vec<_> = urls.iter().map(|u| view(u)).collect();
        views.iter().all(|v| v.is_some() && *v == views[0])
    });
    let final_size = view(&url4).unwrap().0;
    assert!(
        final_size >= size + 4 + 3,
        "after-backup events and the three acts"
    );
    let key = ledger_client::keys::load(&agency).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut c = ledger_client::Client::connect(&url4).await.unwrap();
            for w in ["W-BK-3", "W-AF-3"] {
                assert_eq!(c.worker_events(w, &key).await.unwrap().len(), 1, "{w}");
            }
        });
    let audit = client(
        &url4,
        &[
            "audit",
            "--endpoint",
            &urls[0],
            "--endpoint",
            &urls[1],
            "--endpoint",
            &urls[2],
        ],
    );
    assert!(audit.status.success(), "{}", stderr(&audit));
}

#[test]
fn a_single_node_is_restored_in_place_and_a_newer_checkpoint_is_refused() {
    let mut ledger = TestLedger::start();
    let dir = ledger.path().to_path_buf();
    let agency = ledger.key_path("CN-44");
    let first: Vec<String> = (0..5)
        .map(|i| person(&format!("W-S-{i}"), "CN-44"))
        .collect();
    let out = ledger.client(&[
        "submit",
        "--key",
        p(&agency),
        p(&ledger.jsonl("a.jsonl", &first)),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let backup = dir.join("single.backup");
    let out = node(&[
        "backup",
        "--config",
        p(&dir.join("node.toml")),
        "--out",
        p(&backup),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("5 events"));

    // A checkpoint of a later state cannot vouch for the backup's root.
    let more = [person("W-S-5", "CN-44"), person("W-S-6", "CN-44")];
    let out = ledger.client(&[
        "submit",
        "--key",
        p(&agency),
        p(&ledger.jsonl("b.jsonl", &more)),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let statement = dir.join("s.json");
    let out = ledger.client(&[
        "statement",
        "W-S-6",
        "--key",
        p(&agency),
        "--out",
        p(&statement),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let trust = dir.join("trust.txt");
    let verifier = std::fs::read_to_string(dir.join("data/node.pub")).unwrap();
    std::fs::write(&trust, format!("CN-44 {verifier}")).unwrap();
    let genesis = dir.join("genesis.toml");
    let out = node(&[
        "verify-backup",
        p(&backup),
        "--genesis",
        p(&genesis),
        "--checkpoint",
        p(&statement),
        "--trust",
        p(&trust),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("at or before the backup"),
        "{}",
        stderr(&out)
    );
    // Without members in the genesis, the checkpoint's signers must be named.
    let out = node(&[
        "verify-backup",
        p(&backup),
        "--genesis",
        p(&genesis),
        "--checkpoint",
        p(&statement),
    ]);
    assert!(stderr(&out).contains("--trust"), "{}", stderr(&out));

    // The node's data is lost; the node key is kept (clients pin it). Restored and restarted,
    // it serves the backup's events.
    assert!(ledger.stop().success());
    std::fs::rename(dir.join("data"), dir.join("data.damaged")).unwrap();
    std::fs::create_dir(dir.join("data")).unwrap();
    std::fs::copy(dir.join("data.damaged/node.key"), dir.join("data/node.key")).unwrap();
    let out = node(&["restore", p(&backup), "--config", p(&dir.join("node.toml"))]);
    assert!(out.status.success(), "{}", stderr(&out));
    ledger.spawn();
    assert_eq!(ledger.log_size(), 5);
    let out = ledger.client(&["--json", "events", "W-S-4", "--key", p(&agency)]);
    assert!(out.status.success(), "{}", stderr(&out));
}
