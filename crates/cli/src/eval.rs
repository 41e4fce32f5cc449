//! `discreet eval`: the evaluation protocol of DESIGN.md on the UCI Online Retail files,
//! run by `discreet-eval`; this module parses the arguments, shows progress and prints the
//! figures (tables or JSON). Settings are tuned on the month before the cutoff, never on
//! the test month; then every model is rebuilt on all data before the cutoff and measured
//! once. Reads only the data file; writes only `--write-split`.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::bail;
use discreet_eval::retail_csv::{parse_shop_time, read_retail_file};
use discreet_eval::split::{Splits, purchases, validation_start};
use discreet_eval::{Progress, latency, memory, quality, tune};

/// Arguments of `discreet eval`.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// The transactions file: UCI Online Retail or Online Retail II, CSV, optionally gzipped.
    #[arg(long)]
    pub data: PathBuf,
    /// Train on everything before this date (YYYY-MM-DD); test on what follows.
    #[arg(long, default_value = "2011-11-01")]
    pub cutoff: String,
    /// Print the results as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also write the train/test split (CSV: DIR/train.csv, DIR/test.csv, and the
    /// validation month's under DIR/validation/) into this folder, for other libraries.
    #[arg(long, value_name = "DIR")]
    pub write_split: Option<PathBuf>,
    /// Skip the latency measurements (recommend, forget).
    #[arg(long)]
    pub skip_latency: bool,
}

