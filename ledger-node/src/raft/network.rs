//! The Raft RPCs over gRPC (`ledger.v1.raft.Raft`): the client side openraft calls to reach a
//! peer, and the server side that hands a peer's RPC to the local Raft. Payloads are openraft's
//! messages in the binary encoding of [`super::encode`]; a request in the earlier JSON form (from
//! a node not yet upgraded) is still understood and answered in JSON. Each call carries
//! openraft's deadline for it.

use super::LedgerNode;
use ledger_proto::raft::raft_client::RaftClient;
use ledger_proto::raft::raft_server;
use ledger_proto::raft::RaftPayload;
use openraft::error::SnapshotMismatch;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::SnapshotSegmentId;
use serde::{de::DeserializeOwned, Serialize};
use tokio::io::AsyncWriteExt;
use tonic::transport::Channel;

use super::snapshot::MAX_SNAPSHOT_BYTES;
use super::{LedgerStateMachine, NodeId, TypeConfig};

/// Largest Raft message either way (sized in `limits` from the entry bound and the entries per
/// payload, so the leader never sends more than a follower accepts).
pub const MAX_RAFT_MESSAGE_BYTES: usize = crate::limits::MAX_RAFT_MESSAGE_BYTES;

/// Creates one connection per peer; connections are made lazily and re-made by tonic. Over
/// TLS each connection accepts only the target's node key and presents this node's.
#[derive(Clone, Default)]
pub struct GrpcNetwork {
    pub net: crate::raft::Net,
}

pub struct PeerConnection {
    target: NodeId,
    client: Result<RaftClient<Channel>, String>,
}

impl RaftNetworkFactory<TypeConfig> for GrpcNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &LedgerNode) -> PeerConnection {
        let client = self
            .net
            .to_member(target, node)
            .and_then(|transport| {
                ledger_client::transport::channel_lazy(&node.raft_address, &transport).map_err(
                    |e| {
                        format!(
                            "peer {target} has an invalid address {:?}: {e}",
                            node.raft_address
                        )
                    },
                )
            })
            .map(|channel| {
                RaftClient::new(channel)
                    .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES)
            });
        PeerConnection { target, client }
    }
}

type Rpc<E> = RPCError<NodeId, LedgerNode, RaftError<NodeId, E>>;

