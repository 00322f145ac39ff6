//! The daemon: devices on their own threads, the server link as a task, and one `select!`
//! loop that feeds the session state machine and carries out the actions it returns.
//!
//! Shutdown order (SIGINT, SIGTERM, SIGHUP, `--turns` reached): stop capture, close the link,
//! stop playback, LED off, join the device threads — each step bounded in time. SIGHUP asks for
//! a reload: the run ends the same way with [`RunReport::reload`] set, and the caller starts it
//! again with the config read anew (`pivox run` does; a config with errors keeps the old one).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pivox_hal::backend::{self, LedSpec};
use pivox_hal::sim::{LedProbe, SpeakerProbe};
use pivox_hal::{Edge, LedState};
use tokio::sync::{mpsc, watch};

use crate::audio::codec::{self, Codec};
use crate::audio::earcon::EarconBank;
use crate::audio::jitter::JitterConfig;
use crate::audio::preroll::PreRoll;
use crate::audio::{CODEC_RATE, CapturedFrame};
use crate::config::Config;
use crate::devices::{self, DeviceThread, Fault};
use crate::link::{self, Command, Event as LinkEvent, LinkParams};
use crate::metrics::{TurnClock, TurnMetrics};
use crate::playback::{self, PlaybackCommand, PlaybackEvent};
use crate::repeats::{Repeats, more};
use crate::session::{Action, Event, Session, State};
use crate::supervisor::Supervisor;
use crate::text::shorten;
use crate::uplink::Uplink;

/// Where simulated devices record what they did, for the caller to inspect.
#[derive(Debug, Clone, Default)]
pub struct Probes {
    pub speaker: SpeakerProbe,
    pub led: LedProbe,
}

pub struct RunOptions {
    /// Exit after this many completed turns.
    pub turns: Option<u32>,
    /// When simulated devices start: the microphone file and the button script count from here.
    pub epoch: Instant,
    pub probes: Probes,
    /// Append each turn's figures to this file as a JSON line.
    pub metrics_out: Option<PathBuf>,
    /// Setting this to true stops the daemon, as SIGTERM does.
    pub stop: Option<watch::Receiver<bool>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        // Nobody reads a `pivox run`'s probes: the sim speaker counts instead of recording.
        let probes = Probes { speaker: SpeakerProbe::counting(), led: LedProbe::default() };
        Self { turns: None, epoch: Instant::now(), probes, metrics_out: None, stop: None }
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct RunReport {
    /// The figures of the last [`REPORT_TURNS`] turns, oldest first (a daemon that runs for
    /// months must not keep every turn it ever had: the soak in `make bench` found that).
    pub turns: VecDeque<TurnMetrics>,
    /// The run ended on SIGHUP: the caller should read the config again and run anew.
    pub reload: bool,
}

/// How many turns' figures a [`RunReport`] keeps.
pub const REPORT_TURNS: usize = 100;

const JOIN_LIMIT: Duration = Duration::from_secs(2);
const LINK_CLOSE_LIMIT: Duration = Duration::from_secs(1);

/// Runs the daemon until a signal, `options.stop`, `options.turns` or a device failure.
pub async fn run(config: Config, options: RunOptions) -> Result<RunReport, String> {
    let frame_samples = codec::frame_samples(config.audio.frame_ms);
    let stop_devices = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicU64::new(0));
    let (fault_tx, mut faults) = mpsc::unbounded_channel::<Fault>();
    // About 640 ms of frames: the main loop normally takes each frame as it comes.
    let (frame_tx, mut frames) = mpsc::channel::<CapturedFrame>(32);
    let (button_tx, mut buttons) = mpsc::channel(16);
    let (led_tx, led_rx) = std::sync::mpsc::channel();
    let (playback_tx, playback_rx) = std::sync::mpsc::sync_channel(4096);
    let (playback_event_tx, mut playback_events) = mpsc::unbounded_channel();

