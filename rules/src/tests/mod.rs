//! Unit tests of the condition language: parsing and validation, evaluation semantics, rule
//! references, dependencies, expiry and the SQL shape.

mod support;

mod deps;
mod eval;
mod expiry;
mod fuzz;
mod parse;
mod refs;
mod sql;
