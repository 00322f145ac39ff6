//! Pure cores of the GPIO button: a [`Debouncer`] that turns raw pin levels into clean
//! press/release edges, and an [`EventClock`] that dates kernel edge events as [`Instant`]s.
//!
//! Debouncing waits for quiet: an edge counts once the pin has not changed for `debounce`,
//! and it is dated at the first transition after the previous quiet spell — when the
//! contacts first touched, not when they stopped bouncing. A pulse shorter than `debounce`
//! that ends on the level it started from (noise, a glitch while held) produces nothing.

use std::time::{Duration, Instant};

use crate::{ButtonEvent, Edge};

/// Debounces one button from raw pin levels (`true` = pin high) and their instants.
#[derive(Debug, Clone)]
pub struct Debouncer {
    debounce: Duration,
    active_low: bool,
    /// The debounced state: whether the button counts as pressed.
    pressed: bool,
    /// The latest raw state fed in, already inverted for `active_low`.
    raw_pressed: bool,
    /// When the raw state last changed.
    last_change: Option<Instant>,
    /// The first change since the input was last quiet; `None` while it is settled.
    unsettled_since: Option<Instant>,
}

impl Debouncer {
    /// `level` is the pin's level now; the button starts in the state it gives, without an
    /// edge (a button held while pivox starts counts once it is released and pressed again).
    pub fn new(debounce: Duration, active_low: bool, level: bool) -> Self {
        let pressed = level != active_low;
        Self { debounce, active_low, pressed, raw_pressed: pressed, last_change: None, unsettled_since: None }
    }

    /// The debounced state.
    pub fn is_pressed(&self) -> bool {
        self.pressed
    }

    /// Feeds the pin's level at `at`: an interrupt edge, or a polled sample (samples that
    /// repeat the level are fine). Returns an edge that had already settled before `at`, if
    /// the caller did not [`settle`](Self::settle) in time to see it.
    pub fn feed(&mut self, level: bool, at: Instant) -> Option<ButtonEvent> {
        let pressed = level != self.active_low;
        if pressed == self.raw_pressed {
            return None;
        }
        let settled = self.settle(at);
        self.raw_pressed = pressed;
        self.last_change = Some(at);
        self.unsettled_since.get_or_insert(at);
        settled
    }

    /// When [`settle`](Self::settle) may next return an edge; `None` while nothing is pending.
    pub fn deadline(&self) -> Option<Instant> {
        self.unsettled_since?;
        self.last_change.map(|t| t + self.debounce)
    }

    /// Returns the debounced edge if the input has been quiet for `debounce` by `now` and
    /// ended on the other level than before; its instant is that of the first transition.
    pub fn settle(&mut self, now: Instant) -> Option<ButtonEvent> {
        let since = self.unsettled_since?;
        if self.deadline().is_some_and(|deadline| now < deadline) {
            return None;
        }
        self.unsettled_since = None;
        if self.raw_pressed == self.pressed {
            return None; // A glitch: back where it started.
        }
        self.pressed = self.raw_pressed;
        Some(ButtonEvent { edge: if self.pressed { Edge::Pressed } else { Edge::Released }, at: since })
    }
}

/// Converts kernel event timestamps to [`Instant`]s.
///
/// GPIO character-device events carry a `CLOCK_MONOTONIC` timestamp; `Instant` reads the
/// same clock on Linux but cannot be built from a raw value. So the clock keeps the event
/// that reached us with the least delay as its anchor and dates others from it by their
/// kernel-time distance: a burst of bounces read late keeps its real spacing, and a date is
/// never later than when the event was received.
#[derive(Debug, Clone, Default)]
pub struct EventClock {
    /// `(received, kernel stamp)` of the quickest event seen so far.
    anchor: Option<(Instant, Duration)>,
}

impl EventClock {
    /// Dates an event stamped `stamp` by the kernel and read at `received`.
    pub fn to_instant(&mut self, stamp: Duration, received: Instant) -> Instant {
        if stamp.is_zero() {
            return received; // No kernel timestamp: the receive time is the best there is.
        }
        if let Some((at, anchor)) = self.anchor {
            let dated = if stamp >= anchor { at.checked_add(stamp - anchor) } else { at.checked_sub(anchor - stamp) };
            if let Some(dated) = dated.filter(|d| *d <= received) {
                return dated;
            }
        }
        // First event, or one that arrived quicker than the anchor did: it anchors from now on.
        self.anchor = Some((received, stamp));
        received
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBOUNCE: Duration = Duration::from_millis(20);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Feeds `(ms, level)` steps after `t0` and settles every millisecond up to `until_ms`,
    /// collecting every edge with its offset from `t0`.
    fn run(d: &mut Debouncer, t0: Instant, steps: &[(u64, bool)], until_ms: u64) -> Vec<(Edge, Duration)> {
        let mut edges = Vec::new();
        let mut steps = steps.iter().peekable();
        for now in 0..=until_ms {
            while let Some((_, level)) = steps.next_if(|(at, _)| *at <= now) {
                edges.extend(d.feed(*level, t0 + ms(now)));
            }
            edges.extend(d.settle(t0 + ms(now)));
        }
        edges.into_iter().map(|e| (e.edge, e.at - t0)).collect()
    }

    #[test]
    fn bounce_shorter_than_debounce_is_ignored() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(DEBOUNCE, true, true);
        // Active low, released (high): a 5 ms dip and a 3 ms one, each back high.
        assert_eq!(run(&mut d, t0, &[(10, false), (15, true), (40, false), (43, true)], 200), []);
        assert!(!d.is_pressed());
        assert_eq!(d.deadline(), None);
    }

