//! The sans-I/O protocol core: RFC 6455 as plain state machines.
//!
//! Bytes go in, messages and bytes come out; there are no sockets, no async
//! and no clock here, so every rule is tested by feeding bytes in any
//! chunking. The async layers above only move bytes and time.
//!
//! - [`frame`]: frame header layout.
//! - [`mask`]: the masking kernel.
//! - [`utf8`]: incremental UTF-8 validation.
//! - [`close`]: close codes and close payloads.
//! - [`deflate`]: permessage-deflate (RFC 7692) negotiation and codec.
//! - [`engine`]: the connection state machine that ties them together.
//! - [`error`]: what can go wrong, and the close code for each.

pub mod close;
pub mod deflate;
pub mod engine;
pub mod error;
pub mod frame;
pub mod mask;
pub mod utf8;

#[cfg(test)]
mod tests;

pub use close::{CloseCode, CloseFrame};
pub use deflate::{DeflateConfig, DeflateParams, PerMessageDeflate};
pub use engine::{Config, Engine, Role, State};
pub use error::{ProtocolError, SendError};
pub use frame::{FrameHeader, OpCode};
