//! Calibration: per-event service times and Worker CPU fitted from real runs, in a TOML file
//! scenarios can reference.
//!
//! `dosim calibrate` ([`ladder`]) drives a standard ladder of short runs (room sizes, message
//! rates, strategies with and without the lobby), fits the costs by least squares ([`fit`])
//! and writes a [`Calibration`]:
//!
//! ```toml
//! [calibration]
//! format = 1
//! kind = "cpu"            # "cpu": from workerd's CPU (--local); "latency": from latencies (--target)
//! label = "measured on this machine with local workerd …"
//! not_cloudflare = "local workerd is not Cloudflare's edge: …"
//!
//! [platform]              # the scenario's own keys, replaced where present
//! worker_cpu_ms_per_connect = 0.19
//!
//! [platform.service]
//! connect = { dist = "constant", value = "0.42ms" }
//! message = { dist = "constant", value = "0.05ms" }
//! per_recipient = "0.037ms"
//! rpc = { dist = "constant", value = "0.21ms" }
//! close = { dist = "constant", value = "0.2ms" }
//!
//! [measured]              # provenance: machine, workerd, every run, every fit
//! ```
//!
//! A scenario references it with `platform.calibration = "file.toml"` (relative to the
//! scenario), or any command that reads a scenario takes `--calibration PATH`; both go
//! through [`crate::scenario::Scenario::apply_calibration`]. A key the file lacks (a cost
//! the ladder could not separate) keeps the scenario's value. Every error names the file,
//! the line and the key.

pub mod fit;
pub mod ladder;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::meter::Source;
use crate::scenario::{
    locate, parse_toml, DistSpec, Dur, Platform, MAX_DURATION, MAX_WORKER_CPU_MS,
};

/// The calibration file's format version.
pub const FORMAT: u32 = 1;

/// What local workerd is not: written into every calibration measured on it.
pub const NOT_CLOUDFLARE: &str = "local workerd is not Cloudflare's edge: it is one process on this machine that runs the Worker, every Durable Object, the lobby and all socket I/O on one thread (one event loop), with no network between client, Worker and objects; the figures are this machine's CPU in workerd's C++ runtime and JavaScript, not the CPU Cloudflare bills or its objects' independent parallel execution";

/// How a calibration's figures were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// From workerd's CPU (`calibrate --local`).
    Cpu,
    /// From latency differences across the ladder (`calibrate --target`): no CPU measured.
    Latency,
}

impl Kind {
    /// `CPU-derived` or `latency-derived`.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Cpu => "CPU-derived",
            Kind::Latency => "latency-derived",
        }
    }
}

/// `[calibration]`: what the file is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// [`FORMAT`].
    pub format: u32,
    /// How the figures were obtained.
    pub kind: Kind,
    /// A plain label (where and how it was measured).
    #[serde(default)]
    pub label: String,
    /// What the measured system is not.
    #[serde(default)]
    pub not_cloudflare: String,
}

/// `[platform]`: the scenario keys a calibration replaces.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformFigures {
    /// Worker CPU ms per WebSocket upgrade (the Worker's CPU per request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_cpu_ms_per_connect: Option<f64>,
    /// `[platform.service]`.
    #[serde(default)]
    pub service: ServiceFigures,
}

/// `[platform.service]`, every key optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFigures {
    /// Per connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<DistSpec>,
    /// Per inbound message, before its fan-out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<DistSpec>,
    /// Per recipient of the fan-out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_recipient: Option<Dur>,
    /// Per lobby RPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc: Option<DistSpec>,
    /// Per close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close: Option<DistSpec>,
}

