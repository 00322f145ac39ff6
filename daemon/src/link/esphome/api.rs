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

use bytes::{Bytes, BytesMut};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::device::Device;
use super::frame::FrameError;
use super::media::{self, Loudness};
use super::messages::*;
use super::wire::{Step, Wire};

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
        let wire = Wire::new(device.key());
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

    /// Writes what is queued, bounded in time: a client that stopped reading is dropped.
    async fn flush(&mut self, writer: &mut tokio::net::tcp::OwnedWriteHalf) -> Result<(), String> {
        if self.out.is_empty() {
            return Ok(());
        }
        match tokio::time::timeout(WRITE_LIMIT, writer.write_all(&self.out)).await {
            Ok(Ok(())) => {
                let n = self.out.len() as u64;
                self.states.counters.bytes_up.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                self.out.clear();
                Ok(())
            }
            Ok(Err(e)) => Err(format!("connection failed: {e}")),
            Err(_) => Err(format!("stopped reading for {WRITE_LIMIT:?}")),
        }
    }

    /// HA set a key (`set`) or took it back: a plaintext connection says goodbye once HA's
    /// set-up is done, so that HA comes back encrypted.
    fn key_set(&mut self, set: bool) -> Flow {
        if set {
            let after = if self.subscribed_states { SET_UP_DONE } else { GOODBYE_AFTER };
            self.goodbye = Some((Instant::now() + after, None));
        }
        Flow::Go
    }

    /// The goodbye is due (DisconnectRequest), or its answer is overdue (closed).
    fn goodbye_due(&mut self) -> Flow {
        match self.goodbye {
            Some((_, None)) => {
                self.goodbye = Some((Instant::now(), Some(Instant::now() + GOODBYE_LIMIT)));
                self.send(&DisconnectRequest { reason: 0 })
            }
            _ => Flow::Close("the encryption key is set; connections from now on are encrypted".into()),
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
                // HA set a key: this plaintext connection says goodbye (as ESPHome does), and HA
                // comes back encrypted.
                _ = keyed.changed(), if matches!(self.wire, Wire::Plain) && self.goodbye.is_none() => {
                    self.key_set(*keyed.borrow_and_update())
                }
                () = tokio::time::sleep_until(goodbye_at), if self.goodbye.is_some() => self.goodbye_due(),
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
            if let Err(why) = self.flush(&mut writer).await {
                break why;
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
        self.wire.next(input, &mut self.out, &self.device, self.peer)
    }

    /// Queues a message for sending.
    fn send<M: Typed>(&mut self, message: &M) -> Flow {
        self.queue(M::TYPE, &message.encode_to_vec())
    }

    fn queue(&mut self, kind: u32, payload: &[u8]) -> Flow {
        match self.wire.queue(&mut self.out, kind, payload) {
            Ok(()) => Flow::Go,
            Err(e) => Flow::Close(e.to_string()),
        }
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
                let success = self.set_key(&request.key);
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

    /// HA sets the key (base64 text) it will encrypt with from now on, or takes it back (empty).
    fn set_key(&mut self, key: &[u8]) -> bool {
        let who = self.who();
        if key.is_empty() {
            // HA removing the device takes its key back.
            return match self.device.forget() {
                Ok(()) => {
                    log::info!(
                        "ESPHome API: {who} removed the encryption key; new connections are plaintext until a new one is set"
                    );
                    true
                }
                Err(e) => {
                    log::warn!("ESPHome API: {who} asked to remove the encryption key: {e}");
                    false
                }
            };
        }
        match self.device.provision(key) {
            Ok(()) => {
                log::info!("ESPHome API: {who} set the encryption key; connections from now on are encrypted");
                true
            }
            Err(e) => {
                log::warn!("ESPHome API: {who} tried to set an encryption key: {e}");
                false
            }
        }
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

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
