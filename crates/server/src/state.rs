//! What every handler shares.

use std::sync::Arc;
use std::time::Duration;

use discreet_engine::Engine;

use crate::auth::AuthGuard;
use crate::client::TrustedProxies;
use crate::metrics::Metrics;
use crate::pages::console::sessions::ConsoleSessions;
use crate::pages::sessions::Sessions;

/// Limits of the HTTP layer.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Longest a request may take, body upload included, before it is answered 503
    /// `request_timeout`.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        // A full batch of 10,000 events of a few hundred bytes each fits with room to spare.
        Limits {
            max_body_bytes: 8 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub guard: Arc<AuthGuard>,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<TrustedProxies>,
    /// True when `/metrics` is served on a listener of its own: the API's listener then
    /// answers it 404.
    pub metrics_elsewhere: bool,
    /// The privacy center's sessions (in memory: a restart signs everyone out).
    pub portal: Arc<Sessions>,
    /// The console's sessions (in memory as well).
    pub console: Arc<ConsoleSessions>,
    /// Where customers' browsers reach the server (`https://HOST[:PORT]`, checked by
    /// `wire::public_url`); `None` makes links on the request's `Host`.
    pub public_url: Option<String>,
}

impl AppState {
    /// State for an engine with default limits, no trusted proxy, `/metrics` on the API.
    pub fn new(engine: Engine) -> AppState {
        AppState {
            engine,
            guard: Arc::new(AuthGuard::default()),
            metrics: Arc::new(Metrics::default()),
            limits: Limits::default(),
            trusted_proxies: Arc::new(TrustedProxies::default()),
            metrics_elsewhere: false,
            portal: Arc::new(Sessions::default()),
            console: Arc::new(ConsoleSessions::default()),
            public_url: None,
        }
    }
}
