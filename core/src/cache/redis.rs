//! [`RedisCache`]: entries under one scope's key prefix on a shared, multiplexed Redis connection
//! that reconnects by itself. A flush walks the prefix with `SCAN` and removes with `UNLINK` in
//! batches: never `KEYS`, never `FLUSHDB`.

use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use super::{CacheError, CacheStore};

/// Keys removed per `UNLINK` during a flush.
const FLUSH_BATCH: usize = 500;

/// One scope's entries: every key is `prefix + key`.
pub struct RedisCache {
    connection: ConnectionManager,
    prefix: String,
}

impl RedisCache {
    /// The scope whose keys all start with `prefix` (e.g. `tenant_{id}_cache:`). No other scope's
    /// prefix may begin with this one or begin it (`Config` checks the configured prefixes); an
    /// empty prefix is a whole Redis database, for one that belongs to a single tenant.
    pub fn new(connection: ConnectionManager, prefix: String) -> Self {
        Self { connection, prefix }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Every key under the prefix, found with SCAN (never KEYS).
    async fn keys(&self, action: &str) -> Result<Vec<String>, CacheError> {
        use futures::StreamExt;
        let mut scanner = self.connection.clone();
        let iter = scanner.scan_match::<_, String>(match_pattern(&self.prefix)).await.map_err(failed(action.into()))?;
        Ok(iter.filter_map(|key| async move { key.ok() }).collect().await)
    }
}

fn failed(action: String) -> impl FnOnce(redis::RedisError) -> CacheError {
    move |err| CacheError::store("redis", action)(Box::new(err))
}

/// `prefix*` as a SCAN pattern, with the glob characters of the prefix escaped.
fn match_pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    pattern
}

#[async_trait]
impl CacheStore for RedisCache {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let mut connection = self.connection.clone();
        connection.get(self.key(key)).await.map_err(failed(format!("read `{key}`")))
    }

    async fn put(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<(), CacheError> {
        let mut connection = self.connection.clone();
        let key_name = self.key(key);
        let result: redis::RedisResult<()> = match ttl {
            Some(ttl) => connection.pset_ex(key_name, value, ttl.as_millis().max(1) as u64).await,
            None => connection.set(key_name, value).await,
        };
        result.map_err(failed(format!("write `{key}`")))
    }

    async fn forget(&self, key: &str) -> Result<bool, CacheError> {
        let mut connection = self.connection.clone();
        let removed: u64 = connection.unlink(self.key(key)).await.map_err(failed(format!("delete `{key}`")))?;
        Ok(removed > 0)
    }

    async fn increment(&self, key: &str, by: i64) -> Result<i64, CacheError> {
        let mut connection = self.connection.clone();
        connection.incr(self.key(key), by).await.map_err(|err| match err.kind() {
            redis::ErrorKind::Server(_) if err.to_string().contains("not an integer") => CacheError::NotAnInteger { key: key.to_owned() },
            redis::ErrorKind::Server(_) if err.to_string().contains("overflow") => CacheError::Overflow { key: key.to_owned(), by },
            _ => failed(format!("increment `{key}`"))(err),
        })
    }

    async fn stats(&self) -> Result<super::CacheStats, CacheError> {
        let keys = self.keys("scan for keys to measure").await?;
        let mut connection = self.connection.clone();
        let mut bytes = 0;
        for batch in keys.chunks(FLUSH_BATCH) {
            let mut pipe = redis::pipe();
            for key in batch {
                pipe.strlen(key);
            }
            let lengths: Vec<u64> = pipe.query_async(&mut connection).await.map_err(failed("measure".into()))?;
            bytes += lengths.iter().sum::<u64>();
        }
        Ok(super::CacheStats { entries: keys.len() as u64, bytes })
    }

    async fn flush(&self) -> Result<u64, CacheError> {
        let keys = self.keys("scan for keys to flush").await?;
        let mut connection = self.connection.clone();
        let mut removed = 0;
        for batch in keys.chunks(FLUSH_BATCH) {
            let count: u64 = connection.unlink(batch).await.map_err(failed("flush".into()))?;
            removed += count;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_patterns_escape_globs() {
        assert_eq!(match_pattern("tenant_1_"), "tenant_1_*");
        assert_eq!(match_pattern("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\*");
    }
}
