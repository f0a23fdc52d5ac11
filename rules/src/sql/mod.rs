//! The SQL compiler: an [`Expanded`] condition becomes one `SELECT profile_id` over the facts
//! tables of [`crate::schema`] that selects exactly the profiles [`crate::evaluate`] matches.
//!
//! Shape (measured best on MariaDB, see perf-notes): every leaf is an index-only scan of one facts
//! table; `and` is INTERSECT, `or` is UNION, negative parts are EXCEPT. Negations are pushed into
//! their parents (`a AND NOT b` = `a EXCEPT b`) so the universe (`facts_profile`) is only scanned
//! when the whole condition is negative. A compound part used inside another is wrapped in a
//! derived table (`SELECT tN.profile_id FROM (…) AS tN`): SQLite does not accept parenthesised
//! compound members and MySQL ranks INTERSECT above UNION/EXCEPT, so every chain holds one
//! operator or INTERSECTs followed by EXCEPTs, which both read left to right.
//!
//! The SQL is what MySQL 8, MariaDB ≥ 10.6, TiDB and SQLite all run; relative dates and windows
//! are bound as literal values computed from the [`CompileCtx`].

pub mod breakdown;
mod complement;
mod counts;

pub use complement::{count_query, is_negative};

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use sea_query::{
    Alias, Asterisk, Expr, LikeExpr, MysqlQueryBuilder, Order, Query, SelectStatement, SimpleExpr,
    SqliteQueryBuilder, UnionType, Value, Values,
};

use proto::condition::{Condition, TagLeaf, TagOp, WechatLeaf};

use crate::eval::{wechat_relation, EvalCtx};
use crate::expand::Expanded;
use crate::facts::VType;
use crate::resolve::{property_plan, Cmp, Col, LikeKind, PropertyPlan, Scalar, Test};
use crate::schema::{FactsCol as C, FactsTable as T};
use crate::score::score_model;

/// The SQL dialect to render for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// MySQL 8, MariaDB, TiDB.
    MySql,
    Sqlite,
}

/// Profile ids `after < id <= until` (byte order), for batched backfills.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdRange {
    pub after: Option<String>,
    pub until: Option<String>,
}

/// Which profiles a compiled query may return.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Restrict {
    /// Every profile of the tenant.
    #[default]
    All,
    /// A range of profile ids.
    Range(IdRange),
    /// These profiles only (real-time membership checks of a few). Every id is bound once per
    /// scan of a facts table, so keep the list to tens of ids; use ranges for batches.
    Ids(Vec<String>),
}

/// What a query is compiled for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileCtx {
    pub tenant_id: String,
    /// See [`EvalCtx::now`].
    pub now: DateTime<Utc>,
    /// See [`EvalCtx::today`].
    pub today: NaiveDate,
    /// The day `facts_behaviour_rolling` was last rolled to; it is read only when this is
    /// `today`, otherwise the daily buckets are summed.
    pub rolling_as_of: Option<NaiveDate>,
    pub restrict: Restrict,
}

impl CompileCtx {
    /// All profiles of `tenant_id` at `at`, without rolling counters.
    pub fn new(tenant_id: impl Into<String>, at: &EvalCtx) -> Self {
        CompileCtx {
            tenant_id: tenant_id.into(),
            now: at.now,
            today: at.today,
            rolling_as_of: None,
            restrict: Restrict::All,
        }
    }
}

/// The distinct `profile_id`s of the tenant that match `condition`.
pub fn compile(condition: &Expanded, ctx: &CompileCtx) -> SelectStatement {
    let mut c = Compiler { ctx, aliases: 0 };
    let set = c.node(condition.root());
    match set {
        Set::Pos(p) if p.compound || p.unique => p.stmt,
        Set::Pos(mut p) => p.stmt.distinct().to_owned(),
        Set::Neg(p) => {
            let universe = Part::leaf(c.base(T::FactsProfile));
            c.chain(universe, vec![(UnionType::Except, p)]).stmt
        }
    }
}

