//! Home Assistant Assist as the voice server, over HA's WebSocket API (`/api/websocket`):
//! one authenticated connection kept open between turns, one `assist_pipeline/run` from
//! speech-to-text to text-to-speech per press, the spoken reply fetched over HTTP(S) from
//! the same host. `docs/homeassistant.md` is the user's side of this.
//!
//! A turn on the wire:
//! ```text
//! press    → {"id":N,"type":"assist_pipeline/run","start_stage":"stt","end_stage":"tts",…}
//!          ← result, run-start (runner_data.stt_binary_handler_id = H), stt-start
//! talking  → binary [H, PCM s16le…] per frame (frames from before run-start were held back)
//! release  → binary [H]                    (end of audio; a zero-length frame would close the socket)
//!          ← stt-end (transcript), intent-start, intent-end (answer text), tts-start,
//!            tts-end (tts_output.url), run-end            — or error {code, message}
//! reply    GET http(s)://HOST/api/tts_proxy/…  → decoded, framed, played as it downloads
//! ```
//! Audio goes out as 16 kHz PCM: the link reports `pcm` as the codec, and strips pivox's
//! audio header from each frame for HA's one-byte handler prefix.

mod messages;
mod reply;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::backoff::Retry;
use super::protocol::{HEADER_LEN, ws_frame_len};
use super::{Command, Counters, Event, LinkHandle, LinkParams};
use super::{drain_until, socket};
use crate::audio::CODEC_RATE;
use crate::audio::codec::{self, Codec};
use crate::config::{Secret, read_token_file};
use crate::repeats::{Repeats, more};
use crate::session::TurnId;
use crate::text::shorten;
use messages::{ErrorData, Incoming, PipelineEvent, RunOptions, TtsOutput};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Sink = SplitSink<Socket, WsMessage>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// After `run-end` without a reply, how long an `error` may still follow (HA sends a
/// run timeout's `error` after its `run-end`).
const RUN_END_GRACE: Duration = Duration::from_millis(300);
/// Audio held for a run whose `run-start` has not come yet: 60 s of 16 kHz PCM.
const MAX_HELD_AUDIO: usize = 60 * 32_000;
/// How often a rejected token file is read again to see whether the user replaced it.
const TOKEN_RECHECK: Duration = Duration::from_secs(5);
/// Largest message HA may send: event data carries transcripts and answer texts.
const MAX_MESSAGE: usize = 1 << 20;

pub fn spawn(params: LinkParams) -> Result<LinkHandle, String> {
    let token = params.server.token.clone().ok_or_else(|| {
        "Home Assistant needs a long-lived access token: set server.token_file (docs/homeassistant.md)".to_string()
    })?;
    let http_base = http_base(&params.server.url)?;
    let connector = super::tls::connector(&params.server)?;
    let http_tls = if http_base.starts_with("https://") { Some(http_tls(&params.server)?) } else { None };
    let (commands, command_rx) = mpsc::channel(256);
    let (event_tx, events) = mpsc::channel(1024);
    let frame_samples = codec::frame_samples(params.frame_ms);
    let fetcher = reply::Fetcher::spawn(http_tls, reply::Timeouts::default(), frame_samples, event_tx.clone())
        .map_err(|e| format!("cannot start the reply thread: {e}"))?;
    let counters = Arc::new(Counters::default());
    let link = Link {
        params,
        connector,
        token,
        http_base,
        events: event_tx,
        counters: counters.clone(),
        fetcher,
        conversation: None,
        fetching: None,
    };
    let task = tokio::spawn(link.run(command_rx));
    Ok(LinkHandle { commands, events, counters, task })
}

/// `http(s)://host:port` of the HA instance behind a `ws(s)://host:port/api/websocket` URL:
/// the base HA's relative reply URLs are resolved against.
fn http_base(ws_url: &str) -> Result<String, String> {
    let uri: tokio_tungstenite::tungstenite::http::Uri =
        ws_url.parse().map_err(|e| format!("server.url `{ws_url}`: {e}"))?;
    let scheme = match uri.scheme_str() {
        Some("wss") => "https",
        Some("ws") => "http",
        _ => return Err(format!("server.url `{ws_url}` is not a ws:// or wss:// address")),
    };
    let authority = uri.authority().ok_or_else(|| format!("server.url `{ws_url}` has no host"))?;
    Ok(format!("{scheme}://{authority}"))
}

