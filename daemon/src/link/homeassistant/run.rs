//! One `assist_pipeline/run` as a pure state machine: what the session and Home Assistant
//! say about the run goes in ([`Input`]), what to write, report or fetch comes out
//! ([`Action`]). No I/O and no clock: the connection carries the actions out, and time
//! arrives with each input. Tested like the session (`run_tests.rs`).
//!
//! ```text
//!  audio in:  Held ──run-start──▶ Open(handler) ──end / stt-end / error──▶ Closed
//!  answer:    Live ──tts-end──▶ Replying ──run-end──▶ done
//!               │ run-end (no reply): Quiet ──grace, no error──▶ done (turn ends without a reply)
//!               └ error ──▶ Failed      cancel (any time) ──▶ Abandoned: nothing more reported
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::messages::{ErrorData, TtsOutput};
use crate::link::{Event, TurnId};

/// After `run-end` without a reply, how long an `error` may still follow (HA sends a run
/// timeout's `error` after its `run-end`).
pub const RUN_END_GRACE: Duration = Duration::from_millis(300);
/// Audio held for a run whose `run-start` has not come yet: 60 s of 16 kHz PCM.
pub const MAX_HELD_AUDIO: usize = 60 * 2 * crate::audio::CODEC_RATE as usize;

/// What happens to the run.
#[derive(Debug)]
pub enum Input {
    /// A packet of the turn's audio (16 kHz PCM) from the session.
    Audio(Bytes),
    /// The session ended the turn's audio.
    EndAudio,
    /// The session dropped the turn (barge-in, too short, a timeout).
    Cancel,
    /// `run-start`: the handler byte HA's audio frames must start with, or why there is none.
    Started {
        handler: Result<u8, String>,
        stream_response: bool,
        tts: Option<TtsOutput>,
    },
    /// `stt-vad-end` or `stt-end`: HA stopped listening; the transcript when it has one.
    SpeechEnded {
        transcript: Option<String>,
    },
    /// `intent-end`: the answer's text.
    Answered {
        speech: Option<String>,
    },
    /// `intent-progress`: HA starts streaming the spoken answer before the text is complete.
    TtsStreaming,
    /// `tts-start`: what will be spoken, as a cache key.
    TtsStarted {
        key: Option<String>,
    },
    /// `tts-end`: where the spoken answer is.
    TtsEnded {
        tts: Option<TtsOutput>,
    },
    RunEnded,
    /// `error`, or HA refusing the run command.
    Error(ErrorData),
    /// Time passes (the end-of-run grace).
    Tick,
}

/// What the connection does for the run, in order.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Write an audio frame: `handler` then `payload`; an empty payload ends the audio.
    Write {
        handler: u8,
        payload: Bytes,
    },
    Emit(Event),
    /// Fetch and play the spoken answer; `key` is the cache key when HA told what it says.
    FetchReply {
        tts: TtsOutput,
        key: Option<String>,
    },
    /// Stop the run's reply download, if any.
    StopReply,
    /// The run failed: report it to the session (unless abandoned, it always is).
    Fail(ErrorData),
    /// The run is over: forget it.
    Done,
}

/// The actions one input produced; a few at most, but held audio comes out in one go. The
/// connection lends one buffer for every input, so the audio path allocates nothing per frame.
pub type Actions = Vec<Action>;

#[derive(Debug)]
enum Audio {
    /// Before `run-start`: audio waits here, in order.
    Held {
        packets: VecDeque<Bytes>,
        bytes: usize,
        overflow: bool,
    },
    Open {
        handler: u8,
    },
    /// No more audio goes to HA.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Live,
    Replying,
    /// `run-end` came without a reply or an error at this time.
    Quiet(Instant),
    Failed,
    Abandoned,
}

#[derive(Debug)]
pub struct Run {
    /// The id of the run command; HA's events for the run carry it.
    pub id: u64,
    pub turn: TurnId,
    audio: Audio,
    /// The session ended the audio before `run-start`: the end marker follows the held audio.
    end_wanted: bool,
    /// Audio frames written (the end marker not counted).
    frames: u32,
    answer: Answer,
    stream_response: bool,
    tts_key: Option<String>,
    tts: Option<TtsOutput>,
}

impl Run {
    pub fn new(id: u64, turn: TurnId) -> Self {
        Self {
            id,
            turn,
            audio: Audio::Held { packets: VecDeque::new(), bytes: 0, overflow: false },
            end_wanted: false,
            frames: 0,
            answer: Answer::Live,
            stream_response: false,
            tts_key: None,
            tts: None,
        }
    }

    /// Whether the session still wants this run (not cancelled).
    pub fn live(&self) -> bool {
        self.answer != Answer::Abandoned
    }

    /// Whether the run was still waiting for its answer (for "lost in the middle of the turn").
    pub fn unanswered(&self) -> bool {
        self.answer == Answer::Live
    }

    /// When the run should get an [`Input::Tick`].
    pub fn deadline(&self) -> Option<Instant> {
        match self.answer {
            Answer::Quiet(at) => Some(at + RUN_END_GRACE),
            _ => None,
        }
    }

