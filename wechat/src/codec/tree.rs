//! A small, bounded document tree shared by the XML and JSON readers: every callback body becomes
//! a root [`Node`] whose children are the message fields, so one field mapper serves both formats.
//!
//! The XML reader refuses `DOCTYPE` (and so any entity declaration), resolves only the five
//! predefined entities and character references, and enforces [`Limits`] on size, depth and
//! element count. The JSON reader keeps repeated keys (so they can be refused as duplicates) and
//! turns an array into repeated elements of the same name, the way XML repeats `<List>`.

use quick_xml::events::{BytesRef, Event};
use quick_xml::Reader;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::CodecError;

/// Size limits applied while reading a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Deepest element nesting accepted (the root counts as 1).
    pub max_depth: usize,
    /// Most elements accepted in one body (the root included).
    pub max_elements: usize,
}

impl Limits {
    /// The limits used by the `parse_*` functions: 1 MiB, depth 16, 10 000 elements. A real
    /// callback is a few KiB, 4 levels deep and has well under a hundred elements.
    pub const DEFAULT: Limits = Limits {
        max_body_bytes: 1024 * 1024,
        max_depth: 16,
        max_elements: 10_000,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// An element: its name, its text (CDATA and plain text concatenated, entities resolved) and its
/// child elements in document order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Node {
    pub name: String,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    fn named(name: String) -> Self {
        Node {
            name,
            text: String::new(),
            children: Vec::new(),
        }
    }
}

/// Checks the size and strips a UTF-8 byte-order mark.
pub(crate) fn check_size<'a>(body: &'a str, limits: &Limits) -> Result<&'a str, CodecError> {
    if body.len() > limits.max_body_bytes {
        return Err(CodecError::TooLarge {
            size: body.len(),
            limit: limits.max_body_bytes,
        });
    }
    Ok(body.strip_prefix('\u{feff}').unwrap_or(body))
}

/// Reads an XML document whose root element must be `<xml>`.
pub(crate) fn parse_xml(body: &str, limits: &Limits) -> Result<Node, CodecError> {
    let body = check_size(body, limits)?;
    let mut reader = Reader::from_str(body);
    // Keep the defaults that matter here explicitly: end names must match, `&` must start a
    // reference.
    reader.config_mut().check_end_names = true;
    reader.config_mut().allow_dangling_amp = false;
    reader.config_mut().allow_unmatched_ends = false;

    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    let mut elements = 0usize;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| CodecError::Xml(e.to_string()))?;
        match event {
            Event::DocType(_) => return Err(CodecError::DoctypeNotAllowed),
            Event::Start(start) => {
                let node = open_element(&start, &stack, root.is_some(), &mut elements, limits)?;
                stack.push(node);
            }
            Event::Empty(start) => {
                let node = open_element(&start, &stack, root.is_some(), &mut elements, limits)?;
                close_element(node, &mut stack, &mut root);
            }
            Event::End(_) => {
                // quick-xml has checked that the name matches the open element.
                let node = stack
                    .pop()
                    .ok_or_else(|| CodecError::Xml("unmatched end tag".into()))?;
                close_element(node, &mut stack, &mut root);
            }
            Event::Text(text) => {
                let text = text
                    .xml10_content()
                    .map_err(|e| CodecError::Xml(e.to_string()))?;
                push_text(&mut stack, &text)?;
            }
            Event::CData(cdata) => {
                let text = cdata
                    .xml10_content()
                    .map_err(|e| CodecError::Xml(e.to_string()))?;
                push_text(&mut stack, &text)?;
            }
            Event::GeneralRef(reference) => {
                let resolved = resolve_reference(&reference)?;
                push_text(&mut stack, &resolved)?;
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(CodecError::Truncated(format!(
            "unexpected end of document inside <{}>",
            open.name
        )));
    }
    root.ok_or_else(|| CodecError::Truncated("no root element".into()))
}

