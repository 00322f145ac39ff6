//! The ESPHome run: pivox listens as an ESPHome-API satellite (Noise, a configured key), and
//! the stand-in HA client connects to it from a thread of its own and answers every run with
//! the MP3 reply at a new URL (so none comes from pivox's reply cache).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use pivox_devtools::fake_esphome::{MediaServer, answer_turns};

use super::idle::measure_idle;
use super::{Figures, REPLY_MP3, Setup, VARIANTS};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The stand-in HA client, answering until pivox hangs up.
struct Client(std::thread::JoinHandle<Result<usize, String>>);

impl Client {
    fn start(addr: SocketAddr) -> Self {
        Self(std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            runtime.block_on(async move {
                let media = MediaServer::start(vec![("/api/tts_proxy/*".into(), REPLY_MP3.to_vec())])
                    .await
                    .map_err(|e| e.to_string())?;
                let key = pivox::link::esphome::device::decode_key(KEY)?;
                answer_turns(addr, Some(key), &media, Duration::from_secs(30)).await
            })
        }))
    }

    fn join(self) -> Result<usize, String> {
        self.0.join().map_err(|_| "the stand-in HA client panicked".to_string())?
    }
}

pub(super) fn measure(
    pivox: &Path,
    dir: &Path,
    mic: &Path,
    script: &str,
    turns: usize,
    idle: Duration,
) -> Result<Figures, String> {
    let addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?;
    let server = format!(
        "kind = \"esphome\"\nlisten = \"{addr}\"\nname = \"pivox-bench\"\nmac = \"02:00:00:00:00:01\"\n\
         encryption_key = \"{KEY}\"\nmdns = false\nstate_dir = {:?}\n",
        dir.display().to_string()
    );
    let setup = Setup { pivox, dir, name: "esphome", server: &server, audio: VARIANTS[0].audio, mic };
    let client = Client::start(addr);
    let mut figures = super::measure(&setup, script, turns)?;
    let runs = client.join()?;
    if runs < figures.turns {
        return Err(format!("esphome: the stand-in HA answered {runs} runs for {} turns", figures.turns));
    }
    if !idle.is_zero() {
        let client = Client::start(addr);
        figures.idle = Some(measure_idle(&setup, idle)?);
        client.join()?;
    }
    Ok(figures)
}
