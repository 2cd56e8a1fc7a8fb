//! A throwaway PostgreSQL server of a test's own, from the installed server binaries
//! (`initdb`, `pg_ctl`), so that a test may restart or stop it without disturbing the shared
//! server. Run as the `postgres` user when the tests run as root (the server refuses root).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A server in a temporary directory, on a port of its own; stopped and removed when dropped.
pub(crate) struct TempServer {
    dir: tempfile::TempDir,
    pub(crate) port: u16,
    /// Settings beyond the defaults, as `-c name=value`.
    settings: String,
}

/// Whether this process is root, so that servers (and PgBouncer) run as `postgres`.
pub(crate) fn as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Runs `program` with `args`, as `postgres` when this process is root.
fn run(program: &str, args: &[&str]) -> Output {
    let output = if as_root() {
        Command::new("runuser")
            .args(["-u", "postgres", "--", program])
            .args(args)
            .output()
    } else {
        Command::new(program).args(args).output()
    };
    output.unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn check(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A free TCP port on the loopback, as the system hands one out.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl TempServer {
    /// A new cluster, started. Panics (the test fails) if the binaries are missing.
    pub(crate) fn start() -> TempServer {
        Self::start_with(|_| Vec::new())
    }

    /// A new cluster, started with the settings `prepare` returns; `prepare` is handed the
    /// server's directory (the `postgres` user's) first, to put files there (certificates).
    pub(crate) fn start_with(
        prepare: impl FnOnce(&Path) -> Vec<(&'static str, String)>,
    ) -> TempServer {
        let dir = tempfile::Builder::new()
            .prefix("sagaflow-pg-")
            .tempdir()
            .expect("a temp dir");
        if as_root() {
            check(
                "chown",
                &Command::new("chown")
                    .args(["postgres:", &dir.path().display().to_string()])
                    .output()
                    .expect("chown runs"),
            );
        }
        let data = dir.path().join("data");
        check(
            "initdb",
            &run(
                "initdb",
                &[
                    "-D",
                    &data.display().to_string(),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                ],
            ),
        );
        let settings = prepare(dir.path())
            .into_iter()
            .map(|(name, value)| format!(" -c {name}={value}"))
            .collect();
        if as_root() {
            // What `prepare` wrote is the server's to read (a key must be its own, 0600).
            check(
                "chown",
                &Command::new("chown")
                    .args(["-R", "postgres:", &dir.path().display().to_string()])
                    .output()
                    .expect("chown runs"),
            );
        }
        let server = TempServer {
            dir,
            port: free_port(),
            settings,
        };
        server.pg_ctl("start");
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off{}",
            self.port,
            self.dir.path().display(),
            self.settings
        );
        let log = self.dir.path().join("server.log");
        let data = self.data();
        let mut args = vec![
            action,
            "-D",
            path(&data),
            "-w",
            "-m",
            "fast",
            "-l",
            path(&log),
        ];
        if action != "stop" {
            args.extend(["-o", &options]);
        }
        let output = run("pg_ctl", &args);
        if action != "stop" {
            check(&format!("pg_ctl {action}"), &output);
        }
    }

    /// The server's URL, database `postgres`.
    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Restarts the server: every connection is cut, and the server is back once this
    /// returns.
    pub(crate) fn restart(&self) {
        self.pg_ctl("restart");
    }

    /// Stops the server.
    pub(crate) fn stop(&self) {
        self.pg_ctl("stop");
    }

    /// Starts the server again after [`stop`](Self::stop).
    pub(crate) fn start_again(&self) {
        self.pg_ctl("start");
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

impl Drop for TempServer {
    fn drop(&mut self) {
        self.stop();
    }
}