impl PeerConnection {
    async fn call<
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    >(
        &mut self,
        method: Method,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, Rpc<E>> {
        let client = self.client.as_mut().map_err(|e| {
            RPCError::Unreachable(Unreachable::new(&std::io::Error::other(e.clone())))
        })?;
        let json = super::encode(req)
            .map_err(|e| RPCError::Network(NetworkError::new(&std::io::Error::other(e))))?;
        let mut request = tonic::Request::new(RaftPayload { json });
        request.set_timeout(option.hard_ttl());
        let reply = match method {
            Method::AppendEntries => client.append_entries(request).await,
            Method::Vote => client.vote(request).await,
            Method::InstallSnapshot => client.install_snapshot(request).await,
        };
        let reply = reply.map_err(|status| match status.code() {
            tonic::Code::Unavailable => RPCError::Unreachable(Unreachable::new(&status)),
            _ => RPCError::Network(NetworkError::new(&status)),
        })?;
        let result: Result<Resp, RaftError<NodeId, E>> = super::decode(&reply.into_inner().json)
            .map_err(|e| RPCError::Network(NetworkError::new(&std::io::Error::other(e))))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

#[derive(Clone, Copy)]
enum Method {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, Rpc<openraft::error::Infallible>> {
        self.call(Method::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, Rpc<InstallSnapshotError>> {
        self.call(Method::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, Rpc<openraft::error::Infallible>> {
        self.call(Method::Vote, &rpc, &option).await
    }
}

/// The server side: a peer's RPC handed to the local Raft, only from a member speaking for
/// itself.
pub struct RaftService {
    raft: openraft::Raft<TypeConfig>,
    net: crate::raft::Net,
    /// Checks a received snapshot before openraft is given it.
    state: LedgerStateMachine,
    /// The snapshot being received: chunks arrive in order, one stream at a time.
    receiving: tokio::sync::Mutex<Option<Receiving>>,
}

struct Receiving {
    snapshot_id: String,
    /// Bytes received so far: the offset the next chunk must have.
    next: u64,
    file: tokio::fs::File,
}

impl RaftService {
    pub fn server(
        raft: openraft::Raft<TypeConfig>,
        state: LedgerStateMachine,
        net: crate::raft::Net,
    ) -> raft_server::RaftServer<RaftService> {
        raft_server::RaftServer::new(RaftService {
            raft,
            state,
            receiving: tokio::sync::Mutex::default(),
            net,
        })
        .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES)
    }

    /// Takes one chunk of a snapshot into a staging file (never into memory or the live store)
    /// and, on the last one, checks the whole snapshot against this node's ledger before
    /// openraft installs it. A refused snapshot is a gRPC error to the sender; this node's Raft
    /// and ledger carry on untouched.
    async fn receive_chunk(
        &self,
        req: InstallSnapshotRequest<TypeConfig>,
        vote: openraft::Vote<NodeId>,
    ) -> Result<InstallSnapshotReply, tonic::Status> {
        let mut slot = self.receiving.lock().await;
        let id = req.meta.snapshot_id.clone();
        let expected = match slot.as_ref() {
            Some(r) if r.snapshot_id == id => r.next,
            _ => 0,
        };
        if req.offset != expected && req.offset != 0 {
            let segment = |offset| SnapshotSegmentId {
                id: id.clone(),
                offset,
            };
            let mismatch = SnapshotMismatch {
                expect: segment(expected),
                got: segment(req.offset),
            };
            return Ok(Err(RaftError::APIError(mismatch.into())));
        }
        if req.offset == 0 {
            let file = self.state.receiving_file().map_err(internal)?;
            *slot = Some(Receiving {
                snapshot_id: id.clone(),
                next: 0,
                file,
            });
        }
        let r = slot.as_mut().expect("a stream was just found or begun");
        r.file.write_all(&req.data).await.map_err(internal)?;
        r.next += req.data.len() as u64;
        if !req.done {
            return Ok(Ok(InstallSnapshotResponse { vote }));
        }
        let mut r = slot.take().expect("a stream was just found or begun");
        r.file.flush().await.map_err(internal)?;
        // Checked and installed in a task of its own: a sender that gives up waiting (its
        // deadline is openraft's install_snapshot_timeout) does not cancel an install half way.
        let (state, raft) = (self.state.clone(), self.raft.clone());
        let task = tokio::spawn(async move {
            if let Err(why) = state.check_received(&req.meta, &r.file).await {
                tracing::warn!(snapshot = %id, %why, "refused a snapshot from a peer");
                return Err(tonic::Status::invalid_argument(format!(
                    "snapshot {id} refused: {why}"
                )));
            }
            let snapshot = openraft::storage::Snapshot {
                meta: req.meta,
                snapshot: Box::new(r.file),
            };
            let installed = raft.install_full_snapshot(req.vote, snapshot).await;
            // openraft skips a snapshot older than what it has: drop what was staged for it.
            state.forget_staged();
            Ok(match installed {
                Ok(resp) => Ok(InstallSnapshotResponse { vote: resp.vote }),
                Err(fatal) => Err(RaftError::Fatal(fatal)),
            })
        });
        task.await.map_err(internal)?
    }

    /// The members the connection's certificate belongs to (checked before anything is
    /// decoded). Plaintext mode (loopback only) has no identities to check.
    fn caller(&self, request: &tonic::Request<RaftPayload>) -> Result<Caller, tonic::Status> {
        if self.net.tls.is_none() {
            return Ok(Caller::Unchecked);
        }
        let key = request
            .extensions()
            .get::<crate::tls::PeerInfo>()
            .and_then(|p| p.key)
            .ok_or_else(|| {
                tonic::Status::permission_denied("Raft RPCs need a member's client certificate")
            })?;
        let ids = self.net.keys.members_with(&self.raft, &key);
        if ids.is_empty() {
            return Err(tonic::Status::permission_denied(format!(
                "node key {} is not a member's",
                hex::encode(key)
            )));
        }
        Ok(Caller::Members(ids))
    }
}

/// Who sent a Raft RPC, as the connection proves it.
enum Caller {
    Unchecked,
    Members(Vec<NodeId>),
}

impl Caller {
    /// A member may only speak as itself: the leader or candidate id of the message must be
    /// the member whose key the connection proved.
    fn may_claim(&self, claimed: NodeId) -> Result<(), tonic::Status> {
        match self {
            Caller::Members(ids) if !ids.contains(&claimed) => {
                tracing::warn!(claimed, members = ?ids, "a Raft RPC claimed another member's id");
                Err(tonic::Status::permission_denied(format!(
                    "this connection belongs to member {ids:?}, not to member {claimed}"
                )))
            }
            _ => Ok(()),
        }
    }
}

type InstallSnapshotReply =
    Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>;

/// Refuses a chunk that would take a snapshot past [`MAX_SNAPSHOT_BYTES`], before anything is
/// allocated or written for it.
pub fn check_chunk_bounds(offset: u64, len: usize) -> Result<(), tonic::Status> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= MAX_SNAPSHOT_BYTES => Ok(()),
        _ => Err(tonic::Status::invalid_argument(format!(
            "snapshot chunk at offset {offset} of {len} bytes ends beyond MAX_SNAPSHOT_BYTES \
             ({MAX_SNAPSHOT_BYTES} bytes): refused"
        ))),
    }
}

fn internal(e: impl std::fmt::Display) -> tonic::Status {
    tonic::Status::internal(format!("receiving a snapshot: {e}"))
}

/// A peer's request, and whether it came in the earlier JSON form (answered in kind).
fn decode<T: DeserializeOwned>(p: RaftPayload) -> Result<(T, bool), tonic::Status> {
    let json = p.json.first() == Some(&b'{');
    super::decode(&p.json)
        .map(|v| (v, json))
        .map_err(|e| tonic::Status::invalid_argument(format!("malformed Raft message: {e}")))
}

fn encode<T: Serialize>(v: &T, json: bool) -> Result<tonic::Response<RaftPayload>, tonic::Status> {
    let bytes = if json {
        serde_json::to_vec(v).map_err(|e| e.to_string())
    } else {
        super::encode(v)
    };
    let json = bytes.map_err(tonic::Status::internal)?;
    Ok(tonic::Response::new(RaftPayload { json }))
}

#[tonic::async_trait]
impl raft_server::Raft for RaftService {
    async fn append_entries(
        &self,
        request: tonic::Request<RaftPayload>,
    ) -> Result<tonic::Response<RaftPayload>, tonic::Status> {
        let caller = self.caller(&request)?;
        let (req, json): (AppendEntriesRequest<TypeConfig>, _) = decode(request.into_inner())?;
        caller.may_claim(req.vote.leader_id().node_id)?;
        encode(&self.raft.append_entries(req).await, json)
    }

    async fn vote(
        &self,
        request: tonic::Request<RaftPayload>,
    ) -> Result<tonic::Response<RaftPayload>, tonic::Status> {
        let caller = self.caller(&request)?;
        let (req, json): (VoteRequest<NodeId>, _) = decode(request.into_inner())?;
        caller.may_claim(req.vote.leader_id().node_id)?;
        encode(&self.raft.vote(req).await, json)
    }

    async fn install_snapshot(
        &self,
        request: tonic::Request<RaftPayload>,
    ) -> Result<tonic::Response<RaftPayload>, tonic::Status> {
        let caller = self.caller(&request)?;
        let (req, json): (InstallSnapshotRequest<TypeConfig>, _) = decode(request.into_inner())?;
        caller.may_claim(req.vote.leader_id().node_id)?;
        check_chunk_bounds(req.offset, req.data.len())?;
        let vote = self
            .raft
            .with_raft_state(|s| *s.vote_ref())
            .await
            .map_err(internal)?;
        if !matches!(
            req.vote.partial_cmp(&vote),
            Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
        ) {
            // A stale leader: tell it the newer vote, take nothing.
            let reply: InstallSnapshotReply = Ok(InstallSnapshotResponse { vote });
            return encode(&reply, json);
        }
        encode(&self.receive_chunk(req, vote).await?, json)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    use ed25519_dalek::SigningKey;
    use ledger_core::envelope::Envelope;
    use ledger_core::event::{EventBody, PublicKeyBytes};
    use ledger_core::genesis::{Genesis, GenesisJurisdiction};
    use ledger_core::json::parse_json_event;
    use ledger_core::records;
    use ledger_core::state;
    use prost::Message;

    use super::*;
    use crate::raft::{config, LedgerRequest, LedgerStateMachine, OutcomeRecord, RaftLogStore};
    use crate::store::{SledStore, Store};

    const WAIT: Duration = Duration::from_secs(60);

    fn genesis() -> Genesis {
        Genesis {
            ledger: "pcl-raft".into(),
            jurisdictions: vec![GenesisJurisdiction {
                code: "CN-44".parse().unwrap(),
                agency_keys: vec![PublicKeyBytes(
                    SigningKey::from_bytes(&[1; 32]).verifying_key().to_bytes(),
                )],
            }],
            authority_quorum: None,
            members: Vec::new(),
        }
    }

    struct TestNode {
        raft: openraft::Raft<TypeConfig>,
        store: Arc<SledStore>,
        _dir: tempfile::TempDir,
    }

    async fn start(id: NodeId, listener: tokio::net::TcpListener) -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(&dir.path().join("store")).unwrap());
        store.commit(&state::genesis_writes(&genesis())).unwrap();
        let log = RaftLogStore::open(&store).unwrap();
        let marker = crate::head_marker::HeadMarker::open(&dir.path().join("head"))
            .unwrap()
            .0;
        let sm =
            LedgerStateMachine::open(store.clone(), &dir.path().join("snapshots"), marker).unwrap();
        let raft = openraft::Raft::new(
            id,
            Arc::new(config("pcl-raft", crate::raft::SNAPSHOT_EVERY_ENTRIES).unwrap()),
            GrpcNetwork::default(),
            log,
            sm.clone(),
        )
        .await
        .unwrap();
        let server = RaftService::server(raft.clone(), sm, crate::raft::Net::default());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(server)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
        });
        TestNode {
            raft,
            store,
            _dir: dir,
        }
    }

    fn person(worker: &str) -> Vec<u8> {
        let json = format!(
            r#"{{"type":"person_registered","worker":"{worker}","jurisdiction":"CN-44","sex":"M","birth_date":"1980-01-01","nationality":"CN"}}"#
        );
        let (kind, _) = parse_json_event(&json).unwrap();
        let signed_at = "2024-06-01T00:00:00Z".parse().unwrap();
        Envelope::sign(
            &genesis().ledger_id(),
            &EventBody { signed_at, kind },
            &[&SigningKey::from_bytes(&[1; 32])],
        )
        .to_pb()
        .encode_to_vec()
    }

    #[test]
    fn a_full_append_entries_fits_what_a_follower_accepts() {
        use crate::limits::{MAX_PAYLOAD_ENTRIES, MAX_RAFT_ENTRY_BYTES};
        // The largest entries the appender builds, as many as openraft puts in one payload.
        let envelope = MAX_RAFT_ENTRY_BYTES - LedgerRequest::encoded_len_of([0]);
        let entries: Vec<openraft::Entry<TypeConfig>> = (1..=MAX_PAYLOAD_ENTRIES)
            .map(|i| openraft::Entry {
                log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(u64::MAX, 7), i),
                payload: openraft::EntryPayload::Normal(LedgerRequest {
                    stamp_seconds: i64::MIN,
                    stamp_nanos: u32::MAX,
                    envelopes: vec![vec![0xab; envelope]],
                }),
            })
            .collect();
        for e in &entries {
            assert!(crate::raft::encode(e).unwrap().len() <= MAX_RAFT_ENTRY_BYTES);
        }
        let rpc = AppendEntriesRequest::<TypeConfig> {
            vote: openraft::Vote::new_committed(u64::MAX, 7),
            prev_log_id: Some(openraft::LogId::new(
                openraft::CommittedLeaderId::new(u64::MAX, 7),
                0,
            )),
            leader_commit: Some(openraft::LogId::new(
                openraft::CommittedLeaderId::new(u64::MAX, 7),
                u64::MAX,
            )),
            entries,
        };
        let bytes = crate::raft::encode(&rpc).unwrap();
        assert!(bytes.len() <= MAX_RAFT_MESSAGE_BYTES, "{}", bytes.len());
        let back: AppendEntriesRequest<TypeConfig> = crate::raft::decode(&bytes).unwrap();
        assert_eq!(back.entries.len() as u64, MAX_PAYLOAD_ENTRIES);
    }

