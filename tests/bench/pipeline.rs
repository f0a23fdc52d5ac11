//! The whole pipeline under load, in production mode on this machine: the four roles as separate
//! `scrm` processes against the local MariaDB, RabbitMQ and Redis; signed, encrypted Official
//! Account callbacks posted through the real gateway; what comes out observed on the bus.
//!
//! Run: `cargo bench -p scrm --bench pipeline`. Phases, each on fresh people of one tenant:
//! 1. `new`: `BENCH_EVENTS` new people posted as fast as the gateway takes them (64
//!    connections): four in five follow the Official Account, one in five is added by a WeCom rep;
//! 2. `returning`: `BENCH_EVENTS` events of people seen before, as fast: the followers' menu
//!    clicks and text messages (two in five each) and page views of 200 H5 visitors through
//!    `/track` with the tenant's write key (one in five);
//! 3. `new@50%` and `returning@50%`: the same kinds paced at half the rate the first two drained
//!    at, for `BENCH_SECONDS` each, for the latencies.
//!
//! The tenant has a tag rule (followed the Official Account: tag `follower`) and an engagement
//! model (a follow 10 points once, a click 2, a text 1, an add by a rep 10, a page view 1), so
//! every event is resolved by identity-svc (`profile.resolved`), every follow tagged by
//! tagging-svc (`tag.changed`) and every event scored by scoring-svc (`lead.score_changed`).
//! Reported per phase: accepted/s (the gateway's 200s), drained/s per service (events over the
//! time until the last of that service's answers; tagging: follows), lag from the gateway's 200 to
//! each answer (p50 / p99), SQL statements per event per service (MariaDB's per-user statistics;
//! each role connects as its own user), CPU time per event of each role, of MariaDB, RabbitMQ
//! and Redis and of this process (the load and the observer), the rate that CPU allows on this
//! machine's cores, and how busy the machine was. WeChat lookups are off (they run beside the
//! event path, not on it).
//!
//! The last line is `pipeline: new_eps=N returning_eps=N p99_ms=N stmts_new=N stmts_returning=N`:
//! drained end to end per second in phases 1 and 2, the worse callback → `lead.score_changed`
//! p99 of the paced phases, and statements per event of all services together.
//!
//! Env: `BENCH_EVENTS` (default 20 000), `BENCH_SECONDS` (default 20), `BENCH_CONNECTIONS` (64),
//! `BENCH_PHASES` (`new,returning,new_half,returning_half`). Leaves nothing behind: the databases,
//! users, queues and exchange are removed at the end (also after a failure in a phase).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use fake_wechat::{prepare_oa, prepare_wecom, CallbackMode, FakeApp, FakeHandle, FakeWechat};
use platform::bus::{Bus, GroupSpec};
use serde_json::{json, Value};
use test_support::servers::unique;

#[path = "../../scrm/tests/it/common/deployment.rs"]
mod deployment;

use deployment::{Deployment, ROLES, SERVICES};

const TENANT: &str = "t-pipeline";
/// H5 visitors whose page views the `returning` phases spread over.
const VISITORS: u64 = 200;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---- load and observation ---------------------------------------------------------------------

/// What one callback is: a follow of a new person, a menu click or a text message.
#[derive(Clone)]
enum Kind {
    Follow {
        openid: String,
    },
    /// A WeCom rep adds a new customer.
    WecomAdd {
        external_userid: String,
        rep: String,
    },
    Click {
        openid: String,
        key: String,
    },
    Text {
        openid: String,
        content: String,
    },
    /// An H5 page view through `/track` with the tenant's write key (an anonymous visitor) of
    /// page `/p/{page}`.
    PageView {
        visitor: String,
        page: String,
    },
}

impl Kind {
    /// The string that identifies the event in what the services publish about it.
    fn marker(&self) -> &str {
        match self {
            Kind::Follow { openid } => openid,
            Kind::WecomAdd {
                external_userid, ..
            } => external_userid,
            Kind::Click { key, .. } => key,
            Kind::Text { content, .. } => content,
            Kind::PageView { page, .. } => page,
        }
    }

