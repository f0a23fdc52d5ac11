//! Random profiles and condition trees for the rules SQL conformance test: one vocabulary shared
//! by facts and conditions, so that they meet.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use rules::{
    BehaviourLeaf, Condition, CountOp, CountPredicate, CountValue, DaysAgo, DistinctLeaf,
    DistinctOf, EventFact, FactValue, Literal, Operand, ProfileFacts, PropertyOp,
    PropertyPredicate, RelationKind, ScoreFold, SourceField, SourceLeaf, TagLeaf, TagOp, Touch,
    ValueType, WechatLeaf, Window,
};

pub const TENANTS: [(&str, usize); 2] = [("t-rules-a", 70), ("t-rules-b", 30)];

pub fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 6, 15).unwrap()
}

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 15, 10, 0, 0).unwrap()
}

pub fn shift(d: NaiveDate, days: i64) -> NaiveDate {
    d + Duration::days(days)
}

// ---------- vocabulary shared by facts and conditions, so that they meet ----------

pub const STRINGS: &[&str] = &[
    "Shanghai",
    "shanghai",
    "SHANGHAI ",
    "上海",
    "上海市",
    "Ärger",
    "ärger",
    "ŞEHİR",
    "İstanbul",
    "straße",
    "STRASSE",
    "50%_off",
    "50%",
    "a_b",
    "axb",
    "x!y",
    "",
    " ",
    "a",
    "a\t",
    "a ",
    "ΣΑΣ",
    "/cases/one",
    "/cases",
    "/Cases/Two",
    "/about",
];
pub const NEEDLES: &[&str] = &[
    "shang", "HAI", "%", "_", "!", "上", "ä", "İ", "i̇", "ss", "/cases", "", "σ", "a_", "0%", " ",
];
pub const NUMBERS: &[f64] = &[-2.5, -1.0, 0.0, 1.0, 2.0, 2.5, 3.0, 10.0, 100.0, 1e15];
pub const KEYS: &[&str] = &[
    "contact.city",
    "contact.age",
    "contact.vip",
    "contact.birthday",
    "contact.last_seen",
    "contact.tags",
    "source.first.channel",
    "source.latest.level2",
    "lead.stage",
];
/// Lead scores: facts in `facts_score`, read by conditions as `score.<model>`.
pub const MODELS: &[&str] = &["engagement", "fit"];
pub const SCORE_KEYS: &[&str] = &["score.engagement", "score.fit", "score.none"];
pub const EVENT_KEYS: &[&str] = &["page", "amount", "at", "content.tags"];
pub const KINDS: &[&str] = &[
    "track.page_view",
    "oa.message.text",
    "track.form_submit",
    "oa.subscribe",
];
pub const CONTENT_TAGS: &[&str] = &["case_study", "pricing", "2024-01-01"];
pub const TAGS: &[&str] = &["vip", "lead", "cold", "hot", "wx", "Vip"];
pub const APPS: &[&str] = &["wxapp1", "wxapp2"];
pub const CORPS: &[&str] = &["corp1", "corp2"];
pub const REPS: &[&str] = &["rep1", "rep2", "rep3"];
pub const CHATS: &[&str] = &["chat1", "chat2"];

pub fn pick<T: Clone + std::fmt::Debug + 'static>(items: &'static [T]) -> BoxedStrategy<T> {
    proptest::sample::select(items).boxed()
}

pub fn a_date() -> BoxedStrategy<NaiveDate> {
    (-45i64..8).prop_map(|d| shift(today(), d)).boxed()
}

pub fn a_datetime() -> BoxedStrategy<DateTime<Utc>> {
    // Whole days, and a second either side of them, around now.
    (
        -40i64..6,
        prop_oneof![Just(0i64), Just(-1), Just(1), Just(3600)],
    )
        .prop_map(|(d, s)| now() + Duration::days(d) + Duration::seconds(s))
        .boxed()
}

// ---------- facts ----------

pub fn fact_value() -> BoxedStrategy<FactValue> {
    prop_oneof![
        3 => pick(STRINGS).prop_map(FactValue::from_text),
        2 => pick(NUMBERS).prop_map(FactValue::Num),
        1 => any::<bool>().prop_map(FactValue::Bool),
        2 => a_date().prop_map(FactValue::Date),
        2 => a_datetime().prop_map(FactValue::DateTime),
    ]
    .boxed()
}

