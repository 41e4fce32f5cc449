//! The PostgreSQL backend: the conformance suite, and the promises that depend on what
//! the database and its dumps hold. Every test makes its own pair of schemas (data and
//! keys) in the database `DISCREET_TEST_POSTGRES` names, and drops them after; without
//! that variable each test prints why it is skipped and passes.
//!
//! By theme: `privacy` (no plaintext in a dump, ciphertexts bound to their rows, a data
//! dump holds no key, backups useless after a forget), `operations` (migrations, several
//! writers on one schema, keys vacuumed after a forget).

mod cluster;
mod operations;
mod privacy;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use discreet_vault::conformance::ConformanceBackend;
use discreet_vault::postgres::PgRuntime;
use discreet_vault::{Access, Event, KekRing, NewEvent, PostgresOptions, Vault};

/// The variable that names the test database.
const TEST_DATABASE: &str = "DISCREET_TEST_POSTGRES";

static NEXT_SCHEMA: AtomicUsize = AtomicUsize::new(0);

/// A fresh pair of schemas in the test database, dropped when this is.
pub struct PostgresBackend {
    pub settings: String,
    pub data_schema: String,
    pub key_schema: String,
    pub kek_hex: String,
    runtime: PgRuntime,
}

impl PostgresBackend {
    /// A new pair of schemas, or `None` (after saying why) when no test database is named.
    pub fn new() -> Option<Self> {
        let Ok(settings) = std::env::var(TEST_DATABASE) else {
            eprintln!(
                "skipped: {TEST_DATABASE} is not set (connection settings of a PostgreSQL \
                 database the tests may create schemas in, e.g. `host=127.0.0.1 user=postgres dbname=test`)"
            );
            return None;
        };
        let unique = format!(
            "{}_{}_{}",
            std::process::id(),
            NEXT_SCHEMA.fetch_add(1, Ordering::SeqCst),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.subsec_nanos())
                .unwrap_or(0)
        );
        let kek_hex = (0..32)
            .map(|i| format!("{:02x}", (i * 11 + 5) as u8))
            .collect();
        Some(PostgresBackend {
            settings,
            data_schema: format!("test_data_{unique}"),
            key_schema: format!("test_keys_{unique}"),
            kek_hex,
            runtime: PgRuntime::new().expect("runtime"),
        })
    }

    pub fn options(&self) -> PostgresOptions {
        let mut options = PostgresOptions::new(self.settings.clone())
            .with_schemas(&self.data_schema, &self.key_schema);
        options.pool_size = 4;
        options
    }

    /// Runs `work` on a plain connection to the test database (no search path set).
    pub fn sql<T: Send + 'static, F>(
        &self,
        work: impl FnOnce(tokio_postgres::Client) -> F + Send + 'static,
    ) -> T
    where
        F: Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
    {
        let settings = self.settings.clone();
        self.runtime
            .run(async move {
                let (client, connection) =
                    tokio_postgres::connect(&settings, tokio_postgres::NoTls)
                        .await
                        .map_err(|error| discreet_vault::Error::Storage {
                            detail: error.to_string(),
                        })?;
                let driver = tokio::spawn(connection);
                let outcome = work(client)
                    .await
                    .map_err(|error| discreet_vault::Error::Storage {
                        detail: format!("{error:?}"),
                    });
                let _ = driver.await;
                outcome
            })
            .expect("test SQL")
    }

    /// Runs statements (no results) against the test database.
    pub fn execute(&self, statements: &str) {
        let statements = statements.to_owned();
        self.sql(move |client| async move { client.batch_execute(&statements).await })
    }

    /// The first column of the first row of `query`, as a 64-bit integer.
    pub fn query_i64(&self, query: &str) -> i64 {
        let query = query.to_owned();
        self.sql(move |client| async move { client.query_one(&query, &[]).await?.try_get(0) })
    }

    /// The first two columns of every row of `query`: an integer and bytes.
    pub fn query_pairs(&self, query: &str) -> Vec<(i64, Vec<u8>)> {
        let query = query.to_owned();
        self.sql(move |client| async move {
            client
                .query(&query, &[])
                .await?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect()
        })
    }
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        let statements = format!(
            "DROP SCHEMA IF EXISTS {} CASCADE; DROP SCHEMA IF EXISTS {} CASCADE;",
            self.data_schema, self.key_schema
        );
        let settings = self.settings.clone();
        let _ = self.runtime.run(async move {
            if let Ok((client, connection)) =
                tokio_postgres::connect(&settings, tokio_postgres::NoTls).await
            {
                let driver = tokio::spawn(connection);
                let _ = client.batch_execute(&statements).await;
                drop(client);
                let _ = driver.await;
            }
            Ok(())
        });
    }
}

impl ConformanceBackend for PostgresBackend {
    fn open_with(&self, keks: KekRing) -> discreet_vault::Result<Vault> {
        Vault::open_postgres(&self.options(), keks)
    }

    fn kek_hex(&self) -> String {
        self.kek_hex.clone()
    }
}

mod conformance {
    use super::PostgresBackend;

    discreet_vault::conformance_tests!(PostgresBackend::new());
}

const READER: Access<'static> = Access {
    actor: "test",
    purpose: "personalization",
};

/// A customer's events, read through one lookup as the engine does.
fn events_of(vault: &Vault, customer: &str) -> discreet_vault::Result<Vec<Event>> {
    vault.events_of(vault.active_subject_id(customer)?, READER)
}

fn purchase(subject: &str, item: &str, at: i64) -> NewEvent {
    NewEvent {
        subject: subject.into(),
        category: "user.behavior.purchase_history".into(),
        at,
        payload: format!("{{\"type\":\"purchase\",\"item\":\"{item}\",\"quantity\":6}}")
            .into_bytes(),
    }
}
