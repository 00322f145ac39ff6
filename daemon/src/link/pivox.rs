//! The pivox protocol v1 client: one WebSocket connection kept open between turns, and a
//! heartbeat that notices a dead server within `ping_timeout`. The reconnecting is the shared
//! [`lifecycle`](super::lifecycle); this is how to connect and how to serve a connection.
//! Audio is framed here: each [`AudioChunk`] gets the protocol's 7-byte header on the way
//! out, and reply frames lose it on the way in.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};

use super::endpoint::{Endpoint, WEBSOCKET_URL};
use super::lifecycle::{self, Connected, Ended, Events, Failure};
use super::protocol::{self, AudioHeader, HEADER_LEN, Message, ws_frame_len};
use super::{
    AudioChunk, CONNECT_TIMEOUT, Command, Counters, Event, LinkHandle, LinkParams, ServerSpec, Socket, TurnFailure,
    TurnId,
};
use crate::audio::CODEC_RATE;
use crate::audio::codec::Codec;
use crate::backoff::Retry;
use crate::repeats::{Repeats, more};
use crate::settings::{Checker, Section};
use crate::text::shorten;

/// `kind = "pivox"`: the shared connection keys, nothing of its own.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: Endpoint,
}

/// Reads the `[server]` section for the pivox protocol (the [`super::BACKENDS`] row).
pub fn settings(section: &mut Section, checker: &dyn Checker) -> Arc<dyn ServerSpec> {
    Arc::new(Settings { server: Endpoint::read(section, checker, &WEBSOCKET_URL) })
}

impl ServerSpec for Settings {
    fn kind(&self) -> &'static str {
        "pivox"
    }

    fn describe(&self) -> String {
        self.server.url.clone()
    }

    fn spawn(&self, params: LinkParams) -> Result<LinkHandle, String> {
        let connector = super::tls::connector(&self.server)?;
        let server = self.server.clone();
        let retry = Retry::new(server.reconnect_min, server.reconnect_max);
        super::start(retry, |wiring| {
            let arena = BytesMut::with_capacity(16 * 1024);
            let (events, counters) = (wiring.events, wiring.counters);
            Ok(Link { server, params, connector, events, counters, arena, turns: [None; 2] })
        })
    }

    fn endpoint(&self) -> Option<&Endpoint> {
        Some(&self.server)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

struct Link {
    server: Endpoint,
    params: LinkParams,
    connector: Option<Connector>,
    events: Events,
    counters: Arc<Counters>,
    /// Outgoing audio frames (header + packet) are carved from here, not allocated one by one.
    arena: BytesMut,
    /// The last two turns started, newest first: reply frames carry only the low 8 bits of
    /// their turn, and frames of a turn just barged in on may still be on their way.
    turns: [Option<TurnId>; 2],
}

/// What to report once a message is written.
type Done = Box<dyn FnOnce(Instant) -> Event + Send>;

/// The turn being streamed and how many of its audio frames have been written.
#[derive(Default)]
struct TurnAudio {
    turn: Option<TurnId>,
    frames: u32,
}

impl lifecycle::Backend for Link {
    type Connection = (Socket, Codec, String);

    fn describe(&self) -> String {
        self.server.url.clone()
    }

    async fn connect(&mut self) -> Result<Connected<Self::Connection>, Failure> {
        let (socket, codec, server) = self.dial().await?;
        Ok(Connected { connection: (socket, codec, server.clone()), codec, server })
    }

    async fn serve(&mut self, (socket, ..): Self::Connection, commands: &mut mpsc::Receiver<Command>) -> Ended {
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

    fn close(&mut self) {}
}

impl Link {
    /// Connects and greets; a failure says whether the server's port was reached at all.
    async fn dial(&self) -> Result<(Socket, Codec, String), Failure> {
        let url = self.server.url.as_str();
        let uri = url.parse().map_err(|e| Failure::Unreached(format!("server.url `{url}`: {e}")))?;
        let stream = super::socket::connect(&uri, CONNECT_TIMEOUT).await.map_err(Failure::Unreached)?;
        self.handshake(stream).await.map_err(Failure::Failed)
    }

    async fn handshake(&self, stream: TcpStream) -> Result<(Socket, Codec, String), String> {
        let p = &self.params;
        let mut request = self.server.url.as_str().into_client_request().map_err(|e| e.to_string())?;
        if let Some(token) = &self.server.token {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                .map_err(|_| "the token has characters an HTTP header cannot carry".to_string())?;
            value.set_sensitive(true);
            request.headers_mut().insert("authorization", value);
        }
        let config = WebSocketConfig::default()
            .read_buffer_size(super::WS_READ_BUFFER)
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

    async fn serve_loop(
        &mut self,
        sink: &mut SplitSink<Socket, WsMessage>,
        stream: &mut SplitStream<Socket>,
        commands: &mut mpsc::Receiver<Command>,
        bad_frames: &mut Repeats,
    ) -> Ended {
        let server = self.server.clone();
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
                    // The message's time is when it is handed to the socket: taken after the
                    // write, it would count whatever the write woke (the server itself, on
                    // loopback) and ran before this task resumed.
                    let handed_at = Instant::now();
                    match timeout(write_limit, sink.send(message)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return Ended::Lost(e.to_string()),
                        Err(_) => return Ended::Lost(format!("a write did not finish within {write_limit:?}")),
                    }
                    self.counters.bytes_up.fetch_add(len as u64, Ordering::Relaxed);
                    if let Some(event) = done {
                        self.events.emit(event(handed_at)).await;
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
    fn encode(&mut self, command: Command, audio: &mut TurnAudio) -> Option<(WsMessage, Option<Done>)> {
        Some(match command {
            Command::StartTurn { turn, preroll_ms } => {
                *audio = TurnAudio { turn: Some(turn), frames: 0 };
                self.turns = [Some(turn), self.turns[0]];
                (WsMessage::text(Message::TurnStart { turn, preroll_ms }.to_json()), None)
            }
            Command::Audio(AudioChunk { turn, seq, timestamp, payload }) => {
                let header = AudioHeader { turn_tag: AudioHeader::tag(turn), seq, timestamp };
                self.arena.reserve(HEADER_LEN + payload.len());
                self.arena.put_slice(&header.to_bytes());
                self.arena.put_slice(&payload);
                let frame = self.arena.split().freeze();
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
            Command::ConnectNow | Command::Button { .. } | Command::TurnOver { .. } => return None,
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
                        match self.turns.into_iter().flatten().find(|t| AudioHeader::tag(*t) == header.turn_tag) {
                            Some(turn) => {
                                let payload = frame.slice(HEADER_LEN..);
                                let chunk = AudioChunk { turn, seq: header.seq, timestamp: header.timestamp, payload };
                                self.events.emit(Event::ReplyAudio { chunk, at }).await;
                            }
                            None => {
                                if let Some(before) = bad_frames.occur(at) {
                                    log::warn!(
                                        "server sent audio for turn tag {}, a turn pivox did not start; dropped{}",
                                        header.turn_tag,
                                        more(before)
                                    );
                                }
                            }
                        }
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
                    Ok(Message::Error { turn, code, message }) => {
                        Event::TurnFailed { turn, failure: TurnFailure::Server { code, message } }
                    }
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
                self.events.emit(event).await;
            }
            // Pings are answered by tungstenite itself; pongs only prove the server is alive.
            _ => {}
        }
    }
}
