//! AFL++ target: see `ledger_fuzz::raft_append_entries`.
fn main() {
    afl::fuzz!(|data: &[u8]| ledger_fuzz::raft_append_entries(data));
}
