//! SQLite's errors as the store's. Every file of the store maps its `rusqlite` errors with
//! [`sqlite_error`], which names nothing of theirs: here, none of them imports another for it.

use rusqlite::ErrorCode;

use sagaflow_core::runtime::error::StoreError;

/// A SQLite error as a [`StoreError`] naming the file: a lock past the busy timeout is
/// [`StoreError::Busy`], a full disk or size limit [`StoreError::Full`].
pub(crate) fn sqlite_error(label: &str, error: &rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy {
            path: label.to_owned(),
        },
        Some(ErrorCode::DiskFull) => StoreError::Full {
            path: label.to_owned(),
            message: error.to_string(),
        },
        _ => StoreError::Backend(format!("database `{label}`: {error}")),
    }
}
