//! One client connection to pivox's ESPHome API port, on a task of its own: the framing and
//! Noise handshake, the session messages every client gets answered (hello, device info,
//! entities, pings, disconnect, key provisioning), and the voice messages handed to the link
//! (`mod.rs`) once the client has subscribed to voice.
//!
//! Connections are independent: HA's config-flow probe, a second HA or a stray client each
//! get their own task, and only the connection that subscribed to voice carries turns — so a
//! probe that connects and disconnects in the middle of a turn does not touch it.
//! A client that sends nothing for [`PING_AFTER`] is pinged; one silent for [`SILENT_LIMIT`]
//! (HA pings every 20 s) is dropped. A malformed or oversized frame closes its connection with
//! one log line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::device::Device;
use super::frame::{self, FrameError, Handshake, Noise};
use super::media::{self, Loudness};
use super::messages::*;

/// A client silent this long is sent a ping.
pub const PING_AFTER: Duration = Duration::from_secs(30);
/// A client silent this long is gone (a crashed HA, a dropped network): its connection is closed.
pub const SILENT_LIMIT: Duration = Duration::from_secs(60);
/// A write that takes longer than this means the client stopped reading.
const WRITE_LIMIT: Duration = Duration::from_secs(5);
/// After HA set a key, its plaintext connection is ended once HA has finished setting the
/// device up (its state subscription, the last step) — or after this long.
const GOODBYE_AFTER: Duration = Duration::from_secs(3);
/// The goodbye's delay once HA's set-up is done.
const SET_UP_DONE: Duration = Duration::from_millis(100);
/// How long a client has to answer pivox's goodbye.
const GOODBYE_LIMIT: Duration = Duration::from_secs(1);
/// At most this many clients at once; more are refused (a scan must not use up the Pi).
pub const MAX_CLIENTS: usize = 8;
/// Messages queued for one client; a client that falls this far behind is dropped.
const QUEUE: usize = 256;

/// What a connection tells the link.
#[derive(Debug)]
pub enum FromClient {
    /// The client subscribed to voice: turns go to it from now on.
    Subscribed { id: u64, client: String, to: mpsc::Sender<ToClient> },
    /// The client unsubscribed, or its connection ended.
    Gone { id: u64, why: String },
    /// A voice message from a subscribed client.
    Voice { id: u64, message: Voice },
    /// A command for the media player (volume, mute, a URL to play), from any client.
    Media(MediaPlayerCommandRequest),
}

/// The voice messages HA sends a satellite.
#[derive(Debug)]
pub enum Voice {
    Response(VoiceAssistantResponse),
    Event(VoiceAssistantEventResponse),
    Timer(VoiceAssistantTimerEventResponse),
    Announce(VoiceAssistantAnnounceRequest),
}

/// What the link asks of a connection.
#[derive(Debug)]
pub enum ToClient {
    /// A message to send: its type and encoded payload.
    Message(u32, Bytes),
    /// Close the connection, saying why in the log.
    Close(String),
}

/// The entities HA sees besides the satellite: the button, as a binary sensor automations can
/// use.
pub const BUTTON_KEY: u32 = 1;

/// What every client is shown as entity states.
#[derive(Clone)]
pub struct States {
    pub button: watch::Receiver<bool>,
    pub loudness: watch::Receiver<Loudness>,
    /// Bytes on the wire, every connection's (the turn's figures count them).
    pub counters: Arc<crate::link::Counters>,
}

/// Accepts clients until the link closes (`hub` closed), each on its own task.
pub async fn accept(listener: TcpListener, device: Arc<Device>, hub: mpsc::Sender<FromClient>, states: States) {
    let clients = Arc::new(tokio::sync::Semaphore::new(MAX_CLIENTS));
    let mut next_id = 0u64;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    log::warn!("ESPHome API: accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = hub.closed() => return,
        };
        let Ok(permit) = clients.clone().try_acquire_owned() else {
            log::warn!("ESPHome API: {peer} refused: {MAX_CLIENTS} clients are connected already");
            continue;
        };
        next_id += 1;
        let client = Client::new(next_id, peer, device.clone(), hub.clone(), states.clone());
        tokio::spawn(async move {
            client.serve(stream).await;
            drop(permit);
        });
    }
}

