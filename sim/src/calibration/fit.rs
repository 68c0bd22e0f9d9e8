//! Fit: weighted least squares of per-event costs, with Student-t confidence intervals, and
//! parameters the data cannot separate reported rather than invented.
//!
//! Each observation is one phase of one run: what was measured there (workerd's CPU in ms,
//! or a latency) and how many events of each kind it held. The model is linear with no
//! intercept unless the caller adds a column of ones: `y = Σ x_j β_j + ε`. Each row carries
//! its weight: `1 / √(events)` for a phase's total CPU (a sum of that many per-event costs,
//! whose variance grows with their number), `√samples` for a mean latency.
//!
//! The normal equations are solved by a Cholesky factorisation that drops, in column order, a
//! parameter whose pivot vanishes — a column that is zero in the ladder (no lobby run, so no
//! lobby RPC) or a linear combination of earlier columns (two costs that always occur
//! together). A dropped parameter is [`Coefficient::not_separable`] with the reason; the rest
//! are fitted without it. The 95% interval is `β ± t(0.975, n − p) × se`, with
//! `se² = s² (XᵀWX)⁻¹_jj` and `s²` the weighted residual variance.

use serde::{Deserialize, Serialize};

use crate::interval::{t_quantile, CONFIDENCE};

/// One observation: its label, the measured value, the count of each parameter's events.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What it is (`run 3 ramp`).
    pub label: String,
    /// The measured value.
    pub y: f64,
    /// One count per parameter.
    pub x: Vec<f64>,
    /// The row's weight in the fit (1 / its standard deviation, up to a common factor).
    pub weight: f64,
}

/// One fitted parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coefficient {
    /// Its name.
    pub name: String,
    /// The estimate (absent when not separable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Its standard error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std_error: Option<f64>,
    /// Lower end of the 95% confidence interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95_low: Option<f64>,
    /// Upper end of the 95% confidence interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95_high: Option<f64>,
    /// Why the data cannot give it (absent when fitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_separable: Option<String>,
}

/// The fit: every parameter, every row's residual, the degrees of freedom.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// One per parameter, in the caller's order.
    pub coefficients: Vec<Coefficient>,
    /// Per row: fitted value and residual (observed − fitted), unweighted.
    pub residuals: Vec<Residual>,
    /// Rows − fitted parameters.
    pub df: usize,
    /// Root mean square of the unweighted residuals.
    pub rms_residual: f64,
}

/// One row's fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Residual {
    /// The row's label.
    pub label: String,
    /// Observed.
    pub observed: f64,
    /// Fitted.
    pub fitted: f64,
    /// Observed − fitted.
    pub residual: f64,
}

/// Relative pivot below which a column counts as dependent on the earlier ones.
const PIVOT_TOLERANCE: f64 = 1e-9;