fn megabytes(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let cutoff_is_not_a_date = || {
        anyhow::anyhow!(
            "`--cutoff` must be a date YYYY-MM-DD, got `{}`",
            args.cutoff
        )
    };
    let cutoff = parse_shop_time(&args.cutoff).ok_or_else(cutoff_is_not_a_date)?;
    let validation_start = validation_start(&args.cutoff).ok_or_else(cutoff_is_not_a_date)?;
    // Reading and splitting, tuning, measuring, and optionally the latency figures.
    let steps = 2 + tune::STEPS + 1 + if args.skip_latency { 0 } else { latency::STEPS };
    let progress_bar = indicatif::ProgressBar::new(steps);
    progress_bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let progress = |progress: Progress| match progress {
        Progress::Doing(message) => progress_bar.set_message(message),
        Progress::StepDone => progress_bar.inc(1),
    };
    progress(Progress::Doing(format!("reading {}", args.data.display())));
    let file = read_retail_file(&args.data)?;
    let purchases = purchases(&file.rows);
    if purchases.is_empty() {
        bail!(
            "{} has no purchase rows under the protocol",
            args.data.display()
        );
    }
    progress(Progress::StepDone);

    progress(Progress::Doing("splitting".into()));
    let Splits { validation, test } = Splits::new(&purchases, cutoff, validation_start);
    if test.test.is_empty() || validation.test.is_empty() {
        bail!(
            "the cutoff {} leaves no test customers (or no validation month before it)",
            args.cutoff
        );
    }
    if let Some(directory) = &args.write_split {
        test.write_csv(directory)?;
        // The validation month too, so other libraries can be tuned the same way.
        validation.write_csv(&directory.join("validation"))?;
    }
    progress(Progress::StepDone);

    let tuned = tune::tune(&validation, &progress)?;

    progress(Progress::Doing(
        "building and measuring every model on all data before the cutoff".into(),
    ));
    let (mut model_rows, mut models) = quality::measure_models(&test, &tuned.model_set_config())?;
    // What `discreet serve` answers with: the engine's default settings, exactly.
    model_rows.push(quality::measure_model_set(
        &test,
        "served (engine default)",
        &discreet_engine::tuned_model_config(),
    )?);
    progress(Progress::StepDone);

    let (latencies, ease_drift) = if args.skip_latency {
        (Vec::new(), 0.0)
    } else {
        latency::measure_latencies(&test, &mut models, &progress)?
    };
    progress_bar.finish_and_clear();

    let settings = tuned.described();
    let mut output = std::io::stdout().lock();
    if args.json {
        let json = serde_json::json!({
            "data": args.data.display().to_string(),
            "cutoff": args.cutoff,
            "rows_read": file.rows.len(),
            "rows_skipped": file.skipped.total(),
            "purchases": purchases.len(),
            "train_interactions": test.train.len(),
            "catalogue_items": test.catalogue.len(),
            "test_customers": test.test.len(),
            "validation_customers": validation.test.len(),
            "chosen": settings.iter().map(|(name, value)| serde_json::json!({"setting": name, "value": value})).collect::<Vec<_>>(),
            "models": model_rows.iter().map(|row| serde_json::json!({
                "model": row.name,
                "ndcg_at_10": row.quality.ndcg_at_10,
                "recall_at_20": row.quality.recall_at_20,
                "coverage_at_10": row.quality.coverage_at_10,
                "build_seconds": row.build.seconds,
                "peak_build_megabytes": megabytes(row.build.peak_bytes),
                "held_megabytes": megabytes(row.build.held_bytes),
            })).collect::<Vec<_>>(),
            "latency": latencies.iter().map(|figure| serde_json::json!({
                "figure": figure.name, "calls": figure.n_calls,
                "p50_micros": figure.p50_micros, "p99_micros": figure.p99_micros, "max_micros": figure.max_micros,
            })).collect::<Vec<_>>(),
            "validation": tuned.log.iter().map(|(name, ndcg)| serde_json::json!({"candidate": name, "ndcg_at_10": ndcg})).collect::<Vec<_>>(),
            "ease_drift_after_forget_cycles": ease_drift,
            "process_peak_resident_megabytes": memory::peak_resident_megabytes(),
        });
        writeln!(output, "{}", serde_json::to_string_pretty(&json)?)?;
        return Ok(());
    }
    writeln!(
        output,
        "{}: {} rows read, {} skipped; {} purchases; train {} interactions, {} items; {} test customers (validation {})",
        args.data.display(),
        file.rows.len(),
        file.skipped.total(),
        purchases.len(),
        test.train.len(),
        test.catalogue.len(),
        test.test.len(),
        validation.test.len()
    )?;
    writeln!(
        output,
        "chosen on the validation month (train before it, validate on it):"
    )?;
    for (name, value) in &settings {
        writeln!(output, "  {name}: {value}")?;
    }
    writeln!(output)?;
    writeln!(
        output,
        "model        NDCG@10  Recall@20  coverage@10  build s  peak MB  held MB"
    )?;
    for row in &model_rows {
        writeln!(
            output,
            "{:<12} {:>7.4}  {:>9.4}  {:>11.4}  {:>7.2}  {:>7.1}  {:>7.1}",
            row.name,
            row.quality.ndcg_at_10,
            row.quality.recall_at_20,
            row.quality.coverage_at_10,
            row.build.seconds,
            megabytes(row.build.peak_bytes),
            megabytes(row.build.held_bytes)
        )?;
    }
    if !latencies.is_empty() {
        writeln!(output)?;
        writeln!(
            output,
            "{:<70} {:>6} {:>10} {:>10} {:>10}",
            "latency", "calls", "p50 µs", "p99 µs", "max µs"
        )?;
        for figure in &latencies {
            writeln!(
                output,
                "{:<70} {:>6} {:>10.1} {:>10.1} {:>10.1}",
                figure.name,
                figure.n_calls,
                figure.p50_micros,
                figure.p99_micros,
                figure.max_micros
            )?;
        }
    }
    if !args.skip_latency {
        writeln!(
            output,
            "EASE drift: largest |(G+λI)P - I| entry measured after the forget/relearn cycles: {ease_drift:.2e}"
        )?;
    }
    if let Some(resident) = memory::peak_resident_megabytes() {
        writeln!(
            output,
            "\nprocess peak resident memory (VmHWM): {resident:.0} MB"
        )?;
    }
    Ok(())
}
