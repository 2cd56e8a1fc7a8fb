//! The store's clock: the times it writes (events, leases, machines) in unix milliseconds.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix milliseconds now (0 for a clock before 1970).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