/// `[measured]`: how the figures were obtained (kept as the file says; dosim reads it only
/// to check it parses).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// The machine.
    #[serde(default)]
    pub machine: Machine,
    /// workerd's version (from `workers/node_modules/workerd/package.json`), or the target.
    #[serde(default)]
    pub workerd_version: String,
    /// The target driven (`local workerd` or a URL).
    #[serde(default)]
    pub target: String,
    /// When (RFC 3339, UTC).
    #[serde(default)]
    pub date: String,
    /// dosim's version.
    #[serde(default)]
    pub dosim_version: String,
    /// `quick` or `full`.
    #[serde(default)]
    pub ladder: String,
    /// Wall time of the whole calibration, seconds.
    #[serde(default)]
    pub elapsed_seconds: f64,
    /// How the fit was made (the model, its rows, the weights).
    #[serde(default)]
    pub method: String,
    /// Rows − fitted parameters.
    #[serde(default)]
    pub degrees_of_freedom: usize,
    /// Root mean square of the residuals, in the rows' unit.
    #[serde(default)]
    pub rms_residual: f64,
    /// What the data could not separate, and why (those keys keep the scenario's values).
    #[serde(default)]
    pub not_separable: Vec<String>,
    /// Fits applied with a warning (a 95% interval that reaches 0).
    #[serde(default)]
    pub caveats: Vec<String>,
    /// Every fitted parameter, by name, in ms.
    #[serde(default)]
    pub fits: BTreeMap<String, fit::Coefficient>,
    /// Every run of the ladder.
    #[serde(default)]
    pub runs: Vec<ladder::RunRecord>,
    /// Every row of the fit.
    #[serde(default)]
    pub residuals: Vec<fit::Residual>,
}

/// The machine a calibration was measured on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Logical CPUs.
    #[serde(default)]
    pub cores: usize,
    /// `model name` from /proc/cpuinfo.
    #[serde(default)]
    pub cpu_model: String,
    /// The kernel release (/proc/sys/kernel/osrelease).
    #[serde(default)]
    pub kernel: String,
    /// The load average when the calibration started (/proc/loadavg), as a caveat.
    #[serde(default)]
    pub loadavg: String,
}

impl Machine {
    /// This machine.
    pub fn here() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpu_model = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == "model name").then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            loadavg: read("/proc/loadavg")
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// A calibration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// `[calibration]`.
    pub calibration: Header,
    /// `[platform]`.
    #[serde(default)]
    pub platform: PlatformFigures,
    /// `[measured]`.
    #[serde(default)]
    pub measured: Measured,
    /// Where it was read from (not a key).
    #[serde(skip)]
    pub path: PathBuf,
}

impl Calibration {
    /// Read and check a calibration file: bad TOML, an unknown key, a negative or
    /// out-of-range figure are [`crate::InputError`]s naming the file, the line and the key.
    pub fn from_file(path: &Path) -> Result<Calibration> {
        let text = crate::error::read_text(path)?;
        Calibration::parse(&text, path)
    }

