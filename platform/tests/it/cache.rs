//! Cache conformance: one suite of checks, run against the in-process cache (moka) and against
//! the real Redis server. Every Redis test writes under its own unique key prefix and deletes
//! everything under it afterwards, also when the check fails.

use std::collections::BTreeSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use platform::cache::{Cache, CacheError, MemoryCache, RedisCache};
use test_support::servers;

/// What a check gets: the cache under test and a second cache of the same backend with another
/// key prefix (for the isolation check).
#[derive(Clone)]
struct Fixture {
    cache: Arc<dyn Cache>,
    other: Arc<dyn Cache>,
    kind: &'static str,
}

const LONG_TTL: Duration = Duration::from_secs(60);

async fn on_memory<F, Fut>(check: F)
where
    F: FnOnce(Fixture) -> Fut,
    Fut: Future<Output = ()>,
{
    let fixture = Fixture {
        cache: Arc::new(MemoryCache::new("cachetest:", 10_000)),
        other: Arc::new(MemoryCache::new("cachetest-other:", 10_000)),
        kind: "memory",
    };
    check(fixture).await;
}

async fn redis_cache() -> RedisCache {
    let url = servers::redis_url();
    let prefix = format!("{}:", servers::unique("cachetest"));
    match RedisCache::connect(&url, &prefix).await {
        Ok(cache) => cache,
        Err(e) => panic!("Redis at {url} is not usable for the cache tests: {e}"),
    }
}

async fn on_redis<F, Fut>(check: F)
where
    F: FnOnce(Fixture) -> Fut,
    Fut: Future<Output = ()>,
{
    let cache = redis_cache().await;
    let other = redis_cache().await;
    let fixture = Fixture {
        cache: Arc::new(cache.clone()),
        other: Arc::new(other.clone()),
        kind: "redis",
    };
    let outcome = AssertUnwindSafe(check(fixture)).catch_unwind().await;
    for c in [&cache, &other] {
        if let Err(e) = c.delete_prefix().await {
            eprintln!("cleaning up Redis prefix {}: {e}", c.key_prefix());
        }
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// One `#[tokio::test]` per check per backend: `memory::<check>` and `redis::<check>`, and
/// `redis_worker::<check>` on a current-thread runtime as an HTTP worker runs one (where `get`
/// and `set` use the thread's own connection).
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    super::on_memory(super::$check).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    super::on_redis(super::$check).await;
                }
            )*
        }
        mod redis_worker {
            $(
                #[tokio::test(flavor = "current_thread")]
                async fn $check() {
                    super::on_redis(super::$check).await;
                }
            )*
        }
    };
}

conformance!(
    round_trip,
    set_many_stores_every_key,
    missing_key_is_none,
    ttl_expiry,
    set_nx_first_wins,
    set_nx_concurrent_exactly_one_wins,
    delete_reports_existence,
    delete_if_eq_only_on_match,
    incr_from_absent,
    incr_accumulates,
    incr_concurrent_is_exact,
    incr_ttl_only_on_creation,
    incr_non_integer_is_value_error,
    prefixes_are_isolated,
    ping_ok,
);

async fn get(cache: &dyn Cache, key: &str) -> Option<Vec<u8>> {
    match cache.get(key).await {
        Ok(v) => v,
        Err(e) => panic!("get {key}: {e}"),
    }
}

async fn round_trip(f: Fixture) {
    let c = &*f.cache;
    c.set("greeting", b"hello", None).await.unwrap();
    assert_eq!(get(c, "greeting").await.as_deref(), Some(&b"hello"[..]));

    c.set("greeting", b"replaced", Some(LONG_TTL))
        .await
        .unwrap();
    assert_eq!(get(c, "greeting").await.as_deref(), Some(&b"replaced"[..]));

    let binary = [0u8, 255, 1, 254, b'\n', 0];
    c.set("binary", &binary, None).await.unwrap();
    assert_eq!(get(c, "binary").await.as_deref(), Some(&binary[..]));

    c.set("empty", b"", None).await.unwrap();
    assert_eq!(get(c, "empty").await.as_deref(), Some(&b""[..]));

    c.set("unicode:键", "值".as_bytes(), None).await.unwrap();
    assert_eq!(get(c, "unicode:键").await.as_deref(), Some("值".as_bytes()));
}

