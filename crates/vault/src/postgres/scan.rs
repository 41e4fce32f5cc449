//! The integrity scan on PostgreSQL: the data schema's seal, every ledger entry, API key
//! row, consent head and consent row, read from one repeatable-read snapshot (a write is
//! wholly in it or out) by a task on the backend's runtime, and handed to the caller's
//! visitor in chunks, so a long ledger is never held in memory whole. The ledger's reading
//! stops once the visitor has seen enough of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use deadpool_postgres::Pool;
use futures_util::StreamExt;
use tokio_postgres::IsolationLevel;

use super::rows::*;
use super::runtime::PgRuntime;
use super::writer::read_stored_seal;
use crate::error::{Error, Result};
use crate::integrity::ConsentHead;
use crate::ledger::LedgerRecord;
use crate::storage::*;

/// Rows handed from the snapshot to the caller at a time.
const SCAN_CHUNK: usize = 1_024;

/// Hands the seal and every row it covers to `visitor`, all from one repeatable-read
/// snapshot read by a task on `runtime` and handed over in chunks.
pub(super) fn integrity_scan(
    runtime: &PgRuntime,
    pool: Pool,
    visitor: &mut dyn IntegrityVisitor,
) -> Result<()> {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<ScanItem>>>(2);
    let ledger_done = Arc::new(AtomicBool::new(false));
    let producer_ledger_done = ledger_done.clone();
    runtime.spawn(async move {
        if let Err(error) = produce_scan(pool, &sender, &producer_ledger_done).await {
            let _ = sender.send(Err(error)).await;
        }
    });
    let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
    loop {
        let receiver = receiver.clone();
        let chunk = runtime.run(async move { Ok(receiver.lock().await.recv().await) })?;
        let Some(chunk) = chunk else {
            return Ok(());
        };
        for item in chunk? {
            match item {
                ScanItem::Seal(seal) => visitor.seal(seal),
                ScanItem::Ledger(record) => {
                    if !ledger_done.load(Ordering::SeqCst) && !visitor.ledger(&record) {
                        ledger_done.store(true, Ordering::SeqCst);
                    }
                }
                ScanItem::ApiKey(key) => visitor.api_key(key),
                ScanItem::ConsentHead(head) => visitor.consent_head(head),
                ScanItem::Consent(consent) => visitor.consent(consent),
            }
        }
    }
}

/// Reads one row of a scan's query.
type ReadScanItem = fn(&tokio_postgres::Row) -> Result<ScanItem>;

/// One row of an integrity scan, handed from the snapshot to the caller.
enum ScanItem {
    Seal(Option<StoredSeal>),
    Ledger(LedgerRecord),
    ApiKey(StoredApiKey),
    ConsentHead(ConsentHead),
    Consent(StoredConsent),
}

/// Reads the seal and every row it covers from one snapshot and hands them over in chunks;
/// stops reading the ledger once the caller has seen enough of it.
async fn produce_scan(
    pool: Pool,
    sender: &tokio::sync::mpsc::Sender<Result<Vec<ScanItem>>>,
    ledger_done: &AtomicBool,
) -> Result<()> {
    let closed = || Error::Storage {
        detail: "the integrity scan was abandoned".into(),
    };
    let mut client = pool.get().await?;
    let snapshot = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let seal = read_stored_seal(&snapshot).await?;
    sender
        .send(Ok(vec![ScanItem::Seal(seal)]))
        .await
        .map_err(|_| closed())?;
    let mut chunk = Vec::with_capacity(SCAN_CHUNK);
    let queries: [(String, ReadScanItem); 4] = [
        (
            format!("SELECT {LEDGER_COLUMNS} FROM ledger ORDER BY seq"),
            |row| Ok(ScanItem::Ledger(ledger_from_row(row)?)),
        ),
        (
            format!("SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"),
            |row| Ok(ScanItem::ApiKey(api_key_from_row(row)?)),
        ),
        (
            format!("SELECT {CONSENT_HEAD_COLUMNS} FROM consent_heads ORDER BY subject"),
            |row| Ok(ScanItem::ConsentHead(consent_head_from_row(row)?)),
        ),
        (
            format!("SELECT {STORED_CONSENT_COLUMNS} FROM consents ORDER BY subject, id"),
            |row| Ok(ScanItem::Consent(stored_consent_from_row(row)?)),
        ),
    ];
    for (index, (sql, read)) in queries.iter().enumerate() {
        let is_ledger = index == 0;
        let rows = snapshot
            .query_raw(sql.as_str(), std::iter::empty::<i64>())
            .await?;
        let mut rows = std::pin::pin!(rows);
        while let Some(row) = rows.next().await {
            chunk.push(read(&row?)?);
            if chunk.len() >= SCAN_CHUNK {
                sender
                    .send(Ok(std::mem::take(&mut chunk)))
                    .await
                    .map_err(|_| closed())?;
                if is_ledger && ledger_done.load(Ordering::SeqCst) {
                    break;
                }
            }
        }
    }
    if !chunk.is_empty() {
        sender.send(Ok(chunk)).await.map_err(|_| closed())?;
    }
    snapshot.commit().await?;
    Ok(())
}
