//! Server links: how pivox reaches a voice server. Each backend is a task spawned behind
//! the same handle — commands in (turn start, audio, turn end), events out (link up/down,
//! reply audio, transcripts) — and reconnects on its own (`lifecycle.rs`, with [`crate::backoff::Retry`]).
//!
//! Backends, by `[server] kind`:
//! - `pivox`: pivox protocol v1 over WebSocket (`docs/protocol.md`).
//! - `homeassistant`: Home Assistant Assist over HA's WebSocket API (`docs/homeassistant.md`).
//! - `esphome`: pivox as an ESPHome native-API voice satellite that HA connects to
//!   (`docs/homeassistant.md`).

pub mod endpoint;
pub mod esphome;
pub mod homeassistant;
pub mod lifecycle;
pub mod pivox;
pub mod protocol;
pub mod reply;
pub mod socket;
pub mod tls;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::audio::codec::Codec;
use crate::settings::{Checker, Section};
use lifecycle::Events;

/// Identifies one turn on the link; the first turn is 1.
pub type TurnId = u32;

/// Turns a link starts itself (announcements) are numbered from here, far from the session's.
pub const SERVER_TURNS: TurnId = 1 << 31;

/// Why a turn's audio stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Released,
    MaxLength,
    /// The server stopped listening before the button was released.
    ServerEnded,
}

/// One codec packet of a turn's audio or of a reply, with its place in the stream. No wire
/// framing: a backend that frames (the pivox protocol's 7-byte header, HA's handler byte)
/// adds it when it writes and removes it when it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioChunk {
    pub turn: TurnId,
    /// Packet counter within the turn (or reply), from 0, wrapping at 65536.
    pub seq: u16,
    /// Position of the packet's first sample, in samples at the codec rate, from 0.
    pub timestamp: u32,
    /// One encoded packet (Opus), or 16-bit little-endian samples (PCM).
    pub payload: Bytes,
}

/// What the session asks of the link, in the order it must reach the server.
#[derive(Debug)]
pub enum Command {
    StartTurn {
        turn: TurnId,
        preroll_ms: u32,
    },
    Audio(AudioChunk),
    EndTurn {
        turn: TurnId,
        reason: EndReason,
        frames: u32,
    },
    CancelTurn {
        turn: TurnId,
    },
    /// The user pressed the button while the link is down: try to connect now.
    ConnectNow,
    /// The button went down or up (the ESPHome link shows it to HA as a binary sensor).
    Button {
        pressed: bool,
    },
    /// The session is done with a turn; `played`: its reply was played to the end (the ESPHome
    /// link tells HA, whose satellite entity waits for that).
    TurnOver {
        turn: TurnId,
        played: bool,
    },
}

/// Why the link is down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Down {
    /// The server cannot be reached, or the connection failed: the link keeps trying.
    Unreachable(String),
    /// The server refused pivox's credentials: trying again cannot help until the user acts.
    Refused(String),
}

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Down::Unreachable(reason) => f.write_str(reason),
            Down::Refused(reason) => write!(f, "credentials refused: {reason}"),
        }
    }
}

/// Why the server failed a turn (or, with no turn, the connection's work).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnFailure {
    /// The server recognised no words: nothing is broken, the user may ask again.
    NotUnderstood(String),
    /// Anything else: the server's own code, and what it means for the user on one line.
    Server { code: String, message: String },
}

