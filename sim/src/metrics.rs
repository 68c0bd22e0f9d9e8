//! Metrics: latency histograms, peaks and the time series of a run.
//!
//! Latencies go into HdrHistograms (3 significant digits, 1 µs to 30 days), never into
//! vectors of samples, so memory is fixed whatever the length of the run.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest trackable latency: 30 days in microseconds.
const MAX_US: u64 = 30 * 86_400 * 1_000_000;

/// One latency distribution, recorded in microseconds.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            hist: Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds"),
        }
    }
}

impl Latency {
    /// Record one latency given in nanoseconds (values beyond 30 days are clamped).
    #[inline]
    pub fn record_ns(&mut self, ns: u64) {
        let us = (ns / 1_000).clamp(1, MAX_US);
        self.hist.record(us).expect("value clamped into range");
    }

    /// Add another distribution to this one.
    pub fn merge(&mut self, other: &Latency) {
        self.hist.add(&other.hist).expect("same bounds");
    }

    /// The histogram itself (microseconds, 1 µs to 30 days, 3 significant digits).
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.hist
    }

    /// Add a histogram of microseconds recorded elsewhere (read from an HdrHistogram log);
    /// `Err` when one of its values is beyond this one's range.
    pub fn add_histogram(&mut self, h: &Histogram<u64>) -> Result<(), String> {
        self.hist
            .add(h)
            .map_err(|e| format!("a histogram does not fit (1 µs to 30 days): {e:?}"))
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The summary in milliseconds.
    pub fn summary(&self) -> LatencySummary {
        let h = &self.hist;
        if h.is_empty() {
            return LatencySummary::default();
        }
        let ms = |us: u64| round3(us as f64 / 1_000.0);
        LatencySummary {
            count: h.len(),
            mean: Some(round3(h.mean() / 1_000.0)),
            p50: Some(ms(h.value_at_quantile(0.50))),
            p90: Some(ms(h.value_at_quantile(0.90))),
            p99: Some(ms(h.value_at_quantile(0.99))),
            p999: Some(ms(h.value_at_quantile(0.999))),
            max: Some(ms(h.max())),
        }
    }
}

/// Round to three decimals (a microsecond, for milliseconds) so reports stay readable and
/// byte-stable.
pub fn round3(x: f64) -> f64 {
    (x * 1_000.0).round() / 1_000.0
}

/// Percentiles of one latency, in milliseconds; null when nothing was recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Number of values.
    pub count: u64,
    /// Mean.
    pub mean: Option<f64>,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// 99.9th percentile.
    pub p999: Option<f64>,
    /// Maximum.
    pub max: Option<f64>,
}

impl LatencySummary {
    /// A statistic by name (`mean`, `p50`, ... `max`).
    pub fn stat(&self, name: &str) -> Option<f64> {
        match name {
            "mean" => self.mean,
            "p50" => self.p50,
            "p90" => self.p90,
            "p99" => self.p99,
            "p999" => self.p999,
            "max" => self.max,
            _ => None,
        }
    }
}

/// A per-interval time series of the run's state, sampled at the end of each interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimeSeries {
    /// Width of one interval in seconds.
    pub interval_seconds: f64,
    /// Start of each interval, seconds from the start of the window.
    pub t: Vec<f64>,
    /// Seated connections.
    pub connections: Vec<u32>,
    /// Room objects holding at least one socket.
    pub active_objects: Vec<u32>,
    /// Users waiting in queues.
    pub queue_length: Vec<u32>,
    /// Rooms with at least one seated user.
    pub active_rooms: Vec<u32>,
}

/// The state sampled into the time series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Seated connections.
    pub connections: u32,
    /// Room objects holding a socket.
    pub active_objects: u32,
    /// Users waiting.
    pub queue_length: u32,
    /// Rooms with someone seated.
    pub active_rooms: u32,
}

impl TimeSeries {
    /// An empty series of this interval.
    pub fn new(interval_ns: u64) -> TimeSeries {
        TimeSeries {
            interval_seconds: interval_ns as f64 / 1e9,
            ..TimeSeries::default()
        }
    }

    /// Append one interval's sample.
    pub fn push(&mut self, start_s: f64, g: Gauges) {
        self.t.push(round3(start_s));
        self.connections.push(g.connections);
        self.active_objects.push(g.active_objects);
        self.queue_length.push(g.queue_length);
        self.active_rooms.push(g.active_rooms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reports_percentiles_in_ms() {
        let mut l = Latency::default();
        for i in 1..=1000u64 {
            l.record_ns(i * 1_000_000); // 1..1000 ms
        }
        let s = l.summary();
        assert_eq!(s.count, 1000);
        let p50 = s.p50.unwrap();
        assert!((p50 - 500.0).abs() <= 1.0, "{p50}");
        let p99 = s.p99.unwrap();
        assert!((p99 - 990.0).abs() <= 1.5, "{p99}");
        assert!((s.max.unwrap() - 1000.0).abs() <= 1.0);
    }

    #[test]
    fn empty_summary_is_null() {
        let s = Latency::default().summary();
        assert_eq!(s.count, 0);
        assert_eq!(s.p99, None);
    }
}
