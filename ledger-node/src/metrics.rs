//! The node's Prometheus metrics, served by `scrape` as text on `GET /metrics` at
//! `metrics_listen` (plain HTTP/1.1, off unless configured). Names start with `ledger_`; durations are in seconds; every
//! label has a bounded set of values (refusal codes from [`Refusal::CODES`], gRPC codes, Raft
//! ids of the membership), never free text.
//!
//! Counters and histograms are updated where things happen (the Submit handler, the appenders,
//! apply); gauges of state (Raft, checkpoint, store) are read when scraped, so they cost nothing
//! between scrapes.

use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;
use std::time::Duration;

use ledger_core::refusal::Refusal;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Buckets of latencies in seconds: 0.5 ms to 10 s (a commit waits at most `COMMIT_TIMEOUT`).
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FollowerLabel {
    pub follower: u64,
}

type SecondsGauge = Gauge<f64, AtomicU64>;

/// Every metric of the node.
pub struct Metrics {
    registry: Registry,
    pub submit_requests: Counter,
    pub submit_failures: Family<CodeLabel, Counter>,
    pub submitted_events: Counter,
    pub refusals: Family<CodeLabel, Counter>,
    pub submit_seconds: Histogram,
    pub commit_seconds: Histogram,
    pub applied_entries: Counter,
    pub appended_events: Counter,
    pub appended_lines: Counter,
    pub(crate) log_size: Gauge,
    pub(crate) store_bytes: Gauge,
    pub(crate) serving: Gauge,
    pub(crate) raft_term: Gauge,
    pub(crate) raft_leader: Gauge,
    pub(crate) raft_is_leader: Gauge,
    pub(crate) raft_last_log_index: Gauge,
    pub(crate) raft_commit_index: Gauge,
    pub(crate) raft_applied_index: Gauge,
    pub(crate) raft_quorum_ack_age: SecondsGauge,
    pub(crate) replication_lag: Family<FollowerLabel, Gauge>,
    pub(crate) checkpoint_age: SecondsGauge,
    pub(crate) checkpoint_behind: Gauge,
    pub(crate) cosignatures_missing: Gauge,
    pub(crate) forks_detected: Gauge,
}

/// The process's metrics (one node per process).
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// The label of a refusal code: one of [`Refusal::CODES`], else "other" (a forwarded
/// refusal from a node of another release), so the label set stays closed.
pub fn refusal_code(code: &str) -> &'static str {
    Refusal::CODES
        .iter()
        .find(|c| **c == code)
        .copied()
        .unwrap_or("other")
}

/// The label of a gRPC status code (a closed set of 17).
pub fn grpc_code(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Ok => "ok",
        tonic::Code::Cancelled => "cancelled",
        tonic::Code::Unknown => "unknown",
        tonic::Code::InvalidArgument => "invalid_argument",
        tonic::Code::DeadlineExceeded => "deadline_exceeded",
        tonic::Code::NotFound => "not_found",
        tonic::Code::AlreadyExists => "already_exists",
        tonic::Code::PermissionDenied => "permission_denied",
        tonic::Code::ResourceExhausted => "resource_exhausted",
        tonic::Code::FailedPrecondition => "failed_precondition",
        tonic::Code::Aborted => "aborted",
        tonic::Code::OutOfRange => "out_of_range",
        tonic::Code::Unimplemented => "unimplemented",
        tonic::Code::Internal => "internal",
        tonic::Code::Unavailable => "unavailable",
        tonic::Code::DataLoss => "data_loss",
        tonic::Code::Unauthenticated => "unauthenticated",
    }
}

fn histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

