//! The push-to-talk session: a pure state machine, events in, actions out.
//!
//! ```text
//!  Idle ──press──▶ Listening ──release / max length──▶ Waiting ──reply_start──▶ Playing
//!   ▲                 │ short press: cancel              │ reply_end (no audio)     │ playback finished
//!   └─────────────────┴──────────────────────────────────┴──────────────────────────┘
//! ```
//! The server may end the listening itself (Home Assistant's own end-of-speech detection):
//! `InputClosed` moves Listening to Waiting as a release would, and a reply or the end of the
//! turn that arrives while the button is still held is taken, not dropped.
//!
//! Every state but Idle ends within a bounded time: Listening after `max_turn`, Waiting after
//! `reply_timeout`, Playing when no reply audio arrived for `reply_timeout` (a stalled reply)
//! or `max_reply` after the turn ended (a reply that never ends).
//!
//! A press in Waiting or Playing is a barge-in: the old turn is cancelled, its reply
//! silenced, and a new turn starts at once. A link failure or server error during a turn
//! gives the error earcon and returns to Idle; a turn the server heard no words in gives
//! the "didn't catch that" earcon instead, with the LED back to idle. A press while the link is down gives the
//! error earcon and records nothing: the user presses again once the link is back.
//!
//! The session alone decides what the LED shows: each state's light, the error light after a
//! failed turn or a device fault (shown for [`ERROR_SHOWN`], then the light of the state the
//! session is in — [`Session::after_error`]), and an error light that stays while the server
//! refuses pivox's credentials, until the link is up again.
//!
//! No I/O and no clock: time arrives inside the events, and [`Session::next_deadline`] tells
//! the caller when to deliver the next [`Event::Tick`].

use std::time::{Duration, Instant};

use pivox_hal::LedState;

mod outcome;

use crate::audio::earcon::Earcon;
pub use crate::link::{EndReason, TurnId};
pub use outcome::Outcome;

/// How long the LED shows an error before it returns to the session's state.
pub const ERROR_SHOWN: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A press released sooner than this is taken as a mis-press and cancelled.
    pub min_press: Duration,
    /// A turn still held after this long is ended as if released.
    pub max_turn: Duration,
    /// How long to wait for the start of a reply after the end of a turn, and the longest
    /// pause in a reply's audio before the reply is taken as stalled.
    pub reply_timeout: Duration,
    /// The longest a reply may play, counted from the end of the turn.
    pub max_reply: Duration,
    /// How long a finished timer rings when nobody presses the button.
    pub ring_for: Duration,
}

/// A finished timer's alarm sounds again this often while it rings.
pub const RING_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Idle,
    Listening { turn: TurnId, since: Instant },
    Waiting { turn: TurnId, since: Instant },
    Playing { turn: TurnId, reply_ended: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Pressed(Instant),
    Released(Instant),
    /// The server link is connected and ready for turns.
    LinkUp,
    LinkDown,
    /// The link is down because the server refused pivox's credentials: the user has to act.
    CredentialsRefused,
    /// A device failed and is being retried.
    DeviceFault,
    /// The server started replying to this turn, at this time.
    ReplyStarted(TurnId, Instant),
    /// Reply audio for this turn arrived (and was handed to playback) at this time.
    ReplyAudio(TurnId, Instant),
    ReplyEnded(TurnId),
    /// The server stopped listening to this turn (its own end-of-speech detection) at this time.
    InputClosed(TurnId, Instant),
    /// The server reported an error for this turn (or for the connection: `None`).
    ServerError(Option<TurnId>),
    /// The server heard no words in this turn's audio: nothing is broken, ask again.
    NotUnderstood(TurnId),
    /// The last sample of the reply to this turn has been played.
    PlaybackFinished(TurnId),
    /// The server starts something of its own to play (an announcement), as the reply of this
    /// turn, which the link numbered: it cuts short whatever turn is in progress.
    Announced(TurnId, Instant),
    /// The server asks to hear the user now (a conversation it started or continues): one turn
    /// without the button, ended by the server's voice detection (or a press and release).
    ListenRequested(Instant),
    /// Whether a timer is counting down (the idle light says so).
    TimerRunning(bool),
    /// A timer finished: it rings until a press or `ring_for`.
    TimerFinished(Instant),
    Tick(Instant),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Announce the turn and start streaming, pre-roll first.
    StartTurn(TurnId),
    /// Stop streaming and tell the server the utterance is complete.
    EndTurn(TurnId, EndReason),
    /// Tell the server to drop the turn.
    CancelTurn(TurnId),
    /// Silence the reply at once.
    StopPlayback,
    Earcon(Earcon),
    Led(LedState),
    TurnDone(TurnId, Outcome),
}

