//! AFL++ target: see `ledger_fuzz::raft_entry`.
fn main() {
    afl::fuzz!(|data: &[u8]| ledger_fuzz::raft_entry(data));
}
