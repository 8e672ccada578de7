//! Runs every target's contract over files without AFL: `replay DIR...` where each DIR holds
//! one sub-folder per target (fuzz/corpus, an AFL output's queue or crashes). A violated
//! contract panics with the file's name, so kept crash inputs double as regression tests.
use std::path::Path;

fn main() {
    let mut files = 0;
    for dir in std::env::args().skip(1) {
        for (name, check) in ledger_fuzz::TARGETS {
            let Ok(entries) = std::fs::read_dir(Path::new(&dir).join(name)) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if !path.is_file() {
                    continue;
                }
                let data = std::fs::read(&path).expect("readable corpus file");
                if std::panic::catch_unwind(|| check(&data)).is_err() {
                    eprintln!("{name}: contract violated by {}", path.display());
                    std::process::exit(1);
                }
                files += 1;
            }
        }
    }
    println!("replayed {files} files, every contract held");
}
