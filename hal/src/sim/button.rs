//! Simulated push buttons: a timed script (`press 0.25, release 2.2`: seconds after the
//! epoch), or Enter on a terminal, each Enter toggling between pressed and released.

use std::io::BufRead;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::{Button, ButtonEvent, Edge, Error, ErrorKind, Result};

/// Parses a button script: comma-separated `press SECONDS` / `release SECONDS` steps,
/// alternating and starting with a press, at increasing times.
pub fn parse_script(script: &str) -> Result<Vec<(Duration, Edge)>> {
    let invalid = |why: String| Error::new(ErrorKind::InvalidConfig, format!("button script `{script}`: {why}"));
    let mut steps: Vec<(Duration, Edge)> = Vec::new();
    for step in script.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (word, secs) = step
            .split_once(char::is_whitespace)
            .ok_or_else(|| invalid(format!("`{step}` is not `press|release SECONDS`")))?;
        let edge = match word {
            "press" => Edge::Pressed,
            "release" => Edge::Released,
            _ => return Err(invalid(format!("`{word}` is neither press nor release"))),
        };
        let at = secs
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| invalid(format!("`{}` is not a time in seconds", secs.trim())))?;
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
        if let Some(&(offset, edge)) = self.steps.get(self.next) {
            let due = self.epoch + offset;
            if due <= now + timeout {
                thread::sleep(due.saturating_duration_since(now));
                self.next += 1;
                return Ok(Some(ButtonEvent { edge, at: due }));
            }
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
            ("hold 1", "neither"),
            ("press", "is not"),
            ("press 2, release 1", "backwards"),
        ] {
            let err = parse_script(script).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidConfig);
            assert!(err.to_string().contains(why), "{script}: {err}");
        }
        assert!(parse_script("").unwrap().is_empty());
    }
}
