//! The tenant's source registry: a tree of sources (channel > media > campaign > content >
//! keyword …, at most [`MAX_DEPTH`] levels), and the entry keys bound to its nodes — an OA QR
//! scene, a WeCom contact-me `state`, a UTM campaign — so that a touch arriving through one is
//! attributed to the node: its levels are the node's path of names, coarse to fine, and it keeps
//! the node's id. Pure: what a request may say, and how a key resolves over a loaded registry.

use std::collections::HashMap;

use serde::Serialize;

/// Deepest level of the tree (a root is level 1).
pub const MAX_DEPTH: usize = 10;
/// Longest node name, in characters.
pub const MAX_NAME: usize = 64;

/// What kind of entry key a binding maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BindingKind {
    /// An OA parametric QR code's scene (`qrscene_<scene>` on subscribe, the scene on `SCAN`).
    OaScene,
    /// A WeCom contact-me code's `state`.
    WecomState,
    /// A tracked event's `utm_campaign` (or `source.campaign`).
    UtmCampaign,
}

impl BindingKind {
    pub const ALL: [BindingKind; 3] = [
        BindingKind::OaScene,
        BindingKind::WecomState,
        BindingKind::UtmCampaign,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BindingKind::OaScene => "oa_scene",
            BindingKind::WecomState => "wecom_state",
            BindingKind::UtmCampaign => "utm_campaign",
        }
    }

    pub fn parse(s: &str) -> Option<BindingKind> {
        BindingKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Longest value WeChat (or a URL) carries for the kind, in characters: a QR scene string
    /// is 1–64, a contact-me `state` at most 30.
    pub fn max_len(self) -> usize {
        match self {
            BindingKind::OaScene => 64,
            BindingKind::WecomState => 30,
            BindingKind::UtmCampaign => 128,
        }
    }
}

/// Why a request about the registry was refused: the field at fault and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {reason}")]
pub struct SourceInputError {
    pub field: &'static str,
    pub reason: String,
}

fn refuse(field: &'static str, reason: impl Into<String>) -> SourceInputError {
    SourceInputError {
        field,
        reason: reason.into(),
    }
}

/// A node's name, trimmed: 1..=[`MAX_NAME`] characters without `>` or `/` (the separators of
/// levels written as one string).
pub fn name(raw: &str) -> Result<String, SourceInputError> {
    let n = raw.trim();
    if n.is_empty() {
        return Err(refuse("name", "empty"));
    }
    if n.chars().count() > MAX_NAME {
        return Err(refuse("name", format!("at most {MAX_NAME} characters")));
    }
    if n.contains(['>', '/']) || n.chars().any(char::is_control) {
        return Err(refuse("name", "no `>`, `/` or control characters"));
    }
    Ok(n.to_string())
}

/// A binding's kind and value, trimmed.
pub fn binding(kind: &str, value: &str) -> Result<(BindingKind, String), SourceInputError> {
    let k = BindingKind::parse(kind).ok_or_else(|| {
        let all: Vec<&str> = BindingKind::ALL.iter().map(|k| k.as_str()).collect();
        refuse("kind", format!("one of {}", all.join(", ")))
    })?;
    let v = value.trim();
    if v.is_empty() || v.chars().count() > k.max_len() {
        return Err(refuse(
            "value",
            format!("1–{} characters for {}", k.max_len(), k.as_str()),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(refuse("value", "no control characters"));
    }
    Ok((k, v.to_string()))
}

/// One node of a loaded registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    pub parent_id: Option<String>,
    pub name: String,
    pub archived: bool,
}

/// A tenant's registry as loaded: its nodes and bindings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    nodes: HashMap<String, Node>,
    bindings: HashMap<(BindingKind, String), String>,
}

/// Where a key led: the node and its path of names, coarse to fine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    pub node_id: String,
    pub levels: Vec<String>,
}

