//! AFL++ target: see `ledger_fuzz::raft_vote`.
fn main() {
    afl::fuzz!(|data: &[u8]| ledger_fuzz::raft_vote(data));
}