    /// Takes one input; the actions it produces are appended to `out`.
    pub fn handle(&mut self, input: Input, now: Instant, out: &mut Actions) {
        match input {
            Input::Audio(payload) => self.audio(payload, now, out),
            Input::EndAudio => {
                self.end_wanted = true;
                self.close_audio(now, out);
            }
            Input::Cancel => {
                // A run HA has already ended is over once nobody waits for its late error.
                let ended = matches!(self.answer, Answer::Quiet(_));
                self.answer = Answer::Abandoned;
                out.push(Action::StopReply);
                // HA cannot cancel a run; ending its audio lets it finish instead of waiting
                // for the run timeout.
                self.end_wanted = true;
                if let Audio::Held { packets, .. } = &mut self.audio {
                    packets.clear();
                }
                self.close_audio(now, out);
                if ended {
                    out.push(Action::Done);
                }
            }
            Input::Started { handler: Err(message), .. } => {
                self.fail(ErrorData { code: "no-stt".into(), message }, out)
            }
            Input::Started { handler: Ok(handler), stream_response, tts } => {
                self.stream_response = stream_response;
                self.tts = tts;
                self.start(handler, now, out);
            }
            Input::SpeechEnded { transcript } => self.input_closed(transcript, now, out),
            Input::Answered { speech: Some(text) } if self.live() => {
                out.push(Action::Emit(Event::ReplyText { turn: self.turn, text }));
            }
            Input::Answered { .. } => {}
            Input::TtsStreaming => {
                if self.stream_response && self.tts.is_some() {
                    self.reply(out);
                }
            }
            Input::TtsStarted { key } => self.tts_key = key,
            Input::TtsEnded { tts } => {
                if tts.is_some() {
                    self.tts = tts;
                }
                self.reply(out);
            }
            Input::RunEnded => match self.answer {
                Answer::Live => self.answer = Answer::Quiet(now),
                _ => out.push(Action::Done),
            },
            Input::Error(error) => {
                let quiet = matches!(self.answer, Answer::Quiet(_));
                self.fail(error, out);
                if quiet {
                    out.push(Action::Done);
                }
            }
            Input::Tick => {
                if self.deadline().is_some_and(|at| now >= at) {
                    log::info!("turn {}: Home Assistant finished the run without a spoken reply", self.turn);
                    out.push(Action::Emit(Event::ReplyEnd { turn: self.turn }));
                    out.push(Action::Done);
                }
            }
        }
    }

    fn audio(&mut self, payload: Bytes, now: Instant, out: &mut Actions) {
        if self.end_wanted || payload.is_empty() {
            return;
        }
        match &mut self.audio {
            Audio::Open { handler } => {
                let handler = *handler;
                self.write(handler, payload, now, out);
            }
            Audio::Held { overflow: true, .. } | Audio::Closed => {}
            Audio::Held { packets, bytes, overflow } => {
                if *bytes + payload.len() > MAX_HELD_AUDIO {
                    *overflow = true;
                    log::warn!("turn {}: Home Assistant has not started the run; dropping audio", self.turn);
                } else {
                    *bytes += payload.len();
                    packets.push_back(payload);
                }
            }
        }
    }

    fn write(&mut self, handler: u8, payload: Bytes, now: Instant, out: &mut Actions) {
        out.push(Action::Write { handler, payload });
        self.frames += 1;
        if self.frames == 1 {
            out.push(Action::Emit(Event::FirstAudioSent { turn: self.turn, at: now }));
        }
    }

    /// `run-start`: the audio of the pre-roll and of the first moments of the press go out,
    /// in order, then the end marker if the session already ended the audio.
    fn start(&mut self, handler: u8, now: Instant, out: &mut Actions) {
        // A run whose input already closed (it failed before HA started it) stays closed.
        if !matches!(self.audio, Audio::Held { .. }) {
            return;
        }
        let Audio::Held { packets, .. } = std::mem::replace(&mut self.audio, Audio::Open { handler }) else {
            return;
        };
        log::debug!("turn {}: Home Assistant started the run, audio handler {handler}", self.turn);
        for payload in packets {
            self.write(handler, payload, now, out);
        }
        self.close_audio(now, out);
    }

    /// Writes the end marker once the session ended the audio and HA can take it.
    fn close_audio(&mut self, now: Instant, out: &mut Actions) {
        if let (true, Audio::Open { handler }) = (self.end_wanted, &self.audio) {
            out.push(Action::Write { handler: *handler, payload: Bytes::new() });
            self.audio = Audio::Closed;
            if self.live() {
                out.push(Action::Emit(Event::EndSent { turn: self.turn, at: now, frames: self.frames }));
            }
        }
    }

    fn input_closed(&mut self, transcript: Option<String>, now: Instant, out: &mut Actions) {
        let open = !matches!(self.audio, Audio::Closed);
        if open && !self.end_wanted && self.live() {
            log::info!("turn {}: Home Assistant stopped listening; the rest of this press is not sent", self.turn);
            out.push(Action::Emit(Event::InputClosed { turn: self.turn, at: now, frames: self.frames }));
        }
        self.audio = Audio::Closed;
        if let (true, Some(text)) = (self.live(), transcript) {
            out.push(Action::Emit(Event::Transcript { turn: self.turn, text }));
        }
    }

    /// Starts playing the answer (at `tts-end`, or earlier when HA streams it).
    fn reply(&mut self, out: &mut Actions) {
        if self.answer != Answer::Live {
            return;
        }
        match self.tts.clone() {
            Some(tts) => {
                self.answer = Answer::Replying;
                out.push(Action::FetchReply { tts, key: self.tts_key.clone() });
            }
            None => {
                let message = "tts-end without tts_output.url".into();
                self.fail(ErrorData { code: "tts-failed".into(), message }, out);
            }
        }
    }

    /// No more audio goes to the run, its reply download stops, and the session hears why.
    fn fail(&mut self, error: ErrorData, out: &mut Actions) {
        if matches!(self.answer, Answer::Failed) {
            return;
        }
        self.audio = Audio::Closed;
        out.push(Action::StopReply);
        if self.live() {
            out.push(Action::Fail(error));
        }
        self.answer = if self.live() { Answer::Failed } else { Answer::Abandoned };
    }
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
