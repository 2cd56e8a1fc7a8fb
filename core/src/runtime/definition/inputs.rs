//! A step's inputs as the builder types them: the [`Handle`]s it depends on, what its call
//! receives for them (owned, or borrowed from the engine), and the typed future of a call that
//! borrows them.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use super::{StepFuture, StepValue, Value};
use crate::runtime::context::StepContext;
use crate::runtime::error::StepError;

/// A typed reference to a value slot: the workflow input or a step's output. Passing it as a
/// dependency makes the new step receive an `Arc<T>`.
pub struct Handle<T> {
    pub(super) slot: usize,
    pub(super) builder: u64,
    pub(super) _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Handle<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Handle<T> {}

impl<T> Handle<T> {
    /// This input taken as optional: the step receives `Option<Arc<T>>`, `None` when the
    /// upstream step was skipped by its guard or failed with `on_error = continue`.
    pub fn optional(self) -> Optional<T> {
        Optional(self)
    }
}

/// An optional input; see [`Handle::optional`].
pub struct Optional<T>(Handle<T>);

impl<T> Clone for Optional<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Optional<T> {}

/// One input of a step: a [`Handle`] or an [`Optional`].
pub trait Dep {
    /// What the step's closure receives for it.
    type Value: Send + 'static;
    /// What a step that borrows its inputs
    /// ([`Builder::step_borrowing`](super::Builder::step_borrowing)) receives for it: `&T`, or
    /// `Option<&T>`.
    type Ref<'a>;
    #[doc(hidden)]
    fn slot(&self) -> usize;
    #[doc(hidden)]
    fn builder(&self) -> u64;
    #[doc(hidden)]
    fn is_optional(&self) -> bool;
    #[doc(hidden)]
    fn take(value: Option<&Value>) -> Option<Self::Value>;
    #[doc(hidden)]
    fn borrow(value: Option<&Value>) -> Option<Self::Ref<'_>>;
}

impl<T: Send + Sync + 'static> Dep for Handle<T> {
    type Value = Arc<T>;
    type Ref<'a> = &'a T;
    fn slot(&self) -> usize {
        self.slot
    }
    fn builder(&self) -> u64 {
        self.builder
    }
    fn is_optional(&self) -> bool {
        false
    }
    fn take(value: Option<&Value>) -> Option<Arc<T>> {
        value.cloned()?.downcast::<T>().ok()
    }
    fn borrow(value: Option<&Value>) -> Option<&T> {
        value?.downcast_ref::<T>()
    }
}

impl<T: Send + Sync + 'static> Dep for Optional<T> {
    type Value = Option<Arc<T>>;
    type Ref<'a> = Option<&'a T>;
    fn slot(&self) -> usize {
        self.0.slot
    }
    fn builder(&self) -> u64 {
        self.0.builder
    }
    fn is_optional(&self) -> bool {
        true
    }
    fn take(value: Option<&Value>) -> Option<Option<Arc<T>>> {
        match value {
            None => Some(None),
            Some(v) => Some(Some(Arc::clone(v).downcast::<T>().ok()?)),
        }
    }
    fn borrow(value: Option<&Value>) -> Option<Option<&T>> {
        match value {
            None => Some(None),
            Some(v) => Some(Some(v.downcast_ref::<T>()?)),
        }
    }
}

/// The inputs of a step: a tuple of up to 16 [`Dep`]s, `()` for none.
pub trait Deps {
    /// The tuple the step's closure receives.
    type Values: Send + 'static;
    /// The tuple a step that borrows its inputs receives: each [`Dep::Ref`].
    type Refs<'a>;
    #[doc(hidden)]
    fn slots(&self) -> Vec<(usize, u64, bool)>;
    #[doc(hidden)]
    fn take(values: &[Option<Value>]) -> Option<Self::Values>;
    #[doc(hidden)]
    fn borrow(values: &[Option<Value>]) -> Option<Self::Refs<'_>>;
}

macro_rules! impl_deps {
    ($($d:ident $i:tt),*) => {
        impl<$($d: Dep),*> Deps for ($($d,)*) {
            type Values = ($($d::Value,)*);
            type Refs<'a> = ($($d::Ref<'a>,)*);
            fn slots(&self) -> Vec<(usize, u64, bool)> {
                vec![$((self.$i.slot(), self.$i.builder(), self.$i.is_optional())),*]
            }
            #[allow(unused_variables)]
            fn take(values: &[Option<Value>]) -> Option<Self::Values> {
                Some(($($d::take(values.get($i)?.as_ref())?,)*))
            }
            #[allow(unused_variables)]
            fn borrow(values: &[Option<Value>]) -> Option<Self::Refs<'_>> {
                Some(($($d::borrow(values.get($i)?.as_ref())?,)*))
            }
        }
    };
}

impl_deps!();
impl_deps!(A 0);
impl_deps!(A 0, B 1);
impl_deps!(A 0, B 1, C 2);
impl_deps!(A 0, B 1, C 2, D 3);
impl_deps!(A 0, B 1, C 2, D 3, E 4);
impl_deps!(A 0, B 1, C 2, D 3, E 4, F 5);
impl_deps!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
impl_deps!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
impl_deps!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
impl_deps!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
impl_deps!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
impl_deps!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);
impl_deps!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12);
impl_deps!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13);
impl_deps!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13, O 14);
impl_deps!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13, O 14, P 15);

/// The future of one call of a step that borrows its inputs
/// ([`Builder::step_borrowing`](super::Builder::step_borrowing)):
/// erased for the engine, and typed by the step's output `O`, so that rustc checks that
/// output against the steps downstream.
pub struct Call<'a, O> {
    pub(super) future: StepFuture<'a>,
    _output: PhantomData<fn() -> O>,
}

impl<'a, O: StepValue> Call<'a, O> {
    /// The step's future, boxed once, its output erased when it resolves.
    pub fn new<E: Into<StepError>>(future: impl Future<Output = Result<O, E>> + Send + 'a) -> Self {
        Call {
            future: Box::pin(async move {
                match future.await {
                    Ok(out) => Ok(Arc::new(out) as Value),
                    Err(e) => Err(e.into()),
                }
            }),
            _output: PhantomData,
        }
    }
}

/// One attempt of a step that borrows its context and inputs: see
/// [`Builder::step_borrowing`](super::Builder::step_borrowing).
pub type BorrowingCall<D, O> = for<'a> fn(&'a StepContext, <D as Deps>::Refs<'a>) -> Call<'a, O>;

/// The `when` guard of a step that borrows its inputs: see
/// [`Builder::step_borrowing`](super::Builder::step_borrowing).
pub type BorrowingGuard<D> = for<'a> fn(<D as Deps>::Refs<'a>) -> bool;
