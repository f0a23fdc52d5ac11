//! Arbitrary bytes as a condition document: parsing and validation never panic; whatever
//! validates also expands, compiles to SQL for both backends, evaluates on empty facts and
//! reports its dependencies and next expiry without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rules::sql::{self, Backend, CompileCtx};
use rules::{EvalCtx, Limits, NoRules, ProfileFacts};

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok((_, expanded)) = rules::parse_expanded(&doc, &Limits::default(), &NoRules) else {
        return;
    };
    let at = EvalCtx {
        now: chrono::DateTime::from_timestamp(1_780_000_000, 0).expect("a time"),
        today: chrono::NaiveDate::from_ymd_opt(2026, 5, 28).expect("a day"),
    };
    let facts = ProfileFacts::new("p");
    let _ = rules::evaluate(&expanded, &facts, &at);
    let _ = rules::next_expiry(&expanded, &facts, &at);
    let _ = expanded.dependencies();
    let stmt = sql::compile(&expanded, &CompileCtx::new("t", &at));
    for b in [Backend::MySql, Backend::Sqlite] {
        let (q, _) = sql::build(&stmt, b);
        assert!(q.starts_with("SELECT"), "{q}");
    }
});
