//! The worker's and the agency's pages in a real browser: headless Chromium against a real node
//! over TLS, the key given in the page's address fragment (read by the page, wiped from the
//! address bar, never sent). Checks the text the pages show and keeps screenshots at desktop
//! and phone widths in `target/tmp/pages/`. Without Chromium the test says it did not run;
//! `LEDGER_REQUIRE_CHROMIUM=1` (set by `.ci/run`, which installs it) makes that a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use ledger_tests::*;

const EMPLOYER: &str = "91440300MA5GPAGE";

fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("LEDGER_REQUIRE_CHROMIUM").is_none(),
            "LEDGER_REQUIRE_CHROMIUM is set but chromium is not on PATH (apt-get install chromium)"
        );
        eprintln!("NOT RUN: chromium is not on PATH (apt-get install chromium); the pages were not tested in a browser");
    }
    found
}

/// Chromium's arguments for one headless page load that lets the page's scripts finish.
fn headless(profile: &Path, size: (u32, u32)) -> Vec<String> {
    vec![
        "--headless".into(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--no-first-run".into(),
        // The node's certificate is self-signed (clients pin its key; a browser cannot).
        "--ignore-certificate-errors".into(),
        format!("--user-data-dir={}", profile.display()),
        format!("--window-size={},{}", size.0, size.1),
        "--virtual-time-budget=30000".into(),
    ]
}

/// The page's DOM once its scripts ran, and screenshots at desktop and phone widths.
fn visit(browser: &Path, url: &str, name: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args(headless(profile.path(), (1280, 900)))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pages");
    std::fs::create_dir_all(&shots).unwrap();
    for (label, size) in [("desktop", (1280, 1400)), ("phone", (390, 1400))] {
        let file = shots.join(format!("{name}-{label}.png"));
        let _ = std::fs::remove_file(&file);
        let shot = Command::new(browser)
            .args(headless(profile.path(), size))
            .arg(format!("--screenshot={}", file.display()))
            .arg(url)
            .output()
            .expect("run chromium");
        assert!(
            file.exists(),
            "no screenshot {}: {}",
            file.display(),
            String::from_utf8_lossy(&shot.stderr)
        );
    }
    dom
}

/// The markup of the element with `id` in a dumped DOM (up to its closing tag).
fn element(dom: &str, id: &str) -> String {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in:\n{dom}"));
    let end = dom[start..].find("</").map_or(dom.len(), |e| start + e);
    dom[start..end].to_string()
}

/// Text as a fragment parameter: base64, percent-encoded.
fn fragment(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .encode(text)
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

fn seed_hex(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

#[test]
fn the_worker_and_agency_pages_show_the_record_in_a_browser() {
    let Some(browser) = chromium() else { return };
    let http = free_port();
    let ledger = TestLedger::start_with(&format!("http_listen = \"127.0.0.1:{http}\""));
    let (employer, public) = ledger.keygen("employer");
    ledger.register_key("CN-44", "employer", EMPLOYER, &public);
    let (worker_key, worker_public) = ledger.keygen("worker");
    ledger.register_key("CN-44", "worker", "W-PAGE", &worker_public);
    let ok = |o: std::process::Output| assert!(o.status.success(), "{}", stderr(&o));
    ok(ledger.submit(&[&ledger.key_path("CN-44")], &[person("W-PAGE", "CN-44")]));
    for period in ["2022-11", "2022-12", "2023-01"] {
        ok(ledger.submit(
            &[&employer],
            &[declaration(
                EMPLOYER,
                "CN-44",
                period,
                &["W-PAGE"],
                "6000.00",
            )],
        ));
    }
    let base = format!("https://127.0.0.1:{http}");

    // The worker, with their own key.
    let dom = visit(
        &browser,
        &format!(
            "{base}/#worker=W-PAGE&key={}&as_of=2024-01-01",
            seed_hex(&worker_key)
        ),
        "worker",
    );
    assert!(
        dom.contains("CN-44 (3)"),
        "the timeline shows 3 months in CN-44:\n{dom}"
    );
    assert!(
        dom.contains("3 (CN-44: 3)"),
        "insured months by place:\n{dom}"
    );
    assert!(dom.contains("Claim province"), "{dom}");
    // Injury coverage now, asked where the worker last contributed (nothing covers them today:
    // their last month is 2023-01 and they hold no contract).
    assert!(
        dom.contains("Injury coverage now · 当前工伤保险 (CN-44)"),
        "{dom}"
    );
    assert!(dom.contains("not covered now"), "{dom}");
    assert_eq!(
        dom.matches("class=\"paid\"").count(),
        3,
        "three paid months:\n{dom}"
    );
    assert!(!dom.contains("class=\"error\""), "{dom}");

    // Someone else's key reads nothing: the page says why.
    let (stranger, _) = ledger.keygen("stranger");
    let dom = visit(
        &browser,
        &format!("{base}/#worker=W-PAGE&key={}", seed_hex(&stranger)),
        "worker-refused",
    );
    assert!(
        dom.contains("class=\"error\""),
        "a refusal is shown:\n{dom}"
    );
    assert!(!dom.contains("CN-44 (3)"), "{dom}");

    // A statement opened in the page is checked there, offline, by ledger-core's own code
    // (WebAssembly); a shortened one is refused with the reason.
    let statement = ledger.path().join("statement.json");
    ok(ledger.client(&[
        "statement",
        "W-PAGE",
        "--key",
        worker_key.to_str().unwrap(),
        "--out",
        statement.to_str().unwrap(),
    ]));
    let node_pub = std::fs::read_to_string(ledger.path().join("data").join("node.pub")).unwrap();
    let trust = format!("CN-44 {}\n", node_pub.trim());
    let text = std::fs::read_to_string(&statement).unwrap();
    let open = |statement: &str, name: &str| {
        visit(
            &browser,
            &format!(
                "{base}/#statement={}&trust={}",
                fragment(statement),
                fragment(&trust)
            ),
            name,
        )
    };
    let dom = open(&text, "statement");
    let verdict = element(&dom, "verdict");
    assert!(
        verdict.contains("VALID · 核验通过: worker · 人员 W-PAGE, 4 events"),
        "{verdict}"
    );
    assert!(
        dom.contains("CN-44 (3)"),
        "the proven months on the timeline:\n{dom}"
    );
    let mut shortened: serde_json::Value = serde_json::from_str(&text).unwrap();
    shortened["events"].as_array_mut().unwrap().pop();
    let dom = open(&shortened.to_string(), "statement-refused");
    assert!(
        dom.contains("NOT VALID"),
        "a shortened statement is refused:\n{dom}"
    );
    assert!(!dom.contains("CN-44 (3)"), "{dom}");

    // The agency: one worker in scope, below the minimum cell, so every cell is suppressed and
    // none is shown as zero.
    let agency = seed_hex(&ledger.key_path("CN-44"));
    let dom = visit(
        &browser,
        &format!("{base}/agency#period=2023-01&key={agency}"),
        "agency",
    );
    assert!(
        dom.contains("bar suppressed"),
        "suppressed cells are shown as such:\n{dom}"
    );
    assert!(
        !dom.contains("0.0%"),
        "no suppressed cell is shown as zero:\n{dom}"
    );
    assert!(dom.contains("minimum cell"), "{dom}");
}
