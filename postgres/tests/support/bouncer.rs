//! A PgBouncer of a test's own in transaction mode, in front of the tests' server: Debian's
//! package `pgbouncer` (`/usr/sbin/pgbouncer`), run as `postgres` when the tests run as root
//! (PgBouncer refuses to run as root), with its files in a directory of its own.
//!
//! PgBouncer runs under a shell that waits on its standard input, a pipe from this process,
//! and stops PgBouncer and removes the directory once the pipe closes: when the [`Bouncer`]
//! is dropped, or, for one kept for a whole test binary, when the test process ends, however
//! it ends.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio_postgres::config::Host;

use super::server::{as_root, free_port};

/// Where Debian's package puts it.
const PGBOUNCER: &str = "/usr/sbin/pgbouncer";

/// Runs PgBouncer (`$1`, with the configuration `$2`) until standard input closes, then
/// stops it and removes its directory (`$3`).
const SHELL: &str = r#""$1" "$2" & pid=$!
read -r _
kill "$pid" 2>/dev/null
wait "$pid"
rm -rf "$3""#;

/// A PgBouncer in transaction mode, stopped when dropped.
pub(crate) struct Bouncer {
    dir: PathBuf,
    pub(crate) port: u16,
    user: String,
    database: String,
    shell: Option<Child>,
}

/// The installed PgBouncer: Debian's, or one on the `PATH`.
fn installed() -> Option<PathBuf> {
    if Path::new(PGBOUNCER).is_file() {
        return Some(PathBuf::from(PGBOUNCER));
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join("pgbouncer"))
        .find(|path| path.is_file())
}

impl Bouncer {
    /// A PgBouncer in transaction mode with `pool_size` server connections in front of the
    /// server at `upstream` (a URL), listening on a free port of the loopback. `None` when
    /// PgBouncer is not installed, after one line that says how to install it; a panic (the
    /// test fails) then if `CI` is set.
    pub(crate) fn start(upstream: &str, pool_size: u32) -> Option<Bouncer> {
        let Some(program) = installed() else {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "pgbouncer is not installed (no {PGBOUNCER}, none on the PATH), and CI is set: `apt-get install -y pgbouncer`"
                );
            }
            eprintln!(
                "skipped: pgbouncer is not installed; `apt-get install -y pgbouncer` (Debian) to run this test"
            );
            return None;
        };
        let config: tokio_postgres::Config = upstream.parse().expect("the server's URL parses");
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(name)) => name.clone(),
            Some(Host::Unix(path)) => path.display().to_string(),
            None => "127.0.0.1".to_owned(),
        };
        let upstream_port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or("postgres").to_owned();
        let database = config.get_dbname().unwrap_or(&user).to_owned();
        let password = config
            .get_password()
            .map(|p| format!(" password='{}'", String::from_utf8_lossy(p)))
            .unwrap_or_default();

        let dir = tempfile::Builder::new()
            .prefix("sagaflow-pgbouncer-")
            .tempdir()
            .expect("a temp dir")
            .keep();
        let port = free_port();
        let file = |name: &str| dir.join(name).display().to_string();
        std::fs::write(dir.join("users.txt"), format!("\"{user}\" \"\"\n")).expect("writes");
        let ini = format!(
            "[databases]
{database} = host={host} port={upstream_port} dbname={database} user={user}{password}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {users}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 500
logfile = {log}
",
            users = file("users.txt"),
            log = file("pgbouncer.log"),
        );
        std::fs::write(dir.join("pgbouncer.ini"), ini).expect("writes");
        let mut command = if as_root() {
            let chown = Command::new("chown")
                .args(["-R", "postgres:", &dir.display().to_string()])
                .status()
                .expect("chown runs");
            assert!(chown.success(), "chown failed");
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--", "sh"]);
            command
        } else {
            Command::new("sh")
        };
        let shell = command
            .args(["-c", SHELL, "sh"])
            .arg(&program)
            .arg(file("pgbouncer.ini"))
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the shell starts");
        let bouncer = Bouncer {
            dir,
            port,
            user,
            database,
            shell: Some(shell),
        };
        bouncer.wait_until_listening();
        Some(bouncer)
    }

    fn wait_until_listening(&self) {
        let began = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                began.elapsed() < Duration::from_secs(10),
                "pgbouncer did not listen on port {} within 10 s; its log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// PgBouncer's log so far.
    pub(crate) fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(self.dir.join("pgbouncer.log")) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// The URL of the server's database through PgBouncer.
    pub(crate) fn url(&self) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{}",
            self.user, self.port, self.database
        )
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        if let Some(mut shell) = self.shell.take() {
            // The pipe closes: the shell stops PgBouncer, removes its directory and ends.
            drop(shell.stdin.take());
            let _ = shell.wait();
        }
    }
}
