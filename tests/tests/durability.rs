//! Nothing acknowledged is lost: SIGKILL under load, then restart, and every acknowledged event
//! is still there; a damaged store is detected at start-up and never served.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ledger_client::{Client, SubmitOutcome};
use ledger_core::envelope::{Envelope, LedgerId};
use ledger_core::event::{parse_json_event, EventBody, Hash32};
use ledger_tests::*;

const EMPLOYER: &str = "91440300MADURABLE";

fn setup() -> (TestLedger, ed25519_dalek::SigningKey) {
    let ledger = TestLedger::start();
    let (key_path, public) = ledger.keygen("employer");
    ledger.register_key("CN-44", "employer", EMPLOYER, &public);
    let workers: Vec<String> = (0..50)
        .map(|i| person(&format!("W-{i}"), "CN-44"))
        .collect();
    let out = ledger.submit(&[&ledger.key_path("CN-44")], &workers);
    assert!(out.status.success(), "{}", stderr(&out));
    (ledger, ledger_client::keys::load(&key_path).unwrap())
}

/// The declaration of worker `w` for month `m` (a distinct event for each pair).
fn envelope(ledger: &LedgerId, key: &ed25519_dalek::SigningKey, w: usize, m: usize) -> Envelope {
    let period = format!("{}-{:02}", 2000 + m / 12, m % 12 + 1);
    let line = declaration(EMPLOYER, "CN-44", &period, &[&format!("W-{w}")], "5000.00");
    let (kind, _) = parse_json_event(&line).unwrap();
    Envelope::sign(
        ledger,
        &EventBody {
            signed_at: ledger_client::jsonl::now(),
            kind,
        },
        &[key],
    )
}

#[test]
fn every_acknowledged_event_survives_sigkill_under_load() {
    let (mut ledger, key) = setup();
    let acknowledged: Arc<Mutex<Vec<(Hash32, u64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let url = ledger.url();
    let id = ledger.ledger_id();
    let load = {
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let Ok(mut client) = Client::connect(&url).await else {
                    return;
                };
                // Bounded: at most 300 requests of 10 events, or until the node dies.
                for round in 0..300usize {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let batch: Vec<Envelope> = (0..10)
                        .map(|i| envelope(&id, &key, i + 10 * (round % 5), round / 5))
                        .collect();
                    match client.submit(batch).await {
                        Ok(outcomes) => {
                            for o in outcomes {
                                if let SubmitOutcome::Accepted {
                                    event_id, index, ..
                                } = o
                                {
                                    acknowledged.lock().unwrap().push((event_id, index));
                                }
                            }
                        }
                        Err(_) => return, // the node was killed: what was not answered was not acknowledged
                    }
                }
            })
        })
    };
    wait_for("some events to be acknowledged", || {
        acknowledged.lock().unwrap().len() >= 200
    });
    ledger.kill9();
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let acked = acknowledged.lock().unwrap().clone();
    assert!(acked.len() >= 200);

    ledger.spawn();
    let size = ledger.log_size();
    let max_index = acked.iter().map(|(_, i)| *i).max().unwrap();
    assert!(
        size >= max_index,
        "log size {size} is below an acknowledged index {max_index}"
    );
    // Each acknowledged event is readable at its index with its id (the agency reads whole events).
    let agency = ledger_client::keys::load(&ledger.key_path("CN-44")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut client = Client::connect(&ledger.url()).await.unwrap();
        let mut seen = std::collections::BTreeMap::new();
        for w in 0..50 {
            for e in client
                .worker_events(&format!("W-{w}"), &agency)
                .await
                .unwrap()
            {
                seen.insert(e.index, e.event_id);
            }
        }
        for (id, index) in &acked {
            assert_eq!(
                seen.get(index),
                Some(id),
                "acknowledged event {id} at #{index} is missing after restart"
            );
        }
    });
}

/// Flips one byte of the first occurrence of `needle` in any file under `dir`.
fn flip_byte_of(dir: &std::path::Path, needle: &[u8]) -> bool {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if flip_byte_of(&path, needle) {
                return true;
            }
            continue;
        }
        let mut bytes = std::fs::read(&path).unwrap();
        if let Some(pos) = bytes.windows(needle.len()).position(|w| w == needle) {
            bytes[pos + needle.len() / 2] ^= 0x20;
            std::fs::write(&path, bytes).unwrap();
            return true;
        }
    }
    false
}

#[test]
fn a_corrupted_byte_in_the_store_is_detected_at_start_up() {
    let (mut ledger, key) = setup();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = Client::connect(&ledger.url()).await.unwrap();
        let out = c
            .submit(
                (0..20)
                    .map(|m| envelope(&ledger.ledger_id(), &key, 1, m))
                    .collect(),
            )
            .await
            .unwrap();
        assert!(out
            .iter()
            .all(|o| matches!(o, SubmitOutcome::Accepted { .. })));
    });
    // Drop the runtime, and with it the client's connection, before stopping the node.
    drop(rt);
    assert!(ledger.stop().success(), "clean shutdown on SIGTERM");
    assert!(
        flip_byte_of(
            &ledger.path().join("data").join("store"),
            EMPLOYER.as_bytes()
        ),
        "the employer id is in the store"
    );

    ledger.spawn_raw();
    let status = ledger.child.take().unwrap().wait().unwrap();
    assert!(!status.success(), "a corrupt store must not be served");
    let log = std::fs::read_to_string(&ledger.log).unwrap();
    assert!(
        log.contains("corrupt"),
        "the error names the corruption: {log}"
    );
}

#[test]
fn a_lost_store_under_a_head_marker_is_detected() {
    let (mut ledger, _) = setup();
    assert!(ledger.stop().success());
    // The store vanishes (a restore of the wrong backup, a truncated disk); the marker remains.
    std::fs::remove_dir_all(ledger.path().join("data").join("store")).unwrap();
    ledger.spawn_raw();
    let status = ledger.child.take().unwrap().wait().unwrap();
    assert_eq!(
        status.code(),
        Some(4),
        "integrity failures have their own exit code"
    );
    let log = std::fs::read_to_string(&ledger.log).unwrap();
    assert!(log.contains("head marker"), "{log}");
}
