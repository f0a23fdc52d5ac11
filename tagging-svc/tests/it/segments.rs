//! Saved segments (人群包) through tagging-svc's internal API on MariaDB and SQLite, called as the
//! gateway calls it (a service credential naming the tenant and the actor): definitions
//! checked like a rule's (the node at fault named), listed, changed at a version and archived;
//! another tenant's are 404; members paged by profile id cover exactly the matching profiles
//! of a hand-checked population with the preview's sample fields; a refresh counts what a
//! preview counts and appends to the size history; the scheduler refreshes only the due
//! segments, and two processes claiming at once count each once; a saved export is the unsaved
//! export of the same condition.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::Method;
use actix_web::{test as atest, web, App};
use chrono::{DateTime, Utc};
use proto::identity::ProfileUpdated;
use proto::Envelope;
use serde_json::{json, Value};
use tagging_svc::clock::ManualClock;
use tagging_svc::store::saved;
use tagging_svc::store::tagger::Tagger;
use test_support::auth;
use test_support::db::{Backend, TestDb};
use test_support::pages;

use crate::api::{page_views, req};

const T: &str = "t-seg";
/// Another tenant of the same deployment.
const OTHER: &str = "t-seg-other";

fn now() -> DateTime<Utc> {
    "2026-06-10T02:00:00Z".parse().unwrap()
}

fn tagger_on(
    db: sea_orm::DatabaseConnection,
    test_db: &TestDb,
    clock: &Arc<ManualClock>,
) -> Tagger {
    let cfg = tagging_svc::Config::new(
        platform::config::HttpConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            workers: 1,
        },
        test_db.cfg.clone(),
    );
    tagging_svc::tagger(db, cfg, clock.clone())
}

async fn setup(backend: Backend) -> (TestDb, Tagger, Arc<ManualClock>) {
    let db = TestDb::migrated::<tagging_svc::store::Migrator>(backend).await;
    let clock = Arc::new(ManualClock::new(now()));
    let tagger = tagger_on(db.conn.clone(), &db, &clock);
    (db, tagger, clock)
}

/// The service's API in a test `App` that verifies credentials signed with the test key.
macro_rules! api {
    ($tagger:expr) => {{
        let routes = tagging_svc::api::routes($tagger.clone());
        atest::init_service(
            App::new()
                .app_data(web::Data::new(auth::key()))
                .app_data(platform::http::query_config())
                .app_data(platform::http::json_config())
                .configure(move |c: &mut web::ServiceConfig| routes(c)),
        )
        .await
    }};
}

/// A `profile.updated` of `tenant` for `id` with every field it has now (`version` counts up
/// from 1: the projection keeps only newer versions).
async fn profile(tagger: &Tagger, tenant: &str, id: &str, fields: Value, version: i64) {
    let fields: BTreeMap<String, Value> = serde_json::from_value(fields).unwrap();
    let u = ProfileUpdated {
        profile_id: id.to_string(),
        version,
        changed: fields.keys().cloned().collect(),
        fields,
        relations: Default::default(),
        cause_event: None,
    };
    tagger
        .handle(&Envelope::of(tenant, &u).build())
        .await
        .unwrap();
}

/// Profile p`i` of `tenant`: in Hangzhou when `i` is even, Ningbo otherwise; when `i` is a
/// multiple of 3, it viewed a page 3 times today.
async fn person(tagger: &Tagger, tenant: &str, i: usize) {
    let id = format!("p{i:02}");
    let city = if i % 2 == 0 { "Hangzhou" } else { "Ningbo" };
    let fields = json!({"contact.name": format!("Name {i}"), "contact.city": city});
    profile(tagger, tenant, &id, fields, 1).await;
    if i % 3 == 0 {
        page_views(tagger, tenant, &id, 3).await;
    }
}

/// Profiles p00..p(n-1) of `tenant` (see [`person`]).
async fn population(tagger: &Tagger, tenant: &str, n: usize) {
    for i in 0..n {
        person(tagger, tenant, i).await;
    }
}

fn in_hangzhou() -> Value {
    json!({"version": 1, "root": {"type": "property", "key": "contact.city",
        "value_type": "string", "op": "eq", "value": "Hangzhou"}})
}

/// Hangzhou and three page views in 30 days: p00, p06, p12, p18, p24 of a population of 30.
fn engaged_locals() -> Value {
    json!({"version": 1, "root": {"type": "and", "children": [
        {"type": "property", "key": "contact.city", "value_type": "string", "op": "eq", "value": "Hangzhou"},
        {"type": "behaviour", "event": "track.page_view", "count": {"op": "gte", "value": 3},
         "window": {"type": "last", "days": 30}}]}})
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

fn ids(items: &Value) -> Vec<String> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["profile_id"].as_str().unwrap().to_string())
        .collect()
}

fn evens(upto: usize) -> Vec<String> {
    (0..upto).step_by(2).map(|i| format!("p{i:02}")).collect()
}

mod counts;
mod definitions;
mod scheduled;

use counts::{
    a_condition_that_no_longer_validates_is_refused_and_recorded,
    a_saved_export_is_the_unsaved_export_of_its_condition,
    members_cover_exactly_the_matching_profiles,
    refresh_counts_what_the_preview_counts_and_keeps_the_history,
};
use definitions::{another_tenant_sees_none_of_them, are_checked_listed_changed_and_archived};
use scheduled::{only_due_segments_are_refreshed, two_processes_count_each_due_segment_once};

test_support::on_both_backends!(
    are_checked_listed_changed_and_archived,
    another_tenant_sees_none_of_them,
    members_cover_exactly_the_matching_profiles,
    refresh_counts_what_the_preview_counts_and_keeps_the_history,
    a_saved_export_is_the_unsaved_export_of_its_condition,
    a_condition_that_no_longer_validates_is_refused_and_recorded,
    only_due_segments_are_refreshed,
    two_processes_count_each_due_segment_once,
);

/// Waits until a tagging job of `tenant` is done.
async fn wait_job(tagger: &Tagger, tenant: &str, id: &str) {
    for _ in 0..200 {
        let j = tagging_svc::store::backfill::get_in(tagger, tenant, id)
            .await
            .unwrap()
            .unwrap();
        if j.status == "done" || j.status == "failed" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {id} did not end");
}

/// The store's view of segment `id` of `tenant`.
async fn stored(tagger: &Tagger, tenant: &str, id: &str) -> saved::entities::segment::Model {
    saved::get(&tagger.db, tenant, id).await.unwrap()
}
