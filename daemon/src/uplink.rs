//! The uplink: encodes a turn's frames and hands them to the server link as [`AudioChunk`]s
//! (one codec packet each, with its sequence number and sample timestamp; the link frames it).
//!
//! Frames are carved out of one byte arena: each is split off as a `Bytes` and, once the
//! link has written and dropped it, its room is reused. The encoder writes into a buffer
//! owned here. So the audio path does no allocation per frame; the arena grows only if
//! the link falls more than a whole arena behind.

use bytes::{BufMut, BytesMut};
use tokio::sync::mpsc;

use crate::audio::codec::{self, Codec, Encoder, OpusSettings};
use crate::link::{AudioChunk, Command, EndReason, TurnId};

/// About 250 Opus frames, or 10 PCM frames of 100 ms.
const ARENA: usize = 32 * 1024;

pub struct Uplink {
    commands: mpsc::Sender<Command>,
    opus: OpusSettings,
    frame_samples: usize,
    encoder: Option<Encoder>,
    arena: BytesMut,
    packet: Box<[u8; codec::MAX_PACKET]>,
    seq: u16,
    timestamp: u32,
    frames: u32,
}

impl Uplink {
    pub fn new(commands: mpsc::Sender<Command>, opus: OpusSettings, frame_samples: usize) -> Self {
        Self {
            commands,
            opus,
            frame_samples,
            encoder: None,
            arena: BytesMut::with_capacity(ARENA),
            packet: Box::new([0; codec::MAX_PACKET]),
            seq: 0,
            timestamp: 0,
            frames: 0,
        }
    }

    pub fn frame_samples(&self) -> usize {
        self.frame_samples
    }

    /// Queues a command for the link; a full queue means the link is stuck, and says so.
    pub fn command(&self, command: Command) -> bool {
        let sent = self.commands.try_send(command).is_ok();
        if !sent {
            log::warn!("the server link is not keeping up; a message was dropped");
        }
        sent
    }

    pub fn start_turn(&mut self, turn: TurnId, codec: Codec, preroll_ms: u32) {
        // A fresh encoder per turn: no state from the previous utterance leaks in.
        self.encoder =
            Encoder::new(codec, &self.opus).map_err(|e| log::error!("cannot start the {codec} encoder: {e}")).ok();
        (self.seq, self.timestamp, self.frames) = (0, 0, 0);
        self.command(Command::StartTurn { turn, preroll_ms });
    }

    /// Encodes and queues one frame. `Some(true)`: sent; `Some(false)`: silence the codec
    /// left out (Opus DTX); `None`: could not be sent (no encoder, or the link is stuck).
    pub fn send_frame(&mut self, turn: TurnId, samples: &[i16]) -> Option<bool> {
        let encoder = self.encoder.as_mut()?;
        let timestamp = self.timestamp;
        self.timestamp = self.timestamp.wrapping_add(samples.len() as u32);
        let len = match encoder.encode(samples, &mut self.packet[..]) {
            Ok(Some(len)) => len,
            Ok(None) => return Some(false),
            Err(e) => {
                log::warn!("encoding a frame failed: {e}");
                return None;
            }
        };
        self.arena.reserve(len);
        self.arena.put_slice(&self.packet[..len]);
        let payload = self.arena.split().freeze();
        if !self.command(Command::Audio(AudioChunk { turn, seq: self.seq, timestamp, payload })) {
            return None;
        }
        self.seq = self.seq.wrapping_add(1);
        self.frames += 1;
        Some(true)
    }

    pub fn end_turn(&mut self, turn: TurnId, reason: EndReason) {
        self.command(Command::EndTurn { turn, reason, frames: self.frames });
        self.encoder = None;
    }
}
