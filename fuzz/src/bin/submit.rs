//! AFL++ target: see `ledger_fuzz::submit`.
fn main() {
    afl::fuzz!(|data: &[u8]| ledger_fuzz::submit(data));
}