    /// A new person the services tag (the rule reads OA follows).
    fn tagged(&self) -> bool {
        matches!(self, Kind::Follow { .. })
    }
}

/// One request to the gateway.
struct Request {
    url: String,
    query: Vec<(String, String)>,
    content_type: &'static str,
    body: String,
    write_key: Option<&'static str>,
}

impl From<fake_wechat::PreparedCallback> for Request {
    fn from(cb: fake_wechat::PreparedCallback) -> Self {
        Request {
            url: cb.url,
            query: cb.query,
            content_type: cb.content_type,
            body: cb.body,
            write_key: None,
        }
    }
}

/// What the observer saw: per marker the time of `profile.resolved`; per profile its markers;
/// every `tag.changed` (profile, time) and `lead.score_changed` (cause envelope, time).
#[derive(Default)]
struct Seen {
    resolved: HashMap<String, Instant>,
    /// profile.resolved envelope id → marker.
    resolved_env: HashMap<String, String>,
    profile_of: HashMap<String, String>,
    tagged: Vec<(String, Instant)>,
    scored: Vec<(String, Instant)>,
}

/// The marker a channel event carries (the click key / text content over the follower's openid).
fn marker_in(event: &Value, run: &str) -> Option<String> {
    let text = event.to_string();
    for prefix in ["K", "T", "P", "o", "w"].map(|p| format!("{p}{run}-")) {
        if let Some(i) = text.find(&prefix) {
            let tail: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            return Some(tail);
        }
    }
    None
}

async fn observe(mut sub: platform::bus::Subscription, seen: Arc<Mutex<Seen>>, run: String) {
    while let Some(d) = sub.recv().await {
        let at = Instant::now();
        let env = &d.envelope;
        {
            let mut s = seen.lock().unwrap();
            match env.kind.as_str() {
                proto::identity::PROFILE_RESOLVED => {
                    let p = &env.payload;
                    if let Some(m) = marker_in(&p["event"]["payload"], &run) {
                        s.resolved.entry(m.clone()).or_insert(at);
                        s.resolved_env.insert(env.id.to_string(), m.clone());
                        let profile = p["profile_id"].as_str().unwrap_or_default().to_string();
                        s.profile_of.entry(m).or_insert(profile);
                    }
                }
                proto::tagging::TAG_CHANGED => {
                    let profile = env.payload["profile_id"].as_str().unwrap_or_default();
                    s.tagged.push((profile.to_string(), at));
                }
                proto::scoring::LEAD_SCORE_CHANGED => {
                    let cause = env.payload["reason"]["cause_id"]
                        .as_str()
                        .unwrap_or_default();
                    s.scored.push((cause.to_string(), at));
                }
                _ => {}
            }
        }
        let _ = d.ack().await;
    }
}

