//! Observability of real nodes: Prometheus metrics scraped over HTTP after real submissions, the
//! health service following the cluster's majority, reflection (v1 and v1alpha) of the public
//! services only, and JSON logs that name their node.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use ledger_tests::*;
use tonic_health::pb::health_check_response::ServingStatus;

const EMPLOYER: &str = "91440300MA5GTEST";
const PUBLIC_SERVICES: [&str; 3] = [
    "ledger.v1.node.Ledger",
    "ledger.v1.rights.Rights",
    "ledger.v1.admin.Admin",
];

/// `GET /metrics` over plain HTTP/1.1: each sample line as name{labels} → value.
fn scrape(port: u16) -> Option<BTreeMap<String, f64>> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("openmetrics-text"), "{head}");
    let samples = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect();
    Some(samples)
}

fn sample(m: &BTreeMap<String, f64>, name: &str) -> f64 {
    *m.get(name)
        .unwrap_or_else(|| panic!("no sample {name} in {:#?}", m.keys().collect::<Vec<_>>()))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// What the health service says for `service` ("" for the whole server), or None when the
/// node does not answer.
fn health(url: &str, service: &str) -> Option<i32> {
    runtime().block_on(async {
        use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
        let transport = ledger_client::transport::ClientTrust::load_default()
            .and_then(|t| t.transport_for(url))
            .ok()?;
        let channel = ledger_client::transport::channel(url, &transport)
            .await
            .ok()?;
        let r = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .ok()?;
        Some(r.into_inner().status)
    })
}

fn every_service_is(url: &str, status: ServingStatus) -> bool {
    std::iter::once("")
        .chain(PUBLIC_SERVICES)
        .all(|s| health(url, s) == Some(status as i32))
}

#[test]
fn metrics_count_submissions_refusals_and_lines() {
    let metrics_port = free_port();
    let ledger = TestLedger::start_with(&format!("metrics_listen = \"127.0.0.1:{metrics_port}\""));
    let (employer_key, employer_pub) = ledger.keygen("employer");
    ledger.register_key("CN-44", "employer", EMPLOYER, &employer_pub);
    let agency = ledger.key_path("CN-44");
    let out = ledger.submit(
        &[&agency],
        &[person("W-1", "CN-44"), person("W-2", "CN-44")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let declared = declaration(EMPLOYER, "CN-44", "2024-01", &["W-1", "W-2"], "5000.00");
    let out = ledger.submit(&[&employer_key], &[declared]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A key nobody registered: refused at the edge with `unknown_key`.
    let (stranger, _) = ledger.keygen("stranger");
    let out = ledger.submit(&[&stranger], &[person("W-3", "CN-44")]);
    assert!(!out.status.success());
    assert_eq!(receipts(&out)[0]["refused"]["code"], "unknown_key");

    let m = scrape(metrics_port).expect("the node serves /metrics");
    // key register, persons, declaration, refused person: four requests, five events.
    assert_eq!(sample(&m, "ledger_submit_requests_total"), 4.0);
    assert_eq!(sample(&m, "ledger_submitted_events_total"), 5.0);
    assert_eq!(
        sample(&m, "ledger_refusals_total{code=\"unknown_key\"}"),
        1.0
    );
    assert_eq!(sample(&m, "ledger_appended_events_total"), 4.0);
    assert_eq!(sample(&m, "ledger_appended_lines_total"), 2.0);
    assert_eq!(sample(&m, "ledger_log_size"), ledger.log_size() as f64);
    assert!(sample(&m, "ledger_commit_seconds_count") >= 3.0);
    assert_eq!(sample(&m, "ledger_submit_seconds_count"), 4.0);
    assert!(sample(&m, "ledger_store_bytes") > 0.0);
    assert_eq!(sample(&m, "ledger_serving"), 1.0);
    assert_eq!(sample(&m, "ledger_forks_detected"), 0.0);
    // No label carries free text: every refusal label is a known code (or "other"), each
    // series there from zero.
    let codes = ledger_core::refusal::Refusal::CODES;
    let labels: Vec<&str> = m
        .keys()
        .filter(|k| k.starts_with("ledger_refusals_total{"))
        .map(|k| k.split('"').nth(1).unwrap())
        .collect();
    assert_eq!(labels.len(), codes.len() + 1, "{labels:?}");
    assert!(labels.iter().all(|c| codes.contains(c) || *c == "other"));
    assert_eq!(
        sample(&m, "ledger_refusals_total{code=\"wrong_role\"}"),
        0.0
    );
    // Anything but /metrics is not found.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", metrics_port)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 404"), "{text}");
}

/// The services reflection lists, asked with the v1 and the v1alpha protocol.
fn reflected_services(url: &str) -> (Vec<String>, Vec<String>) {
    runtime().block_on(async {
        let channel = test_channel(url).await;
        let v1 = {
            use tonic_reflection::pb::v1::{
                server_reflection_client::ServerReflectionClient,
                server_reflection_request::MessageRequest,
                server_reflection_response::MessageResponse, ServerReflectionRequest,
            };
            let request = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            };
            let mut replies = ServerReflectionClient::new(channel.clone())
                .server_reflection_info(tokio_stream::iter([request]))
                .await
                .expect("v1 reflection")
                .into_inner();
            match replies.message().await.unwrap().unwrap().message_response {
                Some(MessageResponse::ListServicesResponse(l)) => {
                    l.service.into_iter().map(|s| s.name).collect()
                }
                other => panic!("v1: {other:?}"),
            }
        };
        let v1alpha = {
            use tonic_reflection::pb::v1alpha::{
                server_reflection_client::ServerReflectionClient,
                server_reflection_request::MessageRequest,
                server_reflection_response::MessageResponse, ServerReflectionRequest,
            };
            let request = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            };
            let mut replies = ServerReflectionClient::new(channel)
                .server_reflection_info(tokio_stream::iter([request]))
                .await
                .expect("v1alpha reflection")
                .into_inner();
            match replies.message().await.unwrap().unwrap().message_response {
                Some(MessageResponse::ListServicesResponse(l)) => {
                    l.service.into_iter().map(|s| s.name).collect()
                }
                other => panic!("v1alpha: {other:?}"),
            }
        };
        (v1, v1alpha)
    })
}

/// Calls the Raft service's Vote on a public port: it must not be served there.
fn raft_on_public_port(url: &str) -> tonic::Code {
    runtime().block_on(async {
        use ledger_proto::raft::{raft_client::RaftClient, RaftPayload};
        let channel = test_channel(url).await;
        RaftClient::new(channel)
            .vote(RaftPayload {
                json: b"{}".to_vec(),
            })
            .await
            .expect_err("the public port must not serve Raft")
            .code()
    })
}

#[test]
fn reflection_v1_and_v1alpha_list_the_public_services_only() {
    let ledger = TestLedger::start();
    let (v1, v1alpha) = reflected_services(&ledger.url());
    for services in [&v1, &v1alpha] {
        for s in PUBLIC_SERVICES.iter().chain(&["grpc.health.v1.Health"]) {
            assert!(services.iter().any(|x| x == s), "{s} not in {services:?}");
        }
        assert!(
            !services.iter().any(|x| x.contains("raft")),
            "the internal Raft service is listed: {services:?}"
        );
    }
    assert!(every_service_is(&ledger.url(), ServingStatus::Serving));
}

#[test]
fn json_logs_name_the_node_on_every_line() {
    let mut ledger = TestLedger::start_with("log_format = \"json\"");
    ledger.stop();
    let log = std::fs::read_to_string(&ledger.log).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 4, "{log}");
    for l in &lines {
        assert_eq!(l["node_id"], "node-1", "{l}");
        assert!(l["timestamp"].is_string() && l["level"].is_string(), "{l}");
    }
    assert!(
        lines.iter().any(|l| l["message"] == "serving"),
        "the start-up lines are there: {log}"
    );
}

/// Whether any line of the JSON log at `path` is openraft's below WARN.
fn openraft_chatter(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("openraft"))
                && matches!(v["level"].as_str(), Some("INFO" | "DEBUG" | "TRACE"))
        })
        .map(|v| v.to_string())
        .collect()
}

