//! What every handler shares.

use std::sync::Arc;

use discreet_engine::Engine;

use crate::auth::AuthGuard;
use crate::metrics::Metrics;

/// Limits of the HTTP layer.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // A full batch of 10,000 events of a few hundred bytes each fits with room to spare.
        Limits {
            max_body_bytes: 8 * 1024 * 1024,
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
}

impl AppState {
    /// State for an engine with default limits.
    pub fn new(engine: Engine) -> AppState {
        AppState {
            engine,
            guard: Arc::new(AuthGuard::default()),
            metrics: Arc::new(Metrics::default()),
            limits: Limits::default(),
        }
    }
}
