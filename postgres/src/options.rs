//! How a [`PgStore`](crate::PgStore) connects: the options, and the server's URL as errors name
//! it (without its password).

use std::time::Duration;

use sagaflow_core::runtime::error::StoreError;
use tokio_postgres::config::Host;

/// How a [`PgStore`](crate::PgStore) works with its server. Start from [`PgOptions::default`]
/// and the setters: the options may grow, so the struct cannot be written out.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgOptions {
    /// The schema the store's tables live in, created if missing; `sagaflow` by default.
    /// Stores on one database with different schemas share nothing, which is how the tests
    /// run side by side on one server. An identifier: ASCII letters, digits and `_`, not
    /// starting with a digit, at most 63 bytes.
    pub schema: String,
    /// The id this store holds leases under. Two live stores must not share one: each would
    /// take the other's runs up as its own.
    ///
    /// `None` (the default): the first of `<host>-0`, `<host>-1`, … in the schema that no
    /// live store holds, held under a session advisory lock on a connection of the store's
    /// own for its life. A process restarted after a crash, on the same host, gets its id
    /// back and takes its runs up at once, without waiting out their leases. If that
    /// connection is lost (another process may then claim the id), the store renews no lease
    /// and takes no run up until it has claimed the id again, which it tries every second;
    /// its writes go on, each fenced by its run's token. Behind a pooler in transaction mode
    /// ([`transaction_pooling`](Self::transaction_pooling)), where no session lock can be
    /// held, the default is `<host>-<pid>-<random>`, new in every process: a restarted one
    /// waits out its runs' leases.
    ///
    /// `Some`: this id, as given, with no lock: keeping it to one live process is the
    /// operator's part.
    pub owner: Option<String>,
    /// How long a lease lasts unless renewed; 30 s by default. The store renews its leases
    /// every third of it; another replica may take a run over once its lease has expired.
    /// Leases are timed by the server's clock, so replicas on hosts whose clocks differ agree.
    pub lease: Duration,
    /// How many times a run may be taken up before it is parked instead; 100 by default.
    pub max_recoveries: u32,
    /// Connections for reads and the writes outside a group commit (signals, machines,
    /// leases taken up), besides the writers' own connections; 4 by default.
    pub pool_size: usize,
    /// Writer connections; 2 by default. Whichever writer is free takes the checkpoints
    /// waiting and gathers them into a batch; when a batch holds at least 32 writes, it is
    /// cut into shares, one for each writer that is free, which commit side by side, each in
    /// a transaction of its own (the log is numbered by transaction, not under a lock), so
    /// that the batch's work on the server is done by as many server processes; and the
    /// checkpoints that come while one writer commits are gathered by another at once. With
    /// 100 concurrent runs on one 2-core machine, a second writer gave 23–42% more steps a
    /// second (benches/README.md, sessions 21 and 22); 3 or 4 gave less than 2 there; 1 saves
    /// a connection.
    pub writers: usize,
    /// How long connecting may take before it is an error; 10 s by default.
    pub connect_timeout: Duration,
    /// The server cancels a statement that runs longer (`statement_timeout`); 30 s by
    /// default, so that a stuck server surfaces as an error, not a hang. The writer also
    /// gives a connection up as lost when a batch has had no answer for this long and 2 s
    /// more (a server or link that stopped answering), and settles the batch on a new one.
    pub statement_timeout: Duration,
    /// The server gives up waiting for a lock after this long (`lock_timeout`); 10 s by
    /// default.
    pub lock_timeout: Duration,
    /// How long the writer keeps trying to reconnect when its connection is lost (the server
    /// restarted, a link went down) before the writes waiting fail; 30 s by default. The
    /// writes wait meanwhile, so a restart of the server is a pause, not an error.
    pub reconnect_timeout: Duration,
    /// The store works behind a connection pooler in transaction mode (PgBouncer's
    /// `pool_mode = transaction`), where a connection is the store's for one transaction only;
    /// `false` by default. The URL may say so too, with `transaction_pooling=true`; either
    /// turns it on. What changes:
    ///
    /// - Every statement is unnamed (parsed, bound and run in one message), never a prepared
    ///   statement, which would stay on a server connection the pooler hands to others.
    /// - The store's settings (the schema on the search path, the statement and lock
    ///   timeouts) are set for each transaction (`SET LOCAL`), not at connecting: the pooler
    ///   refuses them as startup parameters. A statement on its own is sent as a transaction
    ///   of its own, `BEGIN` and the settings, the statement, `COMMIT`, in one round trip.
    /// - Migrations hold their lock for a transaction (`pg_advisory_xact_lock`), not a
    ///   session.
    /// - No connection listens for signals (the pooler drops notifications): an engine
    ///   waiting for a signal another replica delivered finds it at its next poll, not at once.
    pub transaction_pooling: bool,
    /// A checkpoint that completes a step and starts the next writes one row of the event
    /// log, not two (schema version 10, `events.next_step`): half the rows and index entries
    /// of most checkpoints, which is what the server spends most on in a batch; and so does a
    /// run's creation with its first step's start. `true` by default. Every reader since
    /// schema 10 reads such a row as the two events it stands for (the live feed, `steps`,
    /// `inspect`, a run's reload), whatever its kind, but a replica of a release before
    /// schema 10 would read the completion and miss the start. A rolling upgrade from the
    /// release before this one (which reads such rows and writes none) needs nothing; one
    /// straight from a release before schema 10 sets this `false` until no replica of that
    /// release runs on the schema, then turns it on. Behind a pooler
    /// ([`transaction_pooling`](Self::transaction_pooling)) a batch of several writes still
    /// logs two rows (its changes go through `record_v2`).
    pub compact_log: bool,
    /// Whether a write that comes alone, while no writer is busy, is committed by its caller
    /// (the run's task) on a writer's connection, rather than handed to the writer's task
    /// and answered back; `true` by default. That saves two hand-offs between tasks, often
    /// two thread wake-ups: about 20 µs of a sequential step that costs 300 µs (benches/README.md,
    /// "Durable steps on PostgreSQL"). Writes that come together still go to the writers, to
    /// share transactions: after a batch of several writes, the next write is queued too.
    /// A caller that stops waiting leaves its commit to finish on a task of its own.
    pub commit_on_caller: bool,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            schema: "sagaflow".to_owned(),
            owner: None,
            lease: Duration::from_secs(30),
            max_recoveries: 100,
            pool_size: 4,
            writers: 2,
            connect_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(10),
            reconnect_timeout: Duration::from_secs(30),
            transaction_pooling: false,
            compact_log: true,
            commit_on_caller: true,
        }
    }
}

