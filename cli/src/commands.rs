//! The read-only commands: `runs`, `show`, `events`, `graph`, `stuck`, `machines`, `machine`,
//! `check`. Each reads through [`Inspect`](crate::db::Inspect), whichever store wrote the
//! database.

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use serde_json::{Value, json};

use crate::db::{self, Db, EventRow, Run, Step};
use crate::draw::{Drawing, Format};
use crate::error::CliError;
use crate::render::{self, Paint, Table, cell, cut, status_paint};

/// The signal an operator's request travels on (`sagaflow_saga::requests::OPERATOR_SIGNAL`).
use sagaflow_core::runtime::store::StoredRunStatus;
use sagaflow_saga::RoundStanding;
use sagaflow_saga::requests::OPERATOR_SIGNAL;

/// How wide an error may be in a table.
const ERROR_WIDTH: usize = 50;

/// Output settings shared by the commands.
pub(crate) struct Out {
    pub(crate) json: bool,
    pub(crate) colour: bool,
}

/// A saga's standing, from its compensation rounds, by the saga crate's rule
/// ([`RoundStanding`]): `None` for a run with no round (a workflow, or a saga whose
/// compensation has not started; without the saga's definition the two look the same here,
/// so the run's own status is shown).
pub(crate) fn saga_status(rounds: &[&Run], abandoned: &HashSet<String>) -> Option<&'static str> {
    let last = rounds.last()?;
    let status = StoredRunStatus::parse(&last.status)?;
    Some(RoundStanding::of(status, abandoned.contains(&last.run_id)).as_str())
}

/// Filters for `runs`.
pub(crate) struct RunFilter {
    pub(crate) status: Option<String>,
    pub(crate) workflow: Option<String>,
    pub(crate) since: Option<i64>,
    pub(crate) all: bool,
}

/// `sagaflow runs`.
pub(crate) async fn runs(
    db: &Db,
    filter: &RunFilter,
    out: &Out,
    w: &mut impl Write,
) -> Result<(), CliError> {
    let all = db.runs().await?;
    let by_id = db::by_id(&all);
    let abandoned = db::abandoned_rounds(db).await?;
    let now = render::now_ms();
    let mut rows = Vec::new();
    for run in &all {
        if db::is_round(run) && !filter.all {
            continue;
        }
        let rounds = db::rounds_of(run, &by_id);
        let saga = saga_status(&rounds, &abandoned);
        let shown = saga.unwrap_or(run.status.as_str());
        if let Some(status) = &filter.status
            && status != shown
            && status != &run.status
        {
            continue;
        }
        if let Some(workflow) = &filter.workflow
            && workflow != &run.workflow
        {
            continue;
        }
        if let Some(since) = filter.since
            && run.created_at < since
        {
            continue;
        }
        rows.push((run, shown, rounds.len()));
    }
    if out.json {
        let list: Vec<Value> = rows
            .iter()
            .map(|(run, shown, rounds)| {
                json!({
                    "run_id": run.run_id,
                    "workflow": run.workflow,
                    "status": shown,
                    "run_status": run.status,
                    "rounds": rounds,
                    "error": run.error,
                    "created_at": render::iso(run.created_at),
                    "updated_at": render::iso(run.updated_at),
                    "duration_ms": run.duration_ms(now),
                })
            })
            .collect();
        return render::json(w, &Value::Array(list));
    }
    let mut table = Table::new(vec![
        "RUN", "WORKFLOW", "STATUS", "STARTED", "DURATION", "ERROR",
    ]);
    for (run, shown, _) in &rows {
        table.row(vec![
            cell(&run.run_id),
            cell(&run.workflow),
            ((*shown).to_owned(), status_paint(shown)),
            cell(render::time(run.created_at)),
            cell(render::duration(run.duration_ms(now))),
            (cut(&short_error(run), ERROR_WIDTH), Paint::Dim),
        ]);
    }
    if table.is_empty() {
        writeln!(w, "no runs")?;
        return Ok(());
    }
    table.print(w, out.colour)
}

