//! Tests of the identity domain's planner.

use super::*;
use IdentifierKind::*;

pub(crate) fn key(kind: IdentifierKind, v: &str) -> Key {
    Key {
        kind,
        namespace: "ns".into(),
        hash: v.into(),
    }
}

pub(crate) fn inc(kind: IdentifierKind, v: &str, found: Option<&str>) -> Incoming {
    Incoming {
        key: key(kind, v),
        provenance: if kind == Phone {
            Provenance::VerifiedMp
        } else {
            Provenance::Wechat
        },
        found_in: found.map(str::to_string),
        binding: false,
    }
}

fn policy() -> Policy {
    Policy::from_config(&ResolutionConfig::default())
}

#[test]
fn tenants_override_the_global_rules() {
    let cfg = ResolutionConfig {
        blocked_values: vec!["g".into()],
        tenants: [(
            "acme".to_string(),
            crate::config::TenantResolution {
                merge_on_verified_phone: Some(false),
                max_identifiers_per_kind: Some(3),
                blocked_values: vec!["t".into()],
                ..Default::default()
            },
        )]
        .into(),
        ..Default::default()
    };
    let p = Policy::from_config(&cfg);
    let acme = p.for_tenant("acme");
    assert!(!acme.merge_on_verified_phone && acme.merge_on_unionid);
    assert_eq!(acme.max_per_kind, 3);
    assert!(acme.blocklist.is_blocked("t") && acme.blocklist.is_blocked("g"));
    let other = p.for_tenant("other");
    assert!(other.merge_on_verified_phone && !other.blocklist.is_blocked("t"));
}

#[test]
fn blocklist_values_and_patterns() {
    let b = Blocklist::new(
        &["+8613800138000".into()],
        &["+86100*".into(), "test_?".into()],
    );
    for v in [
        "",
        " ",
        "0",
        "NULL",
        "undefined",
        "+8613800138000",
        "+8610012",
        "test_1",
    ] {
        assert!(b.is_blocked(v), "{v}");
    }
    for v in ["+8613912345678", "test_12", "o123"] {
        assert!(!b.is_blocked(v), "{v}");
    }
    assert!(glob(&['a', '*', 'c'], &['a', 'b', 'b', 'c']));
    assert!(!glob(&['a', '*', 'c'], &['a', 'b', 'd']));
}

#[test]
fn nothing_found_creates_with_everything() {
    let p = plan(
        &[inc(OaOpenid, "o1", None), inc(Unionid, "u1", None)],
        &BTreeMap::new(),
        &policy(),
    );
    assert_eq!(p.survivor, None);
    assert_eq!(p.attach, vec![0, 1]);
    assert!(p.merges.is_empty() && p.refusals.is_empty());
}

#[test]
fn one_found_attaches_the_rest() {
    let profiles = BTreeMap::from([("P1".to_string(), vec![key(Unionid, "u1")])]);
    let p = plan(
        &[inc(MpOpenid, "o2", None), inc(Unionid, "u1", Some("P1"))],
        &profiles,
        &policy(),
    );
    assert_eq!(p.survivor.as_deref(), Some("P1"));
    assert_eq!(p.attach, vec![0]);
}

#[test]
fn unionid_links_two_profiles_and_the_oldest_survives() {
    let profiles = BTreeMap::from([
        ("P2".to_string(), vec![key(MpOpenid, "o2")]),
        (
            "P1".to_string(),
            vec![key(Unionid, "u1"), key(OaOpenid, "o1")],
        ),
    ]);
    let p = plan(
        &[
            inc(MpOpenid, "o2", Some("P2")),
            inc(Unionid, "u1", Some("P1")),
        ],
        &profiles,
        &policy(),
    );
    assert_eq!(p.survivor.as_deref(), Some("P1"));
    assert_eq!(
        p.merges,
        vec![MergeStep {
            absorbed: "P2".into(),
            rule: LinkRule::Unionid,
            from: 1,
            to: 0
        }]
    );
}

#[test]
fn verified_phone_merges_unless_unionids_differ() {
    let profiles = BTreeMap::from([
        (
            "P1".to_string(),
            vec![key(MpOpenid, "o1"), key(Unionid, "u1")],
        ),
        ("P2".to_string(), vec![key(OaOpenid, "o2"), key(Phone, "x")]),
    ]);
    let ev = [
        inc(MpOpenid, "o1", Some("P1")),
        inc(Unionid, "u1", Some("P1")),
        inc(Phone, "x", Some("P2")),
    ];
    let p = plan(&ev, &profiles, &policy());
    assert_eq!(p.merges.len(), 1);
    assert_eq!(p.merges[0].rule, LinkRule::VerifiedPhone);

    let mut profiles = profiles;
    profiles.get_mut("P2").unwrap().push(key(Unionid, "u2"));
    let p = plan(&ev, &profiles, &policy());
    assert!(p.merges.is_empty());
    assert_eq!(p.survivor.as_deref(), Some("P1"));
    assert_eq!(
        p.refusals,
        vec![Refusal {
            other: Some("P2".into()),
            identifier: None,
            rule: LinkRule::VerifiedPhone,
            reason: RefusalReason::ConflictingUnionids
        }]
    );
}

