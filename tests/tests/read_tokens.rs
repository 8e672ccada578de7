//! Read tokens and the ledger in the signing domain, against a real 3-node cluster (issue:
//! trust between agencies, part 2): a read token is good for one read, of one method, on one
//! node of one ledger; the token is checked before anything is looked up, so a stranger cannot
//! learn whether an event exists; an event signed for another ledger is refused.

use ed25519_dalek::SigningKey;
use ledger_client::{read_token, Client, NodeIdentity, SubmitOutcome};
use ledger_core::envelope::{read_method, Envelope, LedgerId};
use ledger_core::event::{EventBody, Hash32};
use ledger_core::json::parse_json_event;
use ledger_proto::node::{get_event_request::By, ledger_client::LedgerClient, GetEventRequest};
use ledger_proto::rights::{rights_client::RightsClient, CoverageRequest, EntitlementRequest};
use ledger_tests::*;
use tonic::Code;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A 3-node cluster whose nodes all know the leader.
fn cluster() -> TestCluster {
    let c = TestCluster::start(3);
    for i in 0..3 {
        wait_for("every node to know the leader", || {
            c.leader_seen_by(i).is_some()
        });
    }
    c
}

fn entitlement(worker: &str, token: ledger_proto::node::ReadToken) -> EntitlementRequest {
    EntitlementRequest {
        worker: worker.into(),
        token: Some(token),
        as_of: String::new(),
    }
}