/// A run's error without the `run `ID` failed: ` that every run error starts with.
fn short_error(run: &Run) -> String {
    let error = run.error.as_deref().unwrap_or("");
    let prefix = format!("run `{}` failed: ", run.run_id);
    error.strip_prefix(&prefix).unwrap_or(error).to_owned()
}

fn step_json(step: &Step) -> Value {
    json!({
        "name": step.name,
        "status": step.status,
        "attempts": step.attempts,
        "duration_ms": step.duration_ms(),
        "error": step.error,
    })
}

fn steps_table(steps: &[Step], undo: bool) -> Table {
    let mut table = Table::new(vec!["STEP", "STATUS", "ATTEMPTS", "DURATION", "ERROR"]);
    for step in steps {
        let name = if undo && !step.name.starts_with('~') {
            format!("undo {}", step.name)
        } else {
            step.name.clone()
        };
        table.row(vec![
            cell(name),
            (step.status.clone(), status_paint(&step.status)),
            cell(step.attempts.to_string()),
            cell(step.duration_ms().map(render::duration).unwrap_or_default()),
            (
                cut(step.error.as_deref().unwrap_or(""), ERROR_WIDTH),
                Paint::Dim,
            ),
        ]);
    }
    table
}

/// `sagaflow show RUN`.
pub(crate) async fn show(
    db: &Db,
    run_id: &str,
    out: &Out,
    w: &mut impl Write,
) -> Result<(), CliError> {
    let run = db.run(run_id).await?;
    let steps = db.steps(run_id).await?;
    let rounds = if db::is_round(&run) {
        Vec::new()
    } else {
        db::rounds(db, run_id).await?
    };
    let abandoned = db::abandoned_rounds(db).await?;
    let refs: Vec<&Run> = rounds.iter().collect();
    let saga = saga_status(&refs, &abandoned);
    let now = render::now_ms();
    let mut round_steps = Vec::new();
    for round in &rounds {
        round_steps.push(db.steps(&round.run_id).await?);
    }
    if out.json {
        let rounds: Vec<Value> = rounds
            .iter()
            .zip(&round_steps)
            .map(|(round, steps)| {
                json!({
                    "run_id": round.run_id,
                    "status": round.status,
                    "error": round.error,
                    "steps": steps.iter().map(step_json).collect::<Vec<_>>(),
                })
            })
            .collect();
        let value = json!({
            "run_id": run.run_id,
            "workflow": run.workflow,
            "status": saga.unwrap_or(&run.status),
            "run_status": run.status,
            "error": run.error,
            "created_at": render::iso(run.created_at),
            "updated_at": render::iso(run.updated_at),
            "duration_ms": run.duration_ms(now),
            "steps": steps.iter().map(step_json).collect::<Vec<_>>(),
            "rounds": rounds,
        });
        return render::json(w, &value);
    }
    let shown = saga.unwrap_or(&run.status);
    let status = match saga {
        Some(_) => format!(
            "{} (forward run {})",
            status_paint(shown).apply(shown, out.colour),
            run.status
        ),
        None => status_paint(shown).apply(shown, out.colour),
    };
    writeln!(w, "run       {}", run.run_id)?;
    writeln!(w, "workflow  {}", run.workflow)?;
    writeln!(w, "status    {status}")?;
    writeln!(
        w,
        "started   {} UTC, {} {}",
        render::time(run.created_at),
        if run.finished() { "ran" } else { "running for" },
        render::duration(run.duration_ms(now))
    )?;
    if let Some(error) = &run.error {
        writeln!(w, "error     {error}")?;
    }
    writeln!(w)?;
    if steps.is_empty() {
        writeln!(w, "no step has started")?;
    } else {
        steps_table(&steps, db::is_round(&run)).print(w, out.colour)?;
    }
    for (n, (round, steps)) in rounds.iter().zip(&round_steps).enumerate() {
        writeln!(w)?;
        writeln!(
            w,
            "compensation round {} ({}): {}",
            n + 1,
            round.run_id,
            status_paint(&round.status).apply(&round.status, out.colour)
        )?;
        steps_table(steps, true).print(w, out.colour)?;
    }
    if saga == Some("stuck") {
        writeln!(w)?;
        writeln!(
            w,
            "stuck: an operator can `sagaflow retry {0}`, `sagaflow skip {0}` or `sagaflow abandon {0}`",
            run.run_id
        )?;
    }
    Ok(())
}