/// `SELECT COUNT(*)` of a compiled query.
pub fn count_statement(compiled: &SelectStatement) -> SelectStatement {
    Query::select()
        .expr(Expr::col(Asterisk).count())
        .from_subquery(compiled.clone(), Alias::new("m"))
        .to_owned()
}

/// The first `limit` profile ids of a compiled query, in byte order.
pub fn sample_statement(compiled: &SelectStatement, limit: u64) -> SelectStatement {
    let m = Alias::new("m");
    Query::select()
        .expr_as(Expr::col((m.clone(), C::ProfileId)), C::ProfileId)
        .from_subquery(compiled.clone(), m.clone())
        .order_by((m, C::ProfileId), Order::Asc)
        .limit(limit)
        .to_owned()
}

/// The first `limit` profile ids of a compiled query, in byte order, each with the number of
/// profiles the query selects (column [`SAMPLE_TOTAL`], a window count over the whole result):
/// a preview's count and sample from one evaluation of the condition. No row when it selects
/// none.
pub fn sample_with_count(compiled: &SelectStatement, limit: u64) -> SelectStatement {
    let mut q = sample_statement(compiled, limit);
    q.expr_window_as(
        Expr::col(Asterisk).count(),
        sea_query::WindowStatement::new(),
        Alias::new(SAMPLE_TOTAL),
    );
    q
}

/// The column of [`sample_with_count`] holding the result's size.
pub const SAMPLE_TOTAL: &str = "total";

/// Renders a statement with placeholders and its values.
pub fn build(stmt: &SelectStatement, backend: Backend) -> (String, Values) {
    match backend {
        Backend::MySql => stmt.build(MysqlQueryBuilder),
        Backend::Sqlite => stmt.build(SqliteQueryBuilder),
    }
}

/// A select of one `profile_id` column; `compound` when it is a UNION / INTERSECT / EXCEPT.
struct Part {
    stmt: SelectStatement,
    compound: bool,
    /// Returns each profile at most once (a unique key or a GROUP BY per profile): no DISTINCT
    /// needed on top, which on MySQL would materialise the result in a temporary table.
    unique: bool,
    /// Expected size class, smallest first, for ordering the members of an INTERSECT (the first
    /// member is materialised, the others probe it): tags, relationships, properties, behaviour.
    rank: u8,
}

impl Part {
    fn leaf(stmt: SelectStatement) -> Part {
        Part {
            stmt,
            compound: false,
            unique: false,
            rank: 2,
        }
    }

    fn unique(mut self) -> Part {
        self.unique = true;
        self
    }

    fn rank(mut self, rank: u8) -> Part {
        self.rank = rank;
        self
    }
}

/// A compiled node: the profiles selected (`Pos`) or every profile except those (`Neg`).
enum Set {
    Pos(Part),
    Neg(Part),
}

impl Set {
    /// The profiles of `part`, or (`negated`) every profile but those.
    fn of(part: Part, negated: bool) -> Set {
        if negated {
            Set::Neg(part)
        } else {
            Set::Pos(part)
        }
    }
}

struct Compiler<'a> {
    ctx: &'a CompileCtx,
    aliases: usize,
}

