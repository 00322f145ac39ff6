//! What each [`LedState`] looks like, as pure functions of the time since the state began.
//!
//! | state        | one GPIO LED                         | APA102 strip                          |
//! |--------------|--------------------------------------|---------------------------------------|
//! | Off          | off                                  | off                                   |
//! | Idle         | off (a plain pin cannot dim)         | dim white glow                        |
//! | Listening    | on                                   | solid blue                            |
//! | Thinking     | fast blink, 100 ms on / 100 ms off   | a blue light spinning, 120 ms a step  |
//! | Speaking     | slow blink, 500 ms on / 500 ms off   | green pulsing 20–100 % over 1 s       |
//! | Error        | three 150 ms flashes every 2 s       | the same flashes in red               |
//! | Disconnected | 200 ms on every 2 s                  | the same in dim amber                 |
//! | TimerRunning | 50 ms on every 4 s                   | dim teal glow                         |
//! | TimerRinging | 250 ms on / 250 ms off               | orange flashing, 250 ms on / off      |

use std::time::Duration;

use crate::LedState;

/// Half of the fast (thinking) blink period, in ms.
const FAST_BLINK_MS: u128 = 100;
/// Half of the slow (speaking) blink period, in ms.
const SLOW_BLINK_MS: u128 = 500;
/// The error and disconnected patterns repeat every 2 s.
const LONG_PERIOD_MS: u128 = 2000;
/// An error flash lasts 150 ms and one starts every 300 ms, three times.
const FLASH_MS: u128 = 150;
const FLASHES: u128 = 3;
/// Disconnected: a short blip, so it reads as "waiting" rather than "busy".
const BLIP_MS: u128 = 200;
/// One step of the spinning APA102 pattern.
const SPIN_STEP_MS: u128 = 120;
/// The APA102 speaking pulse goes up and down once per period.
const PULSE_MS: u128 = 1000;
/// A running timer: a short blip every 4 s on a plain LED (idle is dark there).
const TIMER_PERIOD_MS: u128 = 4000;
const TIMER_BLIP_MS: u128 = 50;
/// A ringing timer: half a second per flash, hard to miss.
const RING_MS: u128 = 250;

/// Whether a state's pattern changes over time, so its LED must be redrawn periodically.
pub fn is_animated(state: LedState) -> bool {
    matches!(
        state,
        LedState::Thinking
            | LedState::Speaking
            | LedState::Error
            | LedState::Disconnected
            | LedState::TimerRunning
            | LedState::TimerRinging
    )
}

/// Whether a single on/off LED is lit `elapsed` after `state` began.
pub fn gpio_level(state: LedState, elapsed: Duration) -> bool {
    let ms = elapsed.as_millis();
    match state {
        LedState::Off | LedState::Idle => false,
        LedState::Listening => true,
        LedState::Thinking => ms % (2 * FAST_BLINK_MS) < FAST_BLINK_MS,
        LedState::Speaking => ms % (2 * SLOW_BLINK_MS) < SLOW_BLINK_MS,
        LedState::Error => error_flash(ms),
        LedState::Disconnected => ms % LONG_PERIOD_MS < BLIP_MS,
        LedState::TimerRunning => ms % TIMER_PERIOD_MS < TIMER_BLIP_MS,
        LedState::TimerRinging => ms % (2 * RING_MS) < RING_MS,
    }
}

fn error_flash(ms: u128) -> bool {
    let t = ms % LONG_PERIOD_MS;
    t < FLASHES * 2 * FLASH_MS && t % (2 * FLASH_MS) < FLASH_MS
}

/// One LED's colour, 0–255 per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rgb {
    pub r: u8,
    pub g: u8,
    pub b: u8,
}

impl Rgb {
    pub const OFF: Rgb = Rgb::new(0, 0, 0);
    pub const IDLE: Rgb = Rgb::new(10, 10, 10);
    pub const LISTENING: Rgb = Rgb::new(0, 0, 255);
    pub const THINKING: Rgb = Rgb::new(0, 96, 255);
    pub const THINKING_TRAIL: Rgb = Rgb::new(0, 0, 24);
    pub const SPEAKING: Rgb = Rgb::new(0, 255, 48);
    pub const ERROR: Rgb = Rgb::new(255, 0, 0);
    pub const DISCONNECTED: Rgb = Rgb::new(64, 24, 0);
    pub const TIMER: Rgb = Rgb::new(0, 24, 20);
    pub const RINGING: Rgb = Rgb::new(255, 96, 0);

