//! The event-driven client of the seed (Workerman's `AsyncTcpConnection`
//! for `ws://`): callbacks, heartbeat, reconnect, send queue, host loop.
//!
//! - [`Client`]: settings and callbacks, then [`Client::connect`].
//! - [`Conn`]: the handle callbacks receive; send, close, reconnect, stats.
//! - [`Handler`]: the callbacks as a trait, for larger programs; its docs
//!   give the order in which callbacks fire.
//! - [`ReconnectPolicy`]: automatic reconnects with backoff and retry
//!   rules keyed on what happened.
//! - [`run_all`]: the host event loop for a plain `fn main()`.

mod client;
mod conn;
mod handler;
mod host;
mod inbox;
pub mod reconnect;
mod task;

pub use client::{Client, DEFAULT_MAX_SEND_BUFFER};
pub use conn::{Conn, ConnState, SendError, SendFailure, SendType, Stats};
pub use handler::Handler;
pub use host::{live_connections, run_all, shutdown};
pub use reconnect::{Backoff, Outcome, ReconnectPolicy, Retry};
