//! An audience export's rows, without I/O: a saved segment's members (tagging: fields and tags)
//! joined with where each can be reached (identity: openids per Official Account and
//! mini-program, per WeCom corp the external_userid with the reps following, the phone masked),
//! as JSON lines or as CSV with one column per registered app.
//!
//! A JSON line holds every identifier; a CSV has a column per app or corp registered for the
//! tenant when the export starts (`oa_openid:<appid>`, `mp_openid:<appid>`,
//! `wecom_external_userid:<corpid>`, `wecom_reps:<corpid>` with the reps joined by `|`), so an
//! identifier of an app removed since is only in the JSON lines. What an Official Account mass
//! send takes is the `oa` openids of one app; what a WeCom group send takes is the
//! external_userids a rep follows (`wecom[].reps`).

use std::collections::BTreeMap;

use platform::http::export::{cell, neutral};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// A channel an export can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Official Account openids of the accounts the customer follows now.
    Oa,
    /// Mini-program openids.
    Mp,
    /// Per WeCom corp, the external_userid and the reps following it.
    Wecom,
    /// The phone, masked.
    Phone,
}

impl Channel {
    pub const ALL: [Channel; 4] = [Channel::Oa, Channel::Mp, Channel::Wecom, Channel::Phone];

    fn key(self) -> &'static str {
        match self {
            Channel::Oa => "oa",
            Channel::Mp => "mp",
            Channel::Wecom => "wecom",
            Channel::Phone => "phone",
        }
    }
}

/// The apps whose CSV columns an export has, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Columns {
    pub oa: Vec<String>,
    pub mp: Vec<String>,
    pub corps: Vec<String>,
}

/// What an export asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub fields: Vec<String>,
    pub tags: bool,
    pub channels: Vec<Channel>,
    /// Leave out members with no identifier on the asked messaging channels (oa, mp, wecom).
    pub reachable_only: bool,
}

impl Shape {
    fn has(&self, c: Channel) -> bool {
        self.channels.contains(&c)
    }

    /// The CSV header.
    pub fn header(&self, cols: &Columns) -> Vec<String> {
        let mut h = vec!["profile_id".to_string()];
        h.extend(self.fields.iter().cloned());
        if self.tags {
            h.push("tags".into());
        }
        if self.has(Channel::Oa) {
            h.extend(cols.oa.iter().map(|a| format!("oa_openid:{a}")));
        }
        if self.has(Channel::Mp) {
            h.extend(cols.mp.iter().map(|a| format!("mp_openid:{a}")));
        }
        if self.has(Channel::Wecom) {
            for c in &cols.corps {
                h.push(format!("wecom_external_userid:{c}"));
                h.push(format!("wecom_reps:{c}"));
            }
        }
        if self.has(Channel::Phone) {
            h.push("phone".into());
        }
        h.into_iter().map(|c| neutral(&c)).collect()
    }
}

/// One exported member: tagging's member (`{profile_id, fields, tags?}`) and identity's reach of
/// it (`{oa, mp, wecom, phone?}`; `None` when identity no longer holds it as an active profile).
pub fn row(shape: &Shape, member: &Value, reach: Option<&Value>) -> Option<Value> {
    let id = member.get("profile_id").and_then(Value::as_str)?;
    let mut o = Map::new();
    o.insert("profile_id".into(), json!(id));
    let fields = member.get("fields").cloned().unwrap_or_else(|| json!({}));
    o.insert("fields".into(), fields);
    if shape.tags {
        let tags = member.get("tags").cloned().unwrap_or_else(|| json!([]));
        o.insert("tags".into(), tags);
    }
    let mut reachable = false;
    for c in &shape.channels {
        let v = reach.and_then(|r| r.get(c.key())).cloned();
        match c {
            Channel::Phone => {
                o.insert("phone".into(), v.unwrap_or(Value::Null));
            }
            _ => {
                let list = v.unwrap_or_else(|| json!([]));
                reachable |= list.as_array().is_some_and(|a| !a.is_empty());
                o.insert(c.key().into(), list);
            }
        }
    }
    if shape.reachable_only && !reachable {
        return None;
    }
    Some(Value::Object(o))
}

