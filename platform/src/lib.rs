//! Runtime plumbing every role shares: configuration loading, telemetry (tracing + Prometheus
//! metrics), the event bus (RabbitMQ and in-process), database connections and migrations with the
//! inbox/outbox helpers, the cache (Redis and in-process), HTTP helpers (health, readiness,
//! metrics, error body, request ids), the clock and the supervisor of background tasks.
//!
//! Owns: how a process talks to MySQL/SQLite, RabbitMQ and Redis, and what every HTTP endpoint
//! shares. Must not touch: business rules, WeChat protocol details, or any service's own tables
//! (it only owns the `bus_inbox` / `bus_outbox` tables each service includes in its migrations).

pub mod bus;
pub mod cache;
pub mod clock;
pub mod config;
pub mod context;
pub mod crypto;
pub mod db;
pub mod error;
pub mod http;
pub mod metrics;
pub mod role;
pub mod tasks;
pub mod telemetry;

pub use context::Deps;
pub use error::ServiceError;
