//! Device threads: each device lives on its own OS thread and talks to the async main loop
//! through bounded queues. A full queue drops (and counts) rather than blocks, so a slow
//! main loop never stalls the microphone. Each thread is joined, with a time limit, on
//! shutdown; a thread that dies reports its error to the main loop first.
//!
//! Troubleshooting: a device that fails to open is reported with the backend's message,
//! which names the device and what to fix; `pivox check-config` catches unknown backends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use pivox_hal::backend::{self, ButtonSpec, LedSpec, MicSpec};
use pivox_hal::{ButtonEvent, LedState};
use tokio::sync::mpsc;

use crate::audio::{CapturedFrame, FrameBuf};

/// A device failure, for the main loop to log and act on.
#[derive(Debug)]
pub struct Fault {
    pub device: &'static str,
    pub error: pivox_hal::Error,
}

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

    /// Waits for the thread to end, at most `limit`; a thread still running is left behind.
    pub fn join(self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.handle.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        if self.handle.is_finished() {
            if self.handle.join().is_err() {
                log::error!("the {} thread panicked", self.name);
            }
        } else {
            log::warn!("the {} thread did not stop within {limit:?}; leaving it", self.name);
        }
    }
}

/// Sends a fault from a device thread; the main loop may already be gone at shutdown.
fn report(faults: &mpsc::UnboundedSender<Fault>, device: &'static str, error: pivox_hal::Error) {
    let _ = faults.send(Fault { device, error });
}

/// Opens a device on the calling (device) thread, or reports why it could not.
fn open_or_report<S, D>(
    open: pivox_hal::Result<fn(&S) -> pivox_hal::Result<D>>,
    spec: &S,
    faults: &mpsc::UnboundedSender<Fault>,
    device: &'static str,
) -> Option<D> {
    open.and_then(|open| open(spec)).map_err(|e| report(faults, device, e)).ok()
}

/// The capture thread: reads whole frames and queues them for the main loop.
pub fn spawn_capture(
    backend_name: &str,
    spec: MicSpec,
    frame_samples: usize,
    frames: mpsc::Sender<CapturedFrame>,
    faults: mpsc::UnboundedSender<Fault>,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
) -> std::io::Result<DeviceThread> {
    let open = backend::find(backend::MICROPHONES, backend_name);
    DeviceThread::spawn("capture", move || {
        let Some(mut mic) = open_or_report(open, &spec, &faults, "microphone") else { return };
        let mut buf = [0i16; crate::audio::MAX_FRAME_SAMPLES];
        let buf = &mut buf[..frame_samples];
        while !stop.load(Ordering::Relaxed) {
            match mic.read(buf) {
                Ok(0) => {
                    log::info!("the microphone source ended");
                    break;
                }
                Ok(_) => {
                    let frame = CapturedFrame {
                        samples: FrameBuf::from_slice(buf).unwrap_or_default(),
                        captured_at: Instant::now(),
                    };
                    if frames.try_send(frame).is_err() {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) => return report(&faults, "microphone", e),
            }
        }
    })
}

/// The button thread: forwards debounced edges.
pub fn spawn_button(
    backend_name: &str,
    spec: ButtonSpec,
    events: mpsc::Sender<ButtonEvent>,
    faults: mpsc::UnboundedSender<Fault>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<DeviceThread> {
    let open = backend::find(backend::BUTTONS, backend_name);
    DeviceThread::spawn("button", move || {
        let Some(mut button) = open_or_report(open, &spec, &faults, "button") else { return };
        while !stop.load(Ordering::Relaxed) {
            match button.next_event(Duration::from_millis(50)) {
                Ok(Some(event)) => {
                    if events.blocking_send(event).is_err() {
                        break;
                    }
                }
                Ok(None) => {}
                Err(e) => return report(&faults, "button", e),
            }
        }
    })
}

/// How long the LED shows an error before it returns to idle.
const ERROR_SHOWN_FOR: Duration = Duration::from_secs(2);

/// The LED thread: shows the state it is sent; the error state is shown for a moment.
pub fn spawn_led(
    backend_name: &str,
    spec: LedSpec,
    states: std::sync::mpsc::Receiver<LedState>,
    faults: mpsc::UnboundedSender<Fault>,
) -> std::io::Result<DeviceThread> {
    let open = backend::find(backend::LEDS, backend_name);
    DeviceThread::spawn("led", move || {
        let Some(mut led) = open_or_report(open, &spec, &faults, "led") else { return };
        let mut shown = LedState::Off;
        loop {
            let next = if shown == LedState::Error {
                match states.recv_timeout(ERROR_SHOWN_FOR) {
                    Ok(state) => state,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => LedState::Idle,
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match states.recv() {
                    Ok(state) => state,
                    Err(_) => break,
                }
            };
            if next != shown {
                if let Err(e) = led.set(next) {
                    return report(&faults, "led", e);
                }
                shown = next;
            }
        }
        if shown != LedState::Off {
            let _ = led.set(LedState::Off);
        }
    })
}
