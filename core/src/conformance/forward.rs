//! `forward_store!`: capabilities a test store hands to the store it wraps.

/// Implements the listed capabilities of `$ty` by handing every call to its field `$field`, for
/// test stores that wrap a real store and change one capability: write the changed one by
/// hand and forward the others. The capabilities: `RunStore`, `LeaseStore`, `SignalStore`,
/// `EventLog`, `Retention`, `QueueStore`. `RunStore with { create_run, record }` takes those two methods written by hand
/// (with `#[async_trait]`'s signatures) and forwards the rest, with `record_pair` as two
/// calls of the hand-written `record` and no `create_run_now`, so that the engine calls the
/// hand-written `create_run`.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
///
/// use sagaflow_core::runtime::{
///     DeliveredSignal, Engine, MemoryStore, RunId, SignalStore, StoreError,
/// };
///
/// /// Counts the signals asked for through it.
/// struct Counting {
///     inner: MemoryStore,
///     asked: AtomicU32,
/// }
///
/// #[async_trait::async_trait]
/// impl SignalStore for Counting {
///     async fn deliver_signal(&self, run: &RunId, name: &str, payload: &str) -> Result<bool, StoreError> {
///         self.inner.deliver_signal(run, name, payload).await
///     }
///     async fn signal(&self, run: &RunId, name: &str) -> Result<Option<String>, StoreError> {
///         self.asked.fetch_add(1, Ordering::SeqCst);
///         self.inner.signal(run, name).await
///     }
///     async fn signal_position(&self) -> Result<Option<u64>, StoreError> {
///         self.inner.signal_position().await
///     }
///     async fn signals_after(&self, after: u64, limit: usize) -> Result<Vec<DeliveredSignal>, StoreError> {
///         self.inner.signals_after(after, limit).await
///     }
///     fn signal_notices(&self) -> Option<sagaflow_core::runtime::store::SignalNotices> {
///         self.inner.signal_notices()
///     }
/// }
/// sagaflow_core::forward_store!(Counting => inner: RunStore, LeaseStore, EventLog, Retention, QueueStore);
///
/// let store = Arc::new(Counting { inner: MemoryStore::new(), asked: AtomicU32::new(0) });
/// let engine = Engine::builder().store(store).build();
/// # drop(engine);
/// ```
#[macro_export]
macro_rules! forward_store {
    ($ty:ty => $field:ident: RunStore with { $($custom:tt)* }) => {
        $crate::forward_store!(@run_impl $ty, $field, {
            $($custom)*

            async fn record_pair(
                &self,
                run_id: &$crate::runtime::RunId,
                first: &$crate::runtime::Change<'_>,
                then: &$crate::runtime::Change<'_>,
            ) -> ::core::result::Result<(), $crate::runtime::StoreError> {
                $crate::runtime::RunStore::record(self, run_id, first).await?;
                $crate::runtime::RunStore::record(self, run_id, then).await
            }

            // The hand-written `create_run` is the one to call.
            fn create_run_now(
                &self,
                _: &$crate::runtime::NewRun<'_>,
            ) -> ::core::option::Option<
                ::core::result::Result<$crate::runtime::Created, $crate::runtime::StoreError>,
            > {
                ::core::option::Option::None
            }

            // The hand-written `create_run` is called for every run.
            fn records_runs(&self) -> bool {
                true
            }
        });
    };
    ($ty:ty => $field:ident: $($capability:ident),+ $(,)?) => {
        $( $crate::forward_store!(@one $capability, $ty, $field); )+
    };
    (@one RunStore, $ty:ty, $field:ident) => {
        $crate::forward_store!(@run_impl $ty, $field, {
            async fn create_run(
                &self,
                run: &$crate::runtime::NewRun<'_>,
            ) -> ::core::result::Result<$crate::runtime::Created, $crate::runtime::StoreError> {
                $crate::runtime::RunStore::create_run(&self.$field, run).await
            }
            async fn record(
                &self,
                run_id: &$crate::runtime::RunId,
                change: &$crate::runtime::Change<'_>,
            ) -> ::core::result::Result<(), $crate::runtime::StoreError> {
                $crate::runtime::RunStore::record(&self.$field, run_id, change).await
            }
            async fn record_pair(
                &self,
                run_id: &$crate::runtime::RunId,
                first: &$crate::runtime::Change<'_>,
                then: &$crate::runtime::Change<'_>,
            ) -> ::core::result::Result<(), $crate::runtime::StoreError> {
                $crate::runtime::RunStore::record_pair(&self.$field, run_id, first, then).await
            }
            fn create_run_now(
                &self,
                run: &$crate::runtime::NewRun<'_>,
            ) -> ::core::option::Option<
                ::core::result::Result<$crate::runtime::Created, $crate::runtime::StoreError>,
            > {
                $crate::runtime::RunStore::create_run_now(&self.$field, run)
            }
            fn records_runs(&self) -> bool {
                $crate::runtime::RunStore::records_runs(&self.$field)
            }
        });
    };
    (@run_impl $ty:ty, $field:ident, { $($custom:tt)* }) => {
        #[::async_trait::async_trait]
        impl $crate::runtime::RunStore for $ty {
            $($custom)*

            fn forget(&self, run_id: &$crate::runtime::RunId) {
                $crate::runtime::RunStore::forget(&self.$field, run_id)
            }
            fn records_changes(&self) -> bool {
                $crate::runtime::RunStore::records_changes(&self.$field)
            }
            fn keeps_finished_runs(&self) -> bool {
                $crate::runtime::RunStore::keeps_finished_runs(&self.$field)
            }
            async fn load_run(
                &self,
                run_id: &$crate::runtime::RunId,
            ) -> ::core::result::Result<
                ::core::option::Option<$crate::runtime::StoredRun>,
                $crate::runtime::StoreError,
            > {
                $crate::runtime::RunStore::load_run(&self.$field, run_id).await
            }
            async fn unfinished_runs(
                &self,
            ) -> ::core::result::Result<
                ::std::vec::Vec<$crate::runtime::UnfinishedRun>,
                $crate::runtime::StoreError,
            > {
                $crate::runtime::RunStore::unfinished_runs(&self.$field).await
            }
            async fn stopped_runs(
                &self,
                workflow: &str,
            ) -> ::core::result::Result<
                ::std::vec::Vec<$crate::runtime::RunId>,
                $crate::runtime::StoreError,
            > {
                $crate::runtime::RunStore::stopped_runs(&self.$field, workflow).await
            }
        }
    };
    (@one LeaseStore, $ty:ty, $field:ident) => {
        #[::async_trait::async_trait]
        impl $crate::runtime::LeaseStore for $ty {
            async fn acquire(
                &self,
                run_id: &$crate::runtime::RunId,
            ) -> ::core::result::Result<$crate::runtime::Lease, $crate::runtime::StoreError> {
                $crate::runtime::LeaseStore::acquire(&self.$field, run_id).await
            }
            fn release(&self, run_id: &$crate::runtime::RunId) {
                $crate::runtime::LeaseStore::release(&self.$field, run_id)
            }
            async fn give_up(
                &self,
                run_ids: &[$crate::runtime::RunId],
            ) -> ::core::result::Result<(), $crate::runtime::StoreError> {
                $crate::runtime::LeaseStore::give_up(&self.$field, run_ids).await
            }
            async fn free_runs(
                &self,
                known: &[$crate::runtime::KnownGraph],
                limit: usize,
            ) -> ::core::result::Result<
                ::std::vec::Vec<$crate::runtime::FreeRun>,
                $crate::runtime::StoreError,
            > {
                $crate::runtime::LeaseStore::free_runs(&self.$field, known, limit).await
            }
            async fn free_runs_shared(
                &self,
                known: &[$crate::runtime::KnownGraph],
                limit: usize,
                freed: usize,
            ) -> ::core::result::Result<
                ::std::vec::Vec<$crate::runtime::FreeRun>,
                $crate::runtime::StoreError,
            > {
                $crate::runtime::LeaseStore::free_runs_shared(&self.$field, known, limit, freed)
                    .await
            }
            fn freed_notices(
                &self,
            ) -> ::core::option::Option<$crate::runtime::store::SignalNotices> {
                $crate::runtime::LeaseStore::freed_notices(&self.$field)
            }
            async fn heartbeat(
                &self,
                graphs: &[$crate::runtime::KnownGraph],
                queues: &[$crate::runtime::store::replicas::ServedQueue],
            ) -> ::core::result::Result<(), $crate::runtime::StoreError> {
                $crate::runtime::LeaseStore::heartbeat(&self.$field, graphs, queues).await
            }
            fn holds(&self, run_id: &$crate::runtime::RunId) -> bool {
                $crate::runtime::LeaseStore::holds(&self.$field, run_id)
            }
        }
    };
    (@one SignalStore, $ty:ty, $field:ident) => {
        #[::async_trait::async_trait]
        impl $crate::runtime::SignalStore for $ty {
            async fn deliver_signal(
                &self,
                run_id: &$crate::runtime::RunId,
                name: &str,
                payload: &str,
            ) -> ::core::result::Result<bool, $crate::runtime::StoreError> {
                $crate::runtime::SignalStore::deliver_signal(&self.$field, run_id, name, payload)
                    .await
            }
            async fn signal(
                &self,
                run_id: &$crate::runtime::RunId,
                name: &str,
            ) -> ::core::result::Result<
                ::core::option::Option<::std::string::String>,
                $crate::runtime::StoreError,
            > {
                $crate::runtime::SignalStore::signal(&self.$field, run_id, name).await
            }
            async fn signal_position(
                &self,
            ) -> ::core::result::Result<::core::option::Option<u64>, $crate::runtime::StoreError>
            {
                $crate::runtime::SignalStore::signal_position(&self.$field).await
            }
            async fn signals_after(
                &self,
                after: u64,
                limit: usize,
            ) -> ::core::result::Result<
                ::std::vec::Vec<$crate::runtime::DeliveredSignal>,
                $crate::runtime::StoreError,
            > {
                $crate::runtime::SignalStore::signals_after(&self.$field, after, limit).await
            }
            fn signal_notices(
                &self,
            ) -> ::core::option::Option<$crate::runtime::store::SignalNotices> {
                $crate::runtime::SignalStore::signal_notices(&self.$field)
            }
        }
    };
    (@one QueueStore, $ty:ty, $field:ident) => {
        #[::async_trait::async_trait]
        impl $crate::runtime::QueueStore for $ty {
            async fn enqueue(
                &self,
                run: &$crate::runtime::NewRun<'_>,
                on: $crate::runtime::store::Queueing<'_>,
            ) -> ::core::result::Result<$crate::runtime::Created, $crate::runtime::StoreError> {
                $crate::runtime::QueueStore::enqueue(&self.$field, run, on).await
            }
            async fn queued_runs(
                &self,
                queues: &[::std::string::String],
                known: &[$crate::runtime::KnownGraph],
                limit: usize,
            ) -> ::core::result::Result<
                ::std::vec::Vec<$crate::runtime::FreeRun>,
                $crate::runtime::StoreError,
            > {
                $crate::runtime::QueueStore::queued_runs(&self.$field, queues, known, limit).await
            }
            async fn claim(
                &self,
                queue: &str,
                known: &[$crate::runtime::KnownGraph],
                limit: usize,
            ) -> ::core::result::Result<
                ::std::vec::Vec<$crate::runtime::FreeRun>,
                $crate::runtime::StoreError,
            > {
                $crate::runtime::QueueStore::claim(&self.$field, queue, known, limit).await
            }
            async fn admit(
                &self,
                run_id: &$crate::runtime::RunId,
                queue: &str,
                bounds: &$crate::runtime::store::Admission,
            ) -> ::core::result::Result<$crate::runtime::store::Admitted, $crate::runtime::StoreError> {
                $crate::runtime::QueueStore::admit(&self.$field, run_id, queue, bounds).await
            }
            async fn admit_first(
                &self,
                queue: &str,
                known: &[$crate::runtime::store::KnownGraph],
                limit: usize,
                bounds: &$crate::runtime::store::Admission,
            ) -> ::core::result::Result<$crate::runtime::store::AdmittedFirst, $crate::runtime::StoreError> {
                $crate::runtime::QueueStore::admit_first(&self.$field, queue, known, limit, bounds).await
            }
            fn queue_notices(
                &self,
            ) -> ::core::option::Option<$crate::runtime::store::SignalNotices> {
                $crate::runtime::QueueStore::queue_notices(&self.$field)
            }
        }
    };
    (@one Retention, $ty:ty, $field:ident) => {
        #[::async_trait::async_trait]
        impl $crate::runtime::Retention for $ty {
            async fn finished_runs(
                &self,
                query: &$crate::runtime::store::FinishedQuery,
            ) -> ::core::result::Result<
                ::std::vec::Vec<$crate::runtime::store::FinishedRun>,
                $crate::runtime::StoreError,
            > {
                $crate::runtime::Retention::finished_runs(&self.$field, query).await
            }
            async fn delete_runs(
                &self,
                run_ids: &[$crate::runtime::RunId],
            ) -> ::core::result::Result<$crate::runtime::store::Deleted, $crate::runtime::StoreError>
            {
                $crate::runtime::Retention::delete_runs(&self.$field, run_ids).await
            }
            async fn workflows(
                &self,
            ) -> ::core::result::Result<
                ::std::vec::Vec<::std::string::String>,
                $crate::runtime::StoreError,
            > {
                $crate::runtime::Retention::workflows(&self.$field).await
            }
            async fn reclaim(&self) -> ::core::result::Result<(), $crate::runtime::StoreError> {
                $crate::runtime::Retention::reclaim(&self.$field).await
            }
        }
    };
    (@one EventLog, $ty:ty, $field:ident) => {
        #[::async_trait::async_trait]
        impl $crate::runtime::EventLog for $ty {
            async fn events(
                &self,
                run_id: ::core::option::Option<&$crate::runtime::RunId>,
                after: u64,
                limit: usize,
            ) -> ::core::result::Result<
                ::std::vec::Vec<$crate::runtime::Event>,
                $crate::runtime::StoreError,
            > {
                $crate::runtime::EventLog::events(&self.$field, run_id, after, limit).await
            }
            fn attach_events(&self, sink: $crate::runtime::EventSink) -> bool {
                $crate::runtime::EventLog::attach_events(&self.$field, sink)
            }
        }
    };
}
