//! The `pivox` command: the daemon and its tools. `serve`, `serve-homeassistant` and `demo`
//! are development tools in `pivox-devtools`, which is not part of the Raspberry Pi binary;
//! here they only forward to it (see [`forward`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use pivox::cli::{Command, Invocation};
use pivox::config::{Config, DEFAULT_PATHS, Files};
use pivox::daemon::block_on;

fn main() -> ExitCode {
    pivox::logging::init();
    let command = match pivox::cli::parse(std::env::args_os().skip(1)) {
        Ok(Invocation::Command(command)) => command,
        Ok(Invocation::Help(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Version) => {
            println!("pivox {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e} (`pivox --help` lists the commands and options)");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::CheckConfig { file, elsewhere } => check_config(file.as_deref(), elsewhere),
        Command::Run { config, turns, metrics } => run(config.as_deref(), turns, metrics),
        Command::Forward { subcommand, args } => forward(subcommand, args),
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
