//! HTTP tests of discreet-server: the real router over a real engine and vault, driven with
//! `tower::ServiceExt::oneshot` (and, in `connections`, the real server over loopback
//! sockets). One test binary; each module covers one side of the contract in API.md.

mod auth;
mod bad_input;
mod catalogue;
mod connections;
mod console;
mod gpc;
mod incidents;
mod metrics;
mod portal;
mod roles;
mod routes;
mod support;
