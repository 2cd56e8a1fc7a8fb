//! Who holds leases: a store's owner id, and the advisory lock that keeps two live processes
//! from sharing one.
//!
//! A store holds its leases under an owner id. Without an explicit one
//! ([`PgOptions::owner`](crate::PgOptions::owner)) it takes the first free of `<host>-0`,
//! `<host>-1`, … in its schema, so that a process restarted after a crash, on the same host,
//! is the same owner and takes its runs up at once (their leases name it) instead of waiting
//! them out. Two live stores under one owner would each take the other's runs as their own,
//! so an id is held under a session advisory lock (`pg_try_advisory_lock`), on a connection
//! of its own kept for the store's life; the server lets the lock go when that connection
//! ends, the process's death included. The lock's keys are a purpose and the FNV-1a hash of
//! the schema and the id: ids of different schemas never meet, and two ids whose hashes
//! collide only make the second store take the next id.
//!
//! If that connection is lost (the server restarted, a link dropped, a ping went unanswered),
//! the id is no longer the store's alone: another process may claim it meanwhile. Until the
//! store claims it again (it tries every second, on a new connection), it renews no lease and
//! takes no run up ([`LeaseStore::acquire`](sagaflow_core::runtime::LeaseStore::acquire) is
//! refused), so that its runs, left to expire, go to whoever holds the id or to another
//! replica; its writes go on, each fenced by its run's token, so that one of a run another
//! owner took over is refused. Each change is logged: a warning when the id is lost, an
//! error if another connection holds it, and the id claimed again. The connection is pinged
//! every third of the lease (at most every 10 s), and the server is asked to probe it
//! (`tcp_keepalives_*`), so that a link that died quietly is noticed on both ends within a
//! lease or so.
//!
//! An explicit id ([`PgOptions::owner`](crate::PgOptions::owner)) is held under the same lock:
//! a store opened with an id another live store holds is refused
//! ([`StoreError::OwnerInUse`]), and the id is free once that store is gone.
//!
//! Behind a pooler in transaction mode ([`PgOptions::transaction_pooling`](crate::PgOptions::transaction_pooling))
//! no session lock can be held: the default id stays `<host>-<pid>-<random>`, new in every
//! process, and a restarted process waits out its runs' leases. An explicit owner is used as
//! given, with no lock: the operator keeps it to one live process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::Client;

use crate::connect::{Target, connect_watched};
use crate::error::{describe, pg_error};
use sagaflow_core::runtime::error::StoreError;

/// How many default ids (`<host>-0` to `<host>-63`) a store tries before it falls back to a
/// random one.
const DEFAULT_SLOTS: u32 = 64;

/// The first key of every owner lock (`SFO` and a version), as `schema::Locks` names theirs.
const PURPOSE: i32 = 0x5346_4f01;

/// How long the store waits between two tries to claim its id again.
const RETRY: Duration = Duration::from_secs(1);

/// The server closes the lock's connection after this long without an answer to its probes
/// (idle 10 s, then 3 probes 5 s apart): the id of a host that vanished is free within it.
const KEEPALIVES: &str =
    "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3";

/// The advisory lock keys of `owner` in `schema`.
pub(crate) fn key(schema: &str, owner: &str) -> (i32, i32) {
    let mut name = Vec::with_capacity(schema.len() + 1 + owner.len());
    name.extend_from_slice(schema.as_bytes());
    name.push(0);
    name.extend_from_slice(owner.as_bytes());
    let hash = sagaflow_graph::fnv::hash(&name);
    // The low 32 bits, as the i32 of the same bits.
    (PURPOSE, (hash as u32).cast_signed())
}

/// A store's owner id, and whether it holds it now. The watcher's task (if the id is held
/// under a lock) stops when this is dropped, and its connection closes with it.
#[derive(Debug)]
pub(crate) struct Owner {
    id: String,
    held: Held,
    watcher: Option<JoinHandle<()>>,
}

/// Whether a store holds its owner id now. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Held(Arc<AtomicBool>);

impl Held {
    /// The id is this store's alone (always, for an id held under no lock).
    pub(crate) fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    fn set(&self, held: bool) {
        self.0.store(held, Ordering::SeqCst);
    }
}

impl Owner {
    /// An id held under no lock.
    fn unlocked(id: String) -> Owner {
        Owner {
            id,
            held: Held(Arc::new(AtomicBool::new(true))),
            watcher: None,
        }
    }

    /// The id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Whether the store holds the id now, to ask later.
    pub(crate) fn held(&self) -> Held {
        self.held.clone()
    }

    /// Whether the store holds the id now.
    pub(crate) fn holds(&self) -> bool {
        self.held.get()
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        if let Some(watcher) = &self.watcher {
            // Drops the lock's client: its connection closes, and the server lets the lock go.
            watcher.abort();
        }
    }
}

