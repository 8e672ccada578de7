//! SDK of the portable contribution ledger: what every `ledger-client` command does, callable
//! from Rust. Key files ([`keys`]), reading JSONL event files ([`jsonl`]), and the gRPC client
//! ([`Client`]) that converts wire messages to core values at this edge.

pub mod acts;
pub mod bench;
pub mod bench_query;
pub mod jsonl;
pub mod keys;
pub mod proofs;
pub mod report;
pub mod retry;
pub mod transport;

use ed25519_dalek::{Signer, SigningKey};
use ledger_core::envelope::{
    read_message, read_method, Envelope, LedgerId, ReadScope, READ_NONCE_BYTES,
};
use ledger_core::event::{EventBody, Hash32};
use ledger_core::merkle;
use ledger_core::wire::{self, ProvenLine};
use ledger_proto::node::{self as pb, ledger_client::LedgerClient};
use ledger_proto::rights::{self as rights_pb, rights_client::RightsClient};
use tonic::transport::Channel;

/// Most events the client puts in one Submit request (the node's limit is 1000).
pub const MAX_EVENTS_PER_REQUEST: usize = 500;
/// Most encoded bytes the client puts in one request (the node accepts 64 MiB).
pub const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;
/// Largest response the client accepts (a worker's page of large events).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Where `ledger-node dev` writes the client's endpoints.
pub const DEFAULT_CLIENT_CONFIG: &str = "./ledger-data/client.toml";
/// The endpoint used when there is no client.toml.
pub const DEFAULT_NODE: &str = "http://127.0.0.1:7100";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the ledger node at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("{}", rpc_message(.0))]
    Rpc(#[from] tonic::Status),
    #[error("{0}")]
    Key(String),
    #[error("{0}")]
    Invalid(String),
}

fn rpc_message(s: &tonic::Status) -> String {
    format!("the node answered {:?}: {}", s.code(), s.message())
}

/// Every endpoint of ./ledger-data/client.toml (empty when there is none).
pub fn client_endpoints() -> Vec<String> {
    transport::ClientTrust::load_default()
        .map(|t| t.endpoints)
        .unwrap_or_default()
}

/// The node to talk to: `--node`, else the first endpoint of ./ledger-data/client.toml, else
/// http://127.0.0.1:7100.
pub fn default_node_url() -> String {
    client_endpoints()
        .into_iter()
        .next()
        .unwrap_or_else(|| DEFAULT_NODE.to_string())
}

/// What the ledger said about one submitted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    Accepted {
        event_id: Hash32,
        index: u64,
        appended_at: String,
        /// Nothing was appended: the event (its id, or the same content signed again by the
        /// same keys) was already recorded, and this is the committed receipt.
        already_recorded: bool,
    },
    Refused {
        code: String,
        message: String,
    },
}

/// A worker's event as read back: verified signatures, and for batches only that worker's lines
/// (each proven against the signed lines root).
#[derive(Debug, Clone)]
pub struct WorkerEvent {
    pub index: u64,
    pub event_id: Hash32,
    pub appended_at: String,
    pub body: EventBody,
    pub signers: Vec<String>,
    pub line_positions: Vec<u32>,
}

pub struct Client {
    inner: LedgerClient<Channel>,
    rights: RightsClient<Channel>,
    channel: Channel,
    /// The ledger and node, asked of the node once: events are signed for the ledger, read
    /// tokens for both.
    identity: Option<NodeIdentity>,
}

/// This machine's clock as a ledger instant (what a signer's `signed_at` says).
pub fn clock_now() -> ledger_core::time::Instant {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    ledger_core::time::Instant::from_unix_utc(d.as_secs() as i64, d.subsec_nanos())
        .expect("the clock is within years 1900..9999")
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The subject a read token for the receipt proof of `event_id` signs.
pub fn proof_subject(event_id: &Hash32) -> String {
    format!("proof:{}", event_id.to_hex())
}

/// The ledger and the node a client talks to, as the node's `status` names them: what read
/// tokens are bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    pub ledger: LedgerId,
    pub node_id: String,
}

