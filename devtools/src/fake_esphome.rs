//! A stand-in for Home Assistant's side of the ESPHome native API, for the tests and the
//! bench: it connects to pivox's API port (plaintext or Noise, as aioesphomeapi does), greets
//! it as HA does, and then lets a test drive voice runs message by message. A small HTTP
//! server hands out the media HA would (replies, announcements, the chime) and counts what
//! was fetched. The real judge is Home Assistant itself (`tests/ha-esphome.sh`); this one is
//! for what HA cannot be made to do on cue (a client that vanishes, garbage, a second client
//! mid-turn).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use pivox::link::esphome::frame::{self, NOISE_PATTERN, NOISE_PROLOGUE};
use pivox::link::esphome::messages::*;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The longest any single expected message may take to arrive.
pub const STEP: Duration = Duration::from_secs(10);

/// One connection to pivox, as HA holds it.
pub struct FakeClient {
    stream: TcpStream,
    input: BytesMut,
    noise: Option<snow::TransportState>,
    /// Every message received, by type, in order (audio frames included).
    pub received: Vec<u32>,
    /// The server's hello: the node name and MAC a Noise server hello carried.
    pub server_hello: Option<Vec<u8>>,
}

impl FakeClient {
    /// Connects, with the Noise handshake when `key` is given.
    pub async fn connect(addr: SocketAddr, key: Option<[u8; 32]>) -> Result<Self, String> {
        let stream = tokio::time::timeout(STEP, TcpStream::connect(addr))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut client = Self { stream, input: BytesMut::new(), noise: None, received: Vec::new(), server_hello: None };
        if let Some(key) = key {
            client.noise_handshake(&key).await?;
        }
        Ok(client)
    }

    async fn noise_handshake(&mut self, key: &[u8; 32]) -> Result<(), String> {
        let mut initiator = snow::Builder::new(NOISE_PATTERN.parse().map_err(|e| format!("{e:?}"))?)
            .prologue(NOISE_PROLOGUE)
            .and_then(|b| b.psk(0, key))
            .and_then(|b| b.build_initiator())
            .map_err(|e| e.to_string())?;
        let mut message = vec![0u8; 128];
        let n = initiator.write_message(&[], &mut message[1..]).map_err(|e| e.to_string())?;
        message.truncate(1 + n);
        let mut out = BytesMut::new();
        frame::put_noise_frame(&mut out, &[]);
        frame::put_noise_frame(&mut out, &message);
        self.stream.write_all(&out).await.map_err(|e| e.to_string())?;
        let hello = self.noise_frame().await?;
        if hello.first() != Some(&1) {
            return Err(format!("server hello {hello:?}"));
        }
        self.server_hello = Some(hello);
        let reply = self.noise_frame().await?;
        match reply.split_first() {
            Some((0, rest)) => {
                let mut payload = [0u8; 64];
                initiator.read_message(rest, &mut payload).map_err(|e| format!("handshake: {e}"))?;
            }
            Some((_, reason)) => return Err(format!("handshake rejected: {}", String::from_utf8_lossy(reason))),
            None => return Err("empty handshake reply".into()),
        }
        self.noise = Some(initiator.into_transport_mode().map_err(|e| e.to_string())?);
        Ok(())
    }

    /// The next raw Noise frame's body (during the handshake).
    pub async fn noise_frame(&mut self) -> Result<Vec<u8>, String> {
        loop {
            if let Some((used, body)) = frame::noise_frame(&self.input).map_err(|e| e.to_string())? {
                let body = self.input[body].to_vec();
                self.input.advance(used);
                return Ok(body);
            }
            self.fill().await?;
        }
    }

    /// Raw bytes as they arrive, for tests of what pivox answers to garbage.
    pub async fn raw(&mut self) -> Result<Vec<u8>, String> {
        if self.input.is_empty() {
            self.fill().await?;
        }
        Ok(self.input.split().to_vec())
    }

