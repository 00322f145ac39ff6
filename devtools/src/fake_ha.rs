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

mod websocket;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use websocket::websocket;

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