impl Compiler<'_> {
    fn node(&mut self, c: &Condition) -> Set {
        match c {
            Condition::And { children } => {
                let (mut pos, neg) = self.split(children);
                pos.sort_by_key(|p| p.rank);
                let mut pos = pos.into_iter();
                match pos.next() {
                    Some(first) => {
                        let rest = pos
                            .map(|p| (UnionType::Intersect, p))
                            .chain(neg.into_iter().map(|n| (UnionType::Except, n)))
                            .collect();
                        Set::Pos(self.chain(first, rest))
                    }
                    None => self.all_of(UnionType::Distinct, neg, Set::Neg),
                }
            }
            Condition::Or { children } => {
                let (pos, neg) = self.split(children);
                let mut neg = neg.into_iter();
                match neg.next() {
                    None => self.all_of(UnionType::Distinct, pos, Set::Pos),
                    // ∪P ∪ ∪(U − N) = U − (∩N − ∪P)
                    Some(first) => {
                        let rest = neg
                            .map(|n| (UnionType::Intersect, n))
                            .chain(pos.into_iter().map(|p| (UnionType::Except, p)))
                            .collect();
                        Set::Neg(self.chain(first, rest))
                    }
                }
            }
            Condition::Not { child } => match self.node(child) {
                Set::Pos(p) => Set::Neg(p),
                Set::Neg(p) => Set::Pos(p),
            },
            Condition::Property(p) => {
                self.property(&property_plan(p, self.ctx.now, self.ctx.today))
            }
            Condition::Source(s) => self.property(&property_plan(
                &s.to_property(),
                self.ctx.now,
                self.ctx.today,
            )),
            Condition::Behaviour(b) => self.behaviour(b),
            Condition::Distinct(d) => self.distinct(d),
            Condition::Tag(t) => self.tag(t),
            Condition::Wechat(w) => Set::Pos(Part::leaf(self.wechat(w)).rank(1)),
            // An `Expanded` holds no references; an unresolved one matches nothing.
            Condition::Rule { .. } => Set::Pos(Part::leaf(self.never())),
        }
    }

    fn split(&mut self, children: &[Condition]) -> (Vec<Part>, Vec<Part>) {
        let (mut pos, mut neg) = (Vec::new(), Vec::new());
        for c in children {
            match self.node(c) {
                Set::Pos(p) => pos.push(p),
                Set::Neg(n) => neg.push(n),
            }
        }
        (pos, neg)
    }

    /// Parts joined by one operator (an empty list selects nothing).
    fn all_of(&mut self, op: UnionType, parts: Vec<Part>, wrap: fn(Part) -> Set) -> Set {
        let mut parts = parts.into_iter();
        let first = match parts.next() {
            Some(p) => p,
            None => Part::leaf(self.never()),
        };
        let rest = parts.map(|p| (op, p)).collect();
        wrap(self.chain(first, rest))
    }

    /// `first op1 p1 op2 p2 …`, compound members wrapped in derived tables.
    fn chain(&mut self, first: Part, rest: Vec<(UnionType, Part)>) -> Part {
        if rest.is_empty() {
            return first;
        }
        // Expected size class of the result: a union is as large as its largest member, an
        // intersection (and what is left after excepts) as small as its smallest positive one.
        let union = rest.iter().all(|(op, _)| *op == UnionType::Distinct);
        let mut rank = first.rank;
        let mut head = self.member(first);
        for (op, p) in rest {
            rank = match op {
                UnionType::Distinct if union => rank.max(p.rank),
                UnionType::Intersect => rank.min(p.rank),
                _ => rank,
            };
            let m = self.member(p);
            head.union(op, m);
        }
        Part {
            stmt: head,
            compound: true,
            unique: true,
            rank,
        }
    }

    fn member(&mut self, p: Part) -> SelectStatement {
        if !p.compound {
            return p.stmt;
        }
        self.aliases += 1;
        let a = Alias::new(format!("t{}", self.aliases));
        Query::select()
            .expr_as(Expr::col((a.clone(), C::ProfileId)), C::ProfileId)
            .from_subquery(p.stmt, a)
            .to_owned()
    }

    /// `SELECT t.profile_id AS profile_id FROM t WHERE tenant_id = ? [AND restriction]`.
    fn base(&self, t: T) -> SelectStatement {
        let mut q = Query::select();
        q.expr_as(Expr::col((t, C::ProfileId)), C::ProfileId)
            .from(t)
            .and_where(Expr::col((t, C::TenantId)).eq(self.ctx.tenant_id.as_str()));
        let id = || Expr::col((t, C::ProfileId));
        match &self.ctx.restrict {
            Restrict::All => {}
            Restrict::Range(r) => {
                if let Some(after) = &r.after {
                    q.and_where(id().gt(after.as_str()));
                }
                if let Some(until) = &r.until {
                    q.and_where(id().lte(until.as_str()));
                }
            }
            Restrict::Ids(ids) => {
                q.and_where(id().is_in(ids.iter().map(String::as_str)));
            }
        }
        q
    }

    /// A select of no profile.
    fn never(&self) -> SelectStatement {
        self.base(T::FactsProfile)
            .and_where(Expr::val(1).eq(0))
            .to_owned()
    }

    fn property(&self, plan: &PropertyPlan) -> Set {
        if let Some(model) = score_model(plan.key()) {
            return self.score(model, plan);
        }
        let t = T::FactsProperty;
        let mut q = self.base(t);
        q.and_where(Expr::col((t, C::Pkey)).eq(plan.key()));
        if let Some((vtype, test)) = plan.typed() {
            q.and_where(Expr::col((t, C::Vtype)).eq(vtype.code()))
                .and_where(test_expr(t, test));
        }
        Set::of(Part::leaf(q), plan.negated())
    }

    /// A leaf over `score.<model>`: the model's row in `facts_score`, its value computed at
    /// `now` exactly as [`crate::ScoreFold::value_at`] computes it (a number: tests of another
    /// type never pass).
    fn score(&self, model: &str, plan: &PropertyPlan) -> Set {
        let t = T::FactsScore;
        let mut q = self.base(t);
        q.and_where(Expr::col((t, C::Pkey)).eq(model));
        if let Some((vtype, test)) = plan.typed() {
            q.and_where(match vtype {
                VType::Num => value_test(test, |_| score_value(self.ctx.now), never_expr()),
                _ => never_expr(),
            });
        }
        Set::of(Part::leaf(q).unique(), plan.negated())
    }

    /// `facts_event.event_id [NOT] IN (events whose property passes)`.
    fn event_filter(&self, plan: &PropertyPlan) -> SimpleExpr {
        let t = T::FactsEventProp;
        let mut sub = Query::select();
        sub.column((t, C::EventId))
            .from(t)
            .and_where(Expr::col((t, C::TenantId)).eq(self.ctx.tenant_id.as_str()))
            .and_where(Expr::col((t, C::Pkey)).eq(plan.key()));
        if let Some((vtype, test)) = plan.typed() {
            sub.and_where(Expr::col((t, C::Vtype)).eq(vtype.code()))
                .and_where(test_expr(t, test));
        }
        let negated = plan.negated();
        let id = Expr::col((T::FactsEvent, C::EventId));
        if negated {
            id.not_in_subquery(sub.to_owned())
        } else {
            id.in_subquery(sub.to_owned())
        }
    }

    fn tag(&self, leaf: &TagLeaf) -> Set {
        let t = T::FactsTag;
        let tags: BTreeSet<&str> = leaf.tags.iter().map(String::as_str).collect();
        let any = || {
            self.base(t)
                .and_where(Expr::col((t, C::TagId)).is_in(tags.iter().copied()))
                .to_owned()
        };
        // One tag: the key (tenant, tag, profile) makes each profile appear once.
        let part = |q| {
            let p = Part::leaf(q).rank(0);
            if tags.len() == 1 {
                p.unique()
            } else {
                p
            }
        };
        match leaf.op {
            TagOp::Has | TagOp::HasAny => Set::Pos(part(any())),
            TagOp::HasNone => Set::Neg(part(any())),
            TagOp::HasAll => {
                let n = i64::try_from(tags.len()).unwrap_or(i64::MAX);
                let q = if tags.is_empty() {
                    self.never()
                } else {
                    any()
                        .group_by_col((t, C::ProfileId))
                        .and_having(Expr::col(Asterisk).count().eq(n))
                        .to_owned()
                };
                Set::Pos(Part::leaf(q).unique().rank(0))
            }
        }
    }

    fn wechat(&self, w: &WechatLeaf) -> SelectStatement {
        let t = T::FactsRelation;
        let (kind, ns, reference) = wechat_relation(w);
        let mut q = self.base(t);
        q.and_where(Expr::col((t, C::Kind)).eq(kind.as_str()));
        if let Some(ns) = ns {
            q.and_where(Expr::col((t, C::Ns)).eq(ns));
        }
        if let Some(r) = reference {
            q.and_where(Expr::col((t, C::Ref)).eq(r));
        }
        q
    }
}

