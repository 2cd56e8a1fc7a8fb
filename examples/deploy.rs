//! sagaflow's main job: a deployment pipeline as a `saga!`, on an embedded SQLite file.
//!
//! `build_image -> push_image -> migrate_db -> shift_traffic! -> smoke_test`: each step before
//! the pivot (`shift_traffic!`, the moment users see the new version) has a compensation; when
//! a step fails for good, what was done is undone, newest first. Past the pivot there is no
//! going back: a failing smoke test is retried until it passes.
//!
//! ```text
//! cargo run --example deploy                          # deploys
//! cargo run --example deploy -- --fail migrate_db     # migrate fails: push and build are undone
//! cargo run --example deploy -- --fail smoke_test     # past the pivot: retried, then deployed
//! cargo run --example deploy -- --crash-at migrate_db # the process dies mid-step...
//! cargo run --example deploy -- --crash-at migrate_db # ...and the same command resumes it
//! cargo run --example deploy -- --fail shift_traffic --crash-at rollback_db  # dies mid-undo
//! cargo run --example deploy -- --db postgres://postgres@127.0.0.1:5432/test  # on PostgreSQL
//! ```
//!
//! Each process is a replica: it registers the saga (`Deploy::register`), so that it takes up
//! by itself any deployment another replica on the same database leaves (its lease ran out, or
//! it drained). Ctrl-C or SIGTERM (what a deploy sends a replica it replaces) drains it: no new
//! step starts, the running one has up to 30 s to end, and the deployment is handed over at
//! once to another replica instead of after a lease. To see it go on there, start a second
//! replica beside the first, under an owner id of its own, before stopping the first:
//!
//! ```text
//! cargo run --example deploy                          # replica 1 deploys; Ctrl-C it mid-way...
//! cargo run --example deploy -- --owner replica-2     # ...replica 2 takes it up, beside its own
//! ```
//!
//! The deployment's parameters are kept with the run, so a resumed deployment is the one that
//! was started, whatever the new command line says; a crash happens on a step's first attempt
//! only, so the resumed run gets through.

use std::io::IsTerminal as _;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sagaflow::prelude::*;
use sagaflow::runtime::{Event, EventKind};
use sagaflow::{SagaOutcome, SqliteOptions};
// The facade's `postgres` feature re-exports these; the example has the crate itself.
use sagaflow_postgres::{PgOptions, PgStore};
use serde::{Deserialize, Serialize};

