//! AFL++ target: see `ledger_fuzz::json_event`.
fn main() {
    afl::fuzz!(|data: &[u8]| ledger_fuzz::json_event(data));
}
