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
//! A check whose metric has no value (for example a percentile of an empty histogram) fails.

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
    /// Whether it passed.
    pub pass: bool,
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

    /// Evaluate with a lookup of metric values.
    pub fn evaluate(&self, value_of: impl Fn(&str) -> Option<f64>) -> ThresholdResult {
        let value = value_of(&self.metric).filter(|v| v.is_finite());
        ThresholdResult {
            check: self.to_string(),
            value,
            pass: value.is_some_and(|v| self.op.holds(v, self.bound)),
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
        let known = SCALARS.contains(&metric.as_str())
            || metric
                .split_once('.')
                .is_some_and(|(a, b)| LATENCIES.contains(&a) && STATS.contains(&b));
        if !known {
            return Err(format!(
                "{s:?}: unknown metric {metric:?}; expected one of {}.{{{}}} or {}",
                LATENCIES.join("|"),
                STATS.join("|"),
                SCALARS.join(", ")
            ));
        }
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
    fn evaluates_and_fails_without_data() {
        let t: Threshold = "monthly_cost_usd < 10".parse().unwrap();
        assert!(t.evaluate(|_| Some(9.99)).pass);
        assert!(!t.evaluate(|_| Some(10.0)).pass);
        assert!(!t.evaluate(|_| None).pass);
    }
}
