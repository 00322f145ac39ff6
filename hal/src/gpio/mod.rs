//! GPIO and SPI backends: the push-to-talk button and a single status LED on a Raspberry Pi's
//! BCM pin through the `rppal` crate (`gpio`), the same on any Linux board's GPIO character
//! device through `gpiocdev` (`cdev.rs`), and a strip of APA102 RGB LEDs on SPI (`apa102`, e.g.
//! the three LEDs of the ReSpeaker 2-Mic Pi HAT).
//!
//! `gpio` pins are BCM GPIO numbers (the `GPIO17` names on pinout diagrams), not header
//! positions; `gpiocdev` lines are those names themselves, or `gpiochipN:OFFSET`.
//!
//! Wiring:
//! - Button: between the pin and ground, with `pull = "up"` and `active_low = true` (the
//!   defaults). The internal pull-up holds the pin high; pressing pulls it low. A button to
//!   3.3 V instead needs `pull = "down"` and `active_low = false`. The ReSpeaker 2-Mic HAT's
//!   button is on GPIO17, wired to ground.
//! - LED: pin → resistor (220–470 Ω) → LED anode, cathode to ground (`active_low = false`);
//!   or LED from 3.3 V to the pin (`active_low = true`). A GPIO pin gives a few mA at most.
//! - APA102: data on MOSI (GPIO10) and clock on SCLK (GPIO11); the device path names the SPI
//!   bus and chip select, `/dev/spidev0.1` on the ReSpeaker 2-Mic HAT. APA102s ignore chip
//!   select, so any free one works on a bare strip.
//!
//! The pure cores — [`Debouncer`], the LED patterns and the APA102 encoder — carry the logic
//! and are tested without hardware; the rest is thin glue around `rppal`.
//!
//! # Troubleshooting
//! - "GPIO needs a Raspberry Pi": `rppal` reads the model from `/proc/cpuinfo` and the
//!   device tree and refuses to touch registers anywhere else. Use `backend = "sim"`.
//! - Permission denied on `/dev/gpiomem` or `/dev/gpiochip0`: add the user to the `gpio`
//!   group (`sudo usermod -aG gpio $USER`, then log in again). For SPI it is the `spi` group.
//! - `/dev/spidev0.1` not found: enable SPI (`sudo raspi-config` → Interface Options → SPI,
//!   or `dtparam=spi=on` in `/boot/firmware/config.txt`) and reboot.
//! - "already in use": another program (or a kernel overlay such as `gpio-key`) owns the pin.

mod animate;
mod apa102;
mod button;
pub mod cdev;
mod debounce;
mod pattern;

pub use animate::AnimatedLed;
pub use apa102::{apa102_frame, brightness_bits, parse_spi_device};
pub use button::{DebouncedButton, EdgeSource, GpioButton, RppalLine};
pub use debounce::{Debouncer, EventClock};
pub use pattern::{Rgb, apa102_colors, gpio_level, is_animated};

use std::time::Duration;

use rppal::gpio::{Gpio, Level, OutputPin};

use crate::backend::{ButtonSpec, LedSpec};
use crate::{Button, Error, ErrorKind, Led, LedState, Result};

/// What opening any GPIO device on a machine that is not a Raspberry Pi says.
pub const NOT_A_PI: &str =
    "GPIO needs a Raspberry Pi (this machine is not one); use backend = \"sim\" to try pivox without one";

/// Opens the push-to-talk button on the BCM pin named by `spec.device`.
pub fn open_button(spec: &ButtonSpec) -> Result<Box<dyn Button>> {
    Ok(Box::new(GpioButton::new(RppalLine::open(spec)?, spec)?))
}

/// Opens a single status LED on the BCM pin named by `spec.device`.
pub fn open_led(spec: &LedSpec) -> Result<Box<dyn Led>> {
    let number = parse_pin("led.device", &spec.device)?;
    let what = format!("LED on GPIO {number}");
    let pin = Gpio::new().and_then(|gpio| gpio.get(number)).map_err(|e| gpio_error(&what, e))?;
    // Start dark: the level that keeps the LED off.
    let pin = if spec.active_low { pin.into_output_high() } else { pin.into_output_low() };
    let painter = PinPainter { pin, active_low: spec.active_low, lit: Some(false) };
    Ok(Box::new(AnimatedLed::spawn(what, GPIO_TICK, painter)?))
}

/// Opens a strip of `spec.count` APA102 LEDs on the SPI device named by `spec.device`.
pub fn open_apa102(spec: &LedSpec) -> Result<Box<dyn Led>> {
    Ok(Box::new(apa102::open(spec)?))
}

/// How often a blinking GPIO LED is recomputed: well below the shortest on-time (100 ms).
const GPIO_TICK: Duration = Duration::from_millis(20);

/// Drives one GPIO output from [`gpio_level`]; writes the pin only when the level changes.
struct PinPainter {
    pin: OutputPin,
    active_low: bool,
    lit: Option<bool>,
}

impl animate::Painter for PinPainter {
    fn paint(&mut self, state: LedState, elapsed: Duration) -> Result<()> {
        let on = gpio_level(state, elapsed);
        if self.lit != Some(on) {
            self.pin.write(if on != self.active_low { Level::High } else { Level::Low });
            self.lit = Some(on);
        }
        Ok(())
    }
}

/// Parses a BCM pin number from the config field `field` (e.g. `button.device`).
pub fn parse_pin(field: &str, device: &str) -> Result<u8> {
    match device.trim().parse::<u8>() {
        Ok(pin) if pin <= 27 => Ok(pin),
        _ => {
            Err(Error::new(ErrorKind::InvalidConfig, format!("{field} `{device}`: a BCM pin number 0-27 is expected")))
        }
    }
}

