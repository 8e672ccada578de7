//! AFL++ target: see `ledger_fuzz::checkpoint`.
fn main() {
    afl::fuzz!(|data: &[u8]| ledger_fuzz::checkpoint(data));
}
