//! Contracts shared by every crate: the bus envelope, typed events and their type names (with
//! the profile events the projections share), identifier types, the condition AST of tag rules
//! and lead scoring, and (as they are added) internal API DTOs.
//!
//! Owns: data shapes and their serde form, deterministic message ids.
//! Must not touch: I/O of any kind (no network, database, files, clocks beyond `Utc::now` defaults).

pub mod auth;
pub mod callback;
pub mod channel;
pub mod condition;
pub mod envelope;
pub mod event;
pub mod identity;
pub mod profile;
pub mod routing;
pub mod scoring;
pub mod sdk;
pub mod tagging;
pub mod tenant;

pub use envelope::{Envelope, EnvelopeBuilder};
pub use event::{DecodeError, Event};
