//! AFL++ target: see `ledger_fuzz::raft_install_snapshot`.
fn main() {
    afl::fuzz!(|data: &[u8]| ledger_fuzz::raft_install_snapshot(data));
}
