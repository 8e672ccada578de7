//! The HTTP/JSON API (`http_listen` in the node config; docs/http.md, docs/openapi.json).
//!
//! A second door to the same rooms: every route calls the node's own gRPC service
//! implementations in-process (so the read-token rules, the limits and the refusals are the
//! ones gRPC applies), and answers with the documents of `ledger_client::report` or the node's
//! own documents, serialised exactly as `ledger-client --json` prints them. Errors are
//! `{"error": {"code", "message"}}` with the CLI's codes and an HTTP status to match.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use ledger_client::report::{ErrorDoc, ErrorKind, EventRecord, RefusalDoc, SubmitLine};
use ledger_proto::node::{self as pb, ledger_server::Ledger as _};
use ledger_proto::rights::{self as rights_pb, rights_server::Rights as _};
use prost::Message;
use serde::Serialize;
use tonic::Request;

use crate::ledger::Ledger;
use crate::rights::RightsService;
use crate::service::NodeService;

/// The header that carries a read token: the protobuf `ReadToken`, base64 (standard alphabet).
pub const READ_TOKEN_HEADER: &str = "x-read-token";
/// When a page of a worker's events is not the last: the `after_index` of the next page.
pub const NEXT_AFTER_HEADER: &str = "x-next-after-index";
/// The OpenAPI description of these routes, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// The worker's page ("my record": entitlement and a timeline of months by place) and the
/// agency's (coverage indicators as charts). Both sign read tokens in the browser with the
/// user's key, which never leaves the page, and call the routes below.
const WORKER_PAGE: &str = include_str!("../web/index.html");
const AGENCY_PAGE: &str = include_str!("../web/agency.html");
/// The pages' scripts and style, and the vendored ed25519 library (with its licence), so the
/// pages need no network but the node.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "ledger.js",
        "text/javascript",
        include_str!("../web/ledger.js"),
    ),
    (
        "noble-ed25519-2.3.0.js",
        "text/javascript",
        include_str!("../web/noble-ed25519-2.3.0.js"),
    ),
    ("style.css", "text/css", include_str!("../web/style.css")),
    (
        "LICENSE-noble-ed25519",
        "text/plain; charset=utf-8",
        include_str!("../web/LICENSE-noble-ed25519"),
    ),
];

/// ledger-core's statement verification compiled to WebAssembly (`ledger-web/build.sh`): the
/// worker's page checks a statement file with the same code as `ledger-client verify`.
const VERIFIER_WASM: &[u8] = include_bytes!("../web/ledger_web.wasm");

/// The services the routes call.
#[derive(Clone)]
pub struct HttpApi {
    pub ledger: Arc<Ledger>,
    pub node: Arc<NodeService>,
    pub rights: Arc<RightsService>,
    /// The members' own views, shared by every `status` request.
    views: Arc<PeerViews>,
}

impl HttpApi {
    pub fn new(ledger: Arc<Ledger>, node: Arc<NodeService>, rights: Arc<RightsService>) -> Self {
        HttpApi {
            ledger,
            node,
            rights,
            views: Arc::default(),
        }
    }
}

/// The other members' answers to `status`, kept for [`PEER_VIEWS_MAX_AGE`]: `GET /v1/status`
/// needs no token, so without this anyone could make the node open a connection to every
/// member per request. One request at a time asks them; the others wait and share its answers.
#[derive(Default)]
struct PeerViews {
    latest: tokio::sync::Mutex<Option<(std::time::Instant, PeerAnswers)>>,
}

type PeerAnswers = std::collections::BTreeMap<u64, Option<pb::StatusResponse>>;

/// How long the members' answers serve `status` before they are asked again.
const PEER_VIEWS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(1);

pub fn router(api: HttpApi) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/checkpoint", get(checkpoint))
        .route("/v1/events", post(submit))
        .route("/v1/workers/{worker}/events", get(events))
        .route("/v1/workers/{worker}/entitlement", get(entitlement))
        .route("/v1/workers/{worker}/coverage", get(coverage))
        .route("/v1/workers/{worker}/statement", get(statement))
        .route("/v1/indicators", get(indicators))
        .route("/openapi.json", get(openapi))
        .route("/", get(|| page(WORKER_PAGE)))
        .route("/agency", get(|| page(AGENCY_PAGE)))
        .route("/assets/ledger_web.wasm", get(verifier))
        .route("/assets/{name}", get(asset))
        .fallback(not_found)
        .with_state(api)
}

