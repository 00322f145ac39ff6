//! Hold-to-talk or tap-to-talk: how physical button edges become talk start/stop edges.
//!
//! - [`PressMode::Hold`] (walkie-talkie): talk while the button is held. Edges pass through.
//! - [`PressMode::Tap`]: a tap starts talking, the next tap stops. [`TapToggle`] turns the
//!   press edge of the first tap into [`Edge::Pressed`] and the press edge of the next tap
//!   into [`Edge::Released`], each with the instant of that physical press; the physical
//!   release edges are swallowed. So the daemon's push-to-talk logic sees the same
//!   Pressed/Released pairs in both modes.
//!
//! If the daemon ends a turn on its own (a time limit, an error), the toggle does not know:
//! the user's next tap would then read as Released. A daemon that cares keeps the
//! [`TapToggle`] by value and calls [`TapToggle::set_talking`] with `false`.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::{Button, ButtonEvent, Edge, Error, ErrorKind, Result};

/// How the push-to-talk button is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PressMode {
    /// Talk while the button is held down.
    #[default]
    Hold,
    /// Tap once to start talking, tap again to stop.
    Tap,
}

impl PressMode {
    /// The names the config accepts, in order.
    pub const NAMES: [&'static str; 2] = ["hold", "tap"];

    /// Wraps `button` so that it reports edges the way this mode means them.
    pub fn wrap(self, button: Box<dyn Button>) -> Box<dyn Button> {
        match self {
            PressMode::Hold => button,
            PressMode::Tap => Box::new(TapToggle::new(button)),
        }
    }
}

impl FromStr for PressMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "hold" => Ok(PressMode::Hold),
            "tap" => Ok(PressMode::Tap),
            other => Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "button mode `{other}`: `hold` (talk while held) or `tap` (tap to start, tap to stop) is expected"
                ),
            )),
        }
    }
}

impl fmt::Display for PressMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PressMode::Hold => "hold",
            PressMode::Tap => "tap",
        })
    }
}

/// A [`Button`] in tap-to-talk mode: alternate taps give Pressed, then Released.
pub struct TapToggle {
    inner: Box<dyn Button>,
    talking: bool,
}

impl TapToggle {
    pub fn new(inner: Box<dyn Button>) -> Self {
        Self { inner, talking: false }
    }

    /// Whether the last edge reported was Pressed.
    pub fn talking(&self) -> bool {
        self.talking
    }

    /// Resynchronises with the daemon: after `set_talking(false)` the next tap is Pressed.
    pub fn set_talking(&mut self, talking: bool) {
        self.talking = talking;
    }
}

impl Button for TapToggle {
    fn next_event(&mut self, timeout: Duration) -> Result<Option<ButtonEvent>> {
        let end = Instant::now().checked_add(timeout);
        loop {
            let left = end.map_or(timeout, |end| end.saturating_duration_since(Instant::now()));
            let Some(event) = self.inner.next_event(left)? else { return Ok(None) };
            if event.edge == Edge::Pressed {
                self.talking = !self.talking;
                let edge = if self.talking { Edge::Pressed } else { Edge::Released };
                return Ok(Some(ButtonEvent { edge, at: event.at }));
            }
            // A physical release: swallowed. Keep waiting while time is left.
            if end.is_some_and(|end| Instant::now() >= end) {
                return Ok(None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// Hands out queued events, then none.
    struct FakeButton(VecDeque<ButtonEvent>);

    impl Button for FakeButton {
        fn next_event(&mut self, _: Duration) -> Result<Option<ButtonEvent>> {
            Ok(self.0.pop_front())
        }
    }

    fn fake(t0: Instant, edges: &[(u64, Edge)]) -> Box<dyn Button> {
        let events = edges.iter().map(|(ms, edge)| ButtonEvent { edge: *edge, at: t0 + Duration::from_millis(*ms) });
        Box::new(FakeButton(events.collect()))
    }

    fn drain(button: &mut dyn Button, t0: Instant) -> Vec<(Edge, u64)> {
        std::iter::from_fn(|| button.next_event(Duration::from_millis(10)).unwrap())
            .map(|e| (e.edge, (e.at - t0).as_millis() as u64))
            .collect()
    }

    const TAPS: [(u64, Edge); 8] = [
        (100, Edge::Pressed),
        (180, Edge::Released),
        (2000, Edge::Pressed),
        (2090, Edge::Released),
        (5000, Edge::Pressed),
        (5100, Edge::Released),
        (6000, Edge::Pressed),
        (6100, Edge::Released),
    ];

    #[test]
    fn tap_mode_turns_alternate_taps_into_pressed_and_released() {
        let t0 = Instant::now();
        let mut button = PressMode::Tap.wrap(fake(t0, &TAPS));
        assert_eq!(
            drain(button.as_mut(), t0),
            [(Edge::Pressed, 100), (Edge::Released, 2000), (Edge::Pressed, 5000), (Edge::Released, 6000),]
        );
    }

    #[test]
    fn tap_mode_swallows_release_edges_and_waits_on() {
        let t0 = Instant::now();
        let mut tap = TapToggle::new(fake(t0, &[(0, Edge::Released), (10, Edge::Released), (20, Edge::Pressed)]));
        let first = tap.next_event(Duration::from_secs(1)).unwrap().unwrap();
        assert_eq!((first.edge, first.at), (Edge::Pressed, t0 + Duration::from_millis(20)));
        assert!(tap.talking());
        assert_eq!(tap.next_event(Duration::from_millis(1)).unwrap(), None);
    }

    #[test]
    fn tap_mode_can_be_resynchronised() {
        let t0 = Instant::now();
        let mut tap = TapToggle::new(fake(t0, &TAPS[..4]));
        let second = Duration::from_secs(1);
        assert_eq!(tap.next_event(second).unwrap().map(|e| e.edge), Some(Edge::Pressed));
        tap.set_talking(false); // The daemon ended the turn itself.
        assert_eq!(tap.next_event(second).unwrap().map(|e| e.edge), Some(Edge::Pressed));
    }

    #[test]
    fn hold_mode_passes_edges_through() {
        let t0 = Instant::now();
        let mut button = PressMode::Hold.wrap(fake(t0, &TAPS[..2]));
        assert_eq!(drain(button.as_mut(), t0), [(Edge::Pressed, 100), (Edge::Released, 180)]);
    }

    #[test]
    fn modes_parse_and_print() {
        for name in PressMode::NAMES {
            assert_eq!(name.parse::<PressMode>().unwrap().to_string(), name);
        }
        assert_eq!(PressMode::default(), PressMode::Hold);
        let err = "toggle".parse::<PressMode>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.to_string().contains("`hold`"), "{err}");
    }
}
