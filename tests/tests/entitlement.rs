//! The projection end to end, through the real binaries: a career submitted with
//! `ledger-client submit`, then `entitlement` and `coverage` exactly as docs/cli.md gives them (JSON
//! form, exit codes, who may read), a rebuild of the projection, and on a 3-node cluster every
//! node answering the same.

use std::process::Output;

use ledger_tests::*;

const E44: &str = "91440300MA5GE44";
const E33: &str = "91330100MA5GE33";

fn months(employer: &str, j: &str, worker: &str, from: (i32, u32), count: u32) -> Vec<String> {
    (0..count)
        .map(|i| {
            let o = from.0 * 12 + from.1 as i32 - 1 + i as i32;
            let period = format!("{:04}-{:02}", o / 12, o % 12 + 1);
            declaration(employer, j, &period, &[worker], "5000.00")
        })
        .collect()
}

fn transfer_requested() -> String {
    r#"{"type":"transfer_requested","transfer":"T-E1","worker":"W-E","from":"CN-44","to":"CN-33","requested":"2015-01"}"#.into()
}

fn transfer_completed(account: &str, pooled: &str) -> String {
    format!(
        r#"{{"type":"transfer_completed","transfer":"T-E1","individual_account":"{account}","pooled_fund":"{pooled}"}}"#
    )
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

/// W-E (born 1980-05, hukou CN-51): CN-44 2010-01..2014-12 (60 months, base 5000, employee
/// 400), transfer to CN-33 in 2015-01, CN-33 2015-01..2016-12 (24 months).
fn submit_career(ledger: &TestLedger) {
    let (k44, p44) = ledger.keygen("e44");
    ledger.register_key("CN-44", "employer", E44, &p44);
    let (k33, p33) = ledger.keygen("e33");
    ledger.register_key("CN-33", "employer", E33, &p33);
    let a44 = ledger.key_path("CN-44");
    let a33 = ledger.key_path("CN-33");
    let ok = |o: Output| assert!(o.status.success(), "{}", stderr(&o));
    ok(ledger.submit(&[&a44], &[person("W-E", "CN-44")]));
    ok(ledger.submit(&[&k44], &months(E44, "CN-44", "W-E", (2010, 1), 60)));
    ok(ledger.submit(&[&a33], &[transfer_requested()]));
    // The ledger computes what the transfer carries: 60 × 400 = 24000.00 of account, and
    // 12% × 60 × 5000 = 36000.00 of pooled fund. Anything else is refused.
    let wrong = ledger.submit(&[&a44], &[transfer_completed("24000.00", "30000.00")]);
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("[amount_mismatch]"),
        "{}",
        stderr(&wrong)
    );
    assert!(
        stderr(&wrong).contains("36000.00"),
        "the refusal says the right amount"
    );
    ok(ledger.submit(&[&a44], &[transfer_completed("24000.00", "36000.00")]));
    ok(ledger.submit(&[&k33], &months(E33, "CN-33", "W-E", (2015, 1), 24)));
}

