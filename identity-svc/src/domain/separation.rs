//! What undoing a merge separates, decided over a loaded family without I/O: which live edges the
//! un-merge retracts ([`merge_edges`]), which identifiers and profiles go back to the restored
//! side — or that other evidence still links the two ([`sides`], over [`components`]) — and
//! which timeline rows change side ([`timeline_moves`], also for a split). The store loads and
//! locks the family and writes what is decided here.
//!
//! [`components`]: super::components

use std::collections::BTreeSet;

use uuid::Uuid;

use super::components::{Components, Node};

/// A live edge of the family, as the decision reads it.
#[derive(Debug, Clone, Copy)]
pub struct Edge<'a> {
    pub id: i64,
    pub from: i64,
    /// The other identifier; `None` links `from` to the profile `profile`.
    pub to: Option<i64>,
    pub profile: &'a str,
    /// The merge the edge proved (merge edges only).
    pub merge_id: Option<i64>,
    pub evidence_event: Option<&'a str>,
}

/// The merge being undone, as the decision reads it.
#[derive(Debug, Clone, Copy)]
pub struct Merge<'a> {
    pub id: i64,
    pub evidence_event: Option<&'a str>,
    /// The merge's `before_snapshot` (JSON): the absorbed profile's identifiers of then.
    pub before_snapshot: &'a str,
}

/// The edges undoing `merge` retracts: the merge's own; for merges recorded before edges named
/// their merge, the edges of its evidence event with exactly one end among the absorbed
/// profile's identifiers of then.
pub fn merge_edges(edges: &[Edge<'_>], merge: &Merge<'_>) -> BTreeSet<i64> {
    let mut retract: BTreeSet<i64> = edges
        .iter()
        .filter(|e| e.merge_id == Some(merge.id))
        .map(|e| e.id)
        .collect();
    if retract.is_empty() && merge.evidence_event.is_some() {
        let before: serde_json::Value =
            serde_json::from_str(merge.before_snapshot).unwrap_or_default();
        let then: BTreeSet<i64> = before["absorbed"]["identifiers"]
            .as_array()
            .map(|a| a.iter().filter_map(|i| i["id"].as_i64()).collect())
            .unwrap_or_default();
        retract = edges
            .iter()
            .filter(|e| e.evidence_event == merge.evidence_event && e.merge_id.is_none())
            .filter(|e| {
                e.to.is_some_and(|to| then.contains(&to) != then.contains(&e.from))
            })
            .map(|e| e.id)
            .collect();
    }
    retract
}

/// What goes back to the restored profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sides {
    /// Identifiers still connected to the restored profile.
    pub moving: BTreeSet<i64>,
    /// Profiles of the family on the restored side (the restored one among them).
    pub side: BTreeSet<String>,
}

/// Other links in the edge ledger still connect the two sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StillLinked;

/// Splits the family of identifiers `idents` and profiles `members` under its live `edges`
/// without those in `retract`: what hangs together with `restored` goes back to it, the rest
/// stays with `survivor`. Refused when `restored` and `survivor` still hang together.
pub fn sides(
    idents: &[i64],
    members: &[String],
    edges: &[Edge<'_>],
    retract: &BTreeSet<i64>,
    restored: &str,
    survivor: &str,
) -> Result<Sides, StillLinked> {
    let mut comps = Components::new(
        idents.iter().copied(),
        members.iter().cloned(),
        edges
            .iter()
            .filter(|e| !retract.contains(&e.id))
            .map(|e| (e.from, e.to, e.profile)),
    );
    let restored_root = comps.of(&Node::Root(restored.to_string()));
    if restored_root.is_some() && restored_root == comps.of(&Node::Root(survivor.to_string())) {
        return Err(StillLinked);
    }
    let moving = idents
        .iter()
        .copied()
        .filter(|i| comps.of(&Node::Ident(*i)) == restored_root)
        .collect();
    let side = members
        .iter()
        .filter(|p| comps.of(&Node::Root((*p).clone())) == restored_root)
        .cloned()
        .collect();
    Ok(Sides { moving, side })
}

/// A timeline row of the family, as the decision reads it.
#[derive(Debug, Clone)]
pub struct Row<'a> {
    pub id: i64,
    pub profile: &'a str,
    pub event_id: &'a str,
    /// Ids of the identifiers its event carried, subject first (none for old rows).
    pub identifiers: Vec<i64>,
}

/// Which timeline rows change side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimelineMoves {
    /// Rows going to the restored profile.
    pub to_restored: Vec<i64>,
    /// Rows on the restored side going back to the profile that stays.
    pub to_stay: Vec<i64>,
    /// The events of the moving identifiers, sorted: every one, also those whose row never left
    /// the restored side.
    pub events: Vec<Uuid>,
}

