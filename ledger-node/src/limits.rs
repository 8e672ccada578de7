//! The node's limits: what one request, one Raft entry, one Raft message and the appender's queue
//! may hold, and how much one connection may ask of the public server at once. The per-event
//! limits (body, line, envelope) are `ledger_core::limits`.
//!
//! Each limit is sized from the one before it, so that what the edge accepts always fits an
//! entry, and an entry always fits a Raft message: nothing accepted from a client can later be
//! refused by a peer (a 60 MB Submit once broke replication with an HTTP/2 error and caused an
//! election storm).

use std::time::Duration;

use ledger_core::limits::MAX_ENVELOPE_BYTES;

/// Most events in one Submit request; the client splits larger files.
pub const MAX_SUBMIT_EVENTS: usize = 1000;
/// Protobuf framing of one envelope inside a SubmitRequest: a field tag and a length varint.
pub const SUBMIT_FRAMING_PER_EVENT: usize = 6;
/// Largest Submit request, in bytes: envelopes totalling one largest envelope (a 100,000-line
/// payroll in one signature), plus the framing of a full request. A client groups envelopes by
/// count and by size (`ledger_client::split_requests`); a larger request is refused from its
/// length prefix, before it is read, with RESOURCE_EXHAUSTED.
pub const MAX_SUBMIT_BYTES: usize =
    MAX_ENVELOPE_BYTES + MAX_SUBMIT_EVENTS * SUBMIT_FRAMING_PER_EVENT;

/// What a binary Raft entry adds around its envelopes, at most: format byte, log id (three
/// varints), payload tag, stamp (two varints) and the envelope count, with room to spare.
pub const RAFT_ENTRY_OVERHEAD_BYTES: usize = 64;
/// What each envelope adds in an entry: its length as a varint (up to 2^35).
pub const RAFT_ENTRY_PER_ENVELOPE_BYTES: usize = 5;
/// Largest Raft entry, counting its encoding. A request is never split across entries, so one
/// full Submit must fit, whatever its envelopes' framing in the request (as little as 2 bytes
/// each); concurrent requests are grouped up to this size.
pub const MAX_RAFT_ENTRY_BYTES: usize = MAX_SUBMIT_BYTES
    + MAX_SUBMIT_EVENTS * RAFT_ENTRY_PER_ENVELOPE_BYTES
    + RAFT_ENTRY_OVERHEAD_BYTES;
/// Most entries in one AppendEntries (openraft's `max_payload_entries`). openraft bounds a
/// payload only by count, so the byte bound of a message follows from this and the entry bound.
pub const MAX_PAYLOAD_ENTRIES: u64 = 4;
/// Room in a Raft message around its entries: vote, log ids, a reply's Result and its error.
pub const RAFT_MESSAGE_OVERHEAD_BYTES: usize = 64 * 1024;
/// Largest Raft RPC message either way: [`MAX_PAYLOAD_ENTRIES`] full entries, so the leader never
/// builds an AppendEntries larger than a follower accepts. A snapshot chunk (openraft's default
/// 3 MiB) is far below it.
pub const MAX_RAFT_MESSAGE_BYTES: usize =
    MAX_PAYLOAD_ENTRIES as usize * MAX_RAFT_ENTRY_BYTES + RAFT_MESSAGE_OVERHEAD_BYTES;

/// Bytes of submitted envelopes waiting for the appender or inside its entry being committed.
/// Beyond it a submitter waits for room: back-pressure on bytes, not on a count of requests that
/// may each be 16 MiB. Four full entries keep consensus busy while bounding memory whatever the
/// number of clients.
pub const APPEND_QUEUE_BYTES: usize = 4 * MAX_RAFT_ENTRY_BYTES;

