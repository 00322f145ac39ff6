//! Home Assistant's own satellite path: pivox as an ESPHome native-API voice device. pivox
//! listens (TCP 6053), HA connects to it — found over mDNS or added by address, no token —
//! and pivox becomes an Assist satellite entity HA can also speak through (announcements)
//! and start conversations on. `docs/homeassistant.md` is the user's side of this.
//!
//! A push-to-talk turn on the wire (HA 2026.2, replies as URLs pivox fetches):
//! ```text
//! press    → VoiceAssistantRequest{start, conversation_id}
//!          ← VoiceAssistantResponse{port: 0}        (audio over this connection)
//!          ← event RUN_START{url}, STT_START
//! talking  → VoiceAssistantAudio{data: 16 kHz PCM} per frame (held back until the response)
//! release  → VoiceAssistantAudio{end: true}          (HA's VAD may end the listening first:
//!                                                     STT_VAD_END / STT_END stop the audio)
//!          ← STT_END{text}, INTENT_START, INTENT_END{conversation_id}, TTS_START{text},
//!            TTS_END{url}, RUN_END                   — or ERROR{code, message}
//! reply    GET url → decoded and played as it downloads (from INTENT_PROGRESS
//!          {tts_start_streaming: 1} on, when HA streams its TTS)
//! played   → VoiceAssistantAnnounceFinished           (HA's entity returns to idle)
//! ```
//! A cancelled turn (mis-press, barge-in) is `VoiceAssistantRequest{start: false}`.
//!
//! The parts: `frame.rs` (framing, Noise), `messages.rs` (protobuf), `device.rs` (identity,
//! keys), `api.rs` (one task per client connection), and this file: the settings, and the
//! link that turns the session's commands into voice messages on the connection that
//! subscribed to voice and HA's voice messages into link events, on the shared
//! [`lifecycle`](super::lifecycle) (for a listening backend, "connect" is waiting for HA).

mod api;
pub mod device;
pub mod frame;
pub mod mdns;
pub mod media;
pub mod messages;
mod voice;
mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use super::lifecycle::{self, Connected, Ended, Events, Failure};
use super::{Command, LinkHandle, LinkParams, ServerSpec, Wiring, reply};
use crate::audio::codec::{self, Codec};
use crate::backoff::Retry;
use crate::settings::{Checker, Section};
use api::{FromClient, ToClient};
use device::{Device, Encryption};

/// ESPHome's API port.
pub const DEFAULT_PORT: u16 = 6053;
/// Where a key HA provisions and the volume it sets are kept: pivox.service's `StateDirectory=`.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/pivox";
/// The files in it.
pub const KEY_FILE: &str = "esphome-key";
pub const VOLUME_FILE: &str = "volume";

/// `kind = "esphome"`: where pivox listens, who it is, how connections are encrypted.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub name: String,
    pub friendly_name: String,
    pub mac: String,
    pub encryption: Encryption,
    /// Advertise `_esphomelib._tcp` over mDNS so HA discovers pivox.
    pub mdns: bool,
    /// Where the provisioned key and the volume are kept.
    pub state_dir: PathBuf,
}

#[derive(Deserialize)]
#[serde(default)]
struct RawSettings {
    listen: String,
    name: String,
    friendly_name: String,
    mac: String,
    encryption_key: String,
    state_dir: String,
    plaintext: bool,
    mdns: bool,
}

impl Default for RawSettings {
    fn default() -> Self {
        Self {
            listen: format!("0.0.0.0:{DEFAULT_PORT}"),
            name: String::new(),
            friendly_name: String::new(),
            mac: String::new(),
            encryption_key: String::new(),
            state_dir: DEFAULT_STATE_DIR.into(),
            plaintext: false,
            mdns: true,
        }
    }
}

/// Reads the `[server]` section for the ESPHome API (the [`super::BACKENDS`] row).
pub fn settings(section: &mut Section, checker: &dyn Checker) -> Arc<dyn ServerSpec> {
    let raw: RawSettings = section.part(checker);
    let listen = match raw.listen.parse::<SocketAddr>() {
        Ok(listen) => listen,
        Err(_) => {
            checker
                .report("server.listen", format!("`{}` is not an address and port, e.g. \"0.0.0.0:6053\"", raw.listen));
            SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT))
        }
    };
    let name = if raw.name.is_empty() { device::default_name() } else { device::sanitize(&raw.name) };
    checker.check(!name.is_empty(), "server.name", || {
        format!("`{}` has no letter or digit; a node name is lower case letters, digits and hyphens", raw.name)
    });
    let friendly_name = if raw.friendly_name.is_empty() { name.clone() } else { raw.friendly_name.clone() };
    let mac = if raw.mac.is_empty() { device::default_mac() } else { raw.mac.to_ascii_uppercase() };
    checker.check(is_mac(&mac), "server.mac", || format!("`{}` is not a MAC address like AA:BB:CC:DD:EE:FF", raw.mac));
    let state_dir = checker.path(&raw.state_dir);
    let encryption = encryption(&raw, &state_dir, checker);
    Arc::new(Settings { listen, name, friendly_name, mac, encryption, mdns: raw.mdns, state_dir })
}

