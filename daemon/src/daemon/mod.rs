//! The daemon: devices on their own threads, the server link as a task, and one `select!`
//! loop that feeds the session state machine and carries out the actions it returns.
//!
//! Shutdown order (SIGINT, SIGTERM, SIGHUP, `--turns` reached): stop capture, close the link
//! and join its helper threads (reply downloads), stop playback, LED off, join the device threads — all within
//! one [`SHUTDOWN_LIMIT`], well inside systemd's stop timeout; a thread still running at the
//! deadline is named in the log. SIGHUP asks for a reload: the run ends the same way with
//! [`RunReport::reload`] set, and the caller starts it again with the config read anew
//! (`pivox run` does; a config with errors keeps the old one).
//!
//! The event handlers, and what the daemon keeps between events, are in `turns.rs`.

mod turns;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pivox_hal::LedState;
use pivox_hal::backend::{self, LedSpec};
use pivox_hal::sim::{LedProbe, SpeakerProbe};
use tokio::sync::{mpsc, watch};

use crate::audio::codec;
use crate::audio::earcon::EarconBank;
use crate::audio::jitter::JitterConfig;
use crate::audio::preroll::{CaptureGate, PreRoll};
use crate::audio::{CODEC_RATE, CapturedFrame};
use crate::config::Config;
use crate::devices::{self, DeviceThread, Fault, LedShow};
use crate::link::{self, LinkParams};
use crate::metrics::TurnMetrics;
use crate::playback::{self, PlaybackCommand, PlaybackEvent};
use crate::repeats::Repeats;
use crate::session::Session;
use crate::supervisor::Supervisor;
use crate::uplink::Uplink;
use turns::Daemon;

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

/// The whole shutdown, from the stop request to the last thread joined (systemd waits 10 s).
pub const SHUTDOWN_LIMIT: Duration = Duration::from_secs(4);
/// The link's share of it: closing the connection politely and joining its reply downloads.
const LINK_CLOSE_LIMIT: Duration = Duration::from_millis(1500);

/// The queues between the device threads and the main loop.
struct Queues {
    faults: mpsc::UnboundedReceiver<Fault>,
    frames: mpsc::Receiver<CapturedFrame>,
    buttons: mpsc::Receiver<pivox_hal::ButtonEvent>,
    playback_events: mpsc::UnboundedReceiver<PlaybackEvent>,
}

/// Runs the daemon until a signal, `options.stop`, `options.turns` or a device failure.
pub async fn run(config: Config, options: RunOptions) -> Result<RunReport, String> {
    let stop_devices = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicU64::new(0));
    // The link first: a link that cannot start leaves no device thread behind.
    let link = config.server.spawn(LinkParams {
        codecs: config.audio.codecs.clone(),
        frame_ms: config.audio.frame_ms,
        longest_turn: config.session.max_turn + config.session.reply_timeout,
    })?;
    let Devices { threads, led, playback, mut queues, gate } =
        start_devices(&config, &options, &stop_devices, &dropped)?;
    let link::LinkHandle { commands, events: mut link_events, counters, task, helpers } = link;
    let frame_samples = codec::frame_samples(config.audio.frame_ms);
    let mut daemon = Daemon {
        session: Session::new(config.session),
        uplink: Uplink::new(commands, config.opus, frame_samples),
        preroll: PreRoll::new(preroll_frames(&config), frame_samples),
        gate,
        codec: None,
        playback,
        led,
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
        mic_open: true,
        supervisor: Supervisor::from_env(),
        timers: crate::timers::Timers::default(),
        after_end: heapless::Vec::new(),
    };
    daemon.set_led(LedState::Disconnected);
    let server = config.server.describe();
    log::info!(
        "pivox {} running: server {server}, codecs {:?}, {} ms frames",
        env!("CARGO_PKG_VERSION"),
        config.audio.codecs,
        config.audio.frame_ms
    );
    // Set up: devices open, link task started. Reaching the server is the link's own retry loop,
    // not a condition for READY (the unit is not ordered after the network).
    daemon.supervisor.ready(&format!("connecting to {server}"));
    let outcome = daemon.main_loop(&mut queues, &mut link_events, options.stop).await;

    // Fixed shutdown order, within one deadline.
    let deadline = Instant::now() + SHUTDOWN_LIMIT;
    if !daemon.report.reload {
        daemon.supervisor.stopping();
    }
    stop_devices.store(true, Ordering::Relaxed);
    let Daemon { uplink, playback, led, report, .. } = daemon;
    drop(uplink);
    drop(link_events);
    link::join(task, LINK_CLOSE_LIMIT.min(deadline.saturating_duration_since(Instant::now()))).await;
    helpers.join_by(deadline);
    let _ = playback.try_send(PlaybackCommand::Stop);
    drop(playback);
    let _ = led.send(LedShow::steady(LedState::Off));
    drop(led);
    drop(queues);
    for thread in threads {
        thread.join_by(deadline);
    }
    outcome.map(|()| report)
}