pub fn values() -> BoxedStrategy<Vec<FactValue>> {
    prop_oneof![2 => Just(Vec::new()), 3 => proptest::collection::vec(fact_value(), 1..4)].boxed()
}

pub fn event() -> impl Strategy<Value = (String, NaiveDate, BTreeMap<String, Vec<FactValue>>)> {
    (
        pick(KINDS),
        -100i64..2,
        proptest::collection::btree_map(pick(EVENT_KEYS), values(), 0..4),
        proptest::sample::subsequence(CONTENT_TAGS, 0..3),
    )
        .prop_map(|(kind, d, props, tags)| {
            let mut props: BTreeMap<String, Vec<FactValue>> =
                props.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            props.remove(rules::CONTENT_TAGS_KEY);
            if !tags.is_empty() {
                props.insert(
                    rules::CONTENT_TAGS_KEY.into(),
                    tags.iter().map(|t| FactValue::Str(t.to_string())).collect(),
                );
            }
            (kind.to_string(), shift(today(), d), props)
        })
}

pub type Buckets = BTreeMap<String, BTreeMap<NaiveDate, i64>>;

/// A score fold: held and decaying parts that meet the thresholds exactly now and then (a
/// half-life of one day, a day ago, halves 2 to exactly 1), folded up to 40 days before now.
pub fn score_fold() -> BoxedStrategy<ScoreFold> {
    (
        pick(&[-1.0, 0.0, 2.0, 10.0]),
        pick(&[0.0, 1.0, 2.0, 3.0, 50.0, -2.0]),
        (-40i64..2, prop_oneof![Just(0i64), Just(-1), Just(7200)]),
        pick(&[None, Some(1.0), Some(7.0), Some(30.0)]),
    )
        .prop_map(|(held, decaying, (d, secs), half_life)| {
            let at = now() + Duration::days(d) + Duration::seconds(secs);
            ScoreFold::new(held, decaying, at, half_life)
        })
        .boxed()
}

/// `p` as the evaluator sees it at `now`: its scores' properties valued then.
pub fn valued_at(p: &ProfileFacts, now: DateTime<Utc>) -> ProfileFacts {
    let mut p = p.clone();
    for (m, f) in p.scores.clone() {
        p.set_score(m, f, now);
    }
    p
}

pub fn profile(id: String) -> impl Strategy<Value = ProfileFacts> {
    let metrics: Vec<String> = KINDS
        .iter()
        .map(|k| rules::event_metric(k))
        .chain(CONTENT_TAGS.iter().map(|t| rules::content_tag_metric(t)))
        .collect();
    let buckets = proptest::collection::btree_map(
        proptest::sample::select(metrics),
        proptest::collection::btree_map(
            (-120i64..3).prop_map(|d| shift(today(), d)),
            0i64..5,
            1..6,
        ),
        0..4,
    );
    (
        proptest::collection::btree_map(pick(KEYS), values(), 0..6),
        proptest::sample::subsequence(TAGS, 0..4),
        proptest::collection::vec((0usize..3, 0usize..2, 0usize..3), 0..4),
        buckets,
        proptest::collection::vec(event(), 0..6),
        proptest::collection::btree_map(pick(MODELS), score_fold(), 0..3),
    )
        .prop_map(
            move |(props, tags, rels, daily, events, scores): (_, _, _, Buckets, _, _)| {
                let mut p = ProfileFacts::new(id.clone());
                for (k, vs) in props {
                    p.set_property(k, vs);
                }
                for (m, f) in scores {
                    p.set_score(m, f, now());
                }
                for t in tags {
                    p.add_tag(t);
                }
                for (kind, ns, r) in rels {
                    match kind {
                        0 => p.add_relation(RelationKind::Oa, APPS[ns], ""),
                        1 => p.add_relation(RelationKind::Follow, CORPS[ns], REPS[r]),
                        _ => p.add_relation(RelationKind::Group, CORPS[ns], CHATS[r % 2]),
                    };
                }
                p.daily = daily;
                for (i, (kind, day, props)) in events.into_iter().enumerate() {
                    // Event ids are UUID-sized too.
                    let mut e = EventFact::new(format!("{}e{i:03x}", &id[..32]), kind, day);
                    e.props = props;
                    p.push_event(e);
                }
                p
            },
        )
}