/// When the reply of the turn in Playing started to be awaited, and when its audio last came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReplyClock {
    turn: TurnId,
    ended_at: Instant,
    last_audio: Instant,
    heard: bool,
}

/// The actions one event produced; never more than a handful.
pub type Actions = heapless::Vec<Action, 8>;

#[derive(Debug)]
pub struct Session {
    limits: Limits,
    state: State,
    link_up: bool,
    /// The link was up once and went down: its return earns the "reconnected" earcon.
    link_lost: bool,
    /// The server refused pivox's credentials: the error light stays until the link is up.
    refused: bool,
    last_turn: TurnId,
    /// Set while Playing: bounds the reply in time, and tells an empty reply from a played one.
    reply: Option<ReplyClock>,
    timer_running: bool,
    /// A finished timer rings until `.0`; its alarm sounds next at `.1`.
    ringing: Option<(Instant, Instant)>,
}

impl Session {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: State::Idle,
            link_up: false,
            link_lost: false,
            refused: false,
            last_turn: 0,
            reply: None,
            timer_running: false,
            ringing: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether the server link is up, so that a press can start a turn.
    pub fn link_up(&self) -> bool {
        self.link_up
    }

    /// What the LED shows after an error, and after how long; `None`: the error light stays
    /// (the server refused pivox's credentials).
    pub fn after_error(&self) -> Option<(Duration, LedState)> {
        (!self.refused).then(|| (ERROR_SHOWN, self.state_led()))
    }

    /// The light of the state the session is in.
    fn state_led(&self) -> LedState {
        match self.state {
            State::Idle if self.ringing.is_some() => LedState::TimerRinging,
            State::Idle if self.link_up && self.timer_running => LedState::TimerRunning,
            State::Idle if self.link_up => LedState::Idle,
            State::Idle if self.refused => LedState::Error,
            State::Idle => LedState::Disconnected,
            State::Listening { .. } => LedState::Listening,
            State::Waiting { .. } => LedState::Thinking,
            State::Playing { .. } => LedState::Speaking,
        }
    }

    /// The turn whose audio is being streamed right now, if any.
    pub fn streaming_turn(&self) -> Option<TurnId> {
        match self.state {
            State::Listening { turn, .. } => Some(turn),
            _ => None,
        }
    }

    /// The turn a reply may arrive for right now.
    pub fn reply_turn(&self) -> Option<TurnId> {
        match self.state {
            State::Waiting { turn, .. } | State::Playing { turn, .. } => Some(turn),
            _ => None,
        }
    }

