//! Device threads: each device lives on its own OS thread and talks to the async main loop
//! through bounded queues. A full queue drops (and counts) rather than blocks, so a slow
//! main loop never stalls the microphone. Each thread is joined, with a time limit, on
//! shutdown; a thread that dies reports its error to the main loop first.
//!
//! A device that fails in a way that may pass — unplugged, not there yet, busy — is retried
//! with backoff (0.5 s doubling to 10 s, with jitter: [`crate::backoff::Backoff`]); each failure
//! is reported to the main loop, which logs it and tells the session (the LED's error state). A failure that cannot pass (bad config, no
//! permission, unsupported hardware) ends the daemon with the backend's one-line message.
//!
//! Troubleshooting: a device that fails to open is reported with the backend's message,
//! which names the device and what to fix; `pivox check-config` catches unknown backends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use pivox_hal::backend::{self, ButtonSpec, LedSpec, MicSpec, SpeakerSpec};
use pivox_hal::sim::SpeakerProbe;
use pivox_hal::{ButtonEvent, LedState};
use tokio::sync::mpsc;

use crate::audio::preroll::CaptureGate;
use crate::audio::{CapturedFrame, FrameBuf};
use crate::backoff::Backoff;
use crate::config::Config;

/// What to open for the configured microphone.
pub fn mic_spec(config: &Config, epoch: Instant) -> MicSpec {
    let m = &config.microphone;
    MicSpec { device: m.device.clone(), sample_rate: m.sample_rate, realtime: m.realtime, epoch }
}

/// What to open for the configured button (the press mode is applied on top).
pub fn button_spec(config: &Config, epoch: Instant) -> ButtonSpec {
    let b = &config.button;
    ButtonSpec { device: b.device.clone(), epoch, pull: b.pull, active_low: b.active_low, debounce: b.debounce }
}

/// What to open for the configured speaker; `probe` records what a `sim` speaker played.
pub fn speaker_spec(config: &Config, probe: SpeakerProbe) -> SpeakerSpec {
    let s = &config.speaker;
    SpeakerSpec {
        device: s.device.clone(),
        sample_rate: s.sample_rate,
        buffer_ms: config.playback.buffer_ms,
        realtime: s.realtime,
        probe,
    }
}

/// A device failure, for the main loop to log and act on.
#[derive(Debug)]
pub struct Fault {
    pub device: &'static str,
    pub error: pivox_hal::Error,
}

impl Fault {
    /// Whether the failure may pass by itself, so that the device is retried rather than
    /// the daemon stopped.
    pub fn is_transient(&self) -> bool {
        use pivox_hal::ErrorKind::*;
        matches!(self.error.kind(), NotFound | Busy | Disconnected | Io)
    }
}

/// Delays between attempts to reopen a failed device.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// A running device thread.
pub struct DeviceThread {
    name: &'static str,
    handle: JoinHandle<()>,
}

impl DeviceThread {
    pub fn spawn(name: &'static str, body: impl FnOnce() + Send + 'static) -> std::io::Result<Self> {
        let handle = thread::Builder::new().name(format!("pivox-{name}")).spawn(body)?;
        Ok(Self { name, handle })
    }

    /// Waits for the thread to end, until `deadline` at most; a thread still running then is
    /// named in the log and left behind (it ends with the process).
    pub fn join_by(self, deadline: Instant) {
        while !self.handle.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        if self.handle.is_finished() {
            if self.handle.join().is_err() {
                log::error!("the {} thread panicked", self.name);
            }
        } else {
            log::warn!("the {} thread did not stop in time; leaving it", self.name);
        }
    }
}