/// One phase's figures.
struct Report {
    name: String,
    events: usize,
    accepted_per_s: f64,
    /// Service → events per second until its last answer.
    drained: Vec<(&'static str, f64)>,
    /// Answer → (p50, p99) lag in ms.
    lags: Vec<(&'static str, f64, f64)>,
    stmts: Vec<(&'static str, f64)>,
    cpu_ms: Vec<(&'static str, f64)>,
    /// The servers' and the load's CPU ms per event.
    server_cpu_ms: Vec<(&'static str, f64)>,
    /// Cores busy on average from the first callback to the last answer (of all there are).
    busy_cores: f64,
    cores: f64,
    end_to_end_per_s: f64,
}

impl Report {
    fn stmts_total(&self) -> f64 {
        self.stmts.iter().map(|(_, v)| v).sum()
    }

    fn lag_p99(&self, what: &str) -> f64 {
        self.lags
            .iter()
            .find(|(w, _, _)| *w == what)
            .map_or(0.0, |(_, _, p99)| *p99)
    }

    fn print(&self) {
        println!(
            "[{}] {} callbacks: accepted {:.0}/s; drained end to end {:.0}/s",
            self.name, self.events, self.accepted_per_s, self.end_to_end_per_s
        );
        for (s, r) in &self.drained {
            println!("  drained by {s}: {r:.0} events/s");
        }
        for (w, p50, p99) in &self.lags {
            println!("  200 → {w}: p50 {p50:.0} ms, p99 {p99:.0} ms");
        }
        let stmts: Vec<String> = self
            .stmts
            .iter()
            .map(|(s, v)| format!("{s} {v:.1}"))
            .collect();
        println!(
            "  SQL statements per event: {} (all {:.1})",
            stmts.join(", "),
            self.stmts_total()
        );
        let cpu: Vec<String> = self
            .cpu_ms
            .iter()
            .map(|(s, v)| format!("{s} {v:.2}"))
            .collect();
        println!("  CPU ms per event: {}", cpu.join(", "));
        let servers: Vec<String> = self
            .server_cpu_ms
            .iter()
            .map(|(s, v)| format!("{s} {v:.2}"))
            .collect();
        let all = self.cpu_total();
        println!(
            "  servers' CPU ms per event: {}; everything {all:.2} ms, so at most {:.0} events/s on {:.0} cores",
            servers.join(", "),
            self.cores * 1000.0 / all.max(1e-9),
            self.cores
        );
        println!(
            "  machine busy: {:.2} of {:.0} cores",
            self.busy_cores, self.cores
        );
    }

    /// CPU ms per event of every process taking part.
    fn cpu_total(&self) -> f64 {
        self.cpu_ms
            .iter()
            .chain(&self.server_cpu_ms)
            .map(|(_, v)| v)
            .sum()
    }
}

struct Load<'a> {
    d: &'a Deployment,
    fake: &'a FakeHandle,
    oa: &'a FakeApp,
    wecom: &'a FakeApp,
    /// WeCom userids of the reps who add customers.
    reps: Vec<String>,
    http: reqwest::Client,
    seen: Arc<Mutex<Seen>>,
    run: String,
    connections: usize,
    /// Followers of earlier phases (their openids), for returning events.
    followers: Vec<String>,
    next: u64,
}

impl Load<'_> {
    /// New people: four in five follow the Official Account, one in five is added by a rep.
    fn follows(&mut self, n: usize) -> Vec<Kind> {
        (0..n)
            .map(|i| {
                self.next += 1;
                if i % 5 == 4 {
                    Kind::WecomAdd {
                        external_userid: format!("w{}-{}", self.run, self.next),
                        rep: self.reps[self.next as usize % self.reps.len()].clone(),
                    }
                } else {
                    Kind::Follow {
                        openid: format!("o{}-{}", self.run, self.next),
                    }
                }
            })
            .collect()
    }

    /// Events of people seen before: followers' menu clicks and messages (two in five each) and
    /// page views of a pool of H5 visitors (one in five).
    fn returning(&mut self, n: usize) -> Vec<Kind> {
        (0..n)
            .map(|i| {
                self.next += 1;
                let openid =
                    self.followers[(self.next as usize * 7919) % self.followers.len()].clone();
                match i % 5 {
                    0 | 2 => Kind::Click {
                        openid,
                        key: format!("K{}-{}", self.run, self.next),
                    },
                    1 | 3 => Kind::Text {
                        openid,
                        content: format!("T{}-{}", self.run, self.next),
                    },
                    _ => Kind::PageView {
                        visitor: format!("v{}-{}", self.run, self.next % VISITORS),
                        page: format!("P{}-{}", self.run, self.next),
                    },
                }
            })
            .collect()
    }

    /// Posts `kinds` (at `rate` per second, or as fast as possible), waits until every service
    /// has answered for all of them, and reports.
    async fn phase(
        &mut self,
        name: &str,
        kinds: Vec<Kind>,
        rate: Option<f64>,
    ) -> anyhow::Result<Report> {
        let follows = kinds.iter().filter(|k| k.tagged()).count();
        let stmts0 = self.d.statements().await?;
        let cpu0 = self.d.cpu();
        let (servers0, machine0) = (deployment::server_cpu(), deployment::machine_cpu());
        let (tagged0, scored0) = {
            let s = self.seen.lock().unwrap();
            (s.tagged.len(), s.scored.len())
        };
        let callbacks: Vec<(String, Request)> = kinds
            .iter()
            .map(|k| (k.marker().to_string(), self.request(k)))
            .collect();
        let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let queue = Arc::new(Mutex::new(
            callbacks.into_iter().enumerate().collect::<Vec<_>>(),
        ));
        queue.lock().unwrap().reverse();
        let started = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..self.connections {
            let (queue, sent, http) = (queue.clone(), sent.clone(), self.http.clone());
            workers.push(tokio::spawn(async move {
                loop {
                    let Some((i, (marker, cb))) = queue.lock().unwrap().pop() else {
                        return Ok::<(), anyhow::Error>(());
                    };
                    if let Some(rate) = rate {
                        let due = started + Duration::from_secs_f64(i as f64 / rate);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let mut post = http
                        .post(&cb.url)
                        .query(&cb.query)
                        .header("content-type", cb.content_type)
                        .body(cb.body.clone());
                    if let Some(key) = cb.write_key {
                        post = post.header("X-Write-Key", key);
                    }
                    let r = post.send().await?;
                    let status = r.status();
                    if !status.is_success() {
                        bail!(
                            "gateway answered {status}: {}",
                            r.text().await.unwrap_or_default()
                        );
                    }
                    sent.lock().unwrap().insert(marker, Instant::now());
                }
            }));
        }
        for w in workers {
            w.await??;
        }
        let accepted_in = started.elapsed();
        let total = kinds.len();
        // Everything answered: resolved, tagged (follows), scored. Scoring may announce events
        // of one person that share a transaction as one change, so it is done once it has
        // announced one per event or has been quiet for a while after everything resolved.
        let deadline = Instant::now() + Duration::from_secs(300 + total as u64 / 50);
        let (mut scored_last, mut quiet_since) = (0, Instant::now());
        loop {
            let done = {
                let s = self.seen.lock().unwrap();
                let resolved = kinds
                    .iter()
                    .filter(|k| s.resolved.contains_key(k.marker()))
                    .count();
                let scored = s.scored.len() - scored0;
                if scored != scored_last {
                    (scored_last, quiet_since) = (scored, Instant::now());
                }
                resolved == total
                    && s.tagged.len() - tagged0 >= follows
                    && (scored >= total
                        || (scored > 0 && quiet_since.elapsed() > Duration::from_secs(3)))
            };
            if done {
                break;
            }
            if Instant::now() > deadline {
                let s = self.seen.lock().unwrap();
                bail!(
                    "{name}: not drained in time: resolved {}/{total}, tagged {}/{follows}, scored {}/{total}",
                    kinds.iter().filter(|k| s.resolved.contains_key(k.marker())).count(),
                    s.tagged.len() - tagged0,
                    s.scored.len() - scored0
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The statements of the last transactions (outbox deletes after confirms) land a moment
        // after their events were seen.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let stmts1 = self.d.statements().await?;
        let cpu1 = self.d.cpu();
        let (servers1, machine1) = (deployment::server_cpu(), deployment::machine_cpu());
        let read_after = started.elapsed();
        let sent = sent.lock().unwrap().clone();
        let s = self.seen.lock().unwrap();
        let mut lag_resolved = Vec::new();
        let mut last_resolved = started;
        for k in &kinds {
            if let (Some(t0), Some(t1)) = (sent.get(k.marker()), s.resolved.get(k.marker())) {
                lag_resolved.push(t1.saturating_duration_since(*t0));
                last_resolved = last_resolved.max(*t1);
            }
        }
        // tag.changed of this phase's followers, by profile.
        let profile_sent: HashMap<&str, Instant> = kinds
            .iter()
            .filter(|k| matches!(k, Kind::Follow { .. }))
            .filter_map(|k| {
                Some((
                    s.profile_of.get(k.marker())?.as_str(),
                    *sent.get(k.marker())?,
                ))
            })
            .collect();
        let mut lag_tagged = Vec::new();
        let mut last_tagged = started;
        for (p, at) in &s.tagged[tagged0..] {
            if let Some(t0) = profile_sent.get(p.as_str()) {
                lag_tagged.push(at.saturating_duration_since(*t0));
                last_tagged = last_tagged.max(*at);
            }
        }
        let mut lag_scored = Vec::new();
        let mut last_scored = started;
        for (cause, at) in &s.scored[scored0..] {
            if let Some(t0) = s.resolved_env.get(cause).and_then(|m| sent.get(m)) {
                lag_scored.push(at.saturating_duration_since(*t0));
                last_scored = last_scored.max(*at);
            }
        }
        for l in [&mut lag_resolved, &mut lag_tagged, &mut lag_scored] {
            l.sort();
        }
        let per_s = |last: Instant| total as f64 / last.duration_since(started).as_secs_f64();
        let mut drained = vec![("identity", per_s(last_resolved))];
        if follows > 0 {
            drained.push((
                "tagging",
                follows as f64 / last_tagged.duration_since(started).as_secs_f64(),
            ));
        }
        drained.push(("scoring", per_s(last_scored)));
        let mut lags = vec![(
            "profile.resolved",
            ms(pct(&lag_resolved, 0.5)),
            ms(pct(&lag_resolved, 0.99)),
        )];
        if follows > 0 {
            lags.push((
                "tag.changed",
                ms(pct(&lag_tagged, 0.5)),
                ms(pct(&lag_tagged, 0.99)),
            ));
        }
        lags.push((
            "lead.score_changed",
            ms(pct(&lag_scored, 0.5)),
            ms(pct(&lag_scored, 0.99)),
        ));
        let end = last_resolved.max(last_tagged).max(last_scored);
        for k in &kinds {
            if let Kind::Follow { openid } = k {
                self.followers.push(openid.clone());
            }
        }
        Ok(Report {
            name: name.to_string(),
            events: total,
            accepted_per_s: total as f64 / accepted_in.as_secs_f64(),
            drained,
            lags,
            stmts: SERVICES
                .iter()
                .map(|r| (*r, (stmts1[r] - stmts0[r]) as f64 / total as f64))
                .collect(),
            cpu_ms: ROLES
                .iter()
                .map(|r| (*r, (cpu1[r] - cpu0[r]) * 1000.0 / total as f64))
                .collect(),
            server_cpu_ms: deployment::SERVERS
                .iter()
                .map(|(s, _)| *s)
                .chain(["load"])
                .map(|s| (s, (servers1[s] - servers0[s]) * 1000.0 / total as f64))
                .collect(),
            // Over the whole reading (which ends 0.5 s after the last answer).
            busy_cores: (machine1.0 - machine0.0) / read_after.as_secs_f64(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
            end_to_end_per_s: total as f64 / end.duration_since(started).as_secs_f64(),
        })
    }

    fn request(&self, k: &Kind) -> Request {
        let gateway = &self.d.urls["gateway"];
        let oa = self.fake.callbacks(self.oa);
        let xml = match k {
            Kind::Follow { openid } => oa.subscribe(openid),
            Kind::Click { openid, key } => oa.click(openid, key),
            Kind::Text { openid, content } => oa.text(openid, content),
            Kind::WecomAdd {
                external_userid,
                rep,
            } => {
                let xml = self.fake.callbacks(self.wecom).add_external_contact(
                    rep,
                    external_userid,
                    None,
                );
                return prepare_wecom(gateway, self.wecom, &xml)
                    .expect("a callback")
                    .into();
            }
            Kind::PageView { visitor, page } => {
                return Request {
                    url: format!("{gateway}/track"),
                    query: Vec::new(),
                    content_type: "application/json",
                    body: json!({"events": [{"type": "page_view", "page": format!("/p/{page}"),
                                             "anonymous_id": visitor}]})
                    .to_string(),
                    write_key: Some(deployment::WRITE_KEY),
                }
            }
        };
        prepare_oa(gateway, self.oa, &xml, CallbackMode::Safe)
            .expect("a callback")
            .into()
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let events = env_u64("BENCH_EVENTS", 20_000) as usize;
    let seconds = env_u64("BENCH_SECONDS", 20) as f64;
    let connections = env_u64("BENCH_CONNECTIONS", 64) as usize;
    let phases: Vec<String> = std::env::var("BENCH_PHASES")
        .unwrap_or_else(|_| "new,returning,new_half,returning_half".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let fake = FakeWechat::start(0, 5)?;
    let apps = fake.apps().clone();
    let mut d =
        Deployment::start(TENANT, &[(&apps.oa, "oa"), (&apps.wecom, "wecom")], true).await?;
    let bus = d.bus().await?;
    let result = async {
        let sub = bus
            .subscribe(&GroupSpec::with_policy(
                "pipeline-observer",
                &["profile.resolved", "tag.changed", "lead.score_changed"],
                &bus.policy(),
            ))
            .await?;
        d.define_engagement(TENANT).await?;
        d.run_roles().await?;
        println!(
            "pipeline: four roles as processes (RabbitMQ exchange {}, MariaDB, Redis); {events} callbacks per phase",
            d.exchange
        );
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let run = unique("r").replace(['_', '-'], "");
        let observer = tokio::spawn(observe(sub, seen.clone(), run.clone()));
        let mut load = Load {
            d: &d,
            fake: &fake,
            oa: &apps.oa,
            wecom: &apps.wecom,
            reps: fake
                .population()
                .reps
                .iter()
                .map(|r| r.userid.clone())
                .collect(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(connections)
                .build()?,
            seen,
            run,
            connections,
            followers: Vec::new(),
            next: 0,
        };
        let (mut new, mut returning, mut half_p99) = (None::<Report>, None::<Report>, 0.0f64);
        for p in &phases {
            let report = match p.as_str() {
                "new" => {
                    let k = load.follows(events);
                    load.phase("new", k, None).await?
                }
                "returning" => {
                    if load.followers.is_empty() {
                        let k = load.follows(events.min(5_000));
                        load.phase("warm-up follows", k, None).await?.print();
                    }
                    let k = load.returning(events);
                    load.phase("returning", k, None).await?
                }
                "new_half" | "returning_half" => {
                    let full = if p == "new_half" { &new } else { &returning };
                    let Some(full) = full else {
                        bail!("{p} needs the full-rate phase before it");
                    };
                    let rate = full.end_to_end_per_s / 2.0;
                    let n = (rate * seconds).round().max(1.0) as usize;
                    let k = if p == "new_half" {
                        load.follows(n)
                    } else {
                        load.returning(n)
                    };
                    let r = load.phase(&format!("{p} at {rate:.0}/s"), k, Some(rate)).await?;
                    half_p99 = half_p99.max(r.lag_p99("lead.score_changed"));
                    r
                }
                other => bail!("unknown phase `{other}`"),
            };
            report.print();
            match p.as_str() {
                "new" => new = Some(report),
                "returning" => returning = Some(report),
                _ => {}
            }
        }
        observer.abort();
        let eps = |r: &Option<Report>| r.as_ref().map_or(0.0, |r| r.end_to_end_per_s);
        let stmts = |r: &Option<Report>| r.as_ref().map_or(0.0, Report::stmts_total);
        println!(
            "pipeline: new_eps={:.0} returning_eps={:.0} p99_ms={:.0} stmts_new={:.0} stmts_returning={:.0}",
            eps(&new),
            eps(&returning),
            half_p99,
            stmts(&new),
            stmts(&returning)
        );
        Ok::<(), anyhow::Error>(())
    }
    .await;
    d.stop(&bus).await;
    fake.stop().await;
    result
}