/// An absolute URL for a reply URL from HA: relative ones live on HA's own host.
fn resolve(base: &str, url: &str) -> String {
    if url.starts_with("http://") || url.starts_with("https://") {
        url.to_string()
    } else if url.starts_with('/') {
        format!("{base}{url}")
    } else {
        format!("{base}/{url}")
    }
}

fn http_tls(server: &crate::config::ServerConfig) -> Result<ureq::tls::TlsConfig, String> {
    use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
    let roots = super::tls::TrustedRoots::load(server)?;
    let certs: Vec<Certificate<'static>> =
        roots.system.iter().chain(&roots.extra).map(|der| Certificate::from_der(der.as_ref()).to_owned()).collect();
    Ok(TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(RootCerts::Specific(Arc::new(certs)))
        .unversioned_rustls_crypto_provider(super::tls::provider())
        .build())
}

struct Link {
    params: LinkParams,
    connector: Option<Connector>,
    token: Secret,
    http_base: String,
    events: mpsc::Sender<Event>,
    counters: Arc<Counters>,
    fetcher: reply::Fetcher,
    /// The conversation the last answer belonged to, and when: continued by the next turn
    /// within `server.conversation_timeout_s`.
    conversation: Option<(String, Instant)>,
    /// Stops the reply being fetched: a new press or a cancel means it is not wanted any
    /// more, even after its run has ended on HA's side.
    fetching: Option<Arc<AtomicBool>>,
}

/// Why a connection ended.
enum Ended {
    /// The session closed the link: stop for good.
    Closed,
    Lost(String),
    /// The TCP connection could not be made: the attempt cost HA nothing.
    Unreached(String),
    /// HA rejected the token: trying again with the same one cannot help.
    Refused(String),
}

/// One `assist_pipeline/run` on the connection.
struct Run {
    /// The id of the run command; HA's events for the run carry it.
    id: u64,
    turn: TurnId,
    /// From `run-start`: the first byte of each of this run's audio frames.
    handler: Option<u8>,
    /// Audio that came before `run-start`, sent as soon as the handler is known.
    held: VecDeque<Bytes>,
    held_bytes: usize,
    held_overflow: bool,
    /// The session ended the turn's audio; the end marker goes out once the handler is known.
    end_wanted: bool,
    /// No more audio for HA: end marker sent, or HA stopped listening (VAD end, stt-end, error).
    input_closed: bool,
    first_audio_sent: bool,
    /// Audio frames written for this run (the end marker not counted).
    frames_sent: u32,
    /// The session dropped the turn (barge-in, too short): its events are ignored.
    abandoned: bool,
    failed: bool,
    tts_key: Option<String>,
    tts: Option<TtsOutput>,
    stream_response: bool,
    reply_requested: bool,
    /// Stops the reply download when the turn is abandoned.
    cancel: Arc<AtomicBool>,
    /// `run-end` arrived with no reply and no error: an error may still follow.
    ended_at: Option<Instant>,
}

impl Run {
    fn new(id: u64, turn: TurnId) -> Self {
        Self {
            id,
            turn,
            handler: None,
            held: VecDeque::new(),
            held_bytes: 0,
            held_overflow: false,
            end_wanted: false,
            input_closed: false,
            first_audio_sent: false,
            frames_sent: 0,
            abandoned: false,
            failed: false,
            tts_key: None,
            tts: None,
            stream_response: false,
            reply_requested: false,
            cancel: Arc::new(AtomicBool::new(false)),
            ended_at: None,
        }
    }
}

