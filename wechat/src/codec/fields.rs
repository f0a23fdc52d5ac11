//! Typed access to the fields of a parsed body: exact, case-sensitive names; a field present more
//! than once is refused rather than guessed; every error names the field by its path
//! (`CreateTime`, `SubscribeMsgPopupEvent/List[1]/TemplateId`).

use std::collections::BTreeMap;

use super::tree::Node;
use super::CodecError;

/// Latest `CreateTime` accepted: 9999-12-31T23:59:59Z.
const MAX_TIMESTAMP: i64 = 253_402_300_799;

/// The children of one element, read as named fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'a> {
    node: &'a Node,
}

impl<'a> Fields<'a> {
    pub fn new(node: &'a Node) -> Self {
        Fields { node }
    }

    /// The single child called `name`, if any; two or more is an error.
    pub fn node(&self, name: &str) -> Result<Option<&'a Node>, CodecError> {
        let mut found = self.node.children.iter().filter(|c| c.name == name);
        let first = found.next();
        if first.is_some() && found.next().is_some() {
            return Err(CodecError::DuplicateField(name.to_owned()));
        }
        Ok(first)
    }

    /// Every child called `name`, in document order.
    pub fn all(&self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.node.children.iter().filter(move |c| c.name == name)
    }

    /// The text of field `name` exactly as sent (empty text included).
    pub fn raw(&self, name: &str) -> Result<Option<&'a str>, CodecError> {
        match self.node(name)? {
            None => Ok(None),
            Some(node) if !node.children.is_empty() => Err(CodecError::NotText(name.to_owned())),
            Some(node) => Ok(Some(node.text.as_str())),
        }
    }

    /// A required text field (may be empty).
    pub fn string(&self, name: &str) -> Result<String, CodecError> {
        self.raw(name)?
            .map(str::to_owned)
            .ok_or_else(|| CodecError::MissingField(name.to_owned()))
    }

    /// A required text field that must not be empty.
    pub fn non_empty(&self, name: &str) -> Result<String, CodecError> {
        let value = self.string(name)?;
        if value.is_empty() {
            return Err(CodecError::MissingField(name.to_owned()));
        }
        Ok(value)
    }

    /// An optional text field; empty text counts as absent.
    pub fn opt_string(&self, name: &str) -> Result<Option<String>, CodecError> {
        Ok(self.raw(name)?.filter(|s| !s.is_empty()).map(str::to_owned))
    }

    /// An optional number; empty or whitespace-only text counts as absent.
    fn opt_parsed<T: std::str::FromStr>(
        &self,
        name: &str,
        error: fn(String) -> CodecError,
    ) -> Result<Option<T>, CodecError> {
        match self.raw(name)?.map(str::trim) {
            None | Some("") => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| error(name.to_owned())),
        }
    }

    pub fn opt_u64(&self, name: &str) -> Result<Option<u64>, CodecError> {
        self.opt_parsed(name, CodecError::InvalidInteger)
    }

    pub fn opt_u32(&self, name: &str) -> Result<Option<u32>, CodecError> {
        self.opt_parsed(name, CodecError::InvalidInteger)
    }

    pub fn opt_i64(&self, name: &str) -> Result<Option<i64>, CodecError> {
        self.opt_parsed(name, CodecError::InvalidInteger)
    }

    pub fn u64(&self, name: &str) -> Result<u64, CodecError> {
        self.opt_u64(name)?
            .ok_or_else(|| CodecError::MissingField(name.to_owned()))
    }

    /// An optional finite decimal number.
    pub fn opt_f64(&self, name: &str) -> Result<Option<f64>, CodecError> {
        let value: Option<f64> = self.opt_parsed(name, CodecError::InvalidNumber)?;
        match value {
            Some(v) if !v.is_finite() => Err(CodecError::InvalidNumber(name.to_owned())),
            other => Ok(other),
        }
    }

    /// A required finite decimal number.
    pub fn f64(&self, name: &str) -> Result<f64, CodecError> {
        self.opt_f64(name)?
            .ok_or_else(|| CodecError::MissingField(name.to_owned()))
    }

    /// A required Unix timestamp in seconds between 1970 and 9999.
    pub fn timestamp(&self, name: &str) -> Result<i64, CodecError> {
        let value = self
            .opt_i64(name)?
            .ok_or_else(|| CodecError::MissingField(name.to_owned()))?;
        if !(0..=MAX_TIMESTAMP).contains(&value) {
            return Err(CodecError::InvalidTimestamp(name.to_owned()));
        }
        Ok(value)
    }

    /// Every field flattened to `path → text` (see [`flatten`]).
    pub fn flatten(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        flatten_into(self.node, "", &mut out);
        out
    }
}

/// Prefixes errors from a nested element's fields with its path.
pub(crate) fn nested<T>(path: &str, result: Result<T, CodecError>) -> Result<T, CodecError> {
    result.map_err(|e| e.with_prefix(path))
}

/// Escapes the characters that structure a flattened path, so distinct trees give distinct maps
/// even with JSON keys that contain them (XML names never do).
fn escape_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for ch in name.chars() {
        match ch {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            '[' => out.push_str("%5B"),
            ']' => out.push_str("%5D"),
            c => out.push(c),
        }
    }
    out
}

/// Leaf elements become `Parent/Child → text`; a name repeated among its siblings gets its
/// index (`List[0]`, `List[1]`); an element with children keeps its own text only when it is not
/// whitespace (indentation between elements is not data).
fn flatten_into(node: &Node, prefix: &str, out: &mut BTreeMap<String, String>) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut totals: BTreeMap<&str, usize> = BTreeMap::new();
    for child in &node.children {
        *totals.entry(child.name.as_str()).or_default() += 1;
    }
    for child in &node.children {
        let total = totals.get(child.name.as_str()).copied().unwrap_or(1);
        let index = seen.entry(child.name.as_str()).or_default();
        let mut key = format!("{prefix}{}", escape_name(&child.name));
        if total > 1 {
            key.push_str(&format!("[{index}]"));
        }
        *index += 1;
        if child.children.is_empty() {
            out.insert(key, child.text.clone());
        } else {
            if !child.text.trim().is_empty() {
                out.insert(key.clone(), child.text.clone());
            }
            flatten_into(child, &format!("{key}/"), out);
        }
    }
}
