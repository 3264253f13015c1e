//! Wake-ups that follow commits: a writer notifies a channel, and whoever listens on it
//! (a webhook dispatcher waiting for due deliveries) wakes instead of waiting for its next
//! poll. On PostgreSQL they are `NOTIFY`/`LISTEN`, across processes; on SQLite, where the
//! embedded backend runs every role in one process, an in-process bell per database file
//! and channel.
//!
//! A wake-up only shortens a wait: listeners poll as well, so a lost one delays, never
//! loses, what it announces.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use sqlx::postgres::PgListener;
use sqlx::{PgPool, SqlitePool};
use tokio::sync::watch;

/// The in-process bells of one SQLite database: every pool on its file shares them.
pub(super) struct Bells(PathBuf);

impl Bells {
    pub(super) fn of(pool: &SqlitePool) -> Self {
        Self(pool.connect_options().get_filename().to_path_buf())
    }

    /// The bell of `channel`: a counter that every ring moves on.
    fn bell(&self, channel: &'static str) -> watch::Sender<u64> {
        type Registry = Mutex<HashMap<(PathBuf, &'static str), watch::Sender<u64>>>;
        static BELLS: OnceLock<Registry> = OnceLock::new();
        let mut bells = BELLS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        bells
            .entry((self.0.clone(), channel))
            .or_insert_with(|| watch::Sender::new(0))
            .clone()
    }

    /// Wakes every in-process listener of `channel`.
    pub(super) fn ring(&self, channel: &'static str) {
        self.bell(channel)
            .send_modify(|rings| *rings = rings.wrapping_add(1));
    }

    pub(super) fn listen(&self, channel: &'static str) -> Listener {
        Listener(Kind::InProcess(self.bell(channel).subscribe()))
    }
}

/// Listens on one channel; see [`super::Db::listen`].
pub struct Listener(Kind);

enum Kind {
    Postgres(PgListener),
    InProcess(watch::Receiver<u64>),
}

impl Listener {
    pub(super) async fn postgres(
        pool: &PgPool,
        channel: &'static str,
    ) -> Result<Self, sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(channel).await?;
        Ok(Self(Kind::Postgres(listener)))
    }

    /// Resolves once the channel has been notified since the listener started or last
    /// resolved. While a PostgreSQL listener has lost its connection (it reconnects by
    /// itself on the next call) this call never resolves: the caller's poll takes over.
    pub async fn notified(&mut self) {
        match &mut self.0 {
            Kind::Postgres(listener) => {
                if listener.recv().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            Kind::InProcess(rings) => {
                if rings.changed().await.is_err() {
                    // The bells live as long as the process: unreachable, but not worth a panic.
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}