/// Fit `rows` to the parameters `names` (each row has one count per name). Never panics on
/// degenerate input: with fewer rows than separable parameters the intervals are absent and
/// say why.
pub fn fit(names: &[&str], rows: &[Row]) -> Fit {
    let p = names.len();
    let weight = |r: &Row| r.weight;
    // Normal equations of the weighted rows.
    let mut a = vec![vec![0.0; p]; p];
    let mut b = vec![0.0; p];
    for r in rows {
        let w2 = weight(r).powi(2);
        // A row shorter than the parameters counts 0 of the missing ones.
        let x = |i: usize| r.x.get(i).copied().unwrap_or(0.0);
        for (i, (ai, bi)) in a.iter_mut().zip(b.iter_mut()).enumerate() {
            *bi += w2 * x(i) * r.y;
            for (j, aij) in ai.iter_mut().enumerate() {
                *aij += w2 * x(i) * x(j);
            }
        }
    }
    let mut why: Vec<Option<String>> = vec![None; p];
    for (j, w) in why.iter_mut().enumerate() {
        if a[j][j] == 0.0 {
            *w = Some("none of the ladder's runs has this event".into());
        }
    }
    // Cholesky with dropping: keep[j] once its pivot is sound.
    let mut keep: Vec<usize> = Vec::new();
    let mut l: Vec<Vec<f64>> = Vec::new(); // rows of L over the kept columns
    for j in 0..p {
        if why[j].is_some() {
            continue;
        }
        let mut row = Vec::with_capacity(keep.len() + 1);
        for (k, &kj) in keep.iter().enumerate() {
            let s: f64 = (0..k).map(|m| row[m] * l[k][m]).sum();
            row.push((a[j][kj] - s) / l[k][k]);
        }
        let d = a[j][j] - row.iter().map(|v| v * v).sum::<f64>();
        // `d` may be NaN from a NaN input: dropped too.
        if d.is_nan() || d <= PIVOT_TOLERANCE * a[j][j] {
            let with: Vec<&str> = keep.iter().map(|&k| names[k]).collect();
            why[j] = Some(format!(
                "cannot be told apart from {} in this ladder: its events always come in the same proportions",
                if with.is_empty() { "the others".to_string() } else { with.join(", ") }
            ));
            continue;
        }
        row.push(d.sqrt());
        l.push(row);
        keep.push(j);
    }
    let q = keep.len();
    // Solve L z = b_kept, Lᵀ β = z; the inverse's diagonal from L⁻¹.
    let bk: Vec<f64> = keep.iter().map(|&j| b[j]).collect();
    let z = forward(&l, &bk);
    let beta = backward(&l, &z);
    let mut inv_diag = vec![0.0; q];
    for (i, d) in inv_diag.iter_mut().enumerate() {
        let mut e = vec![0.0; q];
        e[i] = 1.0;
        // (LLᵀ)⁻¹_ii = |L⁻¹ e_i|² summed over columns: solve per unit vector.
        let col = backward(&l, &forward(&l, &e));
        *d = col[i];
    }
    let mut full = vec![0.0; p];
    for (k, &j) in keep.iter().enumerate() {
        full[j] = beta[k];
    }
    let mut residuals = Vec::with_capacity(rows.len());
    let (mut wss, mut ss) = (0.0, 0.0);
    for r in rows {
        let fitted: f64 = r.x.iter().zip(&full).map(|(x, b)| x * b).sum();
        let res = r.y - fitted;
        wss += (weight(r) * res).powi(2);
        ss += res * res;
        residuals.push(Residual {
            label: r.label.clone(),
            observed: r.y,
            fitted,
            residual: res,
        });
    }
    let df = rows.len().saturating_sub(q);
    let t = (df > 0).then(|| t_quantile(0.5 + CONFIDENCE / 2.0, df as f64));
    let s2 = (df > 0).then(|| wss / df as f64);
    let coefficients = names
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let mut c = Coefficient {
                name: (*name).to_string(),
                value: None,
                std_error: None,
                ci95_low: None,
                ci95_high: None,
                not_separable: why[j].clone(),
            };
            if let Some(k) = keep.iter().position(|&kj| kj == j) {
                c.value = Some(beta[k]);
                if let (Some(t), Some(s2)) = (t, s2) {
                    let se = (s2 * inv_diag[k]).max(0.0).sqrt();
                    c.std_error = Some(se);
                    c.ci95_low = Some(beta[k] - t * se);
                    c.ci95_high = Some(beta[k] + t * se);
                }
            }
            c
        })
        .collect();
    Fit {
        coefficients,
        residuals,
        df,
        rms_residual: if rows.is_empty() {
            0.0
        } else {
            (ss / rows.len() as f64).sqrt()
        },
    }
}

/// Solve `L z = b` (L lower triangular, rows of growing length).
fn forward(l: &[Vec<f64>], b: &[f64]) -> Vec<f64> {
    let mut z = vec![0.0; b.len()];
    for i in 0..b.len() {
        let s: f64 = (0..i).map(|k| l[i][k] * z[k]).sum();
        z[i] = (b[i] - s) / l[i][i];
    }
    z
}

