//! Raft snapshots between real `ledger-node` processes: a follower that fell behind the purged
//! Raft log catches up by a snapshot and ends with the same ledger, event for event; a forged
//! InstallSnapshot sent to a node's Raft port is refused and the node carries on.

use std::path::Path;

use ed25519_dalek::SigningKey;
use ledger_client::SubmitOutcome;
use ledger_core::envelope::read_method;
use ledger_core::event::{EventBody, Hash32};
use ledger_proto::node::{get_event_request::By, ledger_client::LedgerClient, GetEventRequest};
use ledger_tests::*;
use serde_json::json;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Submits each group of workers as one request (one Raft entry, one stamp) through `url`, and
/// returns the (index, id) of every appended event.
fn register(url: &str, key: &SigningKey, groups: &[Vec<String>]) -> Vec<(u64, Hash32)> {
    runtime().block_on(async {
        let mut client = ledger_client::Client::connect(url).await.unwrap();
        let ledger = client.ledger_id().await.unwrap();
        let mut appended = Vec::new();
        for workers in groups {
            let envelopes = workers
                .iter()
                .map(|w| {
                    let (kind, _) =
                        ledger_core::json::parse_json_event(&person(w, "CN-44")).unwrap();
                    let body = EventBody {
                        signed_at: ledger_client::jsonl::now(),
                        kind,
                    };
                    ledger_core::Envelope::sign(&ledger, &body, &[key])
                })
                .collect();
            for out in client.submit(envelopes).await.unwrap() {
                match out {
                    SubmitOutcome::Accepted {
                        event_id, index, ..
                    } => appended.push((index, event_id)),
                    refused => panic!("{refused:?}"),
                }
            }
        }
        appended
    })
}

/// The events at `appended`'s indexes as node `url` serves them (read with an agency key).
fn events_at(url: &str, key: &SigningKey, appended: &[(u64, Hash32)]) -> Vec<Vec<u8>> {
    use prost::Message;
    runtime().block_on(async {
        let mut client = LedgerClient::new(test_channel(url).await);
        let mut sdk = ledger_client::Client::connect(url).await.unwrap();
        let mut events = Vec::new();
        for (index, _) in appended {
            let token = sdk
                .token(key, read_method::GET_EVENT, &format!("index:{index}"))
                .await
                .unwrap();
            let reply = client
                .get_event(GetEventRequest {
                    by: Some(By::Index(*index)),
                    token: Some(token),
                })
                .await
                .unwrap();
            events.push(reply.into_inner().event.unwrap().encode_to_vec());
        }
        events
    })
}

fn head(c: &TestCluster, i: usize) -> Option<(serde_json::Value, serde_json::Value)> {
    c.status(i)
        .map(|v| (v["log_size"].clone(), v["head_hash"].clone()))
}

fn agency(path: &Path) -> SigningKey {
    ledger_client::keys::load(path).unwrap()
}

#[test]
fn a_follower_behind_the_purged_log_catches_up_by_snapshot_event_for_event() {
    // Snapshots every 10 entries; openraft purges its log in batches of 256 entries, so a
    // follower down for 300 entries (some of several events under one stamp) can only catch up
    // through a snapshot, which it checks and replays.
    let mut c = TestCluster::start_with(3, "snapshot_every = 10");
    let key = agency(&c.key_path("CN-44"));
    wait_for("a leader", || c.leader_seen_by(0).is_some());
    let leader = c.leader_seen_by(0).unwrap();
    let lagging = (leader + 1) % 3;
    let first = register(&c.url(leader), &key, &[vec!["W-before".into()]]);
    c.kill9(lagging);

    let groups: Vec<Vec<String>> = (0..300)
        .map(|i| (0..1 + i % 3).map(|j| format!("W-snap-{i}-{j}")).collect())
        .collect();
    let appended = [first, register(&c.url(leader), &key, &groups)].concat();

    c.spawn(lagging);
    wait_for("the lagging follower to catch up", || {
        let heads: Vec<_> = (0..3).map(|i| head(&c, i)).collect();
        heads.iter().all(|h| h.is_some() && *h == heads[0])
    });
    let size = head(&c, lagging).unwrap().0.as_u64().unwrap();
    assert_eq!(size, appended.len() as u64);
    let on_leader = events_at(&c.url(leader), &key, &appended);
    let on_follower = events_at(&c.url(lagging), &key, &appended);
    for (i, (index, _)) in appended.iter().enumerate() {
        assert_eq!(on_follower[i], on_leader[i], "event {index} differs");
    }
    let log =
        std::fs::read_to_string(c.dir.path().join(format!("node-{}.log", lagging + 1))).unwrap();
    assert!(
        log.contains("checked a snapshot from a peer"),
        "the follower caught up through a checked snapshot:\n{log}"
    );
}