fn scalar(v: &Scalar) -> Value {
    match v {
        Scalar::S(s) => s.as_str().into(),
        Scalar::N(n) => (*n).into(),
    }
}

/// The value of a `facts_score` row at `now`: `n + decaying × 0.5^(elapsed × rate)`, `elapsed`
/// the whole seconds from `folded_at` to `now` (0 when the fold is newer) — what
/// [`crate::ScoreFold::value_at`] computes, in the same order of operations.
pub fn score_value(now: DateTime<Utc>) -> SimpleExpr {
    let t = T::FactsScore;
    let col = |c: C| -> SimpleExpr { Expr::col((t, c)).into() };
    let now = now.timestamp();
    Expr::cust_with_exprs(
        "? + ? * POW(0.5, CASE WHEN ? < ? THEN (? - ?) * ? ELSE 0 END)",
        [
            col(C::N),
            col(C::Decaying),
            col(C::FoldedAt),
            Expr::val(now).into(),
            Expr::val(now).into(),
            col(C::FoldedAt),
            col(C::Rate),
        ],
    )
}

/// The test of one value row of `t` (`facts_property` or `facts_event_prop`).
fn test_expr(t: T, test: &Test) -> SimpleExpr {
    let col = |c: Col| -> SimpleExpr {
        Expr::col((
            t,
            match c {
                Col::S => C::S,
                Col::N => C::N,
            },
        ))
        .into()
    };
    let fold = Expr::col((t, C::SFold)).into();
    value_test(test, col, fold)
}