#[test]
fn a_read_token_is_good_for_one_read_of_one_method_on_one_node() {
    let c = cluster();
    let agency_path = c.key_path("CN-44");
    let agency = ledger_client::keys::load(&agency_path).unwrap();
    let out = c.submit(0, &agency_path, &[person("W-TOK", "CN-44")]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for("every node to hold the worker", || {
        (0..3).all(|i| c.status(i).is_some_and(|s| s["log_size"] == 1))
    });

    runtime().block_on(async {
        let mut sdk = Client::connect(&c.url(0)).await.unwrap();
        let node0 = sdk.identity().await.unwrap();
        let mut rights0 = RightsClient::new(test_channel(&c.url(0)).await);
        let mut rights1 = RightsClient::new(test_channel(&c.url(1)).await);
        let token =
            |node: &NodeIdentity, method: &str| read_token(&agency, node, method, "W-TOK").unwrap();

        // The token works once, where it was made for.
        let t = token(&node0, read_method::ENTITLEMENT);
        rights0
            .entitlement(entitlement("W-TOK", t.clone()))
            .await
            .expect("a fresh token reads");
        // Replayed on the same node and method.
        let err = rights0
            .entitlement(entitlement("W-TOK", t.clone()))
            .await
            .expect_err("replayed");
        assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
        assert!(err.message().contains("already used"), "{err:?}");

        // Replayed on another method: refused, also with the hint fields stripped.
        let t = token(&node0, read_method::ENTITLEMENT);
        let coverage = |t| CoverageRequest {
            worker: "W-TOK".into(),
            token: Some(t),
            at: String::new(),
            jurisdiction: "CN-44".into(),
        };
        let err = rights0.coverage(coverage(t.clone())).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
        assert!(err.message().contains("Rights/Entitlement"), "{err:?}");
        let mut stripped = t.clone();
        stripped.method.clear();
        let err = rights0.coverage(coverage(stripped)).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
        assert!(err.message().contains("does not verify"), "{err:?}");

        // Replayed on another node of the same ledger: refused likewise.
        let err = rights1
            .entitlement(entitlement("W-TOK", t.clone()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
        assert!(err.message().contains("node"), "{err:?}");
        let mut stripped = t.clone();
        stripped.audience.clear();
        let err = rights1
            .entitlement(entitlement("W-TOK", stripped))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

        // A token of another ledger (same key, same node name) does not verify.
        let elsewhere = NodeIdentity {
            ledger: LedgerId(Hash32([7; 32])),
            node_id: node0.node_id.clone(),
        };
        let err = rights0
            .entitlement(entitlement(
                "W-TOK",
                token(&elsewhere, read_method::ENTITLEMENT),
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

        // A format-1 token (no nonce, good anywhere) is refused with the reason.
        let mut old = token(&node0, read_method::ENTITLEMENT);
        old.nonce.clear();
        let err = rights0
            .entitlement(entitlement("W-TOK", old))
            .await
            .unwrap_err();
        assert!(err.message().contains("format 1"), "{err:?}");
    });
}

#[test]
fn get_event_checks_the_token_before_it_looks_anything_up() {
    let c = cluster();
    let agency_path = c.key_path("CN-44");
    let out = c.submit(0, &agency_path, &[person("W-EXISTS", "CN-44")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let existing = Hash32::from_hex(
        receipts(&out)[0]["event_id"]
            .as_str()
            .expect("the receipt names the event"),
    )
    .unwrap();
    let missing = Hash32([0x42; 32]);

    runtime().block_on(async {
        let mut sdk = Client::connect(&c.url(0)).await.unwrap();
        let node0 = sdk.identity().await.unwrap();
        let mut ledger = LedgerClient::new(test_channel(&c.url(0)).await);
        let get = |id: Hash32, token| GetEventRequest {
            by: Some(By::EventId(id.0.to_vec())),
            token,
        };

        // No token, or a stranger's: the same answer whether or not the event exists.
        for id in [existing, missing] {
            let err = ledger.get_event(get(id, None)).await.unwrap_err();
            assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
            let stranger = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
            let t = read_token(&stranger, &node0, read_method::GET_EVENT, &id.to_hex()).unwrap();
            let err = ledger.get_event(get(id, Some(t))).await.unwrap_err();
            assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
            assert!(err.message().contains("not registered"), "{err:?}");
        }

        // A registered worker key that did not sign the event hears "not found" for the
        // existing event exactly as for a missing one.
        let worker_key = c.dir.path().join("worker.key");
        let pk = client(
            &c.url(0),
            &["keygen", "--out", worker_key.to_str().unwrap()],
        );
        let pk = String::from_utf8_lossy(&pk.stdout).trim().to_string();
        let reg = c.client(
            &c.url(0),
            &[
                "key",
                "register",
                "--key",
                agency_path.to_str().unwrap(),
                "--jurisdiction",
                "CN-44",
                "--role",
                "worker",
                "--subject",
                "W-EXISTS",
                "--public-key",
                &pk,
            ],
        );
        assert!(reg.status.success(), "{}", stderr(&reg));
        let worker = ledger_client::keys::load(&worker_key).unwrap();
        wait_for("node 1 to know the worker's key", || {
            c.status(0).is_some_and(|s| s["log_size"] == 2)
        });
        let mut answers = Vec::new();
        for id in [existing, missing] {
            let t = read_token(&worker, &node0, read_method::GET_EVENT, &id.to_hex()).unwrap();
            let err = ledger.get_event(get(id, Some(t))).await.unwrap_err();
            assert_eq!(err.code(), Code::NotFound, "{err:?}");
            answers.push(err.message().replace(&id.to_hex(), "ID"));
        }
        assert_eq!(answers[0], answers[1], "existence must not show");

        // The agency reads it, once per token.
        let agency = ledger_client::keys::load(&agency_path).unwrap();
        let t = read_token(&agency, &node0, read_method::GET_EVENT, &existing.to_hex()).unwrap();
        ledger
            .get_event(get(existing, Some(t)))
            .await
            .expect("the agency reads the event");
    });
}

#[test]
fn an_event_signed_for_another_ledger_is_refused() {
    let c = cluster();
    let agency = ledger_client::keys::load(&c.key_path("CN-44")).unwrap();
    let (kind, _) = parse_json_event(&person("W-ELSEWHERE", "CN-44")).unwrap();
    let body = EventBody {
        signed_at: ledger_client::jsonl::now(),
        kind,
    };
    runtime().block_on(async {
        let mut client = Client::connect(&c.url(1)).await.unwrap();
        let here = client.ledger_id().await.unwrap();
        assert_eq!(here, c.ledger_id(), "status names the genesis hash");
        // The same agency key, the same body, signed for another ledger.
        let other = LedgerId(Hash32([0x5e; 32]));
        let out = client
            .submit(vec![Envelope::sign(&other, &body, &[&agency])])
            .await
            .unwrap();
        match &out[0] {
            SubmitOutcome::Refused { code, message } => {
                assert_eq!(code, "bad_signature");
                assert!(message.contains("for this ledger"), "{message}");
            }
            accepted => panic!("an event of another ledger was accepted: {accepted:?}"),
        }
        // Signed for this ledger, it is appended.
        let out = client
            .submit(vec![Envelope::sign(&here, &body, &[&agency])])
            .await
            .unwrap();
        assert!(matches!(out[0], SubmitOutcome::Accepted { .. }), "{out:?}");
    });
}
