//! Simulated push buttons: a timed script (`press 0.25, release 2.2`: seconds after the
//! epoch), or Enter on a terminal, each Enter toggling between pressed and released.

use std::io::BufRead;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::{Button, ButtonEvent, Edge, Error, ErrorKind, Result};

/// The latest time a script step may have: a day after start-up.
pub const MAX_SCRIPT_SECONDS: f64 = 86_400.0;

/// Parses a button script: comma-separated `press SECONDS` / `release SECONDS` steps,
/// alternating and starting with a press, at increasing times from 0 to a day.
pub fn parse_script(script: &str) -> Result<Vec<(Duration, Edge)>> {
    // The script itself is not repeated: the caller names where it came from, and it can be long.
    let invalid = |why: String| Error::new(ErrorKind::InvalidConfig, format!("button script: {why}"));
    let mut steps: Vec<(Duration, Edge)> = Vec::new();
    for step in script.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (word, secs) = step
            .split_once(char::is_whitespace)
            .ok_or_else(|| invalid(format!("{} is not `press|release SECONDS`", short(step))))?;
        let edge = match word {
            "press" => Edge::Pressed,
            "release" => Edge::Released,
            _ => return Err(invalid(format!("{} is neither press nor release", short(word)))),
        };
        let at = parse_seconds(secs.trim()).ok_or_else(|| {
            invalid(format!("{} is not a time in seconds from 0 to {MAX_SCRIPT_SECONDS}", short(secs.trim())))
        })?;
        let expected = if steps.len().is_multiple_of(2) { Edge::Pressed } else { Edge::Released };
        if edge != expected {
            return Err(invalid("presses and releases must alternate, starting with a press".into()));
        }
        if steps.last().is_some_and(|(last, _)| *last > at) {
            return Err(invalid("times must not go backwards".into()));
        }
        steps.push((at, edge));
    }
    Ok(steps)
}

/// Seconds from 0 to [`MAX_SCRIPT_SECONDS`]; NaN, infinities and negatives are not times.
fn parse_seconds(text: &str) -> Option<Duration> {
    let secs = text.parse::<f64>().ok()?;
    (0.0..=MAX_SCRIPT_SECONDS).contains(&secs).then(|| Duration::from_secs_f64(secs))
}

/// A piece of the script for a message: in backticks, cut to 40 characters.
fn short(text: &str) -> String {
    let mut chars = text.chars();
    let shown: String = chars.by_ref().take(40).map(|c| if c.is_control() { '?' } else { c }).collect();
    if chars.next().is_some() { format!("`{shown}…`") } else { format!("`{shown}`") }
}

/// Replays a parsed script relative to an epoch, then stays released forever.
pub struct ScriptedButton {
    steps: Vec<(Duration, Edge)>,
    next: usize,
    epoch: Instant,
}

impl ScriptedButton {
    pub fn new(steps: Vec<(Duration, Edge)>, epoch: Instant) -> Self {
        Self { steps, next: 0, epoch }
    }
}

impl Button for ScriptedButton {
    fn next_event(&mut self, timeout: Duration) -> Result<Option<ButtonEvent>> {
        let now = Instant::now();
        // Checked: a step (or a timeout) too far in the future for an `Instant` never comes.
        let due = self.steps.get(self.next).and_then(|&(offset, edge)| Some((self.epoch.checked_add(offset)?, edge)));
        if let Some((due, edge)) = due.filter(|(due, _)| now.checked_add(timeout).is_none_or(|until| *due <= until)) {
            thread::sleep(due.saturating_duration_since(now));
            self.next += 1;
            return Ok(Some(ButtonEvent { edge, at: due }));
        }
        thread::sleep(timeout);
        Ok(None)
    }
}

/// Enter on standard input toggles the button; end of input releases it.
pub struct StdinButton {
    lines: mpsc::Receiver<Instant>,
    pressed: bool,
    closed: bool,
}

