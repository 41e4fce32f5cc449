//! Our own dump of one schema: every table of the data schema (or of the key schema, for
//! the short-lived key backups) copied out in PostgreSQL's binary COPY format from one
//! snapshot, and its restore into a new schema. It needs no `pg_dump` of a matching
//! version, and a data dump can never carry a key: it reads the data schema only, through
//! connections whose `search_path` is that schema.
//!
//! File format: the line `discreet-postgres-dump 1`, then the line `data N` or `keys N`
//! (the schema version), then per table: its name and its column list (each a u32
//! big-endian length and UTF-8 bytes), its COPY data in frames (u32 length, bytes), and an
//! empty frame; an empty table name ends the file.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use deadpool_postgres::Pool;
use futures_util::{SinkExt, StreamExt};
use tokio_postgres::IsolationLevel;

use super::runtime::PgRuntime;
use super::schema::{DATA_TABLES, KEY_TABLES, SchemaKind, migrate, schema_exists};
use crate::error::{Error, Result};

const MAGIC: &str = "discreet-postgres-dump 1\n";
/// COPY bytes gathered before a frame is handed over.
const FRAME_BYTES: usize = 256 * 1024;
/// Longest table name or column list a dump may carry.
const MAX_NAME_BYTES: u32 = 4096;
/// Longest frame of COPY data a dump may carry (ours are about `FRAME_BYTES`): a damaged
/// length is refused rather than allocated.
const MAX_FRAME_BYTES: u32 = 256 * 1024 * 1024;

/// Which schema a dump holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DumpKind {
    Data,
    Keys,
}

impl DumpKind {
    fn word(self) -> &'static str {
        match self {
            DumpKind::Data => "data",
            DumpKind::Keys => "keys",
        }
    }

    fn tables(self) -> &'static [(&'static str, &'static str)] {
        match self {
            DumpKind::Data => DATA_TABLES,
            DumpKind::Keys => KEY_TABLES,
        }
    }

    fn schema_kind(self) -> SchemaKind {
        match self {
            DumpKind::Data => SchemaKind::Data,
            DumpKind::Keys => SchemaKind::Keys,
        }
    }
}

/// One piece of a dump, between the snapshot and the file.
enum Frame {
    Version(i32),
    Table(&'static str, &'static str),
    Data(Vec<u8>),
    EndTable,
    /// The whole dump was read: only then does a restore commit.
    End,
}

/// Writes a consistent dump of the schema `pool` reaches to `dest`, which must not exist.
pub(super) fn write(runtime: &PgRuntime, pool: Pool, kind: DumpKind, dest: &Path) -> Result<()> {
    if dest.exists() {
        return Err(Error::BadInput {
            detail: format!("backup destination {} already exists", dest.display()),
        });
    }
    let file = create_private(dest)?;
    let mut out = BufWriter::new(file);
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Frame>>(4);
    runtime.spawn(async move {
        if let Err(error) = produce(pool, kind, &sender).await {
            let _ = sender.send(Err(error)).await;
        }
    });
    let receiver = std::sync::Arc::new(tokio::sync::Mutex::new(receiver));
    let written = (|| -> Result<()> {
        let io = |error| Error::io("writing the backup", dest, error);
        out.write_all(MAGIC.as_bytes()).map_err(io)?;
        loop {
            let receiver = receiver.clone();
            let frame = runtime.run(async move { Ok(receiver.lock().await.recv().await) })?;
            match frame {
                None => break,
                Some(frame) => match frame? {
                    Frame::Version(version) => out
                        .write_all(format!("{} {version}\n", kind.word()).as_bytes())
                        .map_err(io)?,
                    Frame::Table(name, columns) => {
                        write_chunk(&mut out, name.as_bytes()).map_err(io)?;
                        write_chunk(&mut out, columns.as_bytes()).map_err(io)?;
                    }
                    Frame::Data(bytes) => write_chunk(&mut out, &bytes).map_err(io)?,
                    Frame::EndTable => write_chunk(&mut out, &[]).map_err(io)?,
                    Frame::End => break,
                },
            }
        }
        write_chunk(&mut out, &[]).map_err(io)?;
        let file = out.into_inner().map_err(|error| io(error.into_error()))?;
        file.sync_all().map_err(io)?;
        Ok(())
    })();
    if written.is_err() {
        // Never leave half a backup that looks whole.
        let _ = std::fs::remove_file(dest);
    }
    written
}

