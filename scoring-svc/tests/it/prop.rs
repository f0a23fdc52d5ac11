//! Property: for random histories of one profile — events of three kinds at random times and
//! lags, redelivered messages, the same event resolved again, tag and property changes, the
//! clock moving — with per-day, window, lifetime and once-only caps, negative points, decay
//! (half-life with expiry, or steps) and state rules, the score scoring-svc reads back equals a
//! brute-force recomputation from the raw events, now and later as decay goes on (with and
//! without the scheduler folding in between). On MariaDB and SQLite.

use crate::fixtures::{resolved, start, tag_changed, tracked, updated, ScoringDb};
use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use proto::sdk::TrackKind;
use scoring_svc::clock::Clock;
use scoring_svc::store::schedule::Scheduler;
use serde_json::json;
use test_support::db::Backend;

const OFFSET_HOURS: i64 = 8;

#[derive(Debug, Clone)]
enum Step {
    /// An event of kind 0 (page view), 1 (form) or 2 (download), on an article or not, that
    /// happened `lag` hours before now; then the clock moves `advance` hours.
    Event {
        kind: u8,
        article: bool,
        lag: i64,
        advance: i64,
    },
    /// The message of an earlier event delivered again.
    Redeliver(usize),
    /// An earlier event resolved again under a new message id.
    Again(usize),
    Tag(bool),
    Industry(bool),
}

#[derive(Debug, Clone)]
enum DecayCase {
    None,
    HalfLife,
    Steps,
}

#[derive(Debug, Clone)]
struct Case {
    decay: DecayCase,
    per_day: Option<u32>,
    window: Option<(u32, u32)>,
    once: bool,
    lifetime: Option<u32>,
    steps: Vec<Step>,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u8..3, any::<bool>(), 0i64..96, prop_oneof![Just(0i64), 0i64..60]).prop_map(
            |(kind, article, lag, advance)| Step::Event { kind, article, lag, advance }
        ),
        1 => (0usize..40).prop_map(Step::Redeliver),
        1 => (0usize..40).prop_map(Step::Again),
        1 => any::<bool>().prop_map(Step::Tag),
        1 => any::<bool>().prop_map(Step::Industry),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![
            Just(DecayCase::None),
            Just(DecayCase::HalfLife),
            Just(DecayCase::Steps)
        ],
        proptest::option::of(5u32..40),
        proptest::option::of((1u32..5, 10u32..60)),
        any::<bool>(),
        proptest::option::of(20u32..80),
        proptest::collection::vec(step(), 1..30),
    )
        .prop_map(|(decay, per_day, window, once, lifetime, steps)| Case {
            decay,
            per_day,
            window,
            once,
            lifetime,
            steps,
        })
}

/// The worth of a point `age` seconds old, written out from the decay definitions.
fn factor(d: &DecayCase, age: i64) -> f64 {
    let days = age.max(0) as f64 / 86_400.0;
    match d {
        DecayCase::None => 1.0,
        DecayCase::HalfLife if days >= 30.0 => 0.0,
        DecayCase::HalfLife => 0.5f64.powf(days / 10.0),
        DecayCase::Steps if days >= 20.0 => 0.0,
        DecayCase::Steps if days >= 7.0 => 0.5,
        DecayCase::Steps => 1.0,
    }
}

struct Rule {
    kind: u8,
    article_only: bool,
    points: f64,
    per_day: Option<f64>,
    window: Option<(i64, f64)>,
    lifetime: Option<f64>,
    once: bool,
}

