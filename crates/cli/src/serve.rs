//! `discreet serve`: the HTTP API on embedded storage. The listener opens at once; the
//! models are rebuilt from the vault in the background (with a progress bar) and
//! `/healthz` answers 200 once they are. SIGINT or SIGTERM stops it gracefully: open
//! requests get the shutdown grace to finish, then buffered ledger entries are written and
//! a ledger checkpoint is signed, whatever connections were still open.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use discreet_engine::Engine;
use discreet_server::{AppState, Cidr, ConnectionSettings, Listeners, TrustedProxies};

use crate::CommandError;
use crate::store::{PostgresArgs, StoreArgs, rebuild_with_progress};

/// Arguments of `serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub postgres: PostgresArgs,
    /// Address to listen on.
    #[arg(long, env = "DISCREET_LISTEN", default_value = "127.0.0.1:7878")]
    pub listen: SocketAddr,
    /// Log lines as JSON (for log collectors) instead of text.
    #[arg(long)]
    pub log_json: bool,
    #[command(flatten)]
    pub http: HttpArgs,
}

/// How the HTTP listeners treat connections (shared by `serve` and `demo`).
#[derive(Args, Debug, Clone)]
pub struct HttpArgs {
    /// Serve `/metrics` (every figure, business ones too) on this address only; the API's
    /// listener then answers `/metrics` 404. Without it, the API's `/metrics` shows
    /// operational figures only.
    #[arg(long, env = "DISCREET_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// A proxy (address or CIDR block) whose `X-Forwarded-For` is believed when counting
    /// failed authentications; repeat for several.
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    pub trusted_proxies: Vec<Cidr>,
    /// Where customers' browsers reach this server (`https://privacy.shop.example`): the
    /// privacy center's links are made on it and its cookies are `Secure` when it is https.
    /// Without it, links are made on the `Host` the shop's backend called (http on
    /// localhost, https elsewhere).
    #[arg(long, env = "DISCREET_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,
    /// A connection must send a complete request head within this time (`10s`, `500ms`).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub header_read_timeout: Duration,
    /// A connection with no request in progress and no bytes moving is closed after this.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub idle_timeout: Duration,
    /// A request (its body upload included) is answered 503 `request_timeout` after this.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub request_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// At shutdown, how long open requests may take before their connections are closed.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub shutdown_grace: Duration,
}

impl HttpArgs {
    fn connection_settings(&self) -> ConnectionSettings {
        ConnectionSettings {
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections as usize,
            shutdown_grace: self.shutdown_grace,
        }
    }
}

/// `10s`, `500ms` or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit_millis) = if let Some(number) = text.strip_suffix("ms") {
        (number, 1)
    } else if let Some(number) = text.strip_suffix('s') {
        (number, 1_000)
    } else {
        (text, 1_000)
    };
    match number.trim().parse::<u64>() {
        Ok(amount) if amount > 0 => amount
            .checked_mul(unit_millis)
            .map(Duration::from_millis)
            .ok_or_else(|| "is too long".to_owned()),
        _ => Err(
            "must be a positive whole number of seconds (`10s`) or milliseconds (`500ms`)"
                .to_owned(),
        ),
    }
}

pub fn run(args: ServeArgs) -> Result<(), CommandError> {
    init_tracing(args.log_json);
    let engine = args.store.open_engine_serving(&args.postgres)?;
    serve_engine(engine, args.listen, &args.http, |_, _| {})
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
/// once they are rebuilt, with the server's state (the demo opens a privacy-center session
/// and prints its tour there).
pub fn serve_engine(
    engine: Engine,
    listen: SocketAddr,
    http: &HttpArgs,
    on_ready: impl FnOnce(SocketAddr, &AppState) + Send + 'static,
) -> Result<(), CommandError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| CommandError::Failed(error.into()))?;
    let mut state = AppState::new(engine.clone());
    state.limits.request_timeout = http.request_timeout;
    state.trusted_proxies = Arc::new(TrustedProxies::new(http.trusted_proxies.clone()));
    state.public_url = http.public_url.clone();
    let settings = http.connection_settings();
    let metrics_listen = http.metrics_listen;
    let serving = engine.clone();
    let outcome = runtime.block_on(async move {
        let bind = |address: SocketAddr| async move {
            tokio::net::TcpListener::bind(address)
                .await
                .map_err(|error| {
                    CommandError::BadInput(format!("cannot listen on {address}: {error}"))
                })
        };
        let listener = bind(listen).await?;
        let metrics_listener = match metrics_listen {
            Some(address) => Some(bind(address).await?),
            None => None,
        };
        let address = listener.local_addr().unwrap_or(listen);
        eprintln!(
            "listening on http://{address} (GET /healthz answers 200 once the models are rebuilt)"
        );
        if let Some(metrics) = &metrics_listener
            && let Ok(metrics_address) = metrics.local_addr()
        {
            eprintln!("metrics on http://{metrics_address}/metrics");
        }
        let rebuilding = serving;
        let ready_state = state.clone();
        std::thread::spawn(move || {
            if !rebuilding.is_ready()
                && let Err(error) = rebuild_with_progress(&rebuilding)
            {
                eprintln!("error: rebuilding the models failed: {error:#}");
                std::process::exit(1);
            }
            rebuilding.start_background();
            eprintln!("ready: http://{address}");
            on_ready(address, &ready_state);
        });
        let listeners = Listeners {
            api: listener,
            metrics: metrics_listener,
        };
        discreet_server::serve(listeners, state, settings, shutdown_signal())
            .await
            .map_err(|error| CommandError::Failed(error.into()))
    });
    eprintln!("stopping: writing buffered ledger entries and a signed checkpoint");
    // Work of requests cut off at the end of the grace may still run on the blocking pool;
    // let it finish (within one more grace) so its ledger entries are in the flush below.
    runtime.shutdown_timeout(http.shutdown_grace);
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

/// `--public-url`: `https://HOST[:PORT]` (or `http://` on localhost), no path.
fn parse_public_url(text: &str) -> Result<String, String> {
    discreet_server::wire::public_url(text).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_seconds_and_milliseconds() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        for bad in ["", "0s", "-1s", "1.5s", "10m", "ms"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