impl Metrics {
    fn new() -> Metrics {
        let mut m = Metrics {
            submit_requests: Counter::default(),
            submit_failures: Family::default(),
            submitted_events: Counter::default(),
            refusals: Family::default(),
            submit_seconds: histogram(),
            commit_seconds: histogram(),
            applied_entries: Counter::default(),
            appended_events: Counter::default(),
            appended_lines: Counter::default(),
            log_size: Gauge::default(),
            store_bytes: Gauge::default(),
            serving: Gauge::default(),
            raft_term: Gauge::default(),
            raft_leader: Gauge::default(),
            raft_is_leader: Gauge::default(),
            raft_last_log_index: Gauge::default(),
            raft_commit_index: Gauge::default(),
            raft_applied_index: Gauge::default(),
            raft_quorum_ack_age: SecondsGauge::default(),
            replication_lag: Family::default(),
            checkpoint_age: SecondsGauge::default(),
            checkpoint_behind: Gauge::default(),
            cosignatures_missing: Gauge::default(),
            forks_detected: Gauge::default(),
            registry: Registry::default(),
        };
        let mut r = Registry::default();
        m.register_requests(&mut r);
        m.register_state(&mut r);
        m.register_raft(&mut r);
        m.start_from_zero();
        m.registry = r;
        m
    }

    /// What happens to submissions: requests, events, refusals, latencies, appends.
    fn register_requests(&self, r: &mut Registry) {
        r.register_with_unit(
            "ledger_commit",
            "Entries, handed to the appender to durable and applied (under Raft: committed by a \
             majority and applied here; on a follower: forwarded to the leader and applied here)",
            Unit::Seconds,
            self.commit_seconds.clone(),
        );
        r.register(
            "ledger_submit_requests",
            "Submit requests received by this node",
            self.submit_requests.clone(),
        );
        r.register(
            "ledger_submit_failures",
            "Submit requests answered with an error, by gRPC code",
            self.submit_failures.clone(),
        );
        r.register(
            "ledger_submitted_events",
            "Events received in Submit requests by this node",
            self.submitted_events.clone(),
        );
        r.register(
            "ledger_refusals",
            "Events this node answered with a refusal, by refusal code",
            self.refusals.clone(),
        );
        r.register_with_unit(
            "ledger_submit",
            "Submit requests, received to answered (forwarding to the leader included)",
            Unit::Seconds,
            self.submit_seconds.clone(),
        );
        r.register(
            "ledger_applied_entries",
            "Entries of events applied to this node's ledger",
            self.applied_entries.clone(),
        );
        r.register(
            "ledger_appended_events",
            "Events appended to this node's log (new ones, not already recorded)",
            self.appended_events.clone(),
        );
        r.register(
            "ledger_appended_lines",
            "Batch lines (contribution lines) in the events appended to this node's log",
            self.appended_lines.clone(),
        );
    }

    /// The node's state, read at scrape time: log, store, health, checkpoint, forks.
    fn register_state(&self, r: &mut Registry) {
        r.register_with_unit(
            "ledger_checkpoint_age",
            "Time since the newest cosigned checkpoint was made (it is remade only when the log \
             grows or a cosignature is missing)",
            Unit::Seconds,
            self.checkpoint_age.clone(),
        );
        r.register(
            "ledger_log_size",
            "Events in this node's log",
            self.log_size.clone(),
        );
        r.register_with_unit(
            "ledger_store",
            "Size of the store on disk",
            Unit::Bytes,
            self.store_bytes.clone(),
        );
        r.register(
            "ledger_serving",
            "1 when the health service says SERVING, 0 otherwise",
            self.serving.clone(),
        );
        r.register(
            "ledger_checkpoint_behind_events",
            "Events in the log beyond the newest cosigned checkpoint",
            self.checkpoint_behind.clone(),
        );
        r.register(
            "ledger_checkpoint_cosignatures_missing",
            "Peers whose cosignature the newest checkpoint lacks",
            self.cosignatures_missing.clone(),
        );
        r.register(
            "ledger_forks_detected",
            "Distinct conflicting notes signed by trusted nodes (fork evidence), kept or counted",
            self.forks_detected.clone(),
        );
    }

