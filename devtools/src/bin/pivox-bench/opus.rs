//! What each Opus encoder complexity costs and what it gives: the bundled speech sample
//! encoded as the daemon encodes it (16 kHz mono, VOIP, 24 kbit/s, DTX, 20 ms frames), the
//! encoder's CPU time on this thread (several passes, compared within the run against
//! complexity 5, the previous default), the bytes, and the quality of the decoded speech as a
//! log-spectral distance from the original (`pivox_devtools::compare`). Under `"opus"`.

use pivox::audio::codec::{Codec, Decoder, Encoder, MAX_PACKET, OpusSettings};
use pivox_devtools::compare::{best_correlation, log_spectral_distance};
use serde_json::json;

/// The complexities measured; the daemon's default is among them.
const COMPLEXITIES: [u8; 6] = [0, 1, 2, 3, 5, 10];
const FRAME: usize = 320;
/// Encoding passes over the sample per complexity, for a CPU time well above the clock's grain.
const PASSES: usize = 12;

pub(crate) struct Row {
    pub complexity: u8,
    /// Encoder CPU time per second of audio, in microseconds.
    pub cpu_us_per_s: f64,
    pub bytes_per_s: f64,
    pub lsd_db: f64,
    pub correlation: f64,
}

/// This thread's CPU time, in seconds: the encoder's own, whatever else the machine runs.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

pub(crate) fn measure(speech: &[i16]) -> Result<Vec<Row>, String> {
    let frames: Vec<&[i16]> = speech.chunks_exact(FRAME).collect();
    let seconds = (frames.len() * FRAME) as f64 / f64::from(pivox::audio::CODEC_RATE);
    let mut rows = Vec::new();
    for complexity in COMPLEXITIES {
        let settings = OpusSettings { bitrate: 24_000, complexity, fec: false, dtx: true };
        let mut packets: Vec<Option<Vec<u8>>> = Vec::new();
        let mut out = [0u8; MAX_PACKET];
        let mut cpu = 0.0;
        for pass in 0..PASSES {
            let mut encoder = Encoder::new(Codec::Opus, &settings).map_err(|e| e.to_string())?;
            let started = thread_cpu();
            for frame in &frames {
                let packet = encoder.encode(frame, &mut out).map_err(|e| e.to_string())?;
                if pass == 0 {
                    packets.push(packet.map(|n| out[..n].to_vec()));
                }
            }
            cpu += thread_cpu() - started;
        }
        let mut decoder = Decoder::new(Codec::Opus).map_err(|e| e.to_string())?;
        let mut decoded = vec![0i16; packets.len() * FRAME];
        for (packet, slot) in packets.iter().zip(decoded.chunks_exact_mut(FRAME)) {
            decoder.decode(packet.as_deref(), slot).map_err(|e| e.to_string())?;
        }
        let reference = &speech[..frames.len() * FRAME];
        let (correlation, delay) = best_correlation(reference, &decoded, 640);
        rows.push(Row {
            complexity,
            cpu_us_per_s: cpu / PASSES as f64 / seconds * 1e6,
            bytes_per_s: packets.iter().flatten().map(Vec::len).sum::<usize>() as f64 / seconds,
            lsd_db: log_spectral_distance(reference, &decoded, delay, 512),
            correlation,
        });
    }
    Ok(rows)
}

fn relative(rows: &[Row], row: &Row) -> f64 {
    let five = rows.iter().find(|r| r.complexity == 5).map_or(f64::NAN, |r| r.cpu_us_per_s);
    row.cpu_us_per_s / five
}

pub(crate) fn print(rows: &[Row], default: u8) {
    println!("\nOpus encoder, speech sample, 24 kbit/s      CPU µs per s   vs c5   bytes/s   LSD dB   correlation");
    for row in rows {
        let mark = if row.complexity == default { " (default)" } else { "" };
        println!(
            "{:<44} {:>12.0} {:>7.2} {:>9.0} {:>8.2} {:>13.4}",
            format!("complexity {}{mark}", row.complexity),
            row.cpu_us_per_s,
            relative(rows, row),
            row.bytes_per_s,
            row.lsd_db,
            row.correlation
        );
    }
}

pub(crate) fn summary(rows: &[Row], default: u8) -> serde_json::Value {
    json!({
        "default_complexity": default,
        "complexities": rows.iter().map(|r| json!({
            "complexity": r.complexity,
            "encoder_cpu_us_per_s": r.cpu_us_per_s,
            "cpu_vs_complexity_5": relative(rows, r),
            "bytes_per_s": r.bytes_per_s,
            "log_spectral_distance_db": r.lsd_db,
            "correlation": r.correlation,
        })).collect::<Vec<_>>(),
    })
}
