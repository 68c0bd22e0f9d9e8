//! Threshold: a k6-style pass/fail check on a report, such as `message.p99 < 250`.
//!
//! Grammar: `METRIC OP NUMBER`, OP one of `<`, `<=`, `>`, `>=`. Metrics:
//! - `connect.P`, `admission_wait.P`, `message.P`, `object_queue.P` with P one of `mean`,
//!   `p50`, `p90`, `p99`, `p999`, `max`: latency in milliseconds;
//! - `rejection_rate`, `abandon_rate`: shares of arrived sessions;
//! - `error_rate`: failed object requests (overloaded) over all object requests;
//! - `connection_limit_share`: peak seated connections over `max_total_connections`;
//! - `room_limit_share`: peak active rooms over `max_active_rooms`;
//! - `monthly_cost_usd`: the projected monthly bill.
//!
//! A check whose metric has no value — a percentile of an empty histogram, a share of zero
//! arrivals, a limit share without that limit, the cost of a drive that covered none of its
//! window — has the third verdict, **no data**: nothing measured broke the bound, and nothing
//! showed it holds. By default it does not fail the run (as a k6 threshold on a metric that
//! was never emitted); [`NoData::Fail`] (`--no-data fail`, or `thresholds.no_data = "fail"`
//! in the scenario) makes it count as a failure.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
        }
    }
}

/// What a check without data counts as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoData {
    /// It does not fail the run (the default).
    #[default]
    Pass,
    /// It fails the run, as a failed check does.
    Fail,
}

impl FromStr for NoData {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pass" => Ok(NoData::Pass),
            "fail" => Ok(NoData::Fail),
            _ => Err(format!("{s:?}: expected pass or fail")),
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The value holds the bound.
    #[default]
    Pass,
    /// The value breaks the bound.
    Fail,
    /// The metric has no value in this run.
    NoData,
}

/// One check.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The metric name, as written.
    pub metric: String,
    /// The comparison.
    pub op: Op,
    /// The bound.
    pub bound: f64,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdResult {
    /// The check, as text.
    pub check: String,
    /// The measured value (null when unavailable).
    pub value: Option<f64>,
    /// Whether it counts as passed: verdict `pass`, or `no_data` when no data does not fail
    /// (see [`NoData`]). Any `false` fails the run.
    pub pass: bool,
    /// `pass`, `fail` or `no_data`.
    #[serde(default)]
    pub verdict: Verdict,
}

const LATENCIES: [&str; 4] = ["connect", "admission_wait", "message", "object_queue"];
const STATS: [&str; 6] = ["mean", "p50", "p90", "p99", "p999", "max"];
const SCALARS: [&str; 6] = [
    "rejection_rate",
    "abandon_rate",
    "error_rate",
    "connection_limit_share",
    "room_limit_share",
    "monthly_cost_usd",
];

/// Whether `metric` is a metric name (see the module documentation); the error says which
/// names there are.
pub fn check_metric(metric: &str) -> Result<(), String> {
    let known = SCALARS.contains(&metric)
        || metric
            .split_once('.')
            .is_some_and(|(a, b)| LATENCIES.contains(&a) && STATS.contains(&b));
    if known {
        Ok(())
    } else {
        Err(format!(
            "unknown metric {metric:?}; expected one of {}.{{{}}} or {}",
            LATENCIES.join("|"),
            STATS.join("|"),
            SCALARS.join(", ")
        ))
    }
}

impl Threshold {
    /// The budget alert: cost below `share` of `budget`.
    pub fn budget(budget: f64, share: f64) -> Threshold {
        Threshold {
            metric: "monthly_cost_usd".into(),
            op: Op::Lt,
            bound: budget * share,
        }
    }

    /// The connection-limit alert.
    pub fn connection_share(share: f64) -> Threshold {
        Threshold {
            metric: "connection_limit_share".into(),
            op: Op::Lt,
            bound: share,
        }
    }

