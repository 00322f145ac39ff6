//! The pivox protocol v1 reference server (`pivox-devtools serve`, or `pivox serve` on a
//! development machine): takes a turn and replies with the user's own utterance (echo) or a
//! fixed WAV. `pivox demo` and the tests talk to it, and it is the starting point for anyone
//! writing a real server (see docs/protocol.md).
//!
//! Each connection is a task. Protocol mistakes by a client are answered with an `error`
//! message and the connection stays up; a frame over the size limit closes it (1009).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message as WsMessage, http};

use pivox::audio::codec::{self, Codec, Decoder, Encoder, OpusSettings};
use pivox::audio::{CODEC_RATE, MAX_FRAME_SAMPLES};
use pivox::link::protocol::{self, AudioHeader, FrameError, HEADER_LEN, Message};
use pivox::secret::Secret;
use pivox::session::TurnId;

/// What the server answers a turn with.
#[derive(Debug, Clone)]
pub enum Reply {
    /// The user's own utterance.
    Echo,
    /// These samples (16 kHz mono), whatever was said.
    Fixed(Arc<Vec<i16>>),
}

#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub listen: SocketAddr,
    pub reply: Reply,
    /// Codecs the server accepts, in its order of preference.
    pub codecs: Vec<Codec>,
    /// When set, clients must send `Authorization: Bearer <token>`.
    pub token: Option<Secret>,
    /// When set, each utterance is written there as `turn-<n>.wav`.
    pub save_dir: Option<PathBuf>,
}

impl ServerOptions {
    pub fn echo(listen: SocketAddr) -> Self {
        Self { listen, reply: Reply::Echo, codecs: vec![Codec::Opus, Codec::Pcm], token: None, save_dir: None }
    }
}

/// One utterance as the server received and decoded it.
#[derive(Debug, Clone)]
pub struct Utterance {
    pub turn: TurnId,
    pub codec: Codec,
    pub samples: Vec<i16>,
    pub frames: u32,
    pub preroll_ms: u32,
}

/// A running server: its address, what it received, and a way to stop it.
pub struct ServerHandle {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Utterance>>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// Stops listening and drops every connection at once, as a crashed server would.
    pub async fn kill(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    pub fn utterances(&self) -> Vec<Utterance> {
        self.received.lock().map(|u| u.clone()).unwrap_or_default()
    }
}

pub async fn start(options: ServerOptions) -> std::io::Result<ServerHandle> {
    let listener = TcpListener::bind(options.listen).await?;
    let addr = listener.local_addr()?;
    let received = Arc::new(Mutex::new(Vec::new()));
    let (stop, stopped) = watch::channel(false);
    let shared = Arc::new(Shared { options, received: received.clone() });
    let task = tokio::spawn(accept_loop(listener, shared, stopped));
    Ok(ServerHandle { addr, received, stop, task })
}

struct Shared {
    options: ServerOptions,
    received: Arc<Mutex<Vec<Utterance>>>,
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let shared = shared.clone();
                    connections.spawn(async move {
                        if let Err(e) = serve_connection(stream, &shared).await {
                            log::info!("client {peer}: {e}");
                        }
                    });
                }
                Err(e) => log::warn!("accept failed: {e}"),
            },
        }
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