/// A failed request: its kind gives both the HTTP status and the document's code.
struct Failure(ErrorKind, String);

impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Self {
        let transient = matches!(
            s.code(),
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
        );
        Failure(
            ErrorKind::of_code(s.code(), transient),
            s.message().to_string(),
        )
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = match self.0 {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Denied => StatusCode::FORBIDDEN,
            ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Failed => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut response = json(&ErrorDoc::new(self.0, self.1));
        *response.status_mut() = status;
        response
    }
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure(ErrorKind::InvalidInput, message.into())
}

/// `doc` as the CLI prints it under `--json`, without its newline.
fn json<T: Serialize>(doc: &T) -> Response {
    match serde_json::to_string(doc) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            text,
        )
            .into_response(),
        Err(e) => Failure(ErrorKind::Failed, e.to_string()).into_response(),
    }
}

/// A document the node computed as text: parsed and printed again, as the CLI does, so that
/// both give the same bytes.
fn json_text(text: &str) -> Result<Response, Failure> {
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Failure(ErrorKind::Failed, e.to_string()))?;
    Ok(json(&doc))
}

fn token(headers: &HeaderMap) -> Result<pb::ReadToken, Failure> {
    let value = headers.get(READ_TOKEN_HEADER).ok_or_else(|| {
        Failure(
            ErrorKind::Denied,
            format!("a read token is needed: send it in the {READ_TOKEN_HEADER} header"),
        )
    })?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.as_bytes())
        .map_err(|e| invalid(format!("{READ_TOKEN_HEADER}: not base64: {e}")))?;
    pb::ReadToken::decode(bytes.as_slice())
        .map_err(|e| invalid(format!("{READ_TOKEN_HEADER}: not a ReadToken: {e}")))
}

/// The value of `name` in a query string (`a=1&b=2`), percent-decoded.
fn query(raw: &Option<String>, name: &str) -> Result<Option<String>, Failure> {
    let Some(raw) = raw else { return Ok(None) };
    for pair in raw.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == name {
            let v = v.replace('+', " ");
            return percent_encoding::percent_decode_str(&v)
                .decode_utf8()
                .map(|v| Some(v.into_owned()))
                .map_err(|e| invalid(format!("query parameter {name}: {e}")));
        }
    }
    Ok(None)
}

fn required(raw: &Option<String>, name: &str) -> Result<String, Failure> {
    query(raw, name)?.ok_or_else(|| invalid(format!("the query parameter {name} is needed")))
}

async fn status(State(api): State<HttpApi>) -> Result<Response, Failure> {
    let s = api.node.status(Request::new(pb::StatusRequest {})).await?;
    let s = s.into_inner();
    let checkpoint = api
        .rights
        .checkpoint(Request::new(rights_pb::CheckpointRequest {}))
        .await
        .ok()
        .map(tonic::Response::into_inner);
    let views = member_views(&api, &s).await;
    Ok(json(&ledger_client::report::Status::new(
        &s,
        &views,
        checkpoint.as_ref(),
    )))
}

/// How long a member may take to say how it sees itself before it counts as unreachable.
const MEMBER_STATUS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Each member's own view, as `ledger-client status` gathers it: this node's for itself, the
/// others' asked over their public port (pinned to the key the membership records for each).
async fn member_views(
    api: &HttpApi,
    s: &pb::StatusResponse,
) -> Vec<(pb::RaftMemberStatus, Option<pb::StatusResponse>)> {
    let mut latest = api.views.latest.lock().await;
    let peers: Vec<&pb::RaftMemberStatus> = s
        .raft_members
        .iter()
        .filter(|m| m.id != s.raft_id)
        .collect();
    let fresh = latest.as_ref().is_some_and(|(at, answers)| {
        at.elapsed() < PEER_VIEWS_MAX_AGE && peers.iter().all(|m| answers.contains_key(&m.id))
    });
    if !fresh {
        let mut answers = PeerAnswers::new();
        for m in &peers {
            let view = tokio::time::timeout(MEMBER_STATUS_TIMEOUT, peer_status(api, m))
                .await
                .ok()
                .flatten();
            answers.insert(m.id, view);
        }
        *latest = Some((std::time::Instant::now(), answers));
    }
    let answers = latest.as_ref().map(|(_, a)| a);
    s.raft_members
        .iter()
        .map(|m| {
            let view = if m.id == s.raft_id {
                Some(s.clone())
            } else {
                answers.and_then(|a| a.get(&m.id).cloned().flatten())
            };
            (m.clone(), view)
        })
        .collect()
}

