//! Bounded inputs on a real 3-node cluster: an oversized Submit is refused with
//! RESOURCE_EXHAUSTED before it reaches consensus, without an election, while other clients'
//! submissions keep being acknowledged; events signed by an unregistered key are refused at the
//! edge and the Raft log does not grow; one connection flooding the node with large requests
//! does not starve another client.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use ledger_client::SubmitOutcome;
use ledger_core::envelope::LedgerId;
use ledger_core::event::EventBody;
use ledger_core::json::parse_json_event;
use ledger_core::Envelope;
use ledger_proto::node::ledger_client::LedgerClient;
use ledger_proto::node::SubmitRequest;
use ledger_tests::*;

fn raft_field(c: &TestCluster, i: usize, field: &str) -> u64 {
    c.status(i).expect("status")["raft"][field]
        .as_u64()
        .expect("a raft field")
}

fn terms(c: &TestCluster) -> Vec<u64> {
    (0..3).map(|i| raft_field(c, i, "term")).collect()
}

/// The terms once every node has heard from the leader (a node just started reports term 0
/// until its first heartbeat, which is not an election).
fn settled_terms(c: &TestCluster) -> Vec<u64> {
    wait_for("every node in the leader's term", || {
        let t = terms(c);
        t[0] > 0 && t.iter().all(|x| *x == t[0])
    });
    terms(c)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A raw client that may send requests far larger than the node accepts.
async fn raw(url: &str) -> LedgerClient<tonic::transport::Channel> {
    LedgerClient::new(test_channel(url).await).max_encoding_message_size(usize::MAX)
}

fn junk_request(envelopes: usize, bytes_each: usize) -> SubmitRequest {
    SubmitRequest {
        events: (0..envelopes)
            .map(|i| ledger_core::pb::Envelope {
                body: vec![i as u8; bytes_each],
                lines: vec![],
                signatures: vec![],
            })
            .collect(),
    }
}

fn person_envelope(ledger: &LedgerId, worker: &str, key: &SigningKey) -> Envelope {
    let (kind, _) = parse_json_event(&person(worker, "CN-44")).unwrap();
    let body = EventBody {
        signed_at: ledger_client::jsonl::now(),
        kind,
    };
    Envelope::sign(ledger, &body, &[key])
}

/// Person registrations submitted one by one through `url` until stopped; counts the receipts.
fn background_load(
    rt: &tokio::runtime::Runtime,
    url: String,
    key: SigningKey,
    acknowledged: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    rt.spawn(async move {
        let mut client = ledger_client::Client::connect(&url).await.unwrap();
        let ledger = client.ledger_id().await.unwrap();
        // Bounded: at most 5,000 requests, or until told to stop.
        for i in 0..5000 {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let out = client
                .submit(vec![person_envelope(&ledger, &format!("LOAD-{i}"), &key)])
                .await;
            if let Ok(out) = out {
                if matches!(out[0], SubmitOutcome::Accepted { .. }) {
                    acknowledged.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    })
}

#[test]
fn oversized_and_unauthorised_submissions_are_refused_before_consensus() {
    let c = TestCluster::start(3);
    wait_for("a leader", || c.leader_seen_by(0).is_some());
    let leader = c.leader_seen_by(0).unwrap();
    let follower = (leader + 1) % 3;
    let agency = ledger_client::keys::load(&c.key_path("CN-44")).unwrap();
    let rt = runtime();
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let load = background_load(
        &rt,
        c.url(follower),
        agency.clone(),
        acknowledged.clone(),
        stop.clone(),
    );
    wait_for("submissions acknowledged", || {
        acknowledged.load(Ordering::Relaxed) >= 3
    });
    let before = settled_terms(&c);

    // One 60 MB Submit (six 10 MB envelopes), to the leader and to a follower: refused from its
    // length prefix, with the limit and what to do.
    for node in [leader, follower] {
        let status = rt
            .block_on(async {
                raw(&c.url(node))
                    .await
                    .submit(junk_request(6, 10_000_000))
                    .await
            })
            .expect_err("an oversized request is refused");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
        assert!(
            status.message().contains("limit of"),
            "{}",
            status.message()
        );
        assert!(status.message().contains("split"), "{}", status.message());
    }
    // Submissions keep being acknowledged after it, with no election anywhere.
    let seen = acknowledged.load(Ordering::Relaxed);
    wait_for("submissions acknowledged after the oversized one", || {
        acknowledged.load(Ordering::Relaxed) >= seen + 5
    });
    stop.store(true, Ordering::Relaxed);
    rt.block_on(load).unwrap();
    assert_eq!(
        terms(&c),
        before,
        "the oversized request caused an election"
    );

    // A batch signed by a key no agency registered: refused at the edge with apply's code, and
    // nothing reaches the Raft log (through the leader, and forwarded by a follower).
    let stranger = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    wait_for("the followers to catch up", || {
        let l = raft_field(&c, leader, "last_log_index");
        (0..3).all(|i| raft_field(&c, i, "applied_index") == l)
    });
    let log_before = raft_field(&c, leader, "last_log_index");
    for node in [leader, follower] {
        let batch: Vec<Envelope> = (0..50)
            .map(|i| person_envelope(&c.ledger_id(), &format!("STRANGER-{node}-{i}"), &stranger))
            .collect();
        let outcomes = rt.block_on(async {
            let mut client = ledger_client::Client::connect(&c.url(node)).await.unwrap();
            client.submit(batch).await.unwrap()
        });
        assert_eq!(outcomes.len(), 50);
        for o in outcomes {
            assert!(
                matches!(&o, SubmitOutcome::Refused { code, .. } if code == "unknown_key"),
                "{o:?}"
            );
        }
    }
    for i in 0..3 {
        assert_eq!(raft_field(&c, i, "last_log_index"), log_before);
    }
    assert_eq!(terms(&c), before);
}

#[test]
fn one_connection_flooding_large_requests_does_not_starve_another_client() {
    let c = TestCluster::start(3);
    wait_for("a leader", || c.leader_seen_by(0).is_some());
    let leader = c.leader_seen_by(0).unwrap();
    let agency = ledger_client::keys::load(&c.key_path("CN-44")).unwrap();
    let rt = runtime();
    let before = settled_terms(&c);

    // One connection keeps 24 requests of 256 KiB in flight (more than it may run at once), round
    // after round, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));
    let flood = {
        let (url, stop, rounds) = (c.url(leader), stop.clone(), rounds.clone());
        rt.spawn(async move {
            let client = raw(&url).await;
            // Bounded: at most 50 rounds.
            for _ in 0..50 {
                if stop.load(Ordering::Relaxed) {
                    return true;
                }
                let calls = (0..24).map(|_| {
                    let mut client = client.clone();
                    async move { client.submit(junk_request(1, 256 * 1024)).await }
                });
                for reply in futures_join_all(calls).await {
                    // Answered (each junk envelope refused as malformed), or, on a loaded
                    // machine, cancelled by the node's request timeout: never dropped.
                    match reply {
                        Ok(r) => assert_eq!(r.into_inner().outcomes.len(), 1),
                        Err(s) => assert_eq!(s.code(), tonic::Code::Cancelled, "{s:?}"),
                    }
                }
                rounds.fetch_add(1, Ordering::Relaxed);
            }
            false
        })
    };
    wait_for("the flood under way", || {
        rounds.load(Ordering::Relaxed) >= 1
    });

    // Meanwhile another client's submissions are acknowledged, one after the other.
    rt.block_on(async {
        let mut client = ledger_client::Client::connect(&c.url(leader))
            .await
            .unwrap();
        for i in 0..5 {
            let out = client
                .submit(vec![person_envelope(
                    &c.ledger_id(),
                    &format!("CALM-{i}"),
                    &agency,
                )])
                .await
                .expect("a small submission during the flood");
            assert!(
                matches!(out[0], SubmitOutcome::Accepted { .. }),
                "{:?}",
                out[0]
            );
        }
    });
    stop.store(true, Ordering::Relaxed);
    assert!(
        rt.block_on(flood).unwrap(),
        "the flood ran out of rounds before the other client was served"
    );
    assert_eq!(terms(&c), before, "the flood caused an election");
}

/// Runs futures concurrently and collects their outputs in order (no futures crate needed).
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    calls: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = calls.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}