/// Opens a device, retrying with backoff while the failure is transient and `stop` is not
/// set. Returns `None` after a permanent failure (reported) or when asked to stop.
pub fn open_retrying<S, D>(
    open: &pivox_hal::Result<fn(&S) -> pivox_hal::Result<D>>,
    spec: &S,
    report: &dyn Fn(Fault),
    device: &'static str,
    stop: &AtomicBool,
) -> Option<D> {
    let open = match open {
        Ok(open) => *open,
        Err(e) => {
            report(Fault { device, error: pivox_hal::Error::new(e.kind(), e.to_string()) });
            return None;
        }
    };
    let mut backoff = Backoff::new(RETRY_FIRST, RETRY_MAX);
    let mut failures = 0u32;
    while !stop.load(Ordering::Relaxed) {
        match open(spec) {
            Ok(opened) => {
                if failures > 0 {
                    log::info!("the {device} is back after {failures} failed attempt(s)");
                }
                return Some(opened);
            }
            Err(error) => {
                let fault = Fault { device, error };
                let transient = fault.is_transient();
                report(fault);
                if !transient {
                    return None;
                }
                failures += 1;
                sleep_unless_stopped(backoff.next_delay(), stop);
            }
        }
    }
    None
}

/// After `failed` broke while in use: reports `error`, and if it may pass, closes the device
/// and opens it again (retrying). `None`: give up — the failure is permanent or we stop.
fn reopen_after<S, D, F>(
    error: pivox_hal::Error,
    failed: F,
    open: &pivox_hal::Result<fn(&S) -> pivox_hal::Result<D>>,
    spec: &S,
    report: &dyn Fn(Fault),
    device: &'static str,
    stop: &AtomicBool,
) -> Option<D> {
    let fault = Fault { device, error };
    let transient = fault.is_transient();
    report(fault);
    if !transient {
        return None;
    }
    drop(failed);
    sleep_unless_stopped(RETRY_FIRST, stop);
    open_retrying(open, spec, report, device, stop)
}

/// Sleeps `duration` in short steps so that a stop request is not kept waiting.
fn sleep_unless_stopped(duration: Duration, stop: &AtomicBool) {
    let deadline = Instant::now() + duration;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20).min(deadline - Instant::now()));
    }
}

/// Where the capture thread's frames go.
pub struct CaptureOut {
    /// The main loop's queue, during a turn.
    pub frames: mpsc::Sender<CapturedFrame>,
    /// Decides between the queue and the pre-roll ring.
    pub gate: Arc<CaptureGate>,
    /// Frames the full queue refused.
    pub dropped: Arc<AtomicU64>,
}

/// How much the capture thread reads at a time between presses, when its frames only go into
/// the pre-roll ring: 5 wake-ups a second instead of one per frame (and ALSA, asked for many
/// periods at once, wakes it once for them). The cost: at a press, the frames captured since
/// the last read reach the link up to this much later (the pre-roll before them is sent at
/// once); from then on every frame is read on its own.
pub const IDLE_READ: Duration = Duration::from_millis(100);

