//! The `pivox` command line: its subcommands and their options, parsed with lexopt (a few
//! KiB; clap was 130 KiB of the Raspberry Pi binary, issue 14). Every mistake is one line
//! naming the argument and what is expected, followed by a hint to `--help`.

use std::ffi::OsString;
use std::path::PathBuf;

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Invocation {
    /// `--help` (of the command or of one subcommand): the text to print.
    Help(&'static str),
    /// `--version`.
    Version,
    Command(Command),
}

#[derive(Debug, PartialEq)]
pub enum Command {
    Run {
        config: Option<PathBuf>,
        turns: Option<u32>,
        metrics: Option<PathBuf>,
    },
    CheckConfig {
        file: Option<PathBuf>,
        elsewhere: bool,
    },
    /// A development tool in `pivox-devtools`: its name there and its arguments, untouched.
    Forward {
        subcommand: &'static str,
        args: Vec<OsString>,
    },
    Devices,
    TestButton {
        config: Option<PathBuf>,
        count: Option<u32>,
    },
    TestAudio {
        config: Option<PathBuf>,
        seconds: f64,
    },
}

pub const HELP: &str = "\
Push-to-talk voice appliance for the Raspberry Pi

Usage: pivox <COMMAND>

Commands:
  run                  Run the daemon
  check-config         Check a config file and explain every problem
  devices              List sound devices, GPIO chips and SPI devices, with the names the config takes
  test-button          Print each press and release of the configured button, with timing (a wiring check)
  test-audio           Record from the configured microphone, play it back, report level and clipping
  serve                Run the pivox protocol v1 reference server [development tool: runs pivox-devtools]
  serve-homeassistant  Run a stand-in for Home Assistant's Assist API [development tool: runs pivox-devtools]
  demo                 One simulated turn against a local reference server [development tool: runs pivox-devtools]

Options:
  -h, --help     Print help (`pivox COMMAND --help` for a command's)
  -V, --version  Print version
";

const RUN_HELP: &str = "\
Run the daemon

Usage: pivox run [OPTIONS]

Options:
  -c, --config <FILE>    Config file [default: /boot/firmware/pivox.toml, then /etc/pivox/pivox.toml]
      --turns <N>        Exit after this many completed turns (for scripted runs)
      --metrics <FILE>   Append each turn's figures to this file as JSON lines
  -h, --help             Print help
";

const CHECK_CONFIG_HELP: &str = "\
Check a config file and explain every problem

Usage: pivox check-config [OPTIONS] [FILE]

Arguments:
  [FILE]  The config file [default: /boot/firmware/pivox.toml, then /etc/pivox/pivox.toml]

Options:
      --elsewhere  The config is for another machine (a Pi's, checked on the computer that builds
                   its image): do not look for the files it names (token_file, ca_file, a sim WAV)
  -h, --help       Print help
";

const DEVICES_HELP: &str = "\
List sound devices, GPIO chips and SPI devices, with the names the config takes

Usage: pivox devices
";

const TEST_BUTTON_HELP: &str = "\
Print each press and release of the configured button, with timing (a wiring check)

Usage: pivox test-button [OPTIONS]

Options:
  -c, --config <FILE>  Config file [default: as for `pivox run`]
      --count <N>      Stop after this many edges [default: run until Ctrl-C]
  -h, --help           Print help
";

const TEST_AUDIO_HELP: &str = "\
Record from the configured microphone, play it back, report level and clipping

Usage: pivox test-audio [OPTIONS]

Options:
  -c, --config <FILE>      Config file [default: as for `pivox run`]
      --seconds <SECONDS>  How long to record, 0.1 to 60 [default: 3]
  -h, --help               Print help
";

/// The development tools `pivox` forwards to `pivox-devtools`, with their arguments.
const FORWARDED: [&str; 3] = ["serve", "serve-homeassistant", "demo"];

/// Parses the arguments after the program's name. The error is one line.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Invocation, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let subcommand = match parser.next().map_err(|e| e.to_string())? {
        None => return Err("a command is expected (run, check-config, devices, test-button, test-audio)".into()),
        Some(Short('h') | Long("help")) => return Ok(Invocation::Help(HELP)),
        Some(Short('V') | Long("version")) => return Ok(Invocation::Version),
        Some(Value(name)) => name.into_string().map_err(|name| format!("unknown command {name:?}"))?,
        Some(other) => return Err(other.unexpected().to_string()),
    };
    if let Some(&forwarded) = FORWARDED.iter().find(|f| **f == subcommand) {
        let args = parser.raw_args().map_err(|e| e.to_string())?.collect();
        return Ok(Invocation::Command(Command::Forward { subcommand: forwarded, args }));
    }
    let help = match subcommand.as_str() {
        "run" => RUN_HELP,
        "check-config" => CHECK_CONFIG_HELP,
        "devices" => DEVICES_HELP,
        "test-button" => TEST_BUTTON_HELP,
        "test-audio" => TEST_AUDIO_HELP,
        other => {
            return Err(format!("unknown command `{other}` (run, check-config, devices, test-button, test-audio)"));
        }
    };
    let (mut config, mut file, mut metrics) = (None, None, None);
    let (mut turns, mut count, mut seconds, mut elsewhere) = (None, None, 3.0, false);
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match (subcommand.as_str(), arg) {
            (_, Short('h') | Long("help")) => return Ok(Invocation::Help(help)),
            ("run" | "test-button" | "test-audio", Short('c') | Long("config")) => {
                config = Some(PathBuf::from(parser.value().map_err(|e| e.to_string())?));
            }
            ("run", Long("turns")) => turns = Some(number(&mut parser, "--turns")?),
            ("run", Long("metrics")) => metrics = Some(PathBuf::from(parser.value().map_err(|e| e.to_string())?)),
            ("check-config", Long("elsewhere")) => elsewhere = true,
            ("check-config", Value(path)) if file.is_none() => file = Some(PathBuf::from(path)),
            ("test-button", Long("count")) => count = Some(number(&mut parser, "--count")?),
            ("test-audio", Long("seconds")) => {
                let text = parser.value().map_err(|e| e.to_string())?;
                seconds = parse_seconds(&text.to_string_lossy())?;
            }
            (_, arg) => return Err(format!("{} for `pivox {subcommand}`", arg.unexpected())),
        }
    }
    Ok(Invocation::Command(match subcommand.as_str() {
        "run" => Command::Run { config, turns, metrics },
        "check-config" => Command::CheckConfig { file, elsewhere },
        "devices" => Command::Devices,
        "test-button" => Command::TestButton { config, count },
        _ => Command::TestAudio { config, seconds },
    }))
}