/// What `r` awards an event at `t` after `prior` awards (delta, earned) of the same rule.
fn award(r: &Rule, prior: &[(f64, DateTime<Utc>)], t: DateTime<Utc>) -> f64 {
    if r.once && prior.iter().any(|(d, _)| *d != 0.0) {
        return 0.0;
    }
    let local = |x: DateTime<Utc>| (x + Duration::hours(OFFSET_HOURS)).date_naive();
    let mut left = r.points.abs();
    if let Some(cap) = r.per_day {
        let used: f64 = prior
            .iter()
            .filter(|(_, e)| local(*e) == local(t))
            .map(|(d, _)| d.abs())
            .sum();
        left = left.min((cap - used).max(0.0));
    }
    if let Some((days, cap)) = r.window {
        let used: f64 = prior
            .iter()
            .filter(|(_, e)| (*e - t).num_seconds().abs() < days * 86_400)
            .map(|(d, _)| d.abs())
            .sum();
        left = left.min((cap - used).max(0.0));
    }
    if let Some(cap) = r.lifetime {
        let used: f64 = prior.iter().map(|(d, _)| d.abs()).sum();
        left = left.min((cap - used).max(0.0));
    }
    left.copysign(r.points)
}

async fn define(s: &ScoringDb, tenant: &str, c: &Case) {
    let decay = match c.decay {
        DecayCase::None => json!({"kind": "none"}),
        DecayCase::HalfLife => json!({"kind": "half_life", "days": 10, "expire_days": 30}),
        DecayCase::Steps => {
            json!({"kind": "steps", "steps": [{"after_days": 7, "factor": 0.5}, {"after_days": 20, "factor": 0}]})
        }
    };
    let m = s
        .model(
            tenant,
            json!({"key": "engagement", "name": "E", "decay": decay}),
        )
        .await;
    let mut caps = json!({});
    if let Some(p) = c.per_day {
        caps["per_day"] = json!(p);
    }
    if let Some((d, max)) = c.window {
        caps["window"] = json!({"days": d, "max": max});
    }
    s.rule(tenant, &m, json!({"kind": "event", "name": "Article view", "event": "track.page_view", "points": 10, "caps": caps,
        "filters": [{"key": "content.tags", "value_type": "string", "op": "eq", "value": "article"}]}))
        .await;
    let mut form_caps = json!({"once": c.once});
    if let Some(l) = c.lifetime {
        form_caps["lifetime"] = json!(l);
    }
    s.rule(tenant, &m, json!({"kind": "event", "name": "Form", "event": "track.form_submit", "points": 25, "caps": form_caps})).await;
    s.rule(tenant, &m, json!({"kind": "event", "name": "Download", "event": "track.download", "points": -5, "caps": {"window": {"days": 2, "max": 12}}}))
        .await;
    s.rule(tenant, &m, json!({"kind": "state", "name": "VIP", "points": 15, "condition": {"version": 1, "root": {"type": "tag", "op": "has", "tags": ["vip"]}}}))
        .await;
    s.rule(tenant, &m, json!({"kind": "state", "name": "Retail", "points": 20, "condition": {"version": 1, "root":
        {"type": "property", "key": "company.industry", "value_type": "string", "op": "eq", "value": "retail"}}}))
        .await;
}

fn rules(c: &Case) -> Vec<Rule> {
    vec![
        Rule {
            kind: 0,
            article_only: true,
            points: 10.0,
            per_day: c.per_day.map(f64::from),
            window: c.window.map(|(d, m)| (i64::from(d), f64::from(m))),
            lifetime: None,
            once: false,
        },
        Rule {
            kind: 1,
            article_only: false,
            points: 25.0,
            per_day: None,
            window: None,
            lifetime: c.lifetime.map(f64::from),
            once: c.once,
        },
        Rule {
            kind: 2,
            article_only: false,
            points: -5.0,
            per_day: None,
            window: Some((2, 12.0)),
            lifetime: None,
            once: false,
        },
    ]
}