/// What one connection keeps: HA wants strictly increasing command ids on it.
struct Connection {
    sink: Sink,
    last_id: u64,
    runs: Vec<Run>,
    /// Outgoing audio frames are carved from here (handler byte + PCM).
    arena: BytesMut,
    write_limit: Duration,
    /// Messages pivox cannot use: the first is logged, the rest counted.
    bad: Repeats,
}

impl Connection {
    fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }
}

impl Link {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let server = self.params.server.clone();
        let mut retry = Retry::new(server.reconnect_min, server.reconnect_max);
        let mut failures = 0u32;
        loop {
            let mut reached = true;
            match self.connect().await {
                Ok((socket, version)) => {
                    log::debug!("connected to Home Assistant {version} at {}", server.url);
                    failures = 0;
                    retry.reset();
                    self.emit(Event::Up { codec: Codec::Pcm, server: format!("Home Assistant {version}") }).await;
                    match self.serve(socket, &mut commands).await {
                        Ended::Closed => return,
                        Ended::Lost(reason) | Ended::Unreached(reason) => {
                            log::warn!("lost the connection to Home Assistant at {}: {reason}", server.url);
                            self.emit(Event::Down { reason, refused: false }).await;
                        }
                        Ended::Refused(reason) => {
                            if !self.wait_for_new_token(&reason, &mut commands).await {
                                return;
                            }
                            continue;
                        }
                    }
                }
                Err(Ended::Refused(reason)) => {
                    if !self.wait_for_new_token(&reason, &mut commands).await {
                        return;
                    }
                    continue;
                }
                Err(Ended::Unreached(reason)) => {
                    reached = false;
                    failures += 1;
                    self.connect_failed(failures, reason).await;
                }
                Err(Ended::Lost(reason)) => {
                    failures += 1;
                    self.connect_failed(failures, reason).await;
                }
                Err(Ended::Closed) => return,
            }
            if !drain_until(tokio::time::sleep(retry.next_delay(reached)), &mut commands).await {
                return;
            }
        }
    }

    /// Says the first of a run of failed attempts; repeats of it go to debug so the journal
    /// stays readable.
    async fn connect_failed(&self, failures: u32, reason: String) {
        let url = &self.params.server.url;
        if failures == 1 {
            log::warn!("cannot connect to Home Assistant at {url}: {reason}; retrying");
            self.emit(Event::Down { reason, refused: false }).await;
        } else {
            log::debug!("attempt {failures} to connect to {url} failed: {reason}");
        }
    }

    async fn emit(&self, event: Event) {
        // The receiver only goes away at shutdown, when nothing needs the event any more.
        let _ = self.events.send(event).await;
    }

    /// HA rejected the token. Asking again with the same token would only count as one more
    /// failed login (HA can ban the address for that), so pivox waits until the token file
    /// holds a different token, or for good when the token is not in a file. False: the
    /// session closed the link meanwhile.
    async fn wait_for_new_token(&mut self, reason: &str, commands: &mut mpsc::Receiver<Command>) -> bool {
        let file: Option<PathBuf> = self.params.server.token_file.clone();
        let advice = match &file {
            Some(path) => format!("put a new long-lived access token in {} (pivox reads it again)", path.display()),
            None => "put a new long-lived access token in the config and restart pivox".to_string(),
        };
        log::error!("Home Assistant rejected the access token ({reason}); not retrying: {advice}");
        self.emit(Event::Down { reason: format!("access token rejected: {reason}"), refused: true }).await;
        loop {
            if !drain_until(tokio::time::sleep(TOKEN_RECHECK), commands).await {
                return false;
            }
            let Some(path) = &file else { continue };
            match read_token_file(path) {
                Ok(token) if token != self.token => {
                    log::info!("{} holds a new token; connecting to Home Assistant again", path.display());
                    self.token = token;
                    return true;
                }
                Ok(_) => {}
                Err(e) => log::debug!("{e}"),
            }
        }
    }

    async fn connect(&self) -> Result<(Socket, String), Ended> {
        let lost = Ended::Lost;
        let request = self.params.server.url.as_str().into_client_request().map_err(|e| lost(e.to_string()))?;
        let config = WebSocketConfig::default().max_message_size(Some(MAX_MESSAGE)).max_frame_size(Some(MAX_MESSAGE));
        let stream = socket::connect(request.uri(), CONNECT_TIMEOUT).await.map_err(Ended::Unreached)?;
        let connecting =
            tokio_tungstenite::client_async_tls_with_config(request, stream, Some(config), self.connector.clone());
        let (mut socket, _) = match timeout(CONNECT_TIMEOUT, connecting).await {
            Err(_) => return Err(lost(format!("no answer within {CONNECT_TIMEOUT:?}"))),
            Ok(Err(e)) => return Err(lost(super::tls::explain(e.to_string()))),
            Ok(Ok(connected)) => connected,
        };
        match next_text(&mut socket).await.map_err(lost)? {
            Incoming::AuthRequired { .. } => {}
            other => return Err(lost(format!("expected auth_required from Home Assistant, got {other:?}"))),
        }
        let auth = messages::auth(self.token.expose());
        timeout(CONNECT_TIMEOUT, socket.send(WsMessage::text(auth)))
            .await
            .map_err(|_| lost("sending the token timed out".into()))?
            .map_err(|e| lost(e.to_string()))?;
        match next_text(&mut socket).await.map_err(lost)? {
            Incoming::AuthOk { ha_version } => Ok((socket, ha_version)),
            Incoming::AuthInvalid { message } => {
                // A clean close, as a browser's: HA logs the failed login and tells its owner.
                close_politely(&mut socket).await;
                Err(Ended::Refused(message))
            }
            other => Err(lost(format!("expected auth_ok from Home Assistant, got {other:?}"))),
        }
    }

    /// Runs one connection until it fails or the session closes the link.
    async fn serve(&mut self, socket: Socket, commands: &mut mpsc::Receiver<Command>) -> Ended {
        let server = self.params.server.clone();
        let (sink, mut stream) = socket.split();
        let mut conn = Connection {
            sink,
            last_id: 0,
            runs: Vec::new(),
            arena: BytesMut::with_capacity(16 * 1024),
            write_limit: server.ping_timeout,
            bad: Repeats::default(),
        };
        let mut ping = tokio::time::interval(server.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let ended = loop {
            let grace = conn.runs.iter().filter_map(|r| r.ended_at).min().map(|at| at + RUN_END_GRACE);
            let step = tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(&mut conn, command).await,
                    None => {
                        let _ = timeout(Duration::from_secs(1), conn.sink.send(WsMessage::Close(None))).await;
                        break Ended::Closed;
                    }
                },
                frame = stream.next() => {
                    last_heard = Instant::now();
                    match frame {
                        None => Err("Home Assistant closed the connection".to_string()),
                        Some(Err(e)) => Err(e.to_string()),
                        Some(Ok(WsMessage::Close(close))) => Err(format!(
                            "Home Assistant closed the connection{}",
                            close.map(|c| format!(" ({}: {})", c.code, c.reason)).unwrap_or_default()
                        )),
                        Some(Ok(WsMessage::Text(text))) => {
                            self.counters.bytes_down.fetch_add(ws_frame_len(text.len(), false) as u64, Ordering::Relaxed);
                            self.message(&mut conn, &text).await
                        }
                        Some(Ok(WsMessage::Binary(data))) => {
                            log::debug!("Home Assistant sent a binary message of {} bytes; ignored", data.len());
                            Ok(())
                        }
                        // Protocol pings are answered by tungstenite; pongs only prove HA is alive.
                        Some(Ok(_)) => Ok(()),
                    }
                }
                // Heartbeat: HA's own ping command, which proves its WebSocket handler runs.
                _ = ping.tick() => {
                    if last_heard.elapsed() > server.ping_timeout {
                        Err(format!("no answer from Home Assistant for {:?}", server.ping_timeout))
                    } else {
                        let id = conn.next_id();
                        self.send(&mut conn, WsMessage::text(messages::ping(id))).await
                    }
                }
                _ = tokio::time::sleep_until(grace.map_or_else(tokio::time::Instant::now, Into::into)), if grace.is_some() => {
                    self.runs_ended(&mut conn).await;
                    Ok(())
                }
            };
            if let Err(reason) = step {
                break Ended::Lost(reason);
            }
        };
        let unused = conn.bad.finish();
        if unused > 0 {
            log::warn!("Home Assistant sent {unused} more messages pivox could not use on this connection");
        }
        // Whatever was in flight is over; the replies being fetched are not wanted any more.
        for run in &conn.runs {
            run.cancel.store(true, Ordering::Relaxed);
            if !run.abandoned
                && !run.failed
                && !run.reply_requested
                && let Ended::Lost(reason) = &ended
            {
                log::warn!("turn {}: {reason} in the middle of the turn", run.turn);
            }
        }
        ended
    }

    async fn send(&self, conn: &mut Connection, message: WsMessage) -> Result<(), String> {
        let len = ws_frame_len(message.len(), true);
        match timeout(conn.write_limit, conn.sink.send(message)).await {
            Ok(Ok(())) => {
                self.counters.bytes_up.fetch_add(len as u64, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("a write did not finish within {:?}", conn.write_limit)),
        }
    }

    /// Writes one audio frame (`payload` empty: the end marker) for the run at `index`.
    async fn send_audio(&self, conn: &mut Connection, index: usize, payload: &[u8]) -> Result<(), String> {
        let Some(handler) = conn.runs[index].handler else { return Ok(()) };
        conn.arena.reserve(1 + payload.len());
        conn.arena.put_u8(handler);
        conn.arena.put_slice(payload);
        let frame = conn.arena.split().freeze();
        self.send(conn, WsMessage::Binary(frame)).await?;
        let run = &mut conn.runs[index];
        let at = Instant::now();
        if payload.is_empty() {
            run.input_closed = true;
            self.emit(Event::EndSent { turn: run.turn, at, frames: run.frames_sent }).await;
            return Ok(());
        }
        run.frames_sent += 1;
        if !run.first_audio_sent {
            run.first_audio_sent = true;
            self.emit(Event::FirstAudioSent { turn: run.turn, at }).await;
        }
        Ok(())
    }

    /// The live (not abandoned) run of `turn`.
    fn find_turn(conn: &Connection, turn: TurnId) -> Option<usize> {
        conn.runs.iter().rposition(|r| r.turn == turn && !r.abandoned)
    }

    async fn command(&mut self, conn: &mut Connection, command: Command) -> Result<(), String> {
        match command {
            Command::StartTurn { turn, .. } => {
                self.stop_fetching();
                let id = conn.next_id();
                let server = &self.params.server;
                let conversation = self
                    .conversation
                    .as_ref()
                    .filter(|(_, at)| at.elapsed() < server.conversation_timeout)
                    .map(|(id, _)| id.as_str());
                let limits = &self.params.session;
                let options = RunOptions {
                    pipeline: server.pipeline.as_deref(),
                    conversation_id: conversation,
                    device_id: server.device_id.as_deref(),
                    server_vad: server.server_vad,
                    timeout_s: (limits.max_turn + limits.reply_timeout).as_secs().max(1) as u32 + 1,
                };
                let message = messages::run(id, CODEC_RATE, &options);
                conn.runs.push(Run::new(id, turn));
                self.send(conn, WsMessage::text(message)).await
            }
            Command::Audio { turn, frame } => {
                let Some(index) = Self::find_turn(conn, turn) else { return Ok(()) };
                let payload = frame.slice(HEADER_LEN.min(frame.len())..);
                let run = &mut conn.runs[index];
                if run.input_closed || run.end_wanted || payload.is_empty() {
                    return Ok(());
                }
                if run.handler.is_some() {
                    return self.send_audio(conn, index, &payload).await;
                }
                if run.held_bytes + payload.len() > MAX_HELD_AUDIO {
                    if !std::mem::replace(&mut run.held_overflow, true) {
                        log::warn!("turn {turn}: Home Assistant has not started the run; dropping audio");
                    }
                    return Ok(());
                }
                run.held_bytes += payload.len();
                run.held.push_back(payload);
                Ok(())
            }
            Command::EndTurn { turn, .. } => {
                let Some(index) = Self::find_turn(conn, turn) else { return Ok(()) };
                let run = &mut conn.runs[index];
                run.end_wanted = true;
                if run.handler.is_some() && !run.input_closed {
                    self.send_audio(conn, index, &[]).await?;
                }
                Ok(())
            }
            // Connected already.
            Command::ConnectNow => Ok(()),
            Command::CancelTurn { turn } => {
                self.stop_fetching();
                let Some(index) = Self::find_turn(conn, turn) else { return Ok(()) };
                let run = &mut conn.runs[index];
                run.abandoned = true;
                run.end_wanted = true;
                run.held.clear();
                run.cancel.store(true, Ordering::Relaxed);
                // HA cannot cancel a run; ending its audio lets it finish instead of waiting
                // for the run timeout.
                if run.handler.is_some() && !run.input_closed {
                    self.send_audio(conn, index, &[]).await?;
                }
                Ok(())
            }
        }
    }

    /// Handles one text message from HA. A message pivox cannot read is logged and
    /// skipped: one bad message is no reason to drop a working connection.
    async fn message(&mut self, conn: &mut Connection, text: &str) -> Result<(), String> {
        let message = match Incoming::parse(text) {
            Ok(message) => message,
            Err(e) => {
                if let Some(before) = conn.bad.occur(Instant::now()) {
                    log::warn!("Home Assistant sent a message pivox cannot read ({e}); ignored{}", more(before));
                }
                return Ok(());
            }
        };
        match message {
            Incoming::Event { id, event } => {
                let Some(index) = conn.runs.iter().position(|r| r.id == id) else {
                    if let Some(before) = conn.bad.occur(Instant::now()) {
                        let kind = shorten(&event.kind, 40);
                        log::warn!(
                            "Home Assistant sent a `{kind}` event for an unknown run (id {id}); ignored{}",
                            more(before)
                        );
                    }
                    return Ok(());
                };
                self.run_event(conn, index, event).await
            }
            Incoming::Result { id, success: false, error } => {
                let error = error.unwrap_or(ErrorData { code: "unknown".into(), message: String::new() });
                match conn.runs.iter().position(|r| r.id == id) {
                    Some(index) => {
                        self.fail(conn, index, error).await;
                        conn.runs.remove(index);
                    }
                    None => log::warn!("Home Assistant refused command {id}: {}: {}", error.code, error.message),
                }
                Ok(())
            }
            Incoming::Result { .. } | Incoming::Pong { .. } => Ok(()),
            other @ (Incoming::AuthRequired { .. } | Incoming::AuthOk { .. } | Incoming::AuthInvalid { .. }) => {
                log::warn!("Home Assistant sent {other:?} after authentication; ignored");
                Ok(())
            }
        }
    }

    async fn run_event(&mut self, conn: &mut Connection, index: usize, event: PipelineEvent) -> Result<(), String> {
        let turn = conn.runs[index].turn;
        let abandoned = conn.runs[index].abandoned;
        match event.kind.as_str() {
            "run-start" => {
                let handler = match event.stt_handler() {
                    Ok(handler) => handler,
                    Err(message) => {
                        self.fail(conn, index, ErrorData { code: "no-stt".into(), message }).await;
                        return Ok(());
                    }
                };
                let pipeline = event.data.get("pipeline").and_then(serde_json::Value::as_str).unwrap_or("?");
                log::debug!("turn {turn}: Home Assistant started pipeline {pipeline}, audio handler {handler}");
                let run = &mut conn.runs[index];
                run.handler = Some(handler);
                run.stream_response = event.stream_response();
                run.tts = event.tts_output();
                // The audio of the pre-roll and of the first moments of the press, in order.
                while let Some(payload) = conn.runs[index].held.pop_front() {
                    self.send_audio(conn, index, &payload).await?;
                }
                conn.runs[index].held_bytes = 0;
                if conn.runs[index].end_wanted {
                    self.send_audio(conn, index, &[]).await?;
                }
            }
            "stt-vad-end" | "stt-end" => {
                let run = &mut conn.runs[index];
                if !run.input_closed && !run.end_wanted && !abandoned {
                    log::info!("turn {turn}: Home Assistant stopped listening; the rest of this press is not sent");
                    let frames = run.frames_sent;
                    self.emit(Event::InputClosed { turn, at: Instant::now(), frames }).await;
                }
                let run = &mut conn.runs[index];
                run.input_closed = true;
                run.held.clear();
                if let (false, Some(text)) = (abandoned, event.transcript()) {
                    self.emit(Event::Transcript { turn, text: text.to_string() }).await;
                }
            }
            "intent-end" => {
                if let Some(id) = event.conversation_id() {
                    self.conversation = Some((id.to_string(), Instant::now()));
                }
                if let (false, Some(text)) = (abandoned, event.speech()) {
                    self.emit(Event::ReplyText { turn, text: text.to_string() }).await;
                }
            }
            "intent-progress" => {
                let run = &conn.runs[index];
                if event.tts_start_streaming() && run.stream_response && run.tts.is_some() {
                    self.request_reply(conn, index).await;
                }
            }
            "tts-start" => conn.runs[index].tts_key = event.tts_key(),
            "tts-end" => {
                if let Some(tts) = event.tts_output() {
                    conn.runs[index].tts = Some(tts);
                }
                self.request_reply(conn, index).await;
            }
            "run-end" => {
                let run = &mut conn.runs[index];
                if run.failed || run.reply_requested || run.abandoned {
                    conn.runs.remove(index);
                } else {
                    run.ended_at = Some(Instant::now());
                }
            }
            "error" => {
                let ended = conn.runs[index].ended_at.is_some();
                self.fail(conn, index, event.error()).await;
                if ended {
                    conn.runs.remove(index);
                }
            }
            other => log::debug!("turn {turn}: Home Assistant: {other}"),
        }
        Ok(())
    }

    fn stop_fetching(&mut self) {
        if let Some(cancel) = self.fetching.take() {
            cancel.store(true, Ordering::Relaxed);
        }
    }

    /// Starts playing the run's reply (at `tts-end`, or earlier when HA streams it).
    async fn request_reply(&mut self, conn: &mut Connection, index: usize) {
        let run = &mut conn.runs[index];
        if run.reply_requested || run.abandoned || run.failed {
            return;
        }
        let Some(tts) = run.tts.clone() else {
            let error = ErrorData { code: "tts-failed".into(), message: "tts-end without tts_output.url".into() };
            return self.fail(conn, index, error).await;
        };
        run.reply_requested = true;
        let url = resolve(&self.http_base, &tts.url);
        log::debug!("turn {}: fetching the reply from {url}", run.turn);
        self.fetching = Some(run.cancel.clone());
        self.emit(Event::ReplyAnnounced { turn: run.turn, at: Instant::now() }).await;
        self.fetcher.fetch(reply::Job {
            turn: run.turn,
            cache_key: run.tts_key.clone().unwrap_or_else(|| url.clone()),
            url,
            mime_type: tts.mime_type,
            cancel: run.cancel.clone(),
        });
    }

    /// The run failed: no more audio goes to it, its reply download stops, and the session
    /// hears about it with a line saying what went wrong.
    async fn fail(&self, conn: &mut Connection, index: usize, error: ErrorData) {
        let run = &mut conn.runs[index];
        if run.failed {
            return;
        }
        run.failed = true;
        run.input_closed = true;
        run.held.clear();
        run.cancel.store(true, Ordering::Relaxed);
        if run.abandoned {
            return;
        }
        let message = explain(&error, self.params.server.pipeline.as_deref());
        self.emit(Event::ServerError { turn: Some(run.turn), code: error.code, message }).await;
    }

    /// Runs that ended with neither a reply nor an error after the grace period: the turn
    /// is over without an answer.
    async fn runs_ended(&self, conn: &mut Connection) {
        let now = Instant::now();
        let mut index = 0;
        while index < conn.runs.len() {
            if conn.runs[index].ended_at.is_some_and(|at| now >= at + RUN_END_GRACE) {
                let run = conn.runs.remove(index);
                log::info!("turn {}: Home Assistant finished the run without a spoken reply", run.turn);
                self.emit(Event::ReplyEnd { turn: run.turn }).await;
            } else {
                index += 1;
            }
        }
    }
}

