//! The run engine: definitions, the engine that executes them, and the store seam that records
//! every change of a run's state.

pub mod context;
pub mod definition;
pub mod engine;
pub mod error;
pub mod events;
pub(crate) mod id;
pub mod report;
pub mod retention;
pub mod store;

pub use context::{RunId, StepContext};
pub use definition::{
    BorrowingCall, BorrowingGuard, Builder, Call, Codec, Definition, Dep, Deps, ErasedDefinition,
    Handle, Name, Optional, StepDef, StepFuture, StepValue, Value,
};
pub use engine::{
    DEFAULT_KEEP_FINISHED_FOR, DEFAULT_KEEP_FINISHED_RUNS, DEFAULT_MAX_CONCURRENT_STEPS,
    DEFAULT_TAKEOVER_EVERY, Drained, Engine, EngineBuilder, Enqueue, HEARTBEAT_EVERY, LeaseRefusal,
    Recovered, RunHandle, Serve, TAKEOVER_AT_ONCE, TAKEOVER_BATCH, Waiting,
};
pub use error::{DefinitionError, EngineError, RunError, StepError, StoreError};
pub use events::{DEFAULT_EVENT_BUFFER, Event, EventKind, EventSink, EventStream};
pub use report::{Report, StepReport, StepReports, StepStatus};
pub use store::{
    Advanced, Change, Created, DeliveredSignal, EventLog, FreeRun, KnownGraph, Lease, LeaseStore,
    MachineStep, MachineStore, MachineTransition, MemoryStore, NewRun, QueueStore, RecordedChange,
    Retention, RunStore, SignalStore, Store, StoredMachine, StoredRun, StoredRunStatus, StoredStep,
    UnfinishedRun,
};
