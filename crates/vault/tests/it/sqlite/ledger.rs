//! The ledger in the data file: tampering with any entry is found at that entry.

use discreet_vault::conformance::ConformanceBackend;
use rusqlite::Connection;

use super::*;
use crate::conformance::SqliteBackend;

fn tamper_and_verify(
    tamper: impl FnOnce(&Connection, i64),
) -> (i64, discreet_vault::LedgerVerification) {
    let backend = SqliteBackend::new();
    let target = {
        let vault = backend.open();
        for i in 0..12 {
            vault
                .append_events("test", &[purchase(&format!("c-{}", i % 3), "X", i)], None)
                .expect("append");
        }
        vault.checkpoint_ledger().expect("checkpoint");
        let verification = vault.verify_ledger().expect("verify");
        assert!(verification.ok, "{verification:?}");
        verification.entries
    };
    let connection = Connection::open(backend.options().data_file()).expect("open");
    tamper(&connection, target);
    drop(connection);
    let vault = backend.open_to_verify();
    (target, vault.verify_ledger().expect("verify"))
}

/// Invariant 7: altering, removing or reordering any single ledger entry is found at that entry.
#[test]
fn ledger_tampering_is_found_at_the_entry() {
    let (entries, _) = tamper_and_verify(|_, _| {});
    for seq in 1..=entries {
        let (_, altered) = tamper_and_verify(|connection, _| {
            connection
                .execute(
                    "UPDATE ledger SET detail = detail || ' ' WHERE seq = ?1",
                    [seq],
                )
                .expect("alter");
        });
        assert_eq!(
            altered.first_bad_entry,
            Some(seq),
            "altered {seq}: {altered:?}"
        );

        let (_, removed) = tamper_and_verify(|connection, _| {
            connection
                .execute("DELETE FROM ledger WHERE seq = ?1", [seq])
                .expect("remove");
        });
        assert_eq!(
            removed.first_bad_entry,
            Some(seq),
            "removed {seq}: {removed:?}"
        );

        if seq < entries {
            let (_, reordered) = tamper_and_verify(|connection, _| {
                connection
                    .execute_batch(&format!(
                        "UPDATE ledger SET seq = -1 WHERE seq = {seq};
                         UPDATE ledger SET seq = {seq} WHERE seq = {next};
                         UPDATE ledger SET seq = {next} WHERE seq = -1;",
                        next = seq + 1
                    ))
                    .expect("reorder");
            });
            assert_eq!(
                reordered.first_bad_entry,
                Some(seq),
                "reordered {seq}: {reordered:?}"
            );
        }
    }
    // Cutting the chain short and deleting the signed checkpoints that cover it is caught by
    // the anchor kept in the key store.
    let (_, truncated) = tamper_and_verify(|connection, _| {
        connection
            .execute_batch("DELETE FROM ledger WHERE seq > 3; DELETE FROM ledger_checkpoints;")
            .expect("truncate");
    });
    assert_eq!(truncated.first_bad_entry, Some(4), "{truncated:?}");
    // Altering an entry and recomputing every later hash needs the chain key, which only the
    // key store holds: a chain recomputed without it is found at the altered entry.
    let (_, rechained) = tamper_and_verify(|connection, _| {
        connection
            .execute("UPDATE ledger SET actor = 'mallory' WHERE seq = 2", [])
            .expect("alter");
        let mut previous: Vec<u8> = connection
            .query_row("SELECT hash FROM ledger WHERE seq = 1", [], |row| {
                row.get(0)
            })
            .expect("hash");
        // The vault's own algorithm, with every field as stored, under a guessed key.
        let guessed = discreet_vault::ledger::LedgerKey::new(b"a guessed chain key");
        let rows: Vec<(i64, discreet_vault::LedgerDraft)> = connection
            .prepare(
                "SELECT seq, at, actor, action, subject_token, purpose, categories, outcome, detail
                 FROM ledger WHERE seq >= 2 ORDER BY seq",
            )
            .expect("prepare")
            .query_map([], |row| {
                let categories: String = row.get(6)?;
                Ok((
                    row.get(0)?,
                    discreet_vault::LedgerDraft {
                        at: row.get(1)?,
                        actor: row.get(2)?,
                        action: row.get(3)?,
                        subject_token: row.get(4)?,
                        purpose: row.get(5)?,
                        categories: serde_json::from_str(&categories).expect("categories"),
                        outcome: row.get(7)?,
                        detail: row.get(8)?,
                    },
                ))
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        for (seq, entry) in rows {
            let previous_hash: [u8; 32] = previous.as_slice().try_into().expect("32 bytes");
            let forged = guessed.entry_hash(seq, &previous_hash, &entry).to_vec();
            connection
                .execute(
                    "UPDATE ledger SET prev_hash = ?1, hash = ?2 WHERE seq = ?3",
                    rusqlite::params![previous, forged, seq],
                )
                .expect("rechain");
            previous = forged;
        }
        connection
            .execute("DELETE FROM ledger_checkpoints", [])
            .expect("drop checkpoints");
    });
    assert_eq!(rechained.first_bad_entry, Some(2), "{rechained:?}");
}
