//! Variation: the points of a sweep — any scenario key over a list or a range of values,
//! several keys as a grid — and how each point's scenario is made.
//!
//! A point is made by editing the scenario as a TOML value (the parsed scenario, serialized
//! with every default written out) and parsing it again through [`Scenario::parse`], so that
//! a varied value passes exactly the checks a scenario file's value does, and a bad key or
//! value is refused as in a file: exit 2, naming the key (at its line in the scenario file
//! when it is written there) and the `--vary` value.
//!
//! - **Specs.** `50,500,5000` (a list), `50..100000:12:log` or `0..1:5:lin` (a range: its
//!   ends, a count and the spacing; `lin` when left out). A duration key takes durations
//!   (`50us,100us`, `1ms..10ms:4:log`), a boolean key `true,false`. Integer keys take the
//!   nearest whole number.
//! - **Load.** `arrivals.sessions_per_day`, `arrivals.rate_per_second` or the pseudo-key
//!   `concurrent_users` (converted to sessions per day by Little's law at the busiest hour:
//!   users = peak arrival rate × mean session length) set the load; the daily profile is kept.
//! - **Scale.** How rooms and limits follow the load ([`Scale`]): by default rooms scale in
//!   proportion (users per room stay as in the scenario) and limits do not (they are the
//!   design under test). A key varied explicitly wins over its scaled value.
//! - **Window.** [`WindowChoice`] shortens the simulated window (a day, a week) for high loads;
//!   [`crate::projection`] projects it onto the month as for any window.

use std::fmt;

use crate::error::{Error, Result};
use crate::scenario::{Dur, Scenario};

/// The pseudo-key that sets the load as expected concurrent users at the busiest hour.
pub const CONCURRENT_USERS: &str = "concurrent_users";

/// One value of a varied key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// A number (an integer key takes the nearest whole number).
    Number(f64),
    /// A duration (for a duration key such as a distribution's `mean`).
    Duration(Dur),
    /// A boolean (for example `platform.hibernation`).
    Bool(bool),
}

impl Value {
    /// The value as a number for charts and tables: durations in seconds, booleans 1 or 0.
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Number(x) => x,
            Value::Duration(d) => d.secs(),
            Value::Bool(b) => f64::from(u8::from(b)),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(x) => write!(f, "{}", crate::footprint::count(*x)),
            Value::Duration(d) => write!(f, "{d}"),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// One varied key and its values, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// The dotted scenario key (or [`CONCURRENT_USERS`]).
    pub key: String,
    /// How the user wrote it, for messages: `--vary KEY` or `--sessions-per-day`.
    pub option: String,
    /// Its values.
    pub values: Vec<Value>,
}

impl Axis {
    /// Parse `KEY=SPEC` as given to `--vary`.
    pub fn parse(arg: &str) -> Result<Axis> {
        let usage = |m: String| Error::Usage(format!("--vary {arg}: {m}"));
        let (key, spec) = arg
            .split_once('=')
            .ok_or_else(|| usage("expected KEY=SPEC, e.g. rooms.count=10,20,40".into()))?;
        let key = key.trim();
        if key.is_empty()
            || key.starts_with('.')
            || key.ends_with('.')
            || key.contains("..")
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(usage(format!("{key:?} is not a dotted scenario key")));
        }
        let values = parse_spec(spec).map_err(usage)?;
        Ok(Axis {
            key: key.to_string(),
            option: format!("--vary {key}"),
            values,
        })
    }

    /// The axis of `--sessions-per-day` (the shorthand for `--vary arrivals.sessions_per_day`).
    pub fn sessions_per_day(loads: &[f64]) -> Result<Axis> {
        for &l in loads {
            if !(l.is_finite() && l > 0.0) {
                return Err(Error::Usage(format!(
                    "--sessions-per-day: {l} is not a positive number"
                )));
            }
        }
        Ok(Axis {
            key: "arrivals.sessions_per_day".into(),
            option: "--sessions-per-day".into(),
            values: loads.iter().map(|&l| Value::Number(l)).collect(),
        })
    }

    /// Whether this axis sets the load.
    pub fn is_load(&self) -> bool {
        is_load_key(&self.key)
    }
}

fn is_load_key(key: &str) -> bool {
    matches!(
        key,
        "arrivals.sessions_per_day" | "arrivals.rate_per_second" | CONCURRENT_USERS
    )
}