/// The capture thread: reads whole frames and queues them for the main loop during a turn,
/// and into the pre-roll ring between turns ([`CaptureGate`]), [`IDLE_READ`] at a time.
pub fn spawn_capture(
    backend_name: &str,
    spec: MicSpec,
    frame_samples: usize,
    out: CaptureOut,
    faults: mpsc::UnboundedSender<Fault>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<DeviceThread> {
    let CaptureOut { frames, gate, dropped } = out;
    let open = backend::find(backend::MICROPHONES, backend_name);
    let frame_time = crate::audio::duration_of(frame_samples, crate::audio::CODEC_RATE);
    let idle_frames = (IDLE_READ.as_micros() / frame_time.as_micros().max(1)).max(1) as usize;
    DeviceThread::spawn("capture", move || {
        let report = |fault: Fault| drop(faults.send(fault));
        let Some(mut mic) = open_retrying(&open, &spec, &report, "microphone", &stop) else { return };
        // Sized once: `idle_frames` frames.
        let mut buf = vec![0i16; idle_frames * frame_samples];
        while !stop.load(Ordering::Relaxed) {
            let batch = if gate.streaming() { frame_samples } else { buf.len() };
            match mic.read(&mut buf[..batch]) {
                Ok(0) => {
                    log::info!("the microphone source ended");
                    break;
                }
                Ok(_) => {
                    let read_at = Instant::now();
                    let count = batch / frame_samples;
                    for (i, frame) in buf[..batch].chunks_exact(frame_samples).enumerate() {
                        // Between turns the frame goes into the pre-roll ring right here.
                        gate.take(frame, || {
                            let frame = CapturedFrame {
                                samples: FrameBuf::from_slice(frame).unwrap_or_default(),
                                // A frame read with later ones was complete that much earlier.
                                captured_at: read_at
                                    .checked_sub(frame_time * (count - 1 - i) as u32)
                                    .unwrap_or(read_at),
                            };
                            if frames.try_send(frame).is_err() {
                                dropped.fetch_add(1, Ordering::Relaxed);
                            }
                        });
                    }
                }
                Err(error) => {
                    // The backend already tried to recover in place; start over from open.
                    let Some(reopened) = reopen_after(error, mic, &open, &spec, &report, "microphone", &stop) else {
                        return;
                    };
                    mic = reopened;
                }
            }
        }
    })
}

/// How long the button thread waits on the device before it looks at the stop flag again.
/// An edge ends the wait at once (a GPIO interrupt, the sim button's next scripted edge), so
/// this only bounds how late a stop is noticed: 4 wake-ups a second while idle, not 20.
const BUTTON_WAIT: Duration = Duration::from_millis(250);

/// The button thread: forwards debounced edges, as `mode` means them (hold or tap).
pub fn spawn_button(
    backend_name: &str,
    spec: ButtonSpec,
    mode: pivox_hal::button_mode::PressMode,
    events: mpsc::Sender<ButtonEvent>,
    faults: mpsc::UnboundedSender<Fault>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<DeviceThread> {
    let open = backend::find(backend::BUTTONS, backend_name);
    DeviceThread::spawn("button", move || {
        let report = |fault: Fault| drop(faults.send(fault));
        let Some(button) = open_retrying(&open, &spec, &report, "button", &stop) else { return };
        let mut button = mode.wrap(button);
        while !stop.load(Ordering::Relaxed) {
            match button.next_event(BUTTON_WAIT) {
                Ok(Some(event)) => {
                    if events.blocking_send(event).is_err() {
                        break;
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    let Some(reopened) = reopen_after(error, button, &open, &spec, &report, "button", &stop) else {
                        return;
                    };
                    button = mode.wrap(reopened);
                }
            }
        }
    })
}

/// What the LED thread is asked to show: a state, and what follows it after a while (the
/// session's error light returning to the session's state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedShow {
    pub state: LedState,
    pub then: Option<(Duration, LedState)>,
}

impl LedShow {
    pub fn steady(state: LedState) -> Self {
        Self { state, then: None }
    }
}

/// The LED thread: shows what it is sent, and what follows when the time comes.
pub fn spawn_led(
    backend_name: &str,
    spec: LedSpec,
    shows: std::sync::mpsc::Receiver<LedShow>,
    faults: mpsc::UnboundedSender<Fault>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<DeviceThread> {
    let open = backend::find(backend::LEDS, backend_name);
    DeviceThread::spawn("led", move || {
        let report = |fault: Fault| drop(faults.send(fault));
        let Some(mut led) = open_retrying(&open, &spec, &report, "led", &stop) else { return };
        let mut shown = LedState::Off;
        let mut then = None;
        loop {
            let next = match then {
                Some((after, state)) => match shows.recv_timeout(after) {
                    Ok(show) => show,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => LedShow::steady(state),
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                },
                None => match shows.recv() {
                    Ok(show) => show,
                    Err(_) => break,
                },
            };
            then = next.then;
            if next.state != shown {
                if let Err(e) = led.set(next.state) {
                    // The LED is a nicety: after a failure pivox goes on without it.
                    return log::error!("led: {e}; going on without the LED");
                }
                shown = next.state;
            }
        }
        if shown != LedState::Off {
            let _ = led.set(LedState::Off);
        }
    })
}