    /// Parse and check calibration text; `path` is used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Calibration> {
        let mut cal: Calibration = parse_toml(text, path)?;
        cal.path = path.to_path_buf();
        cal.check()
            .map_err(|(key, message)| locate(text, path, &key, message))?;
        Ok(cal)
    }

    fn check(&self) -> std::result::Result<(), (String, String)> {
        let bad = |k: &str, m: String| Err((k.to_string(), m));
        if self.calibration.format != FORMAT {
            return bad(
                "calibration.format",
                format!(
                    "this dosim reads format {FORMAT}, found {}",
                    self.calibration.format
                ),
            );
        }
        if let Some(w) = self.platform.worker_cpu_ms_per_connect {
            if !(w.is_finite() && (0.0..=MAX_WORKER_CPU_MS).contains(&w)) {
                return bad(
                    "platform.worker_cpu_ms_per_connect",
                    format!(
                        "must be between 0 and {MAX_WORKER_CPU_MS}, found {}",
                        crate::error::Shown(w)
                    ),
                );
            }
        }
        let s = &self.platform.service;
        for (key, d) in [
            ("connect", &s.connect),
            ("message", &s.message),
            ("rpc", &s.rpc),
            ("close", &s.close),
        ] {
            if let Some(d) = d {
                let key = format!("platform.service.{key}");
                d.validate().map_err(|m| (key.clone(), m))?;
                if d.largest_parameter() > MAX_DURATION {
                    return bad(&key, format!("must be at most {MAX_DURATION}"));
                }
            }
        }
        if s.per_recipient.is_some_and(|d| d > MAX_DURATION) {
            return bad(
                "platform.service.per_recipient",
                format!("must be at most {MAX_DURATION}"),
            );
        }
        Ok(())
    }

    /// Replace the figures this calibration has in `p`, recording each replaced key's
    /// source in `p.calibrated`. Use [`crate::scenario::Scenario::apply_calibration`], which
    /// validates the result.
    pub fn apply_to(&self, p: &mut Platform) {
        let mut mark = |key: &str| {
            let fit = self
                .measured
                .fits
                .get(key.rsplit('.').next().unwrap_or(key));
            let what = match fit.and_then(|f| f.ci95_low.zip(f.ci95_high)) {
                Some((lo, hi)) => format!(
                    "{key}, {} fit (95% CI {lo:.4}–{hi:.4} ms)",
                    self.calibration.kind.label()
                ),
                None => format!("{key}, {} fit", self.calibration.kind.label()),
            };
            p.calibrated.insert(
                key.to_string(),
                Source::Calibrated {
                    file: self.path.clone(),
                    what,
                },
            );
        };
        if let Some(w) = self.platform.worker_cpu_ms_per_connect {
            p.worker_cpu_ms_per_connect = w;
            mark("platform.worker_cpu_ms_per_connect");
        }
        let s = &self.platform.service;
        let dists = [
            ("connect", &s.connect, &mut p.service.connect),
            ("message", &s.message, &mut p.service.message),
            ("rpc", &s.rpc, &mut p.service.rpc),
            ("close", &s.close, &mut p.service.close),
        ];
        for (key, from, to) in dists {
            if let Some(d) = from {
                *to = d.clone();
                mark(&format!("platform.service.{key}"));
            }
        }
        if let Some(d) = s.per_recipient {
            p.service.per_recipient = d;
            mark("platform.service.per_recipient");
        }
    }

    /// The file's text: a commented header, `[calibration]`, `[platform]` and `[measured]`.
    pub fn to_toml(&self) -> String {
        #[derive(Serialize)]
        struct Doc<'a> {
            calibration: &'a Header,
            platform: &'a PlatformFigures,
            measured: &'a Measured,
        }
        let body = toml::to_string(&Doc {
            calibration: &self.calibration,
            platform: &self.platform,
            measured: &self.measured,
        })
        .expect("a calibration serializes");
        format!(
            "# dosim calibration ({}), written by `dosim calibrate`.\n# Reference it from a scenario with `platform.calibration = \"<this file>\"` or pass\n# `--calibration <this file>`; its [platform] keys replace the scenario's. Keys absent\n# from [platform] could not be separated from the data ([measured].not_separable says why).\n\n{body}",
            self.calibration.kind.label()
        )
    }
}

