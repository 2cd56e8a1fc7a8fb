//! PostgreSQL's errors as the store's, each naming the server (its URL without the password).

use sagaflow_core::runtime::error::StoreError;
use tokio_postgres::error::SqlState;

/// A client error as a [`StoreError`] naming `label`: a lock past `lock_timeout` is
/// [`StoreError::Busy`]; the rest are [`StoreError::Backend`] with the server's words.
pub(crate) fn pg_error(label: &str, error: &tokio_postgres::Error) -> StoreError {
    if error.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
        return StoreError::Busy {
            path: label.to_owned(),
        };
    }
    StoreError::Backend(format!("database `{label}`: {}", describe(error)))
}

/// The server's message with its SQLSTATE, or the client's own words (a connection lost, a
/// timeout), with the cause the client's `Display` leaves out.
pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let code = db.code().code();
        return match db.detail() {
            Some(detail) => format!("{} ({code}): {detail}", db.message()),
            None => format!("{} ({code})", db.message()),
        };
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if error.is_closed() && !text.contains("closed") {
        text.push_str(" (the connection is closed)");
    }
    text
}

/// A pool error (no connection could be had) as a [`StoreError`] naming `label`.
pub(crate) fn pool_error(label: &str, error: &deadpool_postgres::PoolError) -> StoreError {
    match error {
        deadpool_postgres::PoolError::Backend(e) => pg_error(label, e),
        other => StoreError::Backend(format!("database `{label}`: no connection: {other}")),
    }
}
