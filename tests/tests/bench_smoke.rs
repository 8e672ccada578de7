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