/// `row` (from [`row`]) as CSV cells under [`Shape::header`].
pub fn csv_cells(shape: &Shape, cols: &Columns, row: &Value) -> Vec<String> {
    let list = |k: &str| -> Vec<Value> {
        row.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let per_app = |k: &str, app_key: &str, value_key: &str| -> BTreeMap<String, Vec<String>> {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for e in list(k) {
            let (Some(a), Some(v)) = (
                e.get(app_key).and_then(Value::as_str),
                e.get(value_key).and_then(Value::as_str),
            ) else {
                continue;
            };
            m.entry(a.to_string()).or_default().push(v.to_string());
        }
        m
    };
    let joined = |m: &BTreeMap<String, Vec<String>>, app: &str| {
        neutral(&m.get(app).map(|v| v.join("|")).unwrap_or_default())
    };
    let mut cells = vec![cell(row.get("profile_id"))];
    cells.extend(shape.fields.iter().map(|f| cell(row["fields"].get(f))));
    if shape.tags {
        let names: Vec<String> = list("tags")
            .iter()
            .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        cells.push(neutral(&names.join("|")));
    }
    if shape.has(Channel::Oa) {
        let m = per_app("oa", "app_id", "openid");
        cells.extend(cols.oa.iter().map(|a| joined(&m, a)));
    }
    if shape.has(Channel::Mp) {
        let m = per_app("mp", "app_id", "openid");
        cells.extend(cols.mp.iter().map(|a| joined(&m, a)));
    }
    if shape.has(Channel::Wecom) {
        let ext = per_app("wecom", "corp_id", "external_userid");
        let mut reps: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for e in list("wecom") {
            if let Some(c) = e.get("corp_id").and_then(Value::as_str) {
                let r = e
                    .get("reps")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten();
                reps.entry(c.to_string())
                    .or_default()
                    .extend(r.filter_map(Value::as_str).map(str::to_string));
            }
        }
        for c in &cols.corps {
            cells.push(joined(&ext, c));
            cells.push(joined(&reps, c));
        }
    }
    if shape.has(Channel::Phone) {
        cells.push(cell(row.get("phone")));
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(reachable_only: bool) -> Shape {
        Shape {
            fields: vec!["contact.city".into()],
            tags: true,
            channels: Channel::ALL.to_vec(),
            reachable_only,
        }
    }

    fn member() -> Value {
        json!({"profile_id": "p1", "fields": {"contact.city": "=Hangzhou"},
               "tags": [{"id": "t1", "name": "vip"}, {"id": "t2", "name": "expo"}]})
    }

    fn reach() -> Value {
        json!({"profile_id": "p1", "oa": [{"app_id": "wxA", "openid": "oA"}],
               "mp": [], "wecom": [{"corp_id": "ww1", "external_userid": "wmE",
               "reps": ["amy", "bob"]}], "phone": "138****8000"})
    }

    #[test]
    fn a_json_line_carries_every_identifier_asked() {
        let r = row(&shape(false), &member(), Some(&reach())).unwrap();
        assert_eq!(r["oa"][0]["openid"], "oA");
        assert_eq!(r["wecom"][0]["reps"], json!(["amy", "bob"]));
        assert_eq!(r["phone"], "138****8000");
        assert_eq!(r["tags"][1]["name"], "expo");
        let only_oa = Shape {
            channels: vec![Channel::Oa],
            tags: false,
            ..shape(false)
        };
        let r = row(&only_oa, &member(), Some(&reach())).unwrap();
        assert!(r.get("wecom").is_none() && r.get("phone").is_none() && r.get("tags").is_none());
    }

    #[test]
    fn unreachable_members_are_left_out_only_when_asked() {
        let nowhere = json!({"oa": [], "mp": [], "wecom": [], "phone": "138****8000"});
        assert!(row(&shape(true), &member(), Some(&nowhere)).is_none());
        assert!(row(&shape(true), &member(), None).is_none());
        assert!(row(&shape(false), &member(), None).is_some());
    }

    #[test]
    fn csv_has_a_column_per_registered_app() {
        let cols = Columns {
            oa: vec!["wxA".into(), "wxB".into()],
            mp: vec![],
            corps: vec!["ww1".into()],
        };
        let s = shape(false);
        assert_eq!(
            s.header(&cols),
            [
                "profile_id",
                "contact.city",
                "tags",
                "oa_openid:wxA",
                "oa_openid:wxB",
                "wecom_external_userid:ww1",
                "wecom_reps:ww1",
                "phone"
            ]
        );
        let r = row(&s, &member(), Some(&reach())).unwrap();
        assert_eq!(
            csv_cells(&s, &cols, &r),
            [
                "p1",
                "'=Hangzhou",
                "vip|expo",
                "oA",
                "",
                "wmE",
                "amy|bob",
                "138****8000"
            ]
        );
    }
}
