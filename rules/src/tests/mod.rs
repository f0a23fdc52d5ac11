//! Unit tests of the condition language: parsing and validation, evaluation semantics, rule
//! references, dependencies, expiry and the SQL shape.

mod support;

mod eval;
mod parse;
mod refs;
mod sql;