/// The runs whose events `events RUN` shows: the run and, for a saga, its rounds.
async fn family(db: &Db, run: &Run) -> Result<Vec<String>, CliError> {
    let mut ids = vec![run.run_id.clone()];
    if !db::is_round(run) {
        ids.extend(
            db::rounds(db, &run.run_id)
                .await?
                .into_iter()
                .map(|r| r.run_id),
        );
    }
    Ok(ids)
}

fn event_line(event: &EventRow, run_id: &str, colour: bool) -> String {
    let mut step = event.step.clone().unwrap_or_default();
    if event.run_id != run_id {
        let round = event.run_id.strip_prefix(run_id).unwrap_or(&event.run_id);
        step = format!("{} {step}", round.trim_start_matches('~'))
            .trim_end()
            .to_owned();
    }
    let attempt = event
        .attempt
        .map(|a| format!("attempt {a}"))
        .unwrap_or_default();
    let detail = match &event.detail {
        Some(Value::Object(map)) => match map.get("error").and_then(Value::as_str) {
            Some(error) => error.to_owned(),
            None => Value::Object(map.clone()).to_string(),
        },
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let paint = match event.kind.as_str() {
        "step_completed" | "run_completed" => Paint::Green,
        "step_failed" | "run_failed" | "run_parked" => Paint::Red,
        "step_retrying" | "run_cancelled" | "step_skipped" => Paint::Yellow,
        _ => Paint::Plain,
    };
    let line = format!(
        "{:>6}  {}.{:03}  {}  {:<20}  {:<9}  {}",
        event.seq,
        render::time(event.at),
        event.at.rem_euclid(1000),
        paint.apply(&format!("{:<14}", event.kind), colour),
        step,
        attempt,
        detail
    );
    line.trim_end().to_owned()
}

fn event_json(event: &EventRow) -> Value {
    json!({
        "seq": event.seq,
        "run_id": event.run_id,
        "at": render::iso(event.at),
        "kind": event.kind,
        "step": event.step,
        "attempt": event.attempt,
        "detail": event.detail,
    })
}

/// `sagaflow events RUN [--follow]`: the log of the run and of its compensation rounds; with
/// `--follow`, new events as they are committed, until interrupted.
pub(crate) async fn events(
    db: &Db,
    run_id: &str,
    follow: bool,
    out: &Out,
    w: &mut impl Write,
) -> Result<(), CliError> {
    let run = db.run(run_id).await?;
    let mut ids = family(db, &run).await?;
    let events = db.events(&ids, 0).await?;
    if out.json && !follow {
        let list: Vec<Value> = events.iter().map(event_json).collect();
        return render::json(w, &Value::Array(list));
    }
    let print = |events: &[EventRow], w: &mut dyn Write| -> Result<i64, CliError> {
        let mut last = 0;
        for event in events {
            last = last.max(event.seq);
            if out.json {
                writeln!(w, "{}", event_json(event))?;
            } else {
                writeln!(w, "{}", event_line(event, run_id, out.colour))?;
            }
        }
        w.flush()?;
        Ok(last)
    };
    let mut last = print(&events, w)?;
    if !follow {
        return Ok(());
    }
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        ids = family(db, &run).await?;
        let new = db.events(&ids, last).await?;
        last = last.max(print(&new, w)?);
    }
}

