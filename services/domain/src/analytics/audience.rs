//! A room's audience over time: stored seconds made into a curve of at most a given number
//! of points, and the viewers at a given instant.

use serde::Serialize;

/// One stored second of a room (summed over gateway nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Second {
    pub at_s: i64,
    pub viewers: i64,
    pub joins: i64,
    pub leaves: i64,
}

/// One point of the curve: the most viewers connected at once during its step, and the
/// joins and leaves within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AudiencePoint {
    pub at_ms: i64,
    pub viewers: i64,
    pub joins: i64,
    pub leaves: i64,
}

/// The curve of a room from its first second to its last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Audience {
    /// Seconds per point.
    pub step_s: i64,
    pub points: Vec<AudiencePoint>,
    pub peak_viewers: i64,
    /// When the peak was first reached (null for a room nobody watched).
    pub peak_at_ms: Option<i64>,
}

impl Audience {
    /// The curve over `from_s..=until_s` of `seconds` (oldest first), with at most
    /// `max_points` points. A second with no row had no viewers.
    pub fn of(seconds: &[Second], from_s: i64, until_s: i64, max_points: usize) -> Self {
        let span = (until_s - from_s + 1).max(1);
        let step_s = ceil_div(span, max_points.max(1) as i64).max(1);
        let mut points: Vec<AudiencePoint> = (0..ceil_div(span, step_s))
            .map(|i| AudiencePoint {
                at_ms: (from_s + i * step_s) * 1000,
                viewers: 0,
                joins: 0,
                leaves: 0,
            })
            .collect();
        for second in seconds {
            if second.at_s < from_s || second.at_s > until_s {
                continue;
            }
            let point = &mut points[((second.at_s - from_s) / step_s) as usize];
            point.viewers = point.viewers.max(second.viewers);
            point.joins += second.joins;
            point.leaves += second.leaves;
        }
        let peak = seconds
            .iter()
            .filter(|s| s.viewers > 0)
            .fold(None::<Second>, |best, s| match best {
                Some(b) if b.viewers >= s.viewers => Some(b),
                _ => Some(*s),
            });
        Self {
            step_s,
            points,
            peak_viewers: peak.map_or(0, |s| s.viewers),
            peak_at_ms: peak.map(|s| s.at_s * 1000),
        }
    }
}

/// `a / b` rounded up, for positive `a` and `b`.
fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1) / b
}

/// Viewers connected at `at_ms` according to `seconds` (oldest first), or None when the
/// figures do not reach that far yet (no stored second at or after it).
pub fn viewers_at(seconds: &[Second], at_ms: i64) -> Option<i64> {
    let at_s = at_ms.div_euclid(1000);
    let last = seconds.last()?;
    if last.at_s < at_s {
        return None;
    }
    Some(
        seconds
            .iter()
            .find(|s| s.at_s == at_s)
            .map_or(0, |s| s.viewers),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(at_s: i64, viewers: i64, joins: i64, leaves: i64) -> Second {
        Second {
            at_s,
            viewers,
            joins,
            leaves,
        }
    }

    #[test]
    fn each_point_holds_the_peak_of_its_step_and_the_sum_of_its_joins() {
        let seconds = [
            second(100, 5, 5, 0),
            second(101, 9, 4, 0),
            second(102, 7, 0, 2),
            second(104, 3, 1, 5),
        ];
        let audience = Audience::of(&seconds, 100, 105, 3);
        assert_eq!(audience.step_s, 2);
        let shape: Vec<_> = audience
            .points
            .iter()
            .map(|p| (p.at_ms, p.viewers, p.joins, p.leaves))
            .collect();
        assert_eq!(
            shape,
            [(100_000, 9, 9, 0), (102_000, 7, 0, 2), (104_000, 3, 1, 5)]
        );
        assert_eq!(
            (audience.peak_viewers, audience.peak_at_ms),
            (9, Some(101_000))
        );
    }

    #[test]
    fn a_second_nobody_reported_counts_as_no_viewers() {
        let audience = Audience::of(&[second(10, 4, 4, 0), second(12, 2, 0, 2)], 10, 12, 100);
        let viewers: Vec<_> = audience.points.iter().map(|p| p.viewers).collect();
        assert_eq!(viewers, [4, 0, 2]);
        assert_eq!(audience.step_s, 1);
    }

    #[test]
    fn a_room_nobody_watched_has_no_peak() {
        let audience = Audience::of(&[], 10, 10, 100);
        assert_eq!((audience.peak_viewers, audience.peak_at_ms), (0, None));
        assert_eq!(audience.points.len(), 1);
    }

    #[test]
    fn viewers_at_an_instant_are_unknown_until_the_figures_reach_it() {
        let seconds = [second(10, 4, 4, 0), second(12, 2, 0, 2)];
        assert_eq!(viewers_at(&seconds, 10_500), Some(4));
        assert_eq!(viewers_at(&seconds, 11_000), Some(0));
        assert_eq!(viewers_at(&seconds, 13_000), None);
    }
}