/// What the link reports.
#[derive(Debug, PartialEq)]
pub enum Event {
    Up {
        codec: Codec,
        server: String,
    },
    Down(Down),
    /// The server has said where the reply is (Home Assistant: `tts-end`); its audio follows.
    ReplyAnnounced {
        turn: TurnId,
        at: Instant,
    },
    ReplyStart {
        turn: TurnId,
    },
    ReplyAudio {
        chunk: AudioChunk,
        at: Instant,
    },
    ReplyEnd {
        turn: TurnId,
    },
    Transcript {
        turn: TurnId,
        text: String,
    },
    ReplyText {
        turn: TurnId,
        text: String,
    },
    TurnFailed {
        turn: Option<TurnId>,
        failure: TurnFailure,
    },
    /// The turn's first audio frame has been written to the socket.
    FirstAudioSent {
        turn: TurnId,
        at: Instant,
    },
    /// The turn's end message has been written to the socket, after `frames` audio frames.
    EndSent {
        turn: TurnId,
        at: Instant,
        frames: u32,
    },
    /// The server stopped taking this turn's audio on its own (Home Assistant's end-of-speech
    /// detection) after `frames` audio frames had been written.
    InputClosed {
        turn: TurnId,
        at: Instant,
        frames: u32,
    },
    /// The server plays something of its own (an announcement) as the reply of `turn`, which
    /// the link numbered from [`SERVER_TURNS`]; its audio follows as a reply's does.
    Announcement {
        turn: TurnId,
    },
    /// The server wants to hear the user now (a conversation it started or continues): the
    /// session opens the microphone for one turn that the server's voice detection ends.
    Listen,
    /// A timer the server runs for this device started, changed, was cancelled or finished.
    Timer(crate::timers::TimerEvent),
    /// The loudness of replies and earcons the server set: 0.0 (muted) to 1.0.
    Volume(f32),
}

/// Bytes on the wire, WebSocket framing included (TCP/IP headers not).
#[derive(Debug, Default)]
pub struct Counters {
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> (u64, u64) {
        (self.bytes_up.load(Ordering::Relaxed), self.bytes_down.load(Ordering::Relaxed))
    }
}

/// What every link backend is told by the daemon, besides its own settings.
#[derive(Debug, Clone)]
pub struct LinkParams {
    pub codecs: Vec<Codec>,
    pub frame_ms: u32,
    /// The longest a turn may take from the press to the start of its reply (the session's
    /// longest turn plus its reply timeout): Home Assistant is told a run may take this long.
    pub longest_turn: Duration,
}

/// A backend's checked settings: what `pivox run` builds its link from.
pub trait ServerSpec: std::fmt::Debug + Send + Sync {
    /// The `[server] kind` this came from.
    fn kind(&self) -> &'static str;
    /// Where the server is, for log lines and `pivox check-config`.
    fn describe(&self) -> String;
    /// Starts the link.
    fn spawn(&self, params: LinkParams) -> Result<LinkHandle, String>;
    /// The shared connection settings, for a backend that dials a server.
    fn endpoint(&self) -> Option<&endpoint::Endpoint>;
    /// The settings themselves, for tests and tools that know the backend.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// One row per backend: its `[server] kind` and how it reads its settings.
pub struct BackendRow {
    pub kind: &'static str,
    /// Reads and checks the backend's `[server]` keys, reporting every problem on the checker.
    pub settings: fn(&mut Section, &dyn Checker) -> Arc<dyn ServerSpec>,
}

/// Link backends by `[server] kind`, the default first. Adding a backend: its folder, one row
/// here (docs/architecture.md lists the rest).
pub const BACKENDS: &[BackendRow] = &[
    BackendRow { kind: "pivox", settings: pivox::settings },
    BackendRow { kind: "homeassistant", settings: homeassistant::settings },
    BackendRow { kind: "esphome", settings: esphome::settings },
];

/// The caller's end of a running link task.
pub struct LinkHandle {
    pub commands: mpsc::Sender<Command>,
    pub events: mpsc::Receiver<Event>,
    pub counters: Arc<Counters>,
    pub task: tokio::task::JoinHandle<()>,
    /// The threads the link runs besides its task, for the caller to stop and join.
    pub helpers: Helpers,
}

/// What a backend is wired to: where its events go, its byte counters, its helper threads.
pub struct Wiring {
    pub events: Events,
    pub counters: Arc<Counters>,
    pub helpers: Helpers,
}

/// The threads a link runs besides its task (reply downloads). The daemon stops and joins
/// them within its shutdown deadline — also when the link task itself had to be aborted.
#[derive(Clone, Default)]
pub struct Helpers(Arc<Mutex<Vec<Helper>>>);

struct Helper {
    name: String,
    cancel: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<()>,
}

impl Helpers {
    /// Registers a thread that stops soon after `cancel` is set; finished ones are joined now.
    pub fn add(&self, name: String, cancel: Arc<AtomicBool>, handle: std::thread::JoinHandle<()>) {
        let mut helpers = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        helpers.push(Helper { name, cancel, handle });
        join_finished(&mut helpers);
    }

