//! pivox: the daemon that turns a Raspberry Pi with a microphone, a speaker and a push
//! button into a voice appliance. The binary (`main.rs`) is a thin CLI over this library.

pub mod audio;
pub mod backoff;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod devices;
pub mod fake_ha;
pub mod files;
pub mod link;
pub mod logging;
pub mod metrics;
pub mod playback;
pub mod repeats;
pub mod secret;
pub mod server;
pub mod session;
pub mod settings;
pub mod supervisor;
pub mod text;
pub mod tools;
pub mod uplink;