/// How the connection's bytes are framed.
enum Wire {
    Plain,
    /// Waiting for the client's Noise hello, then its handshake message.
    NoiseHello([u8; 32]),
    NoiseHandshake([u8; 32]),
    Noise(Box<Noise>),
}

enum Flow {
    Go,
    Close(String),
}

struct Client {
    id: u64,
    peer: SocketAddr,
    device: Arc<Device>,
    hub: mpsc::Sender<FromClient>,
    states: States,
    wire: Wire,
    /// The client's name from its hello (`None` until then).
    name: Option<String>,
    subscribed: bool,
    subscribed_states: bool,
    /// HA set a key: the goodbye (DisconnectRequest) goes out at `.0`; the connection is closed
    /// at the answer, or at `.1`.
    goodbye: Option<(Instant, Option<Instant>)>,
    to_self: mpsc::Sender<ToClient>,
    out: BytesMut,
}

impl Client {
    fn new(id: u64, peer: SocketAddr, device: Arc<Device>, hub: mpsc::Sender<FromClient>, states: States) -> Self {
        let wire = match device.key() {
            Some(key) => Wire::NoiseHello(key),
            None => Wire::Plain,
        };
        // Replaced in serve(); a sender is needed to build the struct.
        let (to_self, _) = mpsc::channel(1);
        Self {
            id,
            peer,
            device,
            hub,
            states,
            wire,
            name: None,
            subscribed: false,
            subscribed_states: false,
            goodbye: None,
            to_self,
            out: BytesMut::with_capacity(4096),
        }
    }

    /// When the goodbye after a key change is next due (its answer's deadline once sent).
    fn goodbye_wake(&self, otherwise: Instant) -> Instant {
        match self.goodbye {
            Some((_, Some(close_by))) => close_by,
            Some((at, None)) => at,
            None => otherwise,
        }
    }

    fn who(&self) -> String {
        match &self.name {
            Some(name) => format!("{name} ({})", self.peer),
            None => self.peer.to_string(),
        }
    }