    let mic = devices::mic_spec(&config, options.epoch);
    let mut threads = vec![devices::spawn_capture(
        &config.microphone.backend,
        mic,
        frame_samples,
        frame_tx,
        fault_tx.clone(),
        stop_devices.clone(),
        dropped.clone(),
    )];
    let button = devices::button_spec(&config, options.epoch);
    threads.push(devices::spawn_button(
        &config.button.backend,
        button,
        config.button.mode,
        button_tx,
        fault_tx.clone(),
        stop_devices.clone(),
    ));
    let led = LedSpec {
        device: config.led.device.clone(),
        active_low: config.led.active_low,
        count: config.led.count,
        brightness: config.led.brightness,
        probe: options.probes.led.clone(),
    };
    threads.push(devices::spawn_led(&config.led.backend, led, led_rx, fault_tx.clone(), stop_devices.clone()));
    threads.push(spawn_playback(&config, &options.probes, playback_rx, playback_event_tx, stop_devices.clone()));
    let threads: Vec<DeviceThread> =
        threads.into_iter().collect::<Result<_, _>>().map_err(|e| format!("cannot start a device thread: {e}"))?;

    let spawn_link =
        link::find(&config.server.kind).ok_or_else(|| format!("unknown server kind `{}`", config.server.kind))?;
    let params = LinkParams {
        server: config.server.clone(),
        codecs: config.audio.codecs.clone(),
        frame_ms: config.audio.frame_ms,
        session: config.session,
    };
    let link = spawn_link(params)?;
    let link::LinkHandle { commands, events: mut link_events, counters, task } = link;
    let commands_for_uplink = commands;

    let preroll_frames = (config.audio.preroll_ms / config.audio.frame_ms) as usize;
    let mut daemon = Daemon {
        session: Session::new(config.session),
        uplink: Uplink::new(commands_for_uplink, config.opus, frame_samples),
        preroll: PreRoll::new(preroll_frames, frame_samples),
        codec: None,
        playback: playback_tx,
        led: led_tx,
        counters,
        dropped,
        clock: None,
        last_edge_at: Instant::now(),
        report: RunReport::default(),
        completed: 0,
        turns: options.turns,
        metrics_out: options.metrics_out,
        stray_reply_frames: Repeats::default(),
        playback_full: Repeats::default(),
        link_refused: false,
        supervisor: Supervisor::from_env(),
    };
    daemon.set_led(LedState::Disconnected);
    log::info!(
        "pivox {} running: server {}, codecs {:?}, {} ms frames",
        env!("CARGO_PKG_VERSION"),
        config.server.url,
        config.audio.codecs,
        config.audio.frame_ms
    );
    // Set up: devices open, link task started. Reaching the server is the link's own retry loop,
    // not a condition for READY (the unit is not ordered after the network).
    daemon.supervisor.ready(&format!("connecting to {}", config.server.url));
    let mut watchdog = daemon.supervisor.ping_every().map(|every| {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });

    let stopped = stop_requested(options.stop);
    tokio::pin!(stopped);
    let outcome = loop {
        let deadline = daemon.session.next_deadline().map(tokio::time::Instant::from_std);
        tokio::select! {
            // A signal or the caller asks us to stop.
            why = &mut stopped => {
                if why == SIGHUP {
                    log::info!("SIGHUP: stopping the devices and the link to read the config again");
                    daemon.supervisor.reloading();
                    daemon.report.reload = true;
                } else {
                    log::info!("stopping: {why}");
                }
                break Ok(());
            }
            // systemd's watchdog: pinged from this loop, so a hung loop gets the service restarted.
            _ = watchdog_tick(&mut watchdog) => daemon.supervisor.ping(),
            // Button edges drive the session.
            Some(edge) = buttons.recv() => daemon.button(edge, &mut frames),
            // Microphone frames: streamed during a turn, otherwise kept as pre-roll.
            Some(frame) = frames.recv() => daemon.frame(frame),
            // Everything the server link reports.
            Some(event) = link_events.recv() => daemon.link_event(event, &mut frames),
            // The playback thread's progress.
            Some(event) = playback_events.recv() => if let Err(e) = daemon.playback_event(event, &mut frames) { break Err(e) },
            // A device failed: transient failures are retried by the device thread.
            Some(fault) = faults.recv() => if let Err(e) = daemon.device_fault(fault) { break Err(e) },
            // Pre-roll frames still to send, one per pass.
            _ = std::future::ready(()), if daemon.preroll_pending() => daemon.send_preroll(1),
            // The session's next deadline (maximum turn length, reply timeout).
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                let actions = daemon.session.handle(Event::Tick(Instant::now()));
                daemon.apply(actions, &mut frames);
            }
        }
        // Let the link task write what this event queued before handling the next one: the
        // control plane shares one thread, and the wire is waiting.
        tokio::task::yield_now().await;
        if daemon.turns.is_some_and(|n| daemon.completed >= n) {
            log::info!("{} turn(s) completed; stopping", daemon.completed);
            break Ok(());
        }
    };

    // Fixed shutdown order, each step bounded.
    if !daemon.report.reload {
        daemon.supervisor.stopping();
    }
    stop_devices.store(true, Ordering::Relaxed);
    let Daemon { uplink, playback, led, report, .. } = daemon;
    drop(uplink);
    drop(link_events);
    link::join(task, LINK_CLOSE_LIMIT).await;
    let _ = playback.try_send(PlaybackCommand::Stop);
    drop(playback);
    let _ = led.send(LedState::Off);
    drop(led);
    drop(frames);
    drop(buttons);
    for thread in threads {
        thread.join(JOIN_LIMIT);
    }
    outcome.map(|()| report)
}

