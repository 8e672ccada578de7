//! The foundation's end-to-end contract against a real node process: valid events are appended
//! and read back; every validation rule of docs/events.md refuses its bad input with its reason and
//! appends nothing; resubmission is idempotent.

use ledger_client::{Client, SubmitOutcome};
use ledger_core::envelope::Envelope;
use ledger_core::event::EventBody;
use ledger_core::json::parse_json_event;
use ledger_core::limits::MAX_BATCH_LINES;
use ledger_core::pb;
use ledger_tests::*;

const EMPLOYER: &str = "91440300MA5GTEST";

/// A ledger with an employer key (CN-44), a worker key for W-1, and persons W-1 and W-2.
struct World {
    ledger: TestLedger,
    employer_key: std::path::PathBuf,
    worker_key: std::path::PathBuf,
}

fn world() -> World {
    let ledger = TestLedger::start();
    let (employer_key, employer_pub) = ledger.keygen("employer");
    ledger.register_key("CN-44", "employer", EMPLOYER, &employer_pub);
    let (worker_key, worker_pub) = ledger.keygen("worker");
    ledger.register_key("CN-44", "worker", "W-1", &worker_pub);
    let agency = ledger.key_path("CN-44");
    let out = ledger.submit(
        &[&agency],
        &[person("W-1", "CN-44"), person("W-2", "CN-44")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    World {
        ledger,
        employer_key,
        worker_key,
    }
}

/// Submits one line and asserts it is refused with `code`, appending nothing.
fn assert_refused(w: &World, key: &std::path::Path, line: String, code: &str) {
    let before = w.ledger.log_size();
    let out = w.ledger.submit(&[key], std::slice::from_ref(&line));
    assert!(
        !out.status.success(),
        "accepted but should be refused [{code}]: {line}"
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!("[{code}]")),
        "expected refusal [{code}] for {line}, got: {err}"
    );
    assert!(err.contains("line 1"), "the refusal names the line: {err}");
    let r = receipts(&out);
    assert_eq!(r[0]["refused"]["code"], code);
    assert_eq!(
        w.ledger.log_size(),
        before,
        "a refused event must append nothing"
    );
}

#[test]
fn a_declaration_is_appended_and_each_worker_reads_only_their_own_line() {
    let w = world();
    let out = w.ledger.submit(
        &[&w.employer_key],
        &[declaration(
            EMPLOYER,
            "CN-44",
            "2024-01",
            &["W-1", "W-2"],
            "5000.00",
        )],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let r = receipts(&out);
    assert_eq!(r.len(), 1);
    let index = r[0]["index"].as_u64().unwrap();
    assert_eq!(index, w.ledger.log_size());

    // The worker reads back the declaration: their own line only, proven against the signed root.
    let out = w.ledger.client(&[
        "--json",
        "events",
        "W-1",
        "--key",
        w.worker_key.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("W-2"),
        "another worker's line leaked: {text}"
    );
    let events = receipts(&out);
    let decl = events
        .iter()
        .find(|e| e["event"]["type"] == "contributions_declared")
        .expect("declaration listed");
    assert_eq!(decl["index"].as_u64(), Some(index));
    assert_eq!(decl["event"]["lines"].as_array().unwrap().len(), 1);
    assert_eq!(decl["event"]["lines"][0]["worker"], "W-1");
    assert_eq!(decl["event"]["lines"][0]["base"], "5000.00");
    assert_eq!(decl["event_id"], r[0]["event_id"]);

    // An agency reads any worker; a worker cannot read another worker.
    let agency = w.ledger.key_path("CN-33");
    let out = w
        .ledger
        .client(&["--json", "events", "W-2", "--key", agency.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("W-2"));
    let out = w
        .ledger
        .client(&["events", "W-2", "--key", w.worker_key.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("PermissionDenied"),
        "{}",
        stderr(&out)
    );
    // An unknown worker: exit code 3 and the worker named.
    let out = w
        .ledger
        .client(&["events", "W-404", "--key", agency.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("W-404"));
}

#[test]
fn every_validation_rule_refuses_and_appends_nothing() {
    let w = world();
    let emp = w.employer_key.clone();
    let decl = |period: &str, base: &str| declaration(EMPLOYER, "CN-44", period, &["W-1"], base);

    // Unknown key: a key nobody registered.
    let (stranger, _) = w.ledger.keygen("stranger");
    assert_refused(&w, &stranger, decl("2024-01", "5000.00"), "unknown_key");
    // Wrong role: a worker key cannot declare contributions.
    assert_refused(&w, &w.worker_key, decl("2024-01", "5000.00"), "wrong_role");
    // Wrong jurisdiction: an employer key of CN-33 declaring in CN-44.
    let (cn33, cn33_pub) = w.ledger.keygen("cn33-employer");
    w.ledger
        .register_key("CN-33", "employer", EMPLOYER, &cn33_pub);
    assert_refused(&w, &cn33, decl("2024-01", "5000.00"), "wrong_jurisdiction");
    // Wrong jurisdiction: an agency registering a key for another jurisdiction.
    let cn33_agency = w.ledger.key_path("CN-33");
    let (_, other_pub) = w.ledger.keygen("other");
    let reg = format!(
        r#"{{"type":"key_registered","jurisdiction":"CN-44","role":"employer","subject":"X","public_key":"{other_pub}"}}"#
    );
    assert_refused(&w, &cn33_agency, reg, "wrong_jurisdiction");
    // Negative amount.
    assert_refused(&w, &emp, decl("2024-01", "-5000.00"), "negative_amount");
    // Not a whole number of minor units, an impossible month: refused before signing.
    assert_refused(&w, &emp, decl("2024-01", "5000.001"), "invalid_event");
    assert_refused(&w, &emp, decl("2024-13", "5000.00"), "invalid_event");
    // A date that does not exist.
    let bad_date = person("W-9", "CN-44").replace("1980-05-01", "2023-02-29");
    assert_refused(&w, &w.ledger.key_path("CN-44"), bad_date, "invalid_event");
    // Months after the current month, or before 1951-01.
    assert_refused(&w, &emp, decl("2999-01", "5000.00"), "in_future");
    assert_refused(&w, &emp, decl("1950-12", "5000.00"), "too_early");
    // Unregistered worker.
    assert_refused(
        &w,
        &emp,
        declaration(EMPLOYER, "CN-44", "2024-01", &["W-404"], "5000.00"),
        "unregistered_worker",
    );
    // Unknown type, missing and extra fields.
    assert_refused(
        &w,
        &emp,
        r#"{"type":"payroll_party","employer":"X"}"#.into(),
        "invalid_event",
    );
    assert_refused(
        &w,
        &emp,
        decl("2024-01", "5000.00").replace(r#""period":"2024-01","#, ""),
        "invalid_event",
    );
    assert_refused(
        &w,
        &emp,
        decl("2024-01", "5000.00").replace(r#""period""#, r#""colour":"red","period""#),
        "invalid_event",
    );
    // An id over 64 bytes.
    assert_refused(
        &w,
        &emp,
        declaration(&"E".repeat(65), "CN-44", "2024-01", &["W-1"], "5000.00"),
        "invalid_event",
    );
    // Signed more than five minutes ahead of the ledger clock.
    let ahead =
        decl("2024-01", "5000.00").replacen('{', r#"{"signed_at":"2999-01-01T00:00:00Z","#, 1);
    assert_refused(&w, &emp, ahead, "signed_in_future");
    // An order completed before it was accepted.
    let (platform, platform_pub) = w.ledger.keygen("platform");
    w.ledger
        .register_key("CN-44", "platform", "Meituan", &platform_pub);
    let orders = r#"{"type":"platform_orders","platform":"Meituan","jurisdiction":"CN-44","date":"2024-03-15","lines":[{"worker":"W-1","order":"M1","accepted_at":"2024-03-15T14:20:00+08:00","completed_at":"2024-03-15T14:00:00+08:00","premium":"0.50"}]}"#;
    assert_refused(&w, &platform, orders.into(), "impossible_period");

    // Duplicate declaration: the first is appended, the second refused; back_pay is accepted.
    let out = w.ledger.submit(&[&emp], &[decl("2024-02", "5000.00")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_refused(
        &w,
        &emp,
        decl("2024-02", "6000.00"),
        "duplicate_declaration",
    );
    let back_pay = decl("2024-02", "6000.00").replace(r#""lines""#, r#""back_pay":true,"lines""#);
    let out = w.ledger.submit(&[&emp], &[back_pay]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Revoked key: revoke the employer key, then it can no longer sign.
    let employer_pub = ledger_client::keys::load(&emp)
        .unwrap()
        .verifying_key()
        .to_bytes();
    let revoke = format!(
        r#"{{"type":"key_revoked","public_key":"{}","reason":"left the company"}}"#,
        hex::encode(employer_pub)
    );
    let out = w.ledger.submit(&[&w.ledger.key_path("CN-44")], &[revoke]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_refused(&w, &emp, decl("2024-03", "5000.00"), "revoked_key");
}

/// Submits raw envelopes through the SDK (for inputs the CLI would never produce).
fn submit_raw(
    url: &str,
    envelopes: Vec<pb::Envelope>,
) -> Result<Vec<SubmitOutcome>, ledger_client::ClientError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = Client::connect(url).await?;
        let envs = envelopes
            .into_iter()
            .map(|e| Envelope::from_pb(e).unwrap())
            .collect();
        c.submit(envs).await
    })
}

fn refused_code(o: &SubmitOutcome) -> &str {
    match o {
        SubmitOutcome::Refused { code, .. } => code,
        SubmitOutcome::Accepted { .. } => panic!("accepted but should be refused"),
    }
}

fn signed(w: &World, line: &str) -> Envelope {
    let (kind, _) = parse_json_event(line).unwrap();
    let key = ledger_client::keys::load(&w.employer_key).unwrap();
    let body = EventBody {
        signed_at: ledger_client::jsonl::now(),
        kind,
    };
    Envelope::sign(&w.ledger.ledger_id(), &body, &[&key])
}

#[test]
fn bad_signatures_malformed_bytes_and_oversize_batches_are_refused() {
    let w = world();
    let before = w.ledger.log_size();
    let good = signed(
        &w,
        &declaration(EMPLOYER, "CN-44", "2024-01", &["W-1"], "5000.00"),
    );

    let mut bad_sig = good.to_pb();
    bad_sig.signatures[0].signature[0] ^= 1;
    let mut tampered_body = good.to_pb();
    let last = tampered_body.body.len() - 1;
    tampered_body.body[last] ^= 1;
    let garbage = pb::Envelope {
        body: vec![0xff, 0xff, 0xff],
        lines: vec![],
        signatures: good.to_pb().signatures,
    };
    let mut tampered_line = good.to_pb();
    tampered_line.lines[0][5] ^= 1;
    let unsigned = pb::Envelope {
        signatures: vec![],
        ..good.to_pb()
    };

    let out = submit_raw(
        &w.ledger.url(),
        vec![bad_sig, tampered_body, garbage, tampered_line, unsigned],
    )
    .unwrap();
    assert_eq!(refused_code(&out[0]), "bad_signature");
    assert!(matches!(
        refused_code(&out[1]),
        "bad_signature" | "malformed" | "non_canonical" | "invalid_field"
    ));
    assert_eq!(refused_code(&out[2]), "malformed");
    assert_eq!(
        refused_code(&out[3]),
        "malformed",
        "a line that does not match the signed root"
    );
    assert_eq!(refused_code(&out[4]), "unsigned");

    // One line over the batch limit.
    let workers: Vec<String> = (0..=MAX_BATCH_LINES).map(|i| format!("W-{i}")).collect();
    let refs: Vec<&str> = workers.iter().map(String::as_str).collect();
    let big = signed(
        &w,
        &declaration(EMPLOYER, "CN-44", "2024-01", &refs, "1.00"),
    );
    let out = submit_raw(&w.ledger.url(), vec![big.to_pb()]).unwrap();
    assert_eq!(refused_code(&out[0]), "too_large");
    assert_eq!(w.ledger.log_size(), before, "nothing appended");

    // The untouched envelope is still accepted: the refusals were about the damage.
    let out = submit_raw(&w.ledger.url(), vec![good.to_pb()]).unwrap();
    assert!(matches!(
        out[0],
        SubmitOutcome::Accepted {
            already_recorded: false,
            ..
        }
    ));
}

#[test]
fn resubmitting_the_same_event_is_idempotent() {
    let w = world();
    // Fixed signed_at and salt: the same line signs to the same bytes, hence the same event id.
    let line = declaration(EMPLOYER, "CN-44", "2024-01", &["W-1"], "5000.00")
        .replacen('{', r#"{"signed_at":"2024-02-01T09:00:00+08:00","#, 1)
        .replace(
            r#""worker":"W-1""#,
            r#""salt":"000102030405060708090a0b0c0d0e0f","worker":"W-1""#,
        );
    let first = w
        .ledger
        .submit(&[&w.employer_key], std::slice::from_ref(&line));
    assert!(first.status.success(), "{}", stderr(&first));
    let size = w.ledger.log_size();
    let second = w.ledger.submit(&[&w.employer_key], &[line.clone(), line]);
    assert!(
        second.status.success(),
        "a resubmission is not an error: {}",
        stderr(&second)
    );
    let (a, b) = (receipts(&first), receipts(&second));
    for r in &b {
        assert_eq!(r["event_id"], a[0]["event_id"]);
        assert_eq!(r["index"], a[0]["index"]);
        assert_eq!(
            r["appended_at"], a[0]["appended_at"],
            "the first receipt is returned"
        );
        assert_eq!(r["duplicate"], true);
    }
    assert_eq!(w.ledger.log_size(), size, "nothing appended twice");
}
