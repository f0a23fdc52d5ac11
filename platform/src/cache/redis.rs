//! The Redis cache: one [`ConnectionManager`] (multiplexed, reconnecting) shared by every call,
//! every key prefixed with the deployment's key prefix. Compare-and-delete and the counter's
//! "expire only when created" are Lua scripts, so each is one atomic step on the server.
//!
//! `get` and `set` called on a current-thread runtime (an HTTP worker's) go through a connection
//! of that thread instead: its I/O runs on the calling thread, where the shared connection's
//! would wake its driver on another runtime's thread and back for every call — on a busy
//! two-core machine those switches cost the gateway's hot path (a dedupe read before each
//! publish, a write after) more than Redis itself. Both commands are idempotent, so a call whose
//! thread connection failed is sent again on the shared one.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::ConnectionLike;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, RedisResult,
    Script,
};
use thread_local::ThreadLocal;
use tokio::runtime::{Handle, RuntimeFlavor};

use super::{Cache, CacheError};

/// How long one connection attempt may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one command may wait for its reply.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Further connection attempts after a failed one before connecting (or reconnecting) gives up.
const CONNECT_RETRIES: usize = 2;
/// Growth factor of the delay between connection attempts (the first delay is one second).
const RETRY_BACKOFF_FACTOR: u64 = 2;
/// Longest delay between connection attempts, in milliseconds. Without a cap the client's
/// default backoff waits minutes before reporting an unreachable server.
const RETRY_MAX_DELAY_MS: u64 = 1_000;
/// Keys asked for per SCAN step (and deleted per DEL) by [`RedisCache::delete_prefix`].
const SCAN_BATCH: usize = 500;
/// Longest expiry handed to Redis; larger TTLs are capped (Redis rejects expiry times that
/// overflow its clock arithmetic).
const MAX_TTL_MS: u64 = (i64::MAX / 4) as u64;
/// Error code the counter script answers with when the stored value is not an integer.
const NOT_INTEGER_CODE: &str = "SCRMNOTINT";

/// Deletes `KEYS[1]` only while it holds `ARGV[1]`; answers the number of keys removed.
const DELETE_IF_EQ_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
";

/// Adds `ARGV[1]` to `KEYS[1]`; when the key did not exist before, expires it after `ARGV[2]`
/// milliseconds. A stored value that is not an integer (or would overflow) answers an error with
/// the code `SCRMNOTINT`.
const INCR_LUA: &str = r"
local existed = redis.call('EXISTS', KEYS[1])
local n = redis.pcall('INCRBY', KEYS[1], ARGV[1])
if type(n) == 'table' and n.err then
    return redis.error_reply('SCRMNOTINT ' .. n.err)
end
if existed == 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return n
";

/// After a thread's connection failed, calls of that thread use the shared connection for this
/// long before connecting again.
const THREAD_CONN_RETRY: Duration = Duration::from_secs(1);

/// One thread's own connection (see the module docs).
#[derive(Default)]
struct ThreadConn {
    conn: Option<MultiplexedConnection>,
    /// A call of this thread is connecting it (the others meanwhile use the shared one).
    connecting: bool,
    /// Not before this instant after a failure.
    retry_at: Option<Instant>,
}

