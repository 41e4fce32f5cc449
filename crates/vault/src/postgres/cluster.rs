//! Several processes on one data schema: the change log every write of a joined process
//! adds to, the nodes table of heartbeats, the bell that wakes a node when another commits,
//! and once-only duties under advisory locks.
//!
//! A change row is written inside the writer's transaction, after the writer lock: the
//! transactions of every process take turns on that lock, so change sequence numbers are
//! committed in order (a reader that sees change N committed has seen every change below N
//! that ever commits). `pg_notify` in the same transaction rings the other processes at
//! commit; the notification carries nothing, it only wakes them to read the log after the
//! last change they applied. Rows hold clear metadata only: internal subject ids and event
//! sequence numbers.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use deadpool_postgres::Transaction;

use super::data_store::PostgresStorage;
use super::jobs::Job;
use super::rows::{execute, query_opt, query_rows};
use super::writer::WriterState;
use crate::error::{Error, Result};
use crate::storage::*;
use crate::vault::now_millis;

/// How long the bell's connection waits before it is made again after a failure.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);

/// The notification channel of a data schema (a hash of its name: a channel name is at
/// most 63 bytes, a schema name may be as long).
pub(super) fn channel(schema: &str) -> String {
    let hash = crate::crypto::sha256_parts(&[b"discreet/changes-channel/v1", schema.as_bytes()]);
    format!(
        "discreet_changes_{}",
        &crate::crypto::to_hex(&hash[..])[..24]
    )
}

/// The database's clock in unix milliseconds (every node's heartbeat is on one clock).
const DB_NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// Writes one change inside the writer's transaction, when this process joined; answers
/// its sequence number (`None` when not joined or nothing changed).
pub(super) async fn record_change(
    transaction: &Transaction<'_>,
    state: &WriterState,
    kind: ChangeKind,
    subjects: &[SubjectId],
    events: &[i64],
) -> Result<Option<i64>> {
    let Some(node) = &state.node else {
        return Ok(None);
    };
    let seq: i64 = query_opt(
        transaction,
        "INSERT INTO changes(at, node, kind, subjects, events) VALUES ($1, $2, $3, $4, $5)
         RETURNING seq",
        &[&now_millis(), node, &kind.as_str(), &subjects, &events],
        |row| Ok(row.try_get(0)?),
    )
    .await?
    .ok_or_else(|| Error::Storage {
        detail: "the change log answered no sequence number".into(),
    })?;
    execute(transaction, "SELECT pg_notify($1, '')", &[&state.channel]).await?;
    Ok(Some(seq))
}

fn change_from_row(row: &tokio_postgres::Row) -> Result<ChangeRow> {
    let kind: String = row.try_get(3)?;
    Ok(ChangeRow {
        seq: row.try_get(0)?,
        at: row.try_get(1)?,
        node: row.try_get(2)?,
        kind: ChangeKind::parse(&kind).ok_or_else(|| Error::Storage {
            detail: "the change log holds a change of an unknown kind (a newer build wrote it)"
                .into(),
        })?,
        subjects: row.try_get(4)?,
        events: row.try_get(5)?,
    })
}

fn node_from_row(row: &tokio_postgres::Row) -> Result<NodeRow> {
    Ok(NodeRow {
        id: row.try_get(0)?,
        started_at: row.try_get(1)?,
        heartbeat_at: row.try_get(2)?,
        applied_seq: row.try_get(3)?,
        live: row.try_get(4)?,
    })
}

const NODE_COLUMNS: &str = "id, started_at, heartbeat_at, applied_seq, live";

/// The advisory-lock key of a duty of a schema.
fn duty_key(schema: &str, name: &str) -> String {
    format!("discreet duty {schema} {name}")
}

/// A bell rung by the listening task.
struct Bell {
    rung: Mutex<u64>,
    ringing: Condvar,
}

impl Bell {
    fn ring(&self) {
        let mut rung = self.rung.lock().unwrap_or_else(|p| p.into_inner());
        *rung += 1;
        self.ringing.notify_all();
    }
}