/// Requests one connection may have in progress on the public server; more wait on their own
/// connection, so one client's many large requests cannot take the node from the others.
pub const MAX_REQUESTS_PER_CONNECTION: usize = 16;
/// HTTP/2 streams one connection may have open at once (waiting ones included).
pub const MAX_STREAMS_PER_CONNECTION: u32 = 64;
/// Longest a public request may run: a submission's commit wait (10 s, twice that when forwarded
/// to the leader) and the slowest aggregate reads, with margin. A request past it is cancelled
/// and its slot freed; an append in flight is atomic, so it was then simply not acknowledged.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Keep-alive pings on public connections, so a vanished client's connection (and the requests
/// it holds) are dropped instead of kept forever.
pub const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
pub const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Connections the HTTP/JSON API serves at once; more wait in the listen queue, so a flood of
/// idle connections cannot take the node's memory.
pub const MAX_HTTP_CONNECTIONS: usize = 1024;
/// How long an HTTP/1.1 client may take to send a request's headers (a slow-headers client
/// holds a connection slot until then).
pub const HTTP_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

// The chain the limits rest on, checked when the node is built: one largest envelope fits a
// request, a full payload of entries fits a Raft message, and a full entry fits the queue.
/// Most read tokens a node remembers as used (each for twice the token window). A node that
/// would need more refuses further reads with RESOURCE_EXHAUSTED until old ones expire, rather
/// than forget a token that could still be replayed. 200,000 × ~100 bytes ≈ 20 MB.
pub const MAX_LIVE_READ_TOKENS: usize = 200_000;

const _: () = assert!(MAX_SUBMIT_BYTES >= MAX_ENVELOPE_BYTES + SUBMIT_FRAMING_PER_EVENT);
const _: () = assert!(MAX_PAYLOAD_ENTRIES as usize * MAX_RAFT_ENTRY_BYTES < MAX_RAFT_MESSAGE_BYTES);
const _: () = assert!(APPEND_QUEUE_BYTES >= MAX_RAFT_ENTRY_BYTES);

/// The public server with this module's limits: requests and streams per connection, a request
/// timeout, keep-alive, and oversized requests refused with RESOURCE_EXHAUSTED.
pub fn public_server(
) -> tonic::transport::Server<tower_layer::Stack<OversizedLayer, tower_layer::Identity>> {
    tonic::transport::Server::builder()
        .concurrency_limit_per_connection(MAX_REQUESTS_PER_CONNECTION)
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        .timeout(REQUEST_TIMEOUT)
        .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
        .layer(OversizedLayer)
}

/// The actionable refusal of a request over a size limit (instead of tonic's OUT_OF_RANGE
/// "decoded message length too large").
pub fn oversized(found: usize, limit: usize) -> tonic::Status {
    tonic::Status::resource_exhausted(format!(
        "the request is {found} bytes, over this node's limit of {limit} bytes for this call; \
         split it into smaller requests (Submit: at most {MAX_SUBMIT_EVENTS} events and \
         {MAX_SUBMIT_BYTES} bytes each; the ledger's client and SDK split submissions so)"
    ))
}

/// Reads tonic's refusal of an oversized message: "... found N bytes, the limit is: L bytes".
fn parse_oversized(message: &str) -> Option<(usize, usize)> {
    let rest = message.strip_prefix("Error, decoded message length too large: found ")?;
    let (found, rest) = rest.split_once(" bytes, the limit is: ")?;
    let limit = rest.strip_suffix(" bytes")?;
    Some((found.parse().ok()?, limit.parse().ok()?))
}