pub fn population(runner: &mut TestRunner, n: usize) -> Vec<ProfileFacts> {
    (0..n)
        .map(|i| {
            // Ids shared across tenants: the tenant filter must keep them apart.
            let id = format!("0000{i:04x}-7a1e-4c00-8000-{:012x}", i * 7919);
            profile(id).new_tree(runner).unwrap().current()
        })
        .collect()
}

// ---------- conditions ----------

pub fn literal(ty: ValueType, relative_ok: bool) -> BoxedStrategy<Literal> {
    let rel = (-5i64..45).prop_map(|n| Literal::Relative(DaysAgo { days_ago: n }));
    match ty {
        ValueType::String => pick(STRINGS)
            .prop_map(|s| Literal::String(s.into()))
            .boxed(),
        ValueType::Number => prop_oneof![pick(NUMBERS), Just(2.25)]
            .prop_map(Literal::Number)
            .boxed(),
        ValueType::Bool => any::<bool>().prop_map(Literal::Bool).boxed(),
        ValueType::Date => {
            let lit = a_date().prop_map(|d| Literal::String(d.format("%Y-%m-%d").to_string()));
            if relative_ok {
                prop_oneof![lit, rel].boxed()
            } else {
                lit.boxed()
            }
        }
        ValueType::Datetime => {
            let lit = (a_datetime(), prop_oneof![Just(0i32), Just(8)]).prop_map(|(t, off)| {
                let tz = chrono::FixedOffset::east_opt(off * 3600).unwrap();
                Literal::String(t.with_timezone(&tz).to_rfc3339())
            });
            if relative_ok {
                prop_oneof![lit, rel].boxed()
            } else {
                lit.boxed()
            }
        }
    }
}

pub fn ordered(ty: ValueType, a: Literal, b: Literal) -> (Literal, Literal) {
    let key = |l: &Literal| match l {
        Literal::Relative(r) => (1, -r.days_ago as f64, String::new()),
        Literal::Number(n) => (0, *n, String::new()),
        Literal::String(s) if ty == ValueType::Datetime => {
            (0, 0.0, rules::parse_datetime(s).unwrap().to_rfc3339())
        }
        Literal::String(s) => (0, 0.0, s.clone()),
        Literal::Bool(b) => (0, f64::from(u8::from(*b)), String::new()),
    };
    let (ka, kb) = (key(&a), key(&b));
    if ka.0 == kb.0 && (ka.1, &ka.2) > (kb.1, &kb.2) {
        (b, a)
    } else {
        (a, b)
    }
}

pub fn predicate(keys: &'static [&'static str]) -> BoxedStrategy<PropertyPredicate> {
    predicate_of(
        keys,
        &[
            ValueType::String,
            ValueType::Number,
            ValueType::Bool,
            ValueType::Date,
            ValueType::Datetime,
        ],
    )
}

/// A predicate over one of `keys` of one of `types`.
pub fn predicate_of(
    keys: &'static [&'static str],
    types: &'static [ValueType],
) -> BoxedStrategy<PropertyPredicate> {
    (pick(keys), pick(types), any::<proptest::sample::Index>())
        .prop_flat_map(|(key, ty, op_pick)| {
            let ops: Vec<PropertyOp> = PropertyOp::ALL
                .into_iter()
                .filter(|op| rules::op_allowed(ty, *op))
                .collect();
            let op = *op_pick.get(&ops);
            let value: BoxedStrategy<Option<Operand>> = match op {
                PropertyOp::Exists | PropertyOp::Missing => Just(None).boxed(),
                PropertyOp::In | PropertyOp::NotIn => {
                    proptest::collection::vec(literal(ty, false), 1..4)
                        .prop_map(|l| Some(Operand::List(l)))
                        .boxed()
                }
                PropertyOp::Between => (literal(ty, true), literal(ty, true))
                    .prop_map(move |(a, b)| {
                        let (lo, hi) = ordered(ty, a, b);
                        Some(Operand::List(vec![lo, hi]))
                    })
                    .boxed(),
                PropertyOp::Contains | PropertyOp::StartsWith | PropertyOp::EndsWith => {
                    pick(NEEDLES)
                        .prop_map(|s| Some(Operand::One(Literal::String(s.into()))))
                        .boxed()
                }
                _ => literal(ty, true)
                    .prop_map(|l| Some(Operand::One(l)))
                    .boxed(),
            };
            value.prop_map(move |value| PropertyPredicate {
                key: key.to_string(),
                value_type: ty,
                op,
                value,
            })
        })
        .boxed()
}

