//! Which identifiers and profiles still hang together: the connected components of a family's
//! edge ledger (a union-find), without the edges an un-merge retracts. An edge links two
//! identifiers, or an identifier to the profile it names (a profile's first identifier, a split).

use std::collections::BTreeMap;

/// Node of the connectivity graph.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Node {
    Ident(i64),
    Root(String),
}

/// Connected components of a family's identifiers and profiles under its live edges.
pub struct Components {
    index: BTreeMap<Node, usize>,
    parent: Vec<usize>,
}

impl Components {
    /// The components of identifiers `idents` and profiles `roots` under `edges` (from an
    /// identifier to another one, or — `None` — to the profile named with it). Edges naming a
    /// node outside the family are ignored.
    pub fn new<'a>(
        idents: impl IntoIterator<Item = i64>,
        roots: impl IntoIterator<Item = String>,
        edges: impl IntoIterator<Item = (i64, Option<i64>, &'a str)>,
    ) -> Self {
        let mut index = BTreeMap::new();
        for id in idents {
            let n = index.len();
            index.entry(Node::Ident(id)).or_insert(n);
        }
        for p in roots {
            let n = index.len();
            index.entry(Node::Root(p)).or_insert(n);
        }
        let mut c = Components {
            parent: (0..index.len()).collect(),
            index,
        };
        for (from, to, profile) in edges {
            let a = Node::Ident(from);
            let b = match to {
                Some(t) => Node::Ident(t),
                None => Node::Root(profile.to_string()),
            };
            if let (Some(&x), Some(&y)) = (c.index.get(&a), c.index.get(&b)) {
                let (rx, ry) = (c.find(x), c.find(y));
                c.parent[rx] = ry;
            }
        }
        c
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    /// The component of `n` (equal for nodes that hang together); `None` outside the family.
    pub fn of(&mut self, n: &Node) -> Option<usize> {
        let i = *self.index.get(n)?;
        Some(self.find(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retracted_merge_edge_leaves_two_sides_and_later_attachments_follow_theirs() {
        // p1 ← 1 (first), p2 ← 2 (first), 2 — 3 attached later, 1 — 2 the merge (not given).
        let mut c = Components::new(
            [1, 2, 3],
            ["p1".to_string(), "p2".to_string()],
            [(1, None, "p1"), (2, None, "p2"), (2, Some(3), "p1")],
        );
        let p1 = c.of(&Node::Root("p1".into()));
        let p2 = c.of(&Node::Root("p2".into()));
        assert_ne!(p1, p2);
        assert_eq!(c.of(&Node::Ident(1)), p1);
        assert_eq!(c.of(&Node::Ident(3)), p2);
        assert_eq!(c.of(&Node::Ident(9)), None);
        // With the merge edge the family is one.
        let mut c = Components::new(
            [1, 2],
            ["p1".to_string(), "p2".to_string()],
            [(1, None, "p1"), (2, None, "p2"), (1, Some(2), "p1")],
        );
        assert_eq!(
            c.of(&Node::Root("p1".into())),
            c.of(&Node::Root("p2".into()))
        );
    }
}
