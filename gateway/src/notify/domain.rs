//! The pure decisions of a lead notification, between what the consumer loaded (the message,
//! the corp's agent app, the customer's name, the tenant's time zone) and what it writes: whether
//! to send at all, the card the rep gets, and what a `message/send` answer means — sent, worth
//! another try later, or failed for good. No I/O.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use proto::scoring::{LeadNotify, NotifyReason};
use serde_json::Value;
use wechat::api::{ApiError, SendOutcome};

use super::store::{AttemptRecord, Status};

/// The card's button (WeCom shows at most 4 characters).
pub const BUTTON: &str = "详情";
/// WeCom's limits on a card, in bytes.
pub const TITLE_MAX: usize = 128;
pub const DESCRIPTION_MAX: usize = 512;
/// Room the trigger's own message gets in the description.
const MESSAGE_MAX: usize = 300;

/// Why a notification was recorded without a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// No rep follows the customer.
    NoOwner,
    /// The owner's corp has no agent app registered to the tenant.
    NoAgentApp,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NoOwner => "no_owner",
            SkipReason::NoAgentApp => "no_agent_app",
        }
    }
}

/// Send or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Skip(SkipReason),
    /// Send from the agent app with this AgentID.
    Send {
        agent_id: i64,
    },
}

/// Whether `n` can be sent: it needs an owner, and the owner's corp an agent app (its AgentID,
/// found by the consumer among the tenant's apps).
pub fn decide(n: &LeadNotify, agent_id: Option<i64>) -> Decision {
    match (&n.owner, agent_id) {
        (None, _) => Decision::Skip(SkipReason::NoOwner),
        (Some(_), None) => Decision::Skip(SkipReason::NoAgentApp),
        (Some(_), Some(agent_id)) => Decision::Send { agent_id },
    }
}

/// What the rep gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    pub title: String,
    pub description: String,
    pub url: String,
}

