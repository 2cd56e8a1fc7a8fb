//! Who holds leases: a store's owner id, and the file lock that keeps two live processes from
//! sharing one.
//!
//! A store on a file holds its leases under an owner id that is stable for its host and
//! database, so that a process restarted after a crash, on the same host and file, is the same
//! owner and takes its runs up at once instead of waiting out the leases of its previous life.
//! Two live stores under one owner would both run every step of a run, since each believes it
//! holds the lease: so an owner id is held under an exclusive lock on a small file beside the
//! database (`<file>-owner-<hash>.lock`), for as long as the store lives. The operating system
//! lets the lock go when the process dies, `kill -9` included.
//!
//! - Without an explicit owner the store takes the first free of `<host>-0`, `<host>-1`, …:
//!   one process on a host is always `<host>-0`, and a second process on the same file gets
//!   `<host>-1`; after a crash each finds its own id again (the lowest free one).
//! - With an explicit owner ([`SqliteOptions::owner`](super::SqliteOptions::owner)) the store
//!   is refused with [`StoreError::OwnerInUse`] while another live store holds that owner.
//!
//! The lock files stay when a store closes: deleting one while another process is about to
//! lock it would let two processes each hold a lock on a different file of the same name.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sagaflow_core::runtime::error::StoreError;

/// How many default owner ids (`<host>-0` to `<host>-63`) a store tries before it falls back
/// to a random one.
const DEFAULT_SLOTS: u32 = 64;

/// An owner id held for a store's life: the lock file's handle, whose drop lets it go.
#[derive(Debug)]
pub(crate) struct OwnerLock {
    _file: File,
}

/// The owner id a store on the file `db` holds leases under, with its lock: `explicit`, or the
/// first free default id of this host.
pub(crate) fn claim(
    db: &Path,
    label: &str,
    explicit: Option<&str>,
) -> Result<(String, Option<OwnerLock>), StoreError> {
    if let Some(owner) = explicit {
        return match lock(db, label, owner)? {
            Some(lock) => Ok((owner.to_owned(), Some(lock))),
            None => Err(StoreError::OwnerInUse {
                path: label.to_owned(),
                owner: owner.to_owned(),
            }),
        };
    }
    let host = host();
    for slot in 0..DEFAULT_SLOTS {
        let owner = format!("{host}-{slot}");
        if let Some(lock) = lock(db, label, &owner)? {
            return Ok((owner, Some(lock)));
        }
    }
    let owner = super::lease::random_owner();
    tracing::warn!(
        path = label,
        owner,
        "every default owner id of this host is in use; this store takes a random one, so its runs wait out their leases after a crash"
    );
    Ok((owner, None))
}

/// Locks `owner`'s lock file beside `db`: `None` if another live store holds it.
fn lock(db: &Path, label: &str, owner: &str) -> Result<Option<OwnerLock>, StoreError> {
    let path = lock_path(db, owner);
    let error = |message: String| StoreError::Open {
        path: label.to_owned(),
        message: format!(
            "cannot lock the owner file `{}` for owner `{owner}`: {message}",
            path.display()
        ),
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| error(e.to_string()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(None),
        Err(TryLockError::Error(e)) => return Err(error(e.to_string())),
    }
    // For a person looking at the file: who holds it. Not needed by the lock.
    let _ = file.set_len(0);
    let _ = writeln!(file, "{owner} pid {}", std::process::id());
    Ok(Some(OwnerLock { _file: file }))
}

/// `<db>-owner-<hash of owner>.lock`: a name any owner id maps to, whatever its characters,
/// the same in every process and version.
fn lock_path(db: &Path, owner: &str) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(format!(
        "-owner-{:016x}.lock",
        sagaflow_graph::fnv::hash(owner.as_bytes())
    ));
    db.with_file_name(name)
}

/// This host's name, as the default owner ids carry it (`localhost` if it has none).
fn host() -> String {
    let name = gethostname::gethostname().to_string_lossy().into_owned();
    let name = name.trim();
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        name.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_owner_is_the_lowest_free_slot_and_comes_back_after_its_store_goes() {
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("s.db");
        let (first, lock_a) = claim(&db, "s.db", None).expect("claimed");
        let (second, lock_b) = claim(&db, "s.db", None).expect("claimed");
        assert!(first.ends_with("-0"), "{first}");
        assert!(second.ends_with("-1"), "{second}");
        drop(lock_a);
        let (again, _lock) = claim(&db, "s.db", None).expect("claimed");
        assert_eq!(again, first, "the freed slot is taken again");
        drop(lock_b);
    }

    #[test]
    fn an_explicit_owner_held_by_a_live_store_is_refused_and_free_once_it_is_gone() {
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("s.db");
        let (_, held) = claim(&db, "s.db", Some("svc a/1")).expect("claimed");
        let refused = claim(&db, "s.db", Some("svc a/1")).expect_err("refused");
        assert_eq!(
            refused.to_string(),
            "owner `svc a/1` of `s.db` is held by another live process: two processes under one owner would each run every step, so each needs its own"
        );
        // Another owner is no conflict.
        assert!(claim(&db, "s.db", Some("svc b")).is_ok());
        drop(held);
        assert!(claim(&db, "s.db", Some("svc a/1")).is_ok());
    }

    #[test]
    fn the_lock_file_name_is_stable() {
        let path = lock_path(Path::new("/x/y.db"), "a");
        assert_eq!(path, Path::new("/x/y.db-owner-af63dc4c8601ec8c.lock"));
    }
}