/// The owner id of a store with `explicit` (if given) on `target`, in `schema`, whose leases
/// last `lease` (see the module).
pub(crate) async fn claim(
    target: &Target,
    label: &Arc<str>,
    schema: &str,
    explicit: Option<&str>,
    lease: Duration,
) -> Result<Owner, StoreError> {
    if target.pooled {
        return Ok(Owner::unlocked(
            explicit.map_or_else(random_owner, ToOwned::to_owned),
        ));
    }
    let (client, connection) = connect_watched(target, label).await?;
    probe(&client, label).await;
    let watched = |id: String, key: (i32, i32), client: Client, connection: JoinHandle<()>| {
        let held = Held(Arc::new(AtomicBool::new(true)));
        let watch = Watch {
            target: target.clone(),
            label: Arc::clone(label),
            id: id.clone(),
            key,
            held: held.clone(),
            period: (lease / 3).clamp(Duration::from_millis(100), Duration::from_secs(10)),
        };
        let watcher = tokio::spawn(watch.run(Lock { client, connection }));
        Owner {
            id,
            held,
            watcher: Some(watcher),
        }
    };
    if let Some(id) = explicit {
        // Held as a default id is: two live stores under one explicit id would each take the
        // other's runs as their own.
        let key = key(schema, id);
        let locked = try_lock(&client, key)
            .await
            .map_err(|e| pg_error(label, &e))?;
        return if locked {
            Ok(watched(id.to_owned(), key, client, connection))
        } else {
            Err(StoreError::OwnerInUse {
                path: label.to_string(),
                owner: id.to_owned(),
            })
        };
    }
    let host = host();
    for slot in 0..DEFAULT_SLOTS {
        let id = format!("{host}-{slot}");
        let key = key(schema, &id);
        if try_lock(&client, key)
            .await
            .map_err(|e| pg_error(label, &e))?
        {
            return Ok(watched(id, key, client, connection));
        }
    }
    let id = random_owner();
    tracing::warn!(
        database = %label,
        owner = %id,
        "every default owner id of this host is in use; this store takes a random one, so its runs wait out their leases after a crash"
    );
    Ok(Owner::unlocked(id))
}

/// A fresh owner id: the host, the process id and a random part, so that two stores never
/// share one.
pub(crate) fn random_owner() -> String {
    format!(
        "{}-{}-{:08x}",
        host(),
        std::process::id(),
        fastrand::u32(..)
    )
}

/// This host's name, as the default owner ids carry it (`localhost` if it has none).
fn host() -> String {
    let name = gethostname::gethostname().to_string_lossy().into_owned();
    let name = name.trim();
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        name.to_owned()
    }
}

/// Takes the lock `key` for `client`'s session, if no other session holds it.
async fn try_lock(client: &Client, (k1, k2): (i32, i32)) -> Result<bool, tokio_postgres::Error> {
    Ok(client
        .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&k1, &k2])
        .await?
        .get(0))
}

/// Asks the server to probe the lock's connection (see [`KEEPALIVES`]); without it (a server
/// that refuses, or a connection over a Unix socket, where it means nothing) the server's
/// own defaults stand.
async fn probe(client: &Client, label: &str) {
    if let Err(error) = client.batch_execute(KEEPALIVES).await {
        tracing::debug!(database = %label, error = %describe(&error), "the owner lock's connection keeps the server's keepalive settings");
    }
}

/// The connection that holds an owner lock, and the task that drives it.
struct Lock {
    client: Client,
    connection: JoinHandle<()>,
}

/// What the watcher of a held id needs.
struct Watch {
    target: Target,
    label: Arc<str>,
    id: String,
    key: (i32, i32),
    held: Held,
    period: Duration,
}

impl Watch {
    /// Keeps `lock`, pinging it; when it is lost, claims the id again on a new connection,
    /// as long as the store lives.
    async fn run(self, mut lock: Lock) {
        loop {
            let lost = self.hold(&mut lock).await;
            self.held.set(false);
            // Whatever state the connection is in, it goes (and the server's lock with it).
            lock.connection.abort();
            drop(lock);
            tracing::warn!(
                database = %self.label,
                owner = %self.id,
                reason = %lost,
                "lost the connection that holds this store's owner id: until it is claimed again, the store renews no lease and takes no run up"
            );
            lock = self.reclaim().await;
            self.held.set(true);
            tracing::info!(database = %self.label, owner = %self.id, "claimed this store's owner id again");
        }
    }

    /// Waits until the lock's connection ends or a ping goes unanswered: why.
    async fn hold(&self, lock: &mut Lock) -> String {
        let mut tick = tokio::time::interval(self.period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = &mut lock.connection => return "the connection ended".to_owned(),
                _ = tick.tick() => {
                    let ping = lock.client.simple_query("SELECT 1");
                    match tokio::time::timeout(self.period, ping).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(error)) => return describe(&error),
                        Err(_) => return format!("no answer to a ping within {:?}", self.period),
                    }
                }
            }
        }
    }

    /// Tries every [`RETRY`] to take the lock of the id again, until it does.
    async fn reclaim(&self) -> Lock {
        let mut reported = false;
        loop {
            tokio::time::sleep(RETRY).await;
            match self.try_claim().await {
                Ok(Some(lock)) => return lock,
                Ok(None) if !reported => {
                    reported = true;
                    tracing::error!(
                        database = %self.label,
                        owner = %self.id,
                        "another connection holds this store's owner id: another process may run under it, or the server has yet to notice the lost connection; this store keeps trying"
                    );
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::debug!(database = %self.label, owner = %self.id, %error, "the owner id could not be claimed again yet");
                }
            }
        }
    }

    async fn try_claim(&self) -> Result<Option<Lock>, StoreError> {
        let (client, connection) = connect_watched(&self.target, &self.label).await?;
        probe(&client, &self.label).await;
        let locked = try_lock(&client, self.key)
            .await
            .map_err(|e| pg_error(&self.label, &e))?;
        Ok(locked.then_some(Lock { client, connection }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keys_are_stable_and_differ_by_schema_and_id() {
        assert_eq!(key("sagaflow", "h-0").0, PURPOSE);
        assert_eq!(key("sagaflow", "h-0"), key("sagaflow", "h-0"));
        assert_ne!(key("sagaflow", "h-0"), key("sagaflow", "h-1"));
        assert_ne!(key("sagaflow", "h-0"), key("other", "h-0"));
        // The separator keeps `a` + `b-0` apart from `ab` + `-0`.
        assert_ne!(key("a", "b-0"), key("ab", "-0"));
    }
}
