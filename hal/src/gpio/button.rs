//! The push-to-talk button on a GPIO input: kernel edge interrupts on both edges (through
//! `rppal`'s synchronous `set_interrupt` / `poll_interrupt`, no extra thread), debounced by
//! the pure [`Debouncer`] and dated by the kernel's own timestamps ([`EventClock`]).
//!
//! The kernel's debounce is left off: it would date edges after the bounce, and the
//! [`Debouncer`] is what the tests cover. The pin's level is re-read whenever a wait ends
//! without an edge, so an edge lost to a full kernel queue is caught up.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rppal::gpio::{Gpio, InputPin, Trigger};

use super::{Debouncer, EventClock, gpio_error, parse_pin};
use crate::backend::{ButtonSpec, Pull};
use crate::{Button, ButtonEvent, Result};

pub struct GpioButton {
    pin: InputPin,
    debouncer: Debouncer,
    clock: EventClock,
    /// Edges that settled while another was being returned.
    ready: VecDeque<ButtonEvent>,
    what: String,
}

impl GpioButton {
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
        let debouncer = Debouncer::new(spec.debounce, spec.active_low, pin.is_high());
        log::debug!(
            "{what}: pull {:?}, active {}, debounce {:?}",
            spec.pull,
            if spec.active_low { "low" } else { "high" },
            spec.debounce
        );
        Ok(Self { pin, debouncer, clock: EventClock::default(), ready: VecDeque::new(), what })
    }

    /// Blocks for at most `wait` (rounded up to whole ms, as epoll counts, and at most a
    /// second) for one edge interrupt and feeds it to the debouncer.
    fn wait_for_edge(&mut self, wait: Duration) -> Result<()> {
        let wait = Duration::from_millis(wait.as_micros().div_ceil(1000).min(1000) as u64);
        match self.pin.poll_interrupt(false, Some(wait)) {
            Ok(Some(event)) => {
                let at = self.clock.to_instant(event.timestamp, Instant::now());
                let level = match event.trigger {
                    Trigger::RisingEdge => true,
                    Trigger::FallingEdge => false,
                    _ => self.pin.is_high(),
                };
                self.ready.extend(self.debouncer.feed(level, at));
            }
            Ok(None) => {
                let level = self.pin.is_high();
                self.ready.extend(self.debouncer.feed(level, Instant::now()));
            }
            // A signal interrupted the wait: nothing happened, the caller's loop waits again.
            Err(rppal::gpio::Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(gpio_error(&self.what, e)),
        }
        Ok(())
    }
}

impl Drop for GpioButton {
    /// Releases the kernel line request; rppal keeps it until every pin is gone otherwise.
    fn drop(&mut self) {
        if let Err(e) = self.pin.clear_interrupt() {
            log::debug!("{}: clearing the interrupt: {e}", self.what);
        }
    }
}

impl Button for GpioButton {
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