async fn peer_status(api: &HttpApi, m: &pb::RaftMemberStatus) -> Option<pb::StatusResponse> {
    let raft = api.ledger.raft()?;
    let transport = api.ledger.net().to_current(raft, m.id).ok()?;
    let channel = ledger_client::transport::channel(&m.public_address, &transport)
        .await
        .ok()?;
    let mut client = pb::ledger_client::LedgerClient::new(channel);
    let answer = client.status(pb::StatusRequest {}).await.ok()?;
    Some(answer.into_inner())
}

#[derive(Serialize)]
struct CheckpointDoc {
    note: String,
    verifier: String,
    forks: Vec<String>,
    forks_dropped: u64,
}

async fn checkpoint(State(api): State<HttpApi>) -> Result<Response, Failure> {
    let c = api
        .rights
        .checkpoint(Request::new(rights_pb::CheckpointRequest {}))
        .await?
        .into_inner();
    Ok(json(&CheckpointDoc {
        note: c.note,
        verifier: c.verifier,
        forks: c.forks,
        forks_dropped: c.forks_dropped,
    }))
}

/// The body of `POST /v1/events`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    /// Each a protobuf `Envelope` (docs/integration.md), base64.
    envelopes: Vec<String>,
}

async fn submit(State(api): State<HttpApi>, body: Bytes) -> Result<Response, Failure> {
    let body: SubmitBody = serde_json::from_slice(&body).map_err(|e| {
        invalid(format!(
            "the body must be {{\"envelopes\": [base64, ...]}}: {e}"
        ))
    })?;
    let events = body
        .envelopes
        .iter()
        .enumerate()
        .map(|(i, b64)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| invalid(format!("envelope {}: not base64: {e}", i + 1)))?;
            ledger_core::pb::Envelope::decode(bytes.as_slice())
                .map_err(|e| invalid(format!("envelope {}: not an Envelope: {e}", i + 1)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let outcomes = api
        .node
        .submit(Request::new(pb::SubmitRequest { events }))
        .await?
        .into_inner()
        .outcomes;
    let lines: Vec<SubmitLine> = outcomes
        .into_iter()
        .enumerate()
        .map(|(i, o)| submit_line(i + 1, o))
        .collect();
    Ok(json(&lines))
}

/// One outcome as `submit --json` prints it (`line` counts the request's envelopes from 1).
fn submit_line(line: usize, o: pb::Outcome) -> SubmitLine {
    match o.result {
        Some(pb::outcome::Result::Receipt(r)) => SubmitLine::Accepted {
            line,
            event_id: hex::encode(r.event_id),
            index: r.index,
            appended_at: r.appended_at,
            already_recorded: r.already_recorded || r.duplicate,
            duplicate: r.already_recorded || r.duplicate,
        },
        Some(pb::outcome::Result::Refusal(r)) => SubmitLine::Refused {
            line,
            event_id: None,
            index: None,
            refused: RefusalDoc {
                code: r.code,
                message: r.message,
            },
        },
        None => SubmitLine::Refused {
            line,
            event_id: None,
            index: None,
            refused: RefusalDoc {
                code: "internal".into(),
                message: "the node gave no outcome".into(),
            },
        },
    }
}

async fn events(
    State(api): State<HttpApi>,
    Path(worker): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let after_index = match query(&raw, "after_index")? {
        Some(v) => v
            .parse()
            .map_err(|_| invalid("after_index must be a log index"))?,
        None => 0,
    };
    let page = api
        .node
        .list_worker_events(Request::new(pb::ListWorkerEventsRequest {
            worker,
            token: Some(token(&headers)?),
            after_index,
            limit: 0,
        }))
        .await?
        .into_inner();
    let ledger = api.ledger.genesis().ledger_id();
    let records = page
        .events
        .into_iter()
        .map(|e| {
            ledger_client::check_stored(&ledger, e)
                .map(|e| EventRecord::from(&e))
                .map_err(|e| Failure(ErrorKind::Failed, e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let next = records.last().map(|r| r.index);
    let mut response = json(&records);
    if let (true, Some(next)) = (page.more, next) {
        response
            .headers_mut()
            .insert(NEXT_AFTER_HEADER, HeaderValue::from(next));
    }
    Ok(response)
}

async fn entitlement(
    State(api): State<HttpApi>,
    Path(worker): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let r = api
        .rights
        .entitlement(Request::new(rights_pb::EntitlementRequest {
            worker,
            token: Some(token(&headers)?),
            as_of: query(&raw, "as_of")?.unwrap_or_default(),
        }))
        .await?
        .into_inner();
    json_text(&r.json)
}

async fn coverage(
    State(api): State<HttpApi>,
    Path(worker): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let r = api
        .rights
        .coverage(Request::new(rights_pb::CoverageRequest {
            worker,
            token: Some(token(&headers)?),
            at: required(&raw, "at")?,
            jurisdiction: required(&raw, "jurisdiction")?,
        }))
        .await?
        .into_inner();
    json_text(&r.json)
}

/// The statement file itself (`pcl-statement/3`), as `statement --out` writes it.
async fn statement(
    State(api): State<HttpApi>,
    Path(worker): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let r = api
        .rights
        .statement(Request::new(rights_pb::StatementRequest {
            worker,
            token: Some(token(&headers)?),
        }))
        .await?
        .into_inner();
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        r.json,
    )
        .into_response())
}

async fn indicators(
    State(api): State<HttpApi>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let r = api
        .rights
        .indicators(Request::new(rights_pb::IndicatorsRequest {
            period: required(&raw, "period")?,
            jurisdiction: query(&raw, "jurisdiction")?.unwrap_or_default(),
            token: Some(token(&headers)?),
        }))
        .await?
        .into_inner();
    json_text(&r.json)
}

async fn page(html: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            // The pages load nothing but the node's own assets.
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; script-src 'self' 'unsafe-inline' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'",
                ),
            ),
        ],
        html,
    )
        .into_response()
}

