//! `sagaflow queues`: each queue as the store finds it (what waits, what runs, the oldest
//! waiting, the starts of the last minute) beside the bounds the live replicas serving it set
//! in code, as their heartbeats told them.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;
use serde_json::json;

use sagaflow_core::runtime::store::replicas::ServedQueue;

use crate::commands::Out;
use crate::db::Db;
use crate::error::CliError;
use crate::render::{self, Table, cell};

/// A queue and who serves it, as `--json` gives it.
#[derive(Debug, Serialize)]
struct Shown {
    queue: String,
    waiting: u64,
    running: u64,
    parked: u64,
    /// How long the oldest waiting run has waited, in milliseconds.
    oldest_waiting_ms: Option<i64>,
    started_last_minute: u64,
    /// Each live replica serving the queue, with its bounds.
    served_by: BTreeMap<String, ServedQueue>,
}

/// `sagaflow queues`.
pub(crate) async fn queues(db: &Db, out: &Out, w: &mut impl Write) -> Result<(), CliError> {
    let found = db.queues().await?;
    let standing = db.replicas().await?.standing();
    let mut shown: BTreeMap<String, Shown> = found
        .queues
        .into_iter()
        .map(|q| {
            let shown = Shown {
                oldest_waiting_ms: q.oldest_waiting_at.map(|at| (found.now - at).max(0)),
                queue: q.queue.clone(),
                waiting: q.waiting,
                running: q.running,
                parked: q.parked,
                started_last_minute: q.started_last_minute,
                served_by: BTreeMap::new(),
            };
            (q.queue, shown)
        })
        .collect();
    // A queue a live replica serves is shown even with nothing on it.
    for replica in standing.replicas.iter().filter(|r| r.live) {
        for served in &replica.replica.queues {
            shown
                .entry(served.queue.clone())
                .or_insert_with(|| Shown {
                    queue: served.queue.clone(),
                    waiting: 0,
                    running: 0,
                    parked: 0,
                    oldest_waiting_ms: None,
                    started_last_minute: 0,
                    served_by: BTreeMap::new(),
                })
                .served_by
                .insert(replica.replica.owner.clone(), served.clone());
        }
    }
    let shown: Vec<Shown> = shown.into_values().collect();
    if out.json {
        return render::json(w, &json!(shown));
    }
    if shown.is_empty() {
        writeln!(w, "no queues")?;
        return Ok(());
    }
    let mut table = Table::new(vec![
        "QUEUE",
        "WAITING",
        "RUNNING",
        "PARKED",
        "OLDEST WAITING",
        "STARTED/MIN",
        "SERVED BY",
        "LIMITS",
    ]);
    for q in &shown {
        table.row(vec![
            cell(&q.queue),
            cell(q.waiting.to_string()),
            cell(q.running.to_string()),
            cell(q.parked.to_string()),
            cell(
                q.oldest_waiting_ms
                    .map_or_else(|| "-".to_owned(), render::duration),
            ),
            cell(q.started_last_minute.to_string()),
            cell(q.served_by.len().to_string()),
            cell(limits(q.served_by.values())),
        ]);
    }
    table.print(w, out.colour)?;
    Ok(())
}

/// The bounds of the replicas serving a queue, each once (replicas should agree on the ones
/// counted over all; where they do not, every value is shown).
fn limits<'a>(served: impl Iterator<Item = &'a ServedQueue>) -> String {
    let mut said: Vec<String> = Vec::new();
    for s in served {
        let mut mine = Vec::new();
        if let Some(n) = s.at_most {
            mine.push(format!("{n} a replica"));
        }
        if let Some(n) = s.overall {
            mine.push(format!("{n} in all"));
        }
        if let Some(n) = s.per_key {
            mine.push(format!("{n} a key"));
        }
        if let Some((n, ms)) = s.rate {
            mine.push(format!(
                "{n} starts/{}",
                render::duration(i64::try_from(ms).unwrap_or(i64::MAX))
            ));
        }
        for bound in mine {
            if !said.contains(&bound) {
                said.push(bound);
            }
        }
    }
    if said.is_empty() {
        "none".to_owned()
    } else {
        said.join(", ")
    }
}