    async fn fill(&mut self) -> Result<(), String> {
        match tokio::time::timeout(STEP, self.stream.read_buf(&mut self.input)).await {
            Err(_) => Err(format!("nothing from pivox for {STEP:?}")),
            Ok(Ok(0)) => Err("pivox closed the connection".into()),
            Ok(Err(e)) => Err(format!("read: {e}")),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// Writes bytes as they are (garbage, half frames).
    pub async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream.write_all(bytes).await.map_err(|e| e.to_string())
    }

    pub async fn send<M: Typed>(&mut self, message: &M) -> Result<(), String> {
        let mut out = BytesMut::new();
        let payload = message.encode_to_vec();
        match self.noise.as_mut() {
            None => frame::put_plain(&mut out, M::TYPE, &payload),
            Some(noise) => {
                let mut plain = Vec::with_capacity(payload.len() + 4);
                plain.extend_from_slice(&(M::TYPE as u16).to_be_bytes());
                plain.extend_from_slice(&(payload.len() as u16).to_be_bytes());
                plain.extend_from_slice(&payload);
                let mut sealed = vec![0u8; plain.len() + 16];
                let n = noise.write_message(&plain, &mut sealed).map_err(|e| e.to_string())?;
                frame::put_noise_frame(&mut out, &sealed[..n]);
            }
        }
        self.stream.write_all(&out).await.map_err(|e| e.to_string())
    }

    /// The next message (pings are answered and skipped).
    pub async fn next(&mut self) -> Result<(u32, Vec<u8>), String> {
        loop {
            let message = match self.noise.as_mut() {
                None => match frame::plain_message(&self.input).map_err(|e| e.to_string())? {
                    Some((used, kind, range)) => {
                        let payload = self.input[range].to_vec();
                        self.input.advance(used);
                        Some((kind, payload))
                    }
                    None => None,
                },
                Some(noise) => match frame::noise_frame(&self.input).map_err(|e| e.to_string())? {
                    Some((used, body)) => {
                        let mut plain = vec![0u8; body.len()];
                        let n = noise.read_message(&self.input[body], &mut plain).map_err(|e| e.to_string())?;
                        self.input.advance(used);
                        let kind = u32::from(u16::from_be_bytes([plain[0], plain[1]]));
                        let len = usize::from(u16::from_be_bytes([plain[2], plain[3]]));
                        Some((kind, plain[4..(4 + len).min(n)].to_vec()))
                    }
                    None => None,
                },
            };
            match message {
                Some((PingRequest::TYPE, _)) => {
                    self.received.push(PingRequest::TYPE);
                    self.send(&PingResponse {}).await?;
                }
                Some((kind, payload)) => {
                    self.received.push(kind);
                    return Ok((kind, payload));
                }
                None => self.fill().await?,
            }
        }
    }

    /// The next message, which must be an `M`.
    pub async fn expect<M: Typed>(&mut self) -> Result<M, String> {
        let (kind, payload) = self.next().await?;
        if kind != M::TYPE {
            return Err(format!("expected message type {}, got {kind}", M::TYPE));
        }
        M::decode(&payload[..]).map_err(|e| e.to_string())
    }

    /// The next message of type `M`, skipping others (state updates, audio).
    pub async fn wait_for<M: Typed>(&mut self) -> Result<M, String> {
        loop {
            let (kind, payload) = self.next().await?;
            if kind == M::TYPE {
                return M::decode(&payload[..]).map_err(|e| e.to_string());
            }
        }
    }

    /// Hello and device info, as HA's config flow probes a device.
    pub async fn hello(&mut self, client_info: &str) -> Result<DeviceInfoResponse, String> {
        self.send(&HelloRequest { client_info: client_info.into(), api_version_major: 1, api_version_minor: 14 })
            .await?;
        let hello = self.expect::<HelloResponse>().await?;
        if hello.api_version_major != 1 {
            return Err(format!("API version {}.{}", hello.api_version_major, hello.api_version_minor));
        }
        self.send(&DeviceInfoRequest {}).await?;
        self.expect::<DeviceInfoResponse>().await
    }

    /// The whole greeting of HA's satellite connection: hello, device info, entities, the
    /// voice subscription and its configuration, state subscription.
    pub async fn greet(&mut self) -> Result<(DeviceInfoResponse, Vec<u32>), String> {
        let info = self.hello("Home Assistant 2026.2.3").await?;
        self.send(&ListEntitiesRequest {}).await?;
        let mut entities = Vec::new();
        loop {
            let (kind, _) = self.next().await?;
            if kind == ListEntitiesDoneResponse::TYPE {
                break;
            }
            entities.push(kind);
        }
        self.send(&SubscribeVoiceAssistantRequest { subscribe: true, flags: 4 }).await?;
        self.send(&VoiceAssistantConfigurationRequest {}).await?;
        self.expect::<VoiceAssistantConfigurationResponse>().await?;
        self.send(&SubscribeStatesRequest {}).await?;
        Ok((info, entities))
    }

    /// A voice event with its data.
    pub async fn event(&mut self, event_type: i32, data: &[(&str, &str)]) -> Result<(), String> {
        let data = data
            .iter()
            .map(|(name, value)| VoiceAssistantEventData { name: (*name).into(), value: (*value).into() })
            .collect();
        self.send(&VoiceAssistantEventResponse { event_type, data }).await
    }

    /// The audio of a turn, until its end marker: the samples, and whether the end came.
    pub async fn audio_until_end(&mut self) -> Result<Vec<i16>, String> {
        let mut samples = Vec::new();
        loop {
            let (kind, payload) = self.next().await?;
            match kind {
                VoiceAssistantAudio::TYPE => {
                    let audio = VoiceAssistantAudio::decode(&payload[..]).map_err(|e| e.to_string())?;
                    samples.extend(audio.data.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
                    if audio.end {
                        return Ok(samples);
                    }
                }
                VoiceAssistantRequest::TYPE => {
                    let request = VoiceAssistantRequest::decode(&payload[..]).map_err(|e| e.to_string())?;
                    return Err(format!("a voice request (start: {}) in the middle of the audio", request.start));
                }
                _ => {}
            }
        }
    }
}

/// Serves files over HTTP on loopback, as HA serves TTS and media; counts the fetches.
pub struct MediaServer {
    pub addr: SocketAddr,
    fetched: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl MediaServer {
    /// Serves `files` (path → body) on 127.0.0.1.
    pub async fn start(files: Vec<(String, Vec<u8>)>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let fetched = Arc::new(Mutex::new(Vec::new()));
        let files = Arc::new(files);
        let log = fetched.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_file(stream, files.clone(), log.clone()));
            }
        });
        Ok(Self { addr, fetched, task })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The paths fetched so far, in order.
    pub fn fetched(&self) -> Vec<String> {
        self.fetched.lock().map(|f| f.clone()).unwrap_or_default()
    }
}

