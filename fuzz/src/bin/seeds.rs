//! Writes the seed corpora: `seeds DIR` (run.sh passes fuzz/corpus).
fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "corpus".into());
    ledger_fuzz::seeds::write(std::path::Path::new(&dir))
}