fn encryption(raw: &RawSettings, state_dir: &std::path::Path, checker: &dyn Checker) -> Encryption {
    if raw.plaintext {
        checker.check(raw.encryption_key.is_empty(), "server.plaintext", || {
            "true together with server.encryption_key: choose one".into()
        });
        return Encryption::Plaintext;
    }
    if !raw.encryption_key.is_empty() {
        return match device::decode_key(&raw.encryption_key) {
            Ok(key) => Encryption::Key(key),
            Err(e) => {
                checker.report("server.encryption_key", e);
                Encryption::Plaintext
            }
        };
    }
    Encryption::Provision { file: state_dir.join(KEY_FILE) }
}

fn is_mac(text: &str) -> bool {
    let parts: Vec<&str> = text.split(':').collect();
    parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

impl ServerSpec for Settings {
    fn kind(&self) -> &'static str {
        "esphome"
    }

    fn describe(&self) -> String {
        format!("ESPHome API on {} as {}", self.listen, self.name)
    }

    fn spawn(&self, params: LinkParams) -> Result<LinkHandle, String> {
        let listener = std::net::TcpListener::bind(self.listen)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(tokio::net::TcpListener::from_std)
            .map_err(|e| format!("cannot listen on {} for Home Assistant: {e}", self.listen))?;
        let listen = listener.local_addr().unwrap_or(self.listen);
        match &self.encryption {
            Encryption::Plaintext => log::warn!(
                "ESPHome API without encryption (server.plaintext): anyone on this network can use this device"
            ),
            Encryption::Provision { file } => log::info!(
                "ESPHome API encryption: Home Assistant sets the key when it adds this device (kept in {})",
                file.display()
            ),
            Encryption::Key(_) => {}
        }
        let device = Arc::new(Device::new(
            self.name.clone(),
            self.friendly_name.clone(),
            self.mac.clone(),
            self.encryption.clone(),
        ));
        // A device that cannot be discovered can still be added by its address: not fatal.
        let advert = if self.mdns {
            mdns::Advert::start(&device, listen)
                .map_err(|e| log::warn!("{e}; add pivox in Home Assistant by its address ({listen})"))
                .ok()
        } else {
            None
        };
        let frame_samples = codec::frame_samples(params.frame_ms);
        let settings = self.clone();
        // Nothing to back off from: "connecting" is waiting for HA.
        let retry = Retry::new(std::time::Duration::ZERO, std::time::Duration::ZERO);
        super::start(retry, move |wiring| {
            let Wiring { events, helpers, counters } = wiring;
            let (hub_tx, hub) = mpsc::channel(64);
            let (button_tx, button) = watch::channel(false);
            let volume_file = settings.state_dir.join(VOLUME_FILE);
            let (loudness_tx, loudness) = watch::channel(media::Loudness::load(&volume_file));
            tokio::spawn(api::accept(listener, device.clone(), hub_tx, api::States { button, loudness, counters }));
            let fetcher =
                reply::Fetcher::spawn(None, reply::Timeouts::default(), frame_samples, events.clone(), helpers);
            log::info!("waiting for Home Assistant on {listen} (ESPHome API, node name {})", settings.name);
            Ok(Link {
                settings,
                listen,
                events,
                fetcher,
                hub,
                button: button_tx,
                loudness: loudness_tx,
                volume_file,
                volume_told: false,
                waiting: None,
                voice: voice::Voice::default(),
                advert,
            })
        })
    }

    fn endpoint(&self) -> Option<&super::endpoint::Endpoint> {
        None
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The connection that subscribed to voice.
pub struct Subscriber {
    id: u64,
    to: mpsc::Sender<ToClient>,
}

struct Link {
    settings: Settings,
    listen: SocketAddr,
    events: Events,
    fetcher: reply::Fetcher,
    /// What the client connections report.
    hub: mpsc::Receiver<FromClient>,
    /// The button's state, for the binary sensor HA sees.
    button: watch::Sender<bool>,
    /// Volume and mute, as HA set them (kept in `volume_file`).
    loudness: watch::Sender<media::Loudness>,
    volume_file: PathBuf,
    /// The daemon has been told the kept volume.
    volume_told: bool,
    /// A client that subscribed while another one carried voice: it takes over next.
    waiting: Option<(Subscriber, String)>,
    /// The turns and replies in progress.
    voice: voice::Voice,
    /// The mDNS advertisement, withdrawn when the link closes.
    advert: Option<mdns::Advert>,
}

impl lifecycle::Backend for Link {
    type Connection = Subscriber;

    fn describe(&self) -> String {
        format!("Home Assistant (ESPHome API on {} as {})", self.listen, self.settings.name)
    }

    async fn connect(&mut self) -> Result<Connected<Subscriber>, Failure> {
        if let Some((subscriber, client)) = self.waiting.take() {
            return Ok(Connected { connection: subscriber, codec: Codec::Pcm, server: client });
        }
        if !std::mem::replace(&mut self.volume_told, true) {
            let kept = *self.loudness.borrow();
            if kept != media::Loudness::default() {
                self.events.emit(super::Event::Volume(kept.gain())).await;
            }
        }
        loop {
            match self.hub.recv().await {
                Some(FromClient::Subscribed { id, client, to }) => {
                    return Ok(Connected { connection: Subscriber { id, to }, codec: Codec::Pcm, server: client });
                }
                Some(FromClient::Media(request)) => self.media(&request, None).await,
                Some(other) => log::debug!("ESPHome API: {other:?} while no client carries voice; ignored"),
                None => return Err(Failure::Failed("the ESPHome API listener stopped".into())),
            }
        }
    }

    async fn serve(&mut self, subscriber: Subscriber, commands: &mut mpsc::Receiver<Command>) -> Ended {
        let ended = self.serve_voice(&subscriber, commands).await;
        self.voice.abandon(&self.fetcher);
        // Taken over by a newer connection: the old one (a half-open one, say) is closed. One
        // that unsubscribed stays as it is: HA unloading the device closes it itself.
        if self.waiting.is_some() {
            let _ = subscriber.to.try_send(ToClient::Close("another connection carries voice now".into()));
        }
        ended
    }

    fn close(&mut self) {
        self.fetcher.cancel_all();
        self.advert = None;
    }
}

impl Link {
    /// HA's media player command: volume and mute (kept for the next start), or a URL to play
    /// as an announcement is played (only while HA's voice connection is up).
    async fn media(&mut self, request: &messages::MediaPlayerCommandRequest, out: Option<&mut voice::Outbox>) {
        let current = *self.loudness.borrow();
        if let Some(next) = current.after(request) {
            next.save(&self.volume_file);
            self.loudness.send_replace(next);
            self.events.emit(super::Event::Volume(next.gain())).await;
        }
        if request.has_media_url && !request.media_url.is_empty() {
            match out {
                Some(out) => self.voice.play_media(request.media_url.clone(), out, &self.events, &self.fetcher).await,
                None => log::warn!("Home Assistant asked to play media while its voice connection is down; not played"),
            }
        }
    }

    async fn serve_voice(&mut self, subscriber: &Subscriber, commands: &mut mpsc::Receiver<Command>) -> Ended {
        let mut out = voice::Outbox::new(subscriber.to.clone());
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Button { pressed }) => { self.button.send_replace(pressed); }
                    Some(command) => self.voice.command(command, &mut out, &self.events, &self.fetcher).await,
                    None => return Ended::Closed,
                },
                report = self.hub.recv() => match report {
                    Some(FromClient::Voice { id, message }) if id == subscriber.id => {
                        self.voice.message(message, &mut out, &self.events, &self.fetcher).await;
                    }
                    Some(FromClient::Voice { .. }) => {}
                    Some(FromClient::Media(request)) => self.media(&request, Some(&mut out)).await,
                    Some(FromClient::Gone { id, why }) if id == subscriber.id => return Ended::Lost(format!("Home Assistant {why}")),
                    Some(FromClient::Gone { .. }) => {}
                    Some(FromClient::Subscribed { id, client, to }) => {
                        log::info!("ESPHome API: {client} subscribed to voice on a new connection; it carries the turns from now on");
                        self.waiting = Some((Subscriber { id, to }, client));
                        return Ended::Lost("Home Assistant connected again".into());
                    }
                    None => return Ended::Lost("the ESPHome API listener stopped".into()),
                },
            }
            if let Some(why) = out.failed() {
                return Ended::Lost(why);
            }
        }
    }
}