/// Solve `Lᵀ x = z`.
fn backward(l: &[Vec<f64>], z: &[f64]) -> Vec<f64> {
    let n = z.len();
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| l[k][i] * x[k]).sum();
        x[i] = (z[i] - s) / l[i][i];
    }
    x
}

impl Fit {
    /// The coefficient called `name`.
    pub fn get(&self, name: &str) -> Option<&Coefficient> {
        self.coefficients.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(y: f64, x: &[f64]) -> Row {
        Row {
            label: format!("y={y}"),
            y,
            x: x.to_vec(),
            weight: 1.0,
        }
    }

    #[test]
    fn exact_synthetic_data_recovers_the_coefficients() {
        // y = 0.2 a + 0.5 b + 0.03 c over varied counts, no noise.
        let truth = [0.2, 0.5, 0.03];
        let xs = [
            [100.0, 0.0, 0.0],
            [30.0, 30.0, 0.0],
            [0.0, 10.0, 200.0],
            [5.0, 40.0, 700.0],
            [50.0, 1.0, 50.0],
        ];
        let rows: Vec<Row> = xs
            .iter()
            .map(|x| row(x.iter().zip(truth).map(|(a, b)| a * b).sum(), x))
            .collect();
        let f = fit(&["a", "b", "c"], &rows);
        assert_eq!(f.df, 2);
        for (c, t) in f.coefficients.iter().zip(truth) {
            assert!((c.value.unwrap() - t).abs() < 1e-9, "{c:?}");
            assert!(c.std_error.unwrap() < 1e-6);
            assert!(c.ci95_low.unwrap() <= t + 1e-9 && c.ci95_high.unwrap() >= t - 1e-9);
        }
        assert!(f.rms_residual < 1e-9);
    }

    #[test]
    fn noisy_data_gives_an_interval_that_covers_the_truth() {
        // Deterministic "noise" of ±2% alternating.
        let rows: Vec<Row> = (1..=12)
            .map(|i| {
                let (a, b) = (10.0 * i as f64, (13 - i) as f64 * 7.0);
                let noise = if i % 2 == 0 { 1.02 } else { 0.98 };
                row((0.3 * a + 0.05 * b) * noise, &[a, b])
            })
            .collect();
        let f = fit(&["a", "b"], &rows);
        let a = f.get("a").unwrap();
        assert!(
            a.ci95_low.unwrap() < 0.3 && 0.3 < a.ci95_high.unwrap(),
            "{a:?}"
        );
        assert!(a.ci95_high.unwrap() - a.ci95_low.unwrap() > 0.0);
        assert_eq!(f.residuals.len(), 12);
    }

    #[test]
    fn a_degenerate_ladder_is_reported_not_a_panic() {
        // Column c is always zero; column b always equals column a.
        let rows = vec![row(1.0, &[1.0, 1.0, 0.0]), row(2.0, &[2.0, 2.0, 0.0])];
        let f = fit(&["a", "b", "c"], &rows);
        assert!(f.get("a").unwrap().value.is_some());
        let b = f.get("b").unwrap();
        assert!(b.value.is_none());
        assert!(b
            .not_separable
            .as_deref()
            .unwrap()
            .contains("cannot be told apart from a"));
        assert!(f
            .get("c")
            .unwrap()
            .not_separable
            .as_deref()
            .unwrap()
            .contains("none of"));
        // One row per kept parameter too few for an interval: df = 1 here, an interval.
        assert_eq!(f.df, 1);
        // No rows at all: nothing fitted, nothing panics.
        let empty = fit(&["a"], &[]);
        assert!(empty.coefficients[0].value.is_none());
        assert_eq!(empty.df, 0);
        // As many rows as parameters: values, no interval.
        let exact = fit(&["a"], &[row(3.0, &[1.0])]);
        assert_eq!(exact.coefficients[0].value, Some(3.0));
        assert!(exact.coefficients[0].ci95_low.is_none());
    }
}