/// Whether `rppal` recognises this machine as a Raspberry Pi.
pub fn is_raspberry_pi() -> bool {
    rppal::system::DeviceInfo::new().is_ok()
}

/// Maps an `rppal` GPIO error to a one-line [`Error`] that says what to do; `what` names the
/// device, e.g. "button on GPIO 17".
pub(crate) fn gpio_error(what: &str, e: rppal::gpio::Error) -> Error {
    use rppal::gpio::Error as E;
    match e {
        E::UnknownModel => Error::new(ErrorKind::Unsupported, format!("{what}: {NOT_A_PI}")),
        E::PinUsed(pin) => Error::new(ErrorKind::Busy, format!("{what}: GPIO {pin} is already in use by pivox")),
        E::PinNotAvailable(pin) => {
            Error::new(ErrorKind::InvalidConfig, format!("{what}: this Raspberry Pi has no GPIO {pin}"))
        }
        E::PermissionDenied(path) => Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{what}: permission denied on {path}; add the user to the `gpio` group (sudo usermod -aG gpio $USER) and log in again"
            ),
        ),
        E::Io(io) => io_error(what, "gpio", io),
        E::ThreadPanic => Error::new(ErrorKind::Io, format!("{what}: the rppal interrupt thread panicked")),
    }
}

/// Maps an I/O error from a GPIO or SPI device node; `group` owns that node on Raspberry Pi OS.
pub(crate) fn io_error(what: &str, group: &str, io: std::io::Error) -> Error {
    use std::io::ErrorKind as Io;
    match io.kind() {
        Io::PermissionDenied => Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{what}: permission denied ({io}); add the user to the `{group}` group (sudo usermod -aG {group} $USER) and log in again"
            ),
        ),
        Io::ResourceBusy => {
            Error::new(ErrorKind::Busy, format!("{what}: the pin is held by another program or kernel driver ({io})"))
        }
        Io::NotFound if group == "gpio" => Error::new(
            ErrorKind::NotFound,
            format!("{what}: no GPIO device ({io}); Raspberry Pi OS provides /dev/gpiomem and /dev/gpiochip0"),
        ),
        _ => {
            let e = Error::from(io);
            Error::new(e.kind(), format!("{what}: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::backend::Pull;

    fn button_spec(device: &str) -> ButtonSpec {
        ButtonSpec {
            device: device.into(),
            epoch: Instant::now(),
            pull: Pull::Up,
            active_low: true,
            debounce: Duration::from_millis(20),
        }
    }

    fn led_spec(device: &str) -> LedSpec {
        LedSpec { device: device.into(), active_low: false, count: 3, brightness: 0.5, probe: Default::default() }
    }

    #[test]
    fn pin_numbers_are_parsed_with_a_clear_error() {
        assert_eq!(parse_pin("button.device", "17").unwrap(), 17);
        assert_eq!(parse_pin("button.device", " 0 ").unwrap(), 0);
        for bad in ["x", "28", "-1", "", "GPIO17", "256"] {
            let err = parse_pin("button.device", bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidConfig);
            assert_eq!(err.to_string(), format!("button.device `{bad}`: a BCM pin number 0-27 is expected"));
        }
    }

    #[test]
    fn bad_pin_is_reported_before_touching_hardware() {
        let err = open_button(&button_spec("stdin")).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
        let err = open_led(&led_spec("99")).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    }

    #[test]
    fn opening_gpio_off_a_pi_says_so_and_does_not_panic() {
        if is_raspberry_pi() {
            return; // On a Pi the pins may really open; this test is about other machines.
        }
        for err in [open_button(&button_spec("17")).err().unwrap(), open_led(&led_spec("17")).err().unwrap()] {
            assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
            assert!(err.to_string().contains(NOT_A_PI), "{err}");
            assert!(!err.to_string().contains('\n'), "one line: {err}");
        }
        let err = open_apa102(&led_spec("/dev/spidev0.1")).err().unwrap();
        assert!(matches!(err.kind(), ErrorKind::Unsupported), "{err}");
        assert!(err.to_string().contains(NOT_A_PI), "{err}");
    }

    #[test]
    fn rppal_errors_map_to_kinds() {
        use rppal::gpio::Error as E;
        let cases = [
            (E::UnknownModel, ErrorKind::Unsupported),
            (E::PinUsed(17), ErrorKind::Busy),
            (E::PinNotAvailable(60), ErrorKind::InvalidConfig),
            (E::PermissionDenied("/dev/gpiomem".into()), ErrorKind::PermissionDenied),
            (E::Io(std::io::Error::from(std::io::ErrorKind::NotFound)), ErrorKind::NotFound),
            (E::Io(std::io::Error::from_raw_os_error(13)), ErrorKind::PermissionDenied),
            (E::Io(std::io::Error::from_raw_os_error(16)), ErrorKind::Busy),
            (E::ThreadPanic, ErrorKind::Io),
        ];
        for (e, kind) in cases {
            let mapped = gpio_error("button on GPIO 17", e);
            assert_eq!(mapped.kind(), kind, "{mapped}");
            assert!(mapped.to_string().starts_with("button on GPIO 17: "), "{mapped}");
        }
        let denied = gpio_error("LED", E::PermissionDenied("/dev/gpiochip0".into())).to_string();
        assert!(denied.contains("gpio` group") && denied.contains("/dev/gpiochip0"), "{denied}");
    }
}
