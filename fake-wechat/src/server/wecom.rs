//! The fake's WeCom customer-contact endpoints: an external contact with its reps, `mark_tag`
//! (logged with its answer) and the corp tag library (list, add, and the admin's own renames and
//! deletions that tests trigger).

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use serde_json::{json, Value};

use super::{now_unix, ok, strings, Answer, Shared, State, TOKEN_CHARS};
use crate::population::{random_string, FakeCorpTag, FakeCorpTagGroup, FakeUser, ID_CHARS};

/// One `mark_tag` request as the fake answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkTagCall {
    /// When it arrived.
    pub at: Instant,
    /// The rep (`userid`).
    pub userid: String,
    /// The customer (`external_userid`).
    pub external_userid: String,
    /// `add_tag`.
    pub add: Vec<String>,
    /// `remove_tag`.
    pub remove: Vec<String>,
    /// The errcode answered (0 = applied).
    pub errcode: i64,
}

impl MarkTagCall {
    pub(super) fn of(body: &Value, errcode: i64) -> Self {
        let ids = |field: &str| strings(body, field);
        MarkTagCall {
            at: Instant::now(),
            userid: body["userid"].as_str().unwrap_or("").to_owned(),
            external_userid: body["external_userid"].as_str().unwrap_or("").to_owned(),
            add: ids("add_tag"),
            remove: ids("remove_tag"),
            errcode,
        }
    }
}

impl Shared {
    /// The customer an external_userid names: 40096 when malformed, 84061 when unknown or
    /// nobody's contact.
    pub(super) fn customer(
        &self,
        st: &mut State,
        external_userid: &str,
    ) -> Result<&FakeUser, Value> {
        let well_formed = external_userid.len() == 32
            && (external_userid.starts_with("wm") || external_userid.starts_with("wo"))
            && external_userid.bytes().all(|b| TOKEN_CHARS.contains(&b));
        if !well_formed {
            return Err(st.error(40096));
        }
        match self.population.by_external_userid(external_userid) {
            Some(u) if !u.follows.is_empty() => Ok(u),
            _ => Err(st.error(84061)),
        }
    }

    pub(super) fn external_contact(&self, st: &mut State, q: &HashMap<String, String>) -> Answer {
        self.check_contact_token(st, q)?;
        let id = q.get("external_userid").map(String::as_str).unwrap_or("");
        let user = self.customer(st, id)?;
        let mut contact = json!({
            "external_userid": user.external_userid,
            "name": user.name,
            "type": 1,
            "gender": user.gender,
            "avatar": format!("http://wx.qlogo.cn/mmhead/fake{:04}/0", user.index),
        });
        if let (Some(unionid), Some(obj)) = (&user.unionid, contact.as_object_mut()) {
            obj.insert("unionid".to_owned(), json!(unionid));
        }
        let follow_user: Vec<Value> = user
            .follows
            .iter()
            .map(|f| {
                let live = st
                    .follow_tags
                    .get(&(user.index, f.userid.clone()))
                    .cloned()
                    .unwrap_or_default();
                let mut tags: Vec<Value> = live
                    .iter()
                    .filter_map(|id| st.corp_tag(id))
                    .map(|(g, t)| {
                        json!({ "group_name": g.group_name, "tag_name": t.name, "tag_id": t.id, "type": 1 })
                    })
                    .collect();
                tags.extend(
                    f.personal_tags
                        .iter()
                        .map(|name| json!({ "group_name": "", "tag_name": name, "type": 2 })),
                );
                let mut v = json!({
                    "userid": f.userid,
                    "remark": f.remark,
                    "description": f.description,
                    "createtime": f.createtime,
                    "tags": tags,
                    "remark_corp_name": "",
                    "remark_mobiles": f.remark_mobiles,
                    "oper_userid": if f.add_way == 1 { user.external_userid.clone() } else { f.userid.clone() },
                    "add_way": f.add_way,
                });
                if let (Some(state), Some(obj)) = (&f.state, v.as_object_mut()) {
                    obj.insert("state".to_owned(), json!(state));
                }
                v
            })
            .collect();
        Ok(json!({
            "errcode": 0,
            "errmsg": "ok",
            "external_contact": contact,
            "follow_user": follow_user,
            "next_cursor": "",
        }))
    }