/// Parse a SPEC: a comma-separated list, or `A..B:N[:lin|log]`.
pub fn parse_spec(spec: &str) -> std::result::Result<Vec<Value>, String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err("no values (a list like 50,500,5000 or a range like 50..100000:12:log)".into());
    }
    if let Some((from, rest)) = spec.split_once("..") {
        let mut parts = rest.split(':');
        let to = parts.next().unwrap_or("");
        let count = parts
            .next()
            .ok_or("a range needs a count: A..B:N[:lin|log], e.g. 50..100000:12:log")?;
        let log = match parts.next() {
            None | Some("lin") => false,
            Some("log") => true,
            Some(other) => return Err(format!("spacing {other:?}: expected lin or log")),
        };
        if parts.next().is_some() {
            return Err("a range is A..B:N[:lin|log]".into());
        }
        let n: usize = count
            .trim()
            .parse()
            .map_err(|_| format!("count {count:?}: expected a whole number of points >= 2"))?;
        if n < 2 {
            return Err(format!("count {n}: a range needs at least 2 points"));
        }
        if n > MAX_POINTS {
            return Err(format!("count {n}: at most {MAX_POINTS} points"));
        }
        let (a, b) = (parse_value(from)?, parse_value(to)?);
        let (x0, x1, dur) = match (a, b) {
            (Value::Number(x), Value::Number(y)) => (x, y, false),
            (Value::Duration(x), Value::Duration(y)) => (x.0 as f64, y.0 as f64, true),
            _ => return Err("a range's ends must both be numbers or both be durations".into()),
        };
        if log && !(x0 > 0.0 && x1 > 0.0) {
            return Err("a log range needs ends > 0".into());
        }
        let at = |i: usize| {
            let t = i as f64 / (n - 1) as f64;
            let x = if i == 0 {
                x0
            } else if i == n - 1 {
                x1
            } else if log {
                (x0.ln() + t * (x1.ln() - x0.ln())).exp()
            } else {
                x0 + t * (x1 - x0)
            };
            if dur {
                Value::Duration(Dur(x.round() as u64))
            } else {
                Value::Number(x)
            }
        };
        return Ok((0..n).map(at).collect());
    }
    let values = spec
        .split(',')
        .map(parse_value)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let kind = |v: &Value| std::mem::discriminant(v);
    if values.iter().any(|v| kind(v) != kind(&values[0])) {
        return Err("the values must all be numbers, all durations or all booleans".into());
    }
    if values.len() > MAX_POINTS {
        return Err(format!("{} values: at most {MAX_POINTS}", values.len()));
    }
    Ok(values)
}

/// The most values one axis may have.
pub const MAX_POINTS: usize = 10_000;

fn parse_value(s: &str) -> std::result::Result<Value, String> {
    let t = s.trim();
    match t {
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        "" => return Err("an empty value".into()),
        _ => {}
    }
    if let Ok(x) = t.parse::<f64>() {
        return if x.is_finite() {
            Ok(Value::Number(x))
        } else {
            Err(format!("{t:?} is not a finite number"))
        };
    }
    t.parse::<Dur>()
        .map(Value::Duration)
        .map_err(|_| format!("{t:?} is not a number, a duration (like 50us or 30s) or a boolean"))
}

/// How rooms and limits follow the load (`--scale`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    /// `rooms.count` in proportion to the load.
    pub rooms: bool,
    /// `limits.max_total_connections` and `limits.max_active_rooms` (where not unlimited)
    /// in proportion to the load.
    pub limits: bool,
}

impl Default for Scale {
    /// Rooms scale with the load, limits do not (the sweep's behaviour before `--scale`).
    fn default() -> Scale {
        Scale {
            rooms: true,
            limits: false,
        }
    }
}

impl std::str::FromStr for Scale {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Scale, String> {
        let mut scale = Scale {
            rooms: false,
            limits: false,
        };
        if s.trim() == "none" {
            return Ok(scale);
        }
        for part in s.split(',') {
            match part.trim() {
                "rooms" => scale.rooms = true,
                "limits" => scale.limits = true,
                other => {
                    return Err(format!(
                        "{other:?}: expected rooms, limits, rooms,limits or none"
                    ))
                }
            }
        }
        Ok(scale)
    }
}