/// `text` cut at a character boundary to at most `max` bytes.
pub fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// A score as people write it: whole numbers without decimals, others to one decimal.
fn number(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

/// `<`, `>`, `&` and `"` as entities: the description is HTML to WeCom.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// Percent-encodes all but the unreserved characters (RFC 3986), for a query value.
fn query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Why the trigger fired, in the rep's words.
fn why(reason: &NotifyReason) -> String {
    match reason {
        NotifyReason::ScoreCrossed {
            model,
            threshold,
            direction,
            score,
        } => {
            let verb = if direction == "down" {
                "降至"
            } else {
                "升至"
            };
            format!(
                "{model} 得分{verb} {}（阈值 {}）",
                number(*score),
                number(*threshold)
            )
        }
        NotifyReason::StageEntered { stage } => format!("进入 {stage} 阶段"),
    }
}

/// The sidebar's customer card for the notification's customer: `<base>/sidebar/?external_userid=`,
/// or `?profile_id=` when the owner's external_userid is not known.
pub fn sidebar_url(public_base: &str, n: &LeadNotify) -> String {
    let base = public_base.trim_end_matches('/');
    match n.owner.as_ref().and_then(|o| o.external_userid.as_deref()) {
        Some(e) if !e.is_empty() => format!("{base}/sidebar/?external_userid={}", query_value(e)),
        _ => format!("{base}/sidebar/?profile_id={}", query_value(&n.profile_id)),
    }
}

/// The card: the title names the customer (`customer`, else by id) and why; the description has
/// when (in the tenant's time zone), the trigger's message (else its name) and the lead's stage;
/// the button opens the customer in the sidebar. Within WeCom's limits.
pub fn card(n: &LeadNotify, customer: Option<&str>, tz: Tz, public_base: &str) -> Card {
    let who = match customer.map(str::trim).filter(|c| !c.is_empty()) {
        Some(name) => name.to_owned(),
        None => {
            let id = n
                .owner
                .as_ref()
                .and_then(|o| o.external_userid.as_deref())
                .unwrap_or(&n.profile_id);
            format!("客户 {id}")
        }
    };
    let title = cut(&format!("{who}：{}", why(&n.reason)), TITLE_MAX);
    let when = n.at.with_timezone(&tz).format("%Y-%m-%d %H:%M");
    let said = n
        .message
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .unwrap_or(&n.trigger_name);
    let description = cut(
        &format!(
            "<div class=\"gray\">{when}</div><div class=\"normal\">{}</div>\
             <div class=\"highlight\">当前阶段：{}</div>",
            escape(&cut(said, MESSAGE_MAX)),
            escape(&cut(&n.stage, 64)),
        ),
        DESCRIPTION_MAX,
    );
    Card {
        title,
        description,
        url: sidebar_url(public_base, n),
    }
}

/// The customer's name for rep `user_id` of `corp_id` in identity-svc's profile answer: that
/// rep's remark on the follow, else the profile's `contact.name`.
pub fn customer_name(profile: &Value, corp_id: &str, user_id: &str) -> Option<String> {
    let remark = profile["relations"]["wecom_follows"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["corp_id"] == corp_id && f["user_id"] == user_id)
        .and_then(|f| f["remark"].as_str());
    remark
        .or_else(|| profile["fields"]["contact.name"].as_str())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// What WeCom's answer means for the notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The rep has it.
    Sent { msgid: String },
    /// Worth another try later (busy, rate-limited, unreachable) and tries are left.
    Retry,
    /// Never sent: `reason` is `wechat_refused` (an answer no retry changes: no valid recipient,
    /// IP not allowed, wrong AgentID or secret…), `unreached` (answered, but not to this rep)
    /// or `retries_exhausted`.
    Failed { reason: &'static str },
}

impl Verdict {
    /// The status it leaves the notification in.
    pub fn status(&self) -> Status {
        match self {
            Verdict::Sent { .. } => Status::Sent,
            Verdict::Retry => Status::Retrying,
            Verdict::Failed { .. } => Status::Failed,
        }
    }
}

/// Is a failed call worth another try later: WeCom busy (-1), its rate and quota limits (45009,
/// 45011, 45033), a superseded token, a network or server failure.
pub fn retryable(e: &ApiError) -> bool {
    e.is_transient() || e.is_rate_limited()
}

/// Why a call was not made: the corp's call rate had no slot soon enough.
pub const NO_SLOT: &str = "no call slot of the corp's rate limit (gateway.notify.rate_per_minute)";

/// The outcome of one try to reach rep `rep` at `at` (`None`: no call slot, nothing sent) and
/// how it is recorded. `last`: no try is left after this one.
pub fn judge(
    result: Option<&Result<SendOutcome, ApiError>>,
    rep: &str,
    last: bool,
    at: DateTime<Utc>,
) -> (Verdict, AttemptRecord) {
    let retry_or_give_up = if last {
        Verdict::Failed {
            reason: "retries_exhausted",
        }
    } else {
        Verdict::Retry
    };
    match result {
        None => (
            retry_or_give_up,
            AttemptRecord {
                at,
                errcode: None,
                errmsg: Some(NO_SLOT.to_owned()),
                msgid: None,
            },
        ),
        Some(Ok(outcome)) => {
            let msgid = outcome.msgid().to_owned();
            let record = |errmsg: &str| AttemptRecord {
                at,
                errcode: Some(0),
                errmsg: Some(errmsg.to_owned()),
                msgid: Some(msgid.clone()).filter(|m| !m.is_empty()),
            };
            match outcome {
                SendOutcome::PartlyUnreached { unreached, .. }
                    if unreached
                        .users
                        .iter()
                        .chain(&unreached.unlicensed_users)
                        .any(|u| u == rep) =>
                {
                    (
                        Verdict::Failed {
                            reason: "unreached",
                        },
                        record(
                            "the rep was not reached (not a member the app can see, or unlicensed)",
                        ),
                    )
                }
                _ => (
                    Verdict::Sent {
                        msgid: msgid.clone(),
                    },
                    record("ok"),
                ),
            }
        }
        Some(Err(e)) => {
            let verdict = if retryable(e) {
                retry_or_give_up
            } else {
                Verdict::Failed {
                    reason: "wechat_refused",
                }
            };
            (
                verdict,
                AttemptRecord {
                    at,
                    errcode: e.errcode(),
                    errmsg: Some(e.to_string()),
                    msgid: None,
                },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::scoring::Owner;
    use serde_json::json;
    use wechat::api::Unreached;

    fn notify(reason: NotifyReason, external: Option<&str>) -> LeadNotify {
        LeadNotify {
            profile_id: "p-1".into(),
            owner: Some(Owner {
                corp_id: "ww1".into(),
                user_id: "rep01".into(),
                external_userid: external.map(str::to_owned),
            }),
            trigger_id: "t-1".into(),
            trigger_name: "Hot lead".into(),
            reason,
            message: Some("Call <today> & say hi".into()),
            stage: "mql".into(),
            at: "2026-03-01T02:05:00Z".parse().unwrap(),
        }
    }

    fn crossed(direction: &str, score: f64) -> NotifyReason {
        NotifyReason::ScoreCrossed {
            model: "engagement".into(),
            threshold: 50.0,
            direction: direction.into(),
            score,
        }
    }

    #[test]
    fn a_card_names_the_customer_and_why() {
        let n = notify(crossed("up", 55.0), Some("wm/ab+c"));
        let c = card(
            &n,
            Some("王小明"),
            chrono_tz::Asia::Shanghai,
            "https://crm.example.com/",
        );
        assert_eq!(c.title, "王小明：engagement 得分升至 55（阈值 50）");
        assert_eq!(
            c.url,
            "https://crm.example.com/sidebar/?external_userid=wm%2Fab%2Bc"
        );
        assert_eq!(
            c.description,
            "<div class=\"gray\">2026-03-01 10:05</div><div class=\"normal\">Call &lt;today&gt; \
             &amp; say hi</div><div class=\"highlight\">当前阶段：mql</div>"
        );
        // Down, a fraction, no name: the customer by id.
        let c = card(
            &n_with(crossed("down", 49.44)),
            None,
            chrono_tz::UTC,
            "http://x",
        );
        assert_eq!(c.title, "客户 wm1：engagement 得分降至 49.4（阈值 50）");
        let mut stage = notify(
            NotifyReason::StageEntered {
                stage: "sql".into(),
            },
            None,
        );
        stage.message = None;
        let c = card(&stage, Some("  "), chrono_tz::UTC, "http://x");
        assert_eq!(c.title, "客户 p-1：进入 sql 阶段");
        assert_eq!(c.url, "http://x/sidebar/?profile_id=p-1");
        assert!(c.description.contains(">Hot lead<"), "{}", c.description);
    }

    fn n_with(reason: NotifyReason) -> LeadNotify {
        notify(reason, Some("wm1"))
    }

    #[test]
    fn a_card_keeps_within_wecoms_limits() {
        let mut n = notify(crossed("up", 70.0), Some("wm1"));
        n.message = Some("很".repeat(400));
        let c = card(&n, Some(&"长".repeat(100)), chrono_tz::UTC, "http://x");
        assert!(c.title.len() <= TITLE_MAX && c.title.starts_with("长长"));
        assert!(
            c.description.len() <= DESCRIPTION_MAX,
            "{}",
            c.description.len()
        );
        assert_eq!(cut("标题", 4), "标");
    }

    #[test]
    fn no_owner_or_no_agent_app_is_not_sent() {
        let mut n = notify(crossed("up", 55.0), None);
        assert_eq!(
            decide(&n, Some(1_000_002)),
            Decision::Send {
                agent_id: 1_000_002
            }
        );
        assert_eq!(decide(&n, None), Decision::Skip(SkipReason::NoAgentApp));
        n.owner = None;
        assert_eq!(decide(&n, Some(7)), Decision::Skip(SkipReason::NoOwner));
    }

    #[test]
    fn the_name_is_the_reps_remark_first() {
        let profile = json!({
            "fields": {"contact.name": "Li Lei"},
            "relations": {"wecom_follows": [
                {"corp_id": "ww1", "user_id": "rep02", "remark": "other rep's"},
                {"corp_id": "ww1", "user_id": "rep01", "remark": "老李 (expo)"},
            ]},
        });
        assert_eq!(
            customer_name(&profile, "ww1", "rep01").as_deref(),
            Some("老李 (expo)")
        );
        assert_eq!(
            customer_name(&profile, "ww1", "rep03").as_deref(),
            Some("Li Lei")
        );
        assert_eq!(customer_name(&json!({}), "ww1", "rep01"), None);
    }

    #[test]
    fn busy_and_limits_are_retried_refusals_are_not() {
        let at = Utc::now();
        for code in [-1, 45009, 45011, 45033, 40001] {
            let r = Err(ApiError::from_errcode(code, "m"));
            let (v, rec) = judge(Some(&r), "rep01", false, at);
            assert_eq!(v, Verdict::Retry, "{code}");
            assert_eq!(rec.errcode, Some(code));
            let (v, _) = judge(Some(&r), "rep01", true, at);
            assert_eq!(
                v,
                Verdict::Failed {
                    reason: "retries_exhausted"
                },
                "{code}"
            );
        }
        for code in [81013, 60020, 40056, 40125, 48001] {
            let r = Err(ApiError::from_errcode(code, "m"));
            let (v, rec) = judge(Some(&r), "rep01", false, at);
            assert_eq!(
                v,
                Verdict::Failed {
                    reason: "wechat_refused"
                },
                "{code}"
            );
            assert_eq!(v.status(), Status::Failed);
            assert_eq!(rec.errcode, Some(code));
        }
        let transport = Err(ApiError::Transport {
            endpoint: "/cgi-bin/message/send".into(),
            message: "refused".into(),
        });
        let (v, rec) = judge(Some(&transport), "rep01", false, at);
        assert_eq!((v, rec.errcode), (Verdict::Retry, None));
        let (v, rec) = judge(None, "rep01", false, at);
        assert_eq!((v, rec.errmsg.as_deref()), (Verdict::Retry, Some(NO_SLOT)));
    }

    #[test]
    fn delivery_is_to_the_rep() {
        let at = Utc::now();
        let ok = Ok(SendOutcome::Delivered { msgid: "m1".into() });
        let (v, rec) = judge(Some(&ok), "rep01", false, at);
        assert_eq!(v, Verdict::Sent { msgid: "m1".into() });
        assert_eq!((rec.errcode, rec.msgid.as_deref()), (Some(0), Some("m1")));
        let unreached = |users: Vec<&str>| {
            Ok(SendOutcome::PartlyUnreached {
                msgid: "m2".into(),
                unreached: Unreached {
                    users: users.into_iter().map(str::to_owned).collect(),
                    ..Unreached::default()
                },
            })
        };
        let (v, _) = judge(Some(&unreached(vec!["rep01"])), "rep01", false, at);
        assert_eq!(
            v,
            Verdict::Failed {
                reason: "unreached"
            }
        );
        let (v, _) = judge(Some(&unreached(vec!["other"])), "rep01", false, at);
        assert_eq!(v, Verdict::Sent { msgid: "m2".into() });
    }
}
