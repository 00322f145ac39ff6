//! A stand-in for Home Assistant: the Assist part of its WebSocket API and its TTS proxy,
//! on one port as in HA, for the tests, `make bench` and trying the Home Assistant link
//! without a Home Assistant (`pivox-devtools serve-homeassistant`).
//!
//! It plays HA's side as HA does (auth handshake, `result` then events, binary handler ids
//! counted per connection from 1, relative reply URLs with a fresh random token per run,
//! a zero-length binary message closing the socket) and checks the client strictly: each
//! rule the client breaks is recorded in [`FakeHaReport::violations`]. Speech recognition
//! is faked: the transcript says how much audio arrived, and every answer is the same
//! recorded reply.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// How a run goes after its audio ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// stt-end, intent-*, tts-*, run-end.
    Answer,
    /// `error` stt-no-text-recognized, then run-end.
    NothingHeard,
    /// stt and intent succeed, then `error` tts-failed and run-end.
    TtsFails,
    /// The run times out: run-end first, then `error` timeout (as HA does).
    Timeout,
    /// The socket is closed after a few audio frames.
    CloseMidRun,
    /// Unreadable messages and an event for a run that does not exist come first.
    Garbage,
    /// HA's own end-of-speech detection: after this many audio frames, `stt-vad-end` and the
    /// answer, whether or not the button is still held.
    ServerVad { after_frames: u32 },
    /// `run-end` right after the run's `result`, before any `run-start`.
    RunEndFirst,
}

#[derive(Debug, Clone)]
pub struct FakeHaOptions {
    pub listen: SocketAddr,
    pub token: String,
    /// Pipeline ids a run may name (a run naming none uses the preferred one).
    pub pipelines: Vec<String>,
    pub scenario: Scenario,
    /// Between the `result` of a run and its `run-start`: audio sent in this gap is lost
    /// in real HA (the client must hold it until it knows the handler id).
    pub run_start_delay: Duration,
    /// The reply file served at the TTS URL, and its type.
    pub reply: Arc<Vec<u8>>,
    pub reply_mime: String,
    pub answer: String,
    /// Send the reply in pieces of this many bytes with this pause between them.
    pub trickle: Option<(usize, Duration)>,
    /// Trickle only the first download; later ones go at full speed.
    pub trickle_first_only: bool,
    /// Number each run's answer ("… (run 3)"), so that no two replies are the same text
    /// and a client cache cannot serve them.
    pub vary_answer: bool,
    /// Stream the answer as HA 2025+ does with a streaming agent and TTS: run-start says
    /// `stream_response`, `intent-progress` says `tts_start_streaming`, and `intent-end` and
    /// `tts-end` come `streaming_lead` later.
    pub streaming_lead: Option<Duration>,
}

impl FakeHaOptions {
    pub fn new(listen: SocketAddr, token: &str, reply_mp3: Vec<u8>) -> Self {
        Self {
            listen,
            token: token.to_string(),
            pipelines: vec!["01pivoxtestpipeline".into()],
            scenario: Scenario::Answer,
            run_start_delay: Duration::from_millis(30),
            reply: Arc::new(reply_mp3),
            reply_mime: "audio/mpeg".into(),
            answer: "It is twenty past three.".into(),
            trickle: None,
            trickle_first_only: false,
            vary_answer: false,
            streaming_lead: None,
        }
    }
}

/// One pipeline run as the fake saw it.
#[derive(Debug, Clone, Default)]
pub struct RunRecord {
    pub id: u64,
    pub handler: u8,
    /// The run command as sent.
    pub command: Value,
    /// The audio, 16-bit little-endian PCM as received.
    pub samples: Vec<i16>,
    pub frames: u32,
    pub end_marker: bool,
    pub end_marker_at: Option<Instant>,
    /// The reply's token, given out in run-start and tts-end alike (one stream per run).
    pub reply_token: String,
}