/// The next watchdog ping time, or never when systemd asked for no watchdog.
async fn watchdog_tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn spawn_playback(
    config: &Config,
    probes: &Probes,
    commands: std::sync::mpsc::Receiver<PlaybackCommand>,
    events: mpsc::UnboundedSender<PlaybackEvent>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<DeviceThread> {
    let spec = devices::speaker_spec(config, probes.speaker.clone());
    let frame = crate::audio::duration_of(codec::frame_samples(config.audio.frame_ms), CODEC_RATE);
    let jitter = JitterConfig {
        frame,
        min_delay: config.playback.jitter_min,
        max_delay: config.playback.jitter_max,
        max_age: config.playback.jitter_max_age,
        // Room for the longest reply a server may burst at once: 120 s.
        capacity: (120_000 / config.audio.frame_ms) as usize,
    };
    let earcons = EarconBank::new(CODEC_RATE, config.audio.earcon_volume);
    let open = backend::find(backend::SPEAKERS, &config.speaker.backend);
    DeviceThread::spawn("playback", move || {
        // Faults go to the main loop through the playback event queue, like write failures.
        let report = |fault: Fault| drop(events.send(PlaybackEvent::Fault(fault)));
        if let Some(speaker) = devices::open_retrying(&open, &spec, &report, "speaker", &stop) {
            playback::run(speaker, jitter, earcons, commands, events);
        }
    })
}

const SIGHUP: &str = "SIGHUP";

/// Resolves on SIGINT, SIGTERM, SIGHUP or the caller's stop flag, naming which.
async fn stop_requested(stop: Option<watch::Receiver<bool>>) -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut hangup = signal(SignalKind::hangup()).ok();
    let mut stop = stop;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        Some(_) = async { term.as_mut()?.recv().await } => "SIGTERM",
        Some(_) = async { hangup.as_mut()?.recv().await } => SIGHUP,
        Some(()) = async { stop.as_mut()?.wait_for(|s| *s).await.ok().map(drop) } => "stop requested",
    }
}

struct Daemon {
    session: Session,
    uplink: Uplink,
    preroll: PreRoll,
    /// The codec agreed with the server while the link is up.
    codec: Option<Codec>,
    playback: std::sync::mpsc::SyncSender<PlaybackCommand>,
    led: std::sync::mpsc::Sender<LedState>,
    counters: Arc<link::Counters>,
    dropped: Arc<AtomicU64>,
    /// The figures of the turn in progress.
    clock: Option<TurnClock>,
    /// When the last button edge (or max-length tick) happened.
    last_edge_at: Instant,
    report: RunReport,
    completed: u32,
    turns: Option<u32>,
    metrics_out: Option<PathBuf>,
    /// Reply frames that belonged to no reply being played, and packets the full playback
    /// queue refused: each warned about once per run.
    stray_reply_frames: Repeats,
    playback_full: Repeats,
    /// The server refused pivox's credentials (Home Assistant: `auth_invalid`).
    link_refused: bool,
    supervisor: Supervisor,
}

impl Daemon {
    fn set_led(&self, state: LedState) {
        // Refused credentials need the user, not patience: show an error, not "connecting".
        let state = if self.link_refused && state == LedState::Disconnected { LedState::Error } else { state };
        let _ = self.led.send(state);
    }

