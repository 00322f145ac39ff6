//! pivox-devtools: everything a Raspberry Pi never runs, kept out of the `pivox` binary that
//! goes onto every Pi (issue 12). The pivox protocol v1 reference server, a stand-in for Home
//! Assistant's Assist API and a stand-in for HA as an ESPHome API client, the demo, signal comparison for the tests, and the benchmark
//! (`src/bin/pivox-bench`). The `pivox-devtools` binary (`main.rs`) runs the first three;
//! `pivox serve`, `pivox serve-homeassistant` and `pivox demo` forward to it.

pub mod compare;
pub mod demo;
pub mod fake_esphome;
pub mod fake_ha;
pub mod server;
