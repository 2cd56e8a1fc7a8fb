//! sagaflow
