//! The HTTP serving loop that the issuer and the controller share: accept on a listener,
//! serve each connection with HTTP/1.1 and a header timeout, and stop at a shutdown signal
//! once requests in flight have finished (mini-redis `server::run`: the listener and the
//! shutdown come in, so tests bind port 0).
//!
//! It owns connections, not routes: each caller brings its own [`App`] (the issuer's
//! endpoints, the controller's probes). It must not know either of them, so that the issuer
//! and the controller meet only through the configuration.

use axum::extract::connect_info::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use std::future::Future;
use std::time::Duration;

/// How long a client may take to send a request's headers (on a new connection, and for each
/// request of a kept-alive one) before the connection is closed: a client that opens
/// connections and never finishes them would otherwise hold a file descriptor each, forever.
/// The body then has what is left of the app's own request timeout (the issuer's is
/// `issuer::server::REQUEST_TIMEOUT`).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The most a request's line and headers may take: 64 KiB, room for any authorization request
/// and its cookies (nginx allows 8 KiB per line by default). Larger heads are refused with 431,
/// so a connection holds at most this much of them (hyper's own bound is about 400 KiB).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// What [`serve`] serves: an [`axum::Router`], or a router with layers around it (the issuer's).
pub trait App:
    tower::Service<
        Request<axum::body::Body>,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future: Send,
    > + Clone
    + Send
    + 'static
{
}

impl<S> App for S where
    S: tower::Service<
            Request<axum::body::Body>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future: Send,
        > + Clone
        + Send
        + 'static
{
}

/// Serve `app` on `listener` until `shutdown` resolves; requests in flight finish first.
/// Handlers see the peer address (`ConnectInfo<SocketAddr>`), which the login form's
/// brute-force limits count by. Every connection has `TCP_NODELAY`: a response leaves at once
/// rather than waiting for the client's ACK of the previous segment (Nagle). HTTP/1.1 only,
/// with [`HEADER_READ_TIMEOUT`] (axum's own `serve` sets no timer, so no header timeout).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: impl App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let connections = tokio_util::task::TaskTracker::new();
    let stop = tokio_util::sync::CancellationToken::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait, as axum's serve does.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        connections.spawn(serve_connection(tcp, peer, app.clone(), stop.clone()));
    }
    stop.cancel();
    connections.close();
    connections.wait().await;
    Ok(())
}

/// One connection, until the client closes it, a timeout, or `stop` (then the request in
/// flight finishes first).
async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    app: impl App,
    stop: tokio_util::sync::CancellationToken,
) {
    use tower::ServiceExt as _;
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES);
    let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::trace!(%error, "connection ended");
            }
            return;
        }
        () = stop.cancelled() => connection.as_mut().graceful_shutdown(),
    }
    if let Err(error) = connection.await {
        tracing::trace!(%error, "connection ended");
    }
}