/// The cache shared by every process of a deployment.
#[derive(Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
    client: redis::Client,
    thread_conns: Arc<ThreadLocal<RefCell<ThreadConn>>>,
    prefix: String,
    delete_if_eq: Script,
    incr: Script,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisCache {
    /// Connects to the Redis server at `url` and checks it answers PING. Every key this cache
    /// reads or writes is prefixed with `key_prefix`.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<Self, CacheError> {
        // The URL may carry a password, so errors name only the server address.
        let client = redis::Client::open(url)
            .map_err(|e| CacheError::Unavailable(format!("invalid Redis URL: {e}")))?;
        let addr = client.get_connection_info().addr.to_string();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(RESPONSE_TIMEOUT)
            .set_number_of_retries(CONNECT_RETRIES)
            .set_factor(RETRY_BACKOFF_FACTOR)
            .set_max_delay(RETRY_MAX_DELAY_MS);
        let conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(|e| {
                CacheError::Unavailable(format!("cannot connect to Redis at {addr}: {e}"))
            })?;
        let cache = Self {
            conn,
            client,
            thread_conns: Arc::new(ThreadLocal::new()),
            prefix: key_prefix.to_string(),
            delete_if_eq: Script::new(DELETE_IF_EQ_LUA),
            incr: Script::new(INCR_LUA),
        };
        cache.ping().await.map_err(|e| {
            CacheError::Unavailable(format!("Redis at {addr} did not answer PING: {e}"))
        })?;
        Ok(cache)
    }

    /// The key prefix every key of this cache carries.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// Deletes every key under this cache's prefix (SCAN + DEL) and returns how many were
    /// removed. Refuses an empty prefix, which would mean every key of the database.
    pub async fn delete_prefix(&self) -> Result<u64, CacheError> {
        if self.prefix.is_empty() {
            return Err(CacheError::Value(
                "refusing to delete by an empty key prefix (it would match every key)".into(),
            ));
        }
        let pattern = format!("{}*", escape_glob(&self.prefix));
        let mut conn = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut deleted: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_BATCH)
                .query_async(&mut conn)
                .await
                .map_err(map_err)?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .map_err(map_err)?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// This thread's connection when called on a current-thread runtime, connecting it first if
    /// needed; `None` elsewhere and for a while after it failed.
    async fn thread_conn(&self) -> Option<MultiplexedConnection> {
        if Handle::try_current().ok()?.runtime_flavor() != RuntimeFlavor::CurrentThread {
            return None;
        }
        {
            let mut slot = self.thread_conns.get_or_default().borrow_mut();
            if let Some(conn) = &slot.conn {
                return Some(conn.clone());
            }
            if slot.connecting || slot.retry_at.is_some_and(|at| Instant::now() < at) {
                return None;
            }
            slot.connecting = true;
        }
        // Cleared however this call ends (a dropped call must not leave the thread waiting).
        struct Connecting<'a>(&'a ThreadLocal<RefCell<ThreadConn>>);
        impl Drop for Connecting<'_> {
            fn drop(&mut self) {
                self.0.get_or_default().borrow_mut().connecting = false;
            }
        }
        let _connecting = Connecting(&self.thread_conns);
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(RESPONSE_TIMEOUT);
        match self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(conn) => {
                // A current-thread runtime never moves a task, so this is still the same thread.
                *self.thread_conns.get_or_default().borrow_mut() = ThreadConn {
                    conn: Some(conn.clone()),
                    ..ThreadConn::default()
                };
                Some(conn)
            }
            Err(e) => {
                tracing::debug!(error = %e, "No Redis connection of this thread; using the shared one");
                self.drop_thread_conn();
                None
            }
        }
    }

    fn drop_thread_conn(&self) {
        *self.thread_conns.get_or_default().borrow_mut() = ThreadConn {
            retry_at: Some(Instant::now() + THREAD_CONN_RETRY),
            ..ThreadConn::default()
        };
    }

    /// Runs an idempotent command (or pipeline of them) on this thread's connection, or on the
    /// shared one when there is none or it failed (a reply error is the answer and is not sent
    /// again).
    async fn query_idempotent<T: FromRedisValue>(
        &self,
        request: Request<'_>,
    ) -> Result<T, RedisError> {
        if let Some(mut conn) = self.thread_conn().await {
            match request.send(&mut conn).await {
                Ok(v) => return Ok(v),
                Err(e) if is_reply_error(&e) => return Err(e),
                Err(e) => {
                    tracing::debug!(error = %e, "Redis connection of this thread failed; sending on the shared one");
                    self.drop_thread_conn();
                }
            }
        }
        request.send(&mut self.conn.clone()).await
    }
}

