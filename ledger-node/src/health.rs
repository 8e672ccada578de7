//! What the gRPC health service says. A node answers SERVING only when a submission sent to it
//! now could be committed: under Raft it knows a leader and, on the leader, a majority has
//! acknowledged it recently; a single node serves while it is up. Every public service carries
//! the same status as the whole server (""), and all turn NOT_SERVING when shutdown starts, so
//! a load balancer stops sending before the port closes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ledger_proto::admin::admin_server::AdminServer;
use ledger_proto::node::ledger_server::LedgerServer;
use ledger_proto::rights::rights_server::RightsServer;
use tonic::server::NamedService;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::raft::{LedgerNode, NodeId, TypeConfig};

/// How long a leader may go without a majority's acknowledgement and still serve. Longer than
/// a follower waits before it calls an election (`ELECTION_TIMEOUT_MS`), so a leader that says
/// SERVING has not been replaced behind its back; twice that, so that one slow round on a loaded
/// machine does not flap the status.
pub const QUORUM_ACK_LIMIT: Duration =
    Duration::from_millis(2 * crate::raft::ELECTION_TIMEOUT_MS.1);

/// How often the status is looked at again when Raft reports nothing new (a leader cut off from
/// its followers may report little).
const RECHECK: Duration = Duration::from_millis(500);

/// The names the health service answers for: the whole server and each public service.
pub fn service_names() -> [&'static str; 4] {
    [
        "",
        <LedgerServer<crate::service::NodeService> as NamedService>::NAME,
        <RightsServer<crate::rights::RightsService> as NamedService>::NAME,
        <AdminServer<crate::admin::AdminService> as NamedService>::NAME,
    ]
}

/// Why a replica should not take submissions now, or `None` when it should.
pub fn not_serving_because(m: &openraft::RaftMetrics<NodeId, LedgerNode>) -> Option<String> {
    if let Err(fatal) = &m.running_state {
        return Some(format!("replication stopped: {fatal}"));
    }
    let Some(leader) = m.current_leader else {
        return Some(
            "no known leader (an election is under way, or this node cannot reach a majority)"
                .into(),
        );
    };
    if leader != m.id {
        return None;
    }
    match m.millis_since_quorum_ack {
        Some(ms) if u128::from(ms) <= QUORUM_ACK_LIMIT.as_millis() => None,
        Some(ms) => Some(format!(
            "this leader has had no acknowledgement from a majority for {ms} ms"
        )),
        None => Some("this leader is not yet acknowledged by a majority".into()),
    }
}

/// Sets every service's status at once.
async fn set_all(reporter: &HealthReporter, flag: &AtomicBool, status: ServingStatus) {
    for name in service_names() {
        reporter.set_service_status(name, status).await;
    }
    flag.store(status == ServingStatus::Serving, Ordering::Relaxed);
}

/// The health of one node, kept current until [`Health::shutting_down`].
pub struct Health {
    reporter: HealthReporter,
    /// What the services were last set to (for the `ledger_serving` metric).
    serving: Arc<AtomicBool>,
    follower: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Health {
    /// Serving from now on (a single node), or following `raft` (a replica).
    pub async fn start(
        reporter: HealthReporter,
        raft: Option<openraft::Raft<TypeConfig>>,
    ) -> Health {
        let serving = Arc::new(AtomicBool::new(false));
        let follower = match raft {
            None => {
                set_all(&reporter, &serving, ServingStatus::Serving).await;
                None
            }
            Some(raft) => {
                set_all(&reporter, &serving, ServingStatus::NotServing).await;
                let task = follow(reporter.clone(), serving.clone(), raft);
                Some(tokio::spawn(task))
            }
        };
        Health {
            reporter,
            serving,
            follower: std::sync::Mutex::new(follower),
        }
    }

    /// NOT_SERVING for good: shutdown has started. The task that follows Raft is stopped first,
    /// so it cannot set SERVING again afterwards.
    pub async fn shutting_down(&self) {
        let follower = self.follower.lock().map(|mut f| f.take()).unwrap_or(None);
        if let Some(task) = follower {
            task.abort();
            let _ = task.await;
        }
        set_all(&self.reporter, &self.serving, ServingStatus::NotServing).await;
    }

    /// Whether the services were last set to SERVING.
    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Relaxed)
    }
}

/// Follows Raft's metrics and sets the status whenever it changes.
async fn follow(reporter: HealthReporter, flag: Arc<AtomicBool>, raft: openraft::Raft<TypeConfig>) {
    let mut metrics = raft.metrics();
    let mut serving = false;
    loop {
        let why = not_serving_because(&metrics.borrow_and_update());
        if serving != why.is_none() {
            serving = why.is_none();
            match &why {
                None => tracing::info!("health: SERVING"),
                Some(why) => tracing::warn!(reason = %why, "health: NOT_SERVING"),
            }
            let status = if serving {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            set_all(&reporter, &flag, status).await;
        }
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() {
                // Raft is gone: nothing this node accepts could be committed.
                set_all(&reporter, &flag, ServingStatus::NotServing).await;
                return;
            },
            _ = tokio::time::sleep(RECHECK) => {},
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_needs_a_leader_and_on_the_leader_a_recent_majority() {
        let mut m = openraft::RaftMetrics::<NodeId, LedgerNode>::new_initial(2);
        assert!(not_serving_because(&m).unwrap().contains("no known leader"));
        m.current_leader = Some(1);
        assert_eq!(not_serving_because(&m), None, "a follower with a leader");
        m.current_leader = Some(2);
        assert!(not_serving_because(&m)
            .unwrap()
            .contains("not yet acknowledged"));
        m.millis_since_quorum_ack = Some(40);
        assert_eq!(
            not_serving_because(&m),
            None,
            "a leader acknowledged just now"
        );
        m.millis_since_quorum_ack = Some(QUORUM_ACK_LIMIT.as_millis() as u64 + 1);
        assert!(not_serving_because(&m)
            .unwrap()
            .contains("no acknowledgement"));
        m.running_state = Err(openraft::error::Fatal::Stopped);
        assert!(not_serving_because(&m)
            .unwrap()
            .contains("replication stopped"));
    }

    #[test]
    fn every_public_service_is_named() {
        let names = service_names();
        for s in [
            "ledger.v1.node.Ledger",
            "ledger.v1.rights.Rights",
            "ledger.v1.admin.Admin",
        ] {
            assert!(names.contains(&s), "{s} in {names:?}");
        }
    }
}
