//! `workflow!` end to end: what the generated code passes to each step, and what the run
//! reports. The engine's own behaviour (timing, retries, cancellation) is tested in core.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use std::sync::Mutex;

use sagaflow::StepStatus;
use sagaflow::prelude::*;

static CALLS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn called(what: impl Into<String>) {
    CALLS.lock().unwrap().push(what.into());
}

/// Runs `def`, which takes no input, on an engine of its own, and gives its output.
async fn output_of<O: sagaflow::runtime::StepValue>(
    def: &sagaflow::Definition<(), O>,
) -> std::sync::Arc<O> {
    let engine = Engine::ephemeral();
    let handle = engine.start(def, "run", ()).await.unwrap();
    handle.wait().await.unwrap().output
}

mod fan {
    use super::*;

    async fn start(_: &StepContext, n: &u32) -> Result<u32, StepError> {
        Ok(*n)
    }
    async fn left(_: &StepContext, n: &u32) -> Result<String, StepError> {
        Ok(format!("L{n}"))
    }
    async fn right(_: &StepContext, n: &u32) -> Result<i64, StepError> {
        Ok(-i64::from(*n))
    }
    async fn join(_: &StepContext, r: &i64, l: &String, s: &u32) -> Result<String, StepError> {
        Ok(format!("{r} {l} {s}"))
    }

    workflow! {
        pub Fan(u32) -> String {
            start -> [left, right];
            right -> join;
            left -> join;
            start -> join;
        }
    }

    #[tokio::test]
    async fn a_step_receives_its_inputs_in_the_order_its_edges_were_written() {
        let engine = Engine::ephemeral();
        let report = Fan::start(&engine, "fan", 5)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        assert_eq!(*report.output, "-5 L5 5");
        let names: Vec<&str> = report.steps.iter().map(|s| &*s.name).collect();
        assert_eq!(names, ["start", "left", "right", "join"]);
        // The names are the macro's literals, not copies: a report clones them without a
        // reference count that every run would write.
        assert_eq!(report.workflow, "Fan");
        assert!(report.workflow.is_static());
        assert!(report.steps.iter().all(|s| s.name.is_static()));
        assert!(
            report
                .steps
                .iter()
                .all(|s| s.status == StepStatus::Completed)
        );
    }
}

mod optional {
    use super::*;

    async fn source(_: &StepContext) -> Result<u32, StepError> {
        Ok(0)
    }
    fn non_zero(n: &u32) -> bool {
        *n != 0
    }
    async fn divide(_: &StepContext, n: &u32) -> Result<u32, StepError> {
        Ok(100 / *n)
    }
    async fn fragile(_: &StepContext, _: &u32) -> Result<u32, StepError> {
        called("fragile");
        Err(StepError::permanent("fragile broke"))
    }
    async fn report(
        _: &StepContext,
        divided: Option<&u32>,
        fragile: Option<&u32>,
    ) -> Result<String, StepError> {
        Ok(format!("{divided:?} {fragile:?}"))
    }

    workflow! {
        Guarded -> String {
            source -> [divide, fragile] -> report;
            divide: when = non_zero;
            fragile: on_error = continue;
        }
    }

    #[tokio::test]
    async fn a_skipped_and_a_failed_optional_step_give_none_downstream() {
        let engine = Engine::ephemeral();
        let report = Guarded::start(&engine, "g")
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        assert_eq!(*report.output, "None None");
        assert_eq!(report.step("divide").unwrap().status, StepStatus::Skipped);
        assert_eq!(report.step("divide").unwrap().attempts, 0);
        let fragile = report.step("fragile").unwrap();
        assert_eq!(fragile.status, StepStatus::Failed);
        assert_eq!(fragile.error.as_ref().unwrap().message(), "fragile broke");
        assert_eq!(report.step("report").unwrap().status, StepStatus::Completed);
    }
}

mod context {
    use super::*;

    async fn who(ctx: &StepContext) -> Result<String, StepError> {
        Ok(format!(
            "{} {} {} {}",
            ctx.run_id(),
            ctx.step(),
            ctx.attempt(),
            ctx.idempotency_key()
        ))
    }

    workflow! { Who -> String { who } }

    #[tokio::test]
    async fn each_step_gets_its_run_step_attempt_and_idempotency_key() {
        let engine = Engine::ephemeral();
        let report = Who::start(&engine, "run-7")
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        assert_eq!(*report.output, "run-7 who 1 run-7:who");
    }
}

mod failing {
    use super::*;

    async fn first(_: &StepContext) -> Result<u32, StepError> {
        Ok(1)
    }
    async fn broken(ctx: &StepContext, _: &u32) -> Result<u32, std::io::Error> {
        called(format!("broken {}", ctx.attempt()));
        Err(std::io::Error::other("disk on fire"))
    }
    async fn after(_: &StepContext, _: &u32) -> Result<u32, StepError> {
        called("after");
        Ok(2)
    }

