//! How the store's statements go to the server: the one place that tells a connection of the
//! store's own from one behind a pooler in transaction mode (PgBouncer's `pool_mode =
//! transaction`, [`PgOptions::transaction_pooling`](crate::PgOptions::transaction_pooling)).
//!
//! On a connection of its own, the store sets its settings (`connect::settings`: the schema on
//! the search path, the timeouts) once, when it connects. The writer's few statements are
//! prepared, named, once for the connection's life; every other statement goes unnamed,
//! parsed, bound and run in one message (`query_typed`, with the parameters' types said by
//! the client: see [`Param`]): one round trip. (Given as text to tokio-postgres's `query`, a
//! statement is prepared first, a round trip of its own: until session 11, every statement on
//! the pool cost two, a queue's claim and a take-up's lease included.)
//!
//! Behind a pooler in transaction mode, a connection is the store's for one transaction only;
//! the next may run on another server connection, which knows neither the settings nor the
//! statements prepared, and whatever a session keeps would stay for the pooler's next client.
//! So every statement is unnamed, the writer's too, and every transaction sets the settings
//! first (`SET LOCAL`), which end with it. A statement on its own is sent as a
//! transaction of its own: `BEGIN` and the settings, the statement, `COMMIT`, written
//! together and answered in one round trip. Nothing the store does stays on a server
//! connection, and nothing another client left there (a `SET`) reaches the store's statements.

use std::future::Future;
use std::sync::Arc;

use futures_util::future::{join3, join4, join5};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Error, Row, Statement, Transaction};

/// How statements go to the server (see the module). Cheap to clone. The default is a
/// session on connections of the store's own.
#[derive(Debug, Clone, Default)]
pub(crate) struct Session {
    /// `None`: on connections of the store's own.
    pooled: Option<Arc<Pooled>>,
}

/// Behind a pooler in transaction mode: the settings each transaction sets.
#[derive(Debug)]
struct Pooled {
    /// `SET LOCAL` each setting.
    settings: String,
    /// `BEGIN` and the settings.
    begin: String,
}

impl Session {
    /// The session of a store with `options` on `target` (once `connect::configure`d).
    pub(crate) fn new(target: &crate::connect::Target, options: &crate::PgOptions) -> Session {
        Session::opening(target, options, "BEGIN")
    }

    /// The session of a reader that writes nothing (`inspect`): behind a pooler, each
    /// transaction is read-only, as its own connection's session is.
    pub(crate) fn read_only(
        target: &crate::connect::Target,
        options: &crate::PgOptions,
    ) -> Session {
        Session::opening(target, options, "BEGIN READ ONLY")
    }

    fn opening(
        target: &crate::connect::Target,
        options: &crate::PgOptions,
        begin: &str,
    ) -> Session {
        let pooled = target.pooled.then(|| {
            let settings = crate::connect::settings(options)
                .iter()
                .map(|(name, value)| format!("SET LOCAL {name} = {value}"))
                .collect::<Vec<_>>()
                .join("; ");
            let begin = format!("{begin}; {settings}");
            Arc::new(Pooled { settings, begin })
        });
        Session { pooled }
    }

    /// Behind a pooler in transaction mode.
    pub(crate) fn pooled(&self) -> bool {
        self.pooled.is_some()
    }

    /// What opens a transaction: `BEGIN`, and behind a pooler the settings for it.
    pub(crate) fn begin(&self) -> &str {
        self.pooled.as_ref().map_or("BEGIN", |pooled| &pooled.begin)
    }

    /// Statements on their own on `client`.
    pub(crate) fn on<'a>(&'a self, client: &'a Client) -> Link<'a> {
        Link {
            client,
            session: self,
        }
    }

    /// A transaction on `client`; behind a pooler, its settings set (a round trip more).
    pub(crate) async fn transaction<'a>(&self, client: &'a mut Client) -> Result<Tx<'a>, Error> {
        let tx = client.transaction().await?;
        if let Some(pooled) = &self.pooled {
            tx.batch_execute(&pooled.settings).await?;
        }
        Ok(Tx { tx })
    }

    /// Readies `client`, a connection that keeps statements (the writer's), for them: planned
    /// once (a generic plan), not at each use, where planning cost more than running them;
    /// and never by a sequential scan where an index serves. Every statement of the writer
    /// looks runs up by their id, but a generic plan is made once, often when the tables are
    /// new and empty, and kept until the server's statistics catch up (autovacuum's next
    /// `ANALYZE`, a minute or more later): a plan that scanned `runs` whole made each batch
    /// slower as the table grew (100 concurrent runs on a new database, wave after wave: from
    /// 42,000 steps a second to 19,000 in 10 s; with this, 40,000-41,000 throughout;
    /// benches/README.md, session 16). Behind a pooler nothing is kept, so there is nothing
    /// to ready.
    pub(crate) async fn plan_once(&self, client: &Client) -> Result<(), Error> {
        if self.pooled() {
            return Ok(());
        }
        client
            .batch_execute("SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off")
            .await
    }

    /// `sql`, kept for `client`'s life: prepared on it, or behind a pooler its text, sent
    /// unnamed at each use.
    pub(crate) async fn keep(&self, client: &Client, sql: &'static str) -> Result<Kept, Error> {
        Ok(match self.pooled {
            None => Kept::Prepared(client.prepare(sql).await?),
            Some(_) => Kept::Text(sql),
        })
    }
}

