//! Lottery draws, the mathematics (docs/fairness.md).
//!
//! At launch a 32-byte seed is drawn and only `seed_hash = hex(SHA-256(seed))` published.
//! Every entry's rank is `hex(HMAC-SHA256(key = seed, message = user id))`; the winners are
//! the entries with the smallest ranks, taken in rank order while their units fit in the
//! stock. After the draw the seed and the cutoff rank (the largest winning rank) are
//! published, so every shopper can check that their rank is at or below the cutoff exactly
//! when they won, and anyone can check the seed against its hash. Neither arrival time nor
//! the number of requests enters the rank.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new random seed.
pub fn new_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    seed
}

/// `hex(SHA-256(seed))`, published at launch.
pub fn seed_hash(seed: &[u8]) -> String {
    hex::encode(Sha256::digest(seed))
}

/// `hex(HMAC-SHA256(key = seed, message = user_id))`.
pub fn rank(seed: &[u8], user_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(seed).expect("HMAC takes keys of any length");
    mac.update(user_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// One lottery entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub user_id: String,
    pub order_id: String,
    pub qty: u32,
}

/// The outcome of a draw over a set of entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draw {
    /// Every entry with its rank and whether it won, in rank order.
    pub ranked: Vec<(String, Entry, bool)>,
    /// The largest winning rank; `None` when nobody won.
    pub cutoff_rank: Option<String>,
    pub winners: usize,
}

/// Draws `entries` for `stock` units: smallest ranks first, stopping at the first entry
/// whose units no longer fit, so that "won" is exactly "rank ≤ cutoff".
pub fn draw(seed: &[u8], entries: Vec<Entry>, stock: u32) -> Draw {
    let mut ranked: Vec<(String, Entry)> = entries
        .into_iter()
        .map(|e| (rank(seed, &e.user_id), e))
        .collect();
    ranked.sort_by(|a, b| a.0.cmp(&b.0));
    let mut left = stock;
    let mut open = true;
    let mut cutoff_rank = None;
    let mut winners = 0;
    let ranked = ranked
        .into_iter()
        .map(|(rank, entry)| {
            let won = open && entry.qty <= left;
            if won {
                left -= entry.qty;
                cutoff_rank = Some(rank.clone());
                winners += 1;
            } else {
                open = false;
            }
            (rank, entry, won)
        })
        .collect();
    Draw {
        ranked,
        cutoff_rank,
        winners,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: usize) -> Vec<Entry> {
        (0..n)
            .map(|i| Entry {
                user_id: format!("user-{i}"),
                order_id: format!("ord_{i}"),
                qty: 1,
            })
            .collect()
    }

    #[test]
    fn rank_is_the_hmac_of_the_user_id_under_the_seed() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            rank(b"Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn with_a_fixed_seed_the_winners_are_exactly_the_smallest_ranks() {
        let seed = [7u8; 32];
        let outcome = draw(&seed, entries(50), 10);
        let mut ranks: Vec<String> = (0..50).map(|i| rank(&seed, &format!("user-{i}"))).collect();
        ranks.sort();
        let winners: Vec<&String> = outcome
            .ranked
            .iter()
            .filter(|r| r.2)
            .map(|r| &r.0)
            .collect();
        assert_eq!(winners, ranks.iter().take(10).collect::<Vec<_>>());
        assert_eq!(outcome.cutoff_rank.as_ref(), Some(&ranks[9]));
        assert_eq!(outcome.winners, 10);
    }

    #[test]
    fn winning_is_exactly_having_a_rank_at_or_below_the_cutoff() {
        let seed = [3u8; 32];
        let mut list = entries(20);
        for (i, e) in list.iter_mut().enumerate() {
            e.qty = 1 + (i as u32 % 3);
        }
        let outcome = draw(&seed, list, 17);
        let cutoff = outcome.cutoff_rank.clone().unwrap();
        for (rank, _, won) in &outcome.ranked {
            assert_eq!(*won, rank <= &cutoff, "rank {rank}");
        }
        let taken: u32 = outcome.ranked.iter().filter(|r| r.2).map(|r| r.1.qty).sum();
        assert!(taken <= 17);
    }

    #[test]
    fn fewer_entries_than_units_all_win() {
        let outcome = draw(&[1u8; 32], entries(3), 10);
        assert_eq!(outcome.winners, 3);
    }

    #[test]
    fn nobody_wins_an_empty_draw() {
        let outcome = draw(&[1u8; 32], Vec::new(), 10);
        assert_eq!((outcome.winners, outcome.cutoff_rank), (0, None));
    }

    #[test]
    fn the_seed_hash_is_sha256_of_the_seed() {
        assert_eq!(
            seed_hash(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    /// Arrival time and repetition cannot enter a rank by construction; this shows it in
    /// outcomes. Users are split into three groups — early senders, late senders, and
    /// users who send ten times — and 400 drops with fresh seeds are drawn (each user holds
    /// one entry whatever they sent: the script keeps one per user). If behaviour mattered,
    /// wins would differ by group. Chi-square test of independence (2 degrees of freedom)
    /// at significance 0.001: critical value 13.82.
    #[test]
    fn sending_earlier_or_more_often_does_not_win_more_often() {
        let groups = ["early", "late", "repeat"];
        let per_group = 30;
        let stock = 30;
        let mut wins = [0u64; 3];
        let drops = 400;
        for _ in 0..drops {
            let seed = new_seed();
            let mut list = Vec::new();
            for (g, name) in groups.iter().enumerate() {
                for i in 0..per_group {
                    let sends = if g == 2 { 10 } else { 1 };
                    let user_id = format!("{name}-{i}");
                    // Ten sends still make one entry: the first one, as admission keeps it.
                    for _ in 0..sends {
                        if !list.iter().any(|e: &Entry| e.user_id == user_id) {
                            list.push(Entry {
                                user_id: user_id.clone(),
                                order_id: format!("ord_{user_id}"),
                                qty: 1,
                            });
                        }
                    }
                }
            }
            // Early senders arrive first, late ones last: arrival order is list order.
            for (_, entry, won) in draw(&seed, list, stock).ranked {
                if won {
                    let g = groups
                        .iter()
                        .position(|n| entry.user_id.starts_with(n))
                        .unwrap();
                    wins[g] += 1;
                }
            }
        }
        let trials = (drops * per_group) as f64;
        let total_wins: u64 = wins.iter().sum();
        let p = total_wins as f64 / (trials * 3.0);
        let chi_square: f64 = wins
            .iter()
            .map(|&w| {
                let (won, lost) = (w as f64, trials - w as f64);
                let (e_won, e_lost) = (trials * p, trials * (1.0 - p));
                (won - e_won).powi(2) / e_won + (lost - e_lost).powi(2) / e_lost
            })
            .sum();
        assert_eq!(total_wins, (drops * stock) as u64);
        assert!(
            chi_square < 13.82,
            "chi-square {chi_square:.2} with wins {wins:?}"
        );
    }
}
