//! A step's error: what a step function returns, and what every report and run error keeps of
//! a failed step. It names nothing else of the runtime, so that they can all name it.

use std::fmt;
use std::sync::Arc;

/// Why a step failed. Any `std::error::Error` converts into it with `?` and is retried by the
/// step's policy; [`StepError::permanent`] marks a failure that retrying cannot fix.
///
/// Like `anyhow::Error` it does not implement `std::error::Error` itself: that is what lets
/// every error type convert into it.
#[derive(Clone)]
pub struct StepError {
    message: String,
    permanent: bool,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl StepError {
    /// A failure that the retry policy may retry.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
            source: None,
        }
    }

    /// A failure that must not be retried (bad input, a refused request).
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            permanent: true,
            ..Self::new(message)
        }
    }

    /// This error, marked permanent.
    pub fn into_permanent(mut self) -> Self {
        self.permanent = true;
        self
    }

    /// This error, marked retryable: what a saga does to the failures of a step past its
    /// pivot, which must be retried until it succeeds.
    pub fn into_transient(mut self) -> Self {
        self.permanent = false;
        self
    }

    /// Whether retrying is pointless.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// The message, without the source chain.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error this one was converted from, if any.
    pub fn source(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.source.as_deref()
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for StepError {
    fn from(error: E) -> Self {
        let mut message = error.to_string();
        let mut cause = error.source();
        while let Some(c) = cause {
            message.push_str(": ");
            message.push_str(&c.to_string());
            cause = c.source();
        }
        Self {
            message,
            permanent: false,
            source: Some(Arc::new(error)),
        }
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepError")
            .field("message", &self.message)
            .field("permanent", &self.permanent)
            .finish()
    }
}

impl PartialEq for StepError {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message && self.permanent == other.permanent
    }
}
