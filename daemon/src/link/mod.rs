//! Server links: how pivox reaches a voice server. Each backend is a task spawned behind
//! the same handle — commands in (turn start, audio, turn end), events out (link up/down,
//! reply audio, transcripts) — and reconnects on its own through a [`backoff::Backoff`].
//!
//! Backends, by `[server] kind`:
//! - `pivox`: pivox protocol v1 over WebSocket (`docs/protocol.md`).
//! - `homeassistant`: Home Assistant Assist over HA's WebSocket API (`docs/homeassistant.md`).

pub mod backoff;
pub mod homeassistant;
pub mod pivox;
pub mod protocol;
pub mod socket;
pub mod tls;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::audio::codec::Codec;
use crate::config::ServerConfig;
use crate::session::{EndReason, TurnId};
use protocol::AudioHeader;

/// What the session asks of the link, in the order it must reach the server.
#[derive(Debug)]
pub enum Command {
    StartTurn {
        turn: TurnId,
        preroll_ms: u32,
    },
    /// One binary audio frame, header included.
    Audio {
        turn: TurnId,
        frame: Bytes,
    },
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
}

/// What the link reports.
#[derive(Debug)]
pub enum Event {
    Up {
        codec: Codec,
        server: String,
    },
    Down {
        reason: String,
        /// The server refused pivox's credentials: the user has to act (LED error state).
        refused: bool,
    },
    /// The server has said where the reply is (Home Assistant: `tts-end`); its audio follows.
    ReplyAnnounced {
        turn: TurnId,
        at: Instant,
    },
    ReplyStart {
        turn: TurnId,
    },
    ReplyAudio {
        header: AudioHeader,
        payload: Bytes,
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
    ServerError {
        turn: Option<TurnId>,
        code: String,
        message: String,
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

/// What a link backend needs to know.
#[derive(Debug, Clone)]
pub struct LinkParams {
    pub server: ServerConfig,
    pub codecs: Vec<Codec>,
    pub frame_ms: u32,
    /// The session's limits (Home Assistant is told how long a run may take).
    pub session: crate::session::Limits,
}

/// The caller's end of a running link task.
pub struct LinkHandle {
    pub commands: mpsc::Sender<Command>,
    pub events: mpsc::Receiver<Event>,
    pub counters: Arc<Counters>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Waits for a link task to close its connection once every command sender is dropped;
/// after `limit` it is aborted.
pub async fn join(mut task: tokio::task::JoinHandle<()>, limit: std::time::Duration) {
    if tokio::time::timeout(limit, &mut task).await.is_err() {
        log::warn!("the server link did not close within {limit:?}; dropping it");
        task.abort();
    }
}

/// Waits for `pause` while dropping the session's commands (no turn can happen while the
/// link is down); [`Command::ConnectNow`] cuts the pause short. False: the session closed
/// the link.
pub async fn drain_until(pause: tokio::time::Sleep, commands: &mut mpsc::Receiver<Command>) -> bool {
    tokio::pin!(pause);
    loop {
        tokio::select! {
            _ = &mut pause => return true,
            command = commands.recv() => match command {
                None => return false,
                Some(Command::ConnectNow) => return true,
                Some(_) => {}
            },
        }
    }
}

pub type Spawner = fn(LinkParams) -> Result<LinkHandle, String>;

/// Link backends by `[server] kind`, the default first.
pub const LINKS: &[(&str, Spawner)] = &[("pivox", pivox::spawn), ("homeassistant", homeassistant::spawn)];

pub fn find(kind: &str) -> Option<Spawner> {
    LINKS.iter().find(|(name, _)| *name == kind).map(|(_, spawn)| *spawn)
}

pub fn names() -> Vec<&'static str> {
    LINKS.iter().map(|(name, _)| *name).collect()
}
