//! The statement verifier of the worker's page. A browser that opens a statement runs
//! `ledger-core`'s own checks, not a second implementation of them: this crate compiles them to
//! WebAssembly (`build.sh` writes `ledger-node/web/ledger_web.wasm`, which the node serves).
//!
//! The interface is four plain exports, so the page needs no generated glue: `alloc` and
//! `dealloc` for byte buffers, `verify` (statement, trust file, as-of date, each UTF-8 in a
//! buffer the page allocated) returning a packed pointer and length of the answer, a JSON
//! document: `{"valid": true, "worker", "checkpoint", "signed_by", "contents_signed_by",
//! "quorum", "events": [{"index", "appended_at", "type", "event"}], "entitlement" |
//! "entitlement_not_recomputed"}` or `{"valid": false, "reason"}`.

use ledger_core::checkpoint::Trust;
use ledger_core::json::to_json_event;
use ledger_core::rulebook::Rulebook;
use ledger_core::rules::{self, Params};
use ledger_core::statement;
use ledger_core::time::Date;
use serde_json::{json, Value};

/// The answer for a statement, a trust file and the date of the recomputed entitlement.
pub fn verify_json(statement_text: &str, trust_text: &str, as_of: &str) -> String {
    answer(statement_text, trust_text, as_of)
        .unwrap_or_else(|reason| json!({"valid": false, "reason": reason}))
        .to_string()
}

fn answer(statement_text: &str, trust_text: &str, as_of: &str) -> Result<Value, String> {
    let trust = Trust::parse(trust_text).map_err(|e| format!("the trust file: {}", e.0))?;
    let as_of: Date = as_of.parse().map_err(|e| format!("the date: {e}"))?;
    let proven = statement::verify(statement_text, &trust).map_err(|e| e.to_string())?;
    let events: Vec<Value> = proven
        .events
        .iter()
        .map(|e| {
            json!({"index": e.index, "appended_at": e.appended_at, "type": e.body.kind.type_name(),
                   "event": to_json_event(&e.body)})
        })
        .collect();
    // The same recomputation as `ledger-client verify`: the proven facts, the statement's
    // published parameters and this build's rulebook.
    let rulebook = Rulebook::builtin();
    let params = Params {
        rulebook: &rulebook,
        published: &proven.parameters,
    };
    let facts = statement::facts(&proven);
    let (entitlement, not_recomputed) =
        match rules::entitlement(&proven.worker, &facts, &params, as_of) {
            Ok(e) => (serde_json::to_value(e).ok(), None),
            Err(e) => (None, Some(e.to_string())),
        };
    Ok(json!({
        "valid": true,
        "worker": proven.worker,
        "checkpoint": {"origin": proven.checkpoint.origin, "size": proven.checkpoint.size,
                       "root": proven.checkpoint.root.to_hex()},
        "signed_by": proven.signed_by,
        "contents_signed_by": proven.contents_signed_by,
        "quorum": trust.quorum,
        "events": events,
        "entitlement": entitlement,
        "entitlement_not_recomputed": not_recomputed,
    }))
}

/// A buffer of `len` bytes for the page to write into; freed with [`dealloc`].
#[no_mangle]
pub extern "C" fn alloc(len: usize) -> *mut u8 {
    let mut buffer = Vec::<u8>::with_capacity(len);
    let ptr = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    ptr
}

/// Frees a buffer of [`alloc`] or an answer of [`verify`].
///
/// # Safety
/// `ptr` and `len` must be a buffer this module handed out, freed once.
#[no_mangle]
pub unsafe extern "C" fn dealloc(ptr: *mut u8, len: usize) {
    // SAFETY: the caller hands back a buffer allocated here with capacity `len`.
    drop(unsafe { Vec::from_raw_parts(ptr, 0, len) });
}

/// # Safety
/// Each pointer and length must describe a buffer of [`alloc`] that the page filled.
unsafe fn text<'a>(ptr: *const u8, len: usize) -> &'a str {
    // SAFETY: the caller passes buffers it allocated with `alloc` and filled with `len` bytes.
    let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
    std::str::from_utf8(bytes).unwrap_or("")
}

/// Verifies a statement; returns `(pointer << 32) | length` of the JSON answer, which the page
/// frees with [`dealloc`].
///
/// # Safety
/// Each pointer and length must describe a buffer of [`alloc`] that the page filled.
#[no_mangle]
pub unsafe extern "C" fn verify(
    statement_ptr: *const u8,
    statement_len: usize,
    trust_ptr: *const u8,
    trust_len: usize,
    as_of_ptr: *const u8,
    as_of_len: usize,
) -> u64 {
    // SAFETY: forwarded from the caller's promise.
    let (s, t, d) = unsafe {
        (
            text(statement_ptr, statement_len),
            text(trust_ptr, trust_len),
            text(as_of_ptr, as_of_len),
        )
    };
    let answer = verify_json(s, t, d).into_bytes().into_boxed_slice();
    let len = answer.len();
    let ptr = Box::into_raw(answer) as *mut u8;
    ((ptr as usize as u64) << 32) | len as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_a_statement_is_refused_with_a_reason() {
        let trust = "CN-44 node-1+00000000+AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        let answer: Value = serde_json::from_str(&verify_json("{}", trust, "2024-01-01")).unwrap();
        assert_eq!(answer["valid"], false);
        assert!(!answer["reason"].as_str().unwrap().is_empty());
        let answer: Value = serde_json::from_str(&verify_json("{}", "", "not a date")).unwrap();
        assert_eq!(answer["valid"], false);
    }
}