impl Scale {
    /// In words, for a report.
    pub fn describe(self) -> &'static str {
        match (self.rooms, self.limits) {
            (true, false) => "rooms scaled with the load, limits as in the scenario",
            (true, true) => "rooms and the global limits scaled with the load",
            (false, true) => "the global limits scaled with the load, rooms as in the scenario",
            (false, false) => "rooms and limits as in the scenario (not scaled)",
        }
    }
}

/// The window each point simulates (`--window`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WindowChoice {
    /// The scenario's own window.
    #[default]
    Scenario,
    /// One day.
    Day,
    /// One week.
    Week,
    /// A 30-day month.
    Month,
}

impl std::str::FromStr for WindowChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<WindowChoice, String> {
        match s {
            "scenario" => Ok(WindowChoice::Scenario),
            "busiest-day" | "day" => Ok(WindowChoice::Day),
            "week" => Ok(WindowChoice::Week),
            "month" => Ok(WindowChoice::Month),
            _ => Err(format!(
                "{s:?}: expected busiest-day, week, month or scenario"
            )),
        }
    }
}

impl WindowChoice {
    /// Whether the window starts at the end of the profile's quietest stretch
    /// ([`quiet_start`]) rather than at midnight: a day or a week does (its daily profile
    /// repeats, so any whole day is the same), a month or the scenario's own window does not.
    pub fn starts_quiet(self) -> bool {
        matches!(self, WindowChoice::Day | WindowChoice::Week)
    }

    /// The window's length, if it replaces the scenario's.
    pub fn length(self) -> Option<Dur> {
        let days = |d: u64| Some(Dur(d * 86_400 * crate::scenario::NS_PER_SEC));
        match self {
            WindowChoice::Scenario => None,
            WindowChoice::Day => days(1),
            WindowChoice::Week => days(7),
            WindowChoice::Month => days(30),
        }
    }
}

/// The hour at which a short window starts (see [`WindowChoice::starts_quiet`]): the first
/// hour whose preceding [`QUIET_HOURS`] hours carry the least arrival weight, so that the
/// rooms a simulation starts empty are (nearly) empty in the real system too. A flat profile
/// gives 0 (no hour is quieter), seed-scale's evening peak (19:00–24:00) gives 04:00.
pub fn quiet_start(weights: &[f64; 24]) -> usize {
    let before = |h: usize| -> f64 { (1..=QUIET_HOURS).map(|k| weights[(h + 24 - k) % 24]).sum() };
    let mut best = 0;
    for h in 1..24 {
        // Strictly less, with a relative margin: ties (and rounding) keep the earliest hour.
        if before(h) < before(best) * (1.0 - 1e-9) {
            best = h;
        }
    }
    best
}

/// How many hours before a short window's start [`quiet_start`] weighs.
pub const QUIET_HOURS: usize = 4;

/// Every point of the grid of `axes`: the first axis outermost, each point one value per axis.
pub fn grid(axes: &[Axis]) -> Vec<Vec<Value>> {
    let mut points: Vec<Vec<Value>> = vec![Vec::new()];
    for axis in axes {
        points = points
            .into_iter()
            .flat_map(|p| {
                axis.values.iter().map(move |&v| {
                    let mut q = p.clone();
                    q.push(v);
                    q
                })
            })
            .collect();
    }
    points
}

