//! When a failed delivery is tried again: Svix's schedule (immediately, then 5 s, 5 min,
//! 30 min, 2 h, 5 h, 10 h, 10 h) with ±20 % jitter, so that retries of many messages do not
//! arrive at a recovering endpoint all at once. A `Retry-After` from the endpoint is
//! honoured when it asks for longer.

use rand::Rng;

/// Delay before attempt n+1 after attempt n failed (index 0 = after the first attempt).
pub const RETRY_DELAYS_MS: [i64; 7] = [
    5_000,
    5 * 60_000,
    30 * 60_000,
    2 * 3_600_000,
    5 * 3_600_000,
    10 * 3_600_000,
    10 * 3_600_000,
];

/// Attempts in all before a message is dead-lettered.
pub const MAX_ATTEMPTS: i32 = RETRY_DELAYS_MS.len() as i32 + 1;

/// Longest `Retry-After` honoured, so that an endpoint cannot park a message forever.
const MAX_RETRY_AFTER_MS: i64 = 24 * 3_600_000;

/// When to try again after `attempts` failed attempts, or `None` when none are left.
pub fn next_attempt_at(
    now_ms: i64,
    attempts: i32,
    retry_after_ms: Option<i64>,
    jitter: &mut impl Rng,
) -> Option<i64> {
    let index = usize::try_from(attempts - 1).ok()?;
    let base = *RETRY_DELAYS_MS.get(index)?;
    let jittered = base + jitter.random_range(-base / 5..=base / 5);
    let delay = match retry_after_ms {
        Some(asked) => jittered.max(asked.min(MAX_RETRY_AFTER_MS)),
        None => jittered,
    };
    Some(now_ms + delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn retries_follow_the_schedule_within_twenty_percent() {
        let mut rng = StdRng::seed_from_u64(7);
        for (i, base) in RETRY_DELAYS_MS.iter().enumerate() {
            let at = next_attempt_at(0, i as i32 + 1, None, &mut rng).unwrap();
            assert!(
                (base * 8 / 10..=base * 12 / 10).contains(&at),
                "attempt {}: {at}",
                i + 1
            );
        }
    }

    #[test]
    fn no_retry_after_the_last_attempt() {
        let mut rng = StdRng::seed_from_u64(7);
        assert_eq!(next_attempt_at(0, MAX_ATTEMPTS, None, &mut rng), None);
    }

    #[test]
    fn a_longer_retry_after_is_honoured_and_a_shorter_one_is_not() {
        let mut rng = StdRng::seed_from_u64(7);
        assert_eq!(next_attempt_at(0, 1, Some(60_000), &mut rng), Some(60_000));
        let at = next_attempt_at(0, 1, Some(1), &mut rng).unwrap();
        assert!(at >= 4_000);
    }
}
