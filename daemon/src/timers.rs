//! The timers a voice server runs for this device ("set a timer for ten minutes"), as the
//! daemon keeps them: the server says when one starts, changes, is cancelled or finishes
//! (Home Assistant sends no ticks between); the daemon counts each one down itself, so that
//! the idle light can show a running timer and a timer still rings when the server has gone
//! away before saying it finished ([`LATE`] after its end).

use std::time::{Duration, Instant};

/// What the server says about a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerChange {
    Started,
    Updated,
    Cancelled,
    Finished,
}

/// One timer event from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerEvent {
    pub change: TimerChange,
    pub id: String,
    pub name: String,
    pub seconds_left: u32,
    /// False while paused.
    pub active: bool,
}

/// A timer the server did not say finished rings this long after its end.
pub const LATE: Duration = Duration::from_secs(5);
/// At most this many timers are kept (a server cannot make the daemon hold more).
pub const MAX_TIMERS: usize = 16;

#[derive(Debug)]
struct Timer {
    id: String,
    name: String,
    /// When it ends (`None` while paused).
    ends_at: Option<Instant>,
}

/// The running timers.
#[derive(Debug, Default)]
pub struct Timers {
    timers: Vec<Timer>,
}

/// What an event or the clock did: a timer to ring for, by name.
pub type Rang = Option<String>;

impl Timers {
    /// Takes an event from the server; a finished timer is returned for ringing.
    pub fn apply(&mut self, event: TimerEvent, now: Instant) -> Rang {
        let at = self.timers.iter().position(|t| t.id == event.id);
        match event.change {
            TimerChange::Started | TimerChange::Updated => {
                let ends_at = event.active.then(|| now + Duration::from_secs(u64::from(event.seconds_left)));
                match at {
                    Some(i) => {
                        self.timers[i].ends_at = ends_at;
                        self.timers[i].name = event.name;
                    }
                    None if self.timers.len() < MAX_TIMERS => {
                        self.timers.push(Timer { id: event.id, name: event.name, ends_at });
                    }
                    None => log::warn!("more than {MAX_TIMERS} timers at once; timer {} not kept", event.id),
                }
                None
            }
            TimerChange::Cancelled => {
                if let Some(i) = at {
                    self.timers.remove(i);
                }
                None
            }
            TimerChange::Finished => {
                let timer = at.map(|i| self.timers.remove(i));
                Some(timer.map(|t| t.name).unwrap_or(event.name))
            }
        }
    }

    /// Whether a timer is counting down.
    pub fn running(&self) -> bool {
        self.timers.iter().any(|t| t.ends_at.is_some())
    }

    /// When a timer the server has not finished is overdue.
    pub fn next_due(&self) -> Option<Instant> {
        self.timers.iter().filter_map(|t| t.ends_at).min().map(|end| end + LATE)
    }

    /// A timer overdue at `now` rings (and is forgotten).
    pub fn overdue(&mut self, now: Instant) -> Rang {
        let at = self.timers.iter().position(|t| t.ends_at.is_some_and(|end| end + LATE <= now))?;
        Some(self.timers.remove(at).name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(change: TimerChange, id: &str, left: u32, active: bool) -> TimerEvent {
        TimerEvent { change, id: id.into(), name: "pasta".into(), seconds_left: left, active }
    }

    #[test]
    fn timers_start_pause_and_cancel_and_a_finished_one_rings() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        assert_eq!(timers.apply(event(TimerChange::Started, "a", 600, true), t0), None);
        assert!(timers.running());
        assert_eq!(timers.next_due(), Some(t0 + Duration::from_secs(600) + LATE));
        // Paused: still kept, no longer counting down.
        timers.apply(event(TimerChange::Updated, "a", 300, false), t0);
        assert!(!timers.running() && timers.next_due().is_none());
        timers.apply(event(TimerChange::Updated, "a", 300, true), t0);
        timers.apply(event(TimerChange::Started, "b", 60, true), t0);
        timers.apply(event(TimerChange::Cancelled, "b", 60, false), t0);
        assert_eq!(timers.next_due(), Some(t0 + Duration::from_secs(300) + LATE));
        assert_eq!(timers.apply(event(TimerChange::Finished, "a", 0, false), t0), Some("pasta".into()));
        assert!(!timers.running());
    }

    #[test]
    fn a_timer_the_server_never_finished_rings_late_and_the_count_is_bounded() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.apply(event(TimerChange::Started, "a", 10, true), t0);
        assert_eq!(timers.overdue(t0 + Duration::from_secs(10)), None);
        assert_eq!(timers.overdue(t0 + Duration::from_secs(10) + LATE), Some("pasta".into()));
        assert!(timers.next_due().is_none());
        for i in 0..100 {
            timers.apply(event(TimerChange::Started, &i.to_string(), 10, true), t0);
        }
        assert_eq!(timers.timers.len(), MAX_TIMERS);
    }
}