    async fn serve(mut self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let _ = crate::link::socket::tune(&stream);
        let (mut reader, mut writer) = stream.into_split();
        let (to_self, mut inbox) = mpsc::channel(QUEUE);
        self.to_self = to_self;
        let mut input = BytesMut::with_capacity(4096);
        let mut last_heard = Instant::now();
        let mut pinged = false;
        let mut keyed = self.device.keyed();
        keyed.mark_unchanged();
        log::debug!("ESPHome API: {} connected", self.peer);
        let why = loop {
            let wake = if pinged { last_heard + SILENT_LIMIT } else { last_heard + PING_AFTER };
            let goodbye_at = self.goodbye_wake(wake);
            let flow = tokio::select! {
                read = reader.read_buf(&mut input) => match read {
                    Ok(0) => Flow::Close("closed the connection".into()),
                    Err(e) => Flow::Close(format!("connection failed: {e}")),
                    Ok(n) => {
                        self.states.counters.bytes_down.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                        last_heard = Instant::now();
                        pinged = false;
                        self.input(&mut input).await
                    }
                },
                Some(order) = inbox.recv() => match order {
                    ToClient::Message(kind, payload) => self.queue(kind, &payload),
                    ToClient::Close(why) => Flow::Close(why),
                },
                changed = self.states.button.changed(), if self.subscribed_states => match changed {
                    Ok(()) => self.button_state(),
                    Err(_) => Flow::Close("pivox is stopping".into()),
                },
                changed = self.states.loudness.changed(), if self.subscribed_states => match changed {
                    Ok(()) => self.media_state(),
                    Err(_) => Flow::Close("pivox is stopping".into()),
                },
                () = self.hub.closed() => Flow::Close("pivox is stopping".into()),
                // HA set a key: this plaintext connection ends, and HA comes back encrypted.
                // HA set a key: this plaintext connection says goodbye (as ESPHome does), and HA
                // comes back encrypted.
                _ = keyed.changed(), if matches!(self.wire, Wire::Plain) && self.goodbye.is_none() => {
                    if *keyed.borrow_and_update() {
                        let after = if self.subscribed_states { SET_UP_DONE } else { GOODBYE_AFTER };
                        self.goodbye = Some((Instant::now() + after, None));
                    }
                    Flow::Go
                }
                () = tokio::time::sleep_until(goodbye_at), if self.goodbye.is_some() => {
                    match self.goodbye {
                        Some((_, None)) => {
                            self.goodbye = Some((Instant::now(), Some(Instant::now() + GOODBYE_LIMIT)));
                            self.send(&DisconnectRequest { reason: 0 })
                        }
                        _ => Flow::Close("the encryption key is set; connections from now on are encrypted".into()),
                    }
                }
                () = tokio::time::sleep_until(wake) => {
                    if pinged {
                        Flow::Close(format!("silent for {SILENT_LIMIT:?}"))
                    } else {
                        pinged = true;
                        self.send(&PingRequest {})
                    }
                }
            };
            // What the step queued goes out before the next one.
            if !self.out.is_empty() {
                match tokio::time::timeout(WRITE_LIMIT, writer.write_all(&self.out)).await {
                    Ok(Ok(())) => {
                        let n = self.out.len() as u64;
                        self.states.counters.bytes_up.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                        self.out.clear();
                    }
                    Ok(Err(e)) => break format!("connection failed: {e}"),
                    Err(_) => break format!("stopped reading for {WRITE_LIMIT:?}"),
                }
            }
            if let Flow::Close(why) = flow {
                break why;
            }
        };
        if self.subscribed {
            let _ = self.hub.send(FromClient::Gone { id: self.id, why: why.clone() }).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), writer.shutdown()).await;
        log::info!("ESPHome API: {} disconnected: {why}", self.who());
    }

    /// Takes every whole frame in `input`.
    async fn input(&mut self, input: &mut BytesMut) -> Flow {
        loop {
            let step = match self.next_frame(input) {
                Ok(Some(step)) => step,
                Ok(None) => return Flow::Go,
                Err(e) => {
                    log::warn!(
                        "ESPHome API: {} sent a frame pivox cannot read: {e}; closing that connection",
                        self.who()
                    );
                    return Flow::Close(e.to_string());
                }
            };
            match step {
                Step::Message(kind, payload) => {
                    if let Flow::Close(why) = self.message(kind, payload).await {
                        return Flow::Close(why);
                    }
                }
                Step::Handshook => {}
                Step::Close(why) => return Flow::Close(why),
            }
        }
    }

    /// The next whole frame, handled as far as the framing goes.
    fn next_frame(&mut self, input: &mut BytesMut) -> Result<Option<Step>, FrameError> {
        match &mut self.wire {
            Wire::Plain => {
                if input.first() == Some(&0x01) {
                    // ESPHome's answer, which the client reports as "plaintext device".
                    self.out.extend_from_slice(b"\x00Bad indicator byte");
                    log::warn!(
                        "ESPHome API: {} wants an encrypted connection, but pivox has no key yet: remove the \
                         encryption key from the device in Home Assistant, or set server.encryption_key",
                        self.peer
                    );
                    return Ok(Some(Step::Close("encryption asked for, no key set".into())));
                }
                let Some((used, kind, range)) = frame::plain_message(input)? else { return Ok(None) };
                let payload = Bytes::copy_from_slice(&input[range]);
                input.advance(used);
                Ok(Some(Step::Message(kind, payload)))
            }
            Wire::NoiseHello(key) => {
                if input.first() == Some(&0x00) {
                    // A plaintext client: this frame makes it say "requires encryption".
                    frame::put_noise_frame(&mut self.out, b"\x01Bad indicator byte");
                    return Ok(Some(Step::Close("a plaintext client; pivox requires encryption".into())));
                }
                let Some((used, _)) = frame::noise_frame(input)? else { return Ok(None) };
                input.advance(used);
                frame::put_noise_frame(&mut self.out, &frame::server_hello(&self.device.name, &self.device.mac));
                self.wire = Wire::NoiseHandshake(*key);
                Ok(Some(Step::Handshook))
            }
            Wire::NoiseHandshake(key) => {
                let Some((used, body)) = frame::noise_frame(input)? else { return Ok(None) };
                let result = frame::handshake(key, &input[body.clone()]);
                // HA's config flow learns a device's name with the all-zero key: no wrong key.
                let probe = matches!(result, Handshake::Rejected(_))
                    && matches!(frame::handshake(&[0; 32], &input[body]), Handshake::Done(..));
                input.advance(used);
                match result {
                    Handshake::Done(reply, noise) => {
                        frame::put_noise_frame(&mut self.out, &reply);
                        self.wire = Wire::Noise(noise);
                        Ok(Some(Step::Handshook))
                    }
                    Handshake::Rejected(reply) => {
                        frame::put_noise_frame(&mut self.out, &reply);
                        if probe {
                            log::debug!("ESPHome API: {} probed with the all-zero key (to learn the name)", self.peer);
                            return Ok(Some(Step::Close("a name probe".into())));
                        }
                        log::warn!(
                            "ESPHome API: {} used a different encryption key; in Home Assistant, reconfigure the \
                             device with pivox's key",
                            self.peer
                        );
                        Ok(Some(Step::Close("wrong encryption key".into())))
                    }
                }
            }
            Wire::Noise(noise) => {
                let Some((used, body)) = frame::noise_frame(input)? else { return Ok(None) };
                let (kind, payload) = noise.open(&input[body])?;
                let payload = Bytes::copy_from_slice(payload);
                input.advance(used);
                Ok(Some(Step::Message(kind, payload)))
            }
        }
    }

    /// Queues a message for sending.
    fn send<M: Typed>(&mut self, message: &M) -> Flow {
        self.queue(M::TYPE, &message.encode_to_vec())
    }

    fn queue(&mut self, kind: u32, payload: &[u8]) -> Flow {
        match &mut self.wire {
            Wire::Plain => frame::put_plain(&mut self.out, kind, payload),
            Wire::Noise(noise) => {
                if let Err(e) = noise.seal(&mut self.out, kind, payload) {
                    return Flow::Close(e.to_string());
                }
            }
            // Nothing but the handshake goes out before it is done.
            Wire::NoiseHello(_) | Wire::NoiseHandshake(_) => {}
        }
        Flow::Go
    }

    fn button_state(&mut self) -> Flow {
        let pressed = *self.states.button.borrow_and_update();
        self.send(&BinarySensorStateResponse { key: BUTTON_KEY, state: pressed, missing_state: false })
    }

    fn media_state(&mut self) -> Flow {
        let loudness = *self.states.loudness.borrow_and_update();
        self.send(&loudness.state())
    }

    async fn message(&mut self, kind: u32, payload: Bytes) -> Flow {
        if self.name.is_none() && kind != HelloRequest::TYPE {
            return Flow::Close(format!("message type {kind} before the hello"));
        }
        match self.handle(kind, &payload).await {
            Ok(flow) => flow,
            Err(e) => {
                log::warn!(
                    "ESPHome API: {} sent a message of type {kind} pivox cannot read ({e}); closing that connection",
                    self.who()
                );
                Flow::Close(format!("undecodable message of type {kind}"))
            }
        }
    }

    async fn handle(&mut self, kind: u32, payload: &[u8]) -> Result<Flow, prost::DecodeError> {
        Ok(match kind {
            HelloRequest::TYPE => {
                let hello = HelloRequest::decode(payload)?;
                let client = crate::text::shorten(&hello.client_info, 60).to_string();
                log::info!(
                    "ESPHome API: {client} connected from {} (API {}.{})",
                    self.peer,
                    hello.api_version_major,
                    hello.api_version_minor
                );
                self.name = Some(client);
                self.send(&HelloResponse {
                    api_version_major: 1,
                    // 1.10 and later: voice feature flags; 1.14: what aioesphomeapi in HA 2026.2 speaks.
                    api_version_minor: 14,
                    server_info: concat!("pivox ", env!("CARGO_PKG_VERSION")).into(),
                    name: self.device.name.clone(),
                })
            }
            // The deprecated password step, sent along with the hello: left unanswered, as
            // ESPHome does (an answer could only say the password was wrong).
            3 => Flow::Go,
            DisconnectRequest::TYPE => {
                let _ = self.send(&DisconnectResponse {});
                Flow::Close("the client said goodbye".into())
            }
            DisconnectResponse::TYPE => Flow::Close("the client said goodbye".into()),
            PingRequest::TYPE => self.send(&PingResponse {}),
            PingResponse::TYPE => Flow::Go,
            DeviceInfoRequest::TYPE => self.send(&self.device.info()),
            DeviceCapabilitiesRequest::TYPE => self.send(&DeviceCapabilitiesResponse {
                voice_assistant: Some(VoiceAssistantCapabilities { feature_flags: super::device::FEATURES }),
            }),
            ListEntitiesRequest::TYPE => {
                let _ = self.send(&ListEntitiesBinarySensorResponse {
                    object_id: "button".into(),
                    key: BUTTON_KEY,
                    name: "Button".into(),
                    device_class: String::new(),
                    icon: "mdi:gesture-tap-button".into(),
                });
                let _ = self.send(&media::entity());
                self.send(&ListEntitiesDoneResponse {})
            }
            SubscribeStatesRequest::TYPE => {
                self.subscribed_states = true;
                if let Some((at, None)) = &mut self.goodbye {
                    *at = (*at).min(Instant::now() + SET_UP_DONE);
                }
                let _ = self.media_state();
                self.button_state()
            }
            MediaPlayerCommandRequest::TYPE => {
                let request = MediaPlayerCommandRequest::decode(payload)?;
                if self.hub.send(FromClient::Media(request)).await.is_err() {
                    return Ok(Flow::Close("pivox is stopping".into()));
                }
                Flow::Go
            }
            VoiceAssistantConfigurationRequest::TYPE => self
                .send(&VoiceAssistantConfigurationResponse { active_wake_words: Vec::new(), max_active_wake_words: 0 }),
            SubscribeVoiceAssistantRequest::TYPE => {
                let request = SubscribeVoiceAssistantRequest::decode(payload)?;
                self.subscribe(request.subscribe).await
            }
            NoiseEncryptionSetKeyRequest::TYPE => {
                let request = NoiseEncryptionSetKeyRequest::decode(payload)?;
                if request.key.is_empty() {
                    // HA removing the device takes its key back.
                    let success = match self.device.forget() {
                        Ok(()) => {
                            log::info!(
                                "ESPHome API: {} removed the encryption key; new connections are plaintext until a new one is set",
                                self.who()
                            );
                            true
                        }
                        Err(e) => {
                            log::warn!("ESPHome API: {} asked to remove the encryption key: {e}", self.who());
                            false
                        }
                    };
                    return Ok(self.send(&NoiseEncryptionSetKeyResponse { success }));
                }
                let success = match self.device.provision(&request.key) {
                    Ok(()) => {
                        log::info!(
                            "ESPHome API: {} set the encryption key; connections from now on are encrypted",
                            self.who()
                        );
                        true
                    }
                    Err(e) => {
                        log::warn!("ESPHome API: {} tried to set an encryption key: {e}", self.who());
                        false
                    }
                };
                self.send(&NoiseEncryptionSetKeyResponse { success })
            }
            VoiceAssistantResponse::TYPE => self.voice(Voice::Response(VoiceAssistantResponse::decode(payload)?)).await,
            VoiceAssistantEventResponse::TYPE => {
                self.voice(Voice::Event(VoiceAssistantEventResponse::decode(payload)?)).await
            }
            VoiceAssistantTimerEventResponse::TYPE => {
                self.voice(Voice::Timer(VoiceAssistantTimerEventResponse::decode(payload)?)).await
            }
            VoiceAssistantAnnounceRequest::TYPE => {
                self.voice(Voice::Announce(VoiceAssistantAnnounceRequest::decode(payload)?)).await
            }
            // Replies are fetched from their URL; pivox does not ask HA to stream them.
            VoiceAssistantAudio::TYPE | VoiceAssistantSetConfiguration::TYPE => Flow::Go,
            other => {
                log::debug!("ESPHome API: {} sent message type {other}, which pivox does not use", self.who());
                Flow::Go
            }
        })
    }

    async fn subscribe(&mut self, subscribe: bool) -> Flow {
        if subscribe == self.subscribed {
            return Flow::Go;
        }
        self.subscribed = subscribe;
        let client = self.name.clone().unwrap_or_default();
        let told = if subscribe {
            self.hub.send(FromClient::Subscribed { id: self.id, client, to: self.to_self.clone() }).await
        } else {
            self.hub.send(FromClient::Gone { id: self.id, why: "unsubscribed from voice".into() }).await
        };
        if told.is_err() { Flow::Close("pivox is stopping".into()) } else { Flow::Go }
    }

    async fn voice(&mut self, message: Voice) -> Flow {
        if !self.subscribed {
            log::debug!("ESPHome API: {} sent a voice message without subscribing; ignored", self.who());
            return Flow::Go;
        }
        match self.hub.send(FromClient::Voice { id: self.id, message }).await {
            Ok(()) => Flow::Go,
            Err(_) => Flow::Close("pivox is stopping".into()),
        }
    }
}