/// Runs the case through scoring and through the brute force; compares at the end and later.
async fn check(s: &ScoringDb, sched: &Scheduler, n: usize, c: Case) -> Result<(), String> {
    let tenant = format!("t-prop-{n}");
    let profile = "p";
    s.clock.set(start());
    define(s, &tenant, &c).await;
    let rs = rules(&c);
    let kinds = [
        TrackKind::PageView,
        TrackKind::FormSubmit,
        TrackKind::Download,
    ];
    // Brute-force state.
    let mut awards: Vec<Vec<(f64, DateTime<Utc>)>> = vec![Vec::new(); rs.len()];
    let mut vip = false;
    let mut retail = false;
    let mut version = 0;
    let mut sent: Vec<(proto::Envelope, proto::Envelope, u8, bool, DateTime<Utc>)> = Vec::new();
    for (i, st) in c.steps.iter().enumerate() {
        let now = s.clock.now();
        match st {
            Step::Event {
                kind,
                article,
                lag,
                advance,
            } => {
                let at = now - Duration::hours(*lag);
                let tags: &[&str] = if *article { &["article"] } else { &["video"] };
                let ev = tracked(
                    &tenant,
                    kinds[*kind as usize],
                    at,
                    &format!("e{n}-{i}"),
                    tags,
                    json!({}),
                );
                let msg = resolved(profile, &ev);
                s.handle(&msg).await;
                for (ri, r) in rs.iter().enumerate() {
                    if r.kind == *kind && (*article || !r.article_only) {
                        let d = award(r, &awards[ri], at);
                        awards[ri].push((d, at));
                    }
                }
                sent.push((ev, msg, *kind, *article, at));
                s.clock.advance(Duration::hours(*advance));
            }
            Step::Redeliver(k) if !sent.is_empty() => {
                let (_, msg, ..) = &sent[k % sent.len()];
                s.handle(msg).await;
            }
            Step::Again(k) if !sent.is_empty() => {
                let (ev, ..) = &sent[k % sent.len()];
                s.handle(&resolved(profile, ev)).await;
            }
            Step::Redeliver(_) | Step::Again(_) => {}
            Step::Tag(on) => {
                s.handle(&tag_changed(&tenant, profile, "vip", *on, now))
                    .await;
                vip = *on;
            }
            Step::Industry(r) => {
                version += 1;
                let industry = if *r { "retail" } else { "finance" };
                s.handle(&updated(
                    &tenant,
                    profile,
                    version,
                    json!({"company.industry": industry}),
                    None,
                ))
                .await;
                retail = *r;
            }
        }
    }
    let brute = |now: DateTime<Utc>| -> f64 {
        let events: f64 = awards
            .iter()
            .flatten()
            .map(|(d, e)| d * factor(&c.decay, (now - *e).num_seconds()))
            .sum();
        events + if vip { 15.0 } else { 0.0 } + if retail { 20.0 } else { 0.0 }
    };
    for (later, fold) in [
        (0, false),
        (3, false),
        (8, true),
        (15, false),
        (26, true),
        (40, false),
    ] {
        s.clock.set(s.clock.now() + Duration::days(later));
        if fold {
            sched.tick().await.map_err(|e| e.to_string())?;
        }
        let now = s.clock.now();
        let got = s.score(&tenant, profile, "engagement").await;
        let want = brute(now);
        if (got - want).abs() > 1e-6 * want.abs().max(1.0) {
            return Err(format!(
                "after +{later} days (folded: {fold}): scoring says {got}, brute force {want}"
            ));
        }
    }
    // Out of the scheduler's way for the next cases (they start at the same instant).
    s.count_exec(
        "UPDATE leads SET next_check_at = NULL WHERE tenant_id = ?",
        vec![tenant.into()],
    )
    .await;
    Ok(())
}

async fn scores_equal_a_brute_force_recomputation(backend: Backend) {
    let s = ScoringDb::new(backend).await;
    let handle = tokio::runtime::Handle::current();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let counter = std::sync::atomic::AtomicUsize::new(0);
    // One scheduler for every case, as one process has: it rolls the facts counters at most
    // once a minute, whatever the hand-moved clock says.
    let sched = Scheduler::new(s.scorer.clone(), 100, 10, None);
    let result = tokio::task::block_in_place(|| {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        runner.run(&case(), |c| {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            handle
                .block_on(check(&s, &sched, n, c))
                .map_err(TestCaseError::fail)
        })
    });
    s.cleanup().await;
    if let Err(e) = result {
        panic!("{e}");
    }
}

test_support::on_both_backends!(scores_equal_a_brute_force_recomputation);