impl PgOptions {
    /// These options with the schema set (see [`schema`](Self::schema)).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// These options with the lease owner id set.
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// These options with the lease duration set (at least 1 ms).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(1));
        self
    }

    /// These options with the maximum number of recoveries set.
    pub fn max_recoveries(mut self, max: u32) -> Self {
        self.max_recoveries = max;
        self
    }

    /// These options with the pool's size set (at least 1).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// These options with the number of writer connections set (at least 1; see
    /// [`writers`](Self::writers)).
    pub fn writers(mut self, writers: usize) -> Self {
        self.writers = writers.clamp(1, 64);
        self
    }

    /// These options with [`compact_log`](Self::compact_log) set.
    pub fn compact_log(mut self, compact: bool) -> Self {
        self.compact_log = compact;
        self
    }

    /// These options with the connect timeout set.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// These options with the statement timeout set.
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// These options with the reconnect timeout set.
    pub fn reconnect_timeout(mut self, timeout: Duration) -> Self {
        self.reconnect_timeout = timeout;
        self
    }

    /// These options with the lock timeout set.
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// These options for a server behind a connection pooler in transaction mode, or not (see
    /// [`transaction_pooling`](Self::transaction_pooling)).
    pub fn transaction_pooling(mut self, pooling: bool) -> Self {
        self.transaction_pooling = pooling;
        self
    }

    /// Sets [`commit_on_caller`](Self::commit_on_caller).
    pub fn commit_on_caller(mut self, on_caller: bool) -> Self {
        self.commit_on_caller = on_caller;
        self
    }
}

/// The server's URL as the store's errors name it: user, hosts, ports and database, never the
/// password.
pub(crate) fn label(config: &tokio_postgres::Config) -> String {
    let user = config.get_user().unwrap_or("");
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            match config.get_ports().get(i).or(config.get_ports().first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    let db = config.get_dbname().unwrap_or(user);
    let at = if user.is_empty() { "" } else { "@" };
    format!("postgres://{user}{at}{}/{db}", hosts.join(","))
}

/// Parses `url`; an error names the URL without its password.
pub(crate) fn parse(url: &str) -> Result<crate::connect::Target, StoreError> {
    let refused = |message: String| StoreError::Open {
        path: redact(url),
        message,
    };
    let split = crate::tls::split(url)
        .map_err(|e| refused(format!("not a PostgreSQL connection string: {e}")))?;
    let config = split
        .url
        .parse::<tokio_postgres::Config>()
        .map_err(|e| refused(format!("not a PostgreSQL connection string: {e}")))?;
    let tls = crate::tls::connector(split.mode, split.root_cert.as_deref())
        .map_err(|e| refused(format!("TLS: {e}")))?;
    Ok(crate::connect::Target {
        config,
        tls,
        pooled: split.transaction_pooling,
    })
}

/// `url` with whatever sits between `://user:` and `@` replaced, for an error about a URL that
/// did not even parse.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        // A key=value string: drop any password=... pair.
        return url
            .split_whitespace()
            .filter(|pair| !pair.starts_with("password="))
            .collect::<Vec<_>>()
            .join(" ");
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &authority[..colon],
            &rest[at..]
        ),
        _ => url.to_owned(),
    }
}

/// Checks that `schema` is a plain identifier, so that it can be written into SQL as is.
pub(crate) fn check_schema(label: &str, schema: &str) -> Result<(), StoreError> {
    let mut chars = schema.chars();
    let plain = schema.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        Ok(())
    } else {
        Err(StoreError::Open {
            path: label.to_owned(),
            message: format!(
                "`{schema}` is not a schema name sagaflow uses: ASCII letters, digits and `_`, not starting with a digit, at most 63 bytes"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_label_never_shows_the_password() {
        let config = parse("postgres://app:s3cret@db.example:6432/orders").unwrap();
        assert_eq!(label(&config), "postgres://app@db.example:6432/orders");
        let config = parse("host=/run/postgresql user=postgres password=s3cret").unwrap();
        assert!(!label(&config).contains("s3cret"), "{}", label(&config));
    }

    #[test]
    fn an_unparsable_url_is_redacted_too() {
        assert_eq!(
            redact("postgres://app:s3cret@db/x?sslmode=bogus"),
            "postgres://app:***@db/x?sslmode=bogus"
        );
        assert_eq!(redact("host=db password=s3cret"), "host=db");
        let error = parse("postgres://app:s3cret@db/x?sslmode=bogus").unwrap_err();
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }

    #[test]
    fn a_schema_must_be_a_plain_identifier() {
        assert!(check_schema("u", "sagaflow_test_1").is_ok());
        for bad in ["", "1abc", "a-b", "a\"b", &"x".repeat(64)] {
            let error = check_schema("u", bad).unwrap_err();
            assert!(error.to_string().contains("not a schema name"), "{error}");
        }
    }
}