/// Check the axes together: no key twice, at most one load key.
pub fn check_axes(axes: &[Axis]) -> Result<()> {
    for (i, a) in axes.iter().enumerate() {
        if axes[..i].iter().any(|b| b.key == a.key) {
            return Err(Error::Usage(format!("--vary {}: given twice", a.key)));
        }
        if a.is_load() {
            if let Some(b) = axes[..i].iter().find(|b| b.is_load()) {
                return Err(Error::Usage(format!(
                    "{} and {} both set the load: vary one of them",
                    b.option, a.option
                )));
            }
        }
    }
    // The grid is the product of the axes: at most as many points as one axis may have.
    let points = axes
        .iter()
        .try_fold(1usize, |n, a| n.checked_mul(a.values.len()))
        .filter(|&n| n <= MAX_POINTS);
    if points.is_none() && axes.len() > 1 {
        let sizes: Vec<String> = axes.iter().map(|a| a.values.len().to_string()).collect();
        return Err(Error::Usage(format!(
            "{}: a grid of {} points, at most {MAX_POINTS}",
            axes.iter()
                .map(|a| a.option.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            sizes.join(" × ")
        )));
    }
    Ok(())
}

/// Check the `--set` keys against each other and the axes: each key once, and none also
/// varied (one value would silently win over the other).
pub fn check_fixed(fixed: &[Fixed], axes: &[Axis]) -> Result<()> {
    for (i, f) in fixed.iter().enumerate() {
        if fixed[..i].iter().any(|g| g.key == f.key) {
            return Err(Error::Usage(format!("--set {}: given twice", f.key)));
        }
        if let Some(a) = axes.iter().find(|a| a.key == f.key) {
            return Err(Error::Usage(format!(
                "--set {} and {} both give {}: give one of them",
                f.key, a.option, f.key
            )));
        }
    }
    Ok(())
}

/// Expected concurrent users of `s` at its busiest hour (Little's law: the busiest hour's
/// arrival rate × the mean session length), as [`crate::footprint`] estimates them.
pub fn concurrent_users(s: &Scenario) -> f64 {
    s.arrivals.mean_rate() * peak_weight(s) * mean_length_s(s)
}

fn peak_weight(s: &Scenario) -> f64 {
    s.arrivals
        .profile
        .weights()
        .iter()
        .copied()
        .fold(0.0, f64::max)
}

fn mean_length_s(s: &Scenario) -> f64 {
    (s.sessions.length.mean_ns() / 1e9).min(s.window.length.secs())
}

/// Sessions per day that give `users` concurrent users at the busiest hour of `s`.
pub fn sessions_per_day_for(s: &Scenario, users: f64) -> f64 {
    users / (peak_weight(s) * mean_length_s(s)) * 86_400.0
}

/// A key set to one value at every point (`--set KEY=VALUE`), after scaling and before the
/// varied keys: for example `limits.max_active_rooms="unlimited"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fixed {
    /// The dotted key.
    pub key: String,
    /// Its value, a TOML value (a bare word is a string).
    pub value: toml::Value,
}

impl Fixed {
    /// Parse `KEY=VALUE` as given to `--set`.
    pub fn parse(arg: &str) -> Result<Fixed> {
        let (key, value) = arg.split_once('=').ok_or_else(|| {
            Error::Usage(format!(
                "--set {arg}: expected KEY=VALUE, e.g. limits.max_active_rooms=unlimited"
            ))
        })?;
        let key = key.trim().to_string();
        if Axis::parse(&format!("{key}=1")).is_err() {
            return Err(Error::Usage(format!(
                "--set {arg}: {key:?} is not a dotted scenario key"
            )));
        }
        let value = format!("v = {}", value.trim())
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.trim().to_string()));
        Ok(Fixed { key, value })
    }
}

impl fmt::Display for Fixed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}", self.key, self.value)
    }
}

/// The scenario of one point: `base` with `values` (one per axis) set, rooms and limits
/// scaled as `scale` says, and the window replaced as `window` says; validated as a file.
pub fn apply(
    base: &Scenario,
    axes: &[Axis],
    values: &[Value],
    scale: Scale,
    window: WindowChoice,
) -> Result<Scenario> {
    apply_with(base, &[], axes, values, scale, window)
}

