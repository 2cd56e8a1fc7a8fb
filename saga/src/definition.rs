//! A built saga: its forward definition and its compensations. The calls that start, take up
//! and operate on its runs are the driver's entry points, in `driver.rs`.

use std::marker::PhantomData;
use std::sync::Arc;

use sagaflow_core::runtime::{Definition, StepValue};

use crate::error::SagaDefinitionError;
use crate::inner::SagaInner;

/// A saga taking `I` and producing `O`, built by [`SagaBuilder`](crate::SagaBuilder) or the
/// `saga!` macro. Cheap to clone.
pub struct SagaDefinition<I, O> {
    pub(crate) forward: Definition<I, O>,
    pub(crate) inner: Arc<SagaInner>,
    _types: PhantomData<fn(I) -> O>,
}

impl<I, O> Clone for SagaDefinition<I, O> {
    fn clone(&self) -> Self {
        Self {
            forward: self.forward.clone(),
            inner: Arc::clone(&self.inner),
            _types: PhantomData,
        }
    }
}

impl<I, O> std::fmt::Debug for SagaDefinition<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SagaDefinition")
            .field("name", &self.inner.name)
            .field("steps", &self.inner.steps.len())
            .finish_non_exhaustive()
    }
}

impl<I: StepValue, O: StepValue> SagaDefinition<I, O> {
    pub(crate) fn new(forward: Definition<I, O>, inner: Arc<SagaInner>) -> Self {
        Self {
            forward,
            inner,
            _types: PhantomData,
        }
    }

    /// The saga's name, also the workflow name of its forward runs.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The forward steps as a workflow definition.
    pub fn forward(&self) -> &Definition<I, O> {
        &self.forward
    }

    /// Every problem found when the saga was built; empty for a valid saga.
    pub fn problems(&self) -> &[SagaDefinitionError] {
        &self.inner.problems
    }

    /// The names of the pivots.
    pub fn pivots(&self) -> Vec<&str> {
        self.inner.pivots().collect()
    }

    /// The compensation of `step`, by its own name, if it has one.
    pub fn compensation_of(&self, step: &str) -> Option<&str> {
        let index = self.inner.index_of(step)?;
        self.inner.undos[index].as_ref().map(|u| u.name.as_str())
    }

    /// The forward graph as a mermaid flowchart, each compensation noted on its step.
    pub fn mermaid(&self) -> String {
        self.forward.mermaid()
    }

    /// The forward graph in Graphviz DOT.
    pub fn dot(&self) -> String {
        self.forward.dot()
    }
}
