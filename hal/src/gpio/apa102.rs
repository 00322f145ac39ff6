//! APA102 ("DotStar") RGB LEDs on SPI: the pure frame encoder and the `apa102` backend.
//!
//! An APA102 chain takes, per update (datasheet framing):
//! - a start frame of 32 zero bits;
//! - one 32-bit frame per LED: `0b111` + a 5-bit global brightness, then blue, green, red;
//! - an end frame of at least n/2 more clock edges, because each LED forwards data with
//!   half a clock of delay: after the last LED's frame, the data for LED n still has n/2
//!   bits to travel. We send ceil(n/16) bytes of `0xFF` (n/2 bits, rounded up to bytes).
//!   Not the popular fixed 4 bytes of `0xFF`: those form a complete full-white frame, so a
//!   strip longer than `count` would light its next LED white at full power.
//!
//! The ReSpeaker 2-Mic Pi HAT has three APA102s on SPI0 (MOSI GPIO10, SCLK GPIO11), driven
//! by Seeed's examples through `/dev/spidev0.1` at 8 MHz. We clock at 4 MHz: a 3-LED frame
//! is 20 bytes, 40 µs, and the lower rate is kinder to long wires on a bare strip.

use std::time::Duration;

use rppal::spi::{Bus, Mode, SlaveSelect, Spi};

use super::animate::{AnimatedLed, Painter};
use super::{NOT_A_PI, Rgb, apa102_colors, io_error, is_raspberry_pi};
use crate::backend::LedSpec;
use crate::{Error, ErrorKind, LedState, Result};

/// SPI clock: well inside the APA102's range (it handles tens of MHz).
const CLOCK_HZ: u32 = 4_000_000;
/// Redraw period while animating: 25 frames a second is smooth for these patterns.
const TICK: Duration = Duration::from_millis(40);

/// The 5-bit global brightness field for a brightness from 0.0 to 1.0. Out-of-range values
/// are clamped, NaN is dark, and any positive brightness gives at least level 1.
pub fn brightness_bits(brightness: f32) -> u8 {
    if brightness.is_nan() || brightness <= 0.0 {
        return 0;
    }
    ((brightness.min(1.0) * 31.0).round() as u8).max(1)
}

/// Encodes one update of the chain into `out` (cleared first): start frame, one frame per
/// colour with the global brightness, end frame (see the module docs for its length).
pub fn apa102_frame(colors: &[Rgb], brightness: f32, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[0; 4]);
    let header = 0b1110_0000 | brightness_bits(brightness);
    for c in colors {
        out.extend_from_slice(&[header, c.b, c.g, c.r]);
    }
    out.resize(out.len() + colors.len().div_ceil(16), 0xFF);
}

/// Parses `/dev/spidevB.S` into rppal's bus and chip select.
pub fn parse_spi_device(device: &str) -> Result<(Bus, SlaveSelect)> {
    let invalid = || {
        Error::new(
            ErrorKind::InvalidConfig,
            format!("led.device `{device}`: an SPI device such as /dev/spidev0.1 is expected"),
        )
    };
    let (bus, select) =
        device.trim().strip_prefix("/dev/spidev").and_then(|s| s.split_once('.')).ok_or_else(invalid)?;
    let bus = match bus.parse::<u8>().map_err(|_| invalid())? {
        0 => Bus::Spi0,
        1 => Bus::Spi1,
        2 => Bus::Spi2,
        3 => Bus::Spi3,
        4 => Bus::Spi4,
        5 => Bus::Spi5,
        6 => Bus::Spi6,
        _ => return Err(invalid()),
    };
    let select = match select.parse::<u8>().map_err(|_| invalid())? {
        0 => SlaveSelect::Ss0,
        1 => SlaveSelect::Ss1,
        2 => SlaveSelect::Ss2,
        3 => SlaveSelect::Ss3,
        4 => SlaveSelect::Ss4,
        5 => SlaveSelect::Ss5,
        6 => SlaveSelect::Ss6,
        7 => SlaveSelect::Ss7,
        8 => SlaveSelect::Ss8,
        9 => SlaveSelect::Ss9,
        10 => SlaveSelect::Ss10,
        11 => SlaveSelect::Ss11,
        12 => SlaveSelect::Ss12,
        13 => SlaveSelect::Ss13,
        14 => SlaveSelect::Ss14,
        15 => SlaveSelect::Ss15,
        _ => return Err(invalid()),
    };
    Ok((bus, select))
}

/// Opens the strip and starts its animation thread.
pub(crate) fn open(spec: &LedSpec) -> Result<AnimatedLed> {
    let (bus, select) = parse_spi_device(&spec.device)?;
    if spec.count == 0 {
        return Err(Error::new(ErrorKind::InvalidConfig, "led.count: an apa102 strip needs at least one LED"));
    }
    let what = format!("APA102 LEDs on {}", spec.device.trim());
    let spi = Spi::new(bus, select, CLOCK_HZ, Mode::Mode0).map_err(|e| spi_error(&what, &spec.device, e))?;
    let painter = StripPainter {
        spi,
        what: what.clone(),
        brightness: spec.brightness,
        colors: vec![Rgb::OFF; spec.count],
        shown: None,
        frame: Vec::new(),
    };
    AnimatedLed::spawn(what, TICK, painter)
}

