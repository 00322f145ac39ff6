//! The pivox protocol v1 client: one WebSocket connection kept open between turns, a
//! heartbeat that notices a dead server within `ping_timeout`, and reconnection with
//! backoff. Runs as a task; the session talks to it through a [`LinkHandle`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::backoff::Retry;
use super::protocol::{self, AudioHeader, Message, ws_frame_len};
use super::{Command, Counters, Event, LinkHandle, LinkParams};
use crate::audio::CODEC_RATE;
use crate::audio::codec::Codec;
use crate::repeats::{Repeats, more};
use crate::session::TurnId;
use crate::text::shorten;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub fn spawn(params: LinkParams) -> Result<LinkHandle, String> {
    let connector = super::tls::connector(&params.server)?;
    let (commands, command_rx) = mpsc::channel(256);
    let (event_tx, events) = mpsc::channel(1024);
    let counters = Arc::new(Counters::default());
    let link = Link { params, connector, events: event_tx, counters: counters.clone() };
    let task = tokio::spawn(link.run(command_rx));
    Ok(LinkHandle { commands, events, counters, task })
}

struct Link {
    params: LinkParams,
    connector: Option<Connector>,
    events: mpsc::Sender<Event>,
    counters: Arc<Counters>,
}

/// What to report once a message is written.
type Done = Box<dyn FnOnce(Instant) -> Event + Send>;

/// The turn being streamed and how many of its audio frames have been written.
#[derive(Default)]
struct TurnAudio {
    turn: Option<TurnId>,
    frames: u32,
}

/// A failed connection attempt.
struct Failed {
    reason: String,
    /// The server's port accepted the TCP connection: the attempt cost the server real work.
    reached: bool,
}

/// Why a connection ended.
enum Ended {
    /// The session closed the link: stop for good.
    Closed,
    Lost(String),
}

impl Link {
    async fn run(self, mut commands: mpsc::Receiver<Command>) {
        let server = &self.params.server;
        let mut retry = Retry::new(server.reconnect_min, server.reconnect_max);
        let mut failures = 0u32;
        loop {
            let mut reached = true;
            match self.connect().await {
                Ok((socket, codec, name)) => {
                    log::debug!("connected to {} ({name}), codec {codec}", server.url);
                    failures = 0;
                    retry.reset();
                    self.emit(Event::Up { codec, server: name }).await;
                    match self.serve(socket, &mut commands).await {
                        Ended::Closed => return,
                        Ended::Lost(reason) => {
                            log::warn!("lost the connection to {}: {reason}", server.url);
                            self.emit(Event::Down { reason, refused: false }).await;
                        }
                    }
                }
                Err(Failed { reason, reached: got_there }) => {
                    reached = got_there;
                    failures += 1;
                    // Say it once; repeats of the same failure go to debug so the journal stays readable.
                    if failures == 1 {
                        log::warn!("cannot connect to {}: {reason}; retrying with backoff", server.url);
                        self.emit(Event::Down { reason, refused: false }).await;
                    } else {
                        log::debug!("attempt {failures} to connect to {} failed: {reason}", server.url);
                    }
                }
            }
            if !super::drain_until(tokio::time::sleep(retry.next_delay(reached)), &mut commands).await {
                return;
            }
        }
    }

    async fn emit(&self, event: Event) {
        // The receiver only goes away at shutdown, when nothing needs the event any more.
        let _ = self.events.send(event).await;
    }

    /// Connects and greets; a failure says whether the server's port was reached at all.
    async fn connect(&self) -> Result<(Socket, Codec, String), Failed> {
        let stream = super::socket::connect(&self.uri()?, CONNECT_TIMEOUT)
            .await
            .map_err(|reason| Failed { reason, reached: false })?;
        self.handshake(stream).await.map_err(|reason| Failed { reason, reached: true })
    }

    fn uri(&self) -> Result<tokio_tungstenite::tungstenite::http::Uri, Failed> {
        let url = self.params.server.url.as_str();
        url.parse().map_err(|e| Failed { reason: format!("server.url `{url}`: {e}"), reached: false })
    }

