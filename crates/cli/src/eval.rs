//! `discreet eval`: the evaluation protocol of DESIGN.md on the UCI Online Retail files.

/// Arguments of `discreet eval`.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// The transactions file (CSV, optionally gzipped).
    #[arg(long)]
    pub data: std::path::PathBuf,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    anyhow::bail!("evaluation of {} is not built yet", args.data.display())
}
