//! Every option, paths to steps, defaults, guards and optional inputs, in one workflow.
use sagaflow::prelude::*;

mod steps {
    use sagaflow::prelude::*;
    pub async fn extract(_: &StepContext, day: &u32) -> Result<Vec<u32>, StepError> {
        Ok(vec![*day, 1, 2])
    }
}

fn has_rows(rows: &Vec<u32>) -> bool {
    !rows.is_empty()
}
async fn clean(_: &StepContext, rows: &Vec<u32>) -> Result<Vec<u32>, StepError> {
    Ok(rows.clone())
}
async fn audit(_: &StepContext, rows: &Vec<u32>) -> Result<usize, std::io::Error> {
    Ok(rows.len())
}
async fn load(_: &StepContext, rows: Option<&Vec<u32>>, audit: Option<&usize>) -> Result<String, StepError> {
    Ok(format!("{rows:?} {audit:?}"))
}

workflow! {
    /// Docs pass through.
    pub(crate) Etl(u32) -> String {
        steps::extract -> [clean, audit] -> load;
        extract: retry(max_attempts = 5, initial = 100ms, coefficient = 2, max = 10s, jitter = 0.2),
                 timeout = 30s, deadline = 2m;
        audit: on_error = continue, retry;
        clean: when = has_rows, on_error = fail;
        load: at_most_once;
        defaults: timeout = 1h;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let engine = Engine::ephemeral();
    let report = Etl::start(&engine, "r1", 7).await.unwrap().wait().await.unwrap();
    assert_eq!(*report.output, "Some([7, 1, 2]) Some(3)");
    assert_eq!(Etl::NAME, "Etl");
    assert!(Etl::mermaid().contains("flowchart"));
    assert!(Etl::dot().contains("digraph"));
}