    async fn handshake(&self, stream: TcpStream) -> Result<(Socket, Codec, String), String> {
        let p = &self.params;
        let mut request = p.server.url.as_str().into_client_request().map_err(|e| e.to_string())?;
        if let Some(token) = &p.server.token {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                .map_err(|_| "the token has characters an HTTP header cannot carry".to_string())?;
            value.set_sensitive(true);
            request.headers_mut().insert("authorization", value);
        }
        let config = WebSocketConfig::default()
            .max_message_size(Some(protocol::MAX_TEXT.max(protocol::MAX_AUDIO_FRAME)))
            .max_frame_size(Some(protocol::MAX_TEXT.max(protocol::MAX_AUDIO_FRAME)));
        let connecting =
            tokio_tungstenite::client_async_tls_with_config(request, stream, Some(config), self.connector.clone());
        let (mut socket, _) = match timeout(CONNECT_TIMEOUT, connecting).await {
            Err(_) => return Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
            Ok(Err(tungstenite::Error::Http(response))) if response.status() == 401 => {
                return Err("the server refused the token (HTTP 401): check server.token_file".into());
            }
            Ok(Err(e)) => return Err(super::tls::explain(e.to_string())),
            Ok(Ok(connected)) => connected,
        };
        let hello = Message::Hello {
            version: protocol::VERSION,
            client: concat!("pivox/", env!("CARGO_PKG_VERSION")).into(),
            codecs: p.codecs.clone(),
            sample_rate: CODEC_RATE,
            frame_ms: p.frame_ms,
        };
        socket.send(WsMessage::text(hello.to_json())).await.map_err(|e| e.to_string())?;
        let answer =
            timeout(CONNECT_TIMEOUT, socket.next()).await.map_err(|_| "no welcome from the server".to_string())?;
        let text = match answer {
            Some(Ok(WsMessage::Text(text))) => text,
            Some(Ok(other)) => return Err(format!("expected a welcome message, got {other:?}")),
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the server closed the connection during the handshake".into()),
        };
        match Message::from_json(&text).map_err(|e| format!("bad welcome: {e}"))? {
            Message::Welcome { version, server, codec, sample_rate, frame_ms } => {
                if version != protocol::VERSION
                    || sample_rate != CODEC_RATE
                    || frame_ms != p.frame_ms
                    || !p.codecs.contains(&codec)
                {
                    return Err(format!(
                        "the server wants version {version}, {codec} at {sample_rate} Hz in {frame_ms} ms frames; \
                         this pivox offers version {}, {:?} at {CODEC_RATE} Hz in {} ms frames",
                        protocol::VERSION,
                        p.codecs,
                        p.frame_ms
                    ));
                }
                Ok((socket, codec, server))
            }
            Message::Error { code, message, .. } => Err(format!("the server refused: {code}: {message}")),
            other => Err(format!("expected a welcome message, got {}", other.to_json())),
        }
    }

    /// Runs one connection until it fails or the session closes the link.
    async fn serve(&self, socket: Socket, commands: &mut mpsc::Receiver<Command>) -> Ended {
        let (mut sink, mut stream) = socket.split();
        // Broken frames from the server: the first is logged, the rest counted.
        let mut bad_frames = Repeats::default();
        let ended = self.serve_loop(&mut sink, &mut stream, commands, &mut bad_frames).await;
        let n = bad_frames.finish();
        if n > 0 {
            log::warn!("the server sent {n} more bad frames after the first warning on this connection");
        }
        ended
    }

