//! The `pivox-devtools` command: the reference server, the stand-in Home Assistant and the
//! demo. `pivox serve`, `pivox serve-homeassistant` and `pivox demo` run it with their
//! arguments unchanged, so both spellings take the same flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use pivox::audio::codec::Codec;
use pivox::daemon::block_on;
use pivox::secret::read_token_file;
use pivox_devtools::fake_ha::{self, FakeHaOptions};
use pivox_devtools::server::{self, Reply, ServerOptions};
use pivox_hal::sim::WavMicrophone;

#[derive(Parser)]
#[command(
    name = "pivox-devtools",
    version,
    about = "pivox development tools: the reference server, a stand-in Home Assistant and the demo"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    /// Act as Home Assistant connecting to a pivox with `kind = "esphome"`: greet it, answer
    /// every run with a recorded reply, and exit when pivox hangs up (for trying the ESPHome link
    /// without a Home Assistant, and for the aarch64 check).
    EsphomeClient {
        /// The pivox to connect to (it is waited for up to --wait seconds).
        #[arg(long, default_value = "127.0.0.1:6053")]
        device: SocketAddr,
        /// The device's encryption key (base64), when it has one.
        #[arg(long)]
        key: Option<String>,
        /// The spoken reply: an MP3, WAV, FLAC or Ogg Vorbis file.
        #[arg(long)]
        reply: PathBuf,
        #[arg(long, default_value_t = 10)]
        wait: u64,
        /// Fail unless at least this many runs were answered.
        #[arg(long, default_value_t = 1)]
        runs: usize,
    },
    /// One simulated turn against a local reference server, with a timeline.
    Demo {
        /// Where to write the played reply.
        #[arg(long, default_value = "target/demo/reply.wav")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    pivox::logging::init();
    let result = match Cli::parse().command {
        Command::ServeHomeassistant { listen, token_file, reply } => {
            fake_ha_options(listen, &token_file, &reply).and_then(|options| block_on(serve_homeassistant(options)))
        }
        Command::Serve { listen, reply_wav, codecs, token_file, save_dir } => {
            serve_options(listen, reply_wav, codecs, token_file, save_dir).and_then(|options| block_on(serve(options)))
        }
        Command::EsphomeClient { device, key, reply, wait, runs } => {
            block_on(esphome_client(device, key, reply, std::time::Duration::from_secs(wait), runs))
        }
        Command::Demo { out } => block_on(async move { pivox_devtools::demo::run(&out).await }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            e.lines().for_each(|line| log::error!("{line}"));
            ExitCode::FAILURE
        }
    }
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
            // Read as the sim microphone reads its WAV: bounded, 16 kHz mono 16-bit, complete.
            let shown = path.display().to_string();
            let bytes = pivox::files::read_bounded(&path, WavMicrophone::MAX_FILE_BYTES)
                .map_err(|e| format!("--reply-wav {shown}: {e}"))?;
            let samples = WavMicrophone::decode(&bytes, &shown, pivox::audio::CODEC_RATE)
                .map_err(|e| format!("--reply-wav: {e}"))?;
            Reply::Fixed(Arc::new(samples))
        }
    };
    let token = match token_file {
        None => None,
        Some(path) => Some(read_token_file(&path).map_err(|e| format!("--token-file: {e}"))?),
    };
    if let Some(dir) = &save_dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("--save-dir {}: {e}", dir.display()))?;
    }
    Ok(ServerOptions { listen, reply, codecs, token, save_dir })
}

fn fake_ha_options(listen: SocketAddr, token_file: &Path, reply: &Path) -> Result<FakeHaOptions, String> {
    let token = read_token_file(token_file).map_err(|e| format!("--token-file: {e}"))?;
    let bytes = std::fs::read(reply).map_err(|e| format!("--reply {}: {e}", reply.display()))?;
    // Refuse a file pivox itself could not play, before any client asks for it.
    pivox::audio::media::decode_all(bytes.clone(), None).map_err(|e| format!("--reply {}: {e}", reply.display()))?;
    let mime = match reply.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("wav") => "audio/wav",
        Some("flac") => "audio/flac",
        Some("ogg" | "oga") => "audio/ogg",
        _ => "audio/mpeg",
    };
    let mut options = FakeHaOptions::new(listen, token.expose(), bytes);
    options.reply_mime = mime.into();
    Ok(options)
}

async fn serve_homeassistant(options: FakeHaOptions) -> Result<(), String> {
    let server = fake_ha::start(options).await.map_err(|e| format!("cannot listen: {e}"))?;
    log::info!("fake Home Assistant listening on {}", server.url());
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    let report = server.report();
    for violation in &report.violations {
        log::warn!("client broke a rule: {violation}");
    }
    server.stop().await;
    Ok(())
}

async fn esphome_client(
    device: SocketAddr,
    key: Option<String>,
    reply: PathBuf,
    wait: std::time::Duration,
    at_least: usize,
) -> Result<(), String> {
    let key =
        key.map(|k| pivox::link::esphome::device::decode_key(&k).map_err(|e| format!("--key: {e}"))).transpose()?;
    let bytes = std::fs::read(&reply).map_err(|e| format!("--reply {}: {e}", reply.display()))?;
    let media = pivox_devtools::fake_esphome::MediaServer::start(vec![("/api/tts_proxy/*".into(), bytes)])
        .await
        .map_err(|e| format!("cannot serve the reply: {e}"))?;
    let runs = pivox_devtools::fake_esphome::answer_turns(device, key, &media, wait).await?;
    log::info!("answered {runs} run(s) from pivox at {device}; {} reply download(s)", media.fetched().len());
    if runs < at_least {
        return Err(format!("pivox at {device} started {runs} run(s), fewer than {at_least}"));
    }
    Ok(())
}

async fn serve(options: ServerOptions) -> Result<(), String> {
    let server = server::start(options).await.map_err(|e| format!("cannot listen: {e}"))?;
    log::info!("reference server listening on ws://{}/", server.addr);
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    server.kill().await;
    Ok(())
}
