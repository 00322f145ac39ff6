//! An LED animated by a thread it owns, so [`Led::set`] returns at once.
//!
//! The thread waits for the next state on a channel; while the state's pattern moves
//! ([`is_animated`]) it wakes every `tick` to redraw. Dropping the [`AnimatedLed`] closes the
//! channel: the thread switches the LED off and ends, and the drop joins it.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::is_animated;
use crate::{Error, ErrorKind, Led, LedState, Result};

/// Draws a state on the hardware; called from the LED's thread only.
pub(crate) trait Painter: Send + 'static {
    /// Shows `state` as it looks `elapsed` after it began.
    fn paint(&mut self, state: LedState, elapsed: Duration) -> Result<()>;
}

/// A status LED whose pattern runs on its own thread.
pub struct AnimatedLed {
    what: String,
    states: Option<mpsc::Sender<LedState>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl AnimatedLed {
    /// Starts the thread, which shows [`LedState::Off`] until told otherwise.
    pub(crate) fn spawn<P: Painter>(what: String, tick: Duration, painter: P) -> Result<Self> {
        let (tx, rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("pivox-led".into())
            .spawn(move || run(painter, rx, tick))
            .map_err(|e| Error::new(ErrorKind::Io, format!("{what}: cannot start the LED thread: {e}")))?;
        Ok(Self { what, states: Some(tx), thread: Some(thread) })
    }

    /// Collects the thread's outcome once it has ended.
    fn join(&mut self) -> Result<()> {
        match self.thread.take().map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(Error::new(ErrorKind::Io, format!("{}: the LED thread panicked", self.what))),
        }
    }
}

fn run<P: Painter>(mut painter: P, states: mpsc::Receiver<LedState>, tick: Duration) -> Result<()> {
    let mut state = LedState::Off;
    let mut since = Instant::now();
    let shown = (|| {
        painter.paint(state, Duration::ZERO)?;
        loop {
            let next = if is_animated(state) {
                states.recv_timeout(tick)
            } else {
                states.recv().map_err(|_| RecvTimeoutError::Disconnected)
            };
            match next {
                // The same state again keeps its animation phase.
                Ok(new) if new != state => {
                    state = new;
                    since = Instant::now();
                }
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            painter.paint(state, since.elapsed())?;
        }
    })();
    // Dark on the way out, also after a failed write (it may have been a passing one).
    let off = painter.paint(LedState::Off, Duration::ZERO);
    shown.and(off)
}

impl Led for AnimatedLed {
    fn set(&mut self, state: LedState) -> Result<()> {
        let sent = self.states.as_ref().is_some_and(|tx| tx.send(state).is_ok());
        if sent {
            return Ok(());
        }
        // The thread has ended, which it only does after an error.
        self.states = None;
        let why = match self.join() {
            Err(e) => e.to_string(),
            Ok(()) => "it stopped".into(),
        };
        Err(Error::new(ErrorKind::Disconnected, format!("{}: the LED no longer works: {why}", self.what)))
    }
}

impl Drop for AnimatedLed {
    fn drop(&mut self) {
        self.states = None; // Closing the channel tells the thread to switch off and end.
        if let Err(e) = self.join() {
            log::warn!("{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Records every paint; fails on demand.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<LedState>>>, Arc<Mutex<bool>>);

    impl Painter for Recorder {
        fn paint(&mut self, state: LedState, _: Duration) -> Result<()> {
            self.0.lock().unwrap().push(state);
            if *self.1.lock().unwrap() && state != LedState::Off {
                return Err(Error::new(ErrorKind::Io, "write failed"));
            }
            Ok(())
        }
    }

    #[test]
    fn set_returns_at_once_and_drop_switches_off_and_joins() {
        let rec = Recorder::default();
        let mut led = AnimatedLed::spawn("test LED".into(), Duration::from_millis(5), rec.clone()).unwrap();
        let start = Instant::now();
        led.set(LedState::Thinking).unwrap();
        assert!(start.elapsed() < Duration::from_millis(50));
        thread::sleep(Duration::from_millis(60));
        led.set(LedState::Listening).unwrap();
        drop(led);
        let painted = rec.0.lock().unwrap().clone();
        assert_eq!(painted.first(), Some(&LedState::Off));
        assert_eq!(painted.last(), Some(&LedState::Off), "off after drop: {painted:?}");
        let thinking = painted.iter().filter(|s| **s == LedState::Thinking).count();
        assert!(thinking >= 3, "thinking is redrawn while it lasts: {painted:?}");
        assert!(painted.contains(&LedState::Listening));
    }

    #[test]
    fn a_failed_write_is_reported_by_the_next_set() {
        let rec = Recorder::default();
        *rec.1.lock().unwrap() = true;
        let mut led = AnimatedLed::spawn("test LED".into(), Duration::from_millis(5), rec.clone()).unwrap();
        led.set(LedState::Error).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let err = loop {
            match led.set(LedState::Error) {
                Err(e) => break e,
                Ok(()) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                Ok(()) => panic!("the failure was never reported"),
            }
        };
        assert_eq!(err.kind(), ErrorKind::Disconnected);
        assert!(err.to_string().contains("write failed"), "{err}");
        assert_eq!(rec.0.lock().unwrap().last(), Some(&LedState::Off), "switched off after the failure");
        assert_eq!(led.set(LedState::Idle).unwrap_err().kind(), ErrorKind::Disconnected);
    }
}
