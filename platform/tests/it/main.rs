//! platform's integration tests, one binary: the bus conformance suite (in-process, RabbitMQ
//! classic and quorum queues), the cache conformance suite (moka and Redis), and the database
//! plumbing (inbox, outbox, contention) on MariaDB and SQLite.

mod bus;
mod cache;
mod db;