    #[test]
    fn a_peer_still_sending_json_is_understood_and_answered_in_json() {
        let vote = VoteRequest::<NodeId>::new(openraft::Vote::new(3, 2), None);
        let payload = RaftPayload {
            json: serde_json::to_vec(&vote).unwrap(),
        };
        let (back, json): (VoteRequest<NodeId>, bool) = decode(payload).unwrap();
        assert!(json);
        assert_eq!(back, vote);
        let reply = encode(&vote, json).unwrap().into_inner().json;
        assert_eq!(reply.first(), Some(&b'{'));
        let binary = RaftPayload {
            json: crate::raft::encode(&vote).unwrap(),
        };
        let (_, json): (VoteRequest<NodeId>, bool) = decode(binary).unwrap();
        assert!(!json);
        let bad = RaftPayload { json: vec![9, 9] };
        let refused = decode::<VoteRequest<NodeId>>(bad).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_nodes_over_grpc_elect_a_leader_and_replicate_identical_ledgers() {
        // Real gRPC on loopback between three Raft nodes: a leader is elected, an entry written
        // on it is applied on every node, and the three ledgers are byte-identical.
        let mut listeners = Vec::new();
        let mut members = BTreeMap::new();
        for id in 1..=3u64 {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            members.insert(
                id,
                LedgerNode {
                    raft_address: format!("http://{}", l.local_addr().unwrap()),
                    public_address: String::new(),
                    node_key: String::new(),
                },
            );
            listeners.push(l);
        }
        let mut nodes = Vec::new();
        for (id, l) in (1..=3u64).zip(listeners) {
            nodes.push(start(id, l).await);
        }
        nodes[0].raft.initialize(members).await.unwrap();
        let metrics = nodes[0]
            .raft
            .wait(Some(WAIT))
            .metrics(|m| m.current_leader.is_some(), "a leader")
            .await
            .unwrap();
        let leader = metrics.current_leader.unwrap();
        let leader_raft = &nodes[(leader - 1) as usize].raft;

        let stamp = ledger_core::time::Instant::from_unix_utc(1_717_200_000, 0).unwrap();
        let req = LedgerRequest {
            stamp_seconds: stamp.unix_seconds(),
            stamp_nanos: 0,
            envelopes: vec![person("W-1"), person("W-2")],
        };
        let written = leader_raft.client_write(req).await.unwrap();
        assert!(written.data.outcomes.iter().all(|o| matches!(
            o,
            OutcomeRecord::Appended {
                duplicate: false,
                ..
            }
        )));
        let index = written.log_id.index;
        for n in &nodes {
            n.raft
                .wait(Some(WAIT))
                .applied_index_at_least(Some(index), "the entry applied")
                .await
                .unwrap();
        }
        let dump = |n: &TestNode| n.store.scan(b"e", None, usize::MAX).unwrap();
        assert_eq!(dump(&nodes[0]).len(), 2);
        assert_eq!(dump(&nodes[0]), dump(&nodes[1]));
        assert_eq!(dump(&nodes[0]), dump(&nodes[2]));
        let heads: Vec<_> = nodes
            .iter()
            .map(|n| records::read_head(n.store.as_ref()).unwrap())
            .collect();
        assert!(
            heads.windows(2).all(|w| w[0] == w[1]),
            "same size and chain head everywhere"
        );
        for n in nodes {
            n.raft.shutdown().await.unwrap();
        }
    }
}
