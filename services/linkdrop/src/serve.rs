//! linkdrop's HTTP server: HTTP/1.1 over each accepted TCP stream, with upgrades.
//!
//! hyper is given the TCP stream itself (not wrapped, as a server that also speaks HTTP/2
//! wraps it to sniff the protocol), so that a WebSocket upgrade hands the gateway the
//! stream the viewer connected on: the gateway writes room events to viewers' sockets
//! itself (`linkdrop_gateway::upgrade`). Handlers see the peer's address as
//! `ConnectInfo<SocketAddr>`. On shutdown it stops accepting, lets each connection finish
//! the request under way, and waits for them; upgraded connections belong to their
//! sessions by then.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::Listener as _;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::listener::Listener;

/// Serves `router` on `listener` until `shutdown`, then waits for open requests to end.
pub async fn serve(mut listener: Listener, router: Router, shutdown: CancellationToken) {
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => break,
        };
        connections.spawn(connection(stream, peer, router.clone(), shutdown.clone()));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// Serves one connection's requests; on shutdown, ends it once the request under way is
/// answered.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
) {
    let service = router.map_request(move |request: axum::http::Request<Incoming>| {
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    });
    let served = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
        .with_upgrades();
    tokio::pin!(served);
    let result = tokio::select! {
        result = served.as_mut() => result,
        _ = shutdown.cancelled() => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(e) = result {
        tracing::trace!(%peer, error = %e, "connection ended with an error");
    }
}
