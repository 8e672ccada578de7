//! AFL++ target: see `ledger_fuzz::read_token`.
fn main() {
    afl::fuzz!(|data: &[u8]| ledger_fuzz::read_token(data));
}