impl Registry {
    pub fn new(
        nodes: impl IntoIterator<Item = Node>,
        bindings: impl IntoIterator<Item = (BindingKind, String, String)>,
    ) -> Self {
        Registry {
            nodes: nodes.into_iter().map(|n| (n.id.clone(), n)).collect(),
            bindings: bindings
                .into_iter()
                .map(|(k, v, node)| ((k, v), node))
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    /// The names from the root down to `id` (`None` for an unknown node or a broken chain).
    pub fn path(&self, id: &str) -> Option<Vec<String>> {
        let mut names = Vec::new();
        let mut at = Some(id);
        while let Some(cur) = at {
            let n = self.nodes.get(cur)?;
            names.push(n.name.clone());
            if names.len() > MAX_DEPTH {
                return None;
            }
            at = n.parent_id.as_deref();
        }
        names.reverse();
        Some(names)
    }

    /// The node `value` of `kind` is bound to, with its path; `None` when unbound, or bound to
    /// an archived node (its touches keep their raw key only).
    pub fn resolve(&self, kind: BindingKind, value: &str) -> Option<Attribution> {
        let id = self.bindings.get(&(kind, value.trim().to_string()))?;
        if self.nodes.get(id)?.archived {
            return None;
        }
        Some(Attribution {
            node_id: id.clone(),
            levels: self.path(id)?,
        })
    }

    /// The depth a new child of `parent` would have (1 for a root); refused beyond
    /// [`MAX_DEPTH`] or under an unknown or archived parent.
    pub fn child_depth(&self, parent: Option<&str>) -> Result<usize, SourceInputError> {
        let Some(p) = parent else { return Ok(1) };
        match self.nodes.get(p) {
            Some(n) if !n.archived => {}
            Some(_) => {
                return Err(refuse(
                    "parent_id",
                    "an archived source has no new children",
                ))
            }
            None => return Err(refuse("parent_id", format!("no source `{p}`"))),
        }
        let depth = self.path(p).map_or(MAX_DEPTH + 1, |p| p.len()) + 1;
        if depth > MAX_DEPTH {
            return Err(refuse("parent_id", format!("at most {MAX_DEPTH} levels")));
        }
        Ok(depth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, parent: Option<&str>, name: &str) -> Node {
        Node {
            id: id.into(),
            parent_id: parent.map(Into::into),
            name: name.into(),
            archived: false,
        }
    }

    fn expo() -> Registry {
        Registry::new(
            [
                node("n1", None, "offline"),
                node("n2", Some("n1"), "expo"),
                node("n3", Some("n2"), "Shanghai 2026"),
                node("n4", Some("n3"), "booth 7"),
            ],
            [
                (
                    BindingKind::OaScene,
                    "booth_7".to_string(),
                    "n4".to_string(),
                ),
                (
                    BindingKind::WecomState,
                    "booth_7".to_string(),
                    "n4".to_string(),
                ),
                (
                    BindingKind::UtmCampaign,
                    "expo".to_string(),
                    "n2".to_string(),
                ),
            ],
        )
    }

    #[test]
    fn keys_resolve_to_the_path_of_their_node() {
        let r = expo();
        let a = r.resolve(BindingKind::OaScene, "booth_7").unwrap();
        assert_eq!(a.node_id, "n4");
        assert_eq!(a.levels, ["offline", "expo", "Shanghai 2026", "booth 7"]);
        assert_eq!(
            r.resolve(BindingKind::UtmCampaign, " expo ")
                .unwrap()
                .levels,
            ["offline", "expo"]
        );
        assert_eq!(r.resolve(BindingKind::UtmCampaign, "booth_7"), None);
        assert_eq!(r.resolve(BindingKind::OaScene, "other"), None);
    }

    #[test]
    fn archived_nodes_attribute_nothing_and_take_no_children() {
        let mut r = expo();
        r.nodes.get_mut("n4").unwrap().archived = true;
        assert_eq!(r.resolve(BindingKind::OaScene, "booth_7"), None);
        assert_eq!(r.child_depth(Some("n4")).unwrap_err().field, "parent_id");
        assert_eq!(r.child_depth(Some("n3")), Ok(4));
        assert_eq!(r.child_depth(None), Ok(1));
        assert!(r.child_depth(Some("nope")).is_err());
    }

    #[test]
    fn ten_levels_at_most() {
        let nodes = (1..=MAX_DEPTH).map(|i| {
            let parent = (i > 1).then(|| format!("n{}", i - 1));
            Node {
                id: format!("n{i}"),
                parent_id: parent,
                name: format!("l{i}"),
                archived: false,
            }
        });
        let r = Registry::new(nodes, []);
        assert_eq!(r.path("n10").unwrap().len(), MAX_DEPTH);
        assert_eq!(r.child_depth(Some("n9")), Ok(MAX_DEPTH));
        let e = r.child_depth(Some("n10")).unwrap_err();
        assert!(e.reason.contains("10 levels"), "{e}");
    }

    #[test]
    fn inputs_are_checked() {
        assert_eq!(name("  booth 7 ").unwrap(), "booth 7");
        assert_eq!(name("").unwrap_err().field, "name");
        assert!(name("a > b").is_err());
        assert!(name(&"x".repeat(MAX_NAME + 1)).is_err());
        assert_eq!(
            binding("wecom_state", "booth_7").unwrap(),
            (BindingKind::WecomState, "booth_7".to_string())
        );
        assert_eq!(binding("qr", "x").unwrap_err().field, "kind");
        let e = binding("wecom_state", &"s".repeat(31)).unwrap_err();
        assert_eq!(e.field, "value");
        assert!(e.reason.contains("1–30"), "{e}");
        assert!(binding("oa_scene", &"s".repeat(64)).is_ok());
    }
}