/// What an HA pipeline error means for the user, on one line.
fn explain(error: &ErrorData, pipeline: Option<&str>) -> String {
    let detail = &error.message;
    match error.code.as_str() {
        "stt-no-text-recognized" => "Home Assistant didn't catch that (no text recognized)".into(),
        "pipeline-not-found" => format!(
            "Home Assistant has no pipeline `{}`: set server.pipeline to a pipeline id from Settings → Voice \
             assistants, or leave it out for the preferred one ({detail})",
            pipeline.unwrap_or_default()
        ),
        "tts-failed" => format!("Home Assistant could not speak the answer: text-to-speech failed ({detail})"),
        "timeout" => format!("Home Assistant gave up on the run: it took too long ({detail})"),
        "stt-stream-failed" | "stt-provider-missing" => format!("Home Assistant's speech-to-text failed ({detail})"),
        "intent-failed" => format!("Home Assistant's conversation agent failed ({detail})"),
        _ if detail.is_empty() => format!("Home Assistant reported `{}`", error.code),
        _ => detail.clone(),
    }
}

/// Sends a close frame and waits (briefly) for the peer's, completing the close handshake.
async fn close_politely(socket: &mut Socket) {
    let _ = timeout(Duration::from_secs(1), async {
        socket.close(None).await?;
        while socket.next().await.transpose()?.is_some() {}
        Ok::<(), tokio_tungstenite::tungstenite::Error>(())
    })
    .await;
}