/// Sends each row whose subject (its first identifier among `known`) is in `moving` to the
/// restored side (unless its profile lies there already, in `restored_side`), and each row on
/// the restored side whose subject is not back. Rows without a known identifier stay.
pub fn timeline_moves<'a>(
    rows: impl IntoIterator<Item = Row<'a>>,
    known: &BTreeSet<i64>,
    moving: &BTreeSet<i64>,
    restored_side: &BTreeSet<String>,
) -> TimelineMoves {
    let mut out = TimelineMoves::default();
    for row in rows {
        let Some(subject) = row.identifiers.into_iter().find(|i| known.contains(i)) else {
            continue;
        };
        let on_restored_side = restored_side.contains(row.profile);
        if moving.contains(&subject) {
            out.events.extend(Uuid::parse_str(row.event_id).ok());
        }
        match (moving.contains(&subject), on_restored_side) {
            (true, false) => out.to_restored.push(row.id),
            (false, true) => out.to_stay.push(row.id),
            _ => {}
        }
    }
    out.events.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(id: i64, from: i64, to: Option<i64>, profile: &str) -> Edge<'_> {
        Edge {
            id,
            from,
            to,
            profile,
            merge_id: None,
            evidence_event: None,
        }
    }

    #[test]
    fn a_merge_retracts_its_own_edges_or_else_those_of_its_evidence_across_the_sides() {
        let mut own = edge(3, 1, Some(2), "p1");
        own.merge_id = Some(7);
        let edges = [edge(1, 1, None, "p1"), edge(2, 2, None, "p2"), own];
        let m = Merge {
            id: 7,
            evidence_event: Some("ev"),
            before_snapshot: "",
        };
        assert_eq!(merge_edges(&edges, &m), BTreeSet::from([3]));

        // Recorded before edges named their merge: the evidence's edges crossing the sides.
        let mut cross = edge(3, 1, Some(2), "p1");
        cross.evidence_event = Some("ev");
        let mut inside = edge(4, 2, Some(5), "p2");
        inside.evidence_event = Some("ev");
        let edges = [edge(1, 1, None, "p1"), cross, inside];
        let m = Merge {
            id: 7,
            evidence_event: Some("ev"),
            before_snapshot: r#"{"absorbed":{"identifiers":[{"id":2},{"id":5}]}}"#,
        };
        assert_eq!(merge_edges(&edges, &m), BTreeSet::from([3]));
        let m = Merge {
            evidence_event: None,
            ..m
        };
        assert!(merge_edges(&edges, &m).is_empty());
    }

    #[test]
    fn the_restored_side_takes_what_still_hangs_together_with_it() {
        let members = ["p1".to_string(), "p2".to_string()];
        let edges = [
            edge(1, 1, None, "p1"),
            edge(2, 2, None, "p2"),
            edge(3, 2, Some(3), "p1"),
            edge(4, 1, Some(2), "p1"),
        ];
        let s = sides(
            &[1, 2, 3],
            &members,
            &edges,
            &BTreeSet::from([4]),
            "p2",
            "p1",
        );
        assert_eq!(
            s,
            Ok(Sides {
                moving: BTreeSet::from([2, 3]),
                side: BTreeSet::from(["p2".to_string()]),
            })
        );
        // Another link between 1 and 3 keeps the family one.
        let mut linked = edges.to_vec();
        linked.push(edge(5, 1, Some(3), "p1"));
        let s = sides(
            &[1, 2, 3],
            &members,
            &linked,
            &BTreeSet::from([4]),
            "p2",
            "p1",
        );
        assert_eq!(s, Err(StillLinked));
    }

    #[test]
    fn timeline_rows_follow_their_subject() {
        let ev = |n: u128| Uuid::from_u128(n).to_string();
        let (e1, e2, e3) = (ev(1), ev(2), ev(3));
        let rows = vec![
            // Subject 2 moves; the row is on the survivor's side.
            Row {
                id: 10,
                profile: "p1",
                event_id: &e2,
                identifiers: vec![9, 2, 1],
            },
            // Subject 1 stays; the row is on the restored side.
            Row {
                id: 11,
                profile: "p2",
                event_id: &e1,
                identifiers: vec![1],
            },
            // Subject 3 moves and is there already: no move, but its event goes back.
            Row {
                id: 12,
                profile: "p2",
                event_id: &e3,
                identifiers: vec![3],
            },
            // No identifiers: stays.
            Row {
                id: 13,
                profile: "p1",
                event_id: &e1,
                identifiers: vec![],
            },
        ];
        let m = timeline_moves(
            rows,
            &BTreeSet::from([1, 2, 3]),
            &BTreeSet::from([2, 3]),
            &BTreeSet::from(["p2".to_string()]),
        );
        assert_eq!(m.to_restored, vec![10]);
        assert_eq!(m.to_stay, vec![11]);
        assert_eq!(m.events, vec![Uuid::from_u128(2), Uuid::from_u128(3)]);
    }
}
