//! The customer card: one composed read of the customer in the chat, for the rep beside it —
//! name, avatar, gender; the rep's own follow (remark, add way, add time, the `state` it came
//! through) and the first touch's source path; the other reps following; tags by group with
//! their origin; scores per model with the top reasons from the ledger; the stage with the moves
//! allowed and the SLA due; the last 20 timeline entries (channel events, notes, stage moves);
//! the customer's group chats in the rep's corp; and the tenant's active tags by group (what the
//! rep may add: reps cannot list the catalogue). The services are read in parallel; the card is
//! composed by [`compose`], a pure function of their answers.

use std::collections::BTreeMap;

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpResponse, Route};
use platform::http::ApiError;
use serde_json::{json, Map, Value};

use super::{customer, profile_id, Rep, SidebarRoute};
use crate::access::RepRef;
use crate::api::GatewayState;
use crate::services::Service;

/// Timeline entries on the card.
pub const TIMELINE: usize = 20;
/// Reasons shown per score.
pub const REASONS: usize = 3;

/// Registers the handler of `r` when it is one of this module's.
pub(super) fn register(cfg: &mut web::ServiceConfig, r: &SidebarRoute, route: Route) -> bool {
    match (r.method, r.path) {
        ("GET", "/sidebar/v1/customers/{external_userid}") => {
            cfg.route(r.path, route.to(get_card));
            true
        }
        _ => false,
    }
}

async fn get_card(
    state: web::Data<GatewayState>,
    rep: Rep,
    external_userid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let ext = external_userid.into_inner();
    let profile = customer(&state, &rep, &ext).await?;
    let id = profile_id(&profile)?;
    let s = &state.services;
    let p = &rep.p;
    let get = |service: Service, path: String| async move {
        match s.json(service, Method::GET, &path, None, p).await {
            Ok((st, v)) if st.is_success() => Ok(v),
            Ok((st, _)) if st == StatusCode::NOT_FOUND => Ok(Value::Null),
            Ok((st, v)) => Ok(json!({"error": {"status": st.as_u16(), "body": v}})),
            Err(e) => Err(ApiError::from(e)),
        }
    };
    let (tags, groups, scores, ledger, history, timeline) = futures_util::join!(
        get(
            Service::Tagging,
            format!("/v1/profiles/{id}/tags?limit=500")
        ),
        get(Service::Tagging, "/v1/tag-groups?limit=500".to_string()),
        get(Service::Scoring, format!("/v1/profiles/{id}/scores")),
        get(
            Service::Scoring,
            format!("/v1/profiles/{id}/ledger?limit=200")
        ),
        get(
            Service::Scoring,
            format!("/v1/profiles/{id}/stage-history?limit=500")
        ),
        get(
            Service::Identity,
            format!("/v1/profiles/{id}/timeline?limit={TIMELINE}")
        ),
    );
    let parts = Parts {
        profile,
        tags: tags?,
        groups: groups?,
        scores: scores?,
        ledger: ledger?,
        history: history?,
        timeline: timeline?,
    };
    Ok(HttpResponse::Ok().json(compose(&parts, &rep.member, &ext)))
}

/// What the services answered for one card.
#[derive(Debug, Clone, Default)]
pub struct Parts {
    /// identity's profile (fields, relations, identifiers masked by role).
    pub profile: Value,
    /// tagging's `{items}` of the customer's tags.
    pub tags: Value,
    /// tagging's `{items}` of the tenant's tag groups.
    pub groups: Value,
    /// scoring's lead (stage, scores, allowed moves, SLA due); null without a lead.
    pub scores: Value,
    /// scoring's `{items}` of ledger entries, newest first.
    pub ledger: Value,
    /// scoring's `{items}` of stage moves, oldest first.
    pub history: Value,
    /// identity's `{items}` of timeline entries, newest first.
    pub timeline: Value,
}

