//! Transport security with real processes: the Raft port admits only members, each speaking for
//! itself; clients need TLS and the right trust; a node's key is rotated by membership change.

use std::path::Path;

use ledger_client::transport::{self, ClientTrust, Pins, Transport};
use ledger_proto::raft::{raft_client::RaftClient, RaftPayload};
use ledger_tests::*;

/// The Raft state an outsider tried to move: every node's term, last log index and membership.
fn raft_state(cluster: &TestCluster, n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| {
            let s = cluster.status(i).expect("status");
            serde_json::json!([s["raft"]["term"], s["raft"]["last_log_index"], s["members"]])
        })
        .collect()
}

/// A TLS transport presenting a certificate over `key` (a member's, or an outsider's).
fn presenting(key_file: &Path, dir: &Path) -> Transport {
    let key = ledger_core::envelope::parse_secret_key(&std::fs::read_to_string(key_file).unwrap())
        .unwrap();
    let tls =
        ledger_node::tls::NodeTls::new(&key, &["127.0.0.1".to_string()], dir).expect("certificate");
    tls.outgoing(Pins::dynamic(|_| true))
}

/// The hand-written messages of the attack: a leader with a huge term, and a candidate.
fn append_entries(leader: u64) -> Vec<u8> {
    format!(r#"{{"vote":{{"leader_id":{{"term":5002,"node_id":{leader}}},"committed":true}},"prev_log_id":null,"entries":[],"leader_commit":null}}"#).into_bytes()
}
fn vote(candidate: u64) -> Vec<u8> {
    format!(r#"{{"vote":{{"leader_id":{{"term":5002,"node_id":{candidate}}},"committed":false}},"last_log_id":null}}"#).into_bytes()
}

/// Sends both messages over `transport` to a Raft port; the status codes (or connect errors).
fn attack(url: &str, transport: &Transport, claimed: u64) -> Vec<String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let channel = match transport::channel(url, transport).await {
                Ok(c) => c,
                Err(e) => return vec![format!("connect: {e}")],
            };
            let mut c = RaftClient::new(channel);
            let a = c
                .append_entries(RaftPayload {
                    json: append_entries(claimed),
                })
                .await;
            let v = c
                .vote(RaftPayload {
                    json: vote(claimed),
                })
                .await;
            [a, v]
                .into_iter()
                .map(|r| match r {
                    Ok(_) => "accepted".to_string(),
                    Err(s) => format!("{:?}: {}", s.code(), s.message()),
                })
                .collect()
        })
}

