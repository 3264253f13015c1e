//! Listening to pub/sub channels of the live state: the room bus for gateways, drop news
//! for orders processes.
//!
//! On Redis the subscription uses the nodes given in turn (one server, or some nodes of a
//! cluster: a PUBLISH on any node reaches subscribers on every node) and subscribes again
//! with backoff after a failure; on the embedded backend it is the engine's in-process
//! publishing. Either way the listener is told when it may have missed messages
//! ([`Heard::Lost`], [`Heard::Lagged`]), never left to guess.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// Longest pause between two attempts to subscribe again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Where published messages come from.
pub enum BusSource {
    /// Redis pub/sub: the nodes the subscription may use, tried in turn when one fails.
    Redis(Vec<redis::Client>),
    /// The embedded engine of this process.
    Embedded(linkdrop_engine::Engine),
}

/// What a listener hears.
#[derive(Debug)]
pub enum Heard {
    Message {
        channel: String,
        payload: String,
    },
    /// The subscription failed: what is published until the next [`Heard::Subscribed`] is
    /// lost to this listener.
    Lost {
        error: String,
    },
    /// Subscribed again after [`Heard::Lost`].
    Subscribed,
    /// The listener fell behind the engine's backlog and missed `missed` messages.
    Lagged {
        missed: u64,
    },
}

/// Subscribes to `patterns` and hands every message to `on` (and awaits what it returns),
/// until `shutdown`. `subscribed` fires after the first successful subscription.
pub async fn listen<F, Fut>(
    source: BusSource,
    patterns: Vec<String>,
    shutdown: CancellationToken,
    subscribed: oneshot::Sender<()>,
    on: F,
) where
    F: FnMut(Heard) -> Fut,
    Fut: Future<Output = ()>,
{
    match source {
        BusSource::Redis(nodes) => listen_on_redis(nodes, patterns, shutdown, subscribed, on).await,
        BusSource::Embedded(engine) => {
            listen_embedded(engine, patterns, shutdown, subscribed, on).await
        }
    }
}

async fn listen_embedded<F, Fut>(
    engine: linkdrop_engine::Engine,
    patterns: Vec<String>,
    shutdown: CancellationToken,
    subscribed: oneshot::Sender<()>,
    mut on: F,
) where
    F: FnMut(Heard) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut messages = engine.subscribe();
    let _ = subscribed.send(());
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return,
            message = messages.recv() => message,
        };
        match message {
            Ok(message) if patterns.iter().any(|p| matches(p, &message.channel)) => {
                on(Heard::Message {
                    channel: message.channel,
                    payload: message.payload,
                })
                .await
            }
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                on(Heard::Lagged { missed }).await
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Whether `channel` matches a pattern of the kind linkdrop subscribes with: a name, or a
/// prefix followed by one `*`.
fn matches(pattern: &str, channel: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => channel.starts_with(prefix),
        None => channel == pattern,
    }
}

async fn listen_on_redis<F, Fut>(
    nodes: Vec<redis::Client>,
    patterns: Vec<String>,
    shutdown: CancellationToken,
    subscribed: oneshot::Sender<()>,
    mut on: F,
) where
    F: FnMut(Heard) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut subscribed = Some(subscribed);
    let mut backoff = Duration::from_millis(100);
    for client in nodes.iter().cycle() {
        match subscribe(client, &patterns, &shutdown, &mut subscribed, &mut on).await {
            Ok(()) => return,
            Err(e) => {
                on(Heard::Lost {
                    error: e.to_string(),
                })
                .await
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One subscription, until it fails (`Err`) or `shutdown` (`Ok`).
async fn subscribe<F, Fut>(
    client: &redis::Client,
    patterns: &[String],
    shutdown: &CancellationToken,
    subscribed: &mut Option<oneshot::Sender<()>>,
    on: &mut F,
) -> Result<(), redis::RedisError>
where
    F: FnMut(Heard) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut pubsub = client.get_async_pubsub().await?;
    for pattern in patterns {
        pubsub.psubscribe(pattern).await?;
    }
    match subscribed.take() {
        Some(first) => {
            let _ = first.send(());
        }
        None => on(Heard::Subscribed).await,
    }
    tracing::info!(?patterns, "subscribed");
    let mut messages = pubsub.on_message();
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            message = messages.next() => message,
        };
        let Some(message) = message else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::IoError,
                "subscription connection closed",
            )));
        };
        match message.get_payload::<String>() {
            Ok(payload) => {
                on(Heard::Message {
                    channel: message.get_channel_name().to_string(),
                    payload,
                })
                .await
            }
            Err(e) => tracing::warn!(error = %e, "a published message is not text"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_their_name_or_prefix() {
        assert!(matches("ld:bus:room:*", "ld:bus:room:r1"));
        assert!(!matches("ld:bus:room:*", "ld:bus:user:u1"));
        assert!(matches("ld:bus:drops", "ld:bus:drops"));
        assert!(!matches("ld:bus:drops", "ld:bus:drops2"));
    }
}
