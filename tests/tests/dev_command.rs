//! `ledger-node dev` as docs/cli.md specifies it: keys for every dev jurisdiction, client.toml,
//! health service, clean stop on SIGTERM, and the same ledger on a re-run.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use ledger_tests::*;

fn sigterm(child: &std::process::Child) {
    assert!(Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success());
}

#[test]
fn dev_creates_keys_and_client_config_and_restarts_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    // Three nodes: public ports base..base+2, Raft ports base+100..base+102.
    let port = free_port_block(&[0, 1, 2, 100, 101, 102]);
    let start = || {
        Command::new(&binaries().node)
            .args([
                "dev",
                "--data-dir",
                dir.path().to_str().unwrap(),
                "--base-port",
                &port.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // The client trusts what dev wrote in client.toml (the nodes' keys), nothing else.
    let client_toml_path = dir.path().join("client.toml");
    let client = |url: &str, args: &[&str]| client_with_config(&client_toml_path, url, args);
    let url = format!("https://127.0.0.1:{port}");
    let mut dev = start();
    wait_for("dev to serve", || {
        client(&url, &["status"]).status.success()
    });

    for j in ["CN-44", "CN-33", "CN-11", "CN-43", "CN-51", "DE"] {
        let key = dir.path().join("keys").join(format!("{j}.key"));
        let mode = std::fs::metadata(&key)
            .unwrap_or_else(|_| panic!("{j}.key exists"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{j}.key is private");
    }
    // Every node's checkpoint key, gathered for `verify --trust`.
    let trust = dir.path().join("trust.txt");
    wait_for("dev to write trust.txt", || trust.exists());
    let keys = ledger_client::proofs::load_trust(&trust).unwrap();
    assert_eq!(keys.len(), 3, "one checkpoint key per node");
    let client_toml = std::fs::read_to_string(dir.path().join("client.toml")).unwrap();
    for i in 0..3 {
        let node = format!("https://127.0.0.1:{}", port + i);
        assert!(client_toml.contains(&node), "{client_toml}");
        wait_for("a leader, seen from every node", || {
            let status = client(&node, &["--json", "status"]);
            status.status.success()
                && serde_json::from_slice::<serde_json::Value>(&status.stdout).unwrap()["leader"]
                    .as_str()
                    .is_some_and(|l| l.starts_with("raft "))
        });
    }

    // The standard gRPC health service answers SERVING (once the leader has heard from a
    // majority). The runtime (and with it the connection) is gone before the node is stopped.
    let serving = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let transport = ledger_client::transport::ClientTrust::load(&client_toml_path)
                    .unwrap()
                    .transport_for(&url)
                    .unwrap();
                let channel = ledger_client::transport::channel(&url, &transport)
                    .await
                    .unwrap();
                let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
                let r = health
                    .check(tonic_health::pb::HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .unwrap();
                r.into_inner().status
                    == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
            })
    };
    wait_for("the health service to say SERVING", serving);

    // Register a person with the dev agency key, stop, start again: same ledger, same data.
    let agency = dir.path().join("keys").join("CN-51.key");
    let events = dir.path().join("p.jsonl");
    std::fs::write(&events, person("W-DEV", "CN-51") + "\n").unwrap();
    let out = client(
        &url,
        &[
            "submit",
            "--key",
            agency.to_str().unwrap(),
            events.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    sigterm(&dev);
    assert!(
        dev.wait().unwrap().success(),
        "dev stops cleanly on SIGTERM"
    );

    let mut dev = start();
    wait_for("dev to serve again", || {
        client(&url, &["status"]).status.success()
    });
    let out = client(
        &url,
        &["events", "W-DEV", "--key", agency.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("W-DEV"));
    sigterm(&dev);
    assert!(dev.wait().unwrap().success());
}
