//! `discreet serve`: the HTTP API on embedded storage. The listener opens at once; the
//! models are rebuilt from the vault in the background (with a progress bar) and
//! `/healthz` answers 200 once they are. SIGINT or SIGTERM stops it gracefully: open
//! requests finish, buffered ledger entries are written and a ledger checkpoint is signed.

use std::net::SocketAddr;

use clap::Args;
use discreet_engine::Engine;
use discreet_server::AppState;

use crate::CommandError;
use crate::store::{StoreArgs, rebuild_with_progress};

/// Arguments of `serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on.
    #[arg(long, env = "DISCREET_LISTEN", default_value = "127.0.0.1:7878")]
    pub listen: SocketAddr,
    /// Log lines as JSON (for log collectors) instead of text.
    #[arg(long)]
    pub log_json: bool,
}

pub fn run(args: ServeArgs) -> Result<(), CommandError> {
    init_tracing(args.log_json);
    let engine = args.store.open_engine()?;
    serve_engine(engine, args.listen, |_| {})
}

/// Installs the log subscriber (`RUST_LOG` filters; default `info`).
pub fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, never in log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Serves `engine` on `listen`, rebuilding its models in the background; `on_ready` runs
/// once they are rebuilt (the demo prints its tour there).
pub fn serve_engine(
    engine: Engine,
    listen: SocketAddr,
    on_ready: impl FnOnce(SocketAddr) + Send + 'static,
) -> Result<(), CommandError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| CommandError::Failed(error.into()))?;
    let state = AppState::new(engine.clone());
    let serving = engine.clone();
    let outcome = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|error| {
                CommandError::BadInput(format!("cannot listen on {listen}: {error}"))
            })?;
        let address = listener.local_addr().unwrap_or(listen);
        eprintln!(
            "listening on http://{address} (GET /healthz answers 200 once the models are rebuilt)"
        );
        let rebuilding = serving;
        std::thread::spawn(move || {
            if !rebuilding.is_ready()
                && let Err(error) = rebuild_with_progress(&rebuilding)
            {
                eprintln!("error: rebuilding the models failed: {error:#}");
                std::process::exit(1);
            }
            rebuilding.start_background();
            eprintln!("ready: http://{address}");
            on_ready(address);
        });
        discreet_server::serve(listener, state, shutdown_signal())
            .await
            .map_err(|error| CommandError::Failed(error.into()))
    });
    eprintln!("stopping: writing buffered ledger entries and a signed checkpoint");
    engine.shutdown();
    outcome
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