/// `sagaflow graph RUN --format F`.
pub(crate) async fn graph(
    db: &Db,
    run_id: &str,
    format: Format,
    out: &Out,
    w: &mut impl Write,
    note: &mut impl Write,
) -> Result<(), CliError> {
    let run = db.run(run_id).await?;
    let steps = db.steps(run_id).await?;
    let stored = db.graph(run_id).await?;
    let drawing = Drawing::new(run_id, stored.as_deref(), &steps)?;
    if out.json {
        let value: Value = match &stored {
            Some(graph) => serde_json::from_str(graph).unwrap_or(Value::Null),
            None => Value::Null,
        };
        let statuses: Vec<Value> = steps
            .iter()
            .map(|s| json!({"name": s.name, "status": s.status}))
            .collect();
        return render::json(
            w,
            &json!({
                "run_id": run.run_id,
                "workflow": run.workflow,
                "graph": value,
                "steps": statuses,
            }),
        );
    }
    if !drawing.has_edges {
        writeln!(
            note,
            "note: run `{run_id}` was stored without its graph (by a sagaflow older than \
             graphs in the database, or by a program that gave none): its steps are drawn \
             without edges"
        )?;
    }
    if format == Format::Ascii {
        writeln!(w, "{} · run {} · {}", run.workflow, run.run_id, run.status)?;
    }
    write!(w, "{}", drawing.render(format, out.colour)?)?;
    Ok(())
}

/// `sagaflow stuck`: sagas whose latest compensation round failed.
pub(crate) async fn stuck(db: &Db, out: &Out, w: &mut impl Write) -> Result<(), CliError> {
    let all = db.runs().await?;
    let by_id = db::by_id(&all);
    let abandoned = db::abandoned_rounds(db).await?;
    let mut rows = Vec::new();
    for run in all.iter().filter(|r| !db::is_round(r)) {
        let rounds = db::rounds_of(run, &by_id);
        if saga_status(&rounds, &abandoned) != Some("stuck") {
            continue;
        }
        let Some(&round) = rounds.last() else {
            continue;
        };
        let steps = db.steps(&round.run_id).await?;
        let failed = steps.iter().find(|s| s.status == "failed");
        let requested = db
            .signal(&round.run_id, OPERATOR_SIGNAL)
            .await?
            .map(|p| serde_json::from_str::<String>(&p).unwrap_or(p));
        rows.push((run, round, failed.cloned(), requested));
    }
    if out.json {
        let list: Vec<Value> = rows
            .iter()
            .map(|(run, round, failed, requested)| {
                json!({
                    "run_id": run.run_id,
                    "saga": run.workflow,
                    "round": round.run_id,
                    "step": failed.as_ref().map(|s| &s.name),
                    "attempts": failed.as_ref().map(|s| s.attempts),
                    "error": failed.as_ref().and_then(|s| s.error.clone()),
                    "since": render::iso(round.updated_at),
                    "requested": requested,
                })
            })
            .collect();
        return render::json(w, &Value::Array(list));
    }
    if rows.is_empty() {
        writeln!(w, "no stuck saga")?;
        return Ok(());
    }
    let mut table = Table::new(vec![
        "RUN",
        "SAGA",
        "UNDO OF",
        "ATTEMPTS",
        "SINCE",
        "REQUESTED",
        "ERROR",
    ]);
    for (run, round, failed, requested) in &rows {
        table.row(vec![
            cell(&run.run_id),
            cell(&run.workflow),
            (
                failed.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
                Paint::Red,
            ),
            cell(
                failed
                    .as_ref()
                    .map(|s| s.attempts.to_string())
                    .unwrap_or_default(),
            ),
            cell(render::time(round.updated_at)),
            cell(requested.clone().unwrap_or_else(|| "-".to_owned())),
            (
                cut(
                    failed
                        .as_ref()
                        .and_then(|s| s.error.as_deref())
                        .unwrap_or(""),
                    ERROR_WIDTH,
                ),
                Paint::Dim,
            ),
        ]);
    }
    table.print(w, out.colour)?;
    writeln!(w)?;
    writeln!(w, "act on one with `sagaflow retry|skip|abandon RUN`")?;
    Ok(())
}

