//! `sagaflow replicas`: the replicas of a service as their heartbeats left them, the runs each
//! holds, and the runs waiting for a version no live replica runs.

use std::io::Write;

use serde_json::json;

use crate::commands::Out;
use crate::db::Db;
use crate::error::CliError;
use crate::render::{self, Paint, Table, cell};

/// `sagaflow replicas`.
pub(crate) async fn replicas(db: &Db, out: &Out, w: &mut impl Write) -> Result<(), CliError> {
    let standing = db.replicas().await?.standing();
    if out.json {
        return render::json(w, &json!(standing));
    }
    if standing.replicas.is_empty() {
        writeln!(w, "no replicas heard from")?;
    } else {
        let mut table = Table::new(vec![
            "REPLICA",
            "HOST",
            "PID",
            "VERSION",
            "HEARD",
            "RUNS",
            "WORKFLOWS",
        ]);
        for r in &standing.replicas {
            let heard = if r.live {
                (
                    format!("{} ago", render::duration(r.silent_ms)),
                    Paint::Green,
                )
            } else {
                (
                    format!("gone ({} ago)", render::duration(r.silent_ms)),
                    Paint::Red,
                )
            };
            let workflows: Vec<String> = r
                .replica
                .graphs
                .iter()
                .map(|g| match g.fingerprint {
                    Some(f) => format!("{}@{f:016x}", g.workflow),
                    None => g.workflow.clone(),
                })
                .collect();
            table.row(vec![
                cell(&r.replica.owner),
                cell(&r.replica.host),
                cell(r.replica.pid.to_string()),
                cell(&r.replica.version),
                heard,
                cell(r.runs.len().to_string()),
                cell(workflows.join(", ")),
            ]);
        }
        table.print(w, out.colour)?;
    }
    if !standing.waiting.is_empty() {
        writeln!(w)?;
        writeln!(
            w,
            "waiting for a version no live replica runs ({}):",
            standing.waiting.len()
        )?;
        let mut table = Table::new(vec!["RUN", "WORKFLOW", "GRAPH"]);
        for run in &standing.waiting {
            table.row(vec![
                cell(&run.run_id),
                cell(&run.workflow),
                cell(format!("{:016x}", run.fingerprint)),
            ]);
        }
        table.print(w, out.colour)?;
    }
    Ok(())
}
