//! How a [`SqliteStore`](crate::SqliteStore) opens its database: [`SqliteOptions`].

use std::time::Duration;

use crate::{lease, schema};

/// How hard SQLite works to make a commit survive a power cut (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Every commit is `fsync`ed before it is acknowledged: a committed checkpoint survives a
    /// power cut. The default.
    #[default]
    Full,
    /// In WAL mode, commits are `fsync`ed at checkpoints only: a commit survives a crash of
    /// the process, but the last ones may be lost in a power cut. About ten times faster.
    Normal,
}

/// How a [`SqliteStore`](crate::SqliteStore) opens its database. Start from [`SqliteOptions::default`] and the
/// setters: the options may grow, so the struct cannot be written out.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// `PRAGMA synchronous`; [`Synchronous::Full`] by default.
    pub synchronous: Synchronous,
    /// How long a write waits for a lock another connection holds before failing with
    /// [`StoreError::Busy`](sagaflow_core::runtime::error::StoreError::Busy); 5 s by default.
    pub busy_timeout: Duration,
    /// Caps the database at this many pages (`PRAGMA max_page_count`, per connection); a write
    /// past it fails with [`StoreError::Full`](sagaflow_core::runtime::error::StoreError::Full). `None` (the default) leaves SQLite's limit.
    pub max_page_count: Option<u32>,
    /// The id this store holds leases under. `None` (the default): for a file, the first
    /// free of `<host>-0`, `<host>-1`, … (one process on a host is always `<host>-0`), so
    /// that a process restarted after a crash is the same owner and takes its runs up at
    /// once, without waiting for the leases of its previous life to expire; for a database in
    /// memory, a random id. A store holds its owner id under a lock on a file beside the
    /// database (`<file>-owner-<hash>.lock`) for its whole life, so two live processes never
    /// share one: a second store opened with an owner a live one holds is refused with
    /// [`StoreError::OwnerInUse`](sagaflow_core::runtime::error::StoreError::OwnerInUse). Set it to a name that follows the service across hosts
    /// (a pod's name on a shared volume, say).
    pub owner: Option<String>,
    /// How long a lease lasts unless renewed; 30 s by default. The store renews its leases
    /// every third of it; another process may take a run over once its lease has expired.
    pub lease: Duration,
    /// How many times a run may be taken up (after a crash, or by another process) before
    /// it is parked instead; 100 by default, as DBOS.
    pub max_recoveries: u32,
    /// Whether a write that finds the connection free commits on the caller's thread (a tokio
    /// worker), at once; `true` by default. That saves the two thread wake-ups of a hand-off,
    /// which cost as much as a whole commit with [`Synchronous::Normal`], but blocks the
    /// worker for the commit, `fsync` included with [`Synchronous::Full`]. A service whose
    /// other tasks on the runtime must never wait that long sets it to `false`: every write
    /// then goes to the writer thread, and a worker never blocks on the disk.
    pub commit_on_caller: bool,
    /// Whether opening the database first runs `PRAGMA quick_check` and refuses a damaged
    /// file with [`StoreError::Corrupt`](sagaflow_core::runtime::error::StoreError::Corrupt); `false` by default. It reads the whole file, so it
    /// costs time in proportion to its size (about a second a gigabyte on a fast disk): worth
    /// it for a service that would rather not start than run on a broken file.
    pub quick_check: bool,
    /// Whether a checkpoint that completes a step and starts the next is written as one row
    /// of the log, and a run's creation with its first step's start (schema version 13);
    /// `true` by default. Every reader of this
    /// version reads such a row as the two events it stands for, each with its own number:
    /// [`EventLog::events`](sagaflow_core::runtime::EventLog::events), the live feed, a run's
    /// steps and [`inspect`](crate::inspect) read alike either way. Most checkpoints write
    /// half the rows and index entries, in one statement rather than two: 100 concurrent runs
    /// made about a fifth more steps a second (benches/README.md, "Durable steps", session
    /// 25). The code before version 13 would read the completion and miss the start, so a
    /// store with it on marks the file as readable only by code of version 13 on: a process
    /// of an older sagaflow then refuses the file
    /// ([`StoreError::SchemaTooNew`](sagaflow_core::runtime::error::StoreError::SchemaTooNew))
    /// rather than misread it. A rolling upgrade from the release before this one (which
    /// reads such rows and writes none) needs nothing; one straight from a release before
    /// schema 13, or one that must stay able to roll back to such a release, sets this
    /// `false` until no process of that release opens the file, then turns it on.
    pub compact_log: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Full,
            busy_timeout: schema::DEFAULT_BUSY_TIMEOUT,
            max_page_count: None,
            owner: None,
            lease: lease::DEFAULT_LEASE,
            max_recoveries: lease::DEFAULT_MAX_RECOVERIES,
            commit_on_caller: true,
            quick_check: false,
            compact_log: true,
        }
    }
}

impl SqliteOptions {
    /// These options with `synchronous` set.
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// These options with `busy_timeout` set.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// These options with `max_page_count` set.
    pub fn max_page_count(mut self, pages: u32) -> Self {
        self.max_page_count = Some(pages);
        self
    }

    /// These options with the lease owner id set (see [`owner`](Self::owner)).
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// These options with the lease duration set (at least 1 ms).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(1));
        self
    }

    /// These options with the maximum number of recoveries set.
    pub fn max_recoveries(mut self, max: u32) -> Self {
        self.max_recoveries = max;
        self
    }

    /// Sets [`commit_on_caller`](Self::commit_on_caller).
    pub fn commit_on_caller(mut self, on_caller: bool) -> Self {
        self.commit_on_caller = on_caller;
        self
    }

    /// Sets [`quick_check`](Self::quick_check).
    pub fn quick_check(mut self, check: bool) -> Self {
        self.quick_check = check;
        self
    }

    /// Sets [`compact_log`](Self::compact_log).
    pub fn compact_log(mut self, compact: bool) -> Self {
        self.compact_log = compact;
        self
    }
}
