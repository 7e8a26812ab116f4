//! Palisade's data plane: HTTP/1 and HTTP/2 front ends, the stage pipeline,
//! the upstream client, TLS, the admin port and atomic bundle swaps.

pub mod admin;
pub mod body;
pub mod clientip;
pub mod demo;
pub mod h1;
pub mod h2;
pub mod handler;
pub mod io;
pub mod pipeline;
pub mod runtime;
pub mod server;
pub mod stages;
pub mod tls;
pub mod upstream;

pub use runtime::{Runtime, RuntimeError};
pub use server::{start, BundleSource, Running, ServeOptions, Shared};
