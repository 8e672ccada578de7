//! The HTTP/JSON API of a real node over TLS (docs/http.md): each document is byte for byte
//! what `ledger-client --json` prints for the same query, read tokens bind as over gRPC (none,
//! replayed), submissions answer like `submit --json`, errors are JSON with the CLI's codes, and
//! every path of docs/openapi.json is served by the running node.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use base64::Engine;
use ledger_client::transport::{parse_node_key, provider, PinnedServer, Pins};
use ledger_tests::*;
use prost::Message;

const EMPLOYER: &str = "91440300MA5GHTTP";

/// A response: status, headers (lower-case names), body.
struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
}

/// One HTTP/1.1 request over TLS to the node on `port`, pinned to its node key.
fn https(
    port: u16,
    node_key: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Answer {
    let key = parse_node_key(node_key).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedServer(Pins::keys([key]))))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    tls.write_all(request.as_bytes()).unwrap();
    tls.write_all(body).unwrap();
    let mut raw = Vec::new();
    // The server closes after the answer; rustls reports the close as an error when the peer
    // did not send close_notify, which still leaves the whole answer read.
    let _ = tls.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
        body = unchunk(&body);
    }
    Answer {
        status,
        headers,
        body,
    }
}

fn unchunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
}

/// A node with the HTTP API on, a worker W-H with three months declared in CN-44.
fn node_with_http() -> (TestLedger, u16) {
    let mut ledger = TestLedger::start();
    ledger.stop();
    let http = free_port();
    let config = ledger.path().join("node.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("http_listen = \"127.0.0.1:{http}\"\n"));
    std::fs::write(&config, text).unwrap();
    ledger.spawn();
    let (employer, public) = ledger.keygen("employer");
    ledger.register_key("CN-44", "employer", EMPLOYER, &public);
    let ok = |o: std::process::Output| assert!(o.status.success(), "{}", stderr(&o));
    ok(ledger.submit(&[&ledger.key_path("CN-44")], &[person("W-H", "CN-44")]));
    for period in ["2023-01", "2023-02", "2023-03"] {
        ok(ledger.submit(
            &[&employer],
            &[declaration(EMPLOYER, "CN-44", period, &["W-H"], "6000.00")],
        ));
    }
    (ledger, http)
}

/// A read token of `key` for `method` and `subject` on this node, as the header carries it.
fn token(
    ledger: &TestLedger,
    key: &std::path::Path,
    method: &str,
    subject: &str,
) -> (&'static str, String) {
    let key = ledger_client::keys::load(key).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let token = rt.block_on(async {
        let mut client = ledger_client::Client::connect(&ledger.url()).await.unwrap();
        let node = client.identity().await.unwrap();
        ledger_client::read_token(&key, &node, method, subject).unwrap()
    });
    (
        ledger_node::http::READ_TOKEN_HEADER,
        base64::engine::general_purpose::STANDARD.encode(token.encode_to_vec()),
    )
}

fn cli_json(ledger: &TestLedger, args: &[&str]) -> Vec<u8> {
    let out = ledger.client(args);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut bytes = out.stdout;
    assert_eq!(bytes.pop(), Some(b'\n'));
    bytes
}