impl StdinButton {
    pub fn open() -> Self {
        let (tx, lines) = mpsc::channel();
        // Reading stdin cannot be interrupted, so it gets its own thread; it ends with the input.
        thread::Builder::new()
            .name("pivox-stdin".into())
            .spawn(move || {
                for line in std::io::stdin().lock().lines() {
                    if line.is_err() || tx.send(Instant::now()).is_err() {
                        break;
                    }
                }
            })
            .map(drop)
            .unwrap_or_else(|e| log::error!("cannot read the keyboard: {e}"));
        eprintln!("Press Enter to start talking, Enter again to stop.");
        Self { lines, pressed: false, closed: false }
    }

    fn toggle(&mut self, at: Instant) -> ButtonEvent {
        self.pressed = !self.pressed;
        ButtonEvent { edge: if self.pressed { Edge::Pressed } else { Edge::Released }, at }
    }
}

impl Button for StdinButton {
    fn next_event(&mut self, timeout: Duration) -> Result<Option<ButtonEvent>> {
        if self.closed {
            thread::sleep(timeout);
            return Ok(None);
        }
        match self.lines.recv_timeout(timeout) {
            Ok(at) => Ok(Some(self.toggle(at))),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                self.closed = true;
                Ok(self.pressed.then(|| self.toggle(Instant::now())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_parses_and_replays_at_its_times() {
        let steps = parse_script("press 0.01, release 0.03").unwrap();
        assert_eq!(steps, [(Duration::from_millis(10), Edge::Pressed), (Duration::from_millis(30), Edge::Released)]);
        let epoch = Instant::now();
        let mut button = ScriptedButton::new(steps, epoch);
        let press = button.next_event(Duration::from_secs(1)).unwrap().unwrap();
        assert_eq!((press.edge, press.at), (Edge::Pressed, epoch + Duration::from_millis(10)));
        let release = button.next_event(Duration::from_secs(1)).unwrap().unwrap();
        assert_eq!(release.edge, Edge::Released);
        assert_eq!(button.next_event(Duration::from_millis(5)).unwrap(), None);
    }

    #[test]
    fn waits_no_longer_than_the_timeout() {
        let mut button = ScriptedButton::new(parse_script("press 5").unwrap(), Instant::now());
        let start = Instant::now();
        assert_eq!(button.next_event(Duration::from_millis(20)).unwrap(), None);
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn bad_scripts_are_explained() {
        for (script, why) in [
            ("release 1", "alternate"),
            ("press 1, press 2", "alternate"),
            ("press x", "not a time"),
            ("press -1", "not a time"),
            ("press 1e19", "not a time in seconds from 0 to 86400"),
            ("press 0, release NaN", "not a time"),
            ("press inf", "not a time"),
            ("press 86400.5", "not a time"),
            ("hold 1", "neither"),
            ("press", "is not"),
            ("press 2, release 1", "backwards"),
        ] {
            let err = parse_script(script).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidConfig);
            assert!(err.to_string().contains(why), "{script}: {err}");
        }
        assert!(parse_script("").unwrap().is_empty());
        assert_eq!(parse_script("press 86400").unwrap()[0].0, Duration::from_secs(86_400));
    }

    #[test]
    fn a_long_script_is_not_repeated_in_its_error() {
        let script = format!("press 1, release {}", "9".repeat(100_000));
        let err = parse_script(&script).unwrap_err().to_string();
        assert!(err.len() < 200 && err.contains("…` is not a time"), "{err}");
    }

    #[test]
    fn a_step_beyond_what_an_instant_can_hold_never_comes_and_does_not_panic() {
        // Regression: `press 1e19` panicked the button thread ("overflow when adding duration
        // to instant"); the parser now refuses it, and the button copes with any step it is given.
        let mut button = ScriptedButton::new(vec![(Duration::MAX, Edge::Pressed)], Instant::now());
        assert_eq!(button.next_event(Duration::from_millis(5)).unwrap(), None);
        let mut soon = ScriptedButton::new(parse_script("press 0").unwrap(), Instant::now());
        assert!(soon.next_event(Duration::MAX).unwrap().is_some(), "an endless timeout still sees a due step");
    }
}