#[test]
fn only_members_speaking_for_themselves_reach_raft() {
    let cluster = TestCluster::start(3);
    for i in 0..3 {
        wait_for("a leader", || cluster.leader_seen_by(i).is_some());
    }
    let before = raft_state(&cluster, 3);
    let dir = cluster.dir.path();
    let outsider_key = dir.join("outsider.key");
    write_key(
        &outsider_key,
        &ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
    );
    let outsider_dir = tempfile::tempdir().unwrap();
    for i in 0..3 {
        let raft = format!("https://127.0.0.1:{}", cluster.raft_ports[i]);
        // Plaintext: the TLS port never gets as far as gRPC.
        let plain = attack(&raft.replace("https", "http"), &Transport::Plaintext, 9);
        assert!(plain.iter().all(|r| r != "accepted"), "{plain:?}");
        // TLS with a key that is no member's: refused in the handshake.
        let unknown = attack(&raft, &presenting(&outsider_key, outsider_dir.path()), 9);
        assert!(unknown.iter().all(|r| r != "accepted"), "{unknown:?}");
        // A member (node 1's own key) claiming to be another member: refused per RPC.
        let member_dir = tempfile::tempdir().unwrap();
        let node1 = presenting(&dir.join("node-1").join("node.key"), member_dir.path());
        let other = if i == 2 { 2 } else { 3 };
        let forged = attack(&raft, &node1, other);
        assert_eq!(forged.len(), 2, "{forged:?}");
        assert!(
            forged.iter().all(|r| r.starts_with("PermissionDenied")),
            "{forged:?}"
        );
    }
    let after = raft_state(&cluster, 3);
    assert_eq!(before, after, "no term, log or membership moved");
    // The cluster still works.
    let out = cluster.submit(0, &cluster.key_path("CN-44"), &[person("W-T1", "CN-44")]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn clients_need_tls_and_the_right_trust() {
    let ledger = TestLedger::start();
    let plain = ledger.url().replace("https://", "http://");
    let out = client(&plain, &["status"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("speaks TLS"), "{}", stderr(&out));

    // A client that trusts another key is refused, and says so.
    let wrong = ledger.path().join("wrong-client.toml");
    std::fs::write(
        &wrong,
        format!("[tls]\nnode_keys = [\"{}\"]\n", "ab".repeat(32)),
    )
    .unwrap();
    let out = client_with_config(&wrong, &ledger.url(), &["status"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not trusted"), "{}", stderr(&out));
    // No trust at all for an https URL: a clear error before any connection.
    let none = ledger.path().join("empty-client.toml");
    std::fs::write(&none, "endpoints = []\n").unwrap();
    let out = client_with_config(&none, &ledger.url(), &["status"]);
    assert!(
        stderr(&out).contains("no trusted node keys"),
        "{}",
        stderr(&out)
    );

    // Trust by certificate file works as well as by key.
    let by_cert = ledger.path().join("cert-client.toml");
    std::fs::write(&by_cert, "[tls]\nnode_certs = [\"data/node.crt\"]\n").unwrap();
    let trust = ClientTrust::load(&by_cert).unwrap();
    assert_eq!(hex::encode(trust.node_keys[0]), ledger.node_key);
    let out = client_with_config(&by_cert, &ledger.url(), &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn plaintext_is_only_for_loopback_and_is_announced() {
    let dir = tempfile::tempdir().unwrap();
    make_genesis(dir.path(), "pcl-plain");
    let write = |listen: &str| {
        std::fs::write(
            dir.path().join("node.toml"),
            format!("node_id = \"n1\"\njurisdiction = \"CN-44\"\nlisten = \"{listen}\"\ndata_dir = \"data\"\ngenesis = \"genesis.toml\"\n\n[tls]\nmode = \"plaintext\"\n"),
        )
        .unwrap();
    };
    write("0.0.0.0:0");
    let out = std::process::Command::new(&binaries().node)
        .args(["run", "--config"])
        .arg(dir.path().join("node.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("only allowed when every listen address is loopback"),
        "{}",
        stderr(&out)
    );

    let port = free_port();
    write(&format!("127.0.0.1:{port}"));
    let log = dir.path().join("node.log");
    let mut node = std::process::Command::new(&binaries().node)
        .args(["run", "--config"])
        .arg(dir.path().join("node.toml"))
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    wait_for("the plaintext node", || {
        client(&url, &["status"]).status.success()
    });
    let _ = node.kill();
    let _ = node.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("WARN") && text.contains("plaintext"),
        "{text}"
    );
}

#[test]
fn a_node_key_is_rotated_by_replacing_the_member() {
    let mut cluster = TestCluster::start(3);
    for i in 0..3 {
        wait_for("a leader", || cluster.leader_seen_by(i).is_some());
    }
    let agency = cluster.key_path("CN-44");
    let a = agency.to_str().unwrap().to_string();
    // Membership acts need 3 of the genesis's 4 jurisdictions.
    let [b, c] = ["CN-33", "CN-51"].map(|j| cluster.key_path(j).to_str().unwrap().to_string());
    let dir = cluster.dir.path().to_path_buf();
    // Node 3's machine gets a new key: a fresh node (id 4) with the new key joins...
    let (port, raft) = (free_port(), free_port());
    let key4 = new_node_key(&dir.join("node-4"));
    let mut members = String::new();
    for i in 0..3 {
        members.push_str(&format!(
            "\n[[raft.members]]\nid = {}\nraft_address = \"https://127.0.0.1:{}\"\npublic_address = \"https://127.0.0.1:{}\"\nnode_key = \"{}\"\n",
            i + 1, cluster.raft_ports[i], cluster.ports[i], cluster.node_keys[i]
        ));
    }
    std::fs::write(
        dir.join("node-4.toml"),
        format!("node_id = \"node-4\"\njurisdiction = \"CN-44\"\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"node-4\"\ngenesis = \"genesis.toml\"\n\n[raft]\nid = 4\nlisten = \"127.0.0.1:{raft}\"\n{members}"),
    )
    .unwrap();
    let mut node4 = std::process::Command::new(&binaries().node)
        .args(["run", "--config"])
        .arg(dir.join("node-4.toml"))
        .stderr(std::fs::File::create(dir.join("node-4.log")).unwrap())
        .spawn()
        .unwrap();
    let url4 = format!("https://127.0.0.1:{port}");
    wait_for("node 4 to serve", || {
        client(&url4, &["status"]).status.success()
    });
    let add = |node_key: Option<&str>| {
        let raft4 = format!("https://127.0.0.1:{raft}");
        let mut args = vec![
            "member",
            "add",
            "--key",
            &a,
            "--key",
            &b,
            "--key",
            &c,
            "--id",
            "4",
            "--raft-address",
            &raft4,
            "--public-address",
            &url4,
        ];
        if let Some(k) = node_key {
            args.extend(["--node-key", k]);
        }
        client(&cluster.url(0), &args)
    };
    // Without its key the members could never accept it: refused before anything changes.
    let out = add(None);
    assert!(
        !out.status.success() && stderr(&out).contains("must name the new node's node key"),
        "{}",
        stderr(&out)
    );
    let out = add(Some(&key4));
    assert!(out.status.success(), "{}", stderr(&out));
    let promote = client(
        &cluster.url(0),
        &[
            "member", "promote", "--key", &a, "--key", &b, "--key", &c, "--id", "4",
        ],
    );
    assert!(promote.status.success(), "{}", stderr(&promote));
    // ...and the member with the old key leaves.
    let remove = client(
        &cluster.url(0),
        &[
            "member", "remove", "--key", &a, "--key", &b, "--key", &c, "--id", "3",
        ],
    );
    assert!(remove.status.success(), "{}", stderr(&remove));
    cluster.kill9(2);

    // The new key carries the cluster: a submission through node 4 commits.
    let out = client(
        &url4,
        &[
            "--json",
            "submit",
            "--key",
            &a,
            cluster
                .jsonl_for_test(&[person("W-R1", "CN-44")])
                .to_str()
                .unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // The old key (node 3's certificate) is refused on the Raft port: it is no member's now.
    let old_dir = tempfile::tempdir().unwrap();
    let old = presenting(&dir.join("node-3").join("node.key"), old_dir.path());
    let before = raft_state(&cluster, 2);
    for i in 0..2 {
        let r = attack(
            &format!("https://127.0.0.1:{}", cluster.raft_ports[i]),
            &old,
            3,
        );
        assert!(r.iter().all(|r| r != "accepted"), "{r:?}");
    }
    assert_eq!(before, raft_state(&cluster, 2));
    let _ = node4.kill();
    let _ = node4.wait();
}
