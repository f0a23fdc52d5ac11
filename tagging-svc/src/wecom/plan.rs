//! What to send for one contact (rep × customer) from its open queue items: pure logic, no I/O.
//!
//! Each item says `add` or `remove` of one corp tag. Per tag, the latest item is the state
//! wanted now. Items are tag-set changes of the profile, so the first open item also tells the
//! state before them: a sequence that starts with `add` started from "not set". When the latest
//! item brings the tag back to that starting state (add … remove), nothing needs sending —
//! unless one of the items was already tried: a call may have reached WeCom even if its answer
//! did not come back, so the latest state is sent (`mark_tag` is idempotent). All other items
//! are superseded; the one sent carries the attempt count of the tag so far.

use chrono::{DateTime, Utc};

/// `add` or `remove`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Add,
    Remove,
}

impl Action {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "add" => Some(Action::Add),
            "remove" => Some(Action::Remove),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Remove => "remove",
        }
    }
}

/// An open item of the contact (pending, or sending with its lease run out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub id: i64,
    pub wecom_tag_id: String,
    pub action: Action,
    /// Tries so far.
    pub attempts: i32,
    pub next_at: DateTime<Utc>,
}

/// One tag to send in the contact's `mark_tag` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    /// The item that stands for the tag (the latest).
    pub id: i64,
    pub wecom_tag_id: String,
    pub action: Action,
    /// Tries including this one.
    pub attempts: i32,
}

/// What to do with a contact's open items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// An item is waiting for its retry time: nothing goes before it (a newer item must not
    /// overtake a retry of the same tag); the due ones wait until then too.
    Wait(DateTime<Utc>),
    /// Send these (possibly none) and mark `superseded` the items they replace.
    Go {
        sends: Vec<Send>,
        superseded: Vec<i64>,
    },
}

/// The plan for one contact's open items at `now` (any order).
pub fn plan(items: &[Open], now: DateTime<Utc>) -> Plan {
    if let Some(later) = items.iter().map(|i| i.next_at).filter(|t| *t > now).max() {
        return Plan::Wait(later);
    }
    let mut by_tag: std::collections::BTreeMap<&str, Vec<&Open>> = Default::default();
    for i in items {
        by_tag.entry(i.wecom_tag_id.as_str()).or_default().push(i);
    }
    let mut sends = Vec::new();
    let mut superseded = Vec::new();
    for (tag, mut seq) in by_tag {
        seq.sort_by_key(|i| i.id);
        let (Some(first), Some(last)) = (seq.first(), seq.last()) else {
            continue;
        };
        let tried = seq.iter().any(|i| i.attempts > 0);
        if first.action == last.action || tried {
            sends.push(Send {
                id: last.id,
                wecom_tag_id: tag.to_string(),
                action: last.action,
                attempts: seq.iter().map(|i| i.attempts).max().unwrap_or(0) + 1,
            });
            superseded.extend(seq.iter().filter(|i| i.id != last.id).map(|i| i.id));
        } else {
            superseded.extend(seq.iter().map(|i| i.id));
        }
    }
    superseded.sort_unstable();
    Plan::Go { sends, superseded }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn open(id: i64, tag: &str, action: Action, attempts: i32) -> Open {
        Open {
            id,
            wecom_tag_id: tag.into(),
            action,
            attempts,
            next_at: at(0),
        }
    }

    use Action::{Add, Remove};

    #[test]
    fn net_effect_per_tag() {
        let p = plan(
            &[
                open(1, "a", Add, 0),
                open(2, "b", Add, 0),
                open(3, "a", Remove, 0),
                open(4, "c", Remove, 0),
                open(5, "b", Remove, 0),
                open(6, "b", Add, 0),
            ],
            at(1),
        );
        assert_eq!(
            p,
            Plan::Go {
                sends: vec![
                    Send {
                        id: 6,
                        wecom_tag_id: "b".into(),
                        action: Add,
                        attempts: 1
                    },
                    Send {
                        id: 4,
                        wecom_tag_id: "c".into(),
                        action: Remove,
                        attempts: 1
                    },
                ],
                // a: added then removed, never sent: nothing to do.
                superseded: vec![1, 2, 3, 5],
            }
        );
    }

    #[test]
    fn a_tried_item_makes_the_latest_state_go_out() {
        let p = plan(&[open(7, "a", Add, 2), open(9, "a", Remove, 0)], at(1));
        assert_eq!(
            p,
            Plan::Go {
                sends: vec![Send {
                    id: 9,
                    wecom_tag_id: "a".into(),
                    action: Remove,
                    attempts: 3
                }],
                superseded: vec![7],
            }
        );
    }

    #[test]
    fn a_retry_waiting_holds_the_contact_back() {
        let mut waiting = open(1, "a", Add, 1);
        waiting.next_at = at(30);
        assert_eq!(
            plan(&[waiting, open(2, "b", Add, 0)], at(1)),
            Plan::Wait(at(30))
        );
        assert_eq!(
            plan(&[], at(1)),
            Plan::Go {
                sends: vec![],
                superseded: vec![]
            }
        );
        assert_eq!(Action::parse("add"), Some(Add));
        assert_eq!(Action::parse(Remove.as_str()), Some(Remove));
        assert_eq!(Action::parse("set"), None);
    }
}
