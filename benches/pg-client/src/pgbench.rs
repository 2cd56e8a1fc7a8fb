//! The floor: `pgbench` (libpq, C) running the same statements from a custom script.

use std::path::PathBuf;

use tokio::process::Command;

use crate::Result;

/// pgbench's single-row INSERT, the same row shape as the contenders'.
const INSERT_SCRIPT: &str = "\\set n random(1, 2000000000)\n\
INSERT INTO sagaflow_pgc_log (run_id, step, output) VALUES ('pgb-' || :client_id::text, 's' || :n::text, 'out-0000000000000042');\n";

/// pgbench's checkpoint: the same transaction as the contenders'. `:n` is drawn at random, so
/// a repeated step now and then takes the ON CONFLICT path; the run row is bumped every time.
const CHECKPOINT_SCRIPT: &str = "\\set n random(1, 2000000000)\n\
BEGIN;\n\
INSERT INTO sagaflow_pgc_steps (run_id, step, output) VALUES ('pgb-' || :client_id::text, 'p' || :n::text, 'out-0000000000000042') \
ON CONFLICT (run_id, step) DO UPDATE SET output = EXCLUDED.output;\n\
UPDATE sagaflow_pgc_runs SET version = version + 1, last_step = 'p' || :n::text WHERE run_id = 'pgb-' || :client_id::text;\n\
END;\n";

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Script {
    Insert,
    Checkpoint,
}

/// One pgbench run's figures.
pub(crate) struct Outcome {
    pub(crate) command: String,
    pub(crate) tps: f64,
    pub(crate) latency_ms: f64,
    pub(crate) transactions: u64,
}

/// The scripts, written to a folder of this run's own.
pub(crate) struct Scripts {
    dir: PathBuf,
}

impl Scripts {
    pub(crate) fn write() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("sagaflow-pg-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("insert.sql"), INSERT_SCRIPT)?;
        std::fs::write(dir.join("checkpoint.sql"), CHECKPOINT_SCRIPT)?;
        Ok(Self { dir })
    }

    /// `pgbench -n -M prepared -f SCRIPT -c CLIENTS -j JOBS -T SECONDS URL`.
    pub(crate) async fn run(
        &self,
        url: &str,
        script: Script,
        clients: usize,
        jobs: usize,
        seconds: u32,
    ) -> Result<Outcome> {
        let file = self.dir.join(match script {
            Script::Insert => "insert.sql",
            Script::Checkpoint => "checkpoint.sql",
        });
        let args = [
            "-n".to_owned(),
            "-M".to_owned(),
            "prepared".to_owned(),
            "-f".to_owned(),
            file.display().to_string(),
            "-c".to_owned(),
            clients.to_string(),
            "-j".to_owned(),
            jobs.to_string(),
            "-T".to_owned(),
            seconds.to_string(),
            url.to_owned(),
        ];
        let output = Command::new("pgbench")
            .args(&args)
            .output()
            .await
            .map_err(|e| format!("pgbench could not start: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let command = format!(
            "pgbench -n -M prepared -f {}.sql -c {clients} -j {jobs} -T {seconds}",
            match script {
                Script::Insert => "insert",
                Script::Checkpoint => "checkpoint",
            }
        );
        if !output.status.success() {
            return Err(format!(
                "{command} failed: {}{}",
                stdout,
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        let field = |prefix: &str| -> Result<f64> {
            let line = stdout
                .lines()
                .find(|l| l.starts_with(prefix))
                .ok_or_else(|| format!("{command}: no line `{prefix}` in its output:\n{stdout}"))?;
            let value = line[prefix.len()..]
                .split(|c: char| c.is_whitespace() || c == '/')
                .next()
                .unwrap_or_default();
            Ok(value
                .parse::<f64>()
                .map_err(|e| format!("{command}: `{line}`: {e}"))?)
        };
        Ok(Outcome {
            tps: field("tps = ")?,
            latency_ms: field("latency average = ")?,
            transactions: field("number of transactions actually processed: ")? as u64,
            command,
        })
    }

    pub(crate) fn remove(&self) {
        // Best effort: a left-over folder in /tmp is harmless.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
