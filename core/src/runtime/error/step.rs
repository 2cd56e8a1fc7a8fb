//! A step's error: what a step function returns, and what every report and run error keeps of
//! a failed step. It names nothing else of the runtime, so that they can all name it.

use std::fmt;
use std::sync::Arc;

/// Why a step failed. Any `std::error::Error` converts into it with `?` and is retried by the
/// step's policy; [`StepError::permanent`] marks a failure that retrying cannot fix.
///
/// Like `anyhow::Error` it does not implement `std::error::Error` itself: that is what lets
/// every error type convert into it.
///
/// One pointer wide, its parts shared: a step's end, its report and its run's error each keep
/// one, and cloning it counts a reference instead of copying the message.
#[derive(Clone)]
pub struct StepError(Arc<Parts>);

#[derive(Clone)]
struct Parts {
    message: String,
    permanent: bool,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl StepError {
    /// A failure that the retry policy may retry.
    pub fn new(message: impl Into<String>) -> Self {
        Self(Arc::new(Parts {
            message: message.into(),
            permanent: false,
            source: None,
        }))
    }

    /// A failure that must not be retried (bad input, a refused request).
    pub fn permanent(message: impl Into<String>) -> Self {
        Self(Arc::new(Parts {
            message: message.into(),
            permanent: true,
            source: None,
        }))
    }

    /// This error, marked permanent.
    pub fn into_permanent(self) -> Self {
        self.marked(true)
    }

    /// This error, marked retryable: what a saga does to the failures of a step past its
    /// pivot, which must be retried until it succeeds.
    pub fn into_transient(self) -> Self {
        self.marked(false)
    }

    /// This error with `permanent` as given; its parts are copied only if they are shared and
    /// the mark changes.
    fn marked(mut self, permanent: bool) -> Self {
        if self.0.permanent != permanent {
            Arc::make_mut(&mut self.0).permanent = permanent;
        }
        self
    }

    /// Whether retrying is pointless.
    pub fn is_permanent(&self) -> bool {
        self.0.permanent
    }

    /// The message, without the source chain.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The error this one was converted from, if any.
    pub fn source(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.0.source.as_deref()
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
        Self(Arc::new(Parts {
            message,
            permanent: false,
            source: Some(Arc::new(error)),
        }))
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl fmt::Debug for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepError")
            .field("message", &self.0.message)
            .field("permanent", &self.0.permanent)
            .finish()
    }
}

impl PartialEq for StepError {
    fn eq(&self, other: &Self) -> bool {
        self.0.message == other.0.message && self.0.permanent == other.0.permanent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_marked_otherwise_leaves_the_error_it_came_from_as_it_was() {
        let retryable = StepError::new("timed out");
        let permanent = retryable.clone().into_permanent();
        assert!(permanent.is_permanent());
        assert!(!retryable.is_permanent());
        assert_eq!(permanent.message(), "timed out");

        let refused = StepError::permanent("refused");
        let transient = refused.clone().into_transient();
        assert!(!transient.is_permanent());
        assert!(refused.is_permanent());
        // Marked as it already was, it is the same error, shared.
        assert_eq!(refused.clone().into_permanent(), refused);
    }

    #[test]
    fn a_converted_error_keeps_its_source_chain_in_the_message_and_its_source() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = StepError::from(io).into_permanent();
        assert_eq!(error.message(), "no such file");
        assert!(error.is_permanent());
        let source = error.source().expect("the converted error is kept");
        assert_eq!(source.to_string(), "no such file");
    }
}