/// grpc-message is percent-encoded (tonic encodes spaces among others).
fn percent_decoded(v: &[u8]) -> String {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        let hex = v
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (v[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A layer of the public server that turns tonic's refusal of an oversized request (refused from
/// its length prefix, never read) into [`oversized`]'s RESOURCE_EXHAUSTED.
#[derive(Clone, Copy, Default)]
pub struct OversizedLayer;

impl<S> tower_layer::Layer<S> for OversizedLayer {
    type Service = Oversized<S>;
    fn layer(&self, inner: S) -> Oversized<S> {
        Oversized { inner }
    }
}

#[derive(Clone)]
pub struct Oversized<S> {
    inner: S,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, Req, B> tower_service::Service<Req> for Oversized<S>
where
    S: tower_service::Service<Req, Response = http::Response<B>>,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
{
    type Response = http::Response<RewrittenBody<B>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut response = fut.await?;
            rewrite_oversized(response.headers_mut());
            Ok(response.map(|inner| RewrittenBody {
                inner: Box::pin(inner),
            }))
        })
    }
}

/// A response body whose trailers (where a unary call's status travels) get
/// [`rewrite_oversized`].
pub struct RewrittenBody<B> {
    inner: std::pin::Pin<Box<B>>,
}

impl<B: http_body::Body> http_body::Body for RewrittenBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        let polled = self.inner.as_mut().poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(mut frame))) = polled {
            if let Some(trailers) = frame.trailers_mut() {
                rewrite_oversized(trailers);
            }
            return std::task::Poll::Ready(Some(Ok(frame)));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// tonic's OUT_OF_RANGE refusal of an oversized request (in the headers of a trailers-only
/// response, or in the trailers) becomes RESOURCE_EXHAUSTED.
fn rewrite_oversized(headers: &mut http::HeaderMap) {
    let out_of_range = (tonic::Code::OutOfRange as i32).to_string();
    if headers.get("grpc-status").and_then(|v| v.to_str().ok()) != Some(out_of_range.as_str()) {
        return;
    }
    let Some((found, limit)) = headers
        .get("grpc-message")
        .map(|v| percent_decoded(v.as_bytes()))
        .and_then(|m| parse_oversized(&m))
    else {
        return;
    };
    let status = oversized(found, limit);
    let code = (status.code() as i32).to_string();
    headers.insert("grpc-status", code.parse().expect("digits"));
    if let Ok(v) = status.message().parse() {
        headers.insert("grpc-message", v);
    }
}

/// Largest gRPC response (a page of large payrolls). Requests are bounded by
/// [`MAX_SUBMIT_BYTES`].
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_request_fits_one_entry_and_a_full_payload_fits_one_raft_message() {
        // The chain the limits rest on: request <= entry, payload of entries <= message.
        let largest_request_envelopes = MAX_SUBMIT_BYTES - MAX_SUBMIT_EVENTS * 2;
        let entry = crate::raft::LedgerRequest::encoded_len_of(
            (0..MAX_SUBMIT_EVENTS).map(|_| largest_request_envelopes / MAX_SUBMIT_EVENTS),
        );
        assert!(
            entry <= MAX_RAFT_ENTRY_BYTES,
            "{entry} > {MAX_RAFT_ENTRY_BYTES}"
        );
    }

    #[test]
    fn tonics_oversize_refusal_becomes_resource_exhausted_with_the_limit() {
        let mut h = http::HeaderMap::new();
        h.insert("grpc-status", "11".parse().unwrap());
        // As tonic sends it: percent-encoded.
        let msg = format!(
            "Error,%20decoded%20message%20length%20too%20large:%20found%2062914560%20bytes,%20the%20limit%20is:%20{MAX_SUBMIT_BYTES}%20bytes"
        );
        h.insert("grpc-message", msg.parse().unwrap());
        rewrite_oversized(&mut h);
        assert_eq!(h["grpc-status"], "8");
        let text = h["grpc-message"].to_str().unwrap();
        assert!(text.contains("62914560 bytes"), "{text}");
        assert!(
            text.contains(&format!("limit of {MAX_SUBMIT_BYTES} bytes")),
            "{text}"
        );
        assert!(text.contains("split"), "{text}");

        // Other OUT_OF_RANGE statuses, and other codes, pass unchanged.
        let mut other = http::HeaderMap::new();
        other.insert("grpc-status", "11".parse().unwrap());
        other.insert("grpc-message", "page out of range".parse().unwrap());
        rewrite_oversized(&mut other);
        assert_eq!(other["grpc-status"], "11");
        let mut ok = http::HeaderMap::new();
        ok.insert("grpc-status", "0".parse().unwrap());
        rewrite_oversized(&mut ok);
        assert_eq!(ok["grpc-status"], "0");
    }
}
