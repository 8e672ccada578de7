//! What deploy/ relies on (deploy/README.md): `ledger-node node-key` before the first start,
//! settings from LEDGER_* variables over the config file, a `listen` given as a host name, and
//! `ledger-node health` as the probe.

use std::process::{Command, Stdio};

use ledger_tests::*;

fn node(args: &[&str]) -> std::process::Output {
    Command::new(&binaries().node)
        .args(args)
        .output()
        .expect("run ledger-node")
}

#[test]
fn a_node_configured_from_the_environment_serves_and_its_probe_says_so() {
    let dir = tempfile::tempdir().unwrap();
    make_genesis(dir.path(), "pcl-env");
    // The file names another node, another port and another data dir: the variables win.
    std::fs::write(
        dir.path().join("node.toml"),
        "node_id = \"from-file\"\njurisdiction = \"CN-33\"\nlisten = \"127.0.0.1:1\"\ndata_dir = \"unused\"\ngenesis = \"genesis.toml\"\n",
    )
    .unwrap();
    let data = dir.path().join("state");

    // The key is made before the first start, as a cluster's configs need it.
    let data_arg = data.to_str().unwrap();
    let made = node(&["node-key", "--data-dir", data_arg, "--node-id", "env-node"]);
    assert!(made.status.success(), "{}", stderr(&made));
    let printed = String::from_utf8(made.stdout).unwrap();
    let node_key = printed
        .lines()
        .find_map(|l| l.strip_prefix("node_key="))
        .expect("node_key= line")
        .to_string();
    assert_eq!(node_key.len(), 64, "{printed}");
    assert!(printed.contains("verifier=env-node+"), "{printed}");
    let again = node(&["node-key", "--data-dir", data_arg, "--node-id", "env-node"]);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains(&node_key),
        "an existing key is kept"
    );
    // A client that trusts this node's key alone.
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        format!("[tls]\nnode_keys = [\"{node_key}\"]\n"),
    )
    .unwrap();

    let port = free_port();
    let env = [
        ("LEDGER_CONFIG", dir.path().join("node.toml")),
        ("LEDGER_NODE_ID", "env-node".into()),
        ("LEDGER_JURISDICTION", "CN-44".into()),
        ("LEDGER_LISTEN", format!("localhost:{port}").into()),
        ("LEDGER_DATA_DIR", data.clone()),
    ];
    let mut child = Command::new(&binaries().node)
        .arg("run")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ledger-node");
    let health = || {
        Command::new(&binaries().node)
            .args(["health", "--timeout", "2"])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run ledger-node health")
    };
    wait_for("the probe to say serving", || health().status.success());
    let status = client_with_config(
        config.path(),
        &format!("127.0.0.1:{port}"),
        &["--json", "--retry-for", "0", "status"],
    );
    assert!(status.status.success(), "{}", stderr(&status));
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["node_id"], "env-node");
    assert_eq!(status["jurisdiction"], "CN-44");
    assert!(
        data.join("node.crt").exists(),
        "the data dir of LEDGER_DATA_DIR"
    );
    assert!(
        !dir.path().join("unused").exists(),
        "not the file's data_dir"
    );

    child.kill().unwrap();
    child.wait().unwrap();
    let down = health();
    assert_eq!(down.status.code(), Some(1), "{}", stderr(&down));
    assert!(stderr(&down).contains("cannot reach"), "{}", stderr(&down));

    // A bad variable is refused before anything starts, naming the variable.
    let bad = Command::new(&binaries().node)
        .arg("run")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("LEDGER_LISTEN", "no-port")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("LEDGER_LISTEN"), "{}", stderr(&bad));
}
