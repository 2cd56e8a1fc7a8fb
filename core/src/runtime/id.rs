//! A run's id, on its own: the errors, the reports, the store and the context all name a
//! run, and none of them owns its id.

use std::fmt;
use std::sync::Arc;

/// A run's id. It is also the run's idempotency key: starting an id that exists returns the
/// existing run.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(Arc<str>);

impl RunId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for RunId {
    fn from(s: &str) -> Self {
        RunId(s.into())
    }
}

impl From<String> for RunId {
    fn from(s: String) -> Self {
        RunId(s.into())
    }
}

impl From<&String> for RunId {
    fn from(s: &String) -> Self {
        RunId(s.as_str().into())
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}