impl Session {
    /// Runs `sql` with `params` on `client`, a connection of the pool: prepared once for each
    /// connection it runs on and kept there (deadpool's statement cache: a fixed set, since
    /// `sql` is a literal), for a statement that runs often and costs the server more to plan
    /// than to run (a queue's claim: about 0.25 ms of planning at each use, unnamed). Behind a
    /// pooler, as any statement on its own (see [`Session::on`]).
    pub(crate) async fn query_cached(
        &self,
        client: &deadpool_postgres::Object,
        sql: &'static str,
        params: &[&dyn Param],
    ) -> Result<Vec<Row>, Error> {
        match self.pooled {
            None => {
                let statement = client.prepare_cached(sql).await?;
                client.query(&statement, &values(params)).await
            }
            Some(_) => self.on(client).query(sql, params).await,
        }
    }

    /// A transaction of two statements on `client`, a connection of the pool: `BEGIN` (and
    /// the settings, behind a pooler), `first`, `second`, `COMMIT`, all written before the
    /// first answer is read: one round trip, where `second` must read what `first` waited for
    /// (a lock: its snapshot is taken once `first` is done). `second` is prepared once per
    /// connection (see [`query_cached`](Self::query_cached)); its rows come back. After a
    /// failed statement the server answers the `COMMIT` with a rollback, and the failure is
    /// returned.
    pub(crate) async fn pipelined(
        &self,
        client: &deadpool_postgres::Object,
        first: &str,
        first_params: &[&dyn Param],
        second: &'static str,
        params: &[&dyn Param],
    ) -> Result<Vec<Row>, Error> {
        let prepared = match self.pooled {
            None => Some(client.prepare_cached(second).await?),
            Some(_) => None,
        };
        let main = async {
            match &prepared {
                Some(statement) => client.query(statement, &values(params)).await,
                None => client.query_typed(second, &typed(params)).await,
            }
        };
        let (begun, done, rows, committed) = join4(
            client.batch_execute(self.begin()),
            client.query_typed(first, &typed(first_params)),
            main,
            client.batch_execute("COMMIT"),
        )
        .await;
        begun?;
        done?;
        let rows = rows?;
        committed?;
        Ok(rows)
    }
}

impl Session {
    /// [`pipelined`](Self::pipelined) with a third statement, `then`, after `second` in the
    /// same transaction (it sees what `second` wrote): both their rows come back.
    pub(crate) async fn pipelined_then(
        &self,
        client: &deadpool_postgres::Object,
        first: &str,
        first_params: &[&dyn Param],
        (second, params): (&'static str, &[&dyn Param]),
        (then, then_params): (&'static str, &[&dyn Param]),
    ) -> Result<(Vec<Row>, Vec<Row>), Error> {
        let prepared = match self.pooled {
            None => Some((
                client.prepare_cached(second).await?,
                client.prepare_cached(then).await?,
            )),
            Some(_) => None,
        };
        let run = |which: usize| {
            let (sql, params) = if which == 0 {
                (second, params)
            } else {
                (then, then_params)
            };
            let statement = prepared
                .as_ref()
                .map(|(s, t)| if which == 0 { s } else { t });
            async move {
                match statement {
                    Some(statement) => client.query(statement, &values(params)).await,
                    None => client.query_typed(sql, &typed(params)).await,
                }
            }
        };
        let (begun, done, rows, then_rows, committed) = join5(
            client.batch_execute(self.begin()),
            client.query_typed(first, &typed(first_params)),
            run(0),
            run(1),
            client.batch_execute("COMMIT"),
        )
        .await;
        begun?;
        done?;
        let rows = rows?;
        let then_rows = then_rows?;
        committed?;
        Ok((rows, then_rows))
    }
}

/// A statement kept for a connection's life (see [`Session::keep`]).
#[derive(Debug)]
pub(crate) enum Kept {
    Prepared(Statement),
    Text(&'static str),
}

impl Kept {
    /// Runs the statement with `params` on `client`, in whatever transaction it is in; its
    /// request is written when the future is first polled.
    pub(crate) async fn query(
        &self,
        client: &Client,
        params: &[&dyn Param],
    ) -> Result<Vec<Row>, Error> {
        match self {
            Kept::Prepared(statement) => client.query(statement, &values(params)).await,
            Kept::Text(sql) => client.query_typed(sql, &typed(params)).await,
        }
    }
}

/// A statement's parameter: a value, and the type it goes as when no statement is prepared
/// to say which the server expects (behind a pooler). The Rust type says it, as it does for
/// a prepared statement, whose types the value must match.
pub(crate) trait Param: ToSql + Sync {
    /// The value's PostgreSQL type.
    fn pg_type(&self) -> Type;
    /// The value, as tokio-postgres takes it.
    fn value(&self) -> &(dyn ToSql + Sync);
}

macro_rules! params {
    ($($rust:ty => $pg:ident),+ $(,)?) => {
        $(impl Param for $rust {
            fn pg_type(&self) -> Type {
                Type::$pg
            }
            fn value(&self) -> &(dyn ToSql + Sync) {
                self
            }
        })+
    };
}

params! {
    bool => BOOL,
    i32 => INT4,
    i64 => INT8,
    &str => TEXT,
    String => TEXT,
    Option<i32> => INT4,
    Option<i64> => INT8,
    Option<&str> => TEXT,
    Option<String> => TEXT,
    Vec<bool> => BOOL_ARRAY,
    Vec<i64> => INT8_ARRAY,
    Vec<Option<i32>> => INT4_ARRAY,
    Vec<Option<i64>> => INT8_ARRAY,
    Vec<&str> => TEXT_ARRAY,
    Vec<Option<&str>> => TEXT_ARRAY,
    &[i64] => INT8_ARRAY,
    &[String] => TEXT_ARRAY,
}

fn values<'a>(params: &[&'a dyn Param]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|p| p.value()).collect()
}

