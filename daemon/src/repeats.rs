//! Repeated warnings, summarised: the first of a run is logged, the rest are counted and
//! reported as one line when the run ends or when a later one is logged. A server that sends
//! a thousand bad frames, or a reply too fast for the speaker, costs the journal two lines, not
//! a thousand.

use std::time::{Duration, Instant};

/// After this long, the next occurrence is logged again (with the count of those in between).
pub const WINDOW: Duration = Duration::from_secs(60);

/// One kind of warning.
#[derive(Debug, Default)]
pub struct Repeats {
    logged_at: Option<Instant>,
    suppressed: u64,
}

impl Repeats {
    /// Another occurrence at `now`. `Some(n)`: log this one, and say that `n` went unlogged
    /// since the last line; `None`: counted, not logged.
    pub fn occur(&mut self, now: Instant) -> Option<u64> {
        match self.logged_at {
            Some(at) if now.saturating_duration_since(at) < WINDOW => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.logged_at = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    /// The run is over (a connection closed, a reply ended): how many went unlogged since the
    /// last line; the next occurrence is logged again.
    pub fn finish(&mut self) -> u64 {
        self.logged_at = None;
        std::mem::take(&mut self.suppressed)
    }
}

/// " (and N more like it)" for a summary count, or nothing.
pub fn more(n: u64) -> String {
    if n == 0 { String::new() } else { format!(" (and {n} more like it since the last such line)") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_is_logged_then_counted_then_summarised() {
        let t0 = Instant::now();
        let mut r = Repeats::default();
        assert_eq!(r.occur(t0), Some(0));
        for i in 1..100 {
            assert_eq!(r.occur(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(r.finish(), 99);
        assert_eq!(r.occur(t0 + Duration::from_secs(1)), Some(0));
        r.occur(t0 + Duration::from_secs(2));
        // A minute after the last line, one more line carries the count.
        assert_eq!(r.occur(t0 + Duration::from_secs(61)), Some(1));
    }
}
