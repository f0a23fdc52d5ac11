//! The one `scrm` binary: `scrm up` runs every role in one process on embedded defaults;
//! `scrm gateway|identity|tagging|scoring` runs one role against MySQL + RabbitMQ + Redis;
//! `scrm migrate` applies every role's migrations; `scrm bus` shows and replays parked messages.
//!
//! Owns: command-line parsing, config composition and wiring roles together. Must not touch:
//! anything a role does — it only builds dependencies and calls each role's `run`.

pub mod bus_tool;
pub mod cli;
pub mod people;
pub mod roles;
pub mod settings;
pub mod up;