    pub fn cancel_all(&self) {
        let helpers = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        helpers.iter().for_each(|h| h.cancel.store(true, Ordering::Relaxed));
    }

    /// Stops every thread and joins it, waiting until `deadline` at most; one still running
    /// then (blocked in a read) is named in the log and left to end with the process.
    pub fn join_by(&self, deadline: Instant) {
        self.cancel_all();
        let mut helpers = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while helpers.iter().any(|h| !h.handle.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        join_finished(&mut helpers);
        for helper in helpers.iter() {
            log::warn!("{} did not stop in time; leaving it", helper.name);
        }
    }
}

fn join_finished(helpers: &mut Vec<Helper>) {
    let (done, running): (Vec<Helper>, Vec<Helper>) =
        std::mem::take(helpers).into_iter().partition(|h| h.handle.is_finished());
    *helpers = running;
    for helper in done {
        if helper.handle.join().is_err() {
            log::error!("{} panicked", helper.name);
        }
    }
}

/// Waits for a link task to close its connection once every command sender is dropped;
/// after `limit` it is aborted.
pub async fn join(mut task: tokio::task::JoinHandle<()>, limit: std::time::Duration) {
    if tokio::time::timeout(limit, &mut task).await.is_err() {
        log::warn!("the server link did not close within {limit:?}; dropping it");
        task.abort();
    }
}

/// A WebSocket connection, plain or TLS, as both WebSocket backends hold it.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a dialling backend waits for the TCP connection, and for each step of its greeting.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The WebSocket links' read buffer. tungstenite zeroes the free part of its buffer before
/// every read, and its default is 128 KiB: that was 11 % of an Opus turn's instructions and
/// 64 % of a PCM turn's (issue 14). Messages here are a few hundred bytes; a larger one grows
/// the buffer to fit, as before.
pub const WS_READ_BUFFER: usize = 4 << 10;

/// Starts a backend on the shared [`lifecycle`]: its channels, byte counters and task.
pub fn start<B: lifecycle::Backend>(
    retry: crate::backoff::Retry,
    make: impl FnOnce(Wiring) -> Result<B, String>,
) -> Result<LinkHandle, String> {
    let (commands, command_rx) = mpsc::channel(256);
    let (event_tx, events) = mpsc::channel(1024);
    let (counters, helpers) = (Arc::new(Counters::default()), Helpers::default());
    let link_events = Events::new(event_tx);
    let wiring = Wiring { events: link_events.clone(), counters: counters.clone(), helpers: helpers.clone() };
    let backend = make(wiring)?;
    let task = tokio::spawn(lifecycle::run(backend, command_rx, link_events, retry));
    Ok(LinkHandle { commands, events, counters, task, helpers })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread that runs until `stop` is set, checking every millisecond.
    fn until(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    }

    #[test]
    fn helper_threads_are_stopped_and_joined_and_one_that_does_not_stop_is_left_at_the_deadline() {
        let helpers = Helpers::default();
        let obedient = Arc::new(AtomicBool::new(false));
        helpers.add("the obedient download".into(), obedient.clone(), until(obedient.clone()));
        // Blocked in a read: its cancel flag is not the one that ends it.
        let (ignored, release) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let stuck = until(release.clone());
        helpers.add("the stuck download".into(), ignored, stuck);

        let started = Instant::now();
        helpers.join_by(started + Duration::from_millis(200));
        assert!(obedient.load(Ordering::Relaxed), "told to stop");
        assert!(started.elapsed() >= Duration::from_millis(200), "waited for the stuck one until the deadline");
        assert!(started.elapsed() < Duration::from_secs(5), "and no longer");
        let left: Vec<String> = helpers.0.lock().unwrap().iter().map(|h| h.name.clone()).collect();
        assert_eq!(left, ["the stuck download"], "the obedient one was joined");

        release.store(true, Ordering::Relaxed);
        helpers.join_by(Instant::now() + Duration::from_secs(5));
        assert!(helpers.0.lock().unwrap().is_empty());
    }
}
