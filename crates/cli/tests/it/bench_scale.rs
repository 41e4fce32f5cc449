//! `discreet bench scale` on a small synthetic shop: it runs both sizes to the end, prints
//! every figure, learns every event at the reopened store's rebuild, and leaves no
//! temporary folder behind. No figure's value is judged here: benchmarks print, tests don't
//! time.

use std::process::Stdio;
use std::time::Duration;

use crate::support::{Run, Store, discreet, read_lossy, wait_with_timeout};

const WITHIN: Duration = Duration::from_secs(600);

/// Runs `discreet bench scale ARGS` with its temporary folders inside `temporary`.
fn bench_scale(store: &Store, temporary: &std::path::Path, name: &str, args: &[&str]) -> Run {
    let stdout_path = store.file(&format!("{name}.stdout"));
    let stderr_path = store.file(&format!("{name}.stderr"));
    let mut child = discreet()
        .args(["bench", "scale"])
        .args(args)
        .env("TMPDIR", temporary)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawning discreet");
    let status = wait_with_timeout(&mut child, WITHIN).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "`bench scale` did not finish within {WITHIN:?}\n--- stderr\n{}",
            read_lossy(&stderr_path)
        )
    });
    Run {
        status,
        stdout: read_lossy(&stdout_path),
        stderr: read_lossy(&stderr_path),
    }
}

fn leftovers(temporary: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(temporary)
        .expect("the temporary folder")
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn bench_scale_prints_every_figure_for_both_sizes_and_cleans_up() {
    let store = Store::new();
    let temporary = store.file("tmp");
    std::fs::create_dir_all(&temporary).expect("a temporary folder");
    let run = bench_scale(
        &store,
        &temporary,
        "table",
        &[
            "--items",
            "2000",
            "--customers",
            "2000",
            "--events",
            "20000",
            "--requests",
            "500",
            "--forgets",
            "5",
        ],
    );
    assert_eq!(run.code(), Some(0), "{run}");
    for figure in [
        "consent grants",
        "ingest (sealed, durable)",
        "sealed store on disk",
        "start-up rebuild",
        "RSS after rebuild",
        "recommend p50",
        "recommend p99",
        "similar p50",
        "similar p99",
        "forget p50",
        "forget p99",
    ] {
        let line = run
            .stdout
            .lines()
            .find(|line| line.starts_with(figure))
            .unwrap_or_else(|| panic!("no `{figure}` row: {run}"));
        // The tenth's figure, the full size's and their ratio.
        let numbers = line[figure.len()..]
            .split_whitespace()
            .filter(|word| word.trim_end_matches('x').parse::<f64>().is_ok())
            .count();
        assert!(numbers >= 3, "`{figure}` lacks a figure: {line}");
    }
    for target in ["≤ 120 s", "≤ 8192 MiB", "≤ 1000 µs", "≤ 50 ms"] {
        assert!(run.stdout.contains(target), "no target {target}: {run}");
    }
    assert!(
        run.stdout
            .contains("2000 of 2000 (a tenth), 20000 of 20000 (full)"),
        "every event is learned at the rebuild: {run}"
    );
    assert!(
        leftovers(&temporary).is_empty(),
        "left behind: {:?}",
        leftovers(&temporary)
    );
}

#[test]
fn bench_scale_json_holds_every_figure_and_bad_sizes_are_refused() {
    let store = Store::new();
    let temporary = store.file("tmp");
    std::fs::create_dir_all(&temporary).expect("a temporary folder");
    let run = bench_scale(
        &store,
        &temporary,
        "json",
        &[
            "--items",
            "500",
            "--customers",
            "500",
            "--events",
            "5000",
            "--requests",
            "200",
            "--forgets",
            "3",
            "--json",
        ],
    );
    assert_eq!(run.code(), Some(0), "{run}");
    let figures = run.json();
    for (size, events, customers) in [("tenth", 500, 50), ("full", 5_000, 500)] {
        let size_figures = &figures[size];
        assert_eq!(size_figures["events"], events, "{run}");
        assert_eq!(size_figures["customers"], customers, "{run}");
        assert_eq!(size_figures["events_read"], events, "{run}");
        assert_eq!(size_figures["events_learned"], events, "{run}");
        assert_eq!(size_figures["forgets"], 3, "{run}");
        for name in [
            "consent_seconds",
            "ingest_events_per_second",
            "store_mib",
            "rebuild_seconds",
            "rss_after_rebuild_mib",
            "recommend_us_p50",
            "recommend_us_p99",
            "similar_us_p50",
            "similar_us_p99",
            "forget_ms_p50",
            "forget_ms_p99",
        ] {
            let value = size_figures[name].as_f64();
            assert!(
                value.is_some_and(|value| value > 0.0),
                "{size}.{name}: {value:?} in {run}"
            );
        }
    }
    assert_eq!(figures["targets"]["forget_ms_p99"], 50.0, "{run}");
    assert!(
        leftovers(&temporary).is_empty(),
        "{:?}",
        leftovers(&temporary)
    );

    // Refused as usage errors (exit 2) naming the flag, before anything is written.
    for (flag, value) in [
        ("--items", "0"),
        ("--customers", "0"),
        ("--events", "0"),
        ("--batch", "10001"),
        ("--requests", "0"),
    ] {
        let refused = bench_scale(&store, &temporary, "refused", &[flag, value]);
        assert_eq!(refused.code(), Some(2), "{flag} {value}: {refused}");
        assert!(refused.stderr.contains(flag), "{refused}");
    }
    assert!(
        leftovers(&temporary).is_empty(),
        "{:?}",
        leftovers(&temporary)
    );
}