/// What to deploy, and how this demonstration should misbehave.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Release {
    service: String,
    version: String,
    /// The steps (or compensations) that fail for good.
    fail: Vec<String>,
    /// The step (or compensation) in the middle of which the process dies.
    crash_at: Option<String>,
    /// How fast simulated work goes (1.0 = realistic).
    speed: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Image {
    release: Release,
    tag: String,
    digest: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pushed {
    image: Image,
    registry: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Migrated {
    pushed: Pushed,
    schema: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Live {
    migrated: Migrated,
    percent: u8,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Deployed {
    url: String,
    checks: u32,
}

/// The terminal's styles, off when stdout is not a terminal.
struct Style {
    on: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

static STYLE: OnceLock<Style> = OnceLock::new();
static STARTED: OnceLock<Instant> = OnceLock::new();

fn style() -> &'static Style {
    STYLE.get_or_init(|| Style {
        on: std::io::stdout().is_terminal(),
    })
}

fn clock() -> String {
    let t = STARTED.get_or_init(Instant::now).elapsed();
    style().paint("2", &format!("{:>5.1}s", t.as_secs_f64()))
}

/// What each step and compensation did, for the progress view to show when it ends: the
/// view prints the event log, which says when, not what.
static DETAILS: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

fn say(ctx: &StepContext, text: &str) {
    let undo = if ctx.run_id().as_str().contains("~undo") {
        "undo:"
    } else {
        ""
    };
    let key = format!("{undo}{}", ctx.step());
    if let Ok(mut details) = DETAILS.lock() {
        details.push((key, text.to_owned()));
    }
}

fn detail_of(key: &str) -> String {
    let Ok(details) = DETAILS.lock() else {
        return String::new();
    };
    details
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, text)| text.clone())
        .unwrap_or_default()
}

/// Simulated work: `ms` milliseconds at the release's speed, crashing half-way through when
/// this is where the demonstration crashes.
async fn work(release: &Release, ctx: &StepContext, name: &str, ms: u64) {
    let ms = (ms as f64 / release.speed.max(0.01)) as u64;
    tokio::time::sleep(Duration::from_millis(ms / 2)).await;
    if release.crash_at.as_deref() == Some(name) && ctx.attempt() == 1 {
        println!(
            "{} {}",
            clock(),
            style().paint(
                "1;31",
                &format!("💥 the process dies in the middle of `{name}`")
            ),
        );
        println!("        run the same command again: the deployment resumes where it stopped");
        // No destructor, no flush, no goodbye: as close to `kill -9` as a program gets.
        std::process::abort();
    }
    tokio::time::sleep(Duration::from_millis(ms - ms / 2)).await;
}

fn broken(release: &Release, name: &str) -> bool {
    release.fail.iter().any(|f| f == name)
}

async fn build_image(ctx: &StepContext, release: &Release) -> Result<Image, StepError> {
    say(
        ctx,
        &format!("docker build -t {}:{}", release.service, release.version),
    );
    work(release, ctx, "build_image", 1500).await;
    if broken(release, "build_image") {
        return Err(StepError::permanent(
            "compilation failed: 3 errors in src/main.rs",
        ));
    }
    Ok(Image {
        release: release.clone(),
        tag: format!("{}:{}", release.service, release.version),
        digest: "sha256:4f1c9e0b7a2d".to_owned(),
    })
}

async fn delete_image(
    ctx: &StepContext,
    release: &Release,
    image: &Image,
) -> Result<(), StepError> {
    say(ctx, &format!("docker rmi {} ({})", image.tag, image.digest));
    work(release, ctx, "delete_image", 400).await;
    if broken(release, "delete_image") {
        return Err(StepError::permanent(
            "image is in use by a running container",
        ));
    }
    Ok(())
}

async fn push_image(ctx: &StepContext, image: &Image) -> Result<Pushed, StepError> {
    let registry = "registry.example.com".to_owned();
    say(ctx, &format!("docker push {registry}/{}", image.tag));
    work(&image.release, ctx, "push_image", 900).await;
    if broken(&image.release, "push_image") {
        return Err(StepError::permanent(
            "registry refused the push: 403 Forbidden",
        ));
    }
    Ok(Pushed {
        image: image.clone(),
        registry,
    })
}

async fn untag_image(ctx: &StepContext, image: &Image, pushed: &Pushed) -> Result<(), StepError> {
    say(
        ctx,
        &format!("untag {}/{} in the registry", pushed.registry, image.tag),
    );
    work(&image.release, ctx, "untag_image", 300).await;
    if broken(&image.release, "untag_image") {
        return Err(StepError::permanent(
            "registry: 401 Unauthorized (token expired)",
        ));
    }
    Ok(())
}

async fn migrate_db(ctx: &StepContext, pushed: &Pushed) -> Result<Migrated, StepError> {
    let release = &pushed.image.release;
    say(
        ctx,
        "migrate orders: schema 41 -> 42 (add column `refunded_at`)",
    );
    work(release, ctx, "migrate_db", 1200).await;
    if broken(release, "migrate_db") {
        return Err(StepError::permanent(
            "migration 42 failed: lock timeout on `orders`",
        ));
    }
    Ok(Migrated {
        pushed: pushed.clone(),
        schema: 42,
    })
}

async fn rollback_db(
    ctx: &StepContext,
    pushed: &Pushed,
    migrated: &Migrated,
) -> Result<(), StepError> {
    say(
        ctx,
        &format!(
            "roll the schema back: {} -> {}",
            migrated.schema,
            migrated.schema - 1
        ),
    );
    work(&pushed.image.release, ctx, "rollback_db", 700).await;
    if broken(&pushed.image.release, "rollback_db") {
        return Err(StepError::permanent(
            "cannot roll back: the column has data",
        ));
    }
    Ok(())
}

async fn shift_traffic(ctx: &StepContext, migrated: &Migrated) -> Result<Live, StepError> {
    let release = &migrated.pushed.image.release;
    say(
        ctx,
        &format!("route 100% of traffic to {}", release.version),
    );
    work(release, ctx, "shift_traffic", 800).await;
    if broken(release, "shift_traffic") {
        return Err(StepError::permanent(
            "load balancer rejected the new target group",
        ));
    }
    Ok(Live {
        migrated: migrated.clone(),
        percent: 100,
    })
}

async fn smoke_test(ctx: &StepContext, live: &Live) -> Result<Deployed, StepError> {
    let release = &live.migrated.pushed.image.release;
    say(
        ctx,
        &format!(
            "GET https://{}.example.com/health ({}% of traffic)",
            release.service, live.percent
        ),
    );
    work(release, ctx, "smoke_test", 600).await;
    if broken(release, "smoke_test") && ctx.attempt() < 3 {
        return Err(StepError::permanent(
            "health check: 503 Service Unavailable",
        ));
    }
    Ok(Deployed {
        url: format!("https://{}.example.com", release.service),
        checks: 12,
    })
}

sagaflow::saga! {
    /// Build, push, migrate, shift traffic (the pivot), smoke-test.
    pub Deploy(Release) -> Deployed {
        build_image / delete_image -> push_image / untag_image -> migrate_db / rollback_db
            -> shift_traffic! -> smoke_test;
        build_image: retry(max_attempts = 3, initial = 200ms), timeout = 1m;
        push_image: retry(max_attempts = 3, initial = 200ms);
        smoke_test: retry(initial = 300ms, coefficient = 1.5);
        defaults: retry(max_attempts = 3, initial = 100ms);
    }
}

/// One line per state change, from the engine's live event log.
fn show(event: &Event, run: &str, started: &mut std::collections::HashMap<String, i64>) {
    let s = style();
    let undo = event.run_id.as_str() != run;
    let Some(step) = event.step.as_deref() else {
        return;
    };
    if step.starts_with('~') {
        return;
    }
    let label = if undo {
        let name = Deploy::definition()
            .compensation_of(step)
            .unwrap_or("undo")
            .to_owned();
        format!("{name:<14} (undo {step})")
    } else {
        format!("{step:<14}")
    };
    let detail = || {
        event
            .detail
            .as_deref()
            .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .and_then(|d| d.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_default()
    };
    let key = format!("{}{step}", if undo { "undo:" } else { "" });
    if event.kind == EventKind::StepStarted {
        started.entry(key.clone()).or_insert(event.at_ms);
    }
    let took = || {
        let ms = event.at_ms - started.get(&key).copied().unwrap_or(event.at_ms);
        let text = detail_of(&key);
        s.paint("2", &format!("{:>5.1}s  {text}", ms as f64 / 1000.0))
    };
    let line = match event.kind {
        EventKind::StepStarted if undo => s.paint("33", &format!("↩ {label}")),
        EventKind::StepStarted => s.paint("36", &format!("▸ {label}")),
        EventKind::StepCompleted if undo => {
            format!("{} {}", s.paint("33", &format!("✓ {label} undone")), took())
        }
        EventKind::StepCompleted => {
            format!("{} {}", s.paint("32", &format!("✓ {label} done  ")), took())
        }
        EventKind::StepRetrying => s.paint("35", &format!("⟳ {label} retrying: {}", detail())),
        EventKind::StepFailed => s.paint("31", &format!("✗ {label} failed: {}", detail())),
        _ => return,
    };
    println!("{} {line}", clock());
}

struct Args {
    /// A SQLite file, or a PostgreSQL server's URL (`postgres://...`).
    db: String,
    /// The schema on a PostgreSQL server (`sagaflow` unless given).
    schema: Option<String>,
    release: Release,
    /// An operator's action on a stuck deployment: `retry`, `skip` or `abandon`, and its id.
    operate: Option<(String, String)>,
    /// The replica's lease owner id: the same across restarts of one replica, another for each
    /// replica that runs beside it.
    owner: String,
}

fn args() -> Result<Args, String> {
    let mut db = std::env::temp_dir()
        .join("sagaflow-deploy.db")
        .display()
        .to_string();
    let mut release = Release {
        service: "shop-api".to_owned(),
        version: "v2.4.1".to_owned(),
        fail: Vec::new(),
        crash_at: None,
        speed: 1.0,
    };
    let mut operate = None;
    let mut schema = None;
    let mut owner = "deploy-example".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("`{arg}` needs a value"));
        match arg.as_str() {
            "--fail" => release.fail.push(value()?),
            "--retry" | "--skip" | "--abandon" => {
                operate = Some((arg.trim_start_matches('-').to_owned(), value()?));
            }
            "--crash-at" => release.crash_at = Some(value()?),
            "--version" => release.version = value()?,
            "--db" => db = value()?,
            "--schema" => schema = Some(value()?),
            "--owner" => owner = value()?,
            "--fast" => release.speed = 20.0,
            "-h" | "--help" => {
                return Err("usage: deploy [--fail STEP]... [--crash-at STEP] [--version V] [--db FILE|URL] [--schema S] [--owner ID] [--fast]\n\
                     \x20      deploy --retry RUN | --skip RUN | --abandon RUN   (a stuck deployment)\n\
                     STEP: build_image push_image migrate_db shift_traffic smoke_test\n\
                     \x20     delete_image untag_image rollback_db (compensations)"
                    .to_owned());
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    Ok(Args {
        db,
        schema,
        release,
        operate,
        owner,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Args {
        db,
        schema,
        release,
        operate,
        owner,
    } = match args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    STARTED.get_or_init(Instant::now);
    let s = style();
    // A stable owner id: this program restarted after a crash is the same service, and takes
    // its deployment up at once instead of waiting for the dead process's lease to expire.
    let (engine, db) = if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        let mut options = PgOptions::default().owner(&owner);
        if let Some(schema) = schema {
            options = options.schema(schema);
        }
        let store = PgStore::connect(&db, options).await?;
        let label = store.url().to_owned();
        (Engine::builder().store(Arc::new(store)).build(), label)
    } else {
        let options = SqliteOptions::default().owner(&owner);
        (Engine::open_with(&db, options)?, db)
    };
    let events = engine.subscribe();
    // A replica: deployments other replicas leave are taken up here by themselves.
    Deploy::register(&engine)?;

    if let Some((action, run)) = operate {
        println!(
            "{}",
            s.paint(
                "1",
                &format!("{action} the compensation of stuck deployment {run}")
            )
        );
        let handle = match action.as_str() {
            "retry" => Deploy::retry(&engine, run).await?,
            "skip" => Deploy::skip(&engine, run).await?,
            _ => Deploy::abandon(&engine, run).await?,
        };
        return follow(&engine, events, handle).await;
    }
    // What an operator asked from outside (`sagaflow retry|skip|abandon RUN`) comes first.
    if let Some(handle) = Deploy::definition()
        .serve_requests(&engine)
        .await?
        .into_iter()
        .next()
    {
        let run = handle.run_id().as_str().to_owned();
        println!(
            "{}",
            s.paint("1", &format!("acting on an operator's request for {run}"))
        );
        return follow(&engine, events, handle).await;
    }
    // A deployment a crash interrupted comes next; otherwise a new one starts.
    let recovered = Deploy::recover(&engine).await?;
    for (run, error) in &recovered.failed {
        eprintln!("could not take up deployment {run}: {error}");
    }
    let handle = match recovered.runs.into_iter().next() {
        Some(handle) => {
            println!(
                "{}",
                s.paint(
                    "1",
                    &format!(
                        "resuming deployment {} after a crash (database {})",
                        handle.run_id(),
                        db
                    )
                )
            );
            handle
        }
        None => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis();
            let run_id = format!("deploy-{}-{}-{stamp}", release.service, release.version);
            println!(
                "{}",
                s.paint(
                    "1",
                    &format!(
                        "deploying {} {} as {run_id} (database {})",
                        release.service, release.version, db
                    )
                )
            );
            Deploy::start(&engine, run_id, release).await?
        }
    };
    follow(&engine, events, handle).await
}

/// How long a replica asked to stop lets its running step end before it cuts it.
const GRACE: Duration = Duration::from_secs(30);

/// Resolves at Ctrl-C or, on Unix, SIGTERM.
async fn stop_asked() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Prints the deployment's events until it ends, then how it ended.
async fn follow(
    engine: &Engine,
    mut events: sagaflow::runtime::EventStream,
    handle: sagaflow::SagaHandle<Deployed>,
) -> Result<(), Box<dyn std::error::Error>> {
    let s = style();
    let run = handle.run_id().as_str().to_owned();
    let handle_id = run.clone();
    let printer = tokio::spawn(async move {
        let mut started = std::collections::HashMap::new();
        while let Some(Ok(event)) = events.next().await {
            let mine = event.run_id.as_str() == run
                || event.run_id.as_str().starts_with(&format!("{run}~undo"));
            if mine {
                show(&event, &run, &mut started);
            }
        }
    });
    let outcome = tokio::select! {
        outcome = handle.wait() => outcome?,
        () = stop_asked() => {
            println!();
            println!("{}", s.paint("1", &format!("asked to stop: draining (up to {GRACE:?})")));
            let drained = engine.shutdown(GRACE).await;
            printer.abort();
            if let Some(error) = drained.error {
                println!("  the store could not hand the runs over ({error}): they are taken up once their leases run out");
            } else if !drained.released.is_empty() {
                println!("  handed over to another replica: {} run(s)", drained.released.len());
            }
            return Ok(());
        }
    };
    // Let the feed print the last events before the summary.
    tokio::time::sleep(Duration::from_millis(50)).await;
    printer.abort();
    println!();
    match outcome {
        SagaOutcome::Completed(report) => {
            println!(
                "{}",
                s.paint(
                    "1;32",
                    &format!(
                        "deployed: {} passed {} checks",
                        report.output.url, report.output.checks
                    )
                )
            );
        }
        SagaOutcome::Compensated {
            cause,
            undone,
            skipped,
        } => {
            let headline = if skipped.is_empty() {
                "rolled back: nothing of this deployment is left".to_owned()
            } else {
                format!(
                    "rolled back, but for what an operator skipped: {}",
                    skipped.join(", ")
                )
            };
            println!("{}", s.paint("1;33", &headline));
            println!("  because: {cause}");
            println!("  undone, newest first: {}", undone.join(", then "));
        }
        SagaOutcome::Stuck { step, error, .. } => {
            println!(
                "{}",
                s.paint(
                    "1;31",
                    &format!("stuck: the compensation of `{step}` failed: {error}")
                )
            );
            let run = handle_id;
            println!("  an operator can retry it, skip it, or abandon the deployment:");
            println!("    cargo run --example deploy -- --retry {run}    (or --skip, --abandon)");
            std::process::exit(1);
        }
        SagaOutcome::Abandoned { cause } => {
            println!(
                "{}",
                s.paint(
                    "1;31",
                    "abandoned: the rest is left for a person to clean up"
                )
            );
            println!("  because: {cause}");
        }
        other => println!("{other:?}"),
    }
    Ok(())
}
