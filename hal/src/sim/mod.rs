//! Simulated devices: always compiled, selectable at run time with `backend = "sim"`.
//!
//! They stand in for hardware that cannot exist on a build machine (and for a quick try on
//! a laptop): a microphone that plays a WAV file (or what is written into a named pipe), a speaker that records what it played and
//! when, a scripted or Enter-driven button, and an LED that records its states. Speaker and
//! LED share their record through a probe the caller keeps, so a test can assert on it.

mod button;
mod led;
mod mic;
mod pipe_mic;
mod speaker;

pub use button::{ScriptedButton, StdinButton, parse_script};
pub use led::{LedProbe, SimLed};
pub use mic::WavMicrophone;
pub use pipe_mic::{PIPE_PREFIX, PipeMicrophone, check as pipe_mic_check};
pub use speaker::{Handover, SimSpeaker, SpeakerLog, SpeakerProbe, write_wav};

use crate::backend::{ButtonSpec, LedSpec, MicSpec, SpeakerSpec};
use crate::{Button, Led, Microphone, Result, Speaker};

pub fn open_microphone(spec: &MicSpec) -> Result<Box<dyn Microphone>> {
    if let Some(path) = spec.device.strip_prefix(PIPE_PREFIX) {
        return Ok(Box::new(PipeMicrophone::open(path, spec.sample_rate)?));
    }
    Ok(Box::new(WavMicrophone::open(spec)?))
}

pub fn open_speaker(spec: &SpeakerSpec) -> Result<Box<dyn Speaker>> {
    Ok(Box::new(SimSpeaker::open(spec)))
}

pub fn open_button(spec: &ButtonSpec) -> Result<Box<dyn Button>> {
    if spec.device == "stdin" {
        Ok(Box::new(StdinButton::open()))
    } else {
        Ok(Box::new(ScriptedButton::new(parse_script(&spec.device)?, spec.epoch)))
    }
}

pub fn open_led(spec: &LedSpec) -> Result<Box<dyn Led>> {
    Ok(Box::new(SimLed::new(spec.probe.clone())))
}
