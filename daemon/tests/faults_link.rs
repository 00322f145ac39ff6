//! Fault suite, pivox protocol side (issue 11): servers that misbehave after the handshake,
//! each written by hand on loopback, with the outcome the turn must have and its time bound.
//! The daemon runs in-process with simulated devices.

mod common;

use std::future::Future;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use pivox::daemon::{Probes, RunReport};
use pivox::link::protocol::{AudioHeader, Message};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message as Ws;

type ServerSocket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Accepts connections one after another on loopback: each gets `welcome` (PCM), and then
/// `behave` with the turn id of its first `turn_end` (or 0 if `wait_for_turn` is false).
async fn server<F, Fut>(wait_for_turn: bool, behave: F) -> (String, tokio::task::JoinHandle<()>)
where
    F: Fn(ServerSocket, u32) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        // Bounded: no test needs more than a few connections.
        for _ in 0..10 {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            let _hello = ws.next().await;
            let welcome =
                r#"{"type":"welcome","version":1,"server":"faulty","codec":"pcm","sample_rate":16000,"frame_ms":20}"#;
            ws.send(Ws::text(welcome)).await.unwrap();
            let mut turn = 0;
            while wait_for_turn && let Some(Ok(frame)) = ws.next().await {
                if let Ws::Text(text) = frame
                    && let Ok(Message::TurnEnd { turn: t, .. }) = Message::from_json(&text)
                {
                    turn = t;
                    break;
                }
            }
            behave(ws, turn).await;
        }
    });
    (url, task)
}

fn audio(turn: u32, seq: u16, timestamp: u32) -> Ws {
    let mut frame = AudioHeader { turn_tag: AudioHeader::tag(turn), seq, timestamp }.to_bytes().to_vec();
    frame.extend_from_slice(&[0x10; 640]);
    Ws::binary(frame)
}

async fn run(url: &str, button: &str, extra: &str, limit: Duration) -> (RunReport, Probes, Duration) {
    let config = config(url, button, &format!("[audio]\ncodecs = [\"pcm\"]\nearcon_volume = 0.0\n{extra}"));
    run_daemon(config, Some(1), limit).await
}

fn outcomes(report: &RunReport) -> Vec<&str> {
    report.turns.iter().map(|t| t.outcome.as_str()).collect()
}

