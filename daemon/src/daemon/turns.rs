//! What the daemon keeps between events, and what it does with each: button edges and
//! microphone frames feed the session and the uplink, the link's events and the playback
//! thread's progress feed the session, and the session's actions are carried out here.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use pivox_hal::{Edge, LedState};
use tokio::sync::{mpsc, watch};

use super::{Queues, REPORT_TURNS, RunReport, SIGHUP, stop_requested, watchdog_tick};
use crate::audio::codec::Codec;
use crate::audio::preroll::{CaptureGate, PreRoll};
use crate::audio::{CODEC_RATE, CapturedFrame};
use crate::devices::{Fault, LedShow};
use crate::link::{self, AudioChunk, Command, Down, Event as LinkEvent, TurnFailure, TurnId};
use crate::metrics::TurnClock;
use crate::playback::{PlaybackCommand, PlaybackEvent};
use crate::repeats::{Repeats, more};
use crate::session::{Action, Event, Outcome, Session, State};
use crate::supervisor::Supervisor;
use crate::text::shorten;
use crate::timers::{TimerEvent, Timers};
use crate::uplink::Uplink;

pub(super) struct Daemon {
    pub(super) session: Session,
    pub(super) uplink: Uplink,
    pub(super) preroll: PreRoll,
    /// Where the capture thread puts frames: the pre-roll ring between turns, this loop during one.
    pub(super) gate: Arc<CaptureGate>,
    /// The codec agreed with the server while the link is up.
    pub(super) codec: Option<Codec>,
    pub(super) playback: std::sync::mpsc::SyncSender<PlaybackCommand>,
    pub(super) led: std::sync::mpsc::Sender<LedShow>,
    pub(super) counters: Arc<link::Counters>,
    pub(super) dropped: Arc<AtomicU64>,
    /// The figures of the turn in progress.
    pub(super) clock: Option<TurnClock>,
    /// When the last button edge (or max-length tick) happened.
    pub(super) last_edge_at: Instant,
    pub(super) report: RunReport,
    pub(super) completed: u32,
    pub(super) turns: Option<u32>,
    pub(super) metrics_out: Option<PathBuf>,
    /// Reply frames that belonged to no reply being played, and packets the full playback
    /// queue refused: each warned about once per run.
    pub(super) stray_reply_frames: Repeats,
    pub(super) playback_full: Repeats,
    /// The capture thread is still delivering frames.
    pub(super) mic_open: bool,
    pub(super) supervisor: Supervisor,
    /// The server's timers for this device, counted down here too.
    pub(super) timers: Timers,
    /// The release earcon and LED change of a turn that just ended, carried out once the link
    /// has had its turn to write the end message: the wire first, then the user's feedback.
    pub(super) after_end: heapless::Vec<Action, 4>,
}