    /// When the caller should deliver the next [`Event::Tick`].
    pub fn next_deadline(&self) -> Option<Instant> {
        let ring = self.ringing.map(|(until, next)| until.min(next));
        match (self.turn_deadline(), ring) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn turn_deadline(&self) -> Option<Instant> {
        match self.state {
            State::Listening { since, .. } => Some(since + self.limits.max_turn),
            State::Waiting { since, .. } => Some(since + self.limits.reply_timeout),
            State::Playing { reply_ended, .. } => self.reply.map(|r| {
                let cap = r.ended_at + self.limits.max_reply;
                if reply_ended { cap } else { cap.min(r.last_audio + self.limits.reply_timeout) }
            }),
            State::Idle => None,
        }
    }

    pub fn handle(&mut self, event: Event) -> Actions {
        let mut out = Actions::new();
        let mut act = |a: Action| {
            // Capacity is sized for the longest sequence below; a miss would be a bug, not input.
            let pushed = out.push(a);
            debug_assert!(pushed.is_ok(), "session produced more than 8 actions");
        };
        match event {
            Event::LinkUp | Event::LinkDown | Event::CredentialsRefused | Event::DeviceFault => {
                self.link_or_device(event, &mut act)
            }
            // A press while a timer rings silences it, and is no turn.
            Event::Pressed(_) if self.ringing.is_some() => {
                self.ringing = None;
                act(Action::Led(self.state_led()));
            }
            Event::Pressed(at) => self.pressed(at, &mut act),
            Event::TimerRunning(running) => {
                self.timer_running = running;
                if self.state == State::Idle {
                    act(Action::Led(self.state_led()));
                }
            }
            Event::TimerFinished(at) => {
                self.ringing = Some((at + self.limits.ring_for, at + RING_EVERY));
                act(Action::Earcon(Earcon::Alarm));
                act(Action::Led(self.state_led()));
            }
            Event::Tick(now) if self.ringing.is_some_and(|(until, next)| now >= until.min(next)) => {
                self.ring(now, &mut act);
                self.turn_event(event, &mut act);
            }
            Event::Announced(turn, at) => self.announced(turn, at, &mut act),
            Event::ListenRequested(at) if self.state == State::Idle && self.link_up => self.listen(at, &mut act),
            // Not while a turn is in progress (the user's own turn goes first).
            Event::ListenRequested(_) => {}
            _ => self.turn_event(event, &mut act),
        }
        out
    }

    fn link_or_device(&mut self, event: Event, act: &mut impl FnMut(Action)) {
        match event {
            Event::LinkUp => {
                self.link_up = true;
                self.refused = false;
                if std::mem::take(&mut self.link_lost) {
                    act(Action::Earcon(Earcon::Reconnected));
                }
                if self.state == State::Idle {
                    act(Action::Led(LedState::Idle));
                }
            }
            Event::LinkDown | Event::CredentialsRefused => {
                self.link_up = false;
                self.link_lost = true;
                self.refused = event == Event::CredentialsRefused;
                match self.state {
                    State::Listening { turn, .. }
                    | State::Waiting { turn, .. }
                    | State::Playing { turn, reply_ended: false } => {
                        self.fail(turn, Outcome::LinkLost, act);
                    }
                    // The whole reply is here: let it play; the link is not needed for that.
                    State::Playing { reply_ended: true, .. } | State::Idle => {}
                }
                act(Action::Led(if self.refused { LedState::Error } else { LedState::Disconnected }));
            }
            _ => act(Action::Led(LedState::Error)),
        }
    }

    fn pressed(&mut self, at: Instant, act: &mut impl FnMut(Action)) {
        if !self.link_up {
            act(Action::Earcon(Earcon::Error));
            act(Action::Led(self.state_led()));
            return;
        }
        if matches!(self.state, State::Listening { .. }) {
            return; // a second press edge while held: noise
        }
        self.cut_short(act);
        self.listen(at, act);
    }

    /// The alarm of a ringing timer: again every [`RING_EVERY`], until `ring_for` has passed.
    fn ring(&mut self, now: Instant, act: &mut impl FnMut(Action)) {
        let Some((until, next)) = self.ringing else { return };
        if now >= until {
            self.ringing = None;
            act(Action::Led(self.state_led()));
        } else if now >= next {
            self.ringing = Some((until, now + RING_EVERY));
            act(Action::Earcon(Earcon::Alarm));
        }
    }

    /// Ends the turn in Waiting or Playing for a newer one.
    fn cut_short(&mut self, act: &mut impl FnMut(Action)) {
        match self.state {
            State::Listening { turn, .. } | State::Waiting { turn, .. } => {
                act(Action::CancelTurn(turn));
                act(Action::TurnDone(turn, Outcome::BargedIn));
            }
            State::Playing { turn, .. } => {
                act(Action::StopPlayback);
                act(Action::CancelTurn(turn));
                act(Action::TurnDone(turn, Outcome::BargedIn));
            }
            State::Idle => {}
        }
        self.reply = None;
    }

    /// The server's own reply (an announcement) is awaited like the reply to a turn.
    fn announced(&mut self, turn: TurnId, at: Instant, act: &mut impl FnMut(Action)) {
        self.cut_short(act);
        self.state = State::Waiting { turn, since: at };
        act(Action::Led(LedState::Thinking));
    }

    /// Opens the microphone for a new turn.
    fn listen(&mut self, at: Instant, act: &mut impl FnMut(Action)) {
        self.last_turn = self.last_turn.wrapping_add(1).max(1);
        let turn = self.last_turn;
        self.state = State::Listening { turn, since: at };
        act(Action::StartTurn(turn));
        act(Action::Earcon(Earcon::Press));
        act(Action::Led(LedState::Listening));
    }

    /// Releases, ticks and what the server says about the current turn.
    fn turn_event(&mut self, event: Event, act: &mut impl FnMut(Action)) {
        match (self.state, event) {
            (State::Listening { turn, since }, Event::Released(at)) => {
                if at.saturating_duration_since(since) < self.limits.min_press {
                    act(Action::CancelTurn(turn));
                    act(Action::TurnDone(turn, Outcome::TooShort));
                    act(Action::Led(LedState::Idle));
                    self.state = State::Idle;
                } else {
                    self.end_turn(turn, EndReason::Released, at, act);
                }
            }
            (State::Listening { turn, since }, Event::Tick(now)) if now >= since + self.limits.max_turn => {
                self.end_turn(turn, EndReason::MaxLength, now, act);
            }
            (State::Waiting { turn, since }, Event::Tick(now)) if now >= since + self.limits.reply_timeout => {
                act(Action::CancelTurn(turn));
                self.fail(turn, Outcome::ReplyTimeout, act);
            }
            (State::Listening { turn, .. }, Event::InputClosed(t, at)) if t == turn => {
                self.end_turn(turn, EndReason::ServerEnded, at, act);
            }
            // The server answers while the button is still held: it has heard enough.
            (State::Listening { turn, .. }, Event::ReplyStarted(t, at)) if t == turn => {
                self.end_turn(turn, EndReason::ServerEnded, at, act);
                self.start_reply(turn, act);
            }
            (State::Waiting { turn, .. }, Event::ReplyStarted(t, _)) if t == turn => self.start_reply(turn, act),
            (State::Listening { turn, .. }, Event::ReplyEnded(t)) if t == turn => {
                act(Action::CancelTurn(turn));
                self.finish(turn, Outcome::NoReply, act);
            }
            (State::Waiting { turn, .. }, Event::ReplyEnded(t)) if t == turn => {
                self.finish(turn, Outcome::NoReply, act);
            }
            (State::Playing { turn, .. }, Event::ReplyAudio(t, at)) if t == turn => {
                if let Some(reply) = self.reply.as_mut() {
                    reply.last_audio = reply.last_audio.max(at);
                    reply.heard = true;
                }
            }
            (State::Playing { turn, .. }, Event::ReplyEnded(t)) if t == turn => {
                self.state = State::Playing { turn, reply_ended: true };
            }
            (State::Playing { turn, .. }, Event::PlaybackFinished(t)) if t == turn => {
                let heard = self.reply.is_some_and(|r| r.heard);
                self.finish(turn, if heard { Outcome::Completed } else { Outcome::NoReply }, act);
            }
            (State::Playing { turn, reply_ended }, Event::Tick(now)) => {
                let Some(reply) = self.reply else { return };
                if now >= reply.ended_at + self.limits.max_reply {
                    act(Action::CancelTurn(turn));
                    self.fail(turn, Outcome::ReplyTooLong, act);
                } else if !reply_ended && now >= reply.last_audio + self.limits.reply_timeout {
                    act(Action::CancelTurn(turn));
                    self.fail(turn, Outcome::ReplyStalled, act);
                }
            }
            (State::Listening { turn, .. } | State::Waiting { turn, .. }, Event::NotUnderstood(t)) if t == turn => {
                self.state = State::Idle;
                act(Action::Earcon(Earcon::NotUnderstood));
                act(Action::TurnDone(turn, Outcome::NotUnderstood));
                act(Action::Led(LedState::Idle));
            }
            (_, Event::ServerError(t)) => self.server_error(t, act),
            // Releases while not listening (after max length, a cancelled or failed turn),
            // ticks before a deadline, and events for turns that are no longer current.
            _ => {}
        }
    }

    /// An error for the current turn (or the connection) fails it; one for an old turn is
    /// only heard.
    fn server_error(&mut self, of: Option<TurnId>, act: &mut impl FnMut(Action)) {
        let current = match self.state {
            State::Listening { turn, .. } | State::Waiting { turn, .. } | State::Playing { turn, .. } => Some(turn),
            State::Idle => None,
        };
        match current {
            Some(turn) if of.is_none() || of == Some(turn) => self.fail(turn, Outcome::ServerError, act),
            _ => act(Action::Earcon(Earcon::Error)),
        }
    }

    fn end_turn(&mut self, turn: TurnId, reason: EndReason, at: Instant, act: &mut impl FnMut(Action)) {
        self.state = State::Waiting { turn, since: at };
        act(Action::EndTurn(turn, reason));
        act(Action::Earcon(Earcon::Release));
        act(Action::Led(LedState::Thinking));
    }

    fn start_reply(&mut self, turn: TurnId, act: &mut impl FnMut(Action)) {
        let ended_at = match self.state {
            State::Waiting { since, .. } => since,
            _ => return,
        };
        self.reply = Some(ReplyClock { turn, ended_at, last_audio: ended_at, heard: false });
        self.state = State::Playing { turn, reply_ended: false };
        act(Action::Led(LedState::Speaking));
    }

    fn finish(&mut self, turn: TurnId, outcome: Outcome, act: &mut impl FnMut(Action)) {
        self.state = State::Idle;
        self.reply = None;
        act(Action::TurnDone(turn, outcome));
        act(Action::Led(self.state_led()));
    }

    fn fail(&mut self, turn: TurnId, outcome: Outcome, act: &mut impl FnMut(Action)) {
        if matches!(self.state, State::Playing { .. }) {
            act(Action::StopPlayback);
        }
        self.state = State::Idle;
        self.reply = None;
        act(Action::Earcon(Earcon::Error));
        act(Action::TurnDone(turn, outcome));
        act(Action::Led(LedState::Error));
    }
}

#[cfg(test)]
mod tests;