    workflow! {
        Failing {
            first -> broken -> after;
            broken: retry(max_attempts = 2, initial = 1ms);
        }
    }

    #[tokio::test]
    async fn a_failing_step_fails_the_run_and_its_dependents_never_run() {
        let engine = Engine::ephemeral();
        let err = Failing::start(&engine, "f")
            .await
            .unwrap()
            .wait()
            .await
            .unwrap_err();
        match &err {
            RunError::StepFailed {
                step,
                attempts,
                error,
                ..
            } => {
                assert_eq!(step, "broken");
                assert_eq!(*attempts, 2);
                assert_eq!(error.message(), "disk on fire");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            err.steps().iter().map(|s| s.status).collect::<Vec<_>>(),
            vec![
                StepStatus::Completed,
                StepStatus::Failed,
                StepStatus::NotRun
            ]
        );
        let calls = CALLS.lock().unwrap().clone();
        assert!(!calls.contains(&"after".to_owned()), "{calls:?}");
        assert_eq!(calls.iter().filter(|c| c.starts_with("broken")).count(), 2);
    }
}

mod diagrams {
    use super::*;

    async fn a(_: &StepContext) -> Result<(), StepError> {
        Ok(())
    }
    async fn b(_: &StepContext, _: &()) -> Result<(), StepError> {
        Ok(())
    }

    workflow! { Ab { a -> b } }

    #[test]
    fn mermaid_and_dot_draw_the_declared_graph() {
        let mermaid = Ab::mermaid();
        assert!(mermaid.starts_with("flowchart LR"), "{mermaid}");
        assert!(
            mermaid.contains("[\"a\"]") && mermaid.contains("[\"b\"]"),
            "{mermaid}"
        );
        assert!(mermaid.contains("-->"), "{mermaid}");
        let dot = Ab::dot();
        assert!(dot.starts_with("digraph"), "{dot}");
        assert_eq!(dot.matches(" -> ").count(), 1, "{dot}");
    }
}

mod coercion {
    use super::*;

    async fn words(_: &StepContext) -> Result<Vec<String>, StepError> {
        Ok(vec!["a".into(), "bc".into()])
    }
    async fn joined(_: &StepContext, words: &[String]) -> Result<String, StepError> {
        Ok(words.concat())
    }
    async fn length(_: &StepContext, text: &str) -> Result<usize, StepError> {
        Ok(text.len())
    }

    workflow! { Coerced -> usize { words -> joined -> length } }

    #[tokio::test]
    async fn a_step_may_borrow_a_vec_as_a_slice_and_a_string_as_str() {
        assert_eq!(*output_of(&Coerced::definition()).await, 3);
    }
}

/// A generic step function: its type parameter is inferred from the edge, as for any call.
mod generic {
    use super::*;

    async fn items(_: &StepContext) -> Result<Vec<u8>, StepError> {
        Ok(vec![1, 2, 3])
    }
    async fn count<T: Sync>(_: &StepContext, items: &[T]) -> Result<usize, StepError> {
        Ok(items.len())
    }

    workflow! { Counted -> usize { items -> count } }

    #[tokio::test]
    async fn a_generic_step_takes_its_type_from_the_edge() {
        assert_eq!(*output_of(&Counted::definition()).await, 3);
    }
}

mod durable {
    use super::*;

    async fn stamp(ctx: &StepContext) -> Result<String, StepError> {
        called(format!("stamp {}", ctx.run_id()));
        Ok(format!("stamped {}", ctx.run_id()))
    }

    workflow! { Stamp -> String { stamp } }

    #[tokio::test]
    async fn generated_resume_and_recover_take_runs_up_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.db");
        {
            let engine = Engine::open(&path).unwrap();
            let report = Stamp::start(&engine, "s1")
                .await
                .unwrap()
                .wait()
                .await
                .unwrap();
            assert_eq!(*report.output, "stamped s1");
        }
        let engine = Engine::open(&path).unwrap();
        let recovered = Stamp::recover(&engine).await.unwrap();
        assert!(recovered.runs.is_empty() && recovered.failed.is_empty());
        let report = Stamp::resume(&engine, "s1")
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        assert_eq!(*report.output, "stamped s1");
        let stamps = CALLS
            .lock()
            .unwrap()
            .iter()
            .filter(|c| *c == "stamp s1")
            .count();
        assert_eq!(stamps, 1, "a finished run is not run again");
        let missing = Stamp::resume(&engine, "never-started").await.unwrap_err();
        assert!(
            matches!(missing, sagaflow::EngineError::RunNotFound { .. }),
            "{missing}"
        );
        assert!(missing.to_string().contains("never-started"), "{missing}");
    }
}