/// What [`RedisCache::query_idempotent`] sends.
#[derive(Clone, Copy)]
enum Request<'a> {
    Cmd(&'a Cmd),
    Pipeline(&'a Pipeline),
}

impl Request<'_> {
    async fn send<T: FromRedisValue>(self, conn: &mut impl ConnectionLike) -> RedisResult<T> {
        match self {
            Request::Cmd(cmd) => cmd.query_async(conn).await,
            Request::Pipeline(pipe) => pipe.query_async(conn).await,
        }
    }
}

/// An error the server answered (as opposed to the connection failing).
fn is_reply_error(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ResponseError | ErrorKind::ExtensionError | ErrorKind::TypeError
    )
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key(key));
        self.query_idempotent(Request::Cmd(&cmd))
            .await
            .map_err(map_err)
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), CacheError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(ttl_ms(ttl));
        }
        self.query_idempotent::<()>(Request::Cmd(&cmd))
            .await
            .map_err(map_err)
    }

    async fn set_many(
        &self,
        keys: &[&str],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for key in keys {
            let cmd = pipe.cmd("SET").arg(self.key(key)).arg(value);
            if let Some(ttl) = ttl {
                cmd.arg("PX").arg(ttl_ms(ttl));
            }
            cmd.ignore();
        }
        self.query_idempotent::<()>(Request::Pipeline(&pipe))
            .await
            .map_err(map_err)
    }

    async fn set_nx(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, CacheError> {
        let mut conn = self.conn.clone();
        // SET NX answers OK when stored and nil when the key already exists.
        let reply: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms(ttl))
            .query_async(&mut conn)
            .await
            .map_err(map_err)?;
        Ok(reply.is_some())
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        let mut conn = self.conn.clone();
        let n: u64 = redis::cmd("DEL")
            .arg(self.key(key))
            .query_async(&mut conn)
            .await
            .map_err(map_err)?;
        Ok(n > 0)
    }

    async fn delete_if_eq(&self, key: &str, expected: &[u8]) -> Result<bool, CacheError> {
        let mut conn = self.conn.clone();
        let n: u64 = self
            .delete_if_eq
            .key(self.key(key))
            .arg(expected)
            .invoke_async(&mut conn)
            .await
            .map_err(map_err)?;
        Ok(n > 0)
    }

    async fn incr(&self, key: &str, by: i64, ttl: Duration) -> Result<i64, CacheError> {
        let mut conn = self.conn.clone();
        self.incr
            .key(self.key(key))
            .arg(by)
            .arg(ttl_ms(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| {
                if e.code() == Some(NOT_INTEGER_CODE) {
                    let detail = e.detail().unwrap_or("value is not an integer");
                    CacheError::Value(format!("incr on {key}: {detail}"))
                } else {
                    map_err(e)
                }
            })
    }

    async fn ping(&self) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        let reply: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(map_err)?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(CacheError::Unavailable(format!(
                "Redis answered PING with {reply:?}"
            )))
        }
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

/// Maps a Redis error: a key holding another data type is a value problem, anything else means
/// the server could not serve the call.
fn map_err(e: RedisError) -> CacheError {
    if e.kind() == ErrorKind::ExtensionError && e.code() == Some("WRONGTYPE") {
        CacheError::Value(format!("Redis: {e}"))
    } else {
        CacheError::Unavailable(format!("Redis: {e}"))
    }
}

/// A TTL in whole milliseconds as Redis takes it: at least 1 (Redis rejects 0) and capped.
fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis())
        .unwrap_or(MAX_TTL_MS)
        .clamp(1, MAX_TTL_MS)
}

/// Escapes the characters SCAN's MATCH pattern treats specially, so a prefix matches literally.
fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_at_least_one_millisecond_and_capped() {
        assert_eq!(ttl_ms(Duration::ZERO), 1);
        assert_eq!(ttl_ms(Duration::from_micros(10)), 1);
        assert_eq!(ttl_ms(Duration::from_millis(150)), 150);
        assert_eq!(ttl_ms(Duration::MAX), MAX_TTL_MS);
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(escape_glob("scrm:"), "scrm:");
        assert_eq!(escape_glob("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