/// [`apply`] with keys `fixed` at every point.
pub fn apply_with(
    base: &Scenario,
    fixed: &[Fixed],
    axes: &[Axis],
    values: &[Value],
    scale: Scale,
    window: WindowChoice,
) -> Result<Scenario> {
    let label = axes
        .iter()
        .zip(values)
        .map(|(a, v)| match a.option.as_str() {
            "--sessions-per-day" => format!("--sessions-per-day {v}"),
            _ => format!("{}={v}", a.option),
        })
        .collect::<Vec<_>>()
        .join(" ");
    let label = if label.is_empty() {
        "--set".to_string()
    } else {
        label
    };
    let original = std::fs::read_to_string(&base.path).unwrap_or_default();
    let at = |key: &str, message: String| {
        crate::scenario::locate(&original, &base.path, key, format!("at {label}: {message}"))
    };
    let mut doc = toml::Value::try_from(base)
        .map_err(|e| Error::Usage(format!("the scenario as TOML: {e}")))?;
    let base_rate = base.arrivals.mean_rate();
    let mut factor = 1.0;
    for (axis, &v) in axes.iter().zip(values) {
        if !axis.is_load() {
            continue;
        }
        let Value::Number(x) = v else {
            return Err(at(&axis.key, "the load takes numbers".into()));
        };
        if !(x.is_finite() && x > 0.0) {
            return Err(at(
                &axis.key,
                format!("must be > 0, found {}", crate::error::Shown(x)),
            ));
        }
        let (key, x) = match axis.key.as_str() {
            CONCURRENT_USERS => ("sessions_per_day", sessions_per_day_for(base, x)),
            "arrivals.sessions_per_day" => ("sessions_per_day", x),
            _ => ("rate_per_second", x),
        };
        let arrivals = table(&mut doc, "arrivals").map_err(|m| at("arrivals", m))?;
        arrivals.remove("sessions_per_day");
        arrivals.remove("rate_per_second");
        arrivals.insert(key.into(), toml::Value::Float(x));
        let rate = if key == "sessions_per_day" {
            x / 86_400.0
        } else {
            x
        };
        factor = rate / base_rate;
    }
    if factor != 1.0 {
        let scaled = |key: &str, n: u32| -> Result<toml::Value> {
            let x = (f64::from(n) * factor).round().max(1.0);
            if crate::footprint::exceeds(x, f64::from(u32::MAX)) {
                return Err(at(
                    key,
                    format!(
                        "the {n} scale to {}, more than the largest count, {}",
                        crate::footprint::count(x),
                        u32::MAX
                    ),
                ));
            }
            Ok(toml::Value::Integer(x as i64))
        };
        if scale.rooms {
            let v = scaled("rooms.count", base.rooms.count)?;
            table(&mut doc, "rooms")
                .map_err(|m| at("rooms", m))?
                .insert("count".into(), v);
        }
        if scale.limits {
            for (key, n) in [
                ("max_total_connections", base.limits.max_total_connections),
                ("max_active_rooms", base.limits.max_active_rooms),
            ] {
                if let Some(n) = n {
                    let v = scaled(&format!("limits.{key}"), n)?;
                    table(&mut doc, "limits")
                        .map_err(|m| at("limits", m))?
                        .insert(key.into(), v);
                }
            }
        }
    }
    if let Some(length) = window.length() {
        table(&mut doc, "window")
            .map_err(|m| at("window", m))?
            .insert("length".into(), toml::Value::String(length.to_string()));
        if window.starts_quiet() {
            // A simulation starts with empty rooms: begin the short window where the real
            // system is emptiest, so that little of what a day carries over is missing.
            let weights = base.arrivals.profile.weights();
            let start = quiet_start(&weights);
            if start != 0 {
                let rotated = (0..24)
                    .map(|h| toml::Value::Float(weights[(start + h) % 24]))
                    .collect();
                table(&mut doc, "arrivals")
                    .map_err(|m| at("arrivals", m))?
                    .insert("profile".into(), toml::Value::Array(rotated));
            }
        }
    }
    for f in fixed {
        set_raw(&mut doc, &f.key, f.value.clone())
            .map_err(|m| at(&f.key, format!("--set {f}: {m}")))?;
    }
    for (axis, &v) in axes.iter().zip(values) {
        if axis.is_load() {
            continue;
        }
        set(&mut doc, &axis.key, v).map_err(|m| at(&axis.key, m))?;
    }
    let text = toml::to_string(&doc)
        .map_err(|e| Error::Usage(format!("the varied scenario as TOML: {e}")))?;
    let mut out = Scenario::parse(&text, &base.path).map_err(|e| match e {
        Error::Input(e) => at(&e.key, e.message),
        other => other,
    })?;
    // The record of calibrated keys is no TOML key: carry it over, but for the keys this
    // point sets itself (--set, --vary), which are no longer the calibration's.
    let own = |key: &str| {
        fixed
            .iter()
            .map(|f| f.key.as_str())
            .chain(axes.iter().map(|a| a.key.as_str()))
            .any(|k| {
                key == k || key.starts_with(&format!("{k}.")) || k.starts_with(&format!("{key}."))
            })
    };
    for (key, source) in &base.platform.calibrated {
        if !own(key) {
            out.platform.calibrated.insert(key.clone(), source.clone());
        }
    }
    Ok(out)
}