enum Step {
    Message(u32, Bytes),
    Handshook,
    Close(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::esphome::device::Encryption;

    async fn listening() -> (SocketAddr, mpsc::Receiver<FromClient>, watch::Sender<bool>, watch::Sender<Loudness>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let device = Arc::new(Device::new("t".into(), "T".into(), "02:00:00:00:00:01".into(), Encryption::Plaintext));
        let (hub_tx, hub) = mpsc::channel(16);
        let (button_tx, button) = watch::channel(false);
        let (loudness_tx, loudness) = watch::channel(Loudness::default());
        let states = States { button, loudness, counters: Arc::default() };
        tokio::spawn(accept(listener, device, hub_tx, states));
        (addr, hub, button_tx, loudness_tx)
    }

    async fn hello(stream: &mut TcpStream) {
        let mut out = BytesMut::new();
        let hello = HelloRequest { client_info: "test".into(), api_version_major: 1, api_version_minor: 14 };
        frame::put_plain(&mut out, HelloRequest::TYPE, &hello.encode_to_vec());
        stream.write_all(&out).await.unwrap();
    }

    /// The message types that arrive until the connection closes (bounded by the test's clock).
    async fn until_closed(stream: &mut TcpStream) -> Vec<u32> {
        let (mut input, mut kinds) = (BytesMut::new(), Vec::new());
        loop {
            while let Some((used, kind, _)) = frame::plain_message(&input).unwrap() {
                kinds.push(kind);
                input.advance(used);
            }
            if stream.read_buf(&mut input).await.unwrap_or(0) == 0 {
                return kinds;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_pinged_then_dropped_and_the_next_one_is_served() {
        let (addr, mut hub, _button, _loudness) = listening().await;
        let mut silent = TcpStream::connect(addr).await.unwrap();
        hello(&mut silent).await;
        // Subscribed, so that the link hears when it goes.
        let mut out = BytesMut::new();
        let subscribe = SubscribeVoiceAssistantRequest { subscribe: true, flags: 4 };
        frame::put_plain(&mut out, SubscribeVoiceAssistantRequest::TYPE, &subscribe.encode_to_vec());
        silent.write_all(&out).await.unwrap();
        assert!(matches!(hub.recv().await, Some(FromClient::Subscribed { .. })));
        let started = Instant::now();
        let kinds = until_closed(&mut silent).await;
        assert_eq!(kinds, [HelloResponse::TYPE, PingRequest::TYPE], "a ping after {PING_AFTER:?}, then closed");
        assert_eq!(started.elapsed().as_secs(), SILENT_LIMIT.as_secs(), "dropped after {SILENT_LIMIT:?} of silence");
        assert!(matches!(hub.recv().await, Some(FromClient::Gone { why, .. }) if why.contains("silent")));

        // The next client is served at once.
        let mut next = TcpStream::connect(addr).await.unwrap();
        hello(&mut next).await;
        let mut input = BytesMut::new();
        while frame::plain_message(&input).unwrap().is_none() {
            next.read_buf(&mut input).await.unwrap();
        }
        assert_eq!(frame::plain_message(&input).unwrap().unwrap().1, HelloResponse::TYPE);
    }

    #[tokio::test]
    async fn no_more_than_the_client_limit_is_served_at_once() {
        let (addr, _hub, _button, _loudness) = listening().await;
        let mut held = Vec::new();
        for _ in 0..MAX_CLIENTS {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            hello(&mut stream).await;
            let mut input = BytesMut::new();
            while frame::plain_message(&input).unwrap().is_none() {
                stream.read_buf(&mut input).await.unwrap();
            }
            held.push(stream);
        }
        let mut one_more = TcpStream::connect(addr).await.unwrap();
        let refused = tokio::time::timeout(Duration::from_secs(5), until_closed(&mut one_more)).await.unwrap();
        assert!(refused.is_empty(), "refused without a word");
        drop(held);
    }
}