/// A machine's state for a table: a unit variant's name, or `Name(data)`.
fn state_text(state: &Value) -> String {
    match state {
        Value::String(name) => name.clone(),
        Value::Object(map) if map.len() == 1 => map
            .iter()
            .map(|(name, data)| format!("{name}({data})"))
            .collect(),
        other => other.to_string(),
    }
}

/// `sagaflow machines`.
pub(crate) async fn machines(db: &Db, out: &Out, w: &mut impl Write) -> Result<(), CliError> {
    let machines = db.machines().await?;
    if out.json {
        let list: Vec<Value> = machines
            .iter()
            .map(|m| {
                json!({
                    "machine_id": m.machine_id,
                    "machine": m.machine,
                    "state": m.state,
                    "version": m.version,
                    "created_at": render::iso(m.created_at),
                    "updated_at": render::iso(m.updated_at),
                })
            })
            .collect();
        return render::json(w, &Value::Array(list));
    }
    if machines.is_empty() {
        writeln!(w, "no state machines")?;
        return Ok(());
    }
    let mut table = Table::new(vec!["MACHINE", "TYPE", "STATE", "VERSION", "UPDATED"]);
    for m in &machines {
        table.row(vec![
            cell(&m.machine_id),
            cell(&m.machine),
            (cut(&state_text(&m.state), ERROR_WIDTH), Paint::Cyan),
            cell(m.version.to_string()),
            cell(render::time(m.updated_at)),
        ]);
    }
    table.print(w, out.colour)
}

/// `sagaflow machine ID`.
pub(crate) async fn machine(
    db: &Db,
    id: &str,
    out: &Out,
    w: &mut impl Write,
) -> Result<(), CliError> {
    let m = db.machine(id).await?;
    let log = db.transitions(id).await?;
    if out.json {
        let log: Vec<Value> = log
            .iter()
            .map(|t| {
                json!({"seq": t.seq, "from": t.from, "event": t.event, "to": t.to,
                       "at": render::iso(t.at)})
            })
            .collect();
        return render::json(
            w,
            &json!({
                "machine_id": m.machine_id,
                "machine": m.machine,
                "state": m.state,
                "version": m.version,
                "created_at": render::iso(m.created_at),
                "updated_at": render::iso(m.updated_at),
                "transitions": log,
            }),
        );
    }
    writeln!(w, "machine   {}", m.machine_id)?;
    writeln!(w, "type      {}", m.machine)?;
    writeln!(
        w,
        "state     {}",
        Paint::Cyan.apply(&state_text(&m.state), out.colour)
    )?;
    writeln!(w, "version   {}", m.version)?;
    writeln!(w, "created   {} UTC", render::time(m.created_at))?;
    writeln!(w)?;
    if log.is_empty() {
        writeln!(w, "no transition yet")?;
        return Ok(());
    }
    let mut table = Table::new(vec!["SEQ", "AT", "FROM", "EVENT", "TO"]);
    for t in &log {
        table.row(vec![
            cell(t.seq.to_string()),
            cell(render::time(t.at)),
            cell(&t.from),
            (t.event.clone(), Paint::Bold),
            cell(&t.to),
        ]);
    }
    table.print(w, out.colour)
}

/// `sagaflow check`: prints what `integrity_check` found; damage is an error (exit code 1).
/// On PostgreSQL, an error that names the server's own checks.
pub(crate) async fn check(db: &Db, out: &Out, w: &mut impl Write) -> Result<(), CliError> {
    let problems = db.check().await?;
    let sound = problems.is_empty();
    if out.json {
        render::json(w, &json!({"ok": sound, "problems": problems}))?;
    } else if sound {
        writeln!(w, "{}: no damage found", db.database())?;
    } else {
        for problem in &problems {
            writeln!(w, "{problem}")?;
        }
    }
    if sound {
        Ok(())
    } else {
        Err(CliError::Damaged {
            database: db.database().to_owned(),
            count: problems.len(),
        })
    }
}