    pub const fn new(r: u8, g: u8, b: u8) -> Self {
        Self { r, g, b }
    }

    /// The colour at `percent` (0–100) of its intensity.
    pub fn scaled(self, percent: u8) -> Self {
        let p = u16::from(percent.min(100));
        let f = |c: u8| ((u16::from(c) * p + 50) / 100) as u8;
        Self::new(f(self.r), f(self.g), f(self.b))
    }
}

/// Fills `out` (one entry per LED) with the strip's colours `elapsed` after `state` began.
pub fn apa102_colors(state: LedState, elapsed: Duration, out: &mut [Rgb]) {
    let ms = elapsed.as_millis();
    let all = |out: &mut [Rgb], c: Rgb| out.fill(c);
    match state {
        LedState::Off => all(out, Rgb::OFF),
        LedState::Idle => all(out, Rgb::IDLE),
        LedState::Listening => all(out, Rgb::LISTENING),
        LedState::Thinking if out.len() < 2 => {
            // Nothing to spin with one LED: blink like the plain LED does.
            all(out, if gpio_level(state, elapsed) { Rgb::THINKING } else { Rgb::THINKING_TRAIL })
        }
        LedState::Thinking => {
            let lead = (ms / SPIN_STEP_MS) as usize % out.len();
            for (i, led) in out.iter_mut().enumerate() {
                *led = if i == lead { Rgb::THINKING } else { Rgb::THINKING_TRAIL };
            }
        }
        LedState::Speaking => {
            // A triangle wave from 20 % up to 100 % and back.
            let phase = ms % PULSE_MS;
            let up = if phase < PULSE_MS / 2 { phase } else { PULSE_MS - phase };
            let percent = 20 + (up * 80 / (PULSE_MS / 2)) as u8;
            all(out, Rgb::SPEAKING.scaled(percent))
        }
        LedState::Error => all(out, if error_flash(ms) { Rgb::ERROR } else { Rgb::OFF }),
        LedState::Disconnected => all(out, if gpio_level(state, elapsed) { Rgb::DISCONNECTED } else { Rgb::OFF }),
        LedState::TimerRunning => all(out, Rgb::TIMER),
        LedState::TimerRinging => all(out, if gpio_level(state, elapsed) { Rgb::RINGING } else { Rgb::OFF }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [LedState; 9] = [
        LedState::Off,
        LedState::Idle,
        LedState::Listening,
        LedState::Thinking,
        LedState::Speaking,
        LedState::Error,
        LedState::Disconnected,
        LedState::TimerRunning,
        LedState::TimerRinging,
    ];

    /// The levels at every 10 ms over `period_ms`.
    fn levels(state: LedState, period_ms: u64) -> Vec<bool> {
        (0..period_ms / 10).map(|t| gpio_level(state, Duration::from_millis(t * 10))).collect()
    }

    /// How many times the LED switches on over `period_ms` (counting a start in the on state).
    fn flashes(state: LedState, period_ms: u64) -> usize {
        let l = levels(state, period_ms);
        usize::from(l[0]) + l.windows(2).filter(|w| !w[0] && w[1]).count()
    }

    #[test]
    fn steady_states_never_change() {
        for t in (0..10_000).step_by(7) {
            let at = Duration::from_millis(t);
            assert!(gpio_level(LedState::Listening, at));
            assert!(!gpio_level(LedState::Off, at));
            assert!(!gpio_level(LedState::Idle, at));
        }
        for state in ALL {
            let steady = matches!(state, LedState::Off | LedState::Idle | LedState::Listening);
            assert_eq!(is_animated(state), !steady, "{state:?}");
        }
    }

    #[test]
    fn blinking_states_change_within_their_period() {
        for (state, period) in [
            (LedState::Thinking, 200),
            (LedState::Speaking, 1000),
            (LedState::Disconnected, 2000),
            (LedState::TimerRunning, 4000),
            (LedState::TimerRinging, 500),
        ] {
            let l = levels(state, period);
            assert!(l.contains(&true) && l.contains(&false), "{state:?}: {l:?}");
            assert_eq!(flashes(state, period), 1, "{state:?}");
            assert_eq!(levels(state, period), levels(state, 2 * period)[(period / 10) as usize..], "{state:?} repeats");
        }
        // Thinking blinks faster than speaking; disconnected is mostly off.
        assert_eq!(flashes(LedState::Thinking, 2000), 10);
        assert_eq!(flashes(LedState::Speaking, 2000), 2);
        assert_eq!(levels(LedState::Disconnected, 2000).iter().filter(|on| **on).count(), 20);
    }

    #[test]
    fn error_flashes_three_times_every_two_seconds() {
        assert_eq!(flashes(LedState::Error, 2000), 3);
        assert_eq!(flashes(LedState::Error, 6000), 9);
        assert!(gpio_level(LedState::Error, Duration::ZERO), "the first flash starts at once");
        assert!(!gpio_level(LedState::Error, Duration::from_millis(1000)), "then a pause");
    }

    #[test]
    fn strip_colours_per_state() {
        let at = |state, ms| {
            let mut out = [Rgb::new(1, 2, 3); 3];
            apa102_colors(state, Duration::from_millis(ms), &mut out);
            out
        };
        assert_eq!(at(LedState::Off, 0), [Rgb::OFF; 3]);
        assert_eq!(at(LedState::Idle, 5000), [Rgb::IDLE; 3]);
        assert_eq!(at(LedState::Listening, 5000), [Rgb::new(0, 0, 255); 3]);
        // Thinking: one bright blue LED walks around.
        let lead = |out: [Rgb; 3]| out.iter().position(|c| *c == Rgb::THINKING);
        assert_eq!(lead(at(LedState::Thinking, 0)), Some(0));
        assert_eq!(lead(at(LedState::Thinking, 130)), Some(1));
        assert_eq!(lead(at(LedState::Thinking, 250)), Some(2));
        assert_eq!(lead(at(LedState::Thinking, 370)), Some(0));
        assert_eq!(at(LedState::Thinking, 130).iter().filter(|c| **c == Rgb::THINKING_TRAIL).count(), 2);
        // Speaking: green, dimmest at the start of the period, brightest in the middle.
        assert_eq!(at(LedState::Speaking, 0), [Rgb::SPEAKING.scaled(20); 3]);
        assert_eq!(at(LedState::Speaking, 500), [Rgb::SPEAKING; 3]);
        assert!(at(LedState::Speaking, 250)[0].g > at(LedState::Speaking, 0)[0].g);
        assert!(at(LedState::Speaking, 250).iter().all(|c| c.r == 0 && c.g > c.b));
        // Error: red during a flash, dark between; disconnected: dim amber blips.
        assert_eq!(at(LedState::Error, 50), [Rgb::new(255, 0, 0); 3]);
        assert_eq!(at(LedState::Error, 200), [Rgb::OFF; 3]);
        assert_eq!(at(LedState::Disconnected, 50), [Rgb::DISCONNECTED; 3]);
        assert_eq!(at(LedState::Disconnected, 1000), [Rgb::OFF; 3]);
        // One LED cannot spin: it blinks.
        let mut one = [Rgb::OFF];
        apa102_colors(LedState::Thinking, Duration::from_millis(150), &mut one);
        assert_eq!(one, [Rgb::THINKING_TRAIL]);
        apa102_colors(LedState::Thinking, Duration::ZERO, &mut []);
    }

    #[test]
    fn scaling_rounds_and_clamps() {
        assert_eq!(Rgb::new(255, 100, 1).scaled(50), Rgb::new(128, 50, 1));
        assert_eq!(Rgb::new(255, 100, 1).scaled(200), Rgb::new(255, 100, 1));
        assert_eq!(Rgb::new(255, 100, 1).scaled(0), Rgb::OFF);
    }
}