/// The next value, as a whole number.
fn number(parser: &mut lexopt::Parser, option: &str) -> Result<u32, String> {
    let text = parser.value().map_err(|e| e.to_string())?;
    text.to_str()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| format!("invalid value {text:?} for {option}: a whole number is expected"))
}

/// A recording length: 0.1 to 60 seconds.
fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if (0.1..=60.0).contains(&s) => Ok(s),
        _ => Err(format!("invalid value `{text}` for --seconds: a number of seconds from 0.1 to 60 is expected")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Result<Invocation, String> {
        parse(args.iter().map(OsString::from))
    }

    fn command(args: &[&str]) -> Command {
        match parsed(args) {
            Ok(Invocation::Command(command)) => command,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn every_command_and_option_is_read() {
        assert_eq!(
            command(&["run", "-c", "a.toml", "--turns=3", "--metrics", "m.jsonl"]),
            Command::Run { config: Some("a.toml".into()), turns: Some(3), metrics: Some("m.jsonl".into()) }
        );
        assert_eq!(command(&["run"]), Command::Run { config: None, turns: None, metrics: None });
        assert_eq!(
            command(&["check-config", "--elsewhere", "p.toml"]),
            Command::CheckConfig { file: Some("p.toml".into()), elsewhere: true }
        );
        assert_eq!(command(&["check-config"]), Command::CheckConfig { file: None, elsewhere: false });
        assert_eq!(command(&["devices"]), Command::Devices);
        assert_eq!(
            command(&["test-button", "--config", "b.toml", "--count", "4"]),
            Command::TestButton { config: Some("b.toml".into()), count: Some(4) }
        );
        assert_eq!(command(&["test-audio", "--seconds", "1.5"]), Command::TestAudio { config: None, seconds: 1.5 });
        assert_eq!(command(&["test-audio"]), Command::TestAudio { config: None, seconds: 3.0 });
    }

    #[test]
    fn development_tools_get_their_arguments_untouched() {
        assert_eq!(
            command(&["serve", "--help", "--listen", "127.0.0.1:1"]),
            Command::Forward {
                subcommand: "serve",
                args: ["--help", "--listen", "127.0.0.1:1"].iter().map(OsString::from).collect()
            }
        );
        assert_eq!(command(&["demo"]), Command::Forward { subcommand: "demo", args: vec![] });
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parsed(&["--help"]), Ok(Invocation::Help(HELP)));
        assert_eq!(parsed(&["-V"]), Ok(Invocation::Version));
        assert_eq!(parsed(&["run", "-h"]), Ok(Invocation::Help(RUN_HELP)));
        assert_eq!(parsed(&["check-config", "--help"]), Ok(Invocation::Help(CHECK_CONFIG_HELP)));
    }

    #[test]
    fn mistakes_are_one_line_that_names_the_argument() {
        for (args, says) in [
            (&[][..], "a command is expected"),
            (&["start"][..], "unknown command `start`"),
            (&["run", "--turns", "many"][..], "invalid value \"many\" for --turns"),
            (&["run", "--turns"][..], "--turns"),
            (&["run", "--count", "2"][..], "--count"),
            (&["check-config", "a.toml", "b.toml"][..], "b.toml"),
            (&["test-audio", "--seconds", "600"][..], "from 0.1 to 60"),
            (&["devices", "now"][..], "now"),
            (&["--turns"][..], "--turns"),
        ] {
            let error = parsed(args).unwrap_err();
            assert!(error.contains(says) && !error.contains('\n'), "{args:?}: {error}");
        }
    }
}
