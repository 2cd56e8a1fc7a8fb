//! `sagaflow prune`: deletes finished runs under a retention policy, with their steps, events
//! and signals, through the store's retention capability
//! (`sagaflow_core::runtime::retention`), in batches of short transactions; `--dry-run` lists
//! what would go and deletes nothing. What a policy may delete (never a running or parked
//! run, a saga's run only with its compensation rounds and once compensated) is core's rule,
//! the same as an engine's automatic policy.

use std::io::Write;
use std::time::Duration;

use sagaflow_core::runtime::retention::{self, RetentionPolicy};
use sagaflow_core::runtime::store::StoredRunStatus;
use serde_json::{Value, json};

use crate::commands::Out;
use crate::db::Target;
use crate::error::CliError;
use crate::render::{self, Table, cell, status_paint};

/// What `prune` was asked.
pub(crate) struct PruneArgs {
    pub(crate) older_than: Option<String>,
    pub(crate) keep: Option<u64>,
    pub(crate) statuses: Vec<String>,
    pub(crate) sagas: Vec<String>,
    pub(crate) batch: usize,
    pub(crate) dry_run: bool,
}

impl PruneArgs {
    /// The policy asked for; at least one of `--older-than` and `--keep`, so that a slip of
    /// the keyboard does not delete every finished run.
    fn policy(&self) -> Result<RetentionPolicy, CliError> {
        if self.older_than.is_none() && self.keep.is_none() {
            return Err(CliError::Usage(
                "prune needs --older-than AGE or --keep N (or both); to prune every finished \
                 run, pass --older-than 0s"
                    .to_owned(),
            ));
        }
        let mut policy = RetentionPolicy::new().batch(self.batch);
        if let Some(age) = &self.older_than {
            let ms = render::duration_ms(age).ok_or_else(|| {
                CliError::Usage(format!(
                    "--older-than `{age}`: expected a duration (30s, 15m, 2h, 7d, 2w)"
                ))
            })?;
            policy = policy.older_than(Duration::from_millis(ms.cast_unsigned()));
        }
        if let Some(keep) = self.keep {
            policy = policy.keep(keep);
        }
        if !self.statuses.is_empty() {
            let statuses: Vec<StoredRunStatus> = self
                .statuses
                .iter()
                .filter_map(|s| StoredRunStatus::parse(s))
                .collect();
            policy = policy.statuses(statuses);
        }
        Ok(self
            .sagas
            .iter()
            .fold(policy, |policy, saga| policy.saga(saga.clone())))
    }
}

/// `sagaflow prune`.
pub(crate) async fn prune(
    target: &Target,
    args: &PruneArgs,
    out: &Out,
    w: &mut impl Write,
) -> Result<(), CliError> {
    let policy = args.policy()?;
    // Read-only first: a missing file is not created, a foreign database not migrated.
    let db = target.inspect().await?;
    let database = db.database().to_owned();
    drop(db);
    let store = target.store(&database).await?;
    let failed = |e: sagaflow_core::runtime::StoreError| CliError::Write {
        database: database.clone(),
        message: e.to_string(),
    };
    if args.dry_run {
        let would = retention::prunable(&*store, &policy, usize::MAX)
            .await
            .map_err(failed)?;
        if out.json {
            let list: Vec<Value> = would
                .iter()
                .map(|p| {
                    json!({
                        "run_id": p.run.run_id.as_str(),
                        "workflow": p.run.workflow,
                        "status": p.run.status.as_str(),
                        "finished_at": render::iso(p.run.finished_at),
                        "rounds": p.rounds.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                    })
                })
                .collect();
            return render::json(w, &Value::Array(list));
        }
        if would.is_empty() {
            writeln!(w, "nothing to prune")?;
            return Ok(());
        }
        let mut table = Table::new(vec!["RUN", "WORKFLOW", "STATUS", "FINISHED", "ROUNDS"]);
        for p in &would {
            let status = p.run.status.as_str();
            table.row(vec![
                cell(p.run.run_id.as_str()),
                cell(&p.run.workflow),
                (status.to_owned(), status_paint(status)),
                cell(render::time(p.run.finished_at)),
                cell(p.rounds.len().to_string()),
            ]);
        }
        table.print(w, out.colour)?;
        let rounds: usize = would.iter().map(|p| p.rounds.len()).sum();
        writeln!(
            w,
            "dry run: {} run(s) and {rounds} compensation round(s) would be pruned; nothing \
             was deleted",
            would.len()
        )?;
        return Ok(());
    }
    let report = retention::prune(&*store, &policy, None)
        .await
        .map_err(failed)?;
    let d = report.deleted;
    if d.runs > 0 {
        // The deleted rows' room made reusable now (a VACUUM on PostgreSQL).
        store.reclaim().await.map_err(failed)?;
    }
    if out.json {
        return render::json(
            w,
            &json!({
                "runs": d.runs,
                "events": d.events,
                "signals": d.signals,
                "batches": report.batches,
            }),
        );
    }
    writeln!(
        w,
        "pruned {} run(s) (compensation rounds included), {} event(s) and {} signal(s) in {} \
         batch(es)",
        d.runs, d.events, d.signals, report.batches
    )?;
    Ok(())
}
