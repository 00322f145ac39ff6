//! Log output through the `log` facade: under systemd (JOURNAL_STREAM set) each line gets
//! the `<N>` priority prefix journald understands and no timestamp (the journal adds one);
//! on a terminal, seconds since start and the level. `PIVOX_LOG` (or `RUST_LOG`) filters,
//! e.g. `PIVOX_LOG=debug` or `PIVOX_LOG=pivox::link=trace`.
//!
//! tungstenite writes the whole HTTP request (bearer token included) and every frame's
//! payload (Home Assistant's auth message included) at trace level; it is capped at debug
//! whatever the filter says, so no setting can put a token in the journal (guarded by the
//! tests `a_scripted_turn_with_a_token_...` and `a_scripted_home_assistant_turn_...`).

use std::io::Write;
use std::time::Instant;

pub fn init() {
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let start = Instant::now();
    let filter = std::env::var("PIVOX_LOG").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_else(|_| "info".into());
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(&filter);
    // Only ever lower those modules: only a `trace` directive can reach the lines that leak.
    if filter.to_ascii_lowercase().contains("trace") {
        builder.filter_module("tungstenite", log::LevelFilter::Debug);
        builder.filter_module("tokio_tungstenite", log::LevelFilter::Debug);
    }
    let _ = builder
        .format(move |out, record| {
            if journald {
                let priority = match record.level() {
                    log::Level::Error => 3,
                    log::Level::Warn => 4,
                    log::Level::Info => 6,
                    log::Level::Debug | log::Level::Trace => 7,
                };
                writeln!(out, "<{priority}>{}", record.args())
            } else {
                let t = start.elapsed().as_secs_f64();
                writeln!(out, "[{t:8.3}s] {:<5} {}", record.level(), record.args())
            }
        })
        .try_init();
}