/// The next text message during the handshake.
async fn next_text(socket: &mut Socket) -> Result<Incoming, String> {
    loop {
        let frame = timeout(CONNECT_TIMEOUT, socket.next())
            .await
            .map_err(|_| format!("Home Assistant said nothing for {CONNECT_TIMEOUT:?}"))?;
        match frame {
            Some(Ok(WsMessage::Text(text))) => return Incoming::parse(&text),
            Some(Ok(WsMessage::Close(_))) | None => return Err("Home Assistant closed the connection".into()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_urls_resolve_against_the_websocket_host() {
        let base = http_base("wss://ha.example:8123/api/websocket").unwrap();
        assert_eq!(base, "https://ha.example:8123");
        assert_eq!(resolve(&base, "/api/tts_proxy/abc.mp3"), "https://ha.example:8123/api/tts_proxy/abc.mp3");
        assert_eq!(resolve(&base, "api/tts_proxy/abc.mp3"), "https://ha.example:8123/api/tts_proxy/abc.mp3");
        assert_eq!(resolve(&base, "http://other:8123/x.mp3"), "http://other:8123/x.mp3");
        assert_eq!(http_base("ws://192.168.1.5:8123/api/websocket").unwrap(), "http://192.168.1.5:8123");
    }

    #[test]
    fn each_failure_says_what_happened() {
        let e = |code: &str| ErrorData { code: code.into(), message: "detail".into() };
        assert!(explain(&e("stt-no-text-recognized"), None).contains("didn't catch that"));
        assert!(explain(&e("pipeline-not-found"), Some("p1")).contains("no pipeline `p1`"));
        assert!(explain(&e("tts-failed"), None).contains("text-to-speech failed"));
        assert!(explain(&e("timeout"), None).contains("took too long"));
        assert_eq!(
            explain(&ErrorData { code: "odd".into(), message: String::new() }, None),
            "Home Assistant reported `odd`"
        );
    }
}
