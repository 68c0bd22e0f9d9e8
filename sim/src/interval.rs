//! Interval: the mean of independent samples and its Student-t confidence interval.
//!
//! For n independent, roughly normal samples x₁…xₙ (here: one figure of n replications of a
//! run, each under its own seed), the 95% confidence interval of their expectation is
//! `mean ± t(0.975, n−1) · s / √n`, with `s` the sample standard deviation (divisor n − 1)
//! and `t(p, ν)` the p-quantile of Student's t distribution with ν degrees of freedom.
//! The quantile is computed, not tabulated: the t distribution's CDF through the regularized
//! incomplete beta function (a continued fraction), inverted by bisection, to about 1e-12.
//!
//! One sample has no spread to estimate: its interval is absent ("one replication: no
//! interval"), never a fake zero-width one.

use serde::{Deserialize, Serialize};

/// The confidence level of every interval dosim reports.
pub const CONFIDENCE: f64 = 0.95;

/// The mean of some samples and, from two samples on, its 95% confidence interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Number of samples (replications that had a value).
    pub n: usize,
    /// Their mean (null when there are none).
    pub mean: Option<f64>,
    /// Their sample standard deviation, divisor n − 1 (null below 2 samples).
    pub stddev: Option<f64>,
    /// Half-width of the 95% Student-t interval: t(0.975, n−1) · stddev / √n (null below 2
    /// samples).
    pub half_width_95: Option<f64>,
    /// `half_width_95 / |mean|`; 0 when every sample is 0, null when the mean is 0 and the
    /// samples are not all 0, or below 2 samples.
    pub relative_half_width: Option<f64>,
    /// `mean − half_width_95`.
    pub low: Option<f64>,
    /// `mean + half_width_95`.
    pub high: Option<f64>,
}

impl Interval {
    /// The mean and 95% interval of `samples` (summed in the order given, so the result is
    /// the same bytes for the same samples).
    pub fn of(samples: &[f64]) -> Interval {
        let n = samples.len();
        if n == 0 {
            return Interval::default();
        }
        let mean = samples.iter().sum::<f64>() / n as f64;
        if n == 1 {
            return Interval {
                n,
                mean: Some(mean),
                ..Interval::default()
            };
        }
        let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let stddev = var.sqrt();
        let half = t_quantile(0.5 + CONFIDENCE / 2.0, (n - 1) as f64) * stddev / (n as f64).sqrt();
        let relative = if mean != 0.0 {
            Some(half / mean.abs())
        } else if half == 0.0 {
            Some(0.0)
        } else {
            None
        };
        Interval {
            n,
            mean: Some(mean),
            stddev: Some(stddev),
            half_width_95: Some(half),
            relative_half_width: relative,
            low: Some(mean - half),
            high: Some(mean + half),
        }
    }

    /// Whether the relative half-width is at most `target` (an interval of samples that are
    /// all equal, zero included, has none to speak of and meets any target).
    pub fn meets(&self, target: f64) -> bool {
        self.relative_half_width.is_some_and(|r| r <= target)
    }

    /// Why there is no interval, when there is none.
    pub fn missing(&self) -> Option<&'static str> {
        match self.n {
            0 => Some("no data"),
            1 => Some("one replication: no interval"),
            _ => None,
        }
    }
}

/// The `p`-quantile of Student's t distribution with `df` degrees of freedom (`df` may be
/// infinite: the standard normal). For example `t_quantile(0.975, 9) ≈ 2.262`.
///
/// # Panics
///
/// If `p` is not strictly between 0 and 1 or `df` is not positive (callers pass constants and
/// sample counts, never user input).
pub fn t_quantile(p: f64, df: f64) -> f64 {
    assert!(p > 0.0 && p < 1.0, "quantile {p} outside (0, 1)");
    assert!(df > 0.0, "degrees of freedom {df} not positive");
    if p == 0.5 {
        return 0.0;
    }
    if p < 0.5 {
        return -t_quantile(1.0 - p, df);
    }
    let cdf = |t: f64| {
        if df.is_infinite() {
            normal_cdf(t)
        } else {
            t_cdf(t, df)
        }
    };
    // Bracket, then bisect: the CDF is monotone, so this converges whatever the tail.
    let mut hi = 1.0;
    while cdf(hi) < p {
        hi *= 2.0;
    }
    let mut lo = 0.0;
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-13 * hi {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// P(T ≤ t) for Student's t with `df` degrees of freedom:
/// the two tails are ½·I_x(df/2, ½) with x = df / (df + t²).
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let x = df / (df + t * t);
    let tail = 0.5 * regularized_incomplete_beta(0.5 * df, 0.5, x);
    if t > 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// The standard normal CDF, Φ(z) = ½·erfc(−z/√2).
fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// The complementary error function, from the regularized incomplete gamma function:
/// erfc(x) = Q(½, x²) for x ≥ 0.
fn erfc(x: f64) -> f64 {
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    upper_incomplete_gamma_q(0.5, x * x)
}

/// Q(a, x) = Γ(a, x)/Γ(a), by its series below a + 1 and its continued fraction above.
fn upper_incomplete_gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let ln_front = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        let (mut sum, mut term, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..10_000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-16 {
                break;
            }
        }
        1.0 - sum * ln_front.exp()
    } else {
        // Modified Lentz on the continued fraction of Γ(a, x).
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        ln_front.exp() * h
    }
}