/// An InstallSnapshot as an attacker on the Raft port would send it.
fn forged(offset: u64, data: Vec<u8>, done: bool, id: &str) -> serde_json::Value {
    let leader_id = json!({"term": 1_000_000, "node_id": 1});
    json!({
        "vote": {"leader_id": leader_id, "committed": true},
        "meta": {
            "last_log_id": {"leader_id": leader_id, "index": 10_000_000u64},
            "last_membership": {"log_id": null, "membership": {"configs": [], "nodes": {}}},
            "snapshot_id": id,
        },
        "offset": offset,
        "data": data,
        "done": done,
    })
}

#[test]
fn a_forged_install_snapshot_is_refused_and_the_node_keeps_serving() {
    let c = TestCluster::start(3);
    let key = agency(&c.key_path("CN-44"));
    wait_for("a leader", || c.leader_seen_by(0).is_some());
    let leader = c.leader_seen_by(0).unwrap();
    let target = (leader + 1) % 3;
    register(&c.url(leader), &key, &[vec!["W-1".into(), "W-2".into()]]);
    wait_for("the follower to apply", || {
        head(&c, target) == head(&c, leader)
    });
    let before = head(&c, target).unwrap();
    let raft_url = format!("https://127.0.0.1:{}", c.raft_ports[target]);
    // Sent as member 1 (the leader the forged messages claim to be), over mutual TLS with its
    // key: what only a member could do, so the snapshot checks themselves are what refuse.
    let member = c.dir.path().join("node-1").join("node.key");

    // The chunk that once made a node try to allocate 2^60 bytes.
    let err = raft_rpc(
        &raft_url,
        &member,
        RaftRpc::InstallSnapshot,
        &forged(1 << 60, vec![1], false, "huge"),
    )
    .expect_err("refused");
    assert!(err.message().contains("MAX_SNAPSHOT_BYTES"), "{err:?}");

    // A chunk out of order: the sender is told where the stream stands, nothing is written.
    let reply = raft_rpc(
        &raft_url,
        &member,
        RaftRpc::InstallSnapshot,
        &forged(4096, vec![1; 16], false, "gap"),
    )
    .expect("an answer");
    assert!(reply.to_string().contains("SnapshotMismatch"), "{reply}");

    // The 148-byte snapshot that once replaced a follower's store with an empty one.
    let err = raft_rpc(
        &raft_url,
        &member,
        RaftRpc::InstallSnapshot,
        &forged(0, vec![0x5a; 148], true, "empty-ledger"),
    )
    .expect_err("refused");
    assert!(err.message().contains("refused"), "{err:?}");

    assert_eq!(
        head(&c, target),
        Some(before.clone()),
        "the ledger is untouched"
    );
    // Still a healthy member: it applies what the cluster commits next.
    register(&c.url(leader), &key, &[vec!["W-3".into()]]);
    wait_for("the follower to apply a new entry", || {
        head(&c, target).is_some() && head(&c, target) == head(&c, leader)
    });
    assert_eq!(
        head(&c, target).unwrap().0.as_u64(),
        Some(before.0.as_u64().unwrap() + 1)
    );
}