#[derive(Debug, Clone, Default)]
pub struct FakeHaReport {
    pub connections: u32,
    pub auth_failures: u32,
    /// Clients that answered `auth_invalid` with a WebSocket close frame (a clean close).
    pub auth_failures_closed_cleanly: u32,
    pub runs: Vec<RunRecord>,
    pub violations: Vec<String>,
    /// Reply downloads: (when it started, how long it took).
    pub downloads: Vec<(Instant, Duration)>,
    /// When each tts-end was sent.
    pub tts_ends: Vec<Instant>,
}

pub struct FakeHaHandle {
    pub addr: SocketAddr,
    report: Arc<Mutex<FakeHaReport>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeHaHandle {
    pub fn report(&self) -> FakeHaReport {
        self.report.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// `http://127.0.0.1:PORT`: what a user would put in `server.url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

struct Shared {
    options: FakeHaOptions,
    report: Arc<Mutex<FakeHaReport>>,
    /// Reply tokens handed out in run-start/tts-end.
    replies: Mutex<HashSet<String>>,
    next_token: Mutex<u64>,
    downloads_started: std::sync::atomic::AtomicUsize,
}

impl Shared {
    fn violation(&self, what: String) {
        log::warn!("fake HA: client broke a rule: {what}");
        if let Ok(mut report) = self.report.lock() {
            report.violations.push(what);
        }
    }

    fn new_reply_url(&self) -> (String, String) {
        let mut n = self.next_token.lock().unwrap_or_else(|e| e.into_inner());
        *n += 1;
        // Random-looking and fresh per run, as HA's `secrets.token_urlsafe(16)`.
        let extension = match self.options.reply_mime.as_str() {
            "audio/wav" | "audio/x-wav" => "wav",
            "audio/flac" => "flac",
            "audio/ogg" => "ogg",
            _ => "mp3",
        };
        let token = format!("{:016x}{:08x}.{extension}", fastrand::u64(..), *n);
        if let Ok(mut replies) = self.replies.lock() {
            replies.insert(token.clone());
        }
        (token.clone(), format!("/api/tts_proxy/{token}"))
    }
}

pub async fn start(options: FakeHaOptions) -> std::io::Result<FakeHaHandle> {
    let listener = TcpListener::bind(options.listen).await?;
    let addr = listener.local_addr()?;
    let report = Arc::new(Mutex::new(FakeHaReport::default()));
    let shared = Arc::new(Shared {
        options,
        report: report.clone(),
        replies: Mutex::new(HashSet::new()),
        next_token: Mutex::new(0),
        downloads_started: Default::default(),
    });
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted {
                        connections.spawn(route(stream, shared.clone()));
                    }
                }
            }
        }
        connections.abort_all();
    });
    Ok(FakeHaHandle { addr, report, stop, task })
}

