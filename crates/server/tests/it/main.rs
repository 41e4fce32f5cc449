//! HTTP tests of discreet-server: the real router over a real engine and vault, driven with
//! `tower::ServiceExt::oneshot`. One test binary; each module covers one side of the
//! contract in API.md.

mod auth;
mod bad_input;
mod gpc;
mod roles;
mod routes;
mod support;