/// A condition that never holds.
fn never_expr() -> SimpleExpr {
    Expr::val(1).eq(0)
}

/// `test` over the value `col` gives for a column kind (`fold`: the case-folded string, for
/// LIKE tests).
fn value_test(test: &Test, col: impl Fn(Col) -> SimpleExpr, fold: SimpleExpr) -> SimpleExpr {
    let col = |c: Col| Expr::expr(col(c));
    match test {
        Test::Cmp(c, op, v) => {
            let (e, v) = (col(*c), scalar(v));
            match op {
                Cmp::Eq => e.eq(v),
                Cmp::Lt => e.lt(v),
                Cmp::Lte => e.lte(v),
                Cmp::Gt => e.gt(v),
                Cmp::Gte => e.gte(v),
            }
        }
        Test::Between(c, lo, hi) => col(*c).between(scalar(lo), scalar(hi)),
        Test::In(c, vs) => col(*c).is_in(vs.iter().map(scalar)),
        Test::Like(kind, needle) => {
            let n = escape_like(needle);
            let pattern = match kind {
                LikeKind::Contains => format!("%{n}%"),
                LikeKind::StartsWith => format!("{n}%"),
                LikeKind::EndsWith => format!("%{n}"),
            };
            Expr::expr(fold).like(LikeExpr::new(pattern).escape(LIKE_ESCAPE))
        }
        Test::Never => never_expr(),
    }
}

/// The LIKE escape character: not a backslash, whose meaning in string literals depends on the
/// MySQL `NO_BACKSLASH_ESCAPES` mode.
const LIKE_ESCAPE: char = '!';

/// `needle` with `%`, `_` and the escape character matching themselves.
fn escape_like(needle: &str) -> String {
    let mut out = String::with_capacity(needle.len());
    for ch in needle.chars() {
        if matches!(ch, '%' | '_' | LIKE_ESCAPE) {
            out.push(LIKE_ESCAPE);
        }
        out.push(ch);
    }
    out
}
