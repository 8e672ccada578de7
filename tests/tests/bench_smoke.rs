//! The load generator works end to end: every generated event is accepted and appended, and the
//! report adds up. (No timing is asserted: this machine's speed is not a test result.)

use ledger_tests::*;

#[test]
fn bench_appends_what_it_reports() {
    let ledger = TestLedger::start();
    let before = ledger.log_size();
    let agency = ledger.key_path("CN-44");
    let out = ledger.client(&[
        "--json",
        "bench",
        "--key",
        agency.to_str().unwrap(),
        "--employers",
        "3",
        "--lines",
        "7",
        "--declarations",
        "12",
        "--concurrency",
        "2",
        "--batch",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON report");
    assert_eq!(report["declarations"], 12);
    assert_eq!(report["lines"], 84);
    assert_eq!(report["refused"], 0);
    assert_eq!(report["requests"], 6);
    assert!(
        report["latency_ms_p99"].as_f64().unwrap() >= report["latency_ms_p50"].as_f64().unwrap()
    );
    // 3 key registrations + 21 persons + 12 declarations.
    assert_eq!(ledger.log_size() - before, 3 + 21 + 12);
}

#[test]
fn a_preloaded_run_is_read_back_by_the_query_mode() {
    let ledger = TestLedger::start();
    let before = ledger.log_size();
    let agency = ledger.key_path("CN-44");
    let agency = agency.to_str().unwrap();
    let out = ledger.client(&[
        "--json",
        "bench",
        "--mode",
        "preload",
        "--key",
        agency,
        "--workers",
        "10",
        "--lines",
        "4",
        "--months",
        "3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let preload: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON report");
    // 10 workers in employers of 4: 3 employers (12 workers), 3 months each.
    assert_eq!(preload["employers"], 3);
    assert_eq!(preload["declarations"], 9);
    assert_eq!(preload["refused"], 0);
    assert_eq!(ledger.log_size() - before, 3 + 12 + 9);
    let run_id = preload["run_id"].as_str().expect("run id");

    let out = ledger.client(&[
        "--json",
        "bench",
        "--mode",
        "query",
        "--key",
        agency,
        "--run-id",
        run_id,
        "--employers",
        "3",
        "--lines",
        "4",
        "--months",
        "3",
        "--queries",
        "30",
        "--concurrency",
        "3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON report");
    assert_eq!(report["queries"], 30);
    assert_eq!(report["errors"], 0, "every preloaded worker is found");
    for kind in ["entitlement", "coverage", "events"] {
        assert_eq!(report[kind]["count"], 10, "{kind}");
        assert!(
            report[kind]["p99_ms"].as_f64().unwrap() >= report[kind]["p50_ms"].as_f64().unwrap()
        );
    }
    assert_eq!(
        ledger.log_size() - before,
        3 + 12 + 9,
        "queries append nothing"
    );

    // A run id nobody preloaded: every query fails, and the exit code says so.
    let out = ledger.client(&[
        "--json",
        "bench",
        "--mode",
        "query",
        "--key",
        agency,
        "--run-id",
        "nobody",
        "--employers",
        "1",
        "--lines",
        "1",
        "--months",
        "1",
        "--queries",
        "3",
    ]);
    assert!(!out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON report");
    assert_eq!(report["errors"], 3);
}
