//! Signal similarity: how closely one recording matches another, allowing for the delay a
//! codec adds. Used by the tests to check audio that went through Opus, and handy when
//! comparing what a server heard with what was said.

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