/// A new file readable by its owner only.
fn create_private(dest: &Path) -> Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(dest)
        .map_err(|error| Error::io("creating the backup", dest, error))
}

fn write_chunk(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let length = u32::try_from(bytes.len())
        .map_err(|_| std::io::Error::other("a dump frame is too long"))?;
    out.write_all(&length.to_be_bytes())?;
    out.write_all(bytes)
}

/// Copies every table of `kind` out of one read-only snapshot.
async fn produce(
    pool: Pool,
    kind: DumpKind,
    sender: &tokio::sync::mpsc::Sender<Result<Frame>>,
) -> Result<()> {
    let closed = || Error::Storage {
        detail: "the backup was abandoned".into(),
    };
    let send = |frame| async { sender.send(Ok(frame)).await.map_err(|_| closed()) };
    let mut client = pool.get().await?;
    let snapshot = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let version: i32 = snapshot
        .query_one("SELECT version FROM schema_version WHERE id = 1", &[])
        .await?
        .try_get(0)?;
    send(Frame::Version(version)).await?;
    for (table, columns) in kind.tables() {
        send(Frame::Table(table, columns)).await?;
        let stream = snapshot
            .copy_out(&format!(
                "COPY {table} ({columns}) TO STDOUT (FORMAT binary)"
            ))
            .await?;
        let mut stream = std::pin::pin!(stream);
        let mut buffer = Vec::with_capacity(FRAME_BYTES);
        while let Some(bytes) = stream.next().await {
            buffer.extend_from_slice(&bytes?);
            if buffer.len() >= FRAME_BYTES {
                send(Frame::Data(std::mem::take(&mut buffer))).await?;
            }
        }
        if !buffer.is_empty() {
            send(Frame::Data(buffer)).await?;
        }
        send(Frame::EndTable).await?;
    }
    snapshot.commit().await?;
    Ok(())
}

/// Reads one length-prefixed chunk of at most `limit` bytes; a cut or oversized one is bad input.
fn read_chunk(input: &mut impl Read, limit: u32) -> Result<Vec<u8>> {
    let bad = || Error::BadInput {
        detail: "the backup file is cut short or is not a discreet PostgreSQL dump".into(),
    };
    let mut length = [0u8; 4];
    input.read_exact(&mut length).map_err(|_| bad())?;
    let length = u32::from_be_bytes(length);
    if length > limit {
        return Err(bad());
    }
    let mut bytes = vec![0u8; length as usize];
    input.read_exact(&mut bytes).map_err(|_| bad())?;
    Ok(bytes)
}

/// Restores the dump at `source` into `schema` (which must not exist) through `pool`.
pub(super) fn restore(
    runtime: &PgRuntime,
    pool: Pool,
    schema: &str,
    kind: DumpKind,
    source: &Path,
) -> Result<()> {
    let file = std::fs::File::open(source)
        .map_err(|error| Error::io("opening the backup", source, error))?;
    let mut input = BufReader::new(file);
    let not_a_dump = || Error::BadInput {
        detail: format!(
            "{} is not a discreet PostgreSQL {} dump",
            source.display(),
            kind.word()
        ),
    };
    let mut magic = vec![0u8; MAGIC.len()];
    input.read_exact(&mut magic).map_err(|_| not_a_dump())?;
    if magic != MAGIC.as_bytes() {
        return Err(not_a_dump());
    }
    let mut line = Vec::new();
    for byte in input.by_ref().bytes() {
        let byte = byte.map_err(|_| not_a_dump())?;
        if byte == b'\n' || line.len() > 64 {
            break;
        }
        line.push(byte);
    }
    let line = String::from_utf8(line).map_err(|_| not_a_dump())?;
    let version: i32 = line
        .strip_prefix(kind.word())
        .and_then(|rest| rest.strip_prefix(' '))
        .and_then(|number| number.parse().ok())
        .ok_or_else(not_a_dump)?;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Frame>(4);
    let (outcome, answer) = std::sync::mpsc::sync_channel(1);
    let schema = schema.to_owned();
    runtime.spawn(async move {
        let _ = outcome.send(consume(pool, schema, kind, version, receiver).await);
    });
    let fed = (|| -> Result<()> {
        loop {
            let name = read_chunk(&mut input, MAX_NAME_BYTES)?;
            if name.is_empty() {
                feed(runtime, &sender, Frame::End)?;
                return Ok(());
            }
            let columns = read_chunk(&mut input, MAX_NAME_BYTES)?;
            let table = kind
                .tables()
                .iter()
                .find(|(table, known)| table.as_bytes() == name && known.as_bytes() == columns)
                .ok_or_else(|| Error::BadInput {
                    detail: "the backup holds a table this build does not know".into(),
                })?;
            if !feed(runtime, &sender, Frame::Table(table.0, table.1))? {
                return Ok(());
            }
            loop {
                let bytes = read_chunk(&mut input, MAX_FRAME_BYTES)?;
                let end = bytes.is_empty();
                let frame = if end {
                    Frame::EndTable
                } else {
                    Frame::Data(bytes)
                };
                if !feed(runtime, &sender, frame)? {
                    return Ok(());
                }
                if end {
                    break;
                }
            }
        }
    })();
    drop(sender);
    let restored = answer.recv().map_err(|_| Error::Storage {
        detail: "the restore task stopped before it answered".into(),
    })?;
    // The task's own failure says more than the feeding's "abandoned".
    restored.and(fed)
}

