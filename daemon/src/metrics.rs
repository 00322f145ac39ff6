//! Per-turn figures: when each step of a turn happened, turned into the latencies and
//! counters logged once per turn (and written as JSON lines for `make bench`).

use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::audio::jitter::JitterStats;
use crate::session::{Outcome, TurnId};

/// Instants and counters collected while a turn runs.
#[derive(Debug)]
pub struct TurnClock {
    pub turn: TurnId,
    pub pressed_at: Instant,
    pub first_frame_at: Option<Instant>,
    pub released_at: Option<Instant>,
    pub end_sent_at: Option<Instant>,
    pub first_reply_at: Option<Instant>,
    /// When the server said where the reply is (Home Assistant's `tts-end`).
    pub reply_announced_at: Option<Instant>,
    pub first_sample_at: Option<Instant>,
    pub frames_sent: u32,
    pub samples_sent: u64,
    pub jitter: Option<JitterStats>,
    bytes_at_start: (u64, u64),
    dropped_at_start: u64,
}

/// The figures of one finished turn.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct TurnMetrics {
    pub turn: TurnId,
    pub outcome: Outcome,
    pub press_to_first_frame_ms: Option<f64>,
    pub release_to_end_ms: Option<f64>,
    pub end_to_first_reply_ms: Option<f64>,
    pub reply_to_first_sample_ms: Option<f64>,
    /// Home Assistant: `tts-end` → first reply sample handed to the speaker (fetch, decode,
    /// jitter buffer).
    #[serde(default)]
    pub announced_to_first_sample_ms: Option<f64>,
    pub frames_sent: u32,
    pub frames_dropped: u64,
    pub audio_sent_ms: f64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub jitter_first_delay_ms: Option<f64>,
    pub jitter_delay_mean_ms: Option<f64>,
    pub jitter_target_ms: Option<f64>,
    pub jitter_late: u32,
    pub jitter_concealed: u32,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn between(from: Option<Instant>, to: Option<Instant>) -> Option<f64> {
    Some(ms(to?.saturating_duration_since(from?)))
}

impl TurnClock {
    pub fn new(turn: TurnId, pressed_at: Instant, bytes: (u64, u64), dropped: u64) -> Self {
        Self {
            turn,
            pressed_at,
            first_frame_at: None,
            released_at: None,
            end_sent_at: None,
            first_reply_at: None,
            reply_announced_at: None,
            first_sample_at: None,
            frames_sent: 0,
            samples_sent: 0,
            jitter: None,
            bytes_at_start: bytes,
            dropped_at_start: dropped,
        }
    }

    pub fn finish(&self, outcome: Outcome, bytes: (u64, u64), dropped: u64, rate: u32) -> TurnMetrics {
        let jitter = self.jitter.as_ref();
        TurnMetrics {
            turn: self.turn,
            outcome,
            press_to_first_frame_ms: between(Some(self.pressed_at), self.first_frame_at),
            release_to_end_ms: between(self.released_at, self.end_sent_at),
            end_to_first_reply_ms: between(self.end_sent_at, self.first_reply_at),
            reply_to_first_sample_ms: between(self.first_reply_at, self.first_sample_at),
            announced_to_first_sample_ms: between(self.reply_announced_at, self.first_sample_at),
            frames_sent: self.frames_sent,
            frames_dropped: dropped - self.dropped_at_start,
            audio_sent_ms: self.samples_sent as f64 * 1000.0 / f64::from(rate),
            bytes_up: bytes.0 - self.bytes_at_start.0,
            bytes_down: bytes.1 - self.bytes_at_start.1,
            jitter_first_delay_ms: jitter.and_then(|j| j.first_delay).map(ms),
            jitter_delay_mean_ms: jitter.map(|j| ms(j.delay_mean())),
            jitter_target_ms: jitter.map(|j| ms(j.target)),
            jitter_late: jitter.map_or(0, |j| j.late),
            jitter_concealed: jitter.map_or(0, |j| j.concealed),
        }
    }
}

impl fmt::Display for TurnMetrics {
    /// One journal line: `turn 3 Completed: press→first frame 0.4 ms, ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} ms"));
        write!(
            f,
            "turn {} {}: press→first frame {}, release→end {}, end→reply {}, reply→speaker {}; \
             {} frames sent ({} dropped, {:.2} s of audio), {} B up, {} B down",
            self.turn,
            self.outcome,
            show(self.press_to_first_frame_ms),
            show(self.release_to_end_ms),
            show(self.end_to_first_reply_ms),
            show(self.reply_to_first_sample_ms),
            self.frames_sent,
            self.frames_dropped,
            self.audio_sent_ms / 1000.0,
            self.bytes_up,
            self.bytes_down,
        )?;
        if let Some(fetch) = self.announced_to_first_sample_ms {
            write!(f, "; reply URL→speaker {fetch:.1} ms")?;
        }
        if let (Some(delay), Some(target)) = (self.jitter_first_delay_ms, self.jitter_target_ms) {
            write!(
                f,
                "; jitter buffer added {delay:.1} ms (target {target:.0} ms), {} late, {} concealed",
                self.jitter_late, self.jitter_concealed
            )?;
        }
        Ok(())
    }
}