#[test]
fn the_http_documents_are_the_cli_documents_and_tokens_bind_as_over_grpc() {
    use ledger_core::envelope::read_method;
    let (ledger, http) = node_with_http();
    let agency = ledger.key_path("CN-44");
    let agency_str = agency.to_str().unwrap();
    let get = |path: &str, headers: &[(&str, String)]| {
        https(http, &ledger.node_key, "GET", path, headers, b"")
    };

    // The same bytes as the CLI, for the node's own documents and the client's.
    let cli = cli_json(
        &ledger,
        &[
            "--json",
            "entitlement",
            "W-H",
            "--key",
            agency_str,
            "--as-of",
            "2024-01-01",
        ],
    );
    let answer = get(
        "/v1/workers/W-H/entitlement?as_of=2024-01-01",
        &[token(&ledger, &agency, read_method::ENTITLEMENT, "W-H")],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    assert_eq!(answer.body, cli, "entitlement differs from the CLI's");
    assert_eq!(answer.json()["pension"]["insured_months"], 3);

    let cli = cli_json(
        &ledger,
        &[
            "--json",
            "indicators",
            "--key",
            agency_str,
            "--period",
            "2023-02",
        ],
    );
    let answer = get(
        "/v1/indicators?period=2023-02",
        &[token(
            &ledger,
            &agency,
            read_method::INDICATORS,
            "indicators:2023-02",
        )],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.body, cli, "indicators differ from the CLI's");

    let cli = cli_json(
        &ledger,
        &[
            "--json",
            "coverage",
            "W-H",
            "--key",
            agency_str,
            "--at",
            "2023-02-15T10:00:00+08:00",
            "--jurisdiction",
            "CN-44",
        ],
    );
    let answer = get(
        "/v1/workers/W-H/coverage?at=2023-02-15T10%3A00%3A00%2B08%3A00&jurisdiction=CN-44",
        &[token(&ledger, &agency, read_method::COVERAGE, "W-H")],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.body, cli, "coverage differs from the CLI's");

    // The statement is the file `statement --out` writes, byte for byte.
    let file = ledger.path().join("w-h.statement.json");
    cli_json(
        &ledger,
        &[
            "statement",
            "W-H",
            "--key",
            agency_str,
            "--out",
            file.to_str().unwrap(),
        ],
    );
    let answer = get(
        "/v1/workers/W-H/statement",
        &[token(&ledger, &agency, read_method::STATEMENT, "W-H")],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    let written = std::fs::read(&file).unwrap();
    // Both are the node's statement of the same log; the checkpoint may have moved on between
    // the two reads only if something was appended, and nothing is.
    assert_eq!(
        answer.body, written,
        "the statement differs from the file the CLI wrote"
    );

    let cli = cli_json(&ledger, &["--json", "events", "W-H", "--key", agency_str]);
    let answer = get(
        "/v1/workers/W-H/events",
        &[token(
            &ledger,
            &agency,
            read_method::LIST_WORKER_EVENTS,
            "W-H",
        )],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    let lines: Vec<&[u8]> = cli.split(|b| *b == b'\n').collect();
    assert_eq!(lines.len(), 4, "a registration and three declarations");
    assert_eq!(
        answer.body,
        [b"[".as_slice(), &lines.join(&b","[..]), b"]"].concat()
    );

    // A token is good once, for its method only; none at all is refused too.
    let used = token(&ledger, &agency, read_method::ENTITLEMENT, "W-H");
    assert_eq!(
        get("/v1/workers/W-H/entitlement", std::slice::from_ref(&used)).status,
        200
    );
    let replayed = get("/v1/workers/W-H/entitlement", &[used]);
    assert_eq!(replayed.status, 403, "{}", replayed.text());
    assert_eq!(replayed.json()["error"]["code"], "permission_denied");
    let other_method = get(
        "/v1/workers/W-H/statement",
        &[token(&ledger, &agency, read_method::ENTITLEMENT, "W-H")],
    );
    assert_eq!(other_method.status, 403, "{}", other_method.text());
    let none = get("/v1/workers/W-H/entitlement", &[]);
    assert_eq!(none.status, 403);
    assert!(none.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("x-read-token"));

    // Errors are documents with the CLI's codes.
    let missing = get(
        "/v1/workers/W-NOBODY/entitlement",
        &[token(
            &ledger,
            &agency,
            read_method::ENTITLEMENT,
            "W-NOBODY",
        )],
    );
    assert_eq!(missing.status, 404, "{}", missing.text());
    assert_eq!(missing.json()["error"]["code"], "not_found");
    let nowhere = get("/v1/nowhere", &[]);
    assert_eq!(nowhere.status, 404);
    assert_eq!(nowhere.json()["error"]["code"], "not_found");
    let bad = get(
        "/v1/workers/W-H/coverage",
        &[token(&ledger, &agency, read_method::COVERAGE, "W-H")],
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert_eq!(bad.json()["error"]["code"], "invalid_input");
}

#[test]
fn submissions_over_http_answer_like_submit_and_bad_bodies_change_nothing() {
    let (ledger, http) = node_with_http();
    let post = |body: &[u8]| {
        https(
            http,
            &ledger.node_key,
            "POST",
            "/v1/events",
            &[("content-type", "application/json".into())],
            body,
        )
    };
    let size_before = status_size(&ledger);

    for bad in [
        &b"not json"[..],
        br#"{"envelopes": ["%%%"]}"#,
        br#"{"envelopes": ["AAAA"], "more": 1}"#,
    ] {
        let answer = post(bad);
        assert_eq!(answer.status, 400, "{}", answer.text());
        assert_eq!(answer.json()["error"]["code"], "invalid_input");
    }
    // Over the body limit: refused before it is read whole.
    let huge = format!("{{\"envelopes\": [\"{}\"]}}", "A".repeat(3 * 1024 * 1024));
    assert_eq!(post(huge.as_bytes()).status, 413);
    assert_eq!(
        status_size(&ledger),
        size_before,
        "a refused body appends nothing"
    );

    let agency = ledger_client::keys::load(&ledger.key_path("CN-44")).unwrap();
    let (kind, _) = ledger_core::json::parse_json_event(&person("W-POST", "CN-44")).unwrap();
    let body = ledger_core::event::EventBody {
        signed_at: ledger_client::jsonl::now(),
        kind,
    };
    let envelope = ledger_core::Envelope::sign(&ledger.ledger_id(), &body, &[&agency]);
    let b64 = base64::engine::general_purpose::STANDARD.encode(envelope.to_pb().encode_to_vec());
    let doc = serde_json::json!({ "envelopes": [b64, b64] }).to_string();
    let answer = post(doc.as_bytes());
    assert_eq!(answer.status, 200, "{}", answer.text());
    let lines = answer.json();
    assert_eq!(lines[0]["line"], 1);
    assert_eq!(
        lines[0]["event_id"],
        envelope.id(&ledger.ledger_id()).to_hex()
    );
    assert_eq!(lines[0]["already_recorded"], false);
    assert_eq!(
        lines[1]["already_recorded"], true,
        "the same envelope twice is one event"
    );
    assert_eq!(status_size(&ledger), size_before + 1);

    // A refusal is an answer, with the stable code.
    let doc = serde_json::json!({ "envelopes": [b64] }).to_string();
    let again = post(doc.as_bytes());
    assert_eq!(again.json()[0]["already_recorded"], true);
    let unsigned = ledger_core::Envelope {
        signatures: vec![],
        ..envelope.clone()
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(unsigned.to_pb().encode_to_vec());
    let refused = post(
        serde_json::json!({ "envelopes": [b64] })
            .to_string()
            .as_bytes(),
    );
    // Refused at the edge as a whole request (400) or as the event's outcome (200, `refused`).
    match refused.status {
        200 => assert!(
            refused.json()[0]["refused"]["code"].is_string(),
            "{}",
            refused.text()
        ),
        400 => assert_eq!(refused.json()["error"]["code"], "invalid_input"),
        other => panic!("{other}: {}", refused.text()),
    }
    assert_eq!(status_size(&ledger), size_before + 1);
}

fn status_size(ledger: &TestLedger) -> u64 {
    let out = ledger.client(&["--json", "status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["log_size"]
        .as_u64()
        .unwrap()
}

#[test]
fn every_path_of_the_openapi_description_is_served() {
    let (ledger, http) = node_with_http();
    let spec = https(http, &ledger.node_key, "GET", "/openapi.json", &[], b"");
    assert_eq!(spec.status, 200);
    let spec = spec.json();
    assert_eq!(
        spec,
        serde_json::from_str::<serde_json::Value>(ledger_node::http::OPENAPI).unwrap()
    );
    let paths = spec["paths"].as_object().expect("paths");
    assert!(paths.len() >= 8, "{paths:?}");
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path.replace("{worker}", "W-H");
            let answer = https(
                http,
                &ledger.node_key,
                &method.to_uppercase(),
                &concrete,
                &[],
                b"{}",
            );
            // Without a token or parameters most routes refuse, but the route exists: a
            // missing route is the only 404 whose message names the routes.
            let routed = !(answer.status == 404 && answer.text().contains("no such route"));
            assert!(
                routed,
                "{method} {path} is described but not served: {}",
                answer.text()
            );
            assert!(
                answer
                    .headers
                    .get("content-type")
                    .is_some_and(|c| c.starts_with("application/json")),
                "{method} {path}"
            );
        }
    }
}

#[test]
fn status_over_http_is_the_document_the_cli_prints() {
    // A single node: the whole document, byte for byte.
    let (ledger, http) = node_with_http();
    let cli = cli_json(&ledger, &["--json", "status"]);
    let answer = https(http, &ledger.node_key, "GET", "/v1/status", &[], b"");
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.body, cli, "status differs from the CLI's");

    // A cluster: every member asked for its own view, as the CLI asks.
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let c = TestCluster::start_configured(Layout::loopback(3), "", &|i| {
        format!("http_listen = \"127.0.0.1:{}\"", ports[i])
    });
    wait_for("every node to know the leader", || {
        (0..3).all(|i| c.leader_seen_by(i).is_some())
    });
    let nodes = |doc: &serde_json::Value| doc["nodes"].clone();
    wait_for("the HTTP and CLI views of the members to agree", || {
        let out = c.client(&c.url(0), &["--json", "status"]);
        let Ok(cli) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
            return false;
        };
        let answer = https(ports[0], &c.node_keys[0], "GET", "/v1/status", &[], b"");
        answer.status == 200 && nodes(&answer.json()) == nodes(&cli)
    });
    let answer = https(ports[0], &c.node_keys[0], "GET", "/v1/status", &[], b"");
    let members = answer.json()["nodes"].as_array().unwrap().clone();
    assert_eq!(members.len(), 3);
    assert!(
        members
            .iter()
            .all(|m| m["reachable"] == true && m["term"].is_u64()),
        "every member answered for itself: {members:?}"
    );
}
