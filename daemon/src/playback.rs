//! The playback thread: reply packets go through the jitter buffer and the decoder to the
//! speaker; earcons go straight to the speaker. The speaker's blocking `write` is the clock:
//! the thread asks the jitter buffer for the next frame whenever the speaker takes one.
//!
//! Commands arrive on a bounded queue sized once; the thread reports when a reply's first
//! sample was handed to the speaker and when its last one has played.
//!
//! Between replies the thread sleeps in `recv()` until a command comes: an idle appliance
//! spends most of its life here, and a timed poll would wake it hundreds of times a second.

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
use crate::link::TurnId;

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
    /// The loudness of replies and earcons from now on: 0.0 (muted) to 1.0 (as they come).
    Volume(f32),
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

/// During a reply, how long the thread waits for a command when the jitter buffer has nothing
/// due yet (buffering, or a gap): the buffer cannot say when its next frame will be due, so
/// it is asked again this often: well within a 10 ms frame, so a resumed reply stays on time.
const REPLY_POLL: Duration = Duration::from_millis(2);
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
    /// 0.0 to 1.0; below 1.0 every sample is scaled (earcons in `scaled`, made once each time).
    volume: f32,
    scaled: Vec<i16>,
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
        volume: 1.0,
        scaled: Vec::new(),
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
        // Nothing due. No reply: sleep until a command comes. A reply: look again soon.
        let command = if player.reply.is_some() {
            match commands.recv_timeout(REPLY_POLL) {
                Ok(command) => Some(command),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match commands.recv() {
                Ok(command) => Some(command),
                Err(_) => break,
            }
        };
        if let Some(command) = command {
            player.handle(command);
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
            // Muted: no tone, and no silence holding the speaker either.
            PlaybackCommand::Earcon(_) if self.volume == 0.0 => {}
            PlaybackCommand::Earcon(earcon) => {
                let mut samples = self.earcons.get(earcon);
                if self.volume < 1.0 {
                    // Earcons are rare and short: this copy is not on the per-frame path.
                    self.scaled.clear();
                    self.scaled.extend_from_slice(samples);
                    scale(&mut self.scaled, self.volume);
                    samples = &self.scaled;
                }
                if !samples.is_empty()
                    && let Err(e) = self.speaker.write(samples)
                {
                    self.fail(e);
                }
            }
            PlaybackCommand::Volume(volume) => self.volume = volume.clamp(0.0, 1.0),
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
                if self.volume < 1.0 {
                    scale(&mut self.pcm[..n], self.volume);
                }
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

/// Scales samples by `volume` (0.0 to 1.0), in place.
fn scale(samples: &mut [i16], volume: f32) {
    for sample in samples {
        *sample = (f32::from(*sample) * volume) as i16;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{Sender, channel};
    use std::sync::{Arc, Mutex};
    use std::thread::JoinHandle;

    use super::*;

    /// Records how many samples each write handed over.
    #[derive(Clone, Default)]
    struct FakeSpeaker(Arc<Mutex<Vec<usize>>>);

    impl Speaker for FakeSpeaker {
        fn sample_rate(&self) -> u32 {
            CODEC_RATE
        }
        fn write(&mut self, samples: &[i16]) -> pivox_hal::Result<()> {
            self.0.lock().unwrap().push(samples.len());
            Ok(())
        }
        fn drain(&mut self) -> pivox_hal::Result<()> {
            Ok(())
        }
        fn discard(&mut self) -> pivox_hal::Result<()> {
            Ok(())
        }
    }

    struct Running {
        commands: Sender<PlaybackCommand>,
        events: tokio::sync::mpsc::UnboundedReceiver<PlaybackEvent>,
        written: FakeSpeaker,
        /// The playback thread's kernel thread id.
        tid: i32,
        thread: JoinHandle<()>,
    }

    fn start() -> Running {
        let (commands, rx) = channel();
        let (events_tx, events) = tokio::sync::mpsc::unbounded_channel();
        let written = FakeSpeaker::default();
        let speaker = Box::new(written.clone());
        let jitter = JitterConfig {
            frame: Duration::from_millis(20),
            min_delay: Duration::from_millis(40),
            max_delay: Duration::from_millis(200),
            max_age: Duration::from_millis(100),
            capacity: 64,
        };
        let (tid_tx, tid_rx) = channel();
        let thread = std::thread::spawn(move || {
            // SAFETY: gettid(2) has no preconditions.
            let _ = tid_tx.send(unsafe { libc::gettid() });
            run(speaker, jitter, EarconBank::new(CODEC_RATE, 0.3), rx, events_tx);
        });
        let tid = tid_rx.recv().unwrap();
        Running { commands, events, written, tid, thread }
    }

    /// Times the kernel has switched the thread out so far, voluntarily (it waited) or not.
    fn context_switches(tid: i32) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap();
        let count = |key: &str| -> u64 {
            status.lines().find_map(|l| l.strip_prefix(key)).map(|v| v.trim().parse().unwrap()).unwrap_or(0)
        };
        count("voluntary_ctxt_switches:") + count("nonvoluntary_ctxt_switches:")
    }

    /// Polls `check` for up to 5 s.
    fn eventually(what: &str, check: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !check() {
            assert!(Instant::now() < deadline, "{what} within 5 s");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Issue 11: an idle player polled every 2 ms, ~480 wake-ups a second with nothing to play.
    /// A thread blocked in `recv()` is not switched in at all, however loaded the machine,
    /// so this bound holds under a parallel test run; the 2 ms poll made ~100 here.
    #[test]
    fn an_idle_player_sleeps_until_a_command_comes() {
        let running = start();
        // Let it reach its wait (a loaded machine may take a while to run the new thread).
        std::thread::sleep(Duration::from_millis(50));
        let before = context_switches(running.tid);
        std::thread::sleep(Duration::from_millis(200));
        let woke = context_switches(running.tid) - before;
        assert!(woke < 5, "the idle playback thread woke {woke} times in 200 ms");

        // A command still wakes it at once.
        running.commands.send(PlaybackCommand::Earcon(Earcon::Press)).unwrap();
        eventually("the earcon played", || !running.written.0.lock().unwrap().is_empty());
        drop(running.commands);
        running.thread.join().unwrap();
    }

    #[test]
    fn a_reply_after_idle_plays_to_the_end_and_the_player_sleeps_again() {
        let mut running = start();
        std::thread::sleep(Duration::from_millis(50));
        let send = |command| running.commands.send(command).unwrap();
        send(PlaybackCommand::Begin { turn: 7, codec: Codec::Pcm });
        // Three 20 ms PCM frames; the jitter buffer holds the first back by its 40 ms minimum,
        // which the thread covers by polling.
        for seq in 0..3u16 {
            let payload = Bytes::from(vec![0u8; 640]);
            send(PlaybackCommand::Packet { seq, timestamp: u32::from(seq) * 320, payload, at: Instant::now() });
        }
        send(PlaybackCommand::End);
        let mut started = false;
        let finished = loop {
            match running.events.blocking_recv().expect("the playback thread ended early") {
                PlaybackEvent::Started { turn, .. } => started = turn == 7,
                PlaybackEvent::Finished { turn, stats } => break (turn, stats.played),
                PlaybackEvent::Fault(f) => panic!("fault: {f:?}"),
            }
        };
        assert!(started);
        assert_eq!(finished, (7, 3));
        assert_eq!(*running.written.0.lock().unwrap(), [320, 320, 320]);

        // Reply over: back to sleeping.
        std::thread::sleep(Duration::from_millis(20));
        let before = context_switches(running.tid);
        std::thread::sleep(Duration::from_millis(200));
        let woke = context_switches(running.tid) - before;
        assert!(woke < 5, "the playback thread woke {woke} times in 200 ms after the reply");
        drop(running.commands);
        running.thread.join().unwrap();
    }
}
