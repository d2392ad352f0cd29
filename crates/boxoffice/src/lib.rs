//! The `boxoffice` binary as a library, so that its tests can start a server the way the
//! command line does.
//!
//! - [`cli`]: the command line (`serve`, `migrate`, `token`, `seed`) and configuration, every
//!   flag also readable from a `BOXOFFICE_*` environment variable.
//! - [`app`]: picks the store from the configuration, builds the API state and serves it with
//!   graceful shutdown.
//! - [`seed`]: the deterministic demo catalog built from real places and tours.

pub mod app;
pub mod cli;
pub mod seed;
pub mod tls;