    pub(super) fn mark_tag(
        &self,
        st: &mut State,
        q: &HashMap<String, String>,
        body: &Value,
    ) -> Answer {
        let call = MarkTagCall::of(body, 0);
        self.check_contact_token(st, q)?;
        let userid = call.userid.as_str();
        if !self.population.reps.iter().any(|r| r.userid == userid) {
            return Err(st.error(60111));
        }
        let user = self.customer(st, &call.external_userid)?;
        if !user.follows.iter().any(|f| f.userid == userid) {
            return Err(st.error(84061));
        }
        let (add, remove) = (&call.add, &call.remove);
        if add.is_empty() && remove.is_empty() {
            return Err(st.error(40058));
        }
        if add.iter().chain(remove).any(|id| st.corp_tag(id).is_none()) {
            return Err(st.error(40068));
        }
        let tags = st
            .follow_tags
            .entry((user.index, userid.to_owned()))
            .or_default();
        tags.retain(|t| !remove.contains(t));
        for id in add {
            if !tags.contains(id) {
                tags.push(id.clone());
            }
        }
        Ok(ok())
    }

    /// `add_corp_tag`: tags into the group `group_id`, or into the group named `group_name`
    /// (created when there is none); names of at most 30 characters, new within their group.
    pub(super) fn add_corp_tags(
        &self,
        st: &mut State,
        q: &HashMap<String, String>,
        body: &Value,
    ) -> Answer {
        self.check_contact_token(st, q)?;
        let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("").trim();
        let (group_id, group_name) = (text("group_id"), text("group_name"));
        let names: Vec<(String, i64)> = body
            .get("tag")
            .and_then(Value::as_array)
            .map(|tags| {
                tags.iter()
                    .map(|t| {
                        let name = t.get("name").and_then(Value::as_str).unwrap_or("");
                        let order = t.get("order").and_then(Value::as_i64).unwrap_or(0);
                        (name.trim().to_owned(), order)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let too_long = |n: &str| n.is_empty() || n.chars().count() > 30;
        if names.is_empty() || names.iter().any(|(n, _)| too_long(n)) {
            return Err(st.error(40058));
        }
        let index = if group_id.is_empty() {
            if too_long(group_name) {
                return Err(st.error(40058));
            }
            match st
                .corp_tag_groups
                .iter()
                .position(|g| g.group_name == group_name)
            {
                Some(i) => i,
                None => {
                    let id = format!("et{}", random_string(&mut st.rng, ID_CHARS, 30));
                    let order = body.get("order").and_then(Value::as_i64).unwrap_or(0);
                    st.corp_tag_groups.push(FakeCorpTagGroup {
                        group_id: id,
                        group_name: group_name.to_owned(),
                        create_time: now_unix(),
                        order,
                        tags: Vec::new(),
                    });
                    st.corp_tag_groups.len() - 1
                }
            }
        } else {
            match st
                .corp_tag_groups
                .iter()
                .position(|g| g.group_id == group_id)
            {
                Some(i) => i,
                None => return Err(st.error(40068)),
            }
        };
        let existing = &st.corp_tag_groups[index].tags;
        let mut seen: BTreeSet<&str> = existing.iter().map(|t| t.name.as_str()).collect();
        if !names.iter().all(|(n, _)| seen.insert(n.as_str())) {
            return Err(st.error(40071));
        }
        let mut added = Vec::new();
        for (name, order) in names {
            let id = format!("et{}", random_string(&mut st.rng, ID_CHARS, 30));
            let tag = FakeCorpTag {
                id,
                name,
                create_time: now_unix(),
                order,
            };
            added.push(json!({ "id": tag.id, "name": tag.name,
                               "create_time": tag.create_time, "order": tag.order }));
            st.corp_tag_groups[index].tags.push(tag);
        }
        let g = &st.corp_tag_groups[index];
        Ok(json!({ "errcode": 0, "errmsg": "ok", "tag_group": {
            "group_id": g.group_id, "group_name": g.group_name,
            "create_time": g.create_time, "order": g.order, "tag": added } }))
    }

    pub(super) fn corp_tag_list(
        &self,
        st: &mut State,
        q: &HashMap<String, String>,
        body: &Value,
    ) -> Answer {
        self.check_contact_token(st, q)?;
        let (tag_ids, group_ids) = (strings(body, "tag_id"), strings(body, "group_id"));
        let groups: Vec<Value> = st
            .corp_tag_groups
            .iter()
            .filter(|g| group_ids.is_empty() || group_ids.contains(&g.group_id))
            .filter_map(|g| {
                let tags: Vec<Value> = g
                    .tags
                    .iter()
                    .filter(|t| {
                        !group_ids.is_empty() || tag_ids.is_empty() || tag_ids.contains(&t.id)
                    })
                    .map(|t| {
                        json!({ "id": t.id, "name": t.name, "create_time": t.create_time,
                                "order": t.order, "deleted": false })
                    })
                    .collect();
                (!tags.is_empty()).then(|| {
                    json!({ "group_id": g.group_id, "group_name": g.group_name,
                            "create_time": g.create_time, "order": g.order, "deleted": false,
                            "tag": tags })
                })
            })
            .collect();
        Ok(json!({ "errcode": 0, "errmsg": "ok", "tag_group": groups }))
    }
}

impl State {
    /// A live corp tag and its group.
    pub(super) fn corp_tag(&self, id: &str) -> Option<(&FakeCorpTagGroup, &FakeCorpTag)> {
        self.corp_tag_groups
            .iter()
            .find_map(|g| g.tags.iter().find(|t| t.id == id).map(|t| (g, t)))
    }

    /// Renames the corp tag or group `id`; `false` when there is none.
    pub(crate) fn rename_corp_tag(&mut self, id: &str, name: &str) -> bool {
        for g in &mut self.corp_tag_groups {
            if g.group_id == id {
                g.group_name = name.to_owned();
                return true;
            }
            if let Some(t) = g.tags.iter_mut().find(|t| t.id == id) {
                t.name = name.to_owned();
                return true;
            }
        }
        false
    }

    /// Deletes the corp tag or group `id` (a group with its tags) and takes the tags off every
    /// customer, as WeCom does; `false` when there is none.
    pub(crate) fn delete_corp_tag(&mut self, id: &str) -> bool {
        let gone: Vec<String> = match self.corp_tag_groups.iter().position(|g| g.group_id == id) {
            Some(i) => self
                .corp_tag_groups
                .remove(i)
                .tags
                .into_iter()
                .map(|t| t.id)
                .collect(),
            None => {
                let Some(g) = self
                    .corp_tag_groups
                    .iter_mut()
                    .find(|g| g.tags.iter().any(|t| t.id == id))
                else {
                    return false;
                };
                g.tags.retain(|t| t.id != id);
                if g.tags.is_empty() {
                    // WeCom keeps no empty groups.
                    let gid = g.group_id.clone();
                    self.corp_tag_groups.retain(|g| g.group_id != gid);
                }
                vec![id.to_owned()]
            }
        };
        for tags in self.follow_tags.values_mut() {
            tags.retain(|t| !gone.contains(t));
        }
        true
    }

    /// Adds a tag named `name` to the group `group_id`; its id, or `None` without that group.
    pub(crate) fn add_corp_tag(&mut self, group_id: &str, name: &str) -> Option<String> {
        let id = format!("et{}", random_string(&mut self.rng, ID_CHARS, 30));
        let g = self
            .corp_tag_groups
            .iter_mut()
            .find(|g| g.group_id == group_id)?;
        g.tags.push(FakeCorpTag {
            id: id.clone(),
            name: name.to_owned(),
            create_time: now_unix(),
            order: 0,
        });
        Some(id)
    }
}