fn items(v: &Value) -> &[Value] {
    v["items"].as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// What weighs most in model `model_id`'s score now, from ledger `entries` (`{items}`, voided
/// ones left out): at most [`REASONS`] `{reason, points, entries}`, the rule (else the note or
/// kind) with the points its entries are worth now and how many there are, largest first.
pub(crate) fn top_reasons(model_id: &Value, ledger: &Value) -> Vec<Value> {
    let mut reasons: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    for e in items(ledger) {
        if &e["model_id"] != model_id || e.get("voided_at").is_some_and(|v| !v.is_null()) {
            continue;
        }
        let why = e["rule"]
            .as_str()
            .or_else(|| e["note"].as_str())
            .or_else(|| e["kind"].as_str())
            .unwrap_or("adjustment")
            .to_string();
        let r = reasons.entry(why).or_insert((0.0, 0));
        r.0 += e["value_now"].as_f64().unwrap_or(0.0);
        r.1 += 1;
    }
    let mut reasons: Vec<(String, (f64, u64))> = reasons.into_iter().collect();
    reasons.sort_by(|a, b| b.1 .0.abs().total_cmp(&a.1 .0.abs()).then(a.0.cmp(&b.0)));
    reasons.truncate(REASONS);
    reasons
        .into_iter()
        .map(
            |(why, (points, entries))| json!({"reason": why, "points": points, "entries": entries}),
        )
        .collect()
}

/// The card from the services' answers.
pub fn compose(parts: &Parts, member: &RepRef, external_userid: &str) -> Value {
    let fields = &parts.profile["fields"];
    let follows = parts.profile["relations"]["wecom_follows"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let active = |f: &Value| f.get("deleted_at").is_none_or(Value::is_null);
    let mine = follows
        .iter()
        .find(|f| {
            f["corp_id"] == json!(member.corp_id)
                && f["user_id"] == json!(member.userid)
                && active(f)
        })
        .cloned();
    let others: Vec<Value> = follows
        .iter()
        .filter(|f| active(f) && !(f["corp_id"] == json!(member.corp_id) && f["user_id"] == json!(member.userid)))
        .map(|f| json!({"corp_id": f["corp_id"], "user_id": f["user_id"], "added_at": f["added_at"]}))
        .collect();
    // The first touch: `source.first.channel`, `source.first.level1`, … in order.
    let mut source = Map::new();
    if let Some(o) = fields.as_object() {
        for (k, v) in o {
            if let Some(rest) = k.strip_prefix("source.first.") {
                source.insert(rest.to_string(), v.clone());
            }
        }
    }
    let follow = mine.map(|f| {
        json!({
            "remark": f["remark"],
            "add_way": f["add_way"],
            "added_at": f["added_at"],
            "state": f["state"],
        })
    });
    // Tags by group, each with its origin.
    let group_names: BTreeMap<String, Value> = items(&parts.groups)
        .iter()
        .filter_map(|g| Some((g["id"].as_str()?.to_string(), g["name"].clone())))
        .collect();
    let mut by_group: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for t in items(&parts.tags) {
        let group = t["group_id"].as_str().unwrap_or_default().to_string();
        let list = by_group.entry(group).or_default();
        if list.iter().any(|x| x["tag_id"] == t["tag_id"]) {
            continue;
        }
        list.push(json!({
            "tag_id": t["tag_id"],
            "name": t["tag_name"],
            "origin": t["origin"],
            "since": t["since"],
        }));
    }
    let tags: Vec<Value> = by_group
        .into_iter()
        .map(|(g, tags)| {
            json!({
                "group_id": g,
                "group_name": group_names.get(&g).cloned().unwrap_or(Value::Null),
                "tags": tags,
            })
        })
        .collect();
    // Scores with the entries that weigh most now.
    let scores: Vec<Value> = parts.scores["scores"]
        .as_array()
        .map(|ss| {
            ss.iter()
                .map(|sc| {
                    let reasons = top_reasons(&sc["model_id"], &parts.ledger);
                    json!({
                        "model": sc["model"],
                        "name": sc["name"],
                        "score": sc["score"],
                        "reasons": reasons,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let stage = if parts.scores.is_object() && parts.scores.get("stage").is_some() {
        json!({
            "key": parts.scores["stage"],
            "entered_at": parts.scores["stage_entered_at"],
            "allowed_moves": parts.scores["allowed_moves"],
            "sla_due_at": parts.scores["sla_due_at"],
        })
    } else {
        Value::Null
    };
    // The timeline: identity's entries (channel events, notes) and the stage moves, newest first.
    let mut timeline: Vec<Value> = items(&parts.timeline)
        .iter()
        .map(|e| json!({"at": e["occurred_at"], "type": e["type"], "summary": e["summary"]}))
        .collect();
    for h in items(&parts.history) {
        timeline.push(json!({
            "at": h["entered_at"],
            "type": "lead.stage_changed",
            "summary": {"from": h["from"], "to": h["to"], "actor": h["actor"], "reason": h["reason"]},
        }));
    }
    let at = |e: &Value| {
        e["at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    timeline.sort_by_key(|e| std::cmp::Reverse(at(e)));
    timeline.truncate(TIMELINE);
    // What a rep may add: the tenant's active tags by group (reps cannot list the catalogue).
    let catalog: Vec<Value> = items(&parts.groups)
        .iter()
        .filter(|g| g.get("status").is_none_or(|s| s == "active"))
        .map(|g| {
            let tags: Vec<Value> = g["tags"]
                .as_array()
                .map(|ts| {
                    ts.iter()
                        .filter(|t| t.get("status").is_none_or(|s| s == "active"))
                        .map(|t| json!({"tag_id": t["id"], "name": t["name"]}))
                        .collect()
                })
                .unwrap_or_default();
            json!({"group_id": g["id"], "group_name": g["name"], "tags": tags})
        })
        .filter(|g| g["tags"].as_array().is_some_and(|t| !t.is_empty()))
        .collect();
    let group_chats: Vec<Value> = parts.profile["relations"]["group_chats"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter(|c| c["corp_id"] == json!(member.corp_id))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    json!({
        "profile_id": parts.profile["id"],
        "external_userid": external_userid,
        "name": fields.get("contact.name").or_else(|| fields.get("contact.nickname")).cloned().unwrap_or(Value::Null),
        "avatar": fields.get("contact.avatar").cloned().unwrap_or(Value::Null),
        "gender": fields.get("contact.gender").cloned().unwrap_or(Value::Null),
        "follow": follow,
        "source": source,
        "other_reps": others,
        "tags": tags,
        "scores": scores,
        "stage": stage,
        "timeline": timeline,
        "group_chats": group_chats,
        "catalog": catalog,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> RepRef {
        RepRef {
            corp_id: "ww1".into(),
            userid: "zhang".into(),
        }
    }

    #[test]
    fn the_card_composes_every_part() {
        let parts = Parts {
            profile: json!({
                "id": "p1",
                "fields": {"contact.nickname": "Ann", "contact.gender": "female",
                           "source.first.channel": "expo", "source.first.level1": "Shanghai"},
                "relations": {
                    "wecom_follows": [
                        {"corp_id": "ww1", "user_id": "zhang", "remark": "VIP", "add_way": 1,
                         "added_at": "2026-01-01T00:00:00Z", "state": "booth_7"},
                        {"corp_id": "ww1", "user_id": "li", "added_at": "2026-01-02T00:00:00Z"},
                        {"corp_id": "ww1", "user_id": "wang", "added_at": "2026-01-02T00:00:00Z",
                         "deleted_at": "2026-01-03T00:00:00Z"}],
                    "group_chats": [{"corp_id": "ww1", "chat_id": "c1", "joined_at": "2026-01-05T00:00:00Z"},
                                    {"corp_id": "ww2", "chat_id": "c2", "joined_at": "2026-01-05T00:00:00Z"}]}
            }),
            tags: json!({"items": [
                {"tag_id": "t1", "tag_name": "hot", "group_id": "g1", "origin": "rule", "since": "2026-01-01T00:00:00Z"},
                {"tag_id": "t1", "tag_name": "hot", "group_id": "g1", "origin": "manual", "since": "2026-01-02T00:00:00Z"},
                {"tag_id": "t2", "tag_name": "expo", "group_id": "g2", "origin": "manual", "since": "2026-01-02T00:00:00Z"}]}),
            groups: json!({"items": [
                {"id": "g1", "name": "Intent", "status": "active", "tags": [
                    {"id": "t1", "name": "hot", "status": "active"},
                    {"id": "t9", "name": "old", "status": "retired"}]},
                {"id": "g2", "name": "Channel", "tags": [{"id": "t2", "name": "expo"}]},
                {"id": "g3", "name": "Gone", "status": "retired", "tags": [{"id": "t3", "name": "x"}]}]}),
            scores: json!({"stage": "mql", "stage_entered_at": "2026-01-04T00:00:00Z",
                           "allowed_moves": ["sql", "lost"], "sla_due_at": "2026-01-05T00:00:00Z",
                           "scores": [{"model_id": "m1", "model": "engagement", "name": "E", "score": 23.0}]}),
            ledger: json!({"items": [
                {"model_id": "m1", "rule": "Views", "value_now": 5.0},
                {"model_id": "m1", "rule": "Views", "value_now": 5.0},
                {"model_id": "m1", "rule": "Form", "value_now": 12.0},
                {"model_id": "m1", "rule": "Old", "value_now": 1.0, "voided_at": "2026-01-03T00:00:00Z"},
                {"model_id": "m2", "rule": "Other", "value_now": 50.0}]}),
            history: json!({"items": [
                {"to": "new", "entered_at": "2026-01-01T00:00:00Z", "actor": "system"},
                {"from": "new", "to": "mql", "entered_at": "2026-01-04T00:00:00Z", "actor": "rule"}]}),
            timeline: json!({"items": [
                {"type": "note.added", "occurred_at": "2026-01-06T00:00:00Z", "summary": {"text": "called"}},
                {"type": "wecom.external_contact.add_external_contact", "occurred_at": "2026-01-01T00:00:00Z", "summary": {}}]}),
        };
        let c = compose(&parts, &me(), "wm1");
        assert_eq!(c["name"], "Ann");
        assert_eq!(c["follow"]["state"], "booth_7");
        assert_eq!(c["source"]["level1"], "Shanghai");
        assert_eq!(c["other_reps"].as_array().unwrap().len(), 1, "{c}");
        assert_eq!(c["other_reps"][0]["user_id"], "li");
        assert_eq!(c["tags"][0]["group_name"], "Intent");
        assert_eq!(
            c["tags"][0]["tags"].as_array().unwrap().len(),
            1,
            "one entry per tag"
        );
        let reasons = &c["scores"][0]["reasons"];
        assert_eq!(reasons[0]["reason"], "Form");
        assert_eq!(
            (
                reasons[1]["reason"].clone(),
                reasons[1]["points"].clone(),
                reasons[1]["entries"].clone()
            ),
            (json!("Views"), json!(10.0), json!(2))
        );
        assert_eq!(
            reasons.as_array().unwrap().len(),
            2,
            "voided and other models' entries left out"
        );
        assert_eq!(c["stage"]["allowed_moves"], json!(["sql", "lost"]));
        let types: Vec<&str> = c["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "note.added",
                "lead.stage_changed",
                // At the same instant as the first stage entry: identity's entries come first.
                "wecom.external_contact.add_external_contact",
                "lead.stage_changed",
            ],
            "newest first"
        );
        assert_eq!(c["group_chats"].as_array().unwrap().len(), 1);
        assert_eq!(
            c["catalog"],
            json!([{"group_id": "g1", "group_name": "Intent", "tags": [{"tag_id": "t1", "name": "hot"}]},
                   {"group_id": "g2", "group_name": "Channel", "tags": [{"tag_id": "t2", "name": "expo"}]}]),
            "active tags of active groups"
        );
    }

    #[test]
    fn a_customer_without_a_lead_has_no_stage() {
        let c = compose(&Parts::default(), &me(), "wm1");
        assert!(c["stage"].is_null());
        assert_eq!(c["scores"], json!([]));
    }
}