pub fn count() -> BoxedStrategy<CountPredicate> {
    let ops = vec![
        CountOp::Eq,
        CountOp::Ne,
        CountOp::Gt,
        CountOp::Gte,
        CountOp::Lt,
        CountOp::Lte,
        CountOp::Between,
    ];
    (proptest::sample::select(ops), 0u64..5, 0u64..4)
        .prop_map(|(op, v, w)| CountPredicate {
            op,
            value: if op == CountOp::Between {
                CountValue::Range([v, v + w])
            } else {
                CountValue::One(v)
            },
        })
        .boxed()
}

pub fn window() -> BoxedStrategy<Window> {
    prop_oneof![
        prop_oneof![Just(1u32), Just(7), Just(30), Just(90), 1u32..=365]
            .prop_map(|days| Window::Last { days }),
        (a_date(), 0i64..60).prop_map(|(to, len)| Window::Range {
            from: shift(to, -len),
            to
        }),
        Just(Window::AllTime),
    ]
    .boxed()
}

pub fn behaviour() -> BoxedStrategy<Condition> {
    let target = prop_oneof![
        pick(KINDS).prop_map(|k| (Some(k.to_string()), None)),
        pick(CONTENT_TAGS).prop_map(|t| (None, Some(t.to_string()))),
        (pick(KINDS), pick(CONTENT_TAGS)).prop_map(|(k, t)| (Some(k.into()), Some(t.into()))),
    ];
    let filters = prop_oneof![
        2 => Just(Vec::new()),
        1 => proptest::collection::vec(predicate(EVENT_KEYS), 1..3),
    ];
    (target, filters, count(), window())
        .prop_map(|((event, content_tag), filters, count, window)| {
            Condition::Behaviour(BehaviourLeaf {
                event,
                content_tag,
                filters,
                count,
                window,
            })
        })
        .boxed()
}

pub fn distinct() -> BoxedStrategy<Condition> {
    let of = prop_oneof![
        Just((DistinctOf::ContentTags, None, None)),
        Just((DistinctOf::EventKinds, None, None)),
        (
            pick(&["page", "content.tags", "at"]),
            proptest::option::of(pick(KINDS))
        )
            .prop_map(|(key, kind)| (
                DistinctOf::PropertyValues,
                Some(key.to_string()),
                kind.map(String::from)
            )),
    ];
    (of, count(), window())
        .prop_map(|((of, property, event), count, window)| {
            Condition::Distinct(DistinctLeaf {
                of,
                property,
                event,
                count,
                window,
            })
        })
        .boxed()
}

