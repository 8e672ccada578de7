//! Growing and shrinking a replicated ledger with `ledger-client member`: a fourth node process
//! that is not an initial member waits; an agency adds it as a learner (it catches up), promotes
//! it to voter, and removes another node; the cluster keeps committing. Each change is a ledger
//! act signed by the agencies of 3 of the genesis's 4 jurisdictions (its default quorum). Keys
//! that are not an agency's change nothing.

use std::process::{Command, Stdio};

use ledger_tests::*;

/// Kills the extra node process however the test ends.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn an_agency_adds_promotes_and_removes_members() {
    let cluster = TestCluster::start(3);
    for i in 0..3 {
        wait_for("a leader", || cluster.leader_seen_by(i).is_some());
    }
    let agency = cluster.key_path("CN-44");
    let a = agency.to_str().unwrap();
    let quorum_paths: Vec<String> = ["CN-44", "CN-33", "CN-51"]
        .iter()
        .map(|j| cluster.key_path(j).to_str().unwrap().to_string())
        .collect();
    let quorum: Vec<&str> = quorum_paths.iter().map(String::as_str).collect();
    let signed_by = |keys: &[&str]| -> Vec<String> {
        keys.iter()
            .flat_map(|k| ["--key".to_string(), k.to_string()])
            .collect()
    };
    let out = cluster.submit(
        0,
        &agency,
        &[person("W-M1", "CN-44"), person("W-M2", "CN-44")],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // Node 4: its own config, listing the initial members but not itself, so it only waits.
    let (port, raft) = (free_port(), free_port());
    let mut members = String::new();
    for i in 0..3 {
        let s = cluster.status(i).unwrap();
        let me = &s["raft"]["id"];
        let node = s["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == *me)
            .unwrap()
            .clone();
        members.push_str(&format!(
            "\n[[raft.members]]\nid = {me}\nraft_address = {}\npublic_address = {}\nnode_key = \"{}\"\n",
            node["raft_address"], node["address"], cluster.node_keys[i]
        ));
    }
    let dir = cluster.dir.path();
    let key4 = new_node_key(&dir.join("node-4"));
    std::fs::write(
        dir.join("node-4.toml"),
        format!("node_id = \"node-4\"\njurisdiction = \"CN-33\"\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"node-4\"\ngenesis = \"genesis.toml\"\n\n[raft]\nid = 4\nlisten = \"127.0.0.1:{raft}\"\n{members}"),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("node-4.log")).unwrap();
    let _node4 = Reaped(
        Command::new(&binaries().node)
            .args(["run", "--config"])
            .arg(dir.join("node-4.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let url4 = format!("https://127.0.0.1:{port}");
    wait_for("node 4 to serve", || {
        client(&url4, &["status"]).status.success()
    });
    assert_eq!(
        json(&client(&url4, &["--json", "status"]))["log_size"],
        0,
        "a joining node waits with an empty log"
    );

    // Keys that are not an agency's are refused, and nothing changes.
    let stranger = dir.join("stranger.key");
    assert!(
        client(&url4, &["keygen", "--out", stranger.to_str().unwrap()])
            .status
            .success()
    );
    let raft4 = format!("https://127.0.0.1:{raft}");
    let add = |keys: &[&str], via: &str| {
        let mut args: Vec<String> = ["--json", "member", "add"].map(String::from).to_vec();
        args.extend(signed_by(keys));
        args.extend(
            [
                "--id",
                "4",
                "--raft-address",
                &raft4,
                "--public-address",
                &url4,
                "--node-key",
                &key4,
            ]
            .map(String::from),
        );
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        client(via, &refs)
    };
    let refused = add(&[stranger.to_str().unwrap()], &cluster.url(0));
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("not registered"),
        "{}",
        stderr(&refused)
    );
    let (wk, wp) = (dir.join("worker.key"), {
        let o = client(
            &url4,
            &["keygen", "--out", dir.join("worker.key").to_str().unwrap()],
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    });
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
            "worker",
            "--subject",
            "W-M1",
            "--public-key",
            &wp,
        ],
    );
    assert!(reg.status.success(), "{}", stderr(&reg));
    let refused = add(&[a, wk.to_str().unwrap()], &cluster.url(0));
    assert!(
        stderr(&refused).contains("agency keys only"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        cluster.status(0).unwrap()["nodes"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // An agency adds node 4 through a follower (forwarded to the leader); it catches up.
    let leader = cluster.leader_seen_by(0).unwrap();
    let follower = (leader + 1) % 3;
    let added = json(&add(&quorum, &cluster.url(follower)));
    assert!(
        added["message"].as_str().unwrap().contains("learner"),
        "{added}"
    );
    let size = cluster.status(leader).unwrap()["log_size"]
        .as_u64()
        .unwrap();
    wait_for("node 4 to catch up", || {
        let out = client(&url4, &["--json", "status"]);
        out.status.success()
            && serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["log_size"] == size
    });
    let mut promote: Vec<String> = ["--json", "member", "promote", "--id", "4"]
        .map(String::from)
        .to_vec();
    promote.extend(signed_by(&quorum));
    let promote: Vec<&str> = promote.iter().map(String::as_str).collect();
    let promoted = json(&client(&cluster.url(leader), &promote));
    let four = promoted["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == 4)
        .unwrap()
        .clone();
    assert_eq!(four["voter"], true, "{promoted}");
    assert_eq!(
        promoted["index"].as_u64(),
        Some(size + 1),
        "the act is recorded"
    );
    let s = cluster.status(leader).unwrap();
    assert!(
        s["commit_index"].as_u64().unwrap() > 0,
        "status shows the commit index: {s}"
    );
    assert!(
        s["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["id"] == 4 && n["voter"] == true),
        "{s}"
    );

    // Remove a follower other than node 4: three voters remain, and the cluster commits.
    let gone = (0..3).find(|i| *i != leader).unwrap();
    let gone_id = gone as u64 + 1;
    let gone_text = gone_id.to_string();
    let mut remove: Vec<String> = ["--json", "member", "remove", "--id", &gone_text]
        .map(String::from)
        .to_vec();
    remove.extend(signed_by(&quorum));
    let remove: Vec<&str> = remove.iter().map(String::as_str).collect();
    let removed = json(&client(&cluster.url(leader), &remove));
    assert!(
        removed["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["id"] != gone_id),
        "{removed}"
    );
    let out = cluster.submit(leader, &agency, &[person("W-M3", "CN-44")]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for("node 4 to apply the new event", || {
        // The promote and remove acts are recorded too: two events before the person.
        json(&client(&url4, &["--json", "status"]))["log_size"].as_u64() == Some(size + 3)
    });
    let mut unknown: Vec<&str> = vec!["member", "remove", "--id", "99"];
    unknown.extend(quorum.iter().flat_map(|k| ["--key", *k]));
    let unknown = client(&cluster.url(leader), &unknown);
    assert!(
        stderr(&unknown).contains("not a member"),
        "{}",
        stderr(&unknown)
    );
}