fn spi_error(what: &str, device: &str, e: rppal::spi::Error) -> Error {
    match e {
        rppal::spi::Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            if is_raspberry_pi() {
                Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "{what}: {device} does not exist; enable SPI (sudo raspi-config → Interface Options → SPI, or dtparam=spi=on in /boot/firmware/config.txt) and reboot"
                    ),
                )
            } else {
                Error::new(ErrorKind::Unsupported, format!("{what}: {NOT_A_PI}"))
            }
        }
        rppal::spi::Error::Io(io) => io_error(what, "spi", io),
        other => Error::new(ErrorKind::InvalidConfig, format!("{what}: {other}")),
    }
}

/// Paints the strip from [`apa102_colors`]; sends a frame only when the colours change.
struct StripPainter {
    spi: Spi,
    what: String,
    brightness: f32,
    colors: Vec<Rgb>,
    shown: Option<Vec<Rgb>>,
    frame: Vec<u8>,
}

impl Painter for StripPainter {
    fn paint(&mut self, state: LedState, elapsed: Duration) -> Result<()> {
        apa102_colors(state, elapsed, &mut self.colors);
        if self.shown.as_ref() == Some(&self.colors) {
            return Ok(());
        }
        apa102_frame(&self.colors, self.brightness, &mut self.frame);
        match self.spi.write(&self.frame) {
            Ok(n) if n == self.frame.len() => {}
            Ok(n) => {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("{}: SPI took {n} of {} bytes", self.what, self.frame.len()),
                ));
            }
            Err(rppal::spi::Error::Io(io)) => return Err(io_error(&self.what, "spi", io)),
            Err(e) => return Err(Error::new(ErrorKind::Io, format!("{}: {e}", self.what))),
        }
        self.shown = Some(self.colors.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_bytes_for_three_known_leds() {
        let mut out = vec![9; 50]; // Stale content must go.
        let colors = [Rgb::new(255, 0, 0), Rgb::new(0, 128, 0), Rgb::new(1, 2, 3)];
        apa102_frame(&colors, 0.5, &mut out);
        #[rustfmt::skip]
        let expected = [
            0x00, 0x00, 0x00, 0x00, // start frame
            0xF0, 0x00, 0x00, 0xFF, // 0b111 + brightness 16 (0.5 × 31 = 15.5, rounded), B, G, R
            0xF0, 0x00, 0x80, 0x00,
            0xF0, 0x03, 0x02, 0x01,
            0xFF,                   // end frame: ceil(3/16) = 1 byte, 8 clocks ≥ 3/2
        ];
        assert_eq!(out, expected);
    }

    #[test]
    fn end_frame_grows_with_the_chain() {
        let mut out = Vec::new();
        for (n, end) in [(0, 0), (1, 1), (16, 1), (17, 2), (32, 2), (33, 3)] {
            apa102_frame(&vec![Rgb::OFF; n], 1.0, &mut out);
            assert_eq!(out.len(), 4 + 4 * n + end, "{n} LEDs");
            assert!(out[4 + 4 * n..].iter().all(|b| *b == 0xFF));
        }
    }

    #[test]
    fn brightness_is_clamped_to_five_bits() {
        assert_eq!(brightness_bits(1.0), 31);
        assert_eq!(brightness_bits(7.5), 31);
        assert_eq!(brightness_bits(0.0), 0);
        assert_eq!(brightness_bits(-0.3), 0);
        assert_eq!(brightness_bits(f32::NAN), 0);
        assert_eq!(brightness_bits(0.001), 1, "dim, not dark");
        assert_eq!(brightness_bits(0.5), 16);
        let mut out = Vec::new();
        apa102_frame(&[Rgb::new(1, 1, 1)], 3.0, &mut out);
        assert_eq!(out[4], 0xFF);
        apa102_frame(&[Rgb::new(1, 1, 1)], -1.0, &mut out);
        assert_eq!(out[4], 0xE0);
    }

    #[test]
    fn spi_device_paths_are_parsed() {
        assert!(matches!(parse_spi_device("/dev/spidev0.1"), Ok((Bus::Spi0, SlaveSelect::Ss1))));
        assert!(matches!(parse_spi_device("/dev/spidev6.15"), Ok((Bus::Spi6, SlaveSelect::Ss15))));
        for bad in ["", "17", "/dev/spidev0", "/dev/spidev7.0", "/dev/spidev0.16", "/dev/spidevx.1", "spidev0.1"] {
            let err = parse_spi_device(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidConfig);
            assert!(err.to_string().contains("/dev/spidev0.1 is expected"), "{err}");
        }
    }

    #[test]
    fn an_empty_strip_is_a_config_error() {
        let spec = LedSpec {
            device: "/dev/spidev0.1".into(),
            active_low: false,
            count: 0,
            brightness: 1.0,
            probe: Default::default(),
        };
        assert_eq!(open(&spec).err().map(|e| e.kind()), Some(ErrorKind::InvalidConfig));
    }
}