/// I_x(a, b), the regularized incomplete beta function (continued fraction, using the
/// symmetry I_x(a, b) = 1 − I_{1−x}(b, a) where it converges faster).
fn regularized_incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_fraction(a, b, x) / a
    } else {
        1.0 - ln_front.exp() * beta_fraction(b, a, 1.0 - x) / b
    }
}

/// The continued fraction of the incomplete beta function (modified Lentz).
fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    let tiny = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < tiny {
        d = tiny;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..100_000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < tiny {
            d = tiny;
        }
        c = 1.0 + aa / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < tiny {
            d = tiny;
        }
        c = 1.0 + aa / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms: about 15 significant digits).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = C[0];
    for (i, c) in C.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_published_values() {
        // Student t, two-sided 95% (p = 0.975), from standard tables (8 significant digits).
        for (df, t) in [
            (1.0, 12.706_204_7),
            (2.0, 4.302_652_7),
            (3.0, 3.182_446_3),
            (4.0, 2.776_445_1),
            (5.0, 2.570_581_8),
            (7.0, 2.364_624_3),
            (9.0, 2.262_157_2),
            (19.0, 2.093_024_1),
            (29.0, 2.045_229_6),
            (99.0, 1.984_216_9),
            (1000.0, 1.962_339_2),
            (f64::INFINITY, 1.959_964_0),
        ] {
            let got = t_quantile(0.975, df);
            assert!(
                (got - t).abs() < 2e-7,
                "t(0.975, {df}) = {got}, expected {t}"
            );
        }
        // Other levels and the lower tail.
        assert!((t_quantile(0.995, 4.0) - 4.604_094_9).abs() < 2e-7);
        assert!((t_quantile(0.95, 10.0) - 1.812_461_1).abs() < 2e-7);
        assert!((t_quantile(0.025, 9.0) + 2.262_157_2).abs() < 2e-7);
        assert_eq!(t_quantile(0.5, 3.0), 0.0);
        // Closed forms: df = 1 is Cauchy, df = 2 has t = (2p−1)/√(2p(1−p)).
        let p: f64 = 0.9;
        let cauchy = (std::f64::consts::PI * (p - 0.5)).tan();
        assert!((t_quantile(p, 1.0) - cauchy).abs() < 1e-9);
        let two = (2.0 * p - 1.0) / (2.0 * p * (1.0 - p)).sqrt();
        assert!((t_quantile(p, 2.0) - two).abs() < 1e-9);
    }

    #[test]
    fn the_interval_of_known_samples() {
        // Mean 5, s² = ((−3)² + (−1)² + 1² + 3²)/3 = 20/3.
        let i = Interval::of(&[2.0, 4.0, 6.0, 8.0]);
        assert_eq!(i.n, 4);
        assert_eq!(i.mean, Some(5.0));
        let s = (20.0f64 / 3.0).sqrt();
        assert!((i.stddev.unwrap() - s).abs() < 1e-12);
        let half = 3.182_446_3 * s / 2.0;
        assert!((i.half_width_95.unwrap() - half).abs() < 1e-6);
        assert!((i.low.unwrap() - (5.0 - half)).abs() < 1e-6);
        assert!((i.high.unwrap() - (5.0 + half)).abs() < 1e-6);
        assert!((i.relative_half_width.unwrap() - half / 5.0).abs() < 1e-6);
        assert!(i.meets(0.9) && !i.meets(0.5));
    }

    #[test]
    fn one_sample_has_no_interval_and_equal_samples_a_zero_one() {
        let one = Interval::of(&[3.0]);
        assert_eq!((one.n, one.mean, one.half_width_95), (1, Some(3.0), None));
        assert_eq!(one.missing(), Some("one replication: no interval"));
        assert!(!one.meets(1.0));
        let none = Interval::of(&[]);
        assert_eq!((none.mean, none.missing()), (None, Some("no data")));
        let zeros = Interval::of(&[0.0, 0.0, 0.0]);
        assert_eq!(zeros.relative_half_width, Some(0.0));
        assert!(zeros.meets(0.01));
        // A zero mean with spread has no relative width, and meets no target.
        let signed = Interval::of(&[-1.0, 1.0]);
        assert_eq!(signed.relative_half_width, None);
        assert!(!signed.meets(10.0));
    }
}
