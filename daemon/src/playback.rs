//! The playback thread: reply packets go through the jitter buffer and the decoder to the
//! speaker; earcons go straight to the speaker. The speaker's blocking `write` is the clock:
//! the thread asks the jitter buffer for the next frame whenever the speaker takes one.
//!
//! Commands arrive on a bounded queue sized once; the thread reports when a reply's first
//! sample was handed to the speaker and when its last one has played.

use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pivox_hal::Speaker;
use tokio::sync::mpsc::UnboundedSender;

use crate::audio::codec::{Codec, Decoder};
use crate::audio::earcon::{Earcon, EarconBank};
use crate::audio::jitter::{JitterBuffer, JitterConfig, JitterStats, Pop};
use crate::audio::{CODEC_RATE, MAX_FRAME_SAMPLES};
use crate::devices::Fault;
use crate::session::TurnId;

#[derive(Debug)]
pub enum PlaybackCommand {
    /// A reply to `turn` starts; its packets use `codec`.
    Begin {
        turn: TurnId,
        codec: Codec,
    },
    Packet {
        seq: u16,
        timestamp: u32,
        payload: Bytes,
        at: Instant,
    },
    /// No more packets for this reply.
    End,
    /// Silence the reply now (barge-in, error).
    Stop,
    Earcon(Earcon),
}

#[derive(Debug)]
pub enum PlaybackEvent {
    /// The reply's first decoded sample was handed to the speaker at `at`.
    Started {
        turn: TurnId,
        at: Instant,
    },
    /// The reply's last sample has been played.
    Finished {
        turn: TurnId,
        stats: JitterStats,
    },
    Fault(Fault),
}

/// How long the thread waits for a command when the jitter buffer has nothing to play.
const IDLE_POLL: Duration = Duration::from_millis(2);
/// How often a lasting speaker failure is reported.
const FAULT_REPORT_EVERY: Duration = Duration::from_secs(5);

struct Reply {
    turn: TurnId,
    decoder: Decoder,
    started: bool,
}

struct Player {
    speaker: Box<dyn Speaker>,
    buffer: JitterBuffer<Bytes>,
    reply: Option<Reply>,
    earcons: EarconBank,
    events: UnboundedSender<PlaybackEvent>,
    frame_samples: usize,
    pcm: [i16; MAX_FRAME_SAMPLES],
    last_fault: Option<Instant>,
}

pub fn run(
    speaker: Box<dyn Speaker>,
    jitter: JitterConfig,
    earcons: EarconBank,
    commands: Receiver<PlaybackCommand>,
    events: UnboundedSender<PlaybackEvent>,
) {
    let frame_samples = (jitter.frame.as_secs_f64() * f64::from(CODEC_RATE)).round() as usize;
    let mut player = Player {
        speaker,
        buffer: JitterBuffer::new(jitter),
        reply: None,
        earcons,
        events,
        frame_samples,
        pcm: [0; MAX_FRAME_SAMPLES],
        last_fault: None,
    };
    'outer: loop {
        // Everything queued first, so a Stop is never behind a frame we are about to play.
        loop {
            match commands.try_recv() {
                Ok(command) => player.handle(command),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => break 'outer,
            }
        }
        if player.play_next() {
            continue;
        }
        // Nothing due: wait for the next command without spinning.
        match commands.recv_timeout(IDLE_POLL) {
            Ok(command) => player.handle(command),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = player.speaker.discard();
}

impl Player {
    /// Reports a speaker failure, at most once per [`FAULT_REPORT_EVERY`] while it lasts
    /// (a dead speaker fails every frame). The backend reopens the device on the next write.
    fn fail(&mut self, error: pivox_hal::Error) {
        let now = Instant::now();
        if self.last_fault.is_some_and(|at| now.duration_since(at) < FAULT_REPORT_EVERY) {
            return;
        }
        self.last_fault = Some(now);
        let _ = self.events.send(PlaybackEvent::Fault(Fault { device: "speaker", error }));
    }

    fn handle(&mut self, command: PlaybackCommand) {
        match command {
            PlaybackCommand::Begin { turn, codec } => match Decoder::new(codec) {
                Ok(decoder) => {
                    self.buffer.reset();
                    self.reply = Some(Reply { turn, decoder, started: false });
                }
                Err(e) => log::error!("cannot start the {codec} decoder: {e}"),
            },
            PlaybackCommand::Packet { seq, timestamp, payload, at } => {
                if self.reply.is_some() {
                    self.buffer.insert(seq, timestamp, CODEC_RATE, payload, at);
                }
            }
            PlaybackCommand::End => self.buffer.end(),
            PlaybackCommand::Stop => {
                self.reply = None;
                self.buffer.reset();
                if let Err(e) = self.speaker.discard() {
                    self.fail(e);
                }
            }
            PlaybackCommand::Earcon(earcon) => {
                let samples = self.earcons.get(earcon);
                if !samples.is_empty()
                    && let Err(e) = self.speaker.write(samples)
                {
                    self.fail(e);
                }
            }
        }
    }

    /// Plays the next frame of the reply if one is due; true when it did something.
    fn play_next(&mut self) -> bool {
        let Some(reply) = self.reply.as_mut() else { return false };
        let frame = &mut self.pcm[..self.frame_samples];
        match self.buffer.pop(Instant::now()) {
            Some(item) => {
                let packet = match &item {
                    Pop::Packet(p) => Some(&p[..]),
                    Pop::Conceal => None,
                };
                let n = reply.decoder.decode(packet, frame).unwrap_or_else(|e| {
                    // A packet the decoder rejects is concealed like a lost one.
                    log::warn!("reply packet undecodable ({e}); concealing it");
                    reply.decoder.decode(None, frame).unwrap_or(0)
                });
                if !reply.started {
                    reply.started = true;
                    let _ = self.events.send(PlaybackEvent::Started { turn: reply.turn, at: Instant::now() });
                }
                if let Err(e) = self.speaker.write(&self.pcm[..n]) {
                    self.fail(e);
                }
                true
            }
            None if self.buffer.is_finished() => {
                let turn = reply.turn;
                self.reply = None;
                if let Err(e) = self.speaker.drain() {
                    self.fail(e);
                }
                let _ = self.events.send(PlaybackEvent::Finished { turn, stats: self.buffer.stats() });
                true
            }
            None => false,
        }
    }
}