#[test]
fn typed_phone_and_cookies_never_merge() {
    let profiles = BTreeMap::from([
        ("P1".to_string(), vec![key(MpOpenid, "o1")]),
        ("P2".to_string(), vec![key(WebCookie, "c"), key(Phone, "x")]),
    ]);
    let mut phone = inc(Phone, "x", Some("P2"));
    phone.provenance = Provenance::Typed;
    let p = plan(
        &[
            inc(MpOpenid, "o1", Some("P1")),
            inc(WebCookie, "c", Some("P2")),
            phone,
        ],
        &profiles,
        &policy(),
    );
    assert!(p.merges.is_empty() && p.refusals.is_empty());
}

#[test]
fn disabled_rule_and_kind_limit_are_refused() {
    let profiles = BTreeMap::from([
        ("P1".to_string(), vec![key(Unionid, "u1")]),
        ("P2".to_string(), vec![key(MpOpenid, "o2")]),
    ]);
    let ev = [
        inc(MpOpenid, "o2", Some("P2")),
        inc(Unionid, "u1", Some("P1")),
    ];
    let mut pol = policy();
    pol.merge_on_unionid = false;
    let p = plan(&ev, &profiles, &pol);
    assert_eq!(p.refusals[0].reason, RefusalReason::RuleDisabled);

    let profiles = BTreeMap::from([(
        "P1".to_string(),
        vec![key(Unionid, "u1"), key(OaOpenid, "a")],
    )]);
    let mut pol = policy();
    pol.max_per_kind = 1;
    let p = plan(
        &[inc(OaOpenid, "b", None), inc(Unionid, "u1", Some("P1"))],
        &profiles,
        &pol,
    );
    assert!(p.attach.is_empty());
    assert_eq!(p.refusals[0].reason, RefusalReason::KindLimit);
    assert_eq!(p.refusals[0].identifier, Some(0));
}

#[test]
fn a_new_person_sharing_a_phone_gets_their_own_profile() {
    let profiles = BTreeMap::from([(
        "P1".to_string(),
        vec![key(MpOpenid, "o1"), key(Unionid, "u1"), key(Phone, "x")],
    )]);
    let p = plan(
        &[
            inc(MpOpenid, "o2", None),
            inc(Unionid, "u2", None),
            inc(Phone, "x", Some("P1")),
        ],
        &profiles,
        &policy(),
    );
    assert_eq!(p.survivor, None);
    assert_eq!(p.attach, vec![0, 1]);
    assert!(p.merges.is_empty());
    assert_eq!(p.refusals[0].other.as_deref(), Some("P1"));
    assert_eq!(p.refusals[0].rule, LinkRule::VerifiedPhone);
    assert_eq!(p.refusals[0].reason, RefusalReason::ConflictingUnionids);
}

#[test]
fn a_blocked_pair_is_refused_and_guards_apply_to_manual_merges() {
    let profiles = BTreeMap::from([
        ("P1".to_string(), vec![key(Unionid, "u1")]),
        ("P2".to_string(), vec![key(MpOpenid, "o2")]),
    ]);
    let ev = [
        inc(MpOpenid, "o2", Some("P2")),
        inc(Unionid, "u1", Some("P1")),
    ];
    let blocked = BTreeSet::from([profile_pair("P2", "P1")]);
    let p = plan_with_blocks(&ev, &profiles, &policy(), &blocked);
    assert!(p.merges.is_empty());
    assert_eq!(p.survivor.as_deref(), Some("P2"));
    assert_eq!(p.refusals[0].reason, RefusalReason::ManuallyUnmerged);
    assert_eq!(p.refusals[0].other.as_deref(), Some("P1"));
    assert_eq!(
        merge_violation(&[key(Unionid, "u1")], &[key(Unionid, "u2")], &policy()),
        Some(RefusalReason::ConflictingUnionids)
    );
    assert_eq!(
        merge_violation(&[key(Unionid, "u1")], &[key(MpOpenid, "o")], &policy()),
        None
    );
}

#[test]
fn a_second_unionid_of_one_namespace_is_not_attached() {
    let profiles = BTreeMap::from([(
        "P1".to_string(),
        vec![key(MpOpenid, "o1"), key(Unionid, "u1")],
    )]);
    let p = plan(
        &[inc(MpOpenid, "o1", Some("P1")), inc(Unionid, "u2", None)],
        &profiles,
        &policy(),
    );
    assert!(p.attach.is_empty());
    assert_eq!(p.refusals[0].reason, RefusalReason::ConflictingUnionids);
}