/// The table at top-level `name` of `doc`, created if absent.
fn table<'a>(
    doc: &'a mut toml::Value,
    name: &str,
) -> std::result::Result<&'a mut toml::Table, String> {
    let top = doc.as_table_mut().ok_or("the scenario is not a table")?;
    top.entry(name)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .ok_or_else(|| format!("{name} is not a table"))
}

/// Set the dotted `key` of `doc` to `v`, written as the value already there is: a whole
/// number for an integer (or `"unlimited"` count) key, a duration string for a duration key.
/// A key that is not there is added, so that the parser refuses it as an unknown key.
fn set(doc: &mut toml::Value, key: &str, v: Value) -> std::result::Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    let (last, path) = parts.split_last().ok_or("an empty key")?;
    let mut t = doc.as_table_mut().ok_or("the scenario is not a table")?;
    for (i, p) in path.iter().enumerate() {
        t = t
            .entry(*p)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("{} is not a table", parts[..=i].join(".")))?;
    }
    let new = match (t.get(*last), v) {
        (Some(toml::Value::Table(_)), _) => {
            return Err(format!(
                "{key} is a table; vary one of its keys (for a distribution, e.g. {key}.mean)"
            ))
        }
        (Some(toml::Value::Integer(_)), Value::Number(x)) => integer(x)?,
        (Some(toml::Value::String(s)), Value::Number(x)) if s == "unlimited" => integer(x)?,
        (Some(toml::Value::String(s)), Value::Number(_)) if s.parse::<Dur>().is_ok() => {
            return Err(format!(
                "{key} is a duration: give durations like 50us,100us or 1ms..10ms:4:log"
            ))
        }
        (_, Value::Number(x)) => toml::Value::Float(x),
        (_, Value::Duration(d)) => toml::Value::String(d.to_string()),
        (_, Value::Bool(b)) => toml::Value::Boolean(b),
    };
    t.insert((*last).to_string(), new);
    Ok(())
}

fn set_raw(doc: &mut toml::Value, key: &str, v: toml::Value) -> std::result::Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    let (last, path) = parts.split_last().ok_or("an empty key")?;
    let mut t = doc.as_table_mut().ok_or("the scenario is not a table")?;
    for (i, p) in path.iter().enumerate() {
        t = t
            .entry(*p)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("{} is not a table", parts[..=i].join(".")))?;
    }
    t.insert((*last).to_string(), v);
    Ok(())
}