pub fn leaf() -> BoxedStrategy<Condition> {
    let tag = (
        proptest::sample::select(vec![
            TagOp::Has,
            TagOp::HasAny,
            TagOp::HasAll,
            TagOp::HasNone,
        ]),
        proptest::sample::subsequence(TAGS, 1..4),
    )
        .prop_map(|(op, tags)| {
            let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
            let tags = if op == TagOp::Has {
                tags[..1].to_vec()
            } else {
                tags
            };
            Condition::Tag(TagLeaf { op, tags })
        });
    let opt =
        |items: &'static [&'static str]| proptest::option::of(pick(items).prop_map(String::from));
    let wechat = prop_oneof![
        opt(&["wxapp1", "wxapp2", "wxnone"]).prop_map(|app_id| WechatLeaf::OaSubscribed { app_id }),
        (opt(CORPS), opt(&["rep1", "rep3", "repx"]))
            .prop_map(|(corp_id, user_id)| WechatLeaf::WecomFollowed { corp_id, user_id }),
        (opt(CORPS), opt(CHATS))
            .prop_map(|(corp_id, chat_id)| WechatLeaf::InGroupChat { corp_id, chat_id }),
    ]
    .prop_map(Condition::Wechat);
    let source = (
        prop_oneof![Just(Touch::First), Just(Touch::Latest)],
        prop_oneof![
            Just((SourceField::Channel, None)),
            Just((SourceField::Level, Some(2u8)))
        ],
        prop_oneof![
            Just(PropertyOp::Eq),
            Just(PropertyOp::Ne),
            Just(PropertyOp::Contains),
            Just(PropertyOp::Exists)
        ],
        pick(STRINGS),
    )
        .prop_map(|(touch, (field, level), op, v)| {
            let value = match op {
                PropertyOp::Exists => None,
                _ => Some(Operand::One(Literal::String(v.into()))),
            };
            Condition::Source(SourceLeaf {
                touch,
                field,
                level,
                op,
                value,
            })
        });
    let rule = prop_oneof![Just("r_vip"), Just("r_city")]
        .prop_map(|id| Condition::Rule { rule_id: id.into() });
    prop_oneof![
        4 => predicate(KEYS).prop_map(Condition::Property),
        2 => predicate_of(SCORE_KEYS, &[ValueType::Number]).prop_map(Condition::Property),
        1 => predicate(SCORE_KEYS).prop_map(Condition::Property),
        4 => behaviour(),
        2 => distinct(),
        2 => tag,
        2 => wechat,
        1 => source,
        1 => rule,
    ]
    .boxed()
}

pub fn tree() -> BoxedStrategy<Condition> {
    leaf()
        .prop_recursive(3, 24, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 1..4)
                    .prop_map(|children| Condition::And { children }),
                proptest::collection::vec(inner.clone(), 1..4)
                    .prop_map(|children| Condition::Or { children }),
                inner.prop_map(|c| Condition::Not { child: Box::new(c) }),
            ]
        })
        .boxed()
}

pub fn catalogue() -> BTreeMap<String, Condition> {
    let parse = |v: serde_json::Value| serde_json::from_value::<Condition>(v).unwrap();
    BTreeMap::from([
        (
            "r_vip".to_string(),
            parse(serde_json::json!({"type": "tag", "op": "has_any", "tags": ["vip", "Vip"]})),
        ),
        (
            "r_city".to_string(),
            parse(serde_json::json!({"type": "or", "children": [
                {"type": "property", "key": "contact.city", "value_type": "string",
                 "op": "contains", "value": "shang"},
                {"type": "rule", "rule_id": "r_vip"}]})),
        ),
    ])
}

/// When a case is compiled: (today offset, rolling counters as of today?, restriction pick).
#[derive(Debug, Clone)]
pub struct Case {
    pub tree: Condition,
    pub tenant: usize,
    pub day_offset: i64,
    pub rolling_fresh: bool,
    pub restrict: u8,
    pub bounds: (proptest::sample::Index, proptest::sample::Index),
    pub ids: Vec<usize>,
}

pub fn case() -> impl Strategy<Value = Case> {
    // Single leaves pin down each operator; trees exercise the set algebra.
    let tree = prop_oneof![
        3 => leaf(),
        1 => leaf().prop_map(|c| Condition::Not { child: Box::new(c) }),
        3 => tree(),
    ];
    (
        tree,
        0usize..TENANTS.len(),
        prop_oneof![4 => Just(0i64), 1 => Just(3), 1 => Just(-1)],
        prop_oneof![2 => Just(true), 1 => Just(false)],
        prop_oneof![3 => Just(0u8), 1 => 1u8..4],
        (
            any::<proptest::sample::Index>(),
            any::<proptest::sample::Index>(),
        ),
        proptest::sample::subsequence((0..30).collect::<Vec<usize>>(), 0..6),
    )
        .prop_map(
            |(tree, tenant, day_offset, rolling_fresh, restrict, bounds, ids)| Case {
                tree,
                tenant,
                day_offset,
                rolling_fresh,
                restrict,
                bounds,
                ids,
            },
        )
}
