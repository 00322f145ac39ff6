//! The `gpiocdev` backend: the push-to-talk button and a plain status LED through the kernel's
//! GPIO character device (`/dev/gpiochipN`, uAPI v2, the `gpiocdev` crate). It runs on any Linux
//! board with a GPIO driver — Raspberry Pi (any model), Orange Pi, Radxa, Pine64, Jetson, a
//! virtual machine's PL061 — and needs no `/dev/gpiomem`: only read and write access to the chip
//! (the `gpio` group on Raspberry Pi OS).
//!
//! A line is named in the config in one of two ways:
//! - by the name the board's device tree gives it, e.g. `GPIO17` on a Raspberry Pi: found on
//!   whichever chip has it, so the Pi 5 (whose header is not on `gpiochip0`) needs no change;
//! - by chip and offset, `gpiochip0:17` (or `/dev/gpiochip0:17`), for boards whose lines have
//!   no names. `pivox devices` lists every chip and its named lines.
//!
//! The button asks the kernel for both edges with `CLOCK_MONOTONIC` timestamps and the pull
//! the config names; the kernel's debounce is left off (see `button.rs`). Pull-up and
//! pull-down need kernel 5.5 and a driver that supports them; where the driver cannot, the
//! request fails with the driver's error rather than silently floating.

use std::path::PathBuf;
use std::time::Duration;

use gpiocdev::Request;
use gpiocdev::line::{Bias, EdgeDetection, EdgeKind, Value};

use super::animate::{AnimatedLed, Painter};
use super::button::{DebouncedButton, EdgeSource};
use super::{GPIO_TICK, gpio_level, io_error};
use crate::backend::{ButtonSpec, LedSpec, Pull};
use crate::{Button, Error, ErrorKind, Led, LedState, Result};

/// How the kernel names pivox as the user of a line (`gpioinfo` shows it).
const CONSUMER: &str = "pivox";

/// A GPIO line as the config names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineName {
    /// A name from the device tree, such as `GPIO17`.
    Named(String),
    /// A chip's device path and the line's offset on it.
    Offset { chip: PathBuf, offset: u32 },
}

impl std::fmt::Display for LineName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineName::Named(name) => write!(f, "line {name}"),
            LineName::Offset { chip, offset } => write!(f, "line {offset} of {}", chip.display()),
        }
    }
}

/// Parses the config field `field` (e.g. `button.device`): a line name, or `gpiochipN:OFFSET`.
pub fn parse_line(field: &str, device: &str) -> Result<LineName> {
    line_name(device).map_err(|why| Error::new(ErrorKind::InvalidConfig, format!("{field} `{}`: {why}", device.trim())))
}

/// A line name or `gpiochipN:OFFSET`, or why `device` is neither (for `pivox check-config`).
pub fn line_name(device: &str) -> std::result::Result<LineName, &'static str> {
    let device = device.trim();
    if device.is_empty() {
        return Err("a line name such as GPIO17, or gpiochipN:OFFSET, is expected");
    }
    let Some((chip, offset)) = device.rsplit_once(':') else {
        if device.chars().any(char::is_whitespace) {
            return Err("a line name has no spaces (`pivox devices` lists the names)");
        }
        return Ok(LineName::Named(device.to_string()));
    };
    let chip = chip.strip_prefix("/dev/").unwrap_or(chip);
    let number = chip.strip_prefix("gpiochip").filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if number.is_none() {
        return Err("the chip is gpiochipN, e.g. gpiochip0:17");
    }
    let offset = offset.parse::<u32>().map_err(|_| "the offset after the colon is a line number, e.g. gpiochip0:17")?;
    Ok(LineName::Offset { chip: PathBuf::from("/dev").join(chip), offset })
}

/// Finds the chip and offset of `line`; `what` names the device for the error.
fn locate(line: &LineName, what: &str) -> Result<(PathBuf, u32)> {
    match line {
        LineName::Offset { chip, offset } => {
            gpiocdev::chip::is_chip(chip).map_err(|e| cdev_error(what, &e))?;
            Ok((chip.clone(), *offset))
        }
        LineName::Named(name) => match gpiocdev::find_named_line(name) {
            Some(found) => Ok((found.chip, found.info.offset)),
            None if gpiocdev::chip::chips().map(|c| c.is_empty()).unwrap_or(true) => Err(Error::new(
                ErrorKind::NotFound,
                format!("{what}: this machine has no GPIO chips (/dev/gpiochip*) that pivox may open"),
            )),
            None => Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "{what}: no GPIO line is named `{name}` here (`pivox devices` lists the names; or use gpiochipN:OFFSET)"
                ),
            )),
        },
    }
}

/// Opens the push-to-talk button on the line named by `spec.device`.
pub fn open_button(spec: &ButtonSpec) -> Result<Box<dyn Button>> {
    let line = CdevLine::open(spec)?;
    Ok(Box::new(DebouncedButton::new(line, spec)?))
}

