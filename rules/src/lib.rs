//! The condition language of visual tag rules and lead scoring: AND/OR/NOT trees over profile
//! properties, behaviour counts in time windows, tags and WeChat state — validation, in-memory
//! evaluation and SQL compilation (through sea-query, never string concatenation).
//!
//! Owns: the semantics of a condition. Must not touch: I/O, storage, the bus; tagging-svc and
//! scoring-svc call it, it calls nothing.
