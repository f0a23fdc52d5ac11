//! rules' integration tests, one binary: the compiled SQL against the in-memory evaluator on
//! MariaDB and SQLite.

mod sql;