async fn set_many_stores_every_key(f: Fixture) {
    let c = &*f.cache;
    c.set_many(&[], b"x", None).await.unwrap();
    c.set("b", b"old", None).await.unwrap();
    let keys: Vec<String> = (0..600).map(|i| format!("many:{i}")).collect();
    let mut refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    refs.push("b");
    c.set_many(&refs, b"1", Some(Duration::from_millis(300)))
        .await
        .unwrap();
    for k in &refs {
        assert_eq!(get(c, k).await.as_deref(), Some(&b"1"[..]), "{k}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        get(c, "many:0").await,
        None,
        "each key expires after the ttl"
    );
    assert_eq!(
        get(c, "b").await,
        None,
        "an existing key is replaced, ttl included"
    );
}

async fn missing_key_is_none(f: Fixture) {
    assert_eq!(get(&*f.cache, "never-written").await, None);
}

async fn ttl_expiry(f: Fixture) {
    let c = &*f.cache;
    c.set("short", b"v", Some(Duration::from_millis(150)))
        .await
        .unwrap();
    assert!(c
        .set_nx("lock", b"a", Duration::from_millis(150))
        .await
        .unwrap());
    // A plain set without TTL replaces an earlier TTL.
    c.set("made-permanent", b"v", Some(Duration::from_millis(150)))
        .await
        .unwrap();
    c.set("made-permanent", b"w", None).await.unwrap();
    c.set("permanent", b"v", None).await.unwrap();
    assert_eq!(get(c, "short").await.as_deref(), Some(&b"v"[..]));

    tokio::time::sleep(Duration::from_millis(400)).await;

    assert_eq!(get(c, "short").await, None, "entry outlived its TTL");
    assert!(
        !c.delete("short").await.unwrap(),
        "expired entry counted as existing"
    );
    assert_eq!(get(c, "lock").await, None, "lock outlived its TTL");
    assert!(
        c.set_nx("lock", b"b", LONG_TTL).await.unwrap(),
        "an expired lock must be free to take"
    );
    assert_eq!(get(c, "lock").await.as_deref(), Some(&b"b"[..]));
    assert_eq!(get(c, "made-permanent").await.as_deref(), Some(&b"w"[..]));
    assert_eq!(get(c, "permanent").await.as_deref(), Some(&b"v"[..]));
}

async fn set_nx_first_wins(f: Fixture) {
    let c = &*f.cache;
    assert!(c.set_nx("nx", b"first", LONG_TTL).await.unwrap());
    assert!(!c.set_nx("nx", b"second", LONG_TTL).await.unwrap());
    assert_eq!(get(c, "nx").await.as_deref(), Some(&b"first"[..]));

    // A key written by plain set also blocks set_nx.
    c.set("plain", b"x", None).await.unwrap();
    assert!(!c.set_nx("plain", b"y", LONG_TTL).await.unwrap());
    assert_eq!(get(c, "plain").await.as_deref(), Some(&b"x"[..]));
}

async fn set_nx_concurrent_exactly_one_wins(f: Fixture) {
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let c = f.cache.clone();
            tokio::spawn(async move {
                let me = format!("owner-{i}");
                let won = c.set_nx("contended", me.as_bytes(), LONG_TTL).await;
                (me, won)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (me, won) = t.await.unwrap();
        if won.unwrap() {
            winners.push(me);
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(
        get(&*f.cache, "contended").await.as_deref(),
        Some(winners[0].as_bytes())
    );
}

async fn delete_reports_existence(f: Fixture) {
    let c = &*f.cache;
    assert!(!c.delete("gone").await.unwrap());
    c.set("gone", b"v", None).await.unwrap();
    assert!(c.delete("gone").await.unwrap());
    assert_eq!(get(c, "gone").await, None);
    assert!(!c.delete("gone").await.unwrap());
}

async fn delete_if_eq_only_on_match(f: Fixture) {
    let c = &*f.cache;
    assert!(!c.delete_if_eq("lock", b"owner-a").await.unwrap());

    assert!(c.set_nx("lock", b"owner-a", LONG_TTL).await.unwrap());
    assert!(!c.delete_if_eq("lock", b"owner-b").await.unwrap());
    assert!(!c.delete_if_eq("lock", b"owner-").await.unwrap());
    assert!(!c.delete_if_eq("lock", b"owner-aa").await.unwrap());
    assert_eq!(get(c, "lock").await.as_deref(), Some(&b"owner-a"[..]));

    assert!(c.delete_if_eq("lock", b"owner-a").await.unwrap());
    assert_eq!(get(c, "lock").await, None);
    assert!(!c.delete_if_eq("lock", b"owner-a").await.unwrap());
}

async fn incr_from_absent(f: Fixture) {
    let c = &*f.cache;
    assert_eq!(c.incr("counter", 5, LONG_TTL).await.unwrap(), 5);
    assert_eq!(get(c, "counter").await.as_deref(), Some(&b"5"[..]));
    assert_eq!(c.incr("negative", -3, LONG_TTL).await.unwrap(), -3);
}

async fn incr_accumulates(f: Fixture) {
    let c = &*f.cache;
    assert_eq!(c.incr("counter", 1, LONG_TTL).await.unwrap(), 1);
    assert_eq!(c.incr("counter", 2, LONG_TTL).await.unwrap(), 3);
    assert_eq!(c.incr("counter", -4, LONG_TTL).await.unwrap(), -1);
    assert_eq!(get(c, "counter").await.as_deref(), Some(&b"-1"[..]));

    // A value written as decimal text counts like one incr wrote.
    c.set("preset", b"40", None).await.unwrap();
    assert_eq!(c.incr("preset", 2, LONG_TTL).await.unwrap(), 42);
}

async fn incr_concurrent_is_exact(f: Fixture) {
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let c = f.cache.clone();
            tokio::spawn(async move { c.incr("hits", 1, LONG_TTL).await })
        })
        .collect();
    let mut seen = BTreeSet::new();
    for t in tasks {
        seen.insert(t.await.unwrap().unwrap());
    }
    assert_eq!(seen, (1..=100).collect::<BTreeSet<i64>>());
    assert_eq!(get(&*f.cache, "hits").await.as_deref(), Some(&b"100"[..]));
}

async fn incr_ttl_only_on_creation(f: Fixture) {
    let c = &*f.cache;
    assert_eq!(
        c.incr("window", 1, Duration::from_millis(300))
            .await
            .unwrap(),
        1
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    // A later incr with a long TTL must not extend the window.
    assert_eq!(c.incr("window", 1, LONG_TTL).await.unwrap(), 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(c, "window").await, None, "counter outlived its window");
    assert_eq!(
        c.incr("window", 1, Duration::from_millis(300))
            .await
            .unwrap(),
        1,
        "a new window starts from zero"
    );
}

async fn incr_non_integer_is_value_error(f: Fixture) {
    let c = &*f.cache;
    for (key, value) in [("text", &b"abc"[..]), ("float", b"1.5"), ("empty", b"")] {
        c.set(key, value, None).await.unwrap();
        match c.incr(key, 1, LONG_TTL).await {
            Err(CacheError::Value(_)) => {}
            other => panic!("incr on {value:?}: expected CacheError::Value, got {other:?}"),
        }
        assert_eq!(
            get(c, key).await.as_deref(),
            Some(value),
            "value was changed"
        );
    }
    c.set("max", i64::MAX.to_string().as_bytes(), None)
        .await
        .unwrap();
    match c.incr("max", 1, LONG_TTL).await {
        Err(CacheError::Value(_)) => {}
        other => panic!("incr past i64::MAX: expected CacheError::Value, got {other:?}"),
    }
}

async fn prefixes_are_isolated(f: Fixture) {
    let (a, b) = (&*f.cache, &*f.other);
    a.set("shared-name", b"from-a", None).await.unwrap();
    assert_eq!(get(b, "shared-name").await, None);

    assert!(b.set_nx("shared-name", b"from-b", LONG_TTL).await.unwrap());
    assert_eq!(get(a, "shared-name").await.as_deref(), Some(&b"from-a"[..]));
    assert_eq!(get(b, "shared-name").await.as_deref(), Some(&b"from-b"[..]));

    assert_eq!(a.incr("count", 1, LONG_TTL).await.unwrap(), 1);
    assert_eq!(b.incr("count", 1, LONG_TTL).await.unwrap(), 1);

    assert!(!b.delete_if_eq("shared-name", b"from-a").await.unwrap());
    assert!(b.delete("shared-name").await.unwrap());
    assert_eq!(get(a, "shared-name").await.as_deref(), Some(&b"from-a"[..]));
}

async fn ping_ok(f: Fixture) {
    f.cache.ping().await.unwrap();
    assert_eq!(f.cache.kind(), f.kind);
}

/// A cache made on the process's main runtime outlives the worker runtimes that used it (as
/// HTTP workers restart): a thread's connection whose runtime is gone (its driver went with it)
/// is replaced, and no call fails meanwhile.
#[test]
fn redis_thread_connections_outlive_their_runtime() {
    let main = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let cache = main.block_on(redis_cache());
    let current = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    };
    let first = current();
    first.block_on(async {
        cache.set("k", b"1", Some(LONG_TTL)).await.unwrap();
        assert_eq!(get(&cache, "k").await.as_deref(), Some(&b"1"[..]));
    });
    drop(first);
    for round in 0..3u8 {
        let rt = current();
        rt.block_on(async {
            for i in 0..20u8 {
                let v = [round, i];
                cache.set("k", &v, Some(LONG_TTL)).await.unwrap();
                assert_eq!(get(&cache, "k").await.as_deref(), Some(&v[..]));
            }
            // Past the retry pause, this runtime gets a connection of its own again.
            tokio::time::sleep(Duration::from_millis(1_100)).await;
            cache.set("k", b"again", Some(LONG_TTL)).await.unwrap();
            assert_eq!(get(&cache, "k").await.as_deref(), Some(&b"again"[..]));
        });
    }
    main.block_on(async {
        cache.delete_prefix().await.unwrap();
    });
}

/// An unreachable Redis fails `connect` promptly, with an error naming Redis.
#[tokio::test]
async fn redis_connect_failure_names_redis() {
    let started = std::time::Instant::now();
    let result = RedisCache::connect("redis://127.0.0.1:1", "cachetest-unreachable:").await;
    match result {
        Err(CacheError::Unavailable(msg)) => assert!(msg.contains("Redis"), "{msg}"),
        Err(other) => panic!("expected CacheError::Unavailable, got {other:?}"),
        Ok(_) => panic!("connected to a closed port"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "connect took {:?} to give up",
        started.elapsed()
    );
}
