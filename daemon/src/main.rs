//! The `pivox` command: the daemon, its tools, the reference server and the demo.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use pivox::audio::codec::Codec;
use pivox::config::{Config, DEFAULT_PATHS, Files, Secret};
use pivox::server::{Reply, ServerOptions};

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
    Serve {
        #[arg(long, default_value = "127.0.0.1:8765")]
        listen: SocketAddr,
        /// Reply with this 16 kHz mono WAV instead of echoing the utterance.
        #[arg(long)]
        reply_wav: Option<PathBuf>,
        /// Accepted codecs, preferred first.
        #[arg(long, value_delimiter = ',', default_value = "opus,pcm")]
        codecs: Vec<Codec>,
        /// Require this bearer token (read from the file).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Save each utterance as turn-N.wav in this folder.
        #[arg(long)]
        save_dir: Option<PathBuf>,
    },
    /// Run a stand-in for Home Assistant's Assist API (for trying `kind = "homeassistant"`
    /// without a Home Assistant): every answer is the same recorded reply.
    ServeHomeassistant {
        #[arg(long, default_value = "127.0.0.1:8123")]
        listen: SocketAddr,
        /// The access token clients must present (read from the file).
        #[arg(long)]
        token_file: PathBuf,
        /// The spoken reply: an MP3, WAV, FLAC or Ogg Vorbis file.
        #[arg(long)]
        reply: PathBuf,
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
    Demo {
        /// Where to write the played reply.
        #[arg(long, default_value = "target/demo/reply.wav")]
        out: PathBuf,
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
        Command::ServeHomeassistant { listen, token_file, reply } => {
            fake_ha_options(listen, &token_file, &reply).and_then(|options| block_on(serve_homeassistant(options)))
        }
        Command::Serve { listen, reply_wav, codecs, token_file, save_dir } => {
            serve_options(listen, reply_wav, codecs, token_file, save_dir).and_then(|options| block_on(serve(options)))
        }
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
        Command::Demo { out } => block_on(async move { pivox::demo::run(&out).await }),
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

/// The control plane needs one thread: a current-thread runtime (enough on a Pi Zero 2 W).
/// The daemon. SIGHUP reads the config again and restarts the daemon with it; a config that
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

fn block_on<F: std::future::Future<Output = Result<(), String>>>(future: F) -> Result<(), String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?
        .block_on(future)
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

fn serve_options(
    listen: SocketAddr,
    reply_wav: Option<PathBuf>,
    codecs: Vec<Codec>,
    token_file: Option<PathBuf>,
    save_dir: Option<PathBuf>,
) -> Result<ServerOptions, String> {
    let reply = match reply_wav {
        None => Reply::Echo,
        Some(path) => {
            let reader = hound::WavReader::open(&path).map_err(|e| format!("--reply-wav {}: {e}", path.display()))?;
            let spec = reader.spec();
            if (spec.channels, spec.sample_rate, spec.bits_per_sample) != (1, 16_000, 16) {
                return Err(format!(
                    "--reply-wav {}: must be 16 kHz mono 16-bit (sox IN.wav -r 16000 -c 1 -b 16 OUT.wav)",
                    path.display()
                ));
            }
            let samples = reader
                .into_samples::<i16>()
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("--reply-wav {}: {e}", path.display()))?;
            Reply::Fixed(Arc::new(samples))
        }
    };
    let token = match token_file {
        None => None,
        Some(path) => Some(Secret::new(
            std::fs::read_to_string(&path)
                .map_err(|e| format!("--token-file {}: {e}", path.display()))?
                .trim()
                .to_string(),
        )),
    };
    if let Some(dir) = &save_dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("--save-dir {}: {e}", dir.display()))?;
    }
    Ok(ServerOptions { listen, reply, codecs, token, save_dir })
}

fn fake_ha_options(
    listen: SocketAddr,
    token_file: &std::path::Path,
    reply: &std::path::Path,
) -> Result<pivox::fake_ha::FakeHaOptions, String> {
    let token = pivox::config::read_token_file(token_file).map_err(|e| format!("--token-file: {e}"))?;
    let bytes = std::fs::read(reply).map_err(|e| format!("--reply {}: {e}", reply.display()))?;
    // Refuse a file pivox itself could not play, before any client asks for it.
    pivox::audio::media::decode_all(bytes.clone(), None).map_err(|e| format!("--reply {}: {e}", reply.display()))?;
    let mime = match reply.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("wav") => "audio/wav",
        Some("flac") => "audio/flac",
        Some("ogg" | "oga") => "audio/ogg",
        _ => "audio/mpeg",
    };
    let mut options = pivox::fake_ha::FakeHaOptions::new(listen, token.expose(), bytes);
    options.reply_mime = mime.into();
    Ok(options)
}

async fn serve_homeassistant(options: pivox::fake_ha::FakeHaOptions) -> Result<(), String> {
    let server = pivox::fake_ha::start(options).await.map_err(|e| format!("cannot listen: {e}"))?;
    log::info!("fake Home Assistant listening on {}", server.url());
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    let report = server.report();
    for violation in &report.violations {
        log::warn!("client broke a rule: {violation}");
    }
    server.stop().await;
    Ok(())
}

async fn serve(options: ServerOptions) -> Result<(), String> {
    let server = pivox::server::start(options).await.map_err(|e| format!("cannot listen: {e}"))?;
    log::info!("reference server listening on ws://{}/", server.addr);
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    server.kill().await;
    Ok(())
}
