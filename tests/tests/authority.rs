//! Authority over ledger-wide acts, tried as a dishonest agency would with real `ledger-node`
//! processes: one agency cannot remove another jurisdiction's voter; an act signed by the
//! quorum (3 of the genesis's 4 jurisdictions), its signatures gathered one agency at a time
//! in an act file, is carried out once, and a replay of it is refused; an agency rotates its own
//! keys alone and cannot touch another's.

use std::path::Path;

use ledger_tests::*;

fn nodes(cluster: &TestCluster, i: usize) -> Vec<u64> {
    let s = cluster.status(i).expect("status");
    s["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_u64().unwrap())
        .collect()
}

fn act_file(dir: &Path, name: &str, act: &[&str], nonce: &str, via: &str) -> String {
    let path = dir.join(name).to_str().unwrap().to_string();
    let mut args = vec!["act", "new", "--out", &path, "--nonce", nonce];
    args.extend(act);
    let out = client(via, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    path
}

fn sign(file: &str, key: &Path, via: &str) {
    let out = client(via, &["act", "sign", file, "--key", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn one_agency_cannot_remove_a_voter_and_a_replayed_act_is_refused() {
    let cluster = TestCluster::start(3);
    for i in 0..3 {
        wait_for("a leader", || cluster.leader_seen_by(i).is_some());
    }
    let leader = cluster.leader_seen_by(0).unwrap();
    let victim = (0..3).find(|i| *i != leader).unwrap();
    let victim_id = (victim + 1).to_string();
    let via = cluster.url(leader);
    let size = |c: &TestCluster| c.status(leader).unwrap()["log_size"].as_u64().unwrap();
    let before = size(&cluster);

    // The Beijing-style attack: one agency's key removes another jurisdiction's voter.
    let cn33 = cluster.key_path("CN-33");
    let alone = client(
        &via,
        &[
            "member",
            "remove",
            "--key",
            cn33.to_str().unwrap(),
            "--id",
            &victim_id,
        ],
    );
    assert!(!alone.status.success());
    assert!(
        stderr(&alone).contains("needs agency signatures of 3 of the 4 jurisdictions, got 1"),
        "{}",
        stderr(&alone)
    );
    assert_eq!(nodes(&cluster, leader).len(), 3);
    assert_eq!(size(&cluster), before, "a refused act records nothing");

    // Agencies sign one act file in turn, each with its own key, as on separate machines.
    let dir = cluster.dir.path();
    let file = act_file(dir, "remove.json", &["remove", &victim_id], "rm-1", &via);
    sign(&file, &cn33, &via);
    sign(&file, &cluster.key_path("DE"), &via);
    let two = client(&via, &["act", "submit", &file]);
    assert!(
        stderr(&two).contains("insufficient_authority"),
        "two of four is not enough: {}",
        stderr(&two)
    );
    assert_eq!(nodes(&cluster, leader).len(), 3);
    sign(&file, &cluster.key_path("CN-51"), &via);
    let shown = client(&via, &["--json", "act", "show", &file]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["signers"].as_array().unwrap().len(), 3, "{shown}");

    let done = client(&via, &["--json", "act", "submit", &file]);
    assert!(done.status.success(), "{}", stderr(&done));
    let done: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
    let index = done["index"].as_u64().unwrap();
    assert_eq!(
        index,
        before + 1,
        "the act is recorded in the ledger: {done}"
    );
    assert!(
        !nodes(&cluster, leader).contains(&(victim as u64 + 1)),
        "{done}"
    );

    // The same signed act again: recognised as carried out, not carried out twice.
    let survivor = (0..3).find(|i| *i != leader && *i != victim).unwrap();
    for url in [via.clone(), cluster.url(survivor)] {
        let replay = client(&url, &["act", "submit", &file]);
        assert!(!replay.status.success());
        assert!(
            stderr(&replay).contains(&format!("already carried out at index {index}")),
            "{}",
            stderr(&replay)
        );
    }
    // A membership act cannot slip in through plain submission either.
    std::fs::write(
        dir.join("act.jsonl"),
        format!("{{\"type\":\"ledger_act\",\"act\":\"remove {victim_id}\",\"nonce\":\"raw-1\"}}\n"),
    )
    .unwrap();
    let raw = client(
        &via,
        &[
            "--json",
            "submit",
            "--key",
            cn33.to_str().unwrap(),
            dir.join("act.jsonl").to_str().unwrap(),
        ],
    );
    assert!(!raw.status.success());
    assert!(
        String::from_utf8_lossy(&raw.stdout).contains("act submit"),
        "{}",
        String::from_utf8_lossy(&raw.stdout)
    );
    assert_eq!(size(&cluster), index, "replays record nothing");

    // The two remaining voters keep committing.
    let out = cluster.submit(
        leader,
        &cluster.key_path("CN-44"),
        &[person("W-A1", "CN-44")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn an_agency_rotates_its_own_keys_and_cannot_add_anothers() {
    let ledger = TestLedger::start();
    let via = ledger.url();
    let dir = ledger.path();
    let old = ledger.key_path("CN-44");
    let (new_key, new_public) = ledger.keygen("cn44-new");

    // CN-33 cannot give CN-44 a key on its own.
    let foreign = act_file(
        dir,
        "foreign.json",
        &["register-agency-key", "CN-44", &new_public],
        "k-0",
        &via,
    );
    sign(&foreign, &ledger.key_path("CN-33"), &via);
    let out = ledger.client(&["act", "submit", &foreign]);
    assert!(
        stderr(&out).contains("insufficient_authority"),
        "{}",
        stderr(&out)
    );

    // CN-44 registers its new key with its current key, alone...
    let register = act_file(
        dir,
        "register.json",
        &["register-agency-key", "CN-44", &new_public],
        "k-1",
        &via,
    );
    sign(&register, &old, &via);
    let out = ledger.client(&["act", "submit", &register]);
    assert!(out.status.success(), "{}", stderr(&out));
    // ...the new key works as an agency key of CN-44...
    let out = ledger.submit(&[&new_key], &[person("W-K1", "CN-44")]);
    assert!(out.status.success(), "{}", stderr(&out));
    // ...and revokes the old one, which then signs nothing.
    let old_public = {
        let text = std::fs::read_to_string(&old).unwrap();
        let key = ledger_core::envelope::parse_secret_key(&text).unwrap();
        hex::encode(key.verifying_key().to_bytes())
    };
    let revoke = act_file(
        dir,
        "revoke.json",
        &["revoke-agency-key", "CN-44", &old_public],
        "k-2",
        &via,
    );
    sign(&revoke, &new_key, &via);
    let out = ledger.client(&["act", "submit", &revoke]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ledger.submit(&[&old], &[person("W-K2", "CN-44")]);
    let r = receipts(&out);
    assert_eq!(r[0]["refused"]["code"], "revoked_key", "{r:?}");
}