/// HA serves its WebSocket API and its HTTP views on the same port: look at the request
/// line to tell them apart.
async fn route(stream: TcpStream, shared: Arc<Shared>) {
    let mut head = [0u8; 1024];
    let mut seen = 0;
    for _ in 0..200 {
        match stream.peek(&mut head).await {
            Ok(n) if n > 0 && head[..n].windows(2).any(|w| w == b"\r\n") => {
                seen = n;
                break;
            }
            Ok(0) | Err(_) => return,
            Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    let line = String::from_utf8_lossy(&head[..seen]);
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    if path == "/api/websocket" {
        websocket(stream, shared).await;
    } else {
        http(stream, &path, shared).await;
    }
}

async fn http(mut stream: TcpStream, path: &str, shared: Arc<Shared>) {
    // Read the request head (nothing pivox sends has a body).
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let token = path.strip_prefix("/api/tts_proxy/").unwrap_or_default();
    let known = shared.replies.lock().map(|r| r.contains(token)).unwrap_or(false);
    if !known {
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
        return;
    }
    let started = Instant::now();
    let first = shared.downloads_started.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0;
    let body = shared.options.reply.clone();
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        shared.options.reply_mime,
        body.len()
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let trickle = shared.options.trickle.filter(|_| first || !shared.options.trickle_first_only);
    let (piece, pause) = trickle.unwrap_or((body.len().max(1), Duration::ZERO));
    for chunk in body.chunks(piece.max(1)) {
        if stream.write_all(chunk).await.is_err() || stream.flush().await.is_err() {
            return;
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    if let Ok(mut report) = shared.report.lock() {
        report.downloads.push((started, started.elapsed()));
    }
}

/// What one connection keeps.
struct Conn {
    last_id: u64,
    next_handler: u8,
    /// Run index in the report by handler id, while the run takes audio.
    handlers: HashMap<u8, usize>,
    /// Handlers whose run stopped listening on its own (`Scenario::ServerVad`).
    vad_ended: HashSet<u8>,
}

async fn websocket(stream: TcpStream, shared: Arc<Shared>) {
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else { return };
    let (mut tx, mut rx) = ws.split();
    let send = |v: Value| WsMessage::text(v.to_string());
    if tx.send(send(json!({"type": "auth_required", "ha_version": "2025.11.0"}))).await.is_err() {
        return;
    }
    // Auth: the first message must be a valid auth message with the right token.
    let auth = match tokio::time::timeout(Duration::from_secs(10), rx.next()).await {
        Ok(Some(Ok(WsMessage::Text(text)))) => serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
        _ => return,
    };
    if let Ok(mut report) = shared.report.lock() {
        report.connections += 1;
    }
    if auth["type"] != "auth" || auth["access_token"] != shared.options.token.as_str() {
        if let Ok(mut report) = shared.report.lock() {
            report.auth_failures += 1;
        }
        let _ = tx.send(send(json!({"type": "auth_invalid", "message": "Invalid access token or password"}))).await;
        let _ = tx.close().await;
        // As HA's aiohttp handler: the close handshake, answered by a client that closes cleanly.
        let closed = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(message)) = rx.next().await {
                if matches!(message, WsMessage::Close(_)) {
                    return true;
                }
            }
            false
        });
        if closed.await.unwrap_or(false)
            && let Ok(mut report) = shared.report.lock()
        {
            report.auth_failures_closed_cleanly += 1;
        }
        return;
    }
    if tx.send(send(json!({"type": "auth_ok", "ha_version": "2025.11.0"}))).await.is_err() {
        return;
    }
    // Outgoing messages go through a queue so that delayed events (run-start) can be sent
    // from timers while the reader goes on.
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<Option<WsMessage>>();
    let writer = tokio::spawn(async move {
        while let Some(message) = out_rx.recv().await {
            let Some(message) = message else {
                let _ = tx.send(WsMessage::Close(None)).await;
                break;
            };
            if tx.send(message).await.is_err() {
                break;
            }
        }
    });
    let out = |v: Value| drop(out_tx.send(Some(send(v))));
    let mut conn = Conn { last_id: 0, next_handler: 1, handlers: HashMap::new(), vad_ended: HashSet::new() };
    while let Some(Ok(message)) = rx.next().await {
        match message {
            WsMessage::Text(text) => {
                let Ok(command) = serde_json::from_str::<Value>(&text) else {
                    shared.violation(format!("a text message that is not JSON: {text}"));
                    continue;
                };
                let Some(id) = command["id"].as_u64() else {
                    shared.violation(format!("a command without an id: {text}"));
                    continue;
                };
                if id <= conn.last_id {
                    shared.violation(format!("command id {id} after {}: ids must increase", conn.last_id));
                    out(json!({"id": id, "type": "result", "success": false,
                        "error": {"code": "id_reuse", "message": "Identifier values have to increase."}}));
                    continue;
                }
                conn.last_id = id;
                match command["type"].as_str() {
                    Some("ping") => out(json!({"id": id, "type": "pong"})),
                    Some("assist_pipeline/run") => start_run(&shared, &mut conn, id, command, &out_tx),
                    other => out(json!({"id": id, "type": "result", "success": false,
                        "error": {"code": "unknown_command", "message": format!("Unknown command {other:?}.")}})),
                }
            }
            WsMessage::Binary(data) => {
                if data.is_empty() {
                    // HA: "Received invalid binary message", and the connection is closed.
                    shared.violation("a zero-length binary message".into());
                    break;
                }
                let handler = data[0];
                let payload = &data[1..];
                let Some(&index) = conn.handlers.get(&handler) else {
                    // Audio that was on its way when HA stopped listening is no fault.
                    if !conn.vad_ended.contains(&handler) {
                        shared.violation(format!("audio for handler {handler}, which no running run has"));
                    }
                    continue;
                };
                if payload.len() % 2 != 0 {
                    shared.violation(format!("an audio frame of {} bytes: not whole 16-bit samples", payload.len()));
                }
                let (close_now, vad_end) = {
                    let mut report = shared.report.lock().unwrap_or_else(|e| e.into_inner());
                    let run = &mut report.runs[index];
                    if payload.is_empty() {
                        run.end_marker = true;
                        run.end_marker_at = Some(Instant::now());
                    } else {
                        run.frames += 1;
                        run.samples.extend(payload.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
                    }
                    let vad_end = matches!(shared.options.scenario,
                        Scenario::ServerVad { after_frames } if run.frames >= after_frames && !payload.is_empty());
                    (shared.options.scenario == Scenario::CloseMidRun && run.frames >= 5, vad_end.then_some(run.id))
                };
                if let Some(id) = vad_end {
                    conn.handlers.remove(&handler);
                    conn.vad_ended.insert(handler);
                    let _ = out_tx.send(Some(event(id, "stt-vad-end", json!({"timestamp": 1200}))));
                    finish_run(&shared, index, &out_tx);
                    continue;
                }
                if close_now {
                    let _ = out_tx.send(None);
                    break;
                }
                if payload.is_empty() {
                    conn.handlers.remove(&handler);
                    finish_run(&shared, index, &out_tx);
                }
            }
            WsMessage::Close(_) => break,
            _ => {}
        }
    }
    drop(out_tx);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
}

fn event(id: u64, kind: &str, data: Value) -> WsMessage {
    WsMessage::text(json!({"id": id, "type": "event", "event": {"type": kind, "data": data, "timestamp": "2025-11-21T00:00:00+00:00"}}).to_string())
}

fn start_run(
    shared: &Arc<Shared>,
    conn: &mut Conn,
    id: u64,
    command: Value,
    out: &tokio::sync::mpsc::UnboundedSender<Option<WsMessage>>,
) {
    let send = |m: WsMessage| drop(out.send(Some(m)));
    let refuse = |code: &str, message: String| {
        send(WsMessage::text(
            json!({"id": id, "type": "result", "success": false, "error": {"code": code, "message": message}})
                .to_string(),
        ))
    };
    if command["start_stage"] != "stt" || command["end_stage"] != "tts" {
        shared.violation(format!("a run from {} to {}, not stt to tts", command["start_stage"], command["end_stage"]));
    }
    if command["input"]["sample_rate"] != 16_000 {
        shared.violation(format!("input.sample_rate {}", command["input"]["sample_rate"]));
    }
    let pipeline = command["pipeline"].as_str().map(str::to_string);
    if let Some(p) = &pipeline
        && !shared.options.pipelines.contains(p)
    {
        return refuse("pipeline-not-found", format!("Pipeline not found: id={p}"));
    }
    let handler = conn.next_handler;
    conn.next_handler = conn.next_handler.wrapping_add(1).max(1);
    let (token, url) = shared.new_reply_url();
    let index = {
        let mut report = shared.report.lock().unwrap_or_else(|e| e.into_inner());
        let record =
            RunRecord { id, handler, command: command.clone(), reply_token: token.clone(), ..Default::default() };
        report.runs.push(record);
        report.runs.len() - 1
    };
    conn.handlers.insert(handler, index);
    send(WsMessage::text(json!({"id": id, "type": "result", "success": true, "result": null}).to_string()));
    let conversation = command["conversation_id"].as_str().map_or_else(|| format!("conv-{id}"), str::to_string);
    let run_start = json!({
        "pipeline": pipeline.unwrap_or_else(|| shared.options.pipelines[0].clone()),
        "language": "en",
        "conversation_id": conversation,
        "runner_data": {"stt_binary_handler_id": handler, "timeout": 300},
        "tts_output": {"token": token, "url": url, "mime_type": shared.options.reply_mime,
            "stream_response": shared.options.streaming_lead.is_some()},
    });
    if shared.options.scenario == Scenario::RunEndFirst {
        conn.handlers.remove(&handler);
        send(event(id, "run-end", Value::Null));
        return;
    }
    let garbage = shared.options.scenario == Scenario::Garbage;
    let delay = shared.options.run_start_delay;
    let out = out.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let send = |m: WsMessage| drop(out.send(Some(m)));
        if garbage {
            send(WsMessage::text("{not json"));
            send(WsMessage::text(json!({"type": "surprise", "id": id}).to_string()));
            send(event(id + 1000, "stt-end", json!({"stt_output": {"text": "for nobody"}})));
            send(WsMessage::Binary(vec![1, 2, 3].into()));
        }
        send(event(id, "run-start", run_start));
        send(event(
            id,
            "stt-start",
            json!({"engine": "stt.fake", "metadata": {"language": "en", "sample_rate": 16000}}),
        ));
    });
}

