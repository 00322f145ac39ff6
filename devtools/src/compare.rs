//! Signal similarity: how closely one recording matches another, allowing for the delay a
//! codec adds. Used by the tests to check audio that went through Opus, by the bench to
//! measure what an Opus setting costs in quality, and handy when comparing what a server heard
//! with what was said.

/// Pearson correlation of `a` against `b` delayed by `delay` samples, over `a`'s length.
pub fn correlation(a: &[i16], b: &[i16], delay: usize) -> f64 {
    let n = a.len().min(b.len().saturating_sub(delay));
    let (x, y) = (&a[..n], &b[delay..delay + n]);
    let mean = |v: &[i16]| v.iter().map(|s| f64::from(*s)).sum::<f64>() / n as f64;
    let (mx, my) = (mean(x), mean(y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (p, q) in x.iter().zip(y) {
        let (dp, dq) = (f64::from(*p) - mx, f64::from(*q) - my);
        sxy += dp * dq;
        sxx += dp * dp;
        syy += dq * dq;
    }
    sxy / (sxx * syy).sqrt()
}

/// The best correlation over delays up to `max_delay`, with that delay.
pub fn best_correlation(a: &[i16], b: &[i16], max_delay: usize) -> (f64, usize) {
    (0..=max_delay.min(b.len()))
        .map(|d| (correlation(a, b, d), d))
        .fold((f64::MIN, 0), |best, c| if c.0 > best.0 { c } else { best })
}

/// Log-spectral distance in dB between `reference` and `decoded` delayed by `delay` samples:
/// for each `frame`-sample window (Hann, half overlapping) whose reference is not near silence
/// (within 40 dB of the loudest window), the root mean square over frequency (up to 7/8 of the
/// Nyquist frequency: 7 kHz at 16 kHz, where wideband codecs roll off) of the difference of the
/// two power spectra in dB, each floored 60 dB below the reference window's strongest bin; then
/// the mean over those windows. 0 is identical; larger is further from the reference.
pub fn log_spectral_distance(reference: &[i16], decoded: &[i16], delay: usize, frame: usize) -> f64 {
    let n = reference.len().min(decoded.len().saturating_sub(delay));
    let (x, y) = (&reference[..n], &decoded[delay..delay + n]);
    let fft = realfft::RealFftPlanner::<f64>::new().plan_fft_forward(frame);
    let window: Vec<f64> =
        (0..frame).map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / frame as f64).cos()).collect();
    let mut input = fft.make_input_vec();
    let mut spectrum = fft.make_output_vec();
    let mut power = |signal: &[i16]| -> Vec<f64> {
        for ((slot, s), w) in input.iter_mut().zip(signal).zip(&window) {
            *slot = f64::from(*s) * w;
        }
        fft.process(&mut input, &mut spectrum).expect("buffers made by the plan");
        spectrum.iter().map(|c| c.norm_sqr() + 1.0).collect()
    };
    let windows: Vec<(Vec<f64>, Vec<f64>)> = (0..n.saturating_sub(frame) / (frame / 2).max(1))
        .map(|k| k * frame / 2)
        .map(|at| (power(&x[at..at + frame]), power(&y[at..at + frame])))
        .collect();
    let loudest = windows.iter().map(|(p, _)| p.iter().sum::<f64>()).fold(0.0, f64::max);
    let distances: Vec<f64> = windows
        .iter()
        .filter(|(p, _)| p.iter().sum::<f64>() * 1e4 >= loudest)
        .map(|(p, q)| {
            let band = p.len() * 7 / 8;
            let floor = p[..band].iter().copied().fold(0.0, f64::max) * 1e-6;
            let sum: f64 =
                p[..band].iter().zip(q).map(|(a, b)| (10.0 * (a.max(floor) / b.max(floor)).log10()).powi(2)).sum();
            (sum / band as f64).sqrt()
        })
        .collect();
    distances.iter().sum::<f64>() / distances.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(len: usize, level: f64) -> Vec<i16> {
        (0..len).map(|i| (level * (i as f64 * 0.3).sin() + 0.2 * level * (i as f64 * 1.7).sin()) as i16).collect()
    }

    #[test]
    fn the_log_spectral_distance_is_zero_for_the_same_signal_and_grows_with_damage() {
        let a = tone(8_000, 8_000.0);
        assert!(log_spectral_distance(&a, &a, 0, 320) < 1e-9);
        let mut delayed = vec![0i16; 5];
        delayed.extend_from_slice(&a);
        assert!(log_spectral_distance(&a, &delayed, 5, 320) < 1e-9, "the delay is allowed for");
        let noisy: Vec<i16> = a.iter().enumerate().map(|(i, s)| s + ((i * 7919) % 401) as i16 - 200).collect();
        let very_noisy: Vec<i16> = a.iter().enumerate().map(|(i, s)| s + ((i * 7919) % 4001) as i16 - 2000).collect();
        let (slight, heavy) =
            (log_spectral_distance(&a, &noisy, 0, 320), log_spectral_distance(&a, &very_noisy, 0, 320));
        assert!(slight > 0.1 && heavy > slight + 3.0, "{slight} then {heavy}");
    }
}
