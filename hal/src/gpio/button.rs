//! The push-to-talk button on a GPIO input, for both GPIO backends: kernel edge interrupts on
//! both edges, debounced by the pure [`Debouncer`] and dated by the kernel's own timestamps
//! ([`EventClock`]). [`DebouncedButton`] is the loop every backend shares; an [`EdgeSource`]
//! is what a backend brings: `rppal`'s synchronous `poll_interrupt` ([`RppalLine`], `gpio`)
//! or a character-device line request (`gpiocdev`, in `cdev.rs`), no extra thread either way.
//!
//! The kernel's debounce is left off: it would date edges after the bounce, and the
//! [`Debouncer`] is what the tests cover. The line's level is re-read whenever a wait ends
//! without an edge, so an edge lost to a full kernel queue is caught up.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rppal::gpio::{Gpio, InputPin, Trigger};

use super::{Debouncer, EventClock, gpio_error, parse_pin};
use crate::backend::{ButtonSpec, Pull};
use crate::{Button, ButtonEvent, Result};

/// Where a button's raw edges come from.
pub trait EdgeSource: Send {
    /// What the line is, for messages: "button on GPIO 17".
    fn what(&self) -> &str;
    /// The line's physical level now (true: high).
    fn level(&mut self) -> Result<bool>;
    /// Waits at most `wait` for one edge: its physical level after the edge and the kernel's
    /// timestamp (`CLOCK_MONOTONIC`; zero if there is none), or `None` when the wait ended
    /// without one (or a signal interrupted it).
    fn wait_for_edge(&mut self, wait: Duration) -> Result<Option<(bool, Duration)>>;
}

/// A button on any [`EdgeSource`], debounced.
pub struct DebouncedButton<S> {
    source: S,
    debouncer: Debouncer,
    clock: EventClock,
    /// Edges that settled while another was being returned.
    ready: VecDeque<ButtonEvent>,
}

impl<S: EdgeSource> DebouncedButton<S> {
    pub(crate) fn new(mut source: S, spec: &ButtonSpec) -> Result<Self> {
        let level = source.level()?;
        log::debug!(
            "{}: pull {:?}, active {}, debounce {:?}",
            source.what(),
            spec.pull,
            if spec.active_low { "low" } else { "high" },
            spec.debounce
        );
        let debouncer = Debouncer::new(spec.debounce, spec.active_low, level);
        Ok(Self { source, debouncer, clock: EventClock::default(), ready: VecDeque::new() })
    }

    /// Blocks for at most `wait` for one edge and feeds it (or the level, after a wait with
    /// none) to the debouncer.
    fn wait_for_edge(&mut self, wait: Duration) -> Result<()> {
        let (level, at) = match self.source.wait_for_edge(wait)? {
            Some((level, stamp)) => (level, self.clock.to_instant(stamp, Instant::now())),
            None => (self.source.level()?, Instant::now()),
        };
        self.ready.extend(self.debouncer.feed(level, at));
        Ok(())
    }
}

impl<S: EdgeSource> Button for DebouncedButton<S> {
    fn next_event(&mut self, timeout: Duration) -> Result<Option<ButtonEvent>> {
        let start = Instant::now();
        let end = start.checked_add(timeout);
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(Some(event));
            }
            let now = Instant::now();
            if let Some(event) = self.debouncer.settle(now) {
                return Ok(Some(event));
            }
            let left = end.map_or(Duration::MAX, |end| end.saturating_duration_since(now));
            if left.is_zero() {
                return Ok(None);
            }
            // Wake at the debounce deadline if one is pending, so the edge is not held back.
            let wait = self.debouncer.deadline().map_or(left, |d| d.saturating_duration_since(now).min(left));
            self.wait_for_edge(wait)?;
        }
    }
}

/// The button on a Raspberry Pi's BCM pin, through `rppal` (the `gpio` backend).
pub type GpioButton = DebouncedButton<RppalLine>;

/// A BCM pin as an input with edge interrupts, through `rppal`.
pub struct RppalLine {
    pin: InputPin,
    what: String,
}

impl RppalLine {
    /// Configures the pin named by `spec.device` as an input with the requested bias and
    /// starts listening for edges.
    pub fn open(spec: &ButtonSpec) -> Result<Self> {
        let number = parse_pin("button.device", &spec.device)?;
        let what = format!("button on GPIO {number}");
        let pin = Gpio::new().and_then(|gpio| gpio.get(number)).map_err(|e| gpio_error(&what, e))?;
        let mut pin = match spec.pull {
            Pull::Up => pin.into_input_pullup(),
            Pull::Down => pin.into_input_pulldown(),
            Pull::Off => pin.into_input(),
        };
        pin.set_interrupt(Trigger::Both, None).map_err(|e| gpio_error(&what, e))?;
        Ok(Self { pin, what })
    }
}

impl EdgeSource for RppalLine {
    fn what(&self) -> &str {
        &self.what
    }

    fn level(&mut self) -> Result<bool> {
        Ok(self.pin.is_high())
    }

    /// Waits rounded up to whole ms, as epoll counts, and at most a second.
    fn wait_for_edge(&mut self, wait: Duration) -> Result<Option<(bool, Duration)>> {
        let wait = Duration::from_millis(wait.as_micros().div_ceil(1000).min(1000) as u64);
        match self.pin.poll_interrupt(false, Some(wait)) {
            Ok(Some(event)) => {
                let level = match event.trigger {
                    Trigger::RisingEdge => true,
                    Trigger::FallingEdge => false,
                    _ => self.pin.is_high(),
                };
                Ok(Some((level, event.timestamp)))
            }
            Ok(None) => Ok(None),
            // A signal interrupted the wait: nothing happened, the caller's loop waits again.
            Err(rppal::gpio::Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(gpio_error(&self.what, e)),
        }
    }
}

impl Drop for RppalLine {
    /// Releases the kernel line request; rppal keeps it until every pin is gone otherwise.
    fn drop(&mut self) {
        if let Err(e) = self.pin.clear_interrupt() {
            log::debug!("{}: clearing the interrupt: {e}", self.what);
        }
    }
}