fn open_element(
    start: &quick_xml::events::BytesStart<'_>,
    stack: &[Node],
    root_done: bool,
    elements: &mut usize,
    limits: &Limits,
) -> Result<Node, CodecError> {
    if root_done {
        return Err(CodecError::Xml("content after the root element".into()));
    }
    let name = std::str::from_utf8(start.name().as_ref())
        .map_err(|_| CodecError::Xml("element name is not UTF-8".into()))?
        .to_owned();
    if stack.is_empty() && name != "xml" {
        return Err(CodecError::UnexpectedRoot(name));
    }
    if stack.len() >= limits.max_depth {
        return Err(CodecError::TooDeep(limits.max_depth));
    }
    *elements += 1;
    if *elements > limits.max_elements {
        return Err(CodecError::TooManyElements(limits.max_elements));
    }
    Ok(Node::named(name))
}

fn close_element(node: Node, stack: &mut [Node], root: &mut Option<Node>) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None => *root = Some(node),
    }
}

fn push_text(stack: &mut [Node], text: &str) -> Result<(), CodecError> {
    match stack.last_mut() {
        Some(node) => node.text.push_str(text),
        None if text.chars().all(char::is_whitespace) => {}
        None => return Err(CodecError::Xml("text outside the root element".into())),
    }
    Ok(())
}

/// Resolves `&name;` / `&#N;` / `&#xN;`: character references and the five predefined entities.
/// Anything else is refused (no DTD can define it, since DOCTYPE is refused).
fn resolve_reference(reference: &BytesRef<'_>) -> Result<String, CodecError> {
    if reference.is_char_ref() {
        return match reference.resolve_char_ref() {
            Ok(Some(ch)) => Ok(ch.to_string()),
            _ => Err(CodecError::Xml(format!(
                "invalid character reference &{};",
                String::from_utf8_lossy(reference.as_ref())
            ))),
        };
    }
    let name = reference
        .decode()
        .map_err(|e| CodecError::Xml(e.to_string()))?;
    match quick_xml::escape::resolve_predefined_entity(&name) {
        Some(value) => Ok(value.to_owned()),
        None => Err(CodecError::EntityNotAllowed(name.into_owned())),
    }
}

/// A JSON value that keeps object members in order, repeated keys included.
enum JsonValue {
    Null,
    Scalar(String),
    Array(Vec<JsonValue>),
    Object(Vec<(String, JsonValue)>),
}