    /// Raft as this node sees it, read at scrape time.
    fn register_raft(&self, r: &mut Registry) {
        r.register("ledger_raft_term", "Raft term", self.raft_term.clone());
        r.register(
            "ledger_raft_leader",
            "Raft id of the leader this node knows, 0 when none",
            self.raft_leader.clone(),
        );
        r.register(
            "ledger_raft_is_leader",
            "1 on the leader",
            self.raft_is_leader.clone(),
        );
        r.register(
            "ledger_raft_last_log_index",
            "Index of the last entry in this node's Raft log",
            self.raft_last_log_index.clone(),
        );
        r.register(
            "ledger_raft_commit_index",
            "Highest Raft index held by a majority (known on the leader; 0 elsewhere)",
            self.raft_commit_index.clone(),
        );
        r.register(
            "ledger_raft_applied_index",
            "Raft index applied to this node's ledger",
            self.raft_applied_index.clone(),
        );
        r.register_with_unit(
            "ledger_raft_quorum_ack_age",
            "On the leader, time since a majority last acknowledged it",
            Unit::Seconds,
            self.raft_quorum_ack_age.clone(),
        );
        r.register(
            "ledger_raft_replication_lag",
            "On the leader, Raft entries a member lacks (last log index minus its matched index)",
            self.replication_lag.clone(),
        );
    }

    /// Every labelled series from zero, so that rate() and alerts see the first refusal or
    /// failure.
    fn start_from_zero(&self) {
        for code in Refusal::CODES.iter().chain(&["other"]) {
            let _ = self.refusals.get_or_create(&CodeLabel { code });
        }
        for code in (1..=16).map(tonic::Code::from) {
            let _ = self.submit_failures.get_or_create(&CodeLabel {
                code: grpc_code(code),
            });
        }
    }

    /// Counts the events of one applied entry that were appended (not already recorded), with
    /// their batch lines.
    pub fn count_applied<'a>(&self, appended: impl Iterator<Item = &'a ledger_core::Envelope>) {
        self.applied_entries.inc();
        for envelope in appended {
            self.appended_events.inc();
            self.appended_lines.inc_by(envelope.lines.len() as u64);
        }
    }

    /// Counts one answered Submit request.
    pub fn count_submit(
        &self,
        events: usize,
        result: Result<&[Option<&'static str>], tonic::Code>,
        took: Duration,
    ) {
        self.submit_requests.inc();
        self.submitted_events.inc_by(events as u64);
        self.submit_seconds.observe(took.as_secs_f64());
        match result {
            Ok(refused) => {
                for code in refused.iter().flatten() {
                    self.refusals.get_or_create(&CodeLabel { code }).inc();
                }
            }
            Err(code) => {
                self.submit_failures
                    .get_or_create(&CodeLabel {
                        code: grpc_code(code),
                    })
                    .inc();
            }
        }
    }

    /// Every metric in the text format (the state gauges as last set by `scrape`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_sets_are_closed() {
        assert_eq!(refusal_code("unknown_key"), "unknown_key");
        assert_eq!(refusal_code("whatever a peer says"), "other");
        assert_eq!(grpc_code(tonic::Code::Unavailable), "unavailable");
    }

    #[test]
    fn counters_show_in_the_text_with_their_labels() {
        let m = Metrics::new();
        m.count_submit(
            3,
            Ok(&[None, Some("unknown_key"), Some("unknown_key")]),
            Duration::from_millis(3),
        );
        m.count_submit(1, Err(tonic::Code::Unavailable), Duration::from_millis(1));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &m.registry).unwrap();
        assert!(out.contains("ledger_submit_requests_total 2"), "{out}");
        assert!(out.contains("ledger_submitted_events_total 4"), "{out}");
        assert!(
            out.contains("ledger_refusals_total{code=\"unknown_key\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("ledger_submit_failures_total{code=\"unavailable\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("ledger_submit_seconds_bucket{le=\"0.005\"} 2"),
            "{out}"
        );
    }

    #[test]
    fn the_dashboard_shows_only_metrics_the_node_exports() {
        let m = Metrics::new();
        // Written on the leader only.
        m.replication_lag
            .get_or_create(&FollowerLabel { follower: 2 })
            .set(1);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &m.registry).unwrap();
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/grafana-dashboard.json"
        );
        let dashboard = std::fs::read_to_string(path).unwrap();
        let mut seen = 0;
        for (i, _) in dashboard.match_indices("ledger_") {
            let name: String = dashboard[i..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if name == "ledger_" {
                continue;
            }
            let base = ["_total", "_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            assert!(
                text.contains(&format!("# TYPE {base} ")),
                "{name} is not exported:\n{text}"
            );
            seen += 1;
        }
        assert!(seen > 15, "{seen}");
    }
}
