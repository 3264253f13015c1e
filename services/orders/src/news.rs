//! Drop news, as this orders process hears it on the channel every orders process listens
//! to: the edge learns what it may refuse, and the drawer learns when a lottery's window
//! closes (every orders process schedules the draw; `draw.lua` applies it once), so a
//! lottery is drawn on time even when nobody enters.

use linkdrop_domain::drop_news::{DropNews, LivePhase};
use linkdrop_domain::keys::Keys;
use linkdrop_infra::bus_listener::{BusSource, Heard, listen};
use tokio_util::sync::CancellationToken;

use crate::edge::Edge;
use crate::lottery::Drawer;

/// Who takes drop news in.
#[derive(Clone)]
pub struct Listeners {
    pub edge: Option<Edge>,
    pub drawer: Option<Drawer>,
}

impl Listeners {
    /// Hears drop news until `shutdown`.
    pub async fn listen(self, source: BusSource, keys: Keys, shutdown: CancellationToken) {
        let (subscribed, _) = tokio::sync::oneshot::channel();
        let on = |heard| {
            self.take_in(heard);
            std::future::ready(())
        };
        listen(
            source,
            vec![keys.drop_news_channel()],
            shutdown,
            subscribed,
            on,
        )
        .await
    }

    fn take_in(&self, heard: Heard) {
        match heard {
            Heard::Message { payload, .. } => match DropNews::parse(&payload) {
                Ok(news) => self.hear(news),
                Err(e) => tracing::warn!(error = %e, "drop news that does not parse"),
            },
            // News may have been missed: the edge forgets what it knew and reads again.
            Heard::Lost { error } => {
                tracing::warn!(%error, "drop news subscription lost");
                self.forget_all();
            }
            Heard::Subscribed | Heard::Lagged { .. } => self.forget_all(),
        }
    }

    /// One line of news, from the channel or from an admission batch's reply.
    pub fn hear(&self, news: DropNews) {
        let facts = &news.facts;
        if let (Some(drawer), Some(window_ms), Some(opens_at_ms), LivePhase::Launched, false) = (
            &self.drawer,
            facts.lottery_window_ms,
            facts.opens_at_ms,
            facts.phase,
            facts.drawn,
        ) {
            drawer.schedule(&news.drop_id, opens_at_ms + i64::from(window_ms));
        }
        if let Some(edge) = &self.edge {
            edge.hear(news);
        }
    }

    fn forget_all(&self) {
        if let Some(edge) = &self.edge {
            edge.forget_all();
        }
    }
}
