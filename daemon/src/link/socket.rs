//! The TCP connection under both server links, tuned for small interactive audio chunks on a
//! Wi-Fi link that may die without a word.
//!
//! - `TCP_NODELAY`: a 20 ms Opus frame goes out now, not after the previous one is acked.
//! - `TCP_NOTSENT_LOWAT`: the socket reports writable only while little is still unsent, so
//!   audio waits in our queue (where a new turn can drop it) rather than in the kernel's.
//! - Keepalive 5 s idle, 2 s apart, 3 probes: a silent dead link is found between turns.
//! - `TCP_USER_TIMEOUT` 5 s: data unacknowledged that long closes the connection, so a dead
//!   link is noticed mid-turn in seconds instead of after ~15 minutes of retransmits.
//!
//! The system-wide half of this tuning is in `sysctl.d/90-pivox.conf`.

use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::http::Uri;

/// Unsent bytes above which the socket stops reporting writable: about a second of Opus.
pub const NOTSENT_LOWAT: u32 = 4096;
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
pub const KEEPALIVE_PROBES: u32 = 3;
pub const USER_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to the host and port of a `ws://`/`wss://` URL and tunes the socket.
pub async fn connect(uri: &Uri, limit: Duration) -> Result<TcpStream, String> {
    let host = uri.host().ok_or_else(|| format!("{uri}: no host"))?;
    // `[::1]` in a URL is `::1` to the resolver.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let tls = uri.scheme_str().is_some_and(|s| s.eq_ignore_ascii_case("wss"));
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let stream = match timeout(limit, TcpStream::connect((host, port))).await {
        Err(_) => return Err(format!("no answer within {limit:?}")),
        Ok(Err(e)) => return Err(format!("cannot connect to {host}:{port}: {e}")),
        Ok(Ok(stream)) => stream,
    };
    tune(&stream).map_err(|e| format!("cannot set socket options: {e}"))?;
    Ok(stream)
}

/// Applies the options listed at the top of this file.
pub fn tune(stream: &TcpStream) -> std::io::Result<()> {
    let socket = SockRef::from(stream);
    socket.set_tcp_nodelay(true)?;
    socket.set_tcp_notsent_lowat(NOTSENT_LOWAT)?;
    let keepalive =
        TcpKeepalive::new().with_time(KEEPALIVE_IDLE).with_interval(KEEPALIVE_INTERVAL).with_retries(KEEPALIVE_PROBES);
    socket.set_tcp_keepalive(&keepalive)?;
    socket.set_tcp_user_timeout(Some(USER_TIMEOUT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_link_socket_carries_every_option() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri: Uri = format!("ws://{}/pivox", listener.local_addr().unwrap()).parse().unwrap();
        let stream = connect(&uri, Duration::from_secs(2)).await.unwrap();
        let socket = SockRef::from(&stream);
        assert!(socket.tcp_nodelay().unwrap());
        assert_eq!(socket.tcp_notsent_lowat().unwrap(), NOTSENT_LOWAT);
        assert!(socket.keepalive().unwrap());
        assert_eq!(socket.tcp_keepalive_time().unwrap(), KEEPALIVE_IDLE);
        assert_eq!(socket.tcp_keepalive_interval().unwrap(), KEEPALIVE_INTERVAL);
        assert_eq!(socket.tcp_keepalive_retries().unwrap(), KEEPALIVE_PROBES);
        assert_eq!(socket.tcp_user_timeout().unwrap(), Some(USER_TIMEOUT));
    }

    #[tokio::test]
    async fn a_refused_connection_says_where() {
        // Bind then drop: the port is (almost certainly) closed now.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let uri: Uri = format!("ws://127.0.0.1:{port}/").parse().unwrap();
        let error = connect(&uri, Duration::from_secs(2)).await.unwrap_err();
        assert!(error.starts_with(&format!("cannot connect to 127.0.0.1:{port}")), "{error}");
    }
}