    async fn serve_loop(
        &self,
        sink: &mut SplitSink<Socket, WsMessage>,
        stream: &mut SplitStream<Socket>,
        commands: &mut mpsc::Receiver<Command>,
        bad_frames: &mut Repeats,
    ) -> Ended {
        let server = &self.params.server;
        let mut ping = tokio::time::interval(server.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let mut turn_audio = TurnAudio::default();
        // A write that cannot finish within the ping timeout means the peer is gone.
        let write_limit = server.ping_timeout;
        loop {
            tokio::select! {
                // Commands from the session, written in the order they were queued.
                command = commands.recv() => {
                    let Some(command) = command else {
                        let _ = timeout(Duration::from_secs(1), sink.send(WsMessage::Close(None))).await;
                        return Ended::Closed;
                    };
                    let Some((message, done)) = self.encode(command, &mut turn_audio) else { continue };
                    let len = ws_frame_len(message.len(), true);
                    match timeout(write_limit, sink.send(message)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return Ended::Lost(e.to_string()),
                        Err(_) => return Ended::Lost(format!("a write did not finish within {write_limit:?}")),
                    }
                    self.counters.bytes_up.fetch_add(len as u64, Ordering::Relaxed);
                    if let Some(event) = done {
                        self.emit(event(Instant::now())).await;
                    }
                }
                // Frames from the server.
                frame = stream.next() => {
                    last_heard = Instant::now();
                    match frame {
                        None => return Ended::Lost("the server closed the connection".into()),
                        Some(Err(e)) => return Ended::Lost(e.to_string()),
                        Some(Ok(WsMessage::Close(close))) => {
                            return Ended::Lost(format!("the server closed the connection ({})",
                                close.map(|c| format!("{}: {}", c.code, c.reason)).unwrap_or_default()));
                        }
                        Some(Ok(WsMessage::Binary(frame))) if frame.len() > protocol::MAX_AUDIO_FRAME => {
                            // docs/protocol.md: an oversized frame closes the connection (1009).
                            let close = CloseFrame { code: CloseCode::Size, reason: "audio frame over 4096 bytes".into() };
                            let _ = timeout(Duration::from_secs(1), sink.send(WsMessage::Close(Some(close)))).await;
                            return Ended::Lost(format!(
                                "the server sent a {}-byte audio frame (at most {} allowed); closed with 1009",
                                frame.len(), protocol::MAX_AUDIO_FRAME
                            ));
                        }
                        Some(Ok(message)) => self.receive(message, bad_frames).await,
                    }
                }
                // Heartbeat: a ping each interval; silence past the timeout means the server is gone.
                _ = ping.tick() => {
                    if last_heard.elapsed() > server.ping_timeout {
                        return Ended::Lost(format!("no answer from the server for {:?}", server.ping_timeout));
                    }
                    if timeout(write_limit, sink.send(WsMessage::Ping(Default::default()))).await.map_or(true, |r| r.is_err()) {
                        return Ended::Lost("cannot send a ping".into());
                    }
                }
            }
        }
    }

    /// The WebSocket message for a command, and the event to report once it is written;
    /// `None`: nothing to send.
    fn encode(&self, command: Command, audio: &mut TurnAudio) -> Option<(WsMessage, Option<Done>)> {
        Some(match command {
            Command::StartTurn { turn, preroll_ms } => {
                *audio = TurnAudio { turn: Some(turn), frames: 0 };
                (WsMessage::text(Message::TurnStart { turn, preroll_ms }.to_json()), None)
            }
            Command::Audio { turn, frame } => {
                let first = audio.turn == Some(turn) && audio.frames == 0;
                if audio.turn == Some(turn) {
                    audio.frames += 1;
                }
                let event = first.then(|| Box::new(move |at| Event::FirstAudioSent { turn, at }) as Done);
                (WsMessage::Binary(frame), event)
            }
            Command::EndTurn { turn, reason, frames } => {
                let written = if audio.turn == Some(turn) { audio.frames } else { 0 };
                (
                    WsMessage::text(Message::TurnEnd { turn, reason: reason.into(), frames }.to_json()),
                    Some(Box::new(move |at| Event::EndSent { turn, at, frames: written }) as Done),
                )
            }
            Command::CancelTurn { turn } => (WsMessage::text(Message::TurnCancel { turn }.to_json()), None),
            // Connected already: nothing to do, and nothing to send.
            Command::ConnectNow => return None,
        })
    }

    /// Handles one data frame from the server. Bad frames are logged and skipped: one
    /// broken message is no reason to drop a working connection.
    async fn receive(&self, message: WsMessage, bad_frames: &mut Repeats) {
        let from_server = |len| ws_frame_len(len, false) as u64;
        match message {
            WsMessage::Binary(frame) => {
                self.counters.bytes_down.fetch_add(from_server(frame.len()), Ordering::Relaxed);
                let at = Instant::now();
                match AudioHeader::parse(&frame) {
                    Ok((header, _)) => {
                        let payload = frame.slice(protocol::HEADER_LEN..);
                        self.emit(Event::ReplyAudio { header, payload, at }).await;
                    }
                    Err(e) => {
                        if let Some(before) = bad_frames.occur(at) {
                            log::warn!("server sent a bad audio frame: {e}{}", more(before));
                        }
                    }
                }
            }
            WsMessage::Text(text) => {
                self.counters.bytes_down.fetch_add(from_server(text.len()), Ordering::Relaxed);
                let event = match Message::from_json(&text) {
                    Ok(Message::ReplyStart { turn }) => Event::ReplyStart { turn },
                    Ok(Message::ReplyEnd { turn, .. }) => Event::ReplyEnd { turn },
                    Ok(Message::Transcript { turn, text }) => Event::Transcript { turn, text },
                    Ok(Message::ReplyText { turn, text }) => Event::ReplyText { turn, text },
                    Ok(Message::Error { turn, code, message }) => Event::ServerError { turn, code, message },
                    Ok(other) => {
                        if let Some(before) = bad_frames.occur(Instant::now()) {
                            let json = other.to_json();
                            log::warn!(
                                "server sent a message only a client sends: {}{}",
                                shorten(&json, 200),
                                more(before)
                            );
                        }
                        return;
                    }
                    Err(e) => {
                        if let Some(before) = bad_frames.occur(Instant::now()) {
                            log::warn!("server sent a bad message: {}{}", shorten(&e.to_string(), 200), more(before));
                        }
                        return;
                    }
                };
                self.emit(event).await;
            }
            // Pings are answered by tungstenite itself; pongs only prove the server is alive.
            _ => {}
        }
    }
}
