//! Log output through the `log` facade: under systemd (JOURNAL_STREAM set) each line gets
//! the `<N>` priority prefix journald understands and no timestamp (the journal adds one);
//! on a terminal, seconds since start and the level. `PIVOX_LOG` (or `RUST_LOG`) filters,
//! e.g. `PIVOX_LOG=debug` or `PIVOX_LOG=pivox::link=trace`.
//!
//! Two kinds of library lines are kept out whatever the filter says, by [`Guarded`]:
//! - tungstenite writes the whole HTTP request (bearer token included) and every frame's
//!   payload (Home Assistant's auth message included) at trace level. Its trace lines are
//!   dropped for every target under `tungstenite` and `tokio_tungstenite`, so no filter —
//!   not even `tungstenite::handshake=trace` — can put a token in the journal (guarded by
//!   `no_filter_lets_tungstenite_trace_through` and the fault suite's targeted-filter runs).
//! - symphonia (the reply decoder) logs its own warnings and errors, such as "skipped 1103
//!   bytes of junk" for the ID3 tag in front of every Home Assistant MP3. pivox explains a
//!   reply it cannot play in its own words, so the decoder's lines are shown only when
//!   debug is asked for.

use std::io::Write;
use std::time::Instant;

use log::{Level, Log, Metadata, Record};

pub fn init() {
    let filter = std::env::var("PIVOX_LOG").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_else(|_| "info".into());
    let logger = Guarded(build(&filter));
    let max = logger.0.filter();
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(max);
    }
}

fn build(filter: &str) -> env_logger::Logger {
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let start = Instant::now();
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(filter);
    builder
        .format(move |out, record| {
            if journald {
                let priority = match record.level() {
                    Level::Error => 3,
                    Level::Warn => 4,
                    Level::Info => 6,
                    Level::Debug | Level::Trace => 7,
                };
                writeln!(out, "<{priority}>{}", record.args())
            } else {
                let t = start.elapsed().as_secs_f64();
                writeln!(out, "[{t:8.3}s] {:<5} {}", record.level(), record.args())
            }
        })
        .build()
}

/// The user's filter, with the two exceptions in the module comment.
pub struct Guarded<L>(pub L);

impl<L: Log> Guarded<L> {
    fn allows(&self, metadata: &Metadata) -> bool {
        let target = metadata.target();
        if metadata.level() == Level::Trace
            && (in_crate(target, "tungstenite") || in_crate(target, "tokio_tungstenite"))
        {
            return false;
        }
        // symphonia is split into crates: symphonia_core, symphonia_bundle_mp3, ...
        if target.starts_with("symphonia") {
            // Shown as debug detail: only when the filter lets debug through for that target.
            let as_debug = Metadata::builder().level(Level::Debug).target(target).build();
            return self.0.enabled(&as_debug) && self.0.enabled(metadata);
        }
        self.0.enabled(metadata)
    }
}

/// Whether `target` is the crate `name` or a module inside it.
fn in_crate(target: &str, name: &str) -> bool {
    target.strip_prefix(name).is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

impl<L: Log> Log for Guarded<L> {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.allows(metadata)
    }

    fn log(&self, record: &Record) {
        if self.allows(record.metadata()) {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records what reaches it; enabled for everything the inner filter allows.
    struct Recorder(env_logger::Logger, Mutex<Vec<String>>);

    impl Log for Recorder {
        fn enabled(&self, metadata: &Metadata) -> bool {
            self.0.enabled(metadata)
        }
        fn log(&self, record: &Record) {
            self.1.lock().unwrap().push(format!("{} {}", record.target(), record.args()));
        }
        fn flush(&self) {}
    }

    fn logged(filter: &str, lines: &[(&str, Level)]) -> Vec<String> {
        let logger = Guarded(Recorder(build(filter), Mutex::new(Vec::new())));
        for (target, level) in lines {
            let args = format_args!("line");
            let record = Record::builder().target(target).level(*level).args(args).build();
            logger.log(&record);
        }
        logger.0.1.into_inner().unwrap()
    }

    #[test]
    fn no_filter_lets_tungstenite_trace_through() {
        let leaky = [("tungstenite::handshake::client", Level::Trace), ("tungstenite::protocol", Level::Trace)];
        for filter in ["trace", "tungstenite=trace", "tungstenite::handshake=trace", "tokio_tungstenite=trace,info"] {
            assert!(logged(filter, &leaky).is_empty(), "{filter}");
        }
        assert_eq!(logged("tungstenite=debug", &[("tungstenite::protocol", Level::Debug)]).len(), 1);
    }

    #[test]
    fn symphonia_lines_only_with_debug() {
        let lines = [("symphonia_bundle_mp3::demuxer", Level::Warn), ("symphonia_core::probe", Level::Error)];
        assert!(logged("info", &lines).is_empty());
        assert!(logged("warn", &lines).is_empty());
        assert_eq!(logged("debug", &lines).len(), 2);
        assert_eq!(logged("info,symphonia_bundle_mp3=debug", &lines).len(), 1);
        assert_eq!(logged("info", &[("pivox::link", Level::Warn)]).len(), 1);
    }
}