    /// A transient device failure is logged and shown on the LED while the device thread
    /// retries; a permanent one stops the daemon with its message.
    fn device_fault(&mut self, fault: Fault) -> Result<(), String> {
        if !fault.is_transient() {
            return Err(format!("{}: {}", fault.device, fault.error));
        }
        log::warn!("{}: {} (retrying)", fault.device, fault.error);
        self.set_led(LedState::Error);
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

    fn frame(&mut self, frame: CapturedFrame) {
        match self.session.streaming_turn() {
            // Live frames queue behind pre-roll frames not yet sent, keeping the order.
            Some(turn) if self.preroll.is_empty() => self.send_frame(turn, &frame.samples),
            _ => self.preroll.push(&frame.samples),
        }
    }

    fn send_frame(&mut self, turn: u32, samples: &[i16]) {
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
                self.link_refused = false;
                self.supervisor.status(&format!("connected to {server}"));
                Event::LinkUp
            }
            LinkEvent::Down { refused, reason } => {
                self.supervisor.status(&format!("not connected: {reason}"));
                self.codec = None;
                self.link_refused = refused;
                Event::LinkDown
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
            LinkEvent::ReplyAudio { header, payload, at } => return self.reply_audio(header, payload, at),
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
            LinkEvent::ServerError { turn: Some(turn), code, message } if code == "stt-no-text-recognized" => {
                log::info!("turn {turn}: {message}");
                Event::NotUnderstood(turn)
            }
            LinkEvent::ServerError { turn, code, message } => {
                log::warn!(
                    "server error{}: {}: {}",
                    turn.map(|t| format!(" on turn {t}")).unwrap_or_default(),
                    shorten(&code, 60),
                    shorten(&message, 300)
                );
                Event::ServerError(turn)
            }
            LinkEvent::FirstAudioSent { turn, at } => {
                if let Some(clock) = self.clock.as_mut().filter(|c| c.turn == turn) {
                    clock.first_frame_at = Some(at);
                }
                return;
            }
            LinkEvent::EndSent { turn, at, frames } => {
                if let Some(clock) = self.clock.as_mut().filter(|c| c.turn == turn) {
                    clock.end_sent_at = Some(at);
                    clock.frames_sent = frames;
                }
                return;
            }
            LinkEvent::InputClosed { turn, at, frames } => {
                if let Some(clock) = self.clock.as_mut().filter(|c| c.turn == turn) {
                    // What the server took, not what the microphone went on to capture.
                    clock.end_sent_at = Some(at);
                    clock.frames_sent = frames;
                    clock.samples_sent = u64::from(frames) * self.uplink.frame_samples() as u64;
                }
                Event::InputClosed(turn, at)
            }
        };
        let actions = self.session.handle(session_event);
        self.apply(actions, frames);
    }

    /// Reply audio goes to playback when it belongs to the reply being played; anything else
    /// is dropped, with one warning per run of such frames.
    fn reply_audio(&mut self, header: link::protocol::AudioHeader, payload: bytes::Bytes, at: Instant) {
        match self.session.state() {
            State::Playing { turn, .. } if header.turn_tag == link::protocol::AudioHeader::tag(turn) => {
                if let Some(clock) = self.clock.as_mut() {
                    clock.first_reply_at.get_or_insert(at);
                }
                self.play(PlaybackCommand::Packet { seq: header.seq, timestamp: header.timestamp, payload, at });
                // A pure state update: it only ever moves the reply's stall deadline.
                let _ = self.session.handle(Event::ReplyAudio(turn, at));
            }
            _ => {
                if let Some(before) = self.stray_reply_frames.occur(at) {
                    log::warn!(
                        "reply audio for turn tag {} arrived outside its reply; dropped{}",
                        header.turn_tag,
                        more(before)
                    );
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
            PlaybackEvent::Fault(fault) => return self.device_fault(fault),
        }
        Ok(())
    }

    fn apply(&mut self, actions: crate::session::Actions, frames: &mut mpsc::Receiver<CapturedFrame>) {
        for action in actions {
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

    fn start_turn(&mut self, turn: u32, frames: &mut mpsc::Receiver<CapturedFrame>) {
        let Some(codec) = self.codec else { return };
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

    fn turn_done(&mut self, turn: u32, outcome: crate::session::Outcome) {
        if outcome == crate::session::Outcome::Completed {
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
