//! AFL++ target: see `ledger_fuzz::statement`.
fn main() {
    afl::fuzz!(|data: &[u8]| ledger_fuzz::statement(data));
}
