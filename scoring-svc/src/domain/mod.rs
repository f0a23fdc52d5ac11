//! Pure logic of scoring, without I/O: decay and folds ([`decay`]), the definitions operators
//! write and their validation ([`defs`]), what one tenant's definitions compile to
//! ([`compiled`]), point awards under caps ([`points`]), the stage machine ([`stages`]),
//! threshold crossings ([`triggers`]), the consequences of a change settled to a fixed point
//! ([`settle`]) and what it announces when it ends ([`finish`]), the facts a condition sees
//! ([`view`]) and the replay of a profile's events through a rule set ([`replay`], for dry runs
//! and recomputes).

pub mod compiled;
pub mod decay;
pub mod defs;
pub mod finish;
pub mod points;
pub mod replay;
pub mod settle;
pub mod stages;
pub mod triggers;
pub mod view;

use serde::Serialize;

/// One problem in a definition: where (`rules[0].condition.root.children[1].value`), a stable
/// code, and a message for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefError {
    pub path: String,
    pub code: String,
    pub message: String,
}

impl DefError {
    pub fn new(
        path: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        DefError {
            path: path.into(),
            code: code.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for DefError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ({})", self.path, self.message, self.code)
    }
}

/// `base.field`, or `field` when `base` is empty.
pub(crate) fn join(base: &str, field: &str) -> String {
    if base.is_empty() {
        field.to_string()
    } else if field.is_empty() {
        base.to_string()
    } else {
        format!("{base}.{field}")
    }
}