    /// Evaluate with a lookup of metric values; `no_data` says what a missing value counts
    /// as.
    pub fn evaluate(
        &self,
        value_of: impl Fn(&str) -> Option<f64>,
        no_data: NoData,
    ) -> ThresholdResult {
        let value = value_of(&self.metric).filter(|v| v.is_finite());
        let verdict = match value {
            None => Verdict::NoData,
            Some(v) if self.op.holds(v, self.bound) => Verdict::Pass,
            Some(_) => Verdict::Fail,
        };
        ThresholdResult {
            check: self.to_string(),
            value,
            pass: match verdict {
                Verdict::Pass => true,
                Verdict::Fail => false,
                Verdict::NoData => no_data == NoData::Pass,
            },
            verdict,
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.metric, self.op.as_str(), self.bound)
    }
}

impl FromStr for Threshold {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let pos = s
            .find(['<', '>'])
            .ok_or_else(|| format!("{s:?}: expected METRIC < NUMBER (or <=, >, >=)"))?;
        let metric = s[..pos].trim().to_string();
        let rest = &s[pos..];
        let (op, num) = if let Some(r) = rest.strip_prefix("<=") {
            (Op::Le, r)
        } else if let Some(r) = rest.strip_prefix(">=") {
            (Op::Ge, r)
        } else if let Some(r) = rest.strip_prefix('<') {
            (Op::Lt, r)
        } else {
            (Op::Gt, &rest[1..])
        };
        let bound: f64 = num
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: {:?} is not a number", num.trim()))?;
        // NaN would fail every check and an infinite bound pass or fail every one.
        if !bound.is_finite() {
            return Err(format!("{s:?}: {:?} is not a finite number", num.trim()));
        }
        check_metric(&metric).map_err(|e| format!("{s:?}: {e}"))?;
        Ok(Threshold { metric, op, bound })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_checks() {
        let t: Threshold = "message.p99 < 250".parse().unwrap();
        assert_eq!(
            (t.metric.as_str(), t.op, t.bound),
            ("message.p99", Op::Lt, 250.0)
        );
        let t: Threshold = "error_rate<=0.05".parse().unwrap();
        assert_eq!(t.op, Op::Le);
        assert!("mesage.p99 < 3".parse::<Threshold>().is_err());
        assert!("message.p99 < x".parse::<Threshold>().is_err());
        assert!("message.p99 = 3".parse::<Threshold>().is_err());
    }

    #[test]
    fn refuses_a_bound_that_is_not_finite() {
        for bad in ["nan", "NaN", "inf", "-inf", "1e400"] {
            let err = format!("message.p99 < {bad}")
                .parse::<Threshold>()
                .unwrap_err();
            assert!(err.contains("not a finite number"), "{bad}: {err}");
        }
    }

    #[test]
    fn evaluates_with_a_third_verdict_without_data() {
        let t: Threshold = "monthly_cost_usd < 10".parse().unwrap();
        let r = t.evaluate(|_| Some(9.99), NoData::Pass);
        assert!(r.pass && r.verdict == Verdict::Pass);
        let r = t.evaluate(|_| Some(10.0), NoData::Pass);
        assert!(!r.pass && r.verdict == Verdict::Fail);
        // No value (or a non-finite one) is no data: it passes unless asked to fail.
        for missing in [None, Some(f64::NAN)] {
            let r = t.evaluate(|_| missing, NoData::Pass);
            assert_eq!((r.pass, r.verdict, r.value), (true, Verdict::NoData, None));
            let r = t.evaluate(|_| missing, NoData::Fail);
            assert_eq!((r.pass, r.verdict), (false, Verdict::NoData));
        }
        let json = serde_json::to_value(t.evaluate(|_| None, NoData::Pass)).unwrap();
        assert_eq!(json["verdict"], "no_data");
        assert_eq!("fail".parse::<NoData>(), Ok(NoData::Fail));
        assert!("maybe".parse::<NoData>().is_err());
    }
}