fn finish_run(shared: &Arc<Shared>, index: usize, out: &tokio::sync::mpsc::UnboundedSender<Option<WsMessage>>) {
    let send = |m: WsMessage| drop(out.send(Some(m)));
    let (id, samples, conversation, token) = {
        let report = shared.report.lock().unwrap_or_else(|e| e.into_inner());
        let run = &report.runs[index];
        let conversation =
            run.command["conversation_id"].as_str().map_or_else(|| format!("conv-{}", run.id), str::to_string);
        (run.id, run.samples.len(), conversation, run.reply_token.clone())
    };
    let options = &shared.options;
    let no_text = json!({"code": "stt-no-text-recognized", "message": "No text recognized"});
    if options.scenario == Scenario::NothingHeard || samples == 0 {
        send(event(id, "error", no_text));
        send(event(id, "run-end", Value::Null));
        return;
    }
    if options.scenario == Scenario::Timeout {
        send(event(id, "run-end", Value::Null));
        send(event(id, "error", json!({"code": "timeout", "message": "Timeout running pipeline"})));
        return;
    }
    let heard = format!("{:.1} seconds of speech", samples as f64 / 16_000.0);
    let answer = if options.vary_answer { format!("{} (run {id})", options.answer) } else { options.answer.clone() };
    send(event(id, "stt-end", json!({"stt_output": {"text": heard}})));
    send(event(
        id,
        "intent-start",
        json!({"engine": "conversation.fake", "language": "en", "intent_input": heard, "conversation_id": conversation}),
    ));
    let shared = shared.clone();
    let out = out.clone();
    tokio::spawn(async move {
        let send = |m: WsMessage| drop(out.send(Some(m)));
        let options = &shared.options;
        if let Some(lead) = options.streaming_lead {
            send(event(id, "intent-progress", json!({"tts_start_streaming": true})));
            tokio::time::sleep(lead).await;
        }
        send(event(
            id,
            "intent-end",
            json!({"processed_locally": true, "intent_output": {
            "response": {"speech": {"plain": {"speech": answer, "extra_data": null}}, "card": {}, "language": "en", "response_type": "query_answer", "data": {}},
            "conversation_id": conversation, "continue_conversation": false}}),
        ));
        send(event(
            id,
            "tts-start",
            json!({"engine": "tts.fake", "language": "en", "voice": "amy", "tts_input": answer}),
        ));
        if options.scenario == Scenario::TtsFails {
            send(event(id, "error", json!({"code": "tts-failed", "message": "Text-to-speech failed"})));
            send(event(id, "run-end", Value::Null));
            return;
        }
        let url = format!("/api/tts_proxy/{token}");
        send(event(
            id,
            "tts-end",
            json!({"tts_output": {"media_id": format!("media-source://tts/{token}"), "token": token, "url": url, "mime_type": options.reply_mime}}),
        ));
        if let Ok(mut report) = shared.report.lock() {
            report.tts_ends.push(Instant::now());
        }
        send(event(id, "run-end", Value::Null));
    });
}
