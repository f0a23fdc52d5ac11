//! The fake's Official Account endpoints: user info and the user-tag APIs, with WeChat's limits
//! (tags per account and per user, name length and uniqueness, system tags, batch size).

use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Value};

use super::{ok, Answer, Shared, State};
use crate::population::{FakeAppKind, FakeUser, OA_SYSTEM_TAG_IDS};

/// At most this many OA tags per account.
const OA_MAX_TAGS: usize = 100;
/// At most this many tags per OA user.
const OA_MAX_TAGS_PER_USER: usize = 20;
/// At most this many bytes in an OA tag name.
const OA_MAX_TAG_NAME: usize = 30;
/// At most this many openids per batch (un)tagging call.
const OA_MAX_BATCH: usize = 50;

impl Shared {
    pub(super) fn user_by_oa_openid(&self, openid: &str) -> Option<&FakeUser> {
        self.population.by_oa_openid(openid)
    }

    pub(super) fn user_info(&self, st: &mut State, q: &HashMap<String, String>) -> Answer {
        self.check_token(st, q, FakeAppKind::OfficialAccount)?;
        let openid = q.get("openid").map(String::as_str).unwrap_or("");
        let user = self
            .user_by_oa_openid(openid)
            .ok_or_else(|| st.error(40003))?;
        if !user.oa.subscribed {
            return Ok(json!({ "subscribe": 0, "openid": user.oa_openid }));
        }
        let mut v = json!({
            "subscribe": 1,
            "openid": user.oa_openid,
            "language": "zh_CN",
            "subscribe_time": user.oa.subscribe_time,
            "remark": user.oa.remark,
            "groupid": 0,
            "tagid_list": st.user_tag_ids(user.index),
            "subscribe_scene": user.oa.subscribe_scene,
            "qr_scene": user.oa.qr_scene,
            "qr_scene_str": user.oa.qr_scene_str,
        });
        if let (Some(unionid), Some(obj)) = (&user.unionid, v.as_object_mut()) {
            obj.insert("unionid".to_owned(), json!(unionid));
        }
        Ok(v)
    }

    pub(super) fn tag_name_check(
        st: &mut State,
        name: &str,
        except: Option<i64>,
    ) -> Result<(), Value> {
        if name.is_empty() || name.len() > OA_MAX_TAG_NAME {
            return Err(st.error(45158));
        }
        if st
            .oa_tags
            .iter()
            .any(|(id, n)| n == name && Some(*id) != except)
        {
            return Err(st.error(45157));
        }
        Ok(())
    }

    pub(super) fn tags_create(
        &self,
        st: &mut State,
        q: &HashMap<String, String>,
        body: &Value,
    ) -> Answer {
        self.check_token(st, q, FakeAppKind::OfficialAccount)?;
        let name = body["tag"]["name"]
            .as_str()
            .ok_or_else(|| st.error(47001))?
            .to_owned();
        Self::tag_name_check(st, &name, None)?;
        if st.oa_tags.len() >= OA_MAX_TAGS {
            return Err(st.error(45056));
        }
        let id = st.oa_tags.keys().next_back().copied().unwrap_or(99).max(99) + 1;
        st.oa_tags.insert(id, name.clone());
        st.oa_members.insert(id, BTreeSet::new());
        Ok(json!({ "tag": { "id": id, "name": name } }))
    }

    pub(super) fn tags_get(&self, st: &mut State, q: &HashMap<String, String>) -> Answer {
        self.check_token(st, q, FakeAppKind::OfficialAccount)?;
        let tags: Vec<Value> = st
            .oa_tags
            .iter()
            .map(|(id, name)| {
                let count = st.oa_members.get(id).map_or(0, BTreeSet::len);
                json!({ "id": id, "name": name, "count": count })
            })
            .collect();
        Ok(json!({ "tags": tags }))
    }

    pub(super) fn existing_tag(
        st: &mut State,
        body: &Value,
        system_ok: bool,
    ) -> Result<i64, Value> {
        let id = body["tag"]["id"]
            .as_i64()
            .or_else(|| body["tagid"].as_i64())
            .ok_or_else(|| st.error(47001))?;
        if !system_ok && OA_SYSTEM_TAG_IDS.contains(&id) {
            return Err(st.error(45058));
        }
        if !st.oa_tags.contains_key(&id) {
            return Err(st.error(45159));
        }
        Ok(id)
    }

    pub(super) fn tags_update(
        &self,
        st: &mut State,
        q: &HashMap<String, String>,
        body: &Value,
    ) -> Answer {
        self.check_token(st, q, FakeAppKind::OfficialAccount)?;
        let id = Self::existing_tag(st, body, false)?;
        let name = body["tag"]["name"]
            .as_str()
            .ok_or_else(|| st.error(47001))?
            .to_owned();
        Self::tag_name_check(st, &name, Some(id))?;
        st.oa_tags.insert(id, name);
        Ok(ok())
    }

    pub(super) fn tags_delete(
        &self,
        st: &mut State,
        q: &HashMap<String, String>,
        body: &Value,
    ) -> Answer {
        self.check_token(st, q, FakeAppKind::OfficialAccount)?;
        let id = Self::existing_tag(st, body, false)?;
        st.oa_tags.remove(&id);
        st.oa_members.remove(&id);
        Ok(ok())
    }

    pub(super) fn batch(
        &self,
        st: &mut State,
        q: &HashMap<String, String>,
        body: &Value,
        tagging: bool,
    ) -> Answer {
        self.check_token(st, q, FakeAppKind::OfficialAccount)?;
        let list = body["openid_list"].as_array().cloned().unwrap_or_default();
        if list.is_empty() || list.len() > OA_MAX_BATCH {
            return Err(st.error(40032));
        }
        let id = Self::existing_tag(st, body, true)?;
        let mut users = Vec::with_capacity(list.len());
        for openid in &list {
            let user = openid
                .as_str()
                .and_then(|o| self.user_by_oa_openid(o))
                .ok_or_else(|| st.error(40003))?;
            users.push(user.index);
        }
        if tagging {
            for &u in &users {
                let member = st.oa_members.get(&id).is_some_and(|m| m.contains(&u));
                if !member && st.user_tag_ids(u).len() >= OA_MAX_TAGS_PER_USER {
                    return Err(st.error(45059));
                }
            }
        }
        let members = st.oa_members.entry(id).or_default();
        for u in users {
            if tagging {
                members.insert(u);
            } else {
                members.remove(&u);
            }
        }
        Ok(ok())
    }

    pub(super) fn tags_getidlist(
        &self,
        st: &mut State,
        q: &HashMap<String, String>,
        body: &Value,
    ) -> Answer {
        self.check_token(st, q, FakeAppKind::OfficialAccount)?;
        let user = body["openid"]
            .as_str()
            .and_then(|o| self.user_by_oa_openid(o))
            .ok_or_else(|| st.error(40003))?;
        Ok(json!({ "tagid_list": st.user_tag_ids(user.index) }))
    }
}

impl State {
    pub(super) fn user_tag_ids(&self, user: usize) -> Vec<i64> {
        self.oa_members
            .iter()
            .filter(|(_, m)| m.contains(&user))
            .map(|(id, _)| *id)
            .collect()
    }
}