/// A read token for one read: proof that the caller holds `key`, bound to the ledger and node
/// of `node`, to `method` (a [`ledger_core::envelope::read_method`]) and `subject`, the
/// current time and a fresh nonce. A node admits it once.
pub fn read_token(
    key: &SigningKey,
    node: &NodeIdentity,
    method: &str,
    subject: &str,
) -> Result<pb::ReadToken, ClientError> {
    let issued_at = now_unix();
    let mut nonce = [0u8; READ_NONCE_BYTES];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    let scope = ReadScope {
        ledger: node.ledger,
        audience: &node.node_id,
        method,
        subject,
    };
    let message = read_message(&scope, &nonce, issued_at)
        .ok_or_else(|| ClientError::Invalid(format!("{subject:?} holds a NUL byte")))?;
    Ok(pb::ReadToken {
        public_key: key.verifying_key().to_bytes().to_vec(),
        issued_at,
        signature: key.sign(&message).to_bytes().to_vec(),
        nonce: nonce.to_vec(),
        method: method.to_string(),
        audience: node.node_id.clone(),
    })
}

impl Client {
    /// Connects as the URL says: `https://` over TLS, trusting the node keys of the client
    /// config ([`transport::client_config_path`]); `http://` in plaintext.
    pub async fn connect(url: &str) -> Result<Client, ClientError> {
        // A config or URL that cannot work is not worth retrying.
        let transport = transport::ClientTrust::load_default()
            .and_then(|t| t.transport_for(url))
            .map_err(ClientError::Invalid)?;
        Client::connect_with(url, &transport).await
    }

