//! AFL++ target: see `ledger_fuzz::raft_replies`.
fn main() {
    afl::fuzz!(|data: &[u8]| ledger_fuzz::raft_replies(data));
}