#[test]
fn entitlement_and_coverage_through_the_cli() {
    let mut ledger = TestLedger::start();
    submit_career(&ledger);
    let agency = ledger.key_path("CN-44");
    let agency = agency.to_str().unwrap();
    let out = ledger.client(&[
        "--json",
        "entitlement",
        "W-E",
        "--key",
        agency,
        "--as-of",
        "2026-01-01",
    ]);
    let e = json_of(&out);
    assert_eq!(e["worker"], "W-E");
    assert_eq!(e["as_of"], "2026-01-01");
    let p = &e["pension"];
    assert_eq!(p["insured_months"], 84);
    assert_eq!(
        p["months_by_jurisdiction"],
        serde_json::json!({"CN-33": 24, "CN-44": 60})
    );
    assert_eq!(p["duplicate_months"], serde_json::json!([]));
    assert_eq!(p["relation_jurisdiction"], "CN-33");
    // 84 × 400 = 33600.00
    assert_eq!(p["individual_account"], "33600.00");
    assert_eq!(
        p["transfers"],
        serde_json::json!([{"from": "CN-44", "to": "CN-33", "period": "2015-01",
                            "individual_account": "24000.00", "pooled_fund": "36000.00"}])
    );
    // Born 1980-05: 184 months after 1965-01 → 47 months of delay, capped at 36: 63 y 0 m, in
    // 2043-05. Retiring in 2043 needs 240 months: 156 short.
    assert_eq!(p["retirement_month"], "2043-05");
    assert_eq!(
        p["retirement_age"],
        serde_json::json!({"years": 63, "months": 0})
    );
    assert_eq!(p["minimum_months"], 240);
    assert_eq!(p["vested"], false);
    assert_eq!(p["shortfall_months"], 156);
    // No province holds 120 months: the claim falls to the hukou province, CN-51, and the
    // relation moves there with 33600.00 and 12% × 84 × 5000 = 50400.00.
    assert_eq!(p["claim_jurisdiction"], "CN-51");
    assert_eq!(
        p["claim_transfer"],
        serde_json::json!({"from": "CN-33", "to": "CN-51", "individual_account": "33600.00",
                           "pooled_fund": "50400.00", "temporary_accounts": []})
    );
    assert_eq!(p["estimated_monthly"], serde_json::Value::Null);
    assert_eq!(e["postings"], serde_json::json!([]));
    assert_eq!(e["flags"], serde_json::json!([]));

    // The text form says the same for a person.
    let text = ledger.client(&[
        "entitlement",
        "W-E",
        "--key",
        agency,
        "--as-of",
        "2026-01-01",
    ]);
    assert!(text.status.success(), "{}", stderr(&text));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("CN-51") && text.contains("33600.00"),
        "{text}"
    );

    // Unknown worker: exit code 3, and the error names the worker.
    let unknown = ledger.client(&["entitlement", "W-NOBODY", "--key", agency]);
    assert_eq!(unknown.status.code(), Some(3), "{}", stderr(&unknown));
    assert!(stderr(&unknown).contains("W-NOBODY"));

    // Another worker's key may not read W-E's rights.
    let (wk, wp) = ledger.keygen("other-worker");
    ledger.register_key("CN-44", "worker", "W-OTHER", &wp);
    let denied = ledger.client(&["entitlement", "W-E", "--key", wk.to_str().unwrap()]);
    assert!(!denied.status.success());
    assert_ne!(denied.status.code(), Some(3));
    assert!(
        stderr(&denied).contains("PermissionDenied"),
        "{}",
        stderr(&denied)
    );

    // Coverage: no contract, no insured injury month, no order: nothing answers.
    let cov = json_of(&ledger.client(&[
        "--json",
        "coverage",
        "W-E",
        "--key",
        agency,
        "--at",
        "2024-03-15T14:20:00+08:00",
        "--jurisdiction",
        "CN-44",
    ]));
    assert_eq!(
        cov,
        serde_json::json!({"worker": "W-E", "at": "2024-03-15T14:20:00+08:00",
            "jurisdiction": "CN-44", "covered": false, "basis": "none", "payer": "none",
            "insurer": null, "platform": null, "order": null})
    );

    // A rebuild of the projection from the log gives the same answer.
    assert!(ledger.stop().success());
    let rebuild = std::process::Command::new(&binaries().node)
        .args(["rebuild-projections", "--config"])
        .arg(ledger.path().join("node.toml"))
        .output()
        .unwrap();
    assert!(rebuild.status.success(), "{}", stderr(&rebuild));
    assert!(
        stderr(&rebuild).contains("projection rebuilt"),
        "{}",
        stderr(&rebuild)
    );
    ledger.spawn();
    let again = json_of(&ledger.client(&[
        "--json",
        "entitlement",
        "W-E",
        "--key",
        agency,
        "--as-of",
        "2026-01-01",
    ]));
    assert_eq!(again, e);
}

#[test]
fn every_node_of_a_cluster_answers_the_same_entitlement() {
    let cluster = TestCluster::start(3);
    for i in 0..3 {
        wait_for("a leader", || cluster.leader_seen_by(i).is_some());
    }
    let agency = cluster.key_path("CN-44");
    let out = cluster.submit(1, &agency, &[person("W-C", "CN-44")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let flexible: Vec<String> = (1..=12)
        .map(|m| format!(r#"{{"type":"flexible_contribution","worker":"W-C","jurisdiction":"CN-44","period":"2024-{m:02}","scheme":"pension","base":"4000.00","amount":"800.00"}}"#))
        .collect();
    let out = cluster.submit(2, &agency, &flexible);
    assert!(out.status.success(), "{}", stderr(&out));
    let size = cluster.status(2).unwrap()["log_size"].as_u64().unwrap();
    let answers: Vec<serde_json::Value> = (0..3)
        .map(|i| {
            wait_for("the node to apply the whole log", || {
                cluster.status(i).and_then(|s| s["log_size"].as_u64()) == Some(size)
            });
            json_of(&client(
                &cluster.url(i),
                &[
                    "--json",
                    "entitlement",
                    "W-C",
                    "--key",
                    agency.to_str().unwrap(),
                    "--as-of",
                    "2025-01-01",
                ],
            ))
        })
        .collect();
    // Flexible workers credit 8% of the base to the account: 12 × 320.00 = 3840.00.
    assert_eq!(answers[0]["pension"]["individual_account"], "3840.00");
    assert_eq!(answers[0]["pension"]["insured_months"], 12);
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[1], answers[2]);
}