fn typed<'a>(params: &[&'a dyn Param]) -> Vec<(&'a (dyn ToSql + Sync), Type)> {
    params.iter().map(|p| (p.value(), p.pg_type())).collect()
}

/// A connection, for statements on their own (see [`Session::on`]).
#[derive(Clone, Copy)]
pub(crate) struct Link<'a> {
    client: &'a Client,
    session: &'a Session,
}

impl Link<'_> {
    /// Behind a pooler, `statement` in a transaction of its own that sets the settings first:
    /// the three requests written at once (each future writes its own when first polled, and
    /// `join3` polls them in order), one round trip.
    async fn alone<T>(
        &self,
        begin: &str,
        statement: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let (begun, result, committed) = join3(
            self.client.batch_execute(begin),
            statement,
            // After a failed statement, the server answers with a rollback.
            self.client.batch_execute("COMMIT"),
        )
        .await;
        begun?;
        let value = result?;
        committed?;
        Ok(value)
    }

    pub(crate) async fn query(&self, sql: &str, params: &[&dyn Param]) -> Result<Vec<Row>, Error> {
        match &self.session.pooled {
            None => self.client.query_typed(sql, &typed(params)).await,
            Some(pooled) => {
                self.alone(&pooled.begin, self.client.query_typed(sql, &typed(params)))
                    .await
            }
        }
    }

    pub(crate) async fn query_opt(
        &self,
        sql: &str,
        params: &[&dyn Param],
    ) -> Result<Option<Row>, Error> {
        match &self.session.pooled {
            None => self.client.query_typed_opt(sql, &typed(params)).await,
            Some(pooled) => {
                self.alone(
                    &pooled.begin,
                    self.client.query_typed_opt(sql, &typed(params)),
                )
                .await
            }
        }
    }

    pub(crate) async fn query_one(&self, sql: &str, params: &[&dyn Param]) -> Result<Row, Error> {
        match &self.session.pooled {
            None => self.client.query_typed_one(sql, &typed(params)).await,
            Some(pooled) => {
                self.alone(
                    &pooled.begin,
                    self.client.query_typed_one(sql, &typed(params)),
                )
                .await
            }
        }
    }

    pub(crate) async fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<u64, Error> {
        match &self.session.pooled {
            None => self.client.execute_typed(sql, &typed(params)).await,
            Some(pooled) => {
                self.alone(
                    &pooled.begin,
                    self.client.execute_typed(sql, &typed(params)),
                )
                .await
            }
        }
    }
}

/// A transaction of the store's (see [`Session::transaction`]); rolled back if dropped
/// before [`commit`](Self::commit). Its statements go unnamed, one round trip each.
pub(crate) struct Tx<'a> {
    tx: Transaction<'a>,
}

impl Tx<'_> {
    pub(crate) async fn query_opt(
        &self,
        sql: &str,
        params: &[&dyn Param],
    ) -> Result<Option<Row>, Error> {
        self.tx.query_typed_opt(sql, &typed(params)).await
    }

    pub(crate) async fn query_one(&self, sql: &str, params: &[&dyn Param]) -> Result<Row, Error> {
        self.tx.query_typed_one(sql, &typed(params)).await
    }

    pub(crate) async fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<u64, Error> {
        self.tx.execute_typed(sql, &typed(params)).await
    }

    pub(crate) async fn commit(self) -> Result<(), Error> {
        self.tx.commit().await
    }
}