impl Drop for MediaServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_file(mut stream: TcpStream, files: Arc<Vec<(String, Vec<u8>)>>, log: Arc<Mutex<Vec<String>>>) {
    // Head and body go out as two writes: without this the body waits for the head's ACK.
    let _ = stream.set_nodelay(true);
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        match tokio::time::timeout(STEP, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => request.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
    let line = String::from_utf8_lossy(&request);
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    // A file whose path ends in `*` serves every path that starts with the rest.
    let matches = |p: &str| p == path || p.strip_suffix('*').is_some_and(|prefix| path.starts_with(prefix));
    let Some((_, body)) = files.iter().find(|(p, _)| matches(p)) else {
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
        return;
    };
    if let Ok(mut log) = log.lock() {
        log.push(path.clone());
    }
    let kind = if path.ends_with(".wav") { "audio/wav" } else { "audio/mpeg" };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if stream.write_all(head.as_bytes()).await.is_ok() {
        let _ = stream.write_all(body).await;
    }
}

/// Home Assistant as far as pivox's turns need it: connects to pivox at `addr` (waiting up to
/// `wait` for it to listen), greets it, and answers every run with the reply `media` serves
/// under `/api/tts_proxy/` — a new URL each run, so that none comes from pivox's reply cache —
/// until pivox hangs up. Returns how many runs it answered.
pub async fn answer_turns(
    addr: SocketAddr,
    key: Option<[u8; 32]>,
    media: &MediaServer,
    wait: Duration,
) -> Result<usize, String> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut ha = loop {
        match FakeClient::connect(addr, key).await {
            Ok(client) => break client,
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(format!("pivox at {addr}: {e}")),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    ha.greet().await?;
    let mut runs = 0;
    loop {
        let start = match ha.wait_for::<VoiceAssistantRequest>().await {
            Ok(start) => start,
            Err(e) if e.contains("closed") => return Ok(runs),
            // Nothing for a while between turns: ping, as HA does.
            Err(e) if e.contains("nothing from pivox") => {
                ha.send(&PingRequest {}).await?;
                continue;
            }
            Err(e) => return Err(e),
        };
        if !start.start {
            continue;
        }
        runs += 1;
        let url = media.url(&format!("/api/tts_proxy/run-{runs}.mp3"));
        ha.send(&VoiceAssistantResponse { port: 0, error: false }).await?;
        ha.event(event::RUN_START, &[("url", &url)]).await?;
        ha.event(event::STT_START, &[]).await?;
        ha.audio_until_end().await?;
        ha.event(event::STT_END, &[("text", "turn on the kitchen lights")]).await?;
        ha.event(event::INTENT_START, &[]).await?;
        ha.event(event::INTENT_END, &[("conversation_id", "bench"), ("continue_conversation", "0")]).await?;
        ha.event(event::TTS_START, &[("text", "Turned on the light")]).await?;
        ha.event(event::TTS_END, &[("url", &url)]).await?;
        ha.event(event::RUN_END, &[]).await?;
        match ha.wait_for::<VoiceAssistantAnnounceFinished>().await {
            Ok(_) => {}
            Err(e) if e.contains("closed") => return Ok(runs),
            Err(e) => return Err(e),
        }
    }
}
