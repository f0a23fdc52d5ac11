//! Exports of customer data as CSV, whichever service writes them: cells that a spreadsheet
//! would take for a formula (text starting with `=`, `+`, `-`, `@`, a tab or a carriage return —
//! visitors type some of these values) are written with a leading `'` (OWASP's advice against
//! CSV injection), so they stay inert text; rows are encoded by the `csv` crate (quoting).

use actix_web::web::Bytes;
use serde_json::Value;

/// First characters that make a spreadsheet read a cell as a formula (or, for tab and carriage
/// return, that hide one).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `s` as inert text: with a leading `'` when it starts like a formula.
pub fn neutral(s: &str) -> String {
    if s.starts_with(FORMULA_STARTS) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

/// A JSON value as a cell. Numbers and booleans are written as they are (a negative number is
/// not a formula); text, lists and objects are neutralised.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
        Some(Value::String(s)) => neutral(s),
        Some(other) => neutral(&other.to_string()),
    }
}

/// `rows` as CSV lines.
pub fn csv_rows(rows: &[Vec<String>]) -> Result<Bytes, std::io::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.write_record(r).map_err(std::io::Error::other)?;
    }
    w.into_inner()
        .map(Bytes::from)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn formula_like_text_is_neutralised_and_the_rest_is_not() {
        for (raw, want) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("+1+2", "'+1+2"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("Hangzhou", "Hangzhou"),
            ("a=b", "a=b"),
            ("", ""),
        ] {
            assert_eq!(cell(Some(&Value::String(raw.into()))), want, "{raw:?}");
        }
        assert_eq!(cell(Some(&json!(-5))), "-5");
        assert_eq!(cell(Some(&json!(true))), "true");
        assert_eq!(cell(Some(&json!(["=x"]))), "[\"=x\"]");
        assert_eq!(cell(Some(&json!({"a": 1}))), "{\"a\":1}");
        assert_eq!(cell(None), "");
        assert_eq!(cell(Some(&Value::Null)), "");
    }

    #[test]
    fn neutralised_cells_survive_csv_quoting() {
        let row = vec![cell(Some(&json!("=1+1,\"x\"")))];
        let bytes = csv_rows(&[row]).unwrap();
        assert_eq!(&bytes[..], b"\"'=1+1,\"\"x\"\"\"\n");
    }
}