impl Daemon {
    /// Feeds the session from every source until a stop request, a device failure or
    /// `--turns`; the stop reason is logged, SIGHUP marks the report for a reload.
    pub(super) async fn main_loop(
        &mut self,
        queues: &mut Queues,
        link_events: &mut mpsc::Receiver<LinkEvent>,
        stop: Option<watch::Receiver<bool>>,
    ) -> Result<(), String> {
        let mut watchdog = self.supervisor.ping_every().map(|every| {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        let stopped = stop_requested(stop);
        tokio::pin!(stopped);
        let frames = &mut queues.frames;
        loop {
            let deadline = self.session.next_deadline().map(tokio::time::Instant::from_std);
            let timer_due = self.timers.next_due().map(tokio::time::Instant::from_std);
            tokio::select! {
                // A signal or the caller asks us to stop.
                why = &mut stopped => {
                    if why == SIGHUP {
                        log::info!("SIGHUP: stopping the devices and the link to read the config again");
                        self.supervisor.reloading();
                        self.report.reload = true;
                    } else {
                        log::info!("stopping: {why}");
                    }
                    return Ok(());
                }
                // systemd's watchdog: pinged from this loop, so a hung loop gets the service restarted.
                _ = watchdog_tick(&mut watchdog) => self.supervisor.ping(),
                // Button edges drive the session.
                Some(edge) = queues.buttons.recv() => self.button(edge, frames),
                // Microphone frames: streamed during a turn, otherwise kept as pre-roll.
                frame = frames.recv(), if self.mic_open => match frame {
                    Some(frame) => self.frame(frame, frames),
                    None => self.mic_ended(),
                },
                // Everything the server link reports.
                Some(event) = link_events.recv() => self.link_event(event, frames),
                // The playback thread's progress.
                Some(event) = queues.playback_events.recv() => self.playback_event(event, frames)?,
                // A device failed: transient failures are retried by the device thread.
                Some(fault) = queues.faults.recv() => self.device_fault(fault, frames)?,
                // Pre-roll frames still to send, one per pass.
                _ = std::future::ready(()), if self.preroll_pending() => self.send_preroll(1),
                // A timer the server did not say finished is overdue.
                _ = tokio::time::sleep_until(timer_due.unwrap_or_else(tokio::time::Instant::now)), if timer_due.is_some() => {
                    self.timer_overdue(frames);
                }
                // The session's next deadline (maximum turn length, reply timeout, a ringing timer).
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                    let actions = self.session.handle(Event::Tick(Instant::now()));
                    self.apply(actions, frames);
                }
            }
            // Let the link task write what this event queued before handling the next one: the
            // control plane shares one thread, and the wire is waiting.
            tokio::task::yield_now().await;
            if !self.after_end.is_empty() {
                let feedback = std::mem::take(&mut self.after_end);
                self.apply(feedback.into_iter().collect(), frames);
            }
            if self.turns.is_some_and(|n| self.completed >= n) {
                log::info!("{} turn(s) completed; stopping", self.completed);
                return Ok(());
            }
        }
    }

    /// Shows `state` on the LED; the error light for as long as the session says.
    pub(super) fn set_led(&self, state: LedState) {
        let show = match (state, self.session.after_error()) {
            (LedState::Error, Some((after, then))) => LedShow { state, then: Some((after, then)) },
            _ => LedShow::steady(state),
        };
        let _ = self.led.send(show);
    }

    /// The capture thread ended (a microphone source that ran out): said once; turns from now
    /// on record nothing.
    fn mic_ended(&mut self) {
        self.mic_open = false;
        log::warn!("the microphone stopped delivering audio; turns from now on record nothing");
    }

    /// A transient device failure is logged and shown on the LED while the device thread
    /// retries; a permanent one stops the daemon with its message.
    fn device_fault(&mut self, fault: Fault, frames: &mut mpsc::Receiver<CapturedFrame>) -> Result<(), String> {
        if !fault.is_transient() {
            return Err(format!("{}: {}", fault.device, fault.error));
        }
        log::warn!("{}: {} (retrying)", fault.device, fault.error);
        let actions = self.session.handle(Event::DeviceFault);
        self.apply(actions, frames);
        Ok(())
    }

    fn play(&mut self, command: PlaybackCommand) {
        if self.playback.try_send(command).is_err()
            && let Some(before) = self.playback_full.occur(Instant::now())
        {
            log::warn!(
                "playback queue full: the server sends faster than the speaker plays; packets dropped{}",
                more(before)
            );
        }
    }

    fn button(&mut self, edge: pivox_hal::ButtonEvent, frames: &mut mpsc::Receiver<CapturedFrame>) {
        log::debug!("button {:?}", edge.edge);
        self.last_edge_at = edge.at;
        self.uplink.command(Command::Button { pressed: edge.edge == Edge::Pressed });
        let event = match edge.edge {
            Edge::Pressed if !self.session.link_up() => {
                log::warn!(
                    "button pressed while the server is unreachable: connecting now; press again once it is back"
                );
                self.uplink.command(Command::ConnectNow);
                Event::Pressed(edge.at)
            }
            Edge::Pressed => Event::Pressed(edge.at),
            Edge::Released => Event::Released(edge.at),
        };
        let actions = self.session.handle(event);
        self.apply(actions, frames);
    }

    fn frame(&mut self, frame: CapturedFrame, frames: &mut mpsc::Receiver<CapturedFrame>) {
        match self.session.streaming_turn() {
            // Live frames queue behind pre-roll frames not yet sent, keeping the order.
            Some(turn) if self.preroll.is_empty() => self.send_frame(turn, &frame.samples),
            Some(_) => self.preroll.push(&frame.samples),
            // The turn is over: this frame and those queued behind it start the next pre-roll,
            // which the capture thread keeps from now on without waking this loop.
            None => {
                let mut first = Some(frame.samples);
                self.gate.close(|| first.take().or_else(|| frames.try_recv().ok().map(|f| f.samples)));
            }
        }
    }

    fn send_frame(&mut self, turn: TurnId, samples: &[i16]) {
        if let Some(sent) = self.uplink.send_frame(turn, samples)
            && let Some(clock) = self.clock.as_mut().filter(|c| c.turn == turn)
        {
            clock.frames_sent += u32::from(sent);
            clock.samples_sent += samples.len() as u64;
        }
    }

    fn link_event(&mut self, event: LinkEvent, frames: &mut mpsc::Receiver<CapturedFrame>) {
        let session_event = match event {
            LinkEvent::Up { codec, server } => {
                log::info!("ready: connected to {server}, codec {codec}; hold the button to talk");
                self.codec = Some(codec);
                self.supervisor.status(&format!("connected to {server}"));
                Event::LinkUp
            }
            LinkEvent::Down(down) => {
                self.supervisor.status(&format!("not connected: {down}"));
                self.codec = None;
                match down {
                    Down::Unreachable(_) => Event::LinkDown,
                    Down::Refused(_) => Event::CredentialsRefused,
                }
            }
            LinkEvent::ReplyAnnounced { turn, at } => {
                if let Some(clock) = self.clock.as_mut().filter(|c| c.turn == turn) {
                    clock.reply_announced_at = Some(at);
                }
                return;
            }
            LinkEvent::ReplyStart { turn } => {
                let was_playing = matches!(self.session.state(), State::Playing { .. });
                let actions = self.session.handle(Event::ReplyStarted(turn, Instant::now()));
                self.apply(actions, frames);
                if !was_playing
                    && matches!(self.session.state(), State::Playing { turn: t, .. } if t == turn)
                    && let Some(codec) = self.codec
                {
                    self.play(PlaybackCommand::Begin { turn, codec });
                }
                return;
            }
            LinkEvent::ReplyAudio { chunk, at } => return self.reply_audio(chunk, at),
            LinkEvent::ReplyEnd { turn } => {
                if matches!(self.session.state(), State::Playing { turn: t, .. } if t == turn) {
                    self.play(PlaybackCommand::End);
                }
                Event::ReplyEnded(turn)
            }
            LinkEvent::Transcript { turn, text } => {
                return log::info!("turn {turn}: heard \"{}\"", shorten(&text, 300));
            }
            LinkEvent::ReplyText { turn, text } => return log::info!("turn {turn}: reply \"{}\"", shorten(&text, 300)),
            LinkEvent::TurnFailed { turn: Some(turn), failure: TurnFailure::NotUnderstood(message) } => {
                log::info!("turn {turn}: {message}");
                Event::NotUnderstood(turn)
            }
            LinkEvent::TurnFailed { turn: None, failure: TurnFailure::NotUnderstood(message) } => {
                log::info!("{message}");
                return;
            }
            LinkEvent::TurnFailed { turn, failure: TurnFailure::Server { code, message } } => {
                log::warn!(
                    "server error{}: {}: {}",
                    turn.map(|t| format!(" on turn {t}")).unwrap_or_default(),
                    shorten(&code, 60),
                    shorten(&message, 300)
                );
                Event::ServerError(turn)
            }
            LinkEvent::FirstAudioSent { .. } | LinkEvent::EndSent { .. } => return self.wire_progress(event),
            LinkEvent::InputClosed { turn, at, frames } => {
                if let Some(clock) = self.clock.as_mut().filter(|c| c.turn == turn) {
                    // What the server took, not what the microphone went on to capture.
                    clock.end_sent_at = Some(at);
                    clock.frames_sent = frames;
                    clock.samples_sent = u64::from(frames) * self.uplink.frame_samples() as u64;
                }
                Event::InputClosed(turn, at)
            }
            LinkEvent::Announcement { turn } => {
                log::info!("the server plays an announcement (turn {turn})");
                Event::Announced(turn, Instant::now())
            }
            LinkEvent::Timer(timer) => return self.timer(timer, frames),
            LinkEvent::Volume(volume) => {
                log::info!("volume {:.0} %", volume * 100.0);
                return self.play(PlaybackCommand::Volume(volume));
            }
            LinkEvent::Listen => {
                log::info!("the server asks to hear you: listening");
                self.last_edge_at = Instant::now();
                Event::ListenRequested(self.last_edge_at)
            }
        };
        let actions = self.session.handle(session_event);
        self.apply(actions, frames);
    }

    /// A timer event: kept, logged, and shown (a running timer on the idle light, a finished
    /// one ringing).
    fn timer(&mut self, timer: TimerEvent, frames: &mut mpsc::Receiver<CapturedFrame>) {
        log::info!(
            "timer {}: {:?}, {} s left{}",
            shorten(if timer.name.is_empty() { &timer.id } else { &timer.name }, 40),
            timer.change,
            timer.seconds_left,
            if timer.active { "" } else { " (paused)" }
        );
        let rang = self.timers.apply(timer, Instant::now());
        self.timers_changed(rang, frames);
    }

    /// A timer the server did not say finished is overdue: it rings anyway.
    pub(super) fn timer_overdue(&mut self, frames: &mut mpsc::Receiver<CapturedFrame>) {
        let rang = self.timers.overdue(Instant::now());
        if let Some(name) = &rang {
            log::warn!("timer {}: its time is up and the server did not say so; ringing", shorten(name, 40));
        }
        self.timers_changed(rang, frames);
    }

    fn timers_changed(&mut self, rang: crate::timers::Rang, frames: &mut mpsc::Receiver<CapturedFrame>) {
        let actions = self.session.handle(Event::TimerRunning(self.timers.running()));
        self.apply(actions, frames);
        if let Some(name) = rang {
            log::info!("timer {} finished: ringing until the button is pressed", shorten(&name, 40));
            let actions = self.session.handle(Event::TimerFinished(Instant::now()));
            self.apply(actions, frames);
        }
    }

    /// When the turn's audio reached the wire: figures for the turn's metrics only.
    fn wire_progress(&mut self, event: LinkEvent) {
        let Some(clock) = self.clock.as_mut() else { return };
        match event {
            LinkEvent::FirstAudioSent { turn, at } if clock.turn == turn => clock.first_frame_at = Some(at),
            LinkEvent::EndSent { turn, at, frames } if clock.turn == turn => {
                clock.end_sent_at = Some(at);
                clock.frames_sent = frames;
            }
            _ => {}
        }
    }

    /// Reply audio goes to playback when it belongs to the reply being played; anything else
    /// is dropped, with one warning per run of such frames.
    fn reply_audio(&mut self, chunk: AudioChunk, at: Instant) {
        let AudioChunk { turn: of, seq, timestamp, payload } = chunk;
        match self.session.state() {
            State::Playing { turn, .. } if of == turn => {
                if let Some(clock) = self.clock.as_mut() {
                    clock.first_reply_at.get_or_insert(at);
                }
                self.play(PlaybackCommand::Packet { seq, timestamp, payload, at });
                // A pure state update: it only ever moves the reply's stall deadline.
                let _ = self.session.handle(Event::ReplyAudio(turn, at));
            }
            _ => {
                if let Some(before) = self.stray_reply_frames.occur(at) {
                    log::warn!("reply audio for turn {of} arrived outside its reply; dropped{}", more(before));
                }
            }
        }
    }

    fn playback_event(
        &mut self,
        event: PlaybackEvent,
        frames: &mut mpsc::Receiver<CapturedFrame>,
    ) -> Result<(), String> {
        match event {
            PlaybackEvent::Started { turn, at } => {
                if let Some(clock) = self.clock.as_mut().filter(|c| c.turn == turn) {
                    clock.first_sample_at = Some(at);
                }
            }
            PlaybackEvent::Finished { turn, stats } => {
                if let Some(clock) = self.clock.as_mut().filter(|c| c.turn == turn) {
                    clock.jitter = Some(stats);
                }
                let actions = self.session.handle(Event::PlaybackFinished(turn));
                self.apply(actions, frames);
            }
            PlaybackEvent::Fault(fault) => return self.device_fault(fault, frames),
        }
        Ok(())
    }

    fn apply(&mut self, actions: crate::session::Actions, frames: &mut mpsc::Receiver<CapturedFrame>) {
        let mut ended = false;
        for action in actions {
            // After an end, the earcon and the LED wait for the end message to be written.
            if ended && matches!(action, Action::Earcon(_) | Action::Led(_)) && self.after_end.push(action).is_ok() {
                continue;
            }
            match action {
                Action::StartTurn(turn) => self.start_turn(turn, frames),
                Action::EndTurn(turn, reason) => {
                    let released_at = self.last_edge_at.min(Instant::now());
                    self.send_preroll(usize::MAX);
                    // Frames captured before the release still belong to the turn.
                    while let Ok(frame) = frames.try_recv() {
                        if frame.captured_at <= released_at + crate::audio::duration_of(frame.samples.len(), CODEC_RATE)
                        {
                            self.send_frame(turn, &frame.samples);
                        }
                    }
                    if let Some(clock) = self.clock.as_mut() {
                        clock.released_at = Some(released_at);
                    }
                    self.uplink.end_turn(turn, reason);
                    log::info!("turn {turn}: ended ({reason:?}), waiting for the reply");
                    ended = true;
                }
                Action::CancelTurn(turn) => {
                    self.uplink.command(Command::CancelTurn { turn });
                }
                Action::StopPlayback => self.play(PlaybackCommand::Stop),
                Action::Earcon(earcon) => self.play(PlaybackCommand::Earcon(earcon)),
                Action::Led(state) => self.set_led(state),
                Action::TurnDone(turn, outcome) => self.turn_done(turn, outcome),
            }
        }
    }

    fn start_turn(&mut self, turn: TurnId, frames: &mut mpsc::Receiver<CapturedFrame>) {
        let Some(codec) = self.codec else { return };
        // The capture thread's ring becomes the pre-roll; frames come here from now on.
        self.gate.open(&mut self.preroll);
        // Frames already queued are older than anything to come: they join the pre-roll.
        while let Ok(frame) = frames.try_recv() {
            self.preroll.push(&frame.samples);
        }
        self.clock = Some(TurnClock::new(
            turn,
            self.last_edge_at,
            self.counters.snapshot(),
            self.dropped.load(Ordering::Relaxed),
        ));
        let preroll_ms = (self.preroll.len() as u64 * 1000 / u64::from(CODEC_RATE)) as u32;
        log::info!("turn {turn}: listening ({preroll_ms} ms of pre-roll)");
        self.uplink.start_turn(turn, codec, preroll_ms);
        // The oldest frame goes out now; the rest follow one per loop pass, so the link task
        // can write the first frame while the others are still being encoded.
        self.send_preroll(1);
    }

    /// True while pre-roll frames of the streaming turn are still waiting to be sent.
    fn preroll_pending(&self) -> bool {
        self.session.streaming_turn().is_some() && !self.preroll.is_empty()
    }

    /// Sends up to `frames` of the oldest pre-roll frames of the streaming turn.
    fn send_preroll(&mut self, frames: usize) {
        let Some(turn) = self.session.streaming_turn() else { return };
        let frame_samples = self.uplink.frame_samples();
        let mut chunk = [0i16; crate::audio::MAX_FRAME_SAMPLES];
        for _ in 0..frames {
            let Some(n) = self.preroll.pop_frame(&mut chunk[..frame_samples]) else { break };
            self.send_frame(turn, &chunk[..n]);
        }
    }

    fn turn_done(&mut self, turn: TurnId, outcome: Outcome) {
        self.uplink.command(Command::TurnOver { turn, played: outcome == Outcome::Completed });
        // Announcements are the server's, not turns of the user's (`--turns` counts those).
        if outcome == Outcome::Completed && turn < link::SERVER_TURNS {
            self.completed += 1;
        }
        if let Some(why) = outcome.fault(self.session.limits()) {
            log::warn!("turn {turn}: {outcome:?}: {why}");
        }
        for (what, repeats) in [
            ("reply frames outside their reply", &mut self.stray_reply_frames),
            ("packets refused by the full playback queue", &mut self.playback_full),
        ] {
            let n = repeats.finish();
            if n > 0 {
                log::warn!("turn {turn}: {n} more {what} after the first warning");
            }
        }
        let Some(clock) = self.clock.take().filter(|c| c.turn == turn) else { return };
        let metrics = clock.finish(outcome, self.counters.snapshot(), self.dropped.load(Ordering::Relaxed), CODEC_RATE);
        log::info!("{metrics}");
        if let Some(path) = &self.metrics_out {
            let line = serde_json::to_string(&metrics).unwrap_or_default() + "\n";
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
            if let Err(e) = written {
                log::warn!("cannot write metrics to {}: {e}", path.display());
            }
        }
        if self.report.turns.len() == REPORT_TURNS {
            self.report.turns.pop_front();
        }
        self.report.turns.push_back(metrics);
    }
}