#[test]
fn health_follows_the_majority_and_metrics_show_raft() {
    let metrics_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut cluster = TestCluster::start_configured(Layout::loopback(3), "", &|i| {
        format!(
            "metrics_listen = \"127.0.0.1:{}\"\nlog_format = \"json\"",
            metrics_ports[i]
        )
    });
    let survivor = cluster.url(0);
    wait_for("every node to serve (SERVING on every service)", || {
        (0..3).all(|i| every_service_is(&cluster.url(i), ServingStatus::Serving))
    });
    let m = scrape(metrics_ports[0]).expect("metrics of node 1");
    assert!(sample(&m, "ledger_raft_term") >= 1.0);
    assert!(sample(&m, "ledger_raft_leader") >= 1.0);
    assert!(sample(&m, "ledger_raft_applied_index") >= 1.0);
    assert!(sample(&m, "ledger_raft_last_log_index") >= 1.0);
    assert_eq!(sample(&m, "ledger_serving"), 1.0);
    let leader = cluster.leader_seen_by(0).expect("a leader");
    let lm = scrape(metrics_ports[leader]).expect("metrics of the leader");
    assert_eq!(sample(&lm, "ledger_raft_is_leader"), 1.0);
    assert!(sample(&lm, "ledger_raft_commit_index") >= 1.0);
    let lag = lm
        .keys()
        .filter(|k| k.starts_with("ledger_raft_replication_lag{"))
        .count();
    assert_eq!(lag, 2, "one lag per follower: {lm:?}");
    assert_eq!(raft_on_public_port(&survivor), tonic::Code::Unimplemented);

    // Two of three gone: node 1 has no majority, whatever its role was.
    cluster.kill9(1);
    cluster.kill9(2);
    wait_for("the survivor to say NOT_SERVING", || {
        every_service_is(&survivor, ServingStatus::NotServing)
    });
    assert_eq!(
        sample(&scrape(metrics_ports[0]).unwrap(), "ledger_serving"),
        0.0
    );
    // The probe: not ready, but alive (a restart would not bring the majority back).
    let probe = |extra: &[&str]| {
        std::process::Command::new(&binaries().node)
            .args(["health", "--timeout", "5", "--config"])
            .arg(cluster.dir.path().join("node-1.toml"))
            .args(extra)
            .output()
            .expect("run ledger-node health")
    };
    let ready = probe(&[]);
    assert!(!ready.status.success());
    assert!(stderr(&ready).contains("not serving"), "{}", stderr(&ready));
    let live = probe(&["--live"]);
    assert!(live.status.success(), "{}", stderr(&live));
    assert_eq!(String::from_utf8_lossy(&live.stdout).trim(), "alive");
    cluster.spawn(1);
    cluster.spawn(2);
    wait_for("the survivor to say SERVING again", || {
        every_service_is(&survivor, ServingStatus::Serving)
    });
    if std::env::var_os("RUST_LOG").is_none() {
        let chatter = openraft_chatter(&cluster.dir.path().join("node-1.log"));
        assert!(chatter.is_empty(), "openraft below WARN: {chatter:?}");
    }
}