type Socket = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn serve_connection(stream: TcpStream, shared: &Shared) -> Result<(), String> {
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let token = shared.options.token.clone();
    // The callback's error type is fixed by tungstenite's handshake API.
    #[allow(clippy::result_large_err)]
    let check_token = move |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        let Some(token) = &token else { return Ok(response) };
        let given = request.headers().get("authorization").and_then(|v| v.to_str().ok());
        if given == Some(format!("Bearer {}", token.expose()).as_str()) {
            Ok(response)
        } else {
            let mut refused = ErrorResponse::new(Some("missing or wrong bearer token".into()));
            *refused.status_mut() = http::StatusCode::UNAUTHORIZED;
            Err(refused)
        }
    };
    let limit = protocol::MAX_TEXT.max(protocol::MAX_AUDIO_FRAME);
    let config = WebSocketConfig::default().max_message_size(Some(limit)).max_frame_size(Some(limit));
    let mut socket = tokio_tungstenite::accept_hdr_async_with_config(stream, check_token, Some(config))
        .await
        .map_err(|e| e.to_string())?;
    let Some((codec, frame_ms)) = handshake(&mut socket, &shared.options).await? else { return Ok(()) };
    let mut connection = Connection { codec, frame_samples: codec::frame_samples(frame_ms), turn: None, shared };
    while let Some(frame) = socket.next().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                // Over-long frames and broken framing end the connection, cleanly.
                let _ = socket.close(None).await;
                return Err(format!("closed: {e}"));
            }
        };
        if let WsMessage::Binary(audio) = &frame
            && audio.len() > protocol::MAX_AUDIO_FRAME
        {
            let close = CloseFrame { code: CloseCode::Size, reason: "audio frame over 4096 bytes".into() };
            let _ = socket.close(Some(close)).await;
            return Err(format!("closed with 1009: a {}-byte audio frame", audio.len()));
        }
        for reply in connection.handle(frame)? {
            socket.send(reply).await.map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Reads `hello` and answers `welcome`: the first of the client's codecs the server accepts.
async fn handshake(socket: &mut Socket, options: &ServerOptions) -> Result<Option<(Codec, u32)>, String> {
    let refuse = |code: &str, message: String| {
        WsMessage::text(Message::Error { turn: None, code: code.into(), message }.to_json())
    };
    let Some(Ok(WsMessage::Text(text))) = socket.next().await else { return Err("no hello".into()) };
    let Ok(Message::Hello { version, codecs, sample_rate, frame_ms, client }) = Message::from_json(&text) else {
        let _ = socket.send(refuse("bad_hello", "the first message must be hello".into())).await;
        return Ok(None);
    };
    let codec = codecs.iter().find(|c| options.codecs.contains(c)).copied();
    let frame_ok =
        |c: Codec| if c == Codec::Opus { matches!(frame_ms, 10 | 20) } else { (10..=100).contains(&frame_ms) };
    let problem = match codec {
        _ if version != protocol::VERSION => {
            Some(("version", format!("this server speaks version {}", protocol::VERSION)))
        }
        _ if sample_rate != CODEC_RATE => Some(("sample_rate", format!("this server takes {CODEC_RATE} Hz"))),
        None => Some(("codec", format!("no common codec; this server takes {:?}", options.codecs))),
        Some(c) if !frame_ok(c) => Some(("frame_ms", format!("{frame_ms} ms frames are not allowed for {c}"))),
        Some(_) => None,
    };
    if let Some((code, message)) = problem {
        let _ = socket.send(refuse(code, message)).await;
        return Ok(None);
    }
    let codec = codec.unwrap_or(Codec::Pcm);
    log::info!("client {client} connected: {codec}, {frame_ms} ms frames");
    let welcome = Message::Welcome {
        version: protocol::VERSION,
        server: "pivox reference server".into(),
        codec,
        sample_rate: CODEC_RATE,
        frame_ms,
    };
    socket.send(WsMessage::text(welcome.to_json())).await.map_err(|e| e.to_string())?;
    Ok(Some((codec, frame_ms)))
}

struct TurnInProgress {
    turn: TurnId,
    decoder: Decoder,
    samples: Vec<i16>,
    /// The timestamp the next frame should carry; a later one means the client left out silence.
    next_timestamp: u32,
    frames: u32,
    preroll_ms: u32,
}

struct Connection<'a> {
    codec: Codec,
    frame_samples: usize,
    turn: Option<TurnInProgress>,
    shared: &'a Shared,
}

fn error(turn: Option<TurnId>, code: &str, message: String) -> WsMessage {
    WsMessage::text(Message::Error { turn, code: code.into(), message }.to_json())
}

