//! The conformance suite on the SQLite store (`sagaflow_core::conformance`): the checks every
//! store passes, and those of stores whose runs outlive their engine. The in-memory store
//! runs the first in `core/tests/conformance.rs`.

use std::time::Duration;

use sagaflow_core::conformance::durable::TestDatabase;
use sagaflow_sqlite::{SqliteOptions, SqliteStore, Synchronous};
use tempfile::TempDir;

/// A fresh database file in a directory of its own, its log compact (the default) or not
/// (`SqliteOptions::compact_log`).
struct Db(TempDir, bool);

impl Db {
    fn new() -> Self {
        Db(tempfile::tempdir().expect("a temp dir"), true)
    }

    fn plain() -> Self {
        Db(tempfile::tempdir().expect("a temp dir"), false)
    }
}

impl TestDatabase for Db {
    type Store = SqliteStore;

    async fn open(&self, owner: &str, lease: Duration, max_recoveries: u32) -> SqliteStore {
        let options = SqliteOptions::default()
            .owner(owner)
            .lease(lease)
            .max_recoveries(max_recoveries)
            .synchronous(Synchronous::Normal)
            .compact_log(self.1);
        SqliteStore::open(self.0.path().join("conformance.db"), options).expect("opens")
    }
}

sagaflow_core::run_conformance!(SqliteStore::in_memory().expect("a database in memory"));
sagaflow_core::durable_conformance!(Db::new());
sagaflow_core::machine_conformance!(SqliteStore::in_memory().expect("a database in memory"));
sagaflow_core::takeover_conformance!(Db::new());
sagaflow_core::replica_conformance!(Db::new());
sagaflow_core::queue_conformance!(Db::new());
sagaflow_core::retention_conformance!(Db::new());

/// The same checks on the log of schema 12 (`compact_log(false)`): a step's completion and
/// the next start in rows of their own, as a store that must stay readable by a release
/// before schema 13 writes them.
mod plain {
    use super::Db;
    use sagaflow_sqlite::{SqliteOptions, SqliteStore};

    fn in_memory() -> SqliteStore {
        SqliteStore::in_memory_with(SqliteOptions::default().compact_log(false))
            .expect("a database in memory")
    }

    sagaflow_core::run_conformance!(in_memory());
    sagaflow_core::durable_conformance!(Db::plain());
    sagaflow_core::takeover_conformance!(Db::plain());
    sagaflow_core::replica_conformance!(Db::plain());
    sagaflow_core::queue_conformance!(Db::plain());
    sagaflow_core::retention_conformance!(Db::plain());
}