async fn asset(Path(name): Path<String>) -> Result<Response, Failure> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| Failure(ErrorKind::NotFound, format!("no asset {name:?}")))?;
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        *body,
    )
        .into_response())
}

async fn verifier() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/wasm"),
        )],
        VERIFIER_WASM,
    )
        .into_response()
}

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI,
    )
        .into_response()
}

async fn not_found() -> Failure {
    Failure(
        ErrorKind::NotFound,
        "no such route: see /openapi.json for the routes".into(),
    )
}

/// Serves the API on `listener` (over TLS when `acceptor` is given) until `stop` resolves.
pub async fn serve(
    api: HttpApi,
    listener: tokio::net::TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    use crate::limits::{
        HTTP_HEADER_TIMEOUT, MAX_HTTP_CONNECTIONS, MAX_STREAMS_PER_CONNECTION, REQUEST_TIMEOUT,
    };
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    use tokio_stream::StreamExt;

    let service = TowerToHyperService::new(router(api));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HTTP_HEADER_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .keep_alive_interval(crate::limits::HTTP2_KEEPALIVE_INTERVAL)
        .keep_alive_timeout(crate::limits::HTTP2_KEEPALIVE_TIMEOUT);
    let builder = Arc::new(builder);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HTTP_CONNECTIONS));
    let mut incoming = Box::pin(crate::tls::incoming(listener, acceptor));
    tokio::pin!(stop);
    loop {
        // Wait for a free slot before taking the next connection.
        let slot = tokio::select! {
            _ = &mut stop => return,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
        };
        let conn = tokio::select! {
            _ = &mut stop => return,
            next = incoming.next() => match next {
                Some(Ok(conn)) => conn,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "HTTP connection not accepted");
                    continue;
                }
                None => return,
            },
        };
        let (service, builder) = (service.clone(), builder.clone());
        tokio::spawn(async move {
            // A connection lives at most as long as the longest request may run; a client
            // that keeps one open longer reconnects.
            let served = builder.serve_connection(TokioIo::new(conn), service);
            match tokio::time::timeout(REQUEST_TIMEOUT * 5, served).await {
                Ok(Err(e)) => tracing::debug!(error = %e, "HTTP connection ended with an error"),
                Err(_) => tracing::debug!("HTTP connection closed after its longest lifetime"),
                Ok(Ok(())) => {}
            }
            drop(slot);
        });
    }
}