impl Connection<'_> {
    /// Handles one client frame; returns what to send back.
    fn handle(&mut self, frame: WsMessage) -> Result<Vec<WsMessage>, String> {
        match frame {
            WsMessage::Text(text) => match Message::from_json(&text) {
                Ok(message) => self.message(message),
                Err(e) => {
                    log::warn!("client sent a bad message: {e}");
                    Ok(vec![error(None, e.code(), e.to_string())])
                }
            },
            WsMessage::Binary(frame) => Ok(self.audio(&frame).err().into_iter().collect()),
            _ => Ok(vec![]),
        }
    }

    fn message(&mut self, message: Message) -> Result<Vec<WsMessage>, String> {
        match message {
            Message::TurnStart { turn, preroll_ms } => {
                let decoder = Decoder::new(self.codec).map_err(|e| e.to_string())?;
                self.turn = Some(TurnInProgress {
                    turn,
                    decoder,
                    samples: Vec::new(),
                    next_timestamp: 0,
                    frames: 0,
                    preroll_ms,
                });
                Ok(vec![])
            }
            Message::TurnCancel { turn } => {
                if self.turn.as_ref().is_some_and(|t| t.turn == turn) {
                    self.turn = None;
                }
                Ok(vec![])
            }
            Message::TurnEnd { turn, frames, .. } => match self.turn.take() {
                Some(t) if t.turn == turn => {
                    if t.frames != frames {
                        log::warn!("turn {turn}: client says {frames} frames, {} arrived", t.frames);
                    }
                    Ok(self.reply(t))
                }
                other => {
                    self.turn = other;
                    Ok(vec![error(Some(turn), "wrong_turn", format!("turn {turn} was not started"))])
                }
            },
            other => Ok(vec![error(None, "unexpected", format!("a server does not take {}", other.to_json()))]),
        }
    }

    fn audio(&mut self, frame: &[u8]) -> Result<(), WsMessage> {
        let (header, payload) =
            AudioHeader::parse(frame).map_err(|e: FrameError| error(None, e.code(), e.to_string()))?;
        let Some(turn) = self.turn.as_mut().filter(|t| AudioHeader::tag(t.turn) == header.turn_tag) else {
            return Err(error(None, "wrong_turn", format!("audio for turn tag {} outside that turn", header.turn_tag)));
        };
        let mut pcm = [0i16; MAX_FRAME_SAMPLES];
        let pcm = &mut pcm[..self.frame_samples];
        // Frames the client left out (Opus DTX silence) are filled by the decoder.
        let gap = header.timestamp.saturating_sub(turn.next_timestamp) as usize / self.frame_samples;
        for _ in 0..gap.min(500) {
            let n = turn.decoder.decode(None, pcm).unwrap_or(0);
            turn.samples.extend_from_slice(&pcm[..n]);
        }
        let n =
            turn.decoder.decode(Some(payload), pcm).map_err(|e| error(Some(turn.turn), "bad_audio", e.to_string()))?;
        turn.samples.extend_from_slice(&pcm[..n]);
        turn.next_timestamp = header.timestamp.wrapping_add(n as u32);
        turn.frames += 1;
        Ok(())
    }

    /// Stores the utterance and builds the reply: text, then audio frames, then the end.
    fn reply(&mut self, turn: TurnInProgress) -> Vec<WsMessage> {
        let seconds = turn.samples.len() as f64 / f64::from(CODEC_RATE);
        log::info!("turn {}: {:.2} s of {} audio in {} frames", turn.turn, seconds, self.codec, turn.frames);
        if let Some(dir) = &self.shared.options.save_dir {
            save_wav(&dir.join(format!("turn-{}.wav", turn.turn)), &turn.samples);
        }
        let reply_samples = match &self.shared.options.reply {
            Reply::Echo => turn.samples.clone(),
            Reply::Fixed(samples) => samples.to_vec(),
        };
        let id = turn.turn;
        if let Ok(mut received) = self.shared.received.lock() {
            received.push(Utterance {
                turn: id,
                codec: self.codec,
                samples: turn.samples,
                frames: turn.frames,
                preroll_ms: turn.preroll_ms,
            });
        }
        let mut out = vec![
            WsMessage::text(
                Message::ReplyText { turn: id, text: format!("echo of {seconds:.2} s of audio") }.to_json(),
            ),
            WsMessage::text(Message::ReplyStart { turn: id }.to_json()),
        ];
        let opus = OpusSettings { bitrate: 32_000, complexity: 5, fec: false, dtx: false };
        let Ok(mut encoder) = Encoder::new(self.codec, &opus) else { return out };
        let mut packet = [0u8; codec::MAX_PACKET];
        let mut seq = 0u16;
        for (i, chunk) in reply_samples.chunks(self.frame_samples).enumerate() {
            let mut frame = [0i16; MAX_FRAME_SAMPLES];
            frame[..chunk.len()].copy_from_slice(chunk);
            let Ok(Some(len)) = encoder.encode(&frame[..self.frame_samples], &mut packet) else { continue };
            let header =
                AudioHeader { turn_tag: AudioHeader::tag(id), seq, timestamp: (i * self.frame_samples) as u32 };
            let mut bytes = Vec::with_capacity(HEADER_LEN + len);
            bytes.extend_from_slice(&header.to_bytes());
            bytes.extend_from_slice(&packet[..len]);
            out.push(WsMessage::binary(bytes));
            seq = seq.wrapping_add(1);
        }
        out.push(WsMessage::text(Message::ReplyEnd { turn: id, frames: u32::from(seq) }.to_json()));
        out
    }
}

fn save_wav(path: &std::path::Path, samples: &[i16]) {
    if let Err(e) = pivox_hal::sim::write_wav(path, CODEC_RATE, samples) {
        log::warn!("{e}");
    }
}
