//! Reads on a connection of their own, beside the writer's.
//!
//! With WAL, a reader sees every commit made before its statement began, and neither waits for
//! the writer nor holds it up. So a long read (a 10,000-step run loaded at recovery) does not
//! delay anyone's checkpoint, and a write stuck behind another process's lock does not delay
//! the reads queued after it, as both did when reads ran on the writer's thread between its
//! batches. A caller still reads its own acknowledged writes: a write is acknowledged once
//! committed, and a read that starts after that sees it.
//!
//! A database in memory has no second connection to the same data (short of a shared cache,
//! which brings table locks), so its reads stay on the writer's thread; so do the rare
//! requests that write through the read queue (delivering a signal, creating a machine).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags};

use crate::SqliteOptions;
use crate::writer::{ReadFn, Stats};
use sagaflow_core::runtime::error::StoreError;

/// The read connection and the thread that serves it.
pub(crate) struct Reader {
    /// `None` only while dropping: closing the channel is what stops the thread.
    requests: Option<Sender<ReadFn>>,
    thread: Option<JoinHandle<()>>,
}

impl Reader {
    /// Opens a read-only connection to the database at `path`, which the writer's connection
    /// has already opened and brought up to date (so the file, its WAL and its shared memory
    /// exist).
    pub(crate) fn open(
        path: &Path,
        label: Arc<str>,
        options: &SqliteOptions,
        stats: Arc<Stats>,
    ) -> Result<Reader, StoreError> {
        let path_text = label.to_string();
        let failed = |message: String| StoreError::Open {
            path: path_text.clone(),
            message: format!("cannot open the read connection: {message}"),
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| failed(e.to_string()))?;
        conn.busy_timeout(options.busy_timeout)
            .map_err(|e| failed(e.to_string()))?;
        conn.set_prepared_statement_cache_capacity(64);
        let (requests, receiver) = mpsc::channel::<ReadFn>();
        let thread = std::thread::Builder::new()
            .name("sagaflow-sqlite-read".to_owned())
            .spawn(move || {
                for read in receiver {
                    stats.reads.fetch_add(1, Ordering::Relaxed);
                    let deliver = read(&conn, &label);
                    deliver();
                }
            })
            .map_err(|e| failed(e.to_string()))?;
        Ok(Reader {
            requests: Some(requests),
            thread: Some(thread),
        })
    }

    /// Queues `read`; gives it back if the thread is gone.
    pub(crate) fn send(&self, read: ReadFn) -> Result<(), ReadFn> {
        match &self.requests {
            Some(requests) => requests.send(read).map_err(|e| e.0),
            None => Err(read),
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            // A read never panics by design; if one did, its caller was told (its reply was
            // dropped), and a drop has no one to report to.
            let _ = thread.join();
        }
    }
}