/// Opens a single status LED on the line named by `spec.device`.
pub fn open_led(spec: &LedSpec) -> Result<Box<dyn Led>> {
    let line = parse_line("led.device", &spec.device)?;
    let what = format!("LED on {line}");
    let (chip, offset) = locate(&line, &what)?;
    let mut builder = Request::builder();
    builder.on_chip(&chip).with_consumer(CONSUMER).with_line(offset);
    // The kernel inverts an active-low line: Active always means lit.
    if spec.active_low {
        builder.as_active_low();
    }
    let request = builder.as_output(Value::Inactive).request().map_err(|e| cdev_error(&what, &e))?;
    log::debug!("{what}: on {} offset {offset}", chip.display());
    let painter = LinePainter { request, what: what.clone(), lit: Some(false) };
    Ok(Box::new(AnimatedLed::spawn(what, GPIO_TICK, painter)?))
}

/// A requested input line with edge detection on both edges.
pub struct CdevLine {
    request: Request,
    what: String,
}

impl CdevLine {
    pub fn open(spec: &ButtonSpec) -> Result<Self> {
        let line = parse_line("button.device", &spec.device)?;
        let what = format!("button on {line}");
        let (chip, offset) = locate(&line, &what)?;
        let bias = match spec.pull {
            Pull::Up => Bias::PullUp,
            Pull::Down => Bias::PullDown,
            Pull::Off => Bias::Disabled,
        };
        let request = Request::builder()
            .on_chip(&chip)
            .with_consumer(CONSUMER)
            .with_line(offset)
            .as_input()
            .with_bias(bias)
            .with_edge_detection(EdgeDetection::BothEdges)
            .request()
            .map_err(|e| cdev_error(&what, &e))?;
        log::debug!("{what}: {} offset {offset}", chip.display());
        Ok(Self { request, what })
    }
}

impl EdgeSource for CdevLine {
    fn what(&self) -> &str {
        &self.what
    }

    fn level(&mut self) -> Result<bool> {
        // No active-low flag on the request: Active is the physical high level.
        let value = self.request.lone_value().map_err(|e| cdev_error(&self.what, &e))?;
        Ok(value == Value::Active)
    }

    fn wait_for_edge(&mut self, wait: Duration) -> Result<Option<(bool, Duration)>> {
        match self.request.wait_edge_event(wait) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) if os_error(&e) == Some(libc::EINTR) => return Ok(None),
            Err(e) => return Err(cdev_error(&self.what, &e)),
        }
        let event = self.request.read_edge_event().map_err(|e| cdev_error(&self.what, &e))?;
        Ok(Some((event.kind == EdgeKind::Rising, Duration::from_nanos(event.timestamp_ns))))
    }
}

/// Drives one output line from [`gpio_level`]; writes it only when the level changes.
struct LinePainter {
    request: Request,
    what: String,
    lit: Option<bool>,
}

impl Painter for LinePainter {
    fn paint(&mut self, state: LedState, elapsed: Duration) -> Result<()> {
        let on = gpio_level(state, elapsed);
        if self.lit != Some(on) {
            let value = if on { Value::Active } else { Value::Inactive };
            self.request.set_lone_value(value).map_err(|e| cdev_error(&self.what, &e))?;
            self.lit = Some(on);
        }
        Ok(())
    }
}

/// The OS error number behind a `gpiocdev` error, if one is. A failed ioctl comes as
/// `Uapi(call, error)`, whose error type the crate does not export; its message ends as
/// `std::io::Error`'s does, "(os error N)".
fn os_error(e: &gpiocdev::Error) -> Option<i32> {
    match e {
        gpiocdev::Error::Os(errno) => Some(errno.0),
        other => {
            let text = other.to_string();
            let tail = text.rsplit_once("(os error ")?.1;
            tail.strip_suffix(')')?.parse().ok()
        }
    }
}

/// Maps a `gpiocdev` error to a one-line [`Error`] that says what to do; `what` names the
/// device, e.g. "button on line GPIO17".
pub(crate) fn cdev_error(what: &str, e: &gpiocdev::Error) -> Error {
    match (e, os_error(e)) {
        (_, Some(errno)) => {
            let io = std::io::Error::from_raw_os_error(errno);
            match errno {
                libc::EINVAL => Error::new(
                    ErrorKind::InvalidConfig,
                    format!(
                        "{what}: the chip refused the line's settings ({io}): no such line, or a pull it cannot do"
                    ),
                ),
                libc::ENXIO => Error::new(
                    ErrorKind::Unsupported,
                    format!("{what}: this line cannot report edges (no interrupt) ({io}); choose another line"),
                ),
                _ => io_error(what, "gpio", io),
            }
        }
        (gpiocdev::Error::GpioChip(path, kind), None) => Error::new(
            ErrorKind::InvalidConfig,
            format!("{what}: {} {kind} (a GPIO chip is /dev/gpiochipN)", path.display()),
        ),
        (gpiocdev::Error::NoGpioChips(), None) => {
            Error::new(ErrorKind::NotFound, format!("{what}: this machine has no GPIO chips (/dev/gpiochip*)"))
        }
        (other, None) => Error::new(ErrorKind::Io, format!("{what}: {other}")),
    }
}

