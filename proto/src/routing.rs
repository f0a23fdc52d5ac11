//! Routing-key patterns in AMQP topic syntax: words separated by `.`, `*` matches exactly one word,
//! `#` matches zero or more words. Used by the in-process bus; RabbitMQ applies the same rules.
//!
//! Also the system's consumer groups: every process declares all of them at start, so an event
//! published before its consumer first ran waits in the consumer's queue instead of being dropped.
//! Only groups something in the deployment consumes are declared: an event no group binds (e.g.
//! `lead.sla_breached` for a deployment without a reader of it) is dropped by the broker instead
//! of piling up in a queue nobody reads. A reader outside the system declares its own group (`bus.outlets`).

/// A consumer group and the routing-key patterns its queue is bound with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupDef {
    pub name: &'static str,
    pub bindings: &'static [&'static str],
}

/// identity-svc: every channel event (callbacks, mini-program login/phone, tracking).
pub const IDENTITY: GroupDef = GroupDef {
    name: "identity",
    bindings: &["channel.#"],
};

/// tagging-svc: resolved events (behaviour counters, real-time rules), profile state and identity
/// changes (its facts projection), leads' scores and stages (`score.<model>`, `lead.stage`),
/// WeCom corp-tag changes (catalogue mirror), tag commands and tenants' settings (the zone their
/// days are counted in).
pub const TAGGING: GroupDef = GroupDef {
    name: "tagging",
    bindings: &[
        "profile.resolved",
        "profile.updated",
        "identity.merged",
        "identity.unmerged",
        "lead.score_changed",
        "lead.stage_changed",
        "command.tag.#",
        "channel.wecom.external_tag.#",
        "tenant.settings",
    ],
};

/// scoring-svc: resolved events (points), profile state, tag changes, merges, and un-merges as
/// tagging applied them (`tag.unmerged`: the separation with both profiles' final tags), and
/// tenants' settings.
pub const SCORING: GroupDef = GroupDef {
    name: "scoring",
    bindings: &[
        "profile.resolved",
        "profile.updated",
        "tag.changed",
        "tag.unmerged",
        "identity.merged",
        "tenant.settings",
    ],
};

/// identity-svc's WeChat lookups, beside the event path: resolved events whose subject WeChat can
/// say more about. Published only while `identity.wechat` is on; identity-svc reads it always.
pub const IDENTITY_ENRICH: GroupDef = GroupDef {
    name: "identity-enrich",
    bindings: &["identity.enrich"],
};

/// The gateway's lead notifications: each `lead.notify` delivered to the owning rep as a WeCom
/// app message (the gateway holds the agent apps' secrets and the token keeper).
pub const NOTIFY: GroupDef = GroupDef {
    name: "notify",
    bindings: &["lead.notify"],
};

/// Every consumer group of the system (each has a consumer in every deployment).
pub const GROUPS: &[GroupDef] = &[IDENTITY, IDENTITY_ENRICH, TAGGING, SCORING, NOTIFY];

/// Does `routing_key` match the topic `pattern`?
pub fn topic_matches(pattern: &str, routing_key: &str) -> bool {
    let pat: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = if routing_key.is_empty() {
        Vec::new()
    } else {
        routing_key.split('.').collect()
    };
    matches_from(&pat, &key)
}

fn matches_from(pat: &[&str], key: &[&str]) -> bool {
    match pat.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|skip| matches_from(rest, &key[skip..])),
        Some((&"*", rest)) => !key.is_empty() && matches_from(rest, &key[1..]),
        Some((word, rest)) => key.first() == Some(word) && matches_from(rest, &key[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::topic_matches as m;

    #[test]
    fn topic_patterns() {
        assert!(m("channel.oa.subscribe", "channel.oa.subscribe"));
        assert!(!m("channel.oa.subscribe", "channel.oa.unsubscribe"));
        assert!(m("channel.*.subscribe", "channel.oa.subscribe"));
        assert!(!m("channel.*", "channel.oa.subscribe"));
        assert!(m("channel.#", "channel.oa.subscribe"));
        assert!(m("channel.#", "channel"));
        assert!(m("#", "anything.at.all"));
        assert!(m("#.subscribe", "channel.oa.subscribe"));
        assert!(m("channel.#.subscribe", "channel.subscribe"));
        assert!(m("*.*.x", "a.b.x"));
        assert!(!m("*.*.x", "a.x"));
        assert!(!m("profile.*", "channel.oa"));
    }
}