impl ChangeBell for Bell {
    fn wait(&self, heard: u64, timeout: Duration) -> u64 {
        let rung = self.rung.lock().unwrap_or_else(|p| p.into_inner());
        let (rung, _) = self
            .ringing
            .wait_timeout_while(rung, timeout, |rung| *rung <= heard)
            .unwrap_or_else(|p| p.into_inner());
        *rung
    }
}

/// Listens on `channel` on a connection of its own for as long as anyone holds the bell;
/// rings on every notification and on every reconnection (what was missed meanwhile is
/// read from the log, not from notifications).
async fn listen(config: tokio_postgres::Config, channel: String, bell: std::sync::Weak<Bell>) {
    loop {
        if bell.strong_count() == 0 {
            return;
        }
        if let Ok((client, mut connection)) = config.connect(tokio_postgres::NoTls).await {
            // The connection is driven by a task of its own, which forwards notifications
            // (true) and the connection's end (false).
            let (heard, mut hearing) = tokio::sync::mpsc::unbounded_channel();
            let driver = tokio::spawn(async move {
                loop {
                    match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                        Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => {
                            if heard.send(true).is_err() {
                                return;
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => {
                            let _ = heard.send(false);
                            return;
                        }
                    }
                }
            });
            let statement = format!("LISTEN \"{channel}\"");
            if client.batch_execute(&statement).await.is_ok() {
                // Whatever was committed while not listening is in the log: read it.
                if let Some(bell) = bell.upgrade() {
                    bell.ring();
                }
                loop {
                    let message =
                        tokio::time::timeout(Duration::from_secs(1), hearing.recv()).await;
                    let Some(bell) = bell.upgrade() else {
                        driver.abort();
                        return;
                    };
                    match message {
                        Err(_) => {}
                        Ok(Some(true)) => bell.ring(),
                        Ok(Some(false) | None) => {
                            bell.ring();
                            break;
                        }
                    }
                }
            }
            driver.abort();
        }
        tokio::time::sleep(RECONNECT_PAUSE).await;
    }
}

impl ClusterLog for PostgresStorage {
    fn join(&self, node: &str) -> Result<()> {
        self.submit(Job::Join {
            node: node.to_owned(),
            channel: channel(self.schema()),
        })?
        .done()
    }

    fn changes_after(&self, after: i64, limit: usize) -> Result<Vec<ChangeRow>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |client| async move {
            query_rows(
                &client,
                "SELECT seq, at, node, kind, subjects, events FROM changes
                 WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&after, &limit],
                change_from_row,
            )
            .await
        })
    }

    fn changes_head(&self) -> Result<i64> {
        self.read(|client| async move {
            Ok(query_opt(
                &client,
                "SELECT COALESCE(MAX(seq), 0) FROM changes",
                &[],
                |row| Ok(row.try_get::<_, i64>(0)?),
            )
            .await?
            .unwrap_or(0))
        })
    }

    fn announce(&self, kind: ChangeKind, subjects: &[SubjectId], events: &[i64]) -> Result<i64> {
        let seq = self
            .submit(Job::Announce {
                kind,
                subjects: subjects.to_vec(),
                events: events.to_vec(),
            })?
            .count()?;
        Ok(i64::try_from(seq).unwrap_or(i64::MAX))
    }

    fn heartbeat(
        &self,
        node: &str,
        started_at: i64,
        applied: i64,
        rejoin: bool,
    ) -> Result<NodeRow> {
        let node = node.to_owned();
        self.read(move |client| async move {
            query_opt(
                &client,
                &format!(
                    "INSERT INTO nodes(id, started_at, heartbeat_at, applied_seq, live)
                     VALUES ($1, $2, {DB_NOW}, $3, true)
                     ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at,
                         applied_seq = GREATEST(nodes.applied_seq, excluded.applied_seq),
                         live = nodes.live OR $4
                     RETURNING {NODE_COLUMNS}"
                ),
                &[&node, &started_at, &applied, &rejoin],
                node_from_row,
            )
            .await?
            .ok_or_else(|| Error::Storage {
                detail: "the nodes table answered no row".into(),
            })
        })
    }

    fn db_now(&self) -> Result<i64> {
        self.read(|client| async move {
            query_opt(&client, &format!("SELECT {DB_NOW}"), &[], |row| {
                Ok(row.try_get::<_, i64>(0)?)
            })
            .await?
            .ok_or_else(|| Error::Storage {
                detail: "the database answered no time".into(),
            })
        })
    }

    fn erasures_announced(&self) -> Result<Vec<i64>> {
        self.read(|client| async move {
            let rows = query_rows(
                &client,
                "SELECT kind, events FROM changes WHERE kind IN ('erasing', 'erased') ORDER BY seq",
                &[],
                |row| Ok((row.try_get::<_, String>(0)?, row.try_get::<_, Vec<i64>>(1)?)),
            )
            .await?;
            let mut open = std::collections::BTreeSet::new();
            for (kind, events) in rows {
                if kind == "erasing" {
                    open.extend(events);
                } else {
                    for event in events {
                        open.remove(&event);
                    }
                }
            }
            Ok(open.into_iter().collect())
        })
    }

    fn prune_nodes(&self, silent_since: i64) -> Result<u64> {
        self.read(move |client| async move {
            execute(
                &client,
                "DELETE FROM nodes WHERE NOT live AND heartbeat_at < $1",
                &[&silent_since],
            )
            .await
        })
    }

    fn nodes(&self) -> Result<Vec<NodeRow>> {
        self.read(|client| async move {
            query_rows(
                &client,
                &format!("SELECT {NODE_COLUMNS} FROM nodes ORDER BY id"),
                &[],
                node_from_row,
            )
            .await
        })
    }

    fn mark_not_live(&self, nodes: &[String]) -> Result<()> {
        let nodes = nodes.to_vec();
        self.read(move |client| async move {
            execute(
                &client,
                "UPDATE nodes SET live = false WHERE id = ANY($1)",
                &[&nodes],
            )
            .await?;
            Ok(())
        })
    }

    fn leave(&self, node: &str) -> Result<()> {
        let node = node.to_owned();
        self.read(move |client| async move {
            execute(&client, "DELETE FROM nodes WHERE id = $1", &[&node]).await?;
            Ok(())
        })
    }

    fn events_by_seq(&self, seqs: &[i64]) -> Result<Vec<EventRow>> {
        let seqs = seqs.to_vec();
        self.read(move |client| async move {
            query_rows(
                &client,
                "SELECT seq, subject, category, at, sealed FROM events
                 WHERE seq = ANY($1) ORDER BY seq",
                &[&seqs],
                super::rows::event_from_row,
            )
            .await
        })
    }

    fn bell(&self) -> Result<Arc<dyn ChangeBell>> {
        let bell = Arc::new(Bell {
            rung: Mutex::new(0),
            ringing: Condvar::new(),
        });
        let config = super::connection_config(self.settings(), "the data", self.schema())?;
        self.runtime().spawn(listen(
            config,
            channel(self.schema()),
            Arc::downgrade(&bell),
        ));
        Ok(bell)
    }

    fn try_duty(&self, name: &str) -> Result<bool> {
        let key = duty_key(self.schema(), name);
        self.with_duties(move |client| async move {
            Ok(query_opt(
                &client,
                "SELECT pg_try_advisory_lock(hashtextextended($1::text, 0))",
                &[&key],
                |row| Ok(row.try_get::<_, bool>(0)?),
            )
            .await?
            .unwrap_or(false))
        })
    }

    fn release_duty(&self, name: &str) -> Result<()> {
        let key = duty_key(self.schema(), name);
        self.with_duties(move |client| async move {
            execute(
                &client,
                "SELECT pg_advisory_unlock(hashtextextended($1::text, 0))",
                &[&key],
            )
            .await?;
            Ok(())
        })
    }

    fn trim_changes(&self, before: i64) -> Result<u64> {
        self.read(move |client| async move {
            execute(
                &client,
                // Nodes not live rebuild from the tables when they come back: they do not
                // hold the log back.
                "DELETE FROM changes WHERE at < $1
                   AND seq <= COALESCE((SELECT MIN(applied_seq) FROM nodes WHERE live),
                                       (SELECT MAX(seq) FROM changes))",
                &[&before],
            )
            .await
        })
    }
}