/// What `pivox devices` shows for a chip: its path, label, line count and named lines.
#[derive(Debug, Clone)]
pub struct ChipSummary {
    pub path: PathBuf,
    pub label: String,
    pub lines: u32,
    /// `(offset, name, consumer)` of each named line; the consumer is empty when it is free.
    pub named: Vec<(u32, String, String)>,
}

/// Every GPIO chip this user may open, with its named lines (empty if there are none).
pub fn chips() -> Vec<ChipSummary> {
    let Ok(paths) = gpiocdev::chip::chips() else { return Vec::new() };
    paths
        .into_iter()
        .filter_map(|path| {
            let chip = gpiocdev::Chip::from_path(&path).ok()?;
            let info = chip.info().ok()?;
            let named = (0..info.num_lines)
                .filter_map(|offset| chip.line_info(offset).ok())
                .filter(|line| !line.name.is_empty())
                .map(|line| (line.offset, line.name, line.consumer))
                .collect();
            Some(ChipSummary { path, label: info.label, lines: info.num_lines, named })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_named_or_given_by_chip_and_offset() {
        assert_eq!(parse_line("button.device", "GPIO17").unwrap(), LineName::Named("GPIO17".into()));
        assert_eq!(parse_line("button.device", " PA7 ").unwrap(), LineName::Named("PA7".into()));
        let by_offset = LineName::Offset { chip: "/dev/gpiochip0".into(), offset: 17 };
        assert_eq!(parse_line("button.device", "gpiochip0:17").unwrap(), by_offset);
        assert_eq!(parse_line("button.device", "/dev/gpiochip0:17").unwrap(), by_offset);
        assert_eq!(
            parse_line("led.device", "gpiochip4:3").unwrap(),
            LineName::Offset { chip: "/dev/gpiochip4".into(), offset: 3 }
        );
        assert_eq!(by_offset.to_string(), "line 17 of /dev/gpiochip0");
        assert_eq!(LineName::Named("GPIO17".into()).to_string(), "line GPIO17");
    }

    #[test]
    fn a_bad_line_is_one_clear_line() {
        for (bad, why) in [
            ("", "a line name such as GPIO17"),
            ("GPIO 17", "no spaces"),
            ("chip0:17", "the chip is gpiochipN"),
            ("gpiochip:17", "the chip is gpiochipN"),
            ("/dev/sda:1", "the chip is gpiochipN"),
            ("gpiochip0:", "the offset after the colon"),
            ("gpiochip0:-1", "the offset after the colon"),
            ("gpiochip0:x", "the offset after the colon"),
        ] {
            let err = parse_line("button.device", bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{bad}: {err}");
            let text = err.to_string();
            assert!(text.starts_with(&format!("button.device `{}`: ", bad.trim())), "{text}");
            assert!(text.contains(why), "{bad}: {text}");
            assert!(!text.contains('\n'), "{text}");
        }
    }

    #[test]
    fn a_line_that_is_not_there_says_so_without_panicking() {
        // This machine may have no GPIO chip at all (a build machine) or some (a board): either
        // way a made-up name is not found, with a one-line error.
        let spec = ButtonSpec {
            device: "PIVOX_NO_SUCH_LINE".into(),
            epoch: std::time::Instant::now(),
            pull: Pull::Up,
            active_low: true,
            debounce: Duration::from_millis(20),
        };
        let err = open_button(&spec).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        assert!(err.to_string().starts_with("button on line PIVOX_NO_SUCH_LINE: "), "{err}");
        let led = LedSpec {
            device: "gpiochip999:0".into(),
            active_low: false,
            count: 1,
            brightness: 1.0,
            probe: Default::default(),
        };
        let err = open_led(&led).err().unwrap();
        assert!(err.to_string().starts_with("LED on line 0 of /dev/gpiochip999: "), "{err}");
        assert!(!err.to_string().contains('\n'), "{err}");
    }

    #[test]
    fn os_errors_are_found_in_either_form() {
        let busy = std::io::Error::from_raw_os_error(libc::EBUSY);
        assert_eq!(os_error(&gpiocdev::Error::from(busy)), Some(libc::EBUSY));
        let text = gpiocdev::Error::InvalidArgument("uAPI GetLine returned: Invalid argument (os error 22)".into());
        assert_eq!(os_error(&text), Some(libc::EINVAL));
        assert_eq!(os_error(&gpiocdev::Error::NoGpioChips()), None);
        let mapped = cdev_error(
            "button on line GPIO17",
            &gpiocdev::Error::from(std::io::Error::from_raw_os_error(libc::EACCES)),
        );
        assert_eq!(mapped.kind(), ErrorKind::PermissionDenied, "{mapped}");
        assert!(mapped.to_string().contains("`gpio` group"), "{mapped}");
        let mapped =
            cdev_error("button on line GPIO17", &gpiocdev::Error::from(std::io::Error::from_raw_os_error(libc::EBUSY)));
        assert_eq!(mapped.kind(), ErrorKind::Busy, "{mapped}");
    }
}
