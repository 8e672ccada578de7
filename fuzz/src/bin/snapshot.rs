//! AFL++ target: see `ledger_fuzz::snapshot`.
fn main() {
    afl::fuzz!(|data: &[u8]| ledger_fuzz::snapshot(data));
}