impl<'de> Deserialize<'de> for JsonValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = JsonValue;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<JsonValue, E> {
        Ok(JsonValue::Scalar(v.to_string()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<JsonValue, E> {
        Ok(JsonValue::Scalar(v.to_string()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<JsonValue, E> {
        Ok(JsonValue::Scalar(v.to_string()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<JsonValue, E> {
        Ok(JsonValue::Scalar(v.to_string()))
    }

    fn visit_str<E>(self, v: &str) -> Result<JsonValue, E> {
        Ok(JsonValue::Scalar(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<JsonValue, E> {
        Ok(JsonValue::Scalar(v))
    }

    fn visit_unit<E>(self) -> Result<JsonValue, E> {
        Ok(JsonValue::Null)
    }

    fn visit_none<E>(self) -> Result<JsonValue, E> {
        Ok(JsonValue::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<JsonValue, D::Error> {
        JsonValue::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<JsonValue>()? {
            items.push(item);
        }
        Ok(JsonValue::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonValue, A::Error> {
        let mut members = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, JsonValue>()? {
            members.push((key, value));
        }
        Ok(JsonValue::Object(members))
    }
}

/// Reads a JSON document whose root must be an object; the root node is named `xml` so the
/// field mapper treats both formats alike. `null` members are treated as absent.
pub(crate) fn parse_json(body: &str, limits: &Limits) -> Result<Node, CodecError> {
    let body = check_size(body, limits)?;
    // serde_json bounds its own recursion (128 levels), so this cannot overflow the stack.
    let value: JsonValue =
        serde_json::from_str(body).map_err(|e| CodecError::Json(e.to_string()))?;
    let JsonValue::Object(members) = value else {
        return Err(CodecError::Json("the root must be an object".into()));
    };
    let mut elements = 1usize;
    let mut root = Node::named("xml".into());
    for (name, value) in members {
        push_json(&mut root.children, name, value, 2, &mut elements, limits)?;
    }
    Ok(root)
}

fn push_json(
    out: &mut Vec<Node>,
    name: String,
    value: JsonValue,
    depth: usize,
    elements: &mut usize,
    limits: &Limits,
) -> Result<(), CodecError> {
    if depth > limits.max_depth {
        return Err(CodecError::TooDeep(limits.max_depth));
    }
    match value {
        JsonValue::Null => Ok(()),
        JsonValue::Array(items) => {
            // An array is the same element repeated; nested arrays count as a level.
            for item in items {
                push_json(out, name.clone(), item, depth + 1, elements, limits)?;
            }
            Ok(())
        }
        JsonValue::Scalar(text) => {
            count(elements, limits)?;
            out.push(Node {
                name,
                text,
                children: Vec::new(),
            });
            Ok(())
        }
        JsonValue::Object(members) => {
            count(elements, limits)?;
            let mut node = Node::named(name);
            for (child, value) in members {
                push_json(
                    &mut node.children,
                    child,
                    value,
                    depth + 1,
                    elements,
                    limits,
                )?;
            }
            out.push(node);
            Ok(())
        }
    }
}

fn count(elements: &mut usize, limits: &Limits) -> Result<(), CodecError> {
    *elements += 1;
    if *elements > limits.max_elements {
        return Err(CodecError::TooManyElements(limits.max_elements));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_text_cdata_and_references() {
        let root = parse_xml(
            "<?xml version=\"1.0\"?><xml><!-- c --><A>x &amp; y &#x4e2d;</A><B><![CDATA[<b>&amp;]]></B><C/></xml>",
            &Limits::DEFAULT,
        )
        .unwrap();
        assert_eq!(root.children.len(), 3);
        assert_eq!(root.children[0].text, "x & y 中");
        assert_eq!(root.children[1].text, "<b>&amp;");
        assert_eq!(root.children[2].text, "");
    }

    #[test]
    fn xml_refusals() {
        let l = Limits::DEFAULT;
        assert_eq!(
            parse_xml("<!DOCTYPE x [<!ENTITY a \"b\">]><xml/>", &l),
            Err(CodecError::DoctypeNotAllowed)
        );
        assert_eq!(
            parse_xml("<xml><A>&ext;</A></xml>", &l),
            Err(CodecError::EntityNotAllowed("ext".into()))
        );
        assert!(matches!(
            parse_xml("<root/>", &l),
            Err(CodecError::UnexpectedRoot(_))
        ));
        assert!(matches!(
            parse_xml("<xml><A>1</A>", &l),
            Err(CodecError::Truncated(_))
        ));
        assert!(matches!(parse_xml("", &l), Err(CodecError::Truncated(_))));
        assert!(matches!(
            parse_xml("<xml/><xml/>", &l),
            Err(CodecError::Xml(_))
        ));
        assert!(matches!(
            parse_xml("junk<xml/>", &l),
            Err(CodecError::Xml(_))
        ));
        let deep = format!("<xml>{}{}</xml>", "<a>".repeat(20), "</a>".repeat(20));
        assert_eq!(parse_xml(&deep, &l), Err(CodecError::TooDeep(16)));
        let many = format!("<xml>{}</xml>", "<a/>".repeat(10_001));
        assert_eq!(
            parse_xml(&many, &l),
            Err(CodecError::TooManyElements(10_000))
        );
    }

    #[test]
    fn json_arrays_repeat_and_duplicates_are_kept() {
        let root = parse_json(
            r#"{"A":1,"A":"2","L":[{"x":1.5},{"x":true}],"N":null}"#,
            &Limits::DEFAULT,
        )
        .unwrap();
        let names: Vec<&str> = root.children.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["A", "A", "L", "L"]);
        assert_eq!(root.children[2].children[0].text, "1.5");
        assert_eq!(root.children[3].children[0].text, "true");
        assert!(matches!(
            parse_json("[1]", &Limits::DEFAULT),
            Err(CodecError::Json(_))
        ));
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(100), "]".repeat(100));
        assert_eq!(
            parse_json(&deep, &Limits::DEFAULT),
            Err(CodecError::TooDeep(16))
        );
    }
}