fn integer(x: f64) -> std::result::Result<toml::Value, String> {
    let n = x.round();
    if n.is_nan() || n.abs() >= 9e15 {
        return Err(format!("{x} is not a whole number this key can take"));
    }
    Ok(toml::Value::Integer(n as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nums(spec: &str) -> Vec<f64> {
        parse_spec(spec)
            .unwrap()
            .into_iter()
            .map(Value::as_f64)
            .collect()
    }

    #[test]
    fn specs_are_lists_or_ranges() {
        assert_eq!(nums("50,500,5000"), [50.0, 500.0, 5000.0]);
        assert_eq!(nums("0..1:5:lin"), [0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(nums("0..10:3"), [0.0, 5.0, 10.0]);
        let log = nums("50..100000:12:log");
        assert_eq!(log.len(), 12);
        assert_eq!((log[0], log[11]), (50.0, 100_000.0));
        // Equal ratios from point to point.
        let r = log[1] / log[0];
        for w in log.windows(2) {
            assert!((w[1] / w[0] - r).abs() < 1e-9, "{log:?}");
        }
        assert_eq!(
            parse_spec("50us,1ms").unwrap(),
            [
                Value::Duration(Dur(50_000)),
                Value::Duration(Dur(1_000_000))
            ]
        );
        assert_eq!(
            parse_spec("1ms..100ms:3:log").unwrap()[1],
            Value::Duration(Dur(10_000_000))
        );
        assert_eq!(
            parse_spec("true,false").unwrap(),
            [Value::Bool(true), Value::Bool(false)]
        );
    }

    #[test]
    fn a_point_keeps_the_calibrated_keys_it_does_not_set_itself() {
        let mut base = Scenario::parse(
            "name = \"t\"\n[window]\nlength = \"1d\"\n[arrivals]\nsessions_per_day = 500\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        for key in [
            "platform.service.connect",
            "platform.worker_cpu_ms_per_connect",
        ] {
            base.platform.calibrated.insert(
                key.into(),
                crate::meter::Source::Calibrated {
                    file: "cal.toml".into(),
                    what: "fit".into(),
                },
            );
        }
        let axes = [
            Axis::sessions_per_day(&[1000.0]).unwrap(),
            Axis::parse("platform.worker_cpu_ms_per_connect=0.5").unwrap(),
        ];
        let values: Vec<Value> = axes.iter().map(|a| a.values[0]).collect();
        let s = apply_with(
            &base,
            &[],
            &axes,
            &values,
            Scale::default(),
            WindowChoice::Scenario,
        )
        .unwrap();
        let keys: Vec<&str> = s.platform.calibrated.keys().map(String::as_str).collect();
        assert_eq!(keys, ["platform.service.connect"]);
    }

    #[test]
    fn bad_specs_say_why() {
        for (spec, needle) in [
            ("", "no values"),
            ("1,,2", "empty"),
            ("1,x", "not a number"),
            ("1,2ms", "all be numbers"),
            ("1..10", "count"),
            ("1..10:1", "at least 2"),
            ("1..10:x", "whole number"),
            ("0..10:3:log", "> 0"),
            ("1..10:3:cubic", "lin or log"),
            ("1..10:3:log:x", "A..B:N"),
            ("1..2ms:3", "both be numbers"),
            ("nan", "finite"),
            ("1..1e9:100000", "at most"),
        ] {
            let e = parse_spec(spec).unwrap_err();
            assert!(e.contains(needle), "{spec:?}: {e}");
        }
        for arg in ["rooms.count", "=1,2", "rooms..count=1", "rooms count=1"] {
            assert!(Axis::parse(arg).is_err(), "{arg}");
        }
    }

    #[test]
    fn a_grid_is_every_combination_first_axis_outermost() {
        let a = Axis::parse("rooms.count=1,2,3").unwrap();
        let b = Axis::parse("platform.hibernation=true,false").unwrap();
        let g = grid(&[a, b]);
        assert_eq!(g.len(), 6);
        assert_eq!(g[1], [Value::Number(1.0), Value::Bool(false)]);
        assert_eq!(g[2], [Value::Number(2.0), Value::Bool(true)]);
    }

    #[test]
    fn a_key_set_twice_or_set_and_varied_is_refused() {
        let axes = [Axis::parse("rooms.count=1,2").unwrap()];
        let set =
            |kv: &[&str]| -> Vec<Fixed> { kv.iter().map(|f| Fixed::parse(f).unwrap()).collect() };
        assert!(check_fixed(&set(&["limits.queue_limit=3"]), &axes).is_ok());
        let err = check_fixed(&set(&["seed=1", "seed=2"]), &axes)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "--set seed: given twice");
        let err = check_fixed(&set(&["rooms.count=5"]), &axes)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--vary rooms.count"), "{err}");
    }

    #[test]
    fn a_grid_past_the_point_limit_is_refused_before_it_is_made() {
        // Two axes of 10,000 each were 10^8 points, built and simulated one by one.
        let a = Axis::parse("rooms.count=1..10000:10000").unwrap();
        let b = Axis::parse("limits.queue_limit=1..10000:10000").unwrap();
        let err = check_axes(&[a.clone(), b]).unwrap_err().to_string();
        assert!(
            err.contains("--vary rooms.count --vary limits.queue_limit")
                && err.contains("10000 × 10000")
                && err.contains(&format!("at most {MAX_POINTS}")),
            "{err}"
        );
        let c = Axis::parse("seed=1").unwrap();
        assert!(check_axes(&[a, c]).is_ok());
    }

    #[test]
    fn scale_options_parse() {
        assert_eq!(
            "none".parse::<Scale>().unwrap(),
            Scale {
                rooms: false,
                limits: false
            }
        );
        assert_eq!(
            "rooms,limits".parse::<Scale>().unwrap(),
            Scale {
                rooms: true,
                limits: true
            }
        );
        assert!("rooms,doors".parse::<Scale>().is_err());
    }

    fn scenario(name: &str) -> Scenario {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios")
            .join(format!("{name}.toml"));
        Scenario::from_file(&path).unwrap()
    }

    #[test]
    fn a_load_point_is_the_sweeps_scaled_scenario() {
        for name in ["seed-phase0", "seed-scale", "single-saturates", "reference"] {
            let s = scenario(name);
            let axis = Axis::sessions_per_day(&[1234.5]).unwrap();
            let v = apply(
                &s,
                &[axis],
                &[Value::Number(1234.5)],
                Scale::default(),
                WindowChoice::Scenario,
            )
            .unwrap();
            assert_eq!(v, crate::sweep::scale(&s, 1234.5).unwrap(), "{name}");
        }
    }

    #[test]
    fn concurrent_users_follow_littles_law() {
        let s = scenario("seed-scale");
        assert!((concurrent_users(&s) - 200.0).abs() < 1e-9);
        assert!((sessions_per_day_for(&s, 200.0) - 2000.0).abs() < 1e-6);
        let axis = Axis::parse("concurrent_users=1000").unwrap();
        let scale = Scale {
            rooms: true,
            limits: true,
        };
        let v = apply(
            &s,
            &[axis],
            &[Value::Number(1000.0)],
            scale,
            WindowChoice::Day,
        )
        .unwrap();
        assert!((concurrent_users(&v) - 1000.0).abs() < 1e-6);
        assert_eq!(v.rooms.count, 200);
        assert_eq!(v.limits.max_total_connections, Some(4000));
        assert_eq!(v.limits.max_active_rooms, Some(500));
        assert_eq!(v.window.length, Dur(86_400 * 1_000_000_000));
    }

    #[test]
    fn a_short_window_starts_at_the_end_of_the_quietest_stretch() {
        use crate::scenario::Profile;
        // seed-scale: arrivals only from 19:00 to 24:00; 04:00 is the first hour with four
        // empty hours before it (rooms empty there in the real system too).
        let s = scenario("seed-scale");
        let w = s.arrivals.profile.weights();
        assert_eq!(quiet_start(&w), 4);
        assert_eq!(quiet_start(&Profile::Flat.weights()), 0);
        // Business hours are quiet (0.1) from 18:00 to 09:00: midnight is already quiet.
        assert_eq!(quiet_start(&Profile::BusinessHours.weights()), 0);
        let mut night = [1.0; 24];
        night[10..16].fill(0.0);
        assert_eq!(quiet_start(&night), 14);
        // The day's profile is rotated: the same weights from 04:00; a month is not rotated.
        let day = apply(&s, &[], &[], Scale::default(), WindowChoice::Day).unwrap();
        let rotated = day.arrivals.profile.weights();
        for h in 0..24 {
            assert_eq!(rotated[h], w[(h + 4) % 24], "hour {h}");
        }
        assert_eq!(day.arrivals.mean_rate(), s.arrivals.mean_rate());
        let month = apply(&s, &[], &[], Scale::default(), WindowChoice::Month).unwrap();
        assert_eq!(month.arrivals.profile.weights(), w);
    }

    #[test]
    fn any_key_is_set_as_its_kind_and_checked_as_in_a_file() {
        let s = scenario("seed-scale");
        let one = |arg: &str| {
            let axis = Axis::parse(arg).unwrap();
            let v = axis.values[0];
            apply(&s, &[axis], &[v], Scale::default(), WindowChoice::Scenario)
        };
        let v = one("limits.max_total_connections=1e5").unwrap();
        assert_eq!(v.limits.max_total_connections, Some(100_000));
        let v = one("platform.service.message.value=250us").unwrap();
        assert_eq!(v.platform.service.message.mean_ns(), 250_000.0);
        let v = one("persistence.rows_written_per_message=2.5").unwrap();
        assert_eq!(v.persistence.rows_written_per_message, 2.5);
        let v = one("platform.hibernation=false").unwrap();
        assert!(!v.platform.hibernation);
        for (arg, key) in [
            ("rooms.cuont=3", "rooms.cuont"),
            ("rooms.count=0", "rooms.count"),
            (
                "persistence.rows_written_per_message=-1",
                "persistence.rows_written_per_message",
            ),
            (
                "platform.service.message.value=3",
                "platform.service.message.value",
            ),
            ("platform.service.message=3", "platform.service.message"),
            ("platform.hibernation=3", "platform.hibernation"),
        ] {
            match one(arg) {
                Err(Error::Input(e)) => {
                    assert_eq!(e.key, key, "{arg}: {e}");
                    assert!(
                        e.message
                            .contains(&format!("at --vary {}", key.split('=').next().unwrap()))
                            || e.message.contains("at --vary"),
                        "{e}"
                    );
                }
                other => panic!("{arg}: {other:?}"),
            }
        }
    }
}