/// 11.6: reply audio that keeps coming, with random sequence numbers and timestamps and no
/// `reply_end`, is cut off at `max_reply_s`.
#[tokio::test]
async fn an_endless_reply_is_cut_off_at_max_reply() {
    let (url, server) = server(true, |mut ws, turn| async move {
        let _ = ws.send(Ws::text(Message::ReplyStart { turn }.to_json())).await;
        // 20 s at most, far past the 5 s limit.
        for _ in 0..1000 {
            if ws.send(audio(turn, fastrand::u16(..), fastrand::u32(..))).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let (report, _, _) =
        run(&url, "press 0.1, release 0.6", "[session]\nmax_reply_s = 5\n", Duration::from_secs(9)).await;
    server.abort();
    assert_eq!(outcomes(&report), ["ReplyTooLong"], "{report:?}");
}

/// 11.6: a reply whose audio stops before its end is ended `reply_timeout_s` later.
#[tokio::test]
async fn a_reply_that_stops_arriving_is_ended_as_stalled() {
    let (url, server) = server(true, |mut ws, turn| async move {
        let _ = ws.send(Ws::text(Message::ReplyStart { turn }.to_json())).await;
        for seq in 0..10 {
            let _ = ws.send(audio(turn, seq, u32::from(seq) * 320)).await;
        }
        // Then nothing, but the connection stays up (pings are answered while reading).
        while ws.next().await.is_some() {}
    })
    .await;
    // Released at 0.6 s, last audio right after: stalled by about 2.7 s, well inside 5 s.
    let (report, _, _) =
        run(&url, "press 0.1, release 0.6", "[session]\nreply_timeout_s = 2\n", Duration::from_secs(5)).await;
    server.abort();
    assert_eq!(outcomes(&report), ["ReplyStalled"], "{report:?}");
}

/// 11.11: a reply whose every frame is tagged for another turn is "NoReply", not "Completed".
#[tokio::test]
async fn a_reply_with_audio_only_for_another_turn_is_no_reply() {
    let (url, server) = server(true, |mut ws, turn| async move {
        let _ = ws.send(Ws::text(Message::ReplyStart { turn }.to_json())).await;
        for seq in 0..10 {
            let _ = ws.send(audio(turn + 9, seq, u32::from(seq) * 320)).await;
        }
        let _ = ws.send(Ws::text(Message::ReplyEnd { turn, frames: 10 }.to_json())).await;
        while ws.next().await.is_some() {}
    })
    .await;
    let (report, probes, _) = run(&url, "press 0.1, release 0.6", "", Duration::from_secs(3)).await;
    server.abort();
    assert_eq!(outcomes(&report), ["NoReply"], "{report:?}");
    assert!(probes.speaker.lock().samples.iter().all(|&s| s == 0), "nothing of the other turn was played");
}

/// 11.11 (docs/protocol.md): a binary frame over 4096 bytes closes the connection with 1009.
#[tokio::test]
async fn an_oversized_frame_closes_the_connection_with_1009() {
    let (codes_tx, mut codes) = tokio::sync::mpsc::unbounded_channel();
    let (url, server) = server(false, move |mut ws, _| {
        let codes_tx = codes_tx.clone();
        async move {
            let _ = ws.send(Ws::binary(vec![1u8; 5000])).await;
            while let Some(Ok(frame)) = ws.next().await {
                if let Ws::Close(Some(close)) = frame {
                    let _ = codes_tx.send(u16::from(close.code));
                }
            }
        }
    })
    .await;
    let (_, _, _) = run(&url, "", "", Duration::from_millis(1500)).await;
    server.abort();
    assert_eq!(codes.recv().await, Some(1009));
}

/// A server that closes with an unusual code, then comes back: the daemon reconnects and the
/// next turn completes. A server restarted between turns is the same case.
#[tokio::test]
async fn an_odd_close_code_is_survived_and_the_next_turn_completes() {
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = connections.clone();
    let (url, server) = server(false, move |mut ws, _| {
        let n = seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move {
            if n == 0 {
                let close = tokio_tungstenite::tungstenite::protocol::CloseFrame {
                    code: 4000.into(),
                    reason: "going for a walk".into(),
                };
                let _ = ws.close(Some(close)).await;
                return;
            }
            // The second connection answers one turn properly.
            let mut turn = 0;
            while let Some(Ok(frame)) = ws.next().await {
                if let Ws::Text(text) = frame
                    && let Ok(Message::TurnEnd { turn: t, .. }) = Message::from_json(&text)
                {
                    turn = t;
                    break;
                }
            }
            let _ = ws.send(Ws::text(Message::ReplyStart { turn }.to_json())).await;
            for seq in 0..5 {
                let _ = ws.send(audio(turn, seq, u32::from(seq) * 320)).await;
            }
            let _ = ws.send(Ws::text(Message::ReplyEnd { turn, frames: 5 }.to_json())).await;
            while ws.next().await.is_some() {}
        }
    })
    .await;
    let (report, _, _) = run(&url, "press 1.0, release 1.6", "", Duration::from_secs(8)).await;
    server.abort();
    assert_eq!(outcomes(&report), ["Completed"], "{report:?}");
    assert!(connections.load(std::sync::atomic::Ordering::Relaxed) >= 2);
}

/// A server whose `welcome` comes as a fragmented text message (two frames), written byte by
/// byte on a hand-made WebSocket: the daemon reassembles it and connects.
#[tokio::test]
async fn a_fragmented_welcome_is_reassembled() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        // Bounded: the upgrade request is a few hundred bytes.
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "the client closed during the upgrade");
            request.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&request);
        let key = text
            .lines()
            .find_map(|l| l.to_ascii_lowercase().starts_with("sec-websocket-key:").then(|| l[18..].trim().to_string()))
            .unwrap();
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        tcp.write_all(response.as_bytes()).await.unwrap();
        let welcome =
            br#"{"type":"welcome","version":1,"server":"fragments","codec":"pcm","sample_rate":16000,"frame_ms":20}"#;
        let (first, second) = welcome.split_at(30);
        // Text frame without FIN, then a continuation frame with FIN; server frames are unmasked.
        for (header, part) in [(0x01u8, first), (0x80u8, second)] {
            tcp.write_all(&[header, part.len() as u8]).await.unwrap();
            tcp.write_all(part).await.unwrap();
        }
        // Keep the connection until the daemon leaves (its pings go unanswered: it is short).
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while tcp.read(&mut buf).await.is_ok_and(|n| n > 0) {}
        })
        .await;
    });
    let (_, probes, _) = run(&url, "", "", Duration::from_millis(500)).await;
    server.abort();
    assert!(probes.led.states().contains(&pivox_hal::LedState::Idle), "connected: {:?}", probes.led.states());
}
