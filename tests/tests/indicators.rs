//! Coverage indicators end to end (docs/rules.md §4, `indicators` of docs/cli.md): persons and payroll
//! submitted with the real `ledger-client`, then `indicators` read with an agency key (JSON and
//! text), small cells suppressed, and a worker's key refused.

use std::process::Output;

use ledger_tests::*;

const E44: &str = "91440300MA5GI44";

fn person_of(worker: &str, sex: &str, hukou: &str) -> String {
    let category = if sex == "F" {
        r#","female_category":55"#
    } else {
        ""
    };
    format!(
        r#"{{"type":"person_registered","worker":"{worker}","jurisdiction":"CN-44","sex":"{sex}","birth_date":"1990-06-15"{category},"nationality":"CN","hukou":"{hukou}"}}"#
    )
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

fn cell<'a>(
    d: &'a serde_json::Value,
    scheme: &str,
    dimension: &str,
    value: &str,
) -> &'a serde_json::Value {
    d["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .find(|c| c["scheme"] == scheme && c["dimension"] == dimension && c["value"] == value)
        .unwrap_or_else(|| panic!("no cell {scheme} {dimension} {value} in {d}"))
}

#[test]
fn indicators_through_the_cli() {
    let ledger = TestLedger::start();
    let (k44, p44) = ledger.keygen("e44");
    ledger.register_key("CN-44", "employer", E44, &p44);
    let agency = ledger.key_path("CN-44");
    let ok = |o: Output| assert!(o.status.success(), "{}", stderr(&o));

    // Six women with hukou CN-44 and six men with hukou CN-51, all registered in CN-44.
    let women: Vec<String> = (0..6).map(|i| format!("W-F{i}")).collect();
    let men: Vec<String> = (0..6).map(|i| format!("W-M{i}")).collect();
    let persons: Vec<String> = women
        .iter()
        .map(|w| person_of(w, "F", "CN-44"))
        .chain(men.iter().map(|w| person_of(w, "M", "CN-51")))
        .collect();
    ok(ledger.submit(&[&agency], &persons));
    // January 2024: pension for the six women and five of the men; injury for one woman only.
    let insured: Vec<&str> = women
        .iter()
        .chain(men.iter().take(5))
        .map(String::as_str)
        .collect();
    let injury = format!(
        r#"{{"type":"contributions_declared","employer":"{E44}","jurisdiction":"CN-44","period":"2024-01","lines":[{{"worker":"W-F0","scheme":"injury","base":"5000.00","employer_amount":"20.00","employee_amount":"0.00"}}]}}"#
    );
    ok(ledger.submit(
        &[&k44],
        &[
            declaration(E44, "CN-44", "2024-01", &insured, "5000.00"),
            injury,
        ],
    ));

    let agency = agency.to_str().unwrap();
    let d = json_of(&ledger.client(&[
        "--json",
        "indicators",
        "--key",
        agency,
        "--period",
        "2024-01",
        "--jurisdiction",
        "CN-44",
    ]));
    assert_eq!(d["period"], "2024-01");
    assert_eq!(d["jurisdiction"], "CN-44");
    assert_eq!(d["minimum_cell"], 5);
    // 11 of 12 insured: 0.916667.
    assert_eq!(
        cell(&d, "pension", "all", "all"),
        &serde_json::json!({"scheme": "pension", "dimension": "all", "value": "all",
            "suppressed": false, "insured": 11, "population": 12, "rate": "0.916667"})
    );
    let counts = |c: &serde_json::Value| (c["insured"].clone(), c["population"].clone());
    assert_eq!(
        counts(cell(&d, "pension", "sex", "F")),
        (6.into(), 6.into())
    );
    assert_eq!(
        counts(cell(&d, "pension", "sex", "M")),
        (5.into(), 6.into())
    );
    assert_eq!(
        counts(cell(&d, "pension", "hukou", "local")),
        (6.into(), 6.into())
    );
    assert_eq!(
        counts(cell(&d, "pension", "hukou", "other_province")),
        (5.into(), 6.into())
    );
    assert_eq!(
        counts(cell(&d, "pension", "age_band", "25-34")),
        (11.into(), 12.into())
    );
    // One injury-insured worker: that cell and every injury cell that would show it are hidden.
    let inj = cell(&d, "injury", "all", "all");
    assert_eq!(inj["suppressed"], true);
    assert_eq!(inj["insured"], serde_json::Value::Null);
    assert_eq!(inj["population"], serde_json::Value::Null);
    assert!(d["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["scheme"] == "injury")
        .all(|c| c["suppressed"] == true && c["insured"].is_null()));
    assert!(d["suppressed"].as_u64().unwrap() > 0);

    // The whole ledger says the same here, with a null scope.
    let all = json_of(&ledger.client(&[
        "--json",
        "indicators",
        "--key",
        agency,
        "--period",
        "2024-01",
    ]));
    assert_eq!(all["jurisdiction"], serde_json::Value::Null);
    assert_eq!(all["cells"], d["cells"]);

    // The text form, for people.
    let text = ledger.client(&["indicators", "--key", agency, "--period", "2024-01"]);
    assert!(text.status.success(), "{}", stderr(&text));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("pension") && text.contains("0.916667") && text.contains("suppressed"),
        "{text}"
    );

    // A worker's key (even a registered one) may not read indicators.
    let (wk, wp) = ledger.keygen("worker");
    ledger.register_key("CN-44", "worker", "W-F0", &wp);
    let denied = ledger.client(&[
        "--json",
        "indicators",
        "--key",
        wk.to_str().unwrap(),
        "--period",
        "2024-01",
    ]);
    assert!(!denied.status.success());
    assert!(
        stderr(&denied).contains("PermissionDenied") && stderr(&denied).contains("agency"),
        "{}",
        stderr(&denied)
    );
    // Under --json, stdout holds the error document and no indicators.
    let doc: serde_json::Value = serde_json::from_slice(&denied.stdout).expect("one JSON document");
    assert_eq!(doc["error"]["code"], "permission_denied", "{doc}");
    assert_eq!(denied.status.code(), Some(5));

    // A malformed month is refused with a message naming it.
    let bad = ledger.client(&["indicators", "--key", agency, "--period", "2024-13"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("period"), "{}", stderr(&bad));
}
