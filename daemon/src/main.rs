//! The `pivox` command: the daemon and its tools. `serve`, `serve-homeassistant` and `demo`
//! are development tools in `pivox-devtools`, which is not part of the Raspberry Pi binary;
//! here they only forward to it (see [`forward`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pivox::config::{Config, DEFAULT_PATHS, Files};
use pivox::daemon::block_on;

#[derive(Parser)]
#[command(name = "pivox", version, about = "Push-to-talk voice appliance for the Raspberry Pi")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Run {
        /// Config file [default: /boot/firmware/pivox.toml, then /etc/pivox/pivox.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Exit after this many completed turns (for scripted runs).
        #[arg(long)]
        turns: Option<u32>,
        /// Append each turn's figures to this file as JSON lines.
        #[arg(long)]
        metrics: Option<PathBuf>,
    },
    /// Check a config file and explain every problem.
    CheckConfig {
        file: Option<PathBuf>,
        /// The config is for another machine (a Pi's, checked on the computer that builds its
        /// image): do not look for the files it names (token_file, ca_file, a sim WAV).
        #[arg(long)]
        elsewhere: bool,
    },
    /// Run the pivox protocol v1 reference server (echo, or a fixed WAV reply).
    /// [development tool: runs pivox-devtools]
    #[command(disable_help_flag = true)]
    Serve {
        /// Passed to `pivox-devtools serve` (`pivox serve --help` lists them).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Run a stand-in for Home Assistant's Assist API (for trying `kind = "homeassistant"`
    /// without a Home Assistant): every answer is the same recorded reply.
    /// [development tool: runs pivox-devtools]
    #[command(disable_help_flag = true)]
    ServeHomeassistant {
        /// Passed to `pivox-devtools serve-homeassistant`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// List sound devices, GPIO chips and SPI devices, with the names the config takes.
    Devices,
    /// Print each press and release of the configured button, with timing (a wiring check).
    TestButton {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Stop after this many edges [default: run until Ctrl-C].
        #[arg(long)]
        count: Option<u32>,
    },
    /// Record from the configured microphone, play it back, report level and clipping.
    TestAudio {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long, default_value_t = 3.0, value_parser = parse_seconds)]
        seconds: f64,
    },
    /// One simulated turn against a local reference server, with a timeline.
    /// [development tool: runs pivox-devtools]
    #[command(disable_help_flag = true)]
    Demo {
        /// Passed to `pivox-devtools demo`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

/// A recording length: 0.1 to 60 seconds.
fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if (0.1..=60.0).contains(&s) => Ok(s),
        _ => Err(format!("`{text}`: a number of seconds from 0.1 to 60 is expected")),
    }
}

fn main() -> ExitCode {
    pivox::logging::init();
    let result = match Cli::parse().command {
        Command::CheckConfig { file, elsewhere } => check_config(file.as_deref(), elsewhere),
        Command::Run { config, turns, metrics } => run(config.as_deref(), turns, metrics),
        Command::ServeHomeassistant { args } => forward("serve-homeassistant", args),
        Command::Serve { args } => forward("serve", args),
        Command::Devices => {
            print!("{}", pivox::tools::devices_report());
            Ok(())
        }
        Command::TestButton { config, count } => load(config.as_deref())
            .and_then(|config| pivox::tools::test_button(&config, count, &mut |line| println!("{line}"))),
        Command::TestAudio { config, seconds } => load(config.as_deref()).and_then(|config| {
            let check = pivox::tools::test_audio(&config, seconds, &mut |line| println!("{line}"))?;
            println!("{}", check.verdict());
            Ok(())
        }),
        Command::Demo { args } => forward("demo", args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One log line each: a config's problems come one per line.
            e.lines().for_each(|line| log::error!("{line}"));
            ExitCode::FAILURE
        }
    }
}

/// The daemon, on one thread ([`block_on`]). SIGHUP reads the config again and restarts the daemon with it; a config that
/// now has errors is reported and the one in use kept.
fn run(path: Option<&Path>, turns: Option<u32>, metrics: Option<PathBuf>) -> Result<(), String> {
    let mut config = load(path)?;
    block_on(async move {
        loop {
            let options = pivox::daemon::RunOptions { turns, metrics_out: metrics.clone(), ..Default::default() };
            if !pivox::daemon::run(config.clone(), options).await?.reload {
                return Ok(());
            }
            match load(path) {
                Ok(new) => {
                    log::info!("SIGHUP: config read again; starting with it");
                    config = new;
                }
                Err(e) => {
                    log::error!("SIGHUP: the config has errors, so the one in use is kept:");
                    e.lines().for_each(|line| log::error!("{line}"));
                }
            }
        }
    })
}

fn config_path(given: Option<&Path>) -> Result<PathBuf, String> {
    match given {
        Some(path) => Ok(path.to_path_buf()),
        None => DEFAULT_PATHS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or_else(|| format!("no config file given and none at {}", DEFAULT_PATHS.join(" or "))),
    }
}

fn load(given: Option<&Path>) -> Result<Config, String> {
    let loaded = Config::load(&config_path(given)?).map_err(|e| e.to_string())?;
    loaded.warnings.iter().for_each(|w| log::warn!("{w}"));
    Ok(loaded.config)
}

fn check_config(given: Option<&Path>, elsewhere: bool) -> Result<(), String> {
    let path = config_path(given)?;
    let files = if elsewhere { Files::Elsewhere } else { Files::Check };
    // Every problem is reported (the errors on stderr, one per line, by `main`).
    let loaded = Config::load_with(&path, files).map_err(|e| {
        e.warnings.iter().for_each(|w| println!("warning: {w}"));
        e.to_string()
    })?;
    loaded.warnings.iter().for_each(|w| println!("warning: {w}"));
    println!(
        "{}: OK (server {} via {}; microphone {}, speaker {}, button {}, LED {})",
        path.display(),
        pivox::text::shorten(&loaded.config.server.describe(), 2 * pivox::text::QUOTE_CHARS),
        loaded.config.server.kind(),
        loaded.config.microphone.backend,
        loaded.config.speaker.backend,
        loaded.config.button.backend,
        loaded.config.led.backend
    );
    Ok(())
}

/// The development tools' program, looked for next to this one, then on PATH.
const DEVTOOLS: &str = "pivox-devtools";

/// Runs `pivox-devtools SUBCOMMAND ARGS` in place of this process (exec), so that its output,
/// signals (Ctrl-C, SIGTERM) and exit code are the command's own. Returns only on failure.
fn forward(subcommand: &str, args: Vec<OsString>) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let Some(devtools) = find_devtools() else {
        return Err(format!(
            "`pivox {subcommand}` is a development tool and is not installed here (it is not part of the \
             Raspberry Pi binary): build it with `cargo build -p pivox-devtools` on a computer"
        ));
    };
    let error = std::process::Command::new(&devtools).arg(subcommand).args(args).exec();
    Err(format!("`pivox {subcommand}`: cannot run {}: {error}", devtools.display()))
}

/// `pivox-devtools` in the folder of the running executable (where cargo builds both), else
/// the first on PATH.
fn find_devtools() -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let beside = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.join(DEVTOOLS)));
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = std::env::split_paths(&path).filter(|dir| !dir.as_os_str().is_empty()).map(|dir| dir.join(DEVTOOLS));
    beside.into_iter().chain(on_path).find(|candidate| {
        std::fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}