/// The fits as a table: each parameter's estimate and 95% interval (ms), or why it has none.
pub fn summary(cal: &Calibration) -> String {
    use std::fmt::Write as _;
    let m = &cal.measured;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "dosim calibrate: {} · {} ladder, {} runs in {:.0} s · {} rows, {} degrees of freedom, residual rms {:.3} ms",
        cal.calibration.kind.label(),
        m.ladder,
        m.runs.len(),
        m.elapsed_seconds,
        m.residuals.len(),
        m.degrees_of_freedom,
        m.rms_residual
    );
    let _ = writeln!(o, "  {}", cal.calibration.label);
    let _ = writeln!(
        o,
        "\n{:<16} {:>10} {:>10} {:>22}",
        "parameter", "ms", "std err", "95% interval"
    );
    for c in m.fits.values() {
        match (c.value, c.ci95_low.zip(c.ci95_high)) {
            (Some(v), Some((lo, hi))) => {
                let _ = writeln!(
                    o,
                    "{:<16} {v:>10.4} {:>10.4} {:>22}",
                    c.name,
                    c.std_error.unwrap_or(0.0),
                    format!("{lo:.4} – {hi:.4}")
                );
            }
            (Some(v), None) => {
                let _ = writeln!(
                    o,
                    "{:<16} {v:>10.4} {:>10} {:>22}",
                    c.name, "-", "- (no df)"
                );
            }
            (None, _) => {
                let _ = writeln!(o, "{:<16} {:>10} (not separable)", c.name, "-");
            }
        }
    }
    let _ = writeln!(o, "\nApplied (the scenario keys the file replaces):");
    let p = &cal.platform;
    if let Some(w) = p.worker_cpu_ms_per_connect {
        let _ = writeln!(o, "  platform.worker_cpu_ms_per_connect = {w:.4}");
    }
    let s = &p.service;
    for (k, d) in [
        ("connect", &s.connect),
        ("message", &s.message),
        ("rpc", &s.rpc),
        ("close", &s.close),
    ] {
        if let Some(d) = d {
            let _ = writeln!(o, "  platform.service.{k} = {:.4} ms", d.mean_ns() / 1e6);
        }
    }
    if let Some(d) = s.per_recipient {
        let _ = writeln!(o, "  platform.service.per_recipient = {:.4} ms", d.millis());
    }
    if !m.not_separable.is_empty() {
        let _ = writeln!(o, "\nNot applied:");
        for n in &m.not_separable {
            let _ = writeln!(o, "  - {n}");
        }
    }
    if !m.caveats.is_empty() {
        let _ = writeln!(o, "\nApplied with a caveat:");
        for n in &m.caveats {
            let _ = writeln!(o, "  - {n}");
        }
    }
    let _ = writeln!(o, "\n{}", cal.calibration.not_cloudflare);
    o
}

/// A line for a report's provenance when `p` carries calibrated figures: which keys, from
/// which file.
pub fn note(p: &Platform) -> Option<String> {
    if p.calibrated.is_empty() {
        return None;
    }
    let mut files: Vec<String> = Vec::new();
    for s in p.calibrated.values() {
        if let Source::Calibrated { file, .. } = s {
            let f = file.display().to_string();
            if !files.contains(&f) {
                files.push(f);
            }
        }
    }
    let keys: Vec<&str> = p.calibrated.keys().map(String::as_str).collect();
    Some(format!(
        "calibrated: {} from {}",
        keys.join(", "),
        files.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "[calibration]\nformat = 1\nkind = \"cpu\"\n[platform]\nworker_cpu_ms_per_connect = 0.2\n[platform.service]\nconnect = { dist = \"constant\", value = \"0.4ms\" }\nper_recipient = \"37us\"\n";

    #[test]
    fn a_calibration_replaces_only_its_keys_and_says_so() {
        let cal = Calibration::parse(GOOD, Path::new("cal.toml")).unwrap();
        let mut p = Platform::default();
        let message = p.service.message.clone();
        cal.apply_to(&mut p);
        assert_eq!(p.worker_cpu_ms_per_connect, 0.2);
        assert_eq!(p.service.per_recipient, Dur(37_000));
        assert_eq!(p.service.message, message, "not in the file: kept");
        assert_eq!(p.calibrated.len(), 3);
        let n = note(&p).unwrap();
        assert!(
            n.contains("platform.service.connect") && n.contains("cal.toml"),
            "{n}"
        );
        // It round-trips through its own text.
        let again = Calibration::parse(&cal.to_toml(), Path::new("cal.toml")).unwrap();
        assert_eq!(again, cal);
    }

    #[test]
    fn bad_figures_name_the_line_and_key() {
        let text = GOOD.replace("per_recipient = \"37us\"", "per_recipient = \"-3us\"");
        let e = Calibration::parse(&text, Path::new("cal.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cal.toml:8:"), "{e}");
        assert!(e.contains("platform.service.per_recipient"), "{e}");
        let text = GOOD.replace("0.2", "-1");
        let e = Calibration::parse(&text, Path::new("cal.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":5:") && e.contains("worker_cpu_ms_per_connect"),
            "{e}"
        );
        let text = GOOD.replace("[platform.service]", "[platform.service]\nconect = \"1ms\"");
        let e = Calibration::parse(&text, Path::new("cal.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("platform.service.conect"), "{e}");
    }
}
