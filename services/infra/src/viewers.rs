//! Viewer counts across gateway nodes. Every node reports, about once a second, how many
//! viewers of a room it holds; the count of the room is the sum of the reports that are
//! still fresh, so a node that dies stops counting within [`REPORT_TTL_MS`].

use crate::backends::RedisConn;

use linkdrop_domain::clock::now_ms;
use linkdrop_domain::keys::Keys;

/// How long one node's report counts.
pub const REPORT_TTL_MS: i64 = 3_000;

/// Records that `node_id` holds `count` viewers of `room_id` now.
pub async fn report(
    redis: &RedisConn,
    keys: &Keys,
    room_id: &str,
    node_id: &str,
    count: u64,
) -> Result<(), redis::RedisError> {
    let key = keys.room_viewers(room_id);
    let value = format!("{count}:{}", now_ms() + REPORT_TTL_MS);
    redis::pipe()
        .hset(&key, node_id, value)
        .ignore()
        .pexpire(&key, REPORT_TTL_MS * 2)
        .ignore()
        .query_async::<()>(&mut redis.clone())
        .await
}

/// Viewers of `room_id` over every node whose report is fresh.
pub async fn total(
    redis: &RedisConn,
    keys: &Keys,
    room_id: &str,
) -> Result<u64, redis::RedisError> {
    let reports: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(keys.room_viewers(room_id))
        .query_async(&mut redis.clone())
        .await?;
    Ok(sum_fresh(reports.iter().map(|(_, v)| v.as_str()), now_ms()))
}

fn sum_fresh<'a>(reports: impl Iterator<Item = &'a str>, now_ms: i64) -> u64 {
    reports
        .filter_map(|report| {
            let (count, until) = report.split_once(':')?;
            let until: i64 = until.parse().ok()?;
            (until > now_ms)
                .then(|| count.parse::<u64>().ok())
                .flatten()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fresh_reports_count() {
        let reports = ["10:2000", "5:999", "7:1500", "garbage"];
        assert_eq!(sum_fresh(reports.into_iter(), 1000), 17);
    }
}
