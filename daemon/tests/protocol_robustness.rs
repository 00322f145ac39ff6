//! Protocol mistakes in both directions: logged, answered, the connection kept or closed
//! cleanly — never a panic. Real WebSocket stack on loopback.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use pivox::daemon::{self, Probes, RunOptions};
use pivox::link::protocol::{AudioHeader, Message};
use pivox_devtools::server::{self, ServerOptions};
use pivox_hal::LedState;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message as Ws;

type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_text(ws: &mut Client) -> Message {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("an answer in time") {
            Some(Ok(Ws::Text(t))) => return Message::from_json(&t).unwrap(),
            Some(Ok(Ws::Binary(_))) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

async fn error_code(ws: &mut Client) -> String {
    match next_text(ws).await {
        Message::Error { code, .. } => code,
        other => panic!("expected an error, got {other:?}"),
    }
}

async fn hello(addr: std::net::SocketAddr, codecs: &str) -> Client {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await.unwrap();
    let hello = format!(
        r#"{{"type":"hello","version":1,"client":"test","codecs":{codecs},"sample_rate":16000,"frame_ms":20}}"#
    );
    ws.send(Ws::text(hello)).await.unwrap();
    assert!(matches!(next_text(&mut ws).await, Message::Welcome { .. }));
    ws
}

/// A hand-written server's side of the handshake: accept, read `hello`, answer `welcome`.
async fn accept_and_welcome(
    listener: TcpListener,
    codec: &str,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let (tcp, _) = listener.accept().await.unwrap();
    let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
    let _hello = ws.next().await;
    let welcome = format!(
        r#"{{"type":"welcome","version":1,"server":"fake","codec":"{codec}","sample_rate":16000,"frame_ms":20}}"#
    );
    ws.send(Ws::text(welcome)).await.unwrap();
    ws
}

fn audio(turn: u32, seq: u16, payload: &[u8]) -> Ws {
    let mut frame =
        AudioHeader { turn_tag: AudioHeader::tag(turn), seq, timestamp: u32::from(seq) * 320 }.to_bytes().to_vec();
    frame.extend_from_slice(payload);
    Ws::binary(frame)
}

#[tokio::test]
async fn the_reference_server_answers_bad_input_with_errors_and_keeps_going() {
    let server = server::start(ServerOptions::echo(([127, 0, 0, 1], 0).into())).await.unwrap();
    let mut ws = hello(server.addr, r#"["pcm"]"#).await;
    ws.send(Ws::text("{not json")).await.unwrap();
    assert_eq!(error_code(&mut ws).await, "bad_message");
    ws.send(Ws::text(r#"{"type":"dance"}"#)).await.unwrap();
    assert_eq!(error_code(&mut ws).await, "unknown_type");
    ws.send(Ws::text(r#"{"type":"turn_start"}"#)).await.unwrap();
    assert_eq!(error_code(&mut ws).await, "bad_message");
    ws.send(Ws::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(error_code(&mut ws).await, "truncated_frame");
    ws.send(audio(9, 0, &[0; 640])).await.unwrap();
    assert_eq!(error_code(&mut ws).await, "wrong_turn", "audio outside any turn");
    ws.send(Ws::text(Message::TurnStart { turn: 1, preroll_ms: 0 }.to_json())).await.unwrap();
    ws.send(audio(2, 0, &[0; 640])).await.unwrap();
    assert_eq!(error_code(&mut ws).await, "wrong_turn", "audio tagged with another turn");
    ws.send(audio(1, 0, &[0; 641])).await.unwrap();
    assert_eq!(error_code(&mut ws).await, "bad_audio", "odd PCM length");
    // After all that, a proper turn still works on the same connection.
    ws.send(audio(1, 0, &[1; 640])).await.unwrap();
    ws.send(Ws::text(r#"{"type":"turn_end","turn":1,"reason":"released","frames":1}"#)).await.unwrap();
    assert!(matches!(next_text(&mut ws).await, Message::ReplyText { turn: 1, .. }));
    assert!(matches!(next_text(&mut ws).await, Message::ReplyStart { turn: 1 }));
    assert!(matches!(next_text(&mut ws).await, Message::ReplyEnd { turn: 1, frames: 1 }));
    assert_eq!(server.utterances()[0].samples, vec![257; 320]);

    // An oversized frame closes that connection cleanly; the server keeps serving others.
    ws.send(Ws::binary(vec![0u8; 64 * 1024])).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Ws::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection was closed");
    let mut again = hello(server.addr, r#"["opus"]"#).await;
    again.send(Ws::text(r#"{"type":"turn_cancel","turn":5}"#)).await.unwrap();
    server.kill().await;
}

#[tokio::test]
async fn a_server_refuses_a_client_it_cannot_serve() {
    let server = server::start(ServerOptions {
        codecs: vec![pivox::audio::codec::Codec::Opus],
        ..ServerOptions::echo(([127, 0, 0, 1], 0).into())
    })
    .await
    .unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", server.addr)).await.unwrap();
    ws.send(Ws::text(
        r#"{"type":"hello","version":1,"client":"t","codecs":["pcm"],"sample_rate":16000,"frame_ms":20}"#,
    ))
    .await
    .unwrap();
    assert_eq!(error_code(&mut ws).await, "codec");
    server.kill().await;
}

/// A hand-written server that answers the daemon's turn with garbage first, then a proper
/// reply: the daemon must log the garbage, play the reply and complete the turn.
#[tokio::test]
async fn the_daemon_survives_a_server_that_sends_garbage() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = tokio::spawn(async move {
        let mut ws = accept_and_welcome(listener, "pcm").await;
        let mut turn = 0;
        while let Some(Ok(frame)) = ws.next().await {
            let Ws::Text(text) = frame else { continue };
            match Message::from_json(&text).unwrap() {
                Message::TurnStart { turn: t, .. } => turn = t,
                Message::TurnEnd { .. } => break,
                _ => {}
            }
        }
        for garbage in
            [Ws::text("{oops"), Ws::text(r#"{"type":"party"}"#), Ws::binary(vec![1, 2]), audio(turn + 7, 0, &[5; 640])]
        {
            ws.send(garbage).await.unwrap();
        }
        ws.send(Ws::text(Message::ReplyStart { turn }.to_json())).await.unwrap();
        for seq in 0..10 {
            ws.send(audio(turn, seq, &[0x10; 640])).await.unwrap();
        }
        ws.send(Ws::text(Message::ReplyEnd { turn, frames: 10 }.to_json())).await.unwrap();
        // Keep the connection open until the daemon leaves.
        while ws.next().await.is_some() {}
    });
    let config = config(
        &format!("ws://{addr}/"),
        "press 0.1, release 0.6",
        "[audio]\ncodecs = [\"pcm\"]\nearcon_volume = 0.0\n",
    );
    let probes = Probes::default();
    let options = RunOptions { turns: Some(1), probes: probes.clone(), ..Default::default() };
    let report = tokio::time::timeout(TURN_LIMIT, daemon::run(config, options)).await.expect("in time").unwrap();
    assert_eq!(report.turns[0].outcome, "Completed");
    let played = probes.speaker.lock().samples.clone();
    assert_eq!(played, vec![0x1010; 3200], "exactly the ten good frames were played");
    fake.abort();
}

/// A server that completes the handshake and then goes silent (never reads, so never
/// answers a ping) is noticed within the ping timeout.
#[tokio::test]
async fn a_silent_server_is_detected_within_the_ping_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (connected_tx, connected) = tokio::sync::oneshot::channel();
    let fake = tokio::spawn(async move {
        let ws = accept_and_welcome(listener, "opus").await;
        let _ = connected_tx.send(Instant::now());
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(ws);
    });
    let config = config(&format!("ws://{addr}/"), "", "");
    let probes = Probes::default();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let options = RunOptions { probes: probes.clone(), stop: Some(stop), ..Default::default() };
    let daemon = tokio::spawn(daemon::run(config, options));
    let connected_at = connected.await.unwrap();
    let deadline = connected_at + Duration::from_secs(5);
    let detected = loop {
        let states = probes.led.lock().clone();
        if let Some((at, _)) =
            states.iter().skip_while(|(_, s)| *s != LedState::Idle).find(|(_, s)| *s == LedState::Disconnected)
        {
            break Some(*at);
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let after = detected.expect("the dead server was noticed").saturating_duration_since(connected_at);
    // ping_timeout_ms = 800, pings every 200 ms: noticed between 0.8 and about 1.2 s.
    assert!(after >= Duration::from_millis(700) && after <= Duration::from_millis(2000), "noticed after {after:?}");
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), daemon).await.unwrap().unwrap().unwrap();
    fake.abort();
}
