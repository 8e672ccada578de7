//! Three ledger-node processes replicate one log over Raft: any node accepts submissions
//! (followers forward to the leader) and reads its own writes; killing the leader elects another
//! and loses nothing acknowledged; a restarted node catches up; a minority cannot commit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ledger_client::SubmitOutcome;
use ledger_core::event::{parse_json_event, EventBody};
use ledger_core::Envelope;
use ledger_tests::*;

fn log_size(c: &TestCluster, i: usize) -> Option<u64> {
    c.status(i).and_then(|s| s["log_size"].as_u64())
}

fn head(c: &TestCluster, i: usize) -> Option<String> {
    c.status(i)
        .and_then(|s| s["head_hash"].as_str().map(str::to_string))
}

#[test]
fn a_three_node_cluster_replicates_survives_its_leader_and_refuses_without_a_majority() {
    let mut c = TestCluster::start(3);
    let agency = c.key_path("CN-44");
    wait_for("a leader", || c.leader_seen_by(0).is_some());
    let leader = c.leader_seen_by(0).unwrap();
    let follower = (leader + 1) % 3;

    // A follower accepts, forwards, and answers after applying: it reads its own write at once.
    let out = c.submit(follower, &agency, &[person("W-1", "CN-44")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let read = client(
        &c.url(follower),
        &["events", "W-1", "--key", agency.to_str().unwrap()],
    );
    assert!(
        read.status.success(),
        "read-your-writes on the follower: {}",
        stderr(&read)
    );
    let size = log_size(&c, follower).unwrap();
    wait_for("every node to apply it", || {
        (0..3).all(|i| log_size(&c, i) == Some(size))
    });

    // status asks every member: all reachable, all at the same size.
    let s = c.status(follower).unwrap();
    let nodes = s["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    assert!(
        nodes
            .iter()
            .all(|n| n["reachable"] == true && n["log_size"] == size),
        "{s}"
    );

    // Continuous load through a follower while the leader is SIGKILLed: the survivors elect a
    // new leader and the load goes on.
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (acknowledged, stop, url) = (acknowledged.clone(), stop.clone(), c.url(follower));
        let key = ledger_client::keys::load(&agency).unwrap();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let mut client = ledger_client::Client::connect(&url).await.unwrap();
                    // Bounded: at most 2,000 requests, or until told to stop.
                    for i in 0..2000 {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let worker = format!("W-load-{i}");
                        let (kind, _) = parse_json_event(&person(&worker, "CN-44")).unwrap();
                        let body = EventBody {
                            signed_at: ledger_client::jsonl::now(),
                            kind,
                        };
                        // A failed request (no leader during the election) is simply not
                        // acknowledged; back off a little, as any client would, instead of
                        // spinning through the bound.
                        match client.submit(vec![Envelope::sign(&body, &[&key])]).await {
                            Ok(out) if matches!(out[0], SubmitOutcome::Accepted { .. }) => {
                                acknowledged.lock().unwrap().push(worker)
                            }
                            _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                        }
                    }
                })
        })
    };
    wait_for("load before the kill", || {
        acknowledged.lock().unwrap().len() >= 20
    });
    c.kill9(leader);
    let at_kill = acknowledged.lock().unwrap().len();
    wait_for("the load to go on under a new leader", || {
        acknowledged.lock().unwrap().len() >= at_kill + 20
    });
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();

    // The old leader restarts and catches up: same log size and head everywhere, and every
    // acknowledged event on every node.
    c.spawn(leader);
    wait_for("the restarted node to catch up", || {
        let sizes: Vec<Option<u64>> = (0..3).map(|i| log_size(&c, i)).collect();
        let heads: Vec<Option<String>> = (0..3).map(|i| head(&c, i)).collect();
        sizes.iter().all(|s| s.is_some() && *s == sizes[0])
            && heads.iter().all(|h| h.is_some() && *h == heads[0])
    });
    let key = ledger_client::keys::load(&agency).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            for i in 0..3 {
                let mut client = ledger_client::Client::connect(&c.url(i)).await.unwrap();
                for w in &acknowledged {
                    let events = client
                        .worker_events(w, &key)
                        .await
                        .unwrap_or_else(|e| panic!("{w} on node {i}: {e}"));
                    assert_eq!(events.len(), 1, "acknowledged {w} on node {i}");
                }
            }
        });

    // Two of three stopped: the last node cannot commit, says so, and appends nothing.
    let last = (0..3).find(|i| *i != leader).unwrap();
    for i in (0..3).filter(|i| *i != last) {
        c.kill9(i);
    }
    let before = log_size(&c, last).unwrap();
    let out = c.submit(last, &agency, &[person("W-minority", "CN-44")]);
    assert!(!out.status.success(), "a minority must not acknowledge");
    let err = stderr(&out);
    assert!(
        err.contains("majority") || err.contains("leader"),
        "a clear error: {err}"
    );
    assert_eq!(
        log_size(&c, last),
        Some(before),
        "nothing applied without a majority"
    );
}

#[test]
fn a_follower_behind_the_purged_log_catches_up_through_a_snapshot() {
    // Snapshots every 10 entries, keeping 2: a follower down for 40 entries can only catch up by
    // installing a snapshot of the ledger, which it verifies before serving.
    let mut c = TestCluster::start_with(3, "snapshot_every = 10");
    let agency = c.key_path("CN-44");
    wait_for("a leader", || c.leader_seen_by(0).is_some());
    let leader = c.leader_seen_by(0).unwrap();
    let lagging = (leader + 1) % 3;
    c.kill9(lagging);

    let key = ledger_client::keys::load(&agency).unwrap();
    let url = c.url(leader);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut client = ledger_client::Client::connect(&url).await.unwrap();
            // One request per event: each becomes its own Raft entry.
            for i in 0..40 {
                let (kind, _) =
                    ledger_core::event::parse_json_event(&person(&format!("W-snap-{i}"), "CN-44"))
                        .unwrap();
                let body = ledger_core::event::EventBody {
                    signed_at: ledger_client::jsonl::now(),
                    kind,
                };
                let out = client
                    .submit(vec![ledger_core::Envelope::sign(&body, &[&key])])
                    .await
                    .unwrap();
                assert!(
                    matches!(out[0], ledger_client::SubmitOutcome::Accepted { .. }),
                    "{out:?}"
                );
            }
        });

    c.spawn(lagging);
    wait_for("the lagging follower to catch up", || {
        let s: Vec<_> = (0..3)
            .map(|i| {
                c.status(i)
                    .map(|v| (v["log_size"].clone(), v["head_hash"].clone()))
            })
            .collect();
        s.iter().all(|x| x.is_some() && *x == s[0])
    });
    let out = client(
        &c.url(lagging),
        &["events", "W-snap-39", "--key", agency.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let log =
        std::fs::read_to_string(c.dir.path().join(format!("node-{}.log", lagging + 1))).unwrap();
    assert!(
        log.to_lowercase().contains("snapshot"),
        "the follower caught up through a snapshot:\n{log}"
    );
}