    pub async fn connect_with(
        url: &str,
        transport: &transport::Transport,
    ) -> Result<Client, ClientError> {
        let err = |message: String| ClientError::Connect {
            url: url.to_string(),
            message,
        };
        if matches!(transport, transport::Transport::Plaintext) && transport::speaks_tls(url).await
        {
            return Err(err(format!(
                "the node speaks TLS: use {} (and trust its node key in client.toml)",
                url.replacen("http://", "https://", 1)
            )));
        }
        let channel = transport::channel(url, transport)
            .await
            .map_err(|e| err(format!("{e}; is the node running, and is its key trusted?")))?;
        let rights = RightsClient::new(channel.clone());
        let inner = LedgerClient::new(channel.clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
            .max_encoding_message_size(MAX_RESPONSE_BYTES);
        Ok(Client {
            inner,
            rights,
            channel,
            identity: None,
        })
    }

    /// The ledger this node keeps (its genesis hash), which events are signed for; asked of
    /// the node once per client (over TLS, the node is one whose key the client pins).
    pub async fn ledger_id(&mut self) -> Result<LedgerId, ClientError> {
        Ok(self.identity().await?.ledger)
    }

    /// The ledger and node this client talks to (one `status` call, then remembered).
    pub async fn identity(&mut self) -> Result<NodeIdentity, ClientError> {
        if let Some(i) = &self.identity {
            return Ok(i.clone());
        }
        let status = self.status().await?;
        let identity = NodeIdentity {
            ledger: LedgerId::from_hex(&status.genesis_hash).map_err(ClientError::Invalid)?,
            node_id: status.node_id,
        };
        self.identity = Some(identity.clone());
        Ok(identity)
    }

    /// A fresh read token for one call of `method` on this node.
    pub async fn token(
        &mut self,
        key: &SigningKey,
        method: &str,
        subject: &str,
    ) -> Result<pb::ReadToken, ClientError> {
        let node = self.identity().await?;
        read_token(key, &node, method, subject)
    }

    /// Submits envelopes in one request; one outcome each, in order.
    pub async fn submit(
        &mut self,
        envelopes: Vec<Envelope>,
    ) -> Result<Vec<SubmitOutcome>, ClientError> {
        let n = envelopes.len();
        let ledger = self.ledger_id().await?;
        let request = pb::SubmitRequest {
            events: envelopes.iter().map(Envelope::to_pb).collect(),
        };
        let response = self.inner.submit(request).await?.into_inner();
        if response.outcomes.len() != n {
            return Err(ClientError::Invalid(format!(
                "the node answered {} outcomes for {n} events",
                response.outcomes.len()
            )));
        }
        response
            .outcomes
            .into_iter()
            .zip(&envelopes)
            .enumerate()
            .map(|(i, (o, sent))| match o.result {
                Some(pb::outcome::Result::Receipt(r)) => {
                    let event_id = Hash32::from_slice(&r.event_id).map_err(ClientError::Invalid)?;
                    // A node of the first release sets only `duplicate`.
                    let already_recorded = r.already_recorded || r.duplicate;
                    // A receipt for another event would acknowledge something never signed;
                    // only an "already recorded" receipt names the committed event of the same
                    // content, signed earlier (README: retry-safe submission).
                    if event_id != sent.id(&ledger) && !already_recorded {
                        return Err(ClientError::Invalid(format!(
                            "the node's receipt for event {} of this request names event {}, \
                             not the event {} that was signed; the answer is not trusted",
                            i + 1,
                            event_id.to_hex(),
                            sent.id(&ledger).to_hex()
                        )));
                    }
                    Ok(SubmitOutcome::Accepted {
                        event_id,
                        index: r.index,
                        appended_at: r.appended_at,
                        already_recorded,
                    })
                }
                Some(pb::outcome::Result::Refusal(r)) => Ok(SubmitOutcome::Refused {
                    code: r.code,
                    message: r.message,
                }),
                None => Err(ClientError::Invalid(
                    "the node sent an empty outcome".into(),
                )),
            })
            .collect()
    }

    pub async fn status(&mut self) -> Result<pb::StatusResponse, ClientError> {
        Ok(self.inner.status(pb::StatusRequest {}).await?.into_inner())
    }

    /// Every event of `worker`, oldest first, read with `key` (the worker's or an agency's),
    /// each checked: signatures over the author's bytes, and batch lines against their root.
    /// The worker's entitlement document (docs/cli.md) as of `as_of` (YYYY-MM-DD; `None`: today on
    /// the node's clock), with the log size it reflects.
    pub async fn entitlement(
        &mut self,
        worker: &str,
        key: &SigningKey,
        as_of: Option<&str>,
    ) -> Result<(serde_json::Value, u64), ClientError> {
        let token = self.token(key, read_method::ENTITLEMENT, worker).await?;
        let r = self
            .rights
            .entitlement(rights_pb::EntitlementRequest {
                worker: worker.to_string(),
                token: Some(token),
                as_of: as_of.unwrap_or_default().to_string(),
            })
            .await?
            .into_inner();
        let doc = serde_json::from_str(&r.json)
            .map_err(|e| ClientError::Invalid(format!("the node sent a bad entitlement: {e}")))?;
        Ok((doc, r.log_size))
    }

    /// Injury coverage of the worker at `at` (RFC 3339) in `jurisdiction` (docs/cli.md).
    pub async fn coverage(
        &mut self,
        worker: &str,
        key: &SigningKey,
        at: &str,
        jurisdiction: &str,
    ) -> Result<(serde_json::Value, u64), ClientError> {
        let token = self.token(key, read_method::COVERAGE, worker).await?;
        let r = self
            .rights
            .coverage(rights_pb::CoverageRequest {
                worker: worker.to_string(),
                token: Some(token),
                at: at.to_string(),
                jurisdiction: jurisdiction.to_string(),
            })
            .await?
            .into_inner();
        let doc = serde_json::from_str(&r.json).map_err(|e| {
            ClientError::Invalid(format!("the node sent a bad coverage answer: {e}"))
        })?;
        Ok((doc, r.log_size))
    }

    /// The worker's statement file (pcl-statement/1), cosigned by the nodes that verified it.
    pub async fn statement(
        &mut self,
        worker: &str,
        key: &SigningKey,
    ) -> Result<String, ClientError> {
        let token = self.token(key, read_method::STATEMENT, worker).await?;
        Ok(self
            .rights
            .statement(rights_pb::StatementRequest {
                worker: worker.to_string(),
                token: Some(token),
            })
            .await?
            .into_inner()
            .json)
    }

    /// The node's signed checkpoint, its verifier key, and the fork evidence it holds.
    pub async fn checkpoint(&mut self) -> Result<rights_pb::CheckpointResponse, ClientError> {
        Ok(self
            .rights
            .checkpoint(rights_pb::CheckpointRequest {})
            .await?
            .into_inner())
    }

    /// The receipt proof of an event, read with `key` and checked here against a quorum of the
    /// trusted node keys: (index, stamp, checkpoint note).
    pub async fn proof(
        &mut self,
        event_id: &Hash32,
        key: &SigningKey,
        trust: &ledger_core::checkpoint::Trust,
    ) -> Result<(u64, String, String), ClientError> {
        use ledger_core::checkpoint::{Checkpoint, SignedNote};
        let token = self
            .token(key, read_method::PROOF, &proof_subject(event_id))
            .await?;
        let r = self
            .rights
            .proof(rights_pb::ProofRequest {
                event_id: event_id.0.to_vec(),
                token: Some(token),
            })
            .await?
            .into_inner();
        let bad = |m: String| ClientError::Invalid(format!("the proof of {event_id} fails: {m}"));
        let note = SignedNote::parse(&r.checkpoint).map_err(|e| bad(e.to_string()))?;
        trust
            .verify_quorum(&note, "its checkpoint")
            .map_err(|e| bad(e.0))?;
        let cp = Checkpoint::parse_body(&note.text).map_err(|e| bad(e.to_string()))?;
        let stamp: ledger_core::time::Instant = r
            .appended_at
            .parse()
            .map_err(|e| bad(format!("stamp: {e}")))?;
        let path = merkle::proof_from_bytes(&r.inclusion).ok_or_else(|| bad("malformed".into()))?;
        let leaf = ledger_core::log_tree::event_leaf(event_id, stamp);
        if r.index == 0 || !merkle::verify_inclusion(&leaf, r.index - 1, cp.size, &path, &cp.root) {
            return Err(bad(
                "the inclusion proof does not lead to the checkpoint's root".into(),
            ));
        }
        Ok((r.index, r.appended_at, r.checkpoint))
    }

    /// Submits a signed ledger act (any node forwards it to the leader): the node records it
    /// and, for a membership act, the leader carries it out. Adding a learner returns once it
    /// has caught up.
    pub async fn submit_act(
        &mut self,
        act: &ledger_core::Envelope,
    ) -> Result<ledger_proto::admin::SubmitActResponse, ClientError> {
        use ledger_proto::admin::{admin_client::AdminClient, SubmitActRequest};
        let mut admin = AdminClient::new(self.channel.clone());
        Ok(admin
            .submit_act(SubmitActRequest {
                act: Some(act.to_pb()),
            })
            .await?
            .into_inner())
    }

    /// The genesis the node was created with (its canonical form), checked to hash to
    /// `expected`: the genesis hash the agencies compared out of band. A node is not trusted
    /// for the genesis itself; only the hash is.
    pub async fn genesis(
        &mut self,
        expected: LedgerId,
    ) -> Result<ledger_core::genesis::Genesis, ClientError> {
        use ledger_proto::admin::{admin_client::AdminClient, GenesisRequest};
        let mut admin = AdminClient::new(self.channel.clone());
        let json = admin
            .genesis(GenesisRequest {})
            .await?
            .into_inner()
            .genesis_json;
        let genesis: ledger_core::genesis::Genesis = serde_json::from_slice(&json)
            .map_err(|e| ClientError::Invalid(format!("the node's genesis is malformed: {e}")))?;
        genesis.validate().map_err(ClientError::Invalid)?;
        if genesis.ledger_id() != expected {
            return Err(ClientError::Invalid(format!(
                "the node's genesis hashes to {}, not to the {} given: it is another ledger's, \
                 or the hash was mistyped; nothing written",
                genesis.hash().to_hex(),
                expected.0.to_hex()
            )));
        }
        Ok(genesis)
    }

    /// Asks the node to cosign a checkpoint note.
    pub async fn cosign(&mut self, note: &str) -> Result<String, ClientError> {
        Ok(self
            .rights
            .cosign(rights_pb::CosignRequest {
                note: note.to_string(),
            })
            .await?
            .into_inner()
            .note)
    }

    /// A consistency proof between two sizes of the node's tree.
    pub async fn consistency(&mut self, old: u64, new: u64) -> Result<Vec<Hash32>, ClientError> {
        let r = self
            .rights
            .consistency(rights_pb::ConsistencyRequest {
                old_size: old,
                new_size: new,
            })
            .await?
            .into_inner();
        merkle::proof_from_bytes(&r.proof).ok_or_else(|| {
            ClientError::Invalid("the node sent a malformed consistency proof".into())
        })
    }

    /// The coverage indicators of `period` (YYYY-MM) within `jurisdiction` (the whole ledger
    /// when none), read with an agency key, and the log size they reflect.
    pub async fn indicators(
        &mut self,
        key: &SigningKey,
        period: &str,
        jurisdiction: Option<&str>,
    ) -> Result<(serde_json::Value, u64), ClientError> {
        let subject = ledger_core::rules::indicators::read_subject(period);
        let token = self.token(key, read_method::INDICATORS, &subject).await?;
        let r = self
            .rights
            .indicators(rights_pb::IndicatorsRequest {
                period: period.to_string(),
                jurisdiction: jurisdiction.unwrap_or_default().to_string(),
                token: Some(token),
            })
            .await?
            .into_inner();
        let doc = serde_json::from_str(&r.json)
            .map_err(|e| ClientError::Invalid(format!("the node sent bad indicators: {e}")))?;
        Ok((doc, r.log_size))
    }

    pub async fn worker_events(
        &mut self,
        worker: &str,
        key: &SigningKey,
    ) -> Result<Vec<WorkerEvent>, ClientError> {
        let ledger = self.ledger_id().await?;
        let mut out = Vec::new();
        let mut after_index = 0;
        loop {
            let token = self
                .token(key, read_method::LIST_WORKER_EVENTS, worker)
                .await?;
            let request = pb::ListWorkerEventsRequest {
                worker: worker.to_string(),
                token: Some(token),
                after_index,
                limit: 0,
            };
            let page = self.inner.list_worker_events(request).await?.into_inner();
            for e in page.events {
                after_index = e.index;
                out.push(check_stored(&ledger, e)?);
            }
            if !page.more {
                return Ok(out);
            }
        }
    }
}

/// Checks a stored event from the node: it is what its signers signed.
pub fn check_stored(ledger: &LedgerId, e: pb::StoredEvent) -> Result<WorkerEvent, ClientError> {
    let bad = |why: String| {
        ClientError::Invalid(format!(
            "event {} from the node fails verification: {why}",
            e.index
        ))
    };
    let env = Envelope::from_pb(
        e.envelope
            .clone()
            .ok_or_else(|| bad("no envelope".into()))?,
    )
    .map_err(|r| bad(r.to_string()))?;
    env.verify_signatures(ledger)
        .map_err(|r| bad(r.to_string()))?;
    if env.id(ledger).0.as_slice() != e.event_id.as_slice() {
        return Err(bad("its id does not match its body".into()));
    }
    let body = if e.line_positions.is_empty() {
        wire::decode_event(&env.body, &env.lines).map_err(|r| bad(r.to_string()))?
    } else {
        if e.line_positions.len() != env.lines.len() || e.line_proofs.len() != env.lines.len() {
            return Err(bad(
                "line positions, lines and proofs differ in number".into()
            ));
        }
        let proven: Vec<ProvenLine> = e
            .line_positions
            .iter()
            .zip(&env.lines)
            .zip(&e.line_proofs)
            .map(|((p, l), proof)| {
                Ok(ProvenLine {
                    position: *p,
                    bytes: l.clone(),
                    proof: merkle::proof_from_bytes(proof)
                        .ok_or_else(|| bad("malformed line proof".into()))?,
                })
            })
            .collect::<Result<_, ClientError>>()?;
        wire::decode_proven(&env.body, &proven).map_err(|r| bad(r.to_string()))?
    };
    Ok(WorkerEvent {
        index: e.index,
        event_id: env.id(ledger),
        appended_at: e.appended_at,
        body,
        signers: env
            .signatures
            .iter()
            .map(|s| s.public_key.to_hex())
            .collect(),
        line_positions: e.line_positions,
    })
}

/// Splits envelopes into requests within [`MAX_EVENTS_PER_REQUEST`] and [`MAX_REQUEST_BYTES`],
/// keeping their order.
pub fn split_requests(envelopes: Vec<Envelope>) -> Vec<Vec<Envelope>> {
    let mut out: Vec<Vec<Envelope>> = Vec::new();
    let mut bytes = 0usize;
    for e in envelopes {
        let size = e.encoded_len();
        let start_new = match out.last() {
            None => true,
            Some(last) => last.len() >= MAX_EVENTS_PER_REQUEST || bytes + size > MAX_REQUEST_BYTES,
        };
        if start_new {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        out.last_mut().expect("just pushed").push(e);
    }
    out
}
