//! Durable means on the disk, not in its cache.
//!
//! sled 0.34's `flush` writes its log buffers with `pwrite` and ends in
//! `sync_file_range(WAIT_BEFORE | WRITE | WAIT_AFTER)` (`pagecache/iobuf.rs`). That starts and
//! waits for the write-back of those pages, but it neither flushes the drive's volatile cache nor
//! writes the file's metadata (a grown file's size, a new extent): after a power loss the bytes can
//! be gone although `flush` returned. Large values go to files of their own under `blobs/`, written
//! with no sync at all, and the directory entries of new files are never synced. sled's background
//! thread does call `fsync` on its file, but only every 500 ms, after receipts went out.
//!
//! [`Durable::flush`] therefore follows sled's flush with what makes it durable: `fdatasync` of the
//! `db` file (through a handle kept open for the store's life: on Linux a sync through any
//! descriptor of a file flushes the file's pages, the metadata needed to read them back and the
//! drive's cache), `fdatasync` of every blob file not yet synced and of the `blobs` directory
//! when one appeared, and `fsync` of sled's directory when its listing changed (sled's own
//! snapshot files are renamed into place there).
//!
//! The helpers at the end create directories and files so that their names survive a crash too.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The files of one sled database, kept open to sync them after each flush.
struct SledFiles {
    dir: PathBuf,
    db: File,
    /// What the last sync saw, so that each file and directory change is synced once.
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    blobs: BTreeSet<OsString>,
    listing: Vec<OsString>,
}

/// A sled database whose flush reaches the disk. Cloning shares the open files.
#[derive(Clone)]
pub struct Durable {
    db: sled::Db,
    files: Arc<SledFiles>,
}

fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("syncing {}: {e}", path.display()))
}

/// `fsync` of a directory: makes the names created, renamed or removed in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| at(dir, e))
}

/// Creates `dir` and its missing parents, syncing each new directory and the one holding it, so
/// that what is later created inside is reachable after a crash.
pub fn create_dir_all_synced(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all_synced(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        // Another thread made it in between; its creator syncs it.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("creating {}: {e}", dir.display()),
            ))
        }
    }
    sync_dir(dir)?;
    sync_dir(parent_of(dir))
}

/// Writes `bytes` to a new or replaced file at `path`, then syncs the file and its directory.
pub fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all().map_err(|e| at(path, e))?;
    sync_dir(parent_of(path))
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

impl Durable {
    /// Takes hold of the files of `db`, opened at `dir`, and syncs what sled created there (its
    /// `conf`, `db` and `blobs` names, and `dir` itself in its parent).
    pub fn open(db: sled::Db, dir: &Path) -> io::Result<Self> {
        let path = dir.join("db");
        let file = File::open(&path).map_err(|e| at(&path, e))?;
        file.sync_all().map_err(|e| at(&path, e))?;
        let conf = dir.join("conf");
        File::open(&conf)
            .and_then(|f| f.sync_all())
            .map_err(|e| at(&conf, e))?;
        sync_dir(&dir.join("blobs"))?;
        sync_dir(dir)?;
        sync_dir(parent_of(dir))?;
        let files = SledFiles {
            dir: dir.to_path_buf(),
            db: file,
            seen: Mutex::default(),
        };
        files.sync_names()?;
        Ok(Self {
            db,
            files: Arc::new(files),
        })
    }

    /// sled's flush, then the syncs that make it durable (see the module documentation). Returns
    /// only once everything written to the database before the call is on the disk.
    pub fn flush(&self) -> io::Result<()> {
        self.db.flush().map_err(io::Error::other)?;
        self.files.sync()
    }

    /// [`Durable::flush`] on a blocking thread, for async callers.
    pub async fn flush_async(&self) -> io::Result<()> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.flush())
            .await
            .map_err(io::Error::other)?
    }
}

impl SledFiles {
    fn sync(&self) -> io::Result<()> {
        self.db
            .sync_data()
            .map_err(|e| at(&self.dir.join("db"), e))?;
        self.sync_names()
    }

    /// Blob files not yet synced, and the directories whose listings changed. Holding the lock
    /// throughout means that a sync that finds nothing new never overtakes one still syncing.
    fn sync_names(&self) -> io::Result<()> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let blobs_dir = self.dir.join("blobs");
        let blobs = listing(&blobs_dir)?;
        let mut new_blob = false;
        for name in blobs.iter().filter(|n| !seen.blobs.contains(*n)) {
            let path = blobs_dir.join(name);
            match File::open(&path) {
                Ok(f) => f.sync_data().map_err(|e| at(&path, e))?,
                // Collected by sled in between: nothing left to make durable.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(at(&path, e)),
            }
            new_blob = true;
        }
        if new_blob {
            sync_dir(&blobs_dir)?;
        }
        seen.blobs = blobs.into_iter().collect();
        let names = listing(&self.dir)?;
        if names != seen.listing {
            sync_dir(&self.dir)?;
            seen.listing = names;
        }
        Ok(())
    }
}

fn listing(dir: &Path) -> io::Result<Vec<OsString>> {
    let mut names = std::fs::read_dir(dir)
        .and_then(|entries| {
            entries
                .map(|e| e.map(|e| e.file_name()))
                .collect::<io::Result<Vec<_>>>()
        })
        .map_err(|e| io::Error::new(e.kind(), format!("listing {}: {e}", dir.display())))?;
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> Durable {
        let db = sled::Config::new().path(dir).open().unwrap();
        Durable::open(db, dir).unwrap()
    }

    #[test]
    fn a_flushed_value_and_a_blob_survive_reopening() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("store");
        {
            let durable = open(&path);
            durable.db.insert(b"small", b"1".as_slice()).unwrap();
            // Larger than sled's inline limit (a quarter segment): written as a blob file.
            durable.db.insert(b"large", vec![7u8; 300_000]).unwrap();
            durable.flush().unwrap();
            let seen = durable.files.seen.lock().unwrap();
            assert!(
                !seen.blobs.is_empty(),
                "the large value was not kept as a blob"
            );
        }
        let db = sled::Config::new().path(&path).open().unwrap();
        assert_eq!(db.get(b"small").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(db.get(b"large").unwrap().map(|v| v.len()), Some(300_000));
    }

    #[test]
    fn opening_a_store_where_sled_left_no_files_says_which() {
        let d = tempfile::tempdir().unwrap();
        let db = sled::Config::new().temporary(true).open().unwrap();
        let err = Durable::open(db, d.path())
            .err()
            .expect("no sled files there");
        assert!(err.to_string().contains("/db"), "{err}");
    }

    #[test]
    fn new_directories_are_created_with_their_parents() {
        let d = tempfile::tempdir().unwrap();
        let deep = d.path().join("a").join("b").join("c");
        create_dir_all_synced(&deep).unwrap();
        assert!(deep.is_dir());
        create_dir_all_synced(&deep).unwrap();
        let file = deep.join("f");
        write_synced(&file, b"x").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"x");
    }
}
