//! pivox: the daemon that turns a Raspberry Pi with a microphone, a speaker and a push
//! button into a voice appliance. The binary (`main.rs`) is a thin CLI over this library.
//! What a Pi never runs (the reference server, a stand-in Home Assistant, the demo, the
//! benchmark) is in `pivox-devtools` (devtools/), a crate on top of this one.

pub mod audio;
pub mod backoff;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod devices;
pub mod files;
pub mod link;
pub mod logging;
pub mod metrics;
pub mod playback;
pub mod repeats;
pub mod secret;
pub mod session;
pub mod settings;
pub mod supervisor;
pub mod text;
pub mod timers;
pub mod tools;
pub mod uplink;