/// The device threads (microphone, button, LED, playback) and the main loop's ends of the
/// queues to and from them.
struct Devices {
    threads: Vec<DeviceThread>,
    led: std::sync::mpsc::Sender<LedShow>,
    playback: std::sync::mpsc::SyncSender<PlaybackCommand>,
    queues: Queues,
    /// Where captured frames go: the pre-roll ring between turns, the main loop during one.
    gate: Arc<CaptureGate>,
}

fn start_devices(
    config: &Config,
    options: &RunOptions,
    stop: &Arc<AtomicBool>,
    dropped: &Arc<AtomicU64>,
) -> Result<Devices, String> {
    let frame_samples = codec::frame_samples(config.audio.frame_ms);
    let (fault_tx, faults) = mpsc::unbounded_channel::<Fault>();
    // About 640 ms of frames: the main loop normally takes each frame as it comes.
    let (frame_tx, frames) = mpsc::channel::<CapturedFrame>(32);
    let (button_tx, buttons) = mpsc::channel(16);
    let (led_tx, led_rx) = std::sync::mpsc::channel();
    let (playback_tx, playback_rx) = std::sync::mpsc::sync_channel(4096);
    let (playback_event_tx, playback_events) = mpsc::unbounded_channel();
    let gate = Arc::new(CaptureGate::new(preroll_frames(config), frame_samples));
    let mic = devices::mic_spec(config, options.epoch);
    let mic = devices::spawn_capture(
        &config.microphone.backend,
        mic,
        frame_samples,
        devices::CaptureOut { frames: frame_tx, gate: gate.clone(), dropped: dropped.clone() },
        fault_tx.clone(),
        stop.clone(),
    );
    let button = devices::button_spec(config, options.epoch);
    let mode = config.button.mode;
    let button = devices::spawn_button(&config.button.backend, button, mode, button_tx, fault_tx.clone(), stop.clone());
    let led = LedSpec {
        device: config.led.device.clone(),
        active_low: config.led.active_low,
        count: config.led.count,
        brightness: config.led.brightness,
        probe: options.probes.led.clone(),
    };
    let led = devices::spawn_led(&config.led.backend, led, led_rx, fault_tx, stop.clone());
    let playback = spawn_playback(config, &options.probes, playback_rx, playback_event_tx, stop.clone());
    let threads: Vec<DeviceThread> = [mic, button, led, playback]
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot start a device thread: {e}"))?;
    let queues = Queues { faults, frames, buttons, playback_events };
    Ok(Devices { threads, led: led_tx, playback: playback_tx, queues, gate })
}

/// How many whole frames of pre-roll the config asks for.
fn preroll_frames(config: &Config) -> usize {
    (config.audio.preroll_ms / config.audio.frame_ms) as usize
}

/// Runs `future` on a current-thread runtime: the control plane needs one thread (enough on a
/// Pi Zero 2 W), and so do the development servers and the demo.
pub fn block_on<F: std::future::Future<Output = Result<(), String>>>(future: F) -> Result<(), String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?
        .block_on(future)
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