    #[test]
    fn a_bouncy_press_and_release_give_one_edge_each_at_the_first_transition() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(DEBOUNCE, true, true);
        let steps = [
            (100, false), // contacts touch
            (101, true),
            (103, false),
            (104, true),
            (106, false), // settled pressed
            (500, true),  // release
            (502, false),
            (503, true), // settled released
        ];
        let edges = run(&mut d, t0, &steps, 1000);
        assert_eq!(edges, [(Edge::Pressed, ms(100)), (Edge::Released, ms(500))]);
    }

    #[test]
    fn the_edge_is_reported_only_after_debounce_of_quiet() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(DEBOUNCE, true, true);
        assert_eq!(d.feed(false, t0), None);
        assert_eq!(d.deadline(), Some(t0 + DEBOUNCE));
        assert_eq!(d.settle(t0 + ms(19)), None);
        let press = d.settle(t0 + ms(20)).unwrap();
        assert_eq!((press.edge, press.at), (Edge::Pressed, t0));
        assert_eq!(d.settle(t0 + ms(100)), None, "exactly one edge");
    }

    #[test]
    fn a_glitch_while_held_does_not_release() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(DEBOUNCE, true, true);
        let edges = run(&mut d, t0, &[(0, false), (300, true), (304, false)], 600);
        assert_eq!(edges, [(Edge::Pressed, ms(0))]);
        assert!(d.is_pressed());
    }

    #[test]
    fn active_low_inverts_and_active_high_does_not() {
        let t0 = Instant::now();
        let mut low = Debouncer::new(DEBOUNCE, true, true);
        assert!(!low.is_pressed());
        assert_eq!(run(&mut low, t0, &[(0, false)], 50), [(Edge::Pressed, ms(0))]);
        let mut high = Debouncer::new(DEBOUNCE, false, false);
        assert!(!high.is_pressed());
        assert_eq!(
            run(&mut high, t0, &[(0, true), (100, false)], 200),
            [(Edge::Pressed, ms(0)), (Edge::Released, ms(100))]
        );
        assert!(Debouncer::new(DEBOUNCE, true, false).is_pressed(), "held at start: pressed, no edge");
    }

    #[test]
    fn repeated_samples_of_the_same_level_change_nothing() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(DEBOUNCE, false, false);
        let samples: Vec<(u64, bool)> = (0..100).map(|t| (t, t >= 10)).collect();
        assert_eq!(run(&mut d, t0, &samples, 100), [(Edge::Pressed, ms(10))]);
    }

    #[test]
    fn feed_hands_back_an_edge_that_settled_unseen() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(DEBOUNCE, true, true);
        assert_eq!(d.feed(false, t0), None);
        // Nobody called settle; the release 1 s later still yields the press first.
        let press = d.feed(true, t0 + ms(1000)).unwrap();
        assert_eq!((press.edge, press.at), (Edge::Pressed, t0));
        let release = d.settle(t0 + ms(1020)).unwrap();
        assert_eq!((release.edge, release.at), (Edge::Released, t0 + ms(1000)));
    }

    #[test]
    fn event_clock_keeps_kernel_spacing_and_never_dates_after_receipt() {
        let t0 = Instant::now();
        let boot = Duration::from_secs(1000);
        let mut clock = EventClock::default();
        // First event read 2 ms after it happened: anchored at its receive time.
        assert_eq!(clock.to_instant(boot, t0 + ms(2)), t0 + ms(2));
        // A burst read together 50 ms later keeps its 1 ms spacing.
        assert_eq!(clock.to_instant(boot + ms(10), t0 + ms(60)), t0 + ms(12));
        assert_eq!(clock.to_instant(boot + ms(11), t0 + ms(60)), t0 + ms(13));
        // An event read quicker than the anchor was re-anchors (it cannot be dated later
        // than its receipt).
        assert_eq!(clock.to_instant(boot + ms(100), t0 + ms(101)), t0 + ms(101));
        assert_eq!(clock.to_instant(boot + ms(99), t0 + ms(150)), t0 + ms(100));
        // No timestamp: the receive time.
        assert_eq!(clock.to_instant(Duration::ZERO, t0 + ms(200)), t0 + ms(200));
    }
}