/// Hands one frame to the restoring task; false once it stopped listening.
fn feed(
    runtime: &PgRuntime,
    sender: &tokio::sync::mpsc::Sender<Frame>,
    frame: Frame,
) -> Result<bool> {
    let sender = sender.clone();
    runtime.run(async move { Ok(sender.send(frame).await.is_ok()) })
}

/// Creates the schema at the dump's version and copies every table in, in one transaction.
async fn consume(
    pool: Pool,
    schema: String,
    kind: DumpKind,
    version: i32,
    mut frames: tokio::sync::mpsc::Receiver<Frame>,
) -> Result<()> {
    let mut client = pool.get().await?;
    if schema_exists(&client, &schema).await? {
        return Err(Error::BadInput {
            detail: format!(
                "the schema `{schema}` already exists: restore into a new schema (drop the old one first)"
            ),
        });
    }
    let created = migrate(&mut client, &schema, kind.schema_kind(), Some(version)).await?;
    if created != version {
        return Err(Error::Config {
            detail: format!(
                "the backup is of {} schema version {version}, newer than this build knows",
                kind.word()
            ),
        });
    }
    let copied = copy_in(&mut client, kind, &mut frames).await;
    if copied.is_err() {
        // A restore that failed leaves no half-made schema behind to be mistaken for one.
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await;
    }
    copied
}

/// Copies every table of the dump in, in one transaction, once the whole dump was read.
async fn copy_in(
    client: &mut deadpool_postgres::Object,
    kind: DumpKind,
    frames: &mut tokio::sync::mpsc::Receiver<Frame>,
) -> Result<()> {
    let transaction = client.transaction().await?;
    let cut_short = || Error::BadInput {
        detail: "the backup file is cut short".into(),
    };
    loop {
        let (table, columns) = match frames.recv().await {
            Some(Frame::End) => break,
            Some(Frame::Table(table, columns)) => (table, columns),
            _ => return Err(cut_short()),
        };
        // Rows a migration put in (the counters) are replaced by the dump's.
        transaction
            .batch_execute(&format!("DELETE FROM {table}"))
            .await?;
        let sink = transaction
            .copy_in::<_, std::io::Cursor<Vec<u8>>>(&format!(
                "COPY {table} ({columns}) FROM STDIN (FORMAT binary)"
            ))
            .await?;
        let mut sink = std::pin::pin!(sink);
        loop {
            match frames.recv().await {
                Some(Frame::Data(bytes)) => sink.send(std::io::Cursor::new(bytes)).await?,
                Some(Frame::EndTable) => break,
                _ => return Err(cut_short()),
            }
        }
        sink.as_mut().finish().await?;
    }
    if kind == DumpKind::Data {
        // Consent ids go on from the restored rows, never below them.
        transaction
            .batch_execute(
                "SELECT setval(pg_get_serial_sequence('consents', 'id'),
                               coalesce((SELECT max(id) FROM consents), 0) + 1, false)",
            )
            .await?;
    }
    transaction.commit().await?;
    Ok(())
}
