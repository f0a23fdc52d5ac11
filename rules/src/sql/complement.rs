//! Counting without scanning the universe: the number of profiles a condition matches as one
//! scalar statement, with "everyone except a broad set" counted by subtraction instead of a set
//! difference against every profile of the tenant.
//!
//! A condition that compiles to a negative set `U − X` (a NOT, an OR with a negative child, a
//! "did not do" leaf) is counted as `|U| − |X|`: the universe is an index count, and `X` is what
//! the negation excepts. When `X` is itself a difference — an OR with positive children `P` next
//! to negative ones `N`, `X = ∩N − ∪P` — it is counted as `|∩N| − |∩N ∩ ∪P|` (inclusion–exclusion),
//! so no operand is ever the complement of a broad set: each is a leaf's index range or an
//! intersection. Measured in the tagging benchmark (README): the broad OR / NOT preview was a
//! `U EXCEPT (A EXCEPT B)` over a million ids.
//!
//! Every other shape is counted as the compiled set is ([`super::count_statement`]). The result
//! equals the size of [`super::compile`]'s set; the evaluator-vs-SQL property test checks both.

use sea_query::{Alias, Expr, Query, SelectStatement, SimpleExpr, UnionType};

use proto::condition::Condition;

use super::{count_statement, CompileCtx, Compiler, Part, Set};
use crate::expand::Expanded;
use crate::schema::FactsTable as T;

/// `SELECT <count> AS n`: how many profiles `condition` matches under `ctx`.
pub fn count_query(condition: &Expanded, ctx: &CompileCtx) -> SelectStatement {
    let mut c = Compiler { ctx, aliases: 0 };
    let n = c.count(condition.root());
    Query::select().expr_as(n, Alias::new("n")).to_owned()
}

/// Does `condition` compile to "every profile except a set" (a NOT, an OR with a negative
/// part, a "did not do" leaf)? Such a result is dense: its first profiles in byte order are
/// found in the first few thousand ids.
pub fn is_negative(condition: &Expanded, ctx: &CompileCtx) -> bool {
    let mut c = Compiler { ctx, aliases: 0 };
    matches!(c.node(condition.root()), Set::Neg(_))
}

fn scalar(stmt: SelectStatement) -> SimpleExpr {
    SimpleExpr::SubQuery(None, Box::new(stmt.into_sub_query_statement()))
}

impl Compiler<'_> {
    /// `(SELECT COUNT(*) …)` of a compiled positive part.
    fn count_of(&mut self, mut p: Part) -> SimpleExpr {
        let stmt = if p.compound || p.unique {
            p.stmt
        } else {
            p.stmt.distinct().to_owned()
        };
        scalar(count_statement(&stmt))
    }

    fn universe_count(&mut self) -> SimpleExpr {
        let u = self.base(T::FactsProfile);
        scalar(count_statement(&u))
    }

    /// How many profiles `c` matches.
    fn count(&mut self, c: &Condition) -> SimpleExpr {
        match self.node(c) {
            Set::Pos(p) => self.count_of(p),
            Set::Neg(excepted) => {
                let x = self.count_excepted(c, excepted);
                Expr::expr(self.universe_count()).sub(x)
            }
        }
    }

    /// `|X|` of a negative `c = U − X`, `excepted` its compiled `X`.
    fn count_excepted(&mut self, c: &Condition, excepted: Part) -> SimpleExpr {
        let Condition::Or { children } = c else {
            return self.count_of(excepted);
        };
        // X = ∩N − ∪P: |∩N| − |∩N ∩ ∪P|.
        let (pos, neg) = self.split(children);
        if pos.is_empty() {
            return self.count_of(excepted);
        }
        let with_pos = {
            let union = self.all_of(UnionType::Distinct, pos, Set::Pos);
            let Set::Pos(union) = union else {
                unreachable!("all_of wraps in Pos")
            };
            // The positive side first: an INTERSECT materialises its first member and probes
            // the others, and what a broad negation leaves out is the wide side (measured: the
            // benchmark's overlap takes 85 ms this way round, 217 ms the other).
            let rest = neg.into_iter().map(|p| (UnionType::Intersect, p)).collect();
            self.chain(union, rest)
        };
        let (_, neg_again) = self.split(children);
        let all_neg = self.all_of(UnionType::Intersect, neg_again, Set::Pos);
        let Set::Pos(all_neg) = all_neg else {
            unreachable!("all_of wraps in Pos")
        };
        let whole = self.count_of(all_neg);
        let overlap = self.count_of(with_pos);
        Expr::expr(whole).sub(overlap)
    }
}
