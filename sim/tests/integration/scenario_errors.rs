use std::path::Path;

use dosim::scenario::Scenario;
use dosim::{Error, InputError};

fn error_of(text: &str) -> InputError {
    match Scenario::parse(text, Path::new("broken.toml")) {
        Err(Error::Input(e)) => e,
        Err(other) => panic!("expected an input error, got {other}"),
        Ok(_) => panic!("a broken scenario was accepted"),
    }
}

const GOOD_HEAD: &str = "name = \"x\"\n[arrivals]\nsessions_per_day = 100\n";

#[test]
fn a_typo_in_a_key_names_file_line_and_key() {
    let e = error_of(&format!(
        "{GOOD_HEAD}[sessions]\nlenght = {{ dist = \"constant\", value = \"1m\" }}\n"
    ));
    assert_eq!(e.file, Path::new("broken.toml"));
    assert_eq!(e.line, 5, "{e}");
    assert_eq!(e.key, "sessions.lenght");
    assert!(e.message.contains("unknown field"), "{e}");
    assert!(
        e.message.contains("length"),
        "should list the expected keys: {e}"
    );
}

#[test]
fn a_typo_in_a_top_level_table_is_an_error() {
    let e = error_of(&format!("{GOOD_HEAD}[limts]\nqueue_limit = 3\n"));
    assert_eq!(e.key, "limts");
    assert_eq!(e.line, 4, "{e}");
}

#[test]
fn a_bad_duration_says_what_was_expected() {
    let e = error_of(&format!("{GOOD_HEAD}[window]\nlength = \"3 weeks\"\n"));
    assert_eq!(e.key, "window.length");
    assert_eq!(e.line, 5, "{e}");
    assert!(e.message.contains("expected a duration"), "{e}");
}

#[test]
fn a_bad_strategy_is_reported_with_its_line() {
    let e = error_of(&format!(
        "{GOOD_HEAD}\n[platform]\nstrategy = \"sharded:0\"\n"
    ));
    assert_eq!(e.key, "platform.strategy");
    assert_eq!(e.line, 6, "{e}");
}

#[test]
fn a_wrong_type_names_the_key() {
    let e = error_of(&format!(
        "{GOOD_HEAD}[limits]\nmax_connections_per_room = \"eight\"\n"
    ));
    assert_eq!(e.key, "limits.max_connections_per_room");
    assert_eq!(e.line, 5, "{e}");
}

#[test]
fn an_unknown_distribution_field_is_an_error() {
    let e = error_of(&format!(
        "{GOOD_HEAD}[sessions]\nlength = {{ dist = \"exponential\", mena = \"1m\" }}\n"
    ));
    assert_eq!(e.line, 5, "{e}");
    assert!(e.key.starts_with("sessions.length"), "{e}");
}

#[test]
fn semantic_errors_name_the_key_and_line() {
    let e = error_of("name = \"x\"\n[arrivals]\nsessions_per_day = 100\nrate_per_second = 2\n");
    assert_eq!(e.key, "arrivals.rate_per_second");
    assert_eq!(e.line, 4, "{e}");
    let e = error_of(&format!("{GOOD_HEAD}[rooms]\ncount = 0\n"));
    assert_eq!((e.key.as_str(), e.line), ("rooms.count", 5), "{e}");
    let e = error_of(&format!("pricing = \"cloudflare-1999\"\n{GOOD_HEAD}"));
    assert_eq!((e.key.as_str(), e.line), ("pricing", 1), "{e}");
    assert!(
        e.message.contains("cloudflare-2026-08"),
        "should list known tables: {e}"
    );
    let e = error_of(&format!(
        "{GOOD_HEAD}[thresholds]\nchecks = [\"mesage.p99 < 3\"]\n"
    ));
    assert_eq!((e.key.as_str(), e.line), ("thresholds.checks", 5), "{e}");
}

#[test]
fn missing_arrivals_and_invalid_toml_are_errors() {
    let e = error_of("name = \"x\"\n");
    assert_eq!(e.key, "arrivals");
    let e = error_of("name = \"x\"\n[arrivals\n");
    assert_eq!(e.line, 2, "{e}");
}

#[test]
fn the_error_message_reads_file_line_key() {
    let e = error_of(&format!("{GOOD_HEAD}[rooms]\ncount = 0\n"));
    assert_eq!(
        e.to_string(),
        "broken.toml:5:1: key `rooms.count`: must be at least 1"
    );
}

#[test]
fn every_shipped_scenario_is_valid() {
    let dir = crate::util::repo().join("scenarios");
    let (mut n, mut calibrations) = (0, 0);
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            if text.lines().any(|l| l.trim() == "[calibration]") {
                // A shipped calibration (`dosim calibrate` wrote it): valid as one.
                dosim::calibration::Calibration::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
                calibrations += 1;
                continue;
            }
            Scenario::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 4, "expected the shipped scenarios, found {n}");
    assert!(
        calibrations >= 1,
        "expected scenarios/calibration-local.toml"
    );
}

#[test]
fn the_reference_scenario_documents_the_defaults() {
    // scenarios/reference.toml claims every value it shows is the default (but for `name` and
    // the load, which have none): hold it to that, field by field and for any field added
    // later, so the documentation cannot drift from the code.
    let path = crate::util::repo().join("scenarios/reference.toml");
    let mut reference = Scenario::from_file(&path).unwrap();
    let defaults =
        crate::util::scenario("name = \"reference\"\n[arrivals]\nsessions_per_day = 500\n");
    reference.description = defaults.description.clone();
    reference.path = defaults.path.clone();
    assert_eq!(reference, defaults);
}

#[test]
fn the_reference_scenario_shows_every_default_as_a_value() {
    // Every key that has a default value is written out (not commented), so the test above
    // compares it: a comment such as "absent = no delay rule" cannot hide a real default.
    fn missing(defaults: &toml::Table, shown: &toml::Table, prefix: &str, out: &mut Vec<String>) {
        for (key, value) in defaults {
            let dotted = format!("{prefix}{key}");
            match (value, shown.get(key)) {
                (_, None) => out.push(dotted),
                (toml::Value::Table(d), Some(toml::Value::Table(s))) => {
                    missing(d, s, &format!("{dotted}."), out)
                }
                _ => {}
            }
        }
    }
    let text =
        std::fs::read_to_string(crate::util::repo().join("scenarios/reference.toml")).unwrap();
    let shown: toml::Table = text.parse().unwrap();
    let defaults =
        crate::util::scenario("name = \"reference\"\n[arrivals]\nsessions_per_day = 500\n");
    let defaults = toml::Table::try_from(&defaults).unwrap();
    let mut out = Vec::new();
    missing(&defaults, &shown, "", &mut out);
    assert!(
        out.is_empty(),
        "defaults not shown in reference.toml: {out:?}"
    );
    // The overload rule's default is a 5 s delay and no depth limit; both can be switched off.
    let s = crate::util::scenario(&format!(
        "{GOOD_HEAD}[platform.overload]\nmax_queue_depth = \"unlimited\"\nmax_queue_delay = \"unlimited\"\n"
    ));
    assert_eq!(s.platform.overload.max_queue_delay, None);
    assert_eq!(s.platform.overload.max_queue_depth, None);
    let s = crate::util::scenario(GOOD_HEAD);
    assert_eq!(
        s.platform.overload.max_queue_delay,
        Some(dosim::scenario::Dur(5_000_000_000))
    );
    assert_eq!(s.platform.overload.max_queue_depth, None);
}

// -- bad input that passes the per-key rules must not exhaust the machine (issue 6) --------
//
// Each of these used to abort with "memory allocation failed", grow without bound or run for
// minutes; now validation refuses it from the estimate alone (nothing is allocated or run, so
// each test returns at once) and the message names the key, the estimate and the limit.

fn refused(text: &str, key: &str) -> InputError {
    let e = error_of(text);
    assert_eq!(e.key, key, "{e}");
    assert!(e.line > 0, "the key's line: {e}");
    assert!(e.message.contains("limit"), "names the limit: {e}");
    e
}

#[test]
fn four_billion_rooms_are_refused_for_memory() {
    let e = refused(
        &format!("{GOOD_HEAD}[rooms]\ncount = 4294967295\n"),
        "rooms.count",
    );
    assert!(e.message.contains("GiB of memory"), "{e}");
    assert!(e.message.contains("4.3 billion rooms"), "{e}");
}

#[test]
fn a_nanosecond_time_series_is_refused() {
    for interval in ["1ns", "1ms"] {
        let e = refused(
            &format!("{GOOD_HEAD}[window]\ntimeseries_interval = \"{interval}\"\n"),
            "window.timeseries_interval",
        );
        assert!(e.message.contains("time-series samples"), "{e}");
        assert!(
            e.message.contains("at least 8640us"),
            "suggests an interval: {e}"
        );
    }
    // A month at one-second resolution (2.6 M samples) is fine.
    crate::util::scenario(&format!(
        "{GOOD_HEAD}[window]\nlength = \"30d\"\ntimeseries_interval = \"1s\"\n"
    ));
}

#[test]
fn arrival_rates_that_cannot_finish_are_refused() {
    for rate in ["1e300", "4294967296"] {
        let e = refused(
            &format!("name = \"x\"\n[arrivals]\nrate_per_second = {rate}\n"),
            "arrivals.rate_per_second",
        );
        assert!(e.message.contains("simulation steps"), "{e}");
    }
    let e = refused(
        "name = \"x\"\n[arrivals]\nsessions_per_day = 1e15\n",
        "arrivals.sessions_per_day",
    );
    assert!(e.message.contains("arrivals"), "{e}");
}

#[test]
fn an_overwhelmed_object_with_no_overload_rule_is_refused_for_memory() {
    // 2,000 connects a second of 1 ms each (and closes of 50 us) on one object: it is busy 210%
    // of the time. With
    // the default delay rule the excess is refused; with none, every session of the day
    // (173 M) would wait in memory.
    let text = |overload: &str| {
        format!(
            "name = \"x\"\n[arrivals]\nrate_per_second = 2000\n[sessions]\nmessage_interval = {{ dist = \"constant\", value = \"1d\" }}\n[platform.service]\nconnect = {{ dist = \"constant\", value = \"1ms\" }}\n[platform.overload]\n{overload}\n"
        )
    };
    crate::util::scenario(&text(""));
    let e = refused(
        &text("max_queue_delay = \"unlimited\""),
        "platform.overload.max_queue_delay",
    );
    assert!(e.message.contains("busy 210% of the time"), "{e}");
    // A depth rule bounds the queue as well.
    crate::util::scenario(&text(
        "max_queue_delay = \"unlimited\"\nmax_queue_depth = 1000",
    ));
}

#[test]
fn a_sweep_load_that_scales_rooms_past_any_count_names_the_key() {
    let path = crate::util::repo().join("scenarios/seed-phase0.toml");
    let s = Scenario::from_file(&path).unwrap();
    for (load, key) in [
        (1e308, "rooms.count"),
        (1e12, "rooms.count"),
        (1e9, "arrivals.sessions_per_day"),
    ] {
        match dosim::sweep::scale(&s, load) {
            Err(Error::Input(e)) => {
                assert_eq!(e.key, key, "{e}");
                assert!(e.message.contains("--sessions-per-day"), "{e}");
                assert!(e.line > 0, "{e}");
            }
            other => panic!("{load}: expected an input error, got {other:?}"),
        }
    }
    let scaled = dosim::sweep::scale(&s, 1000.0).unwrap();
    assert_eq!(scaled.rooms.count, 2 * s.rooms.count);
}

#[test]
fn values_that_would_overflow_are_refused_by_key() {
    for (section, line, key) in [
        (
            "[platform]",
            "worker_cpu_ms_per_connect = nan",
            "platform.worker_cpu_ms_per_connect",
        ),
        (
            "[platform]",
            "worker_cpu_ms_per_connect = inf",
            "platform.worker_cpu_ms_per_connect",
        ),
        (
            "[platform]",
            "lobby_rows_written_per_change = 1e300",
            "platform.lobby_rows_written_per_change",
        ),
        (
            "[persistence]",
            "rows_written_per_message = 1e300",
            "persistence.rows_written_per_message",
        ),
        (
            "[persistence]",
            "rows_read_per_join = nan",
            "persistence.rows_read_per_join",
        ),
        (
            "[sessions]",
            "length = { dist = \"constant\", value = \"400d\" }",
            "sessions.length",
        ),
        ("[sessions]", "patience = \"1000d\"", "sessions.patience"),
        (
            "[platform.service]",
            "per_recipient = \"5000d\"",
            "platform.service.per_recipient",
        ),
        (
            "[network]",
            "jitter = { dist = \"exponential\", mean = \"367d\" }",
            "network.jitter",
        ),
        ("[platform]", "idle_tail = \"400d\"", "platform.idle_tail"),
        (
            "[platform.overload]",
            "max_queue_depth = 0",
            "platform.overload.max_queue_depth",
        ),
        (
            "[platform.overload]",
            "max_queue_depth = -1",
            "platform.overload.max_queue_depth",
        ),
        (
            "[platform.overload]",
            "max_queue_delay = \"never\"",
            "platform.overload.max_queue_delay",
        ),
        (
            "[limits]",
            "max_total_connections = \"lots\"",
            "limits.max_total_connections",
        ),
        ("[thresholds]", "budget_usd = nan", "thresholds.budget_usd"),
        (
            "[thresholds]",
            "connection_alert_share = 2.0",
            "thresholds.connection_alert_share",
        ),
    ] {
        let e = error_of(&format!("{GOOD_HEAD}{section}\n{line}\n"));
        assert_eq!(e.key, key, "{line}: {e}");
        assert_eq!(e.line, 5, "{line}: {e}");
        assert!(!e.message.is_empty(), "{line}: {e}");
    }
}

#[test]
fn unlimited_is_accepted_for_every_limit_that_can_be_off() {
    let s = crate::util::scenario(&format!(
        "{GOOD_HEAD}[limits]\nmax_active_rooms = \"unlimited\"\nmax_total_connections = 400\n[platform.overload]\nmax_queue_depth = 50\nmax_queue_delay = \"unlimited\"\n"
    ));
    assert_eq!(s.limits.max_active_rooms, None);
    assert_eq!(s.limits.max_total_connections, Some(400));
    assert_eq!(s.platform.overload.max_queue_depth, Some(50));
    assert_eq!(s.platform.overload.max_queue_delay, None);
}

// -- every message says what is wrong --------------------------------------------------------

#[test]
fn a_key_with_no_value_says_the_value_is_missing() {
    // At the end of the file the TOML parser gives no message at all; before a newline it
    // says "invalid string".
    for text in [
        "name = \"x\"\nseed = ",
        "name = \"x\"\nseed =\n[arrivals]\n",
        "name = \"x\"\nseed = # the seed\n",
    ] {
        let e = error_of(text);
        assert_eq!(e.line, 2, "{text:?}: {e}");
        assert!(
            e.message.contains("missing value after `=`"),
            "{text:?}: {e}"
        );
    }
    // Other parse errors keep the parser's words, on one line.
    let e = error_of("name = \"x\"\nseed = 1 2\n");
    assert!(!e.message.is_empty() && !e.message.contains('\n'), "{e}");
}

#[test]
fn a_file_that_is_not_utf8_is_named_with_the_bad_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.toml");
    std::fs::write(&path, b"name = \"x\"\ndescription = \"caf\xe9\"\n").unwrap();
    match Scenario::from_file(&path) {
        Err(Error::Input(e)) => {
            assert_eq!(e.file, path);
            assert_eq!((e.line, e.column), (2, 19), "{e}");
            assert!(e.message.contains("not valid UTF-8"), "{e}");
            assert!(e.message.contains("0xe9 at byte offset 29"), "{e}");
        }
        other => panic!("expected an input error, got {other:?}"),
    }
}

#[test]
fn a_missing_file_says_its_cause_once() {
    let e = Scenario::from_file(Path::new("no/such/file.toml")).unwrap_err();
    let chain = format!("{:#}", anyhow::Error::from(e));
    assert_eq!(
        chain.matches("No such file or directory").count(),
        1,
        "{chain}"
    );
    assert!(chain.starts_with("no/such/file.toml: "), "{chain}");
}

#[test]
fn the_longest_valid_durations_saturate_instead_of_wrapping() {
    // A connect costs 366 days of service and nothing refuses it: after ~580 of them the
    // object's completion time passes u64 nanoseconds. Saturated, no one is ever seated in the
    // window; wrapped, the users after those ~580 would have been seated at once.
    let s = crate::util::scenario(
        r#"
name = "x"
[window]
length = "1d"
[arrivals]
rate_per_second = 0.02
[rooms]
count = 250
[platform.service]
connect = { dist = "constant", value = "366d" }
per_recipient = "366d"
[platform.overload]
max_queue_delay = "unlimited"
"#,
    );
    let o = dosim::des::simulate(&s, dosim::Strategy::Single);
    assert!(o.sessions.arrived > 1_000, "{:?}", o.sessions);
    assert_eq!(o.sessions.admitted, 0, "{:?}", o.sessions);
    // Admission is decided as the connect arrives, so the seats are taken: users wait for an
    // answer that comes after the window.
    assert_eq!(
        o.sessions.still_connecting, o.sessions.arrived,
        "{:?}",
        o.sessions
    );
}

#[test]
fn io_errors_print_their_cause_once_in_a_chain() {
    // main prints errors as anyhow's `{:#}`: the message, then each source.
    let gone = || std::io::Error::new(std::io::ErrorKind::NotFound, "gone away");
    let chains = [
        anyhow::Error::from(Error::Io {
            path: "f.toml".into(),
            cause: gone(),
        }),
        anyhow::Error::from(dosim::drive::DriveError::Io(gone())),
    ];
    for chain in chains {
        let text = format!("{chain:#}");
        assert_eq!(text.matches("gone away").count(), 1, "{text}");
    }
}

#[test]
fn a_message_larger_than_cloudflare_accepts_is_refused() {
    let e = error_of(&format!(
        "{GOOD_HEAD}[sessions]\nmessage_bytes = 4000000000\n"
    ));
    assert_eq!(e.key, "sessions.message_bytes");
    assert_eq!(e.line, 5, "{e}");
    assert!(e.message.contains("32 MiB"), "{e}");
    // The largest message Cloudflare takes is still a scenario.
    Scenario::parse(
        &format!("{GOOD_HEAD}[sessions]\nmessage_bytes = 33554432\n"),
        Path::new("ok.toml"),
    )
    .unwrap();
}

/// An integer past what TOML holds names its key (it said only "number too large to fit in
/// target type", with no key), at the top level and under a table.
#[test]
fn an_integer_too_large_for_toml_names_its_key() {
    let e = error_of("name = \"x\"\nseed = 18446744073709551615\n");
    assert_eq!((e.line, e.key.as_str()), (2, "seed"), "{e}");
    assert!(e.message.contains("9223372036854775807"), "{e}");
    let e = error_of(&format!(
        "{GOOD_HEAD}[persistence]\n# bytes\nrow_bytes = 99999999999999999999\n"
    ));
    assert_eq!(
        (e.line, e.key.as_str()),
        (6, "persistence.row_bytes"),
        "{e}"
    );
}

/// A huge number in a range error is shown short (it was printed as its 309 digits).
#[test]
fn a_huge_number_out_of_range_is_shown_in_exponent_form() {
    let e = error_of(&format!(
        "{GOOD_HEAD}[sessions]\nlength = {{ dist = \"lognormal\", median = \"30m\", sigma = 1e308 }}\n"
    ));
    assert!(e.message.ends_with("found 1e308"), "{e}");
}

/// Durations of several parts, as `drive --from`'s help shows ("1d19h"), are read as their
/// sum (they were refused); a duration past what dosim holds says it is too long.
#[test]
fn a_duration_of_several_parts_is_their_sum() {
    use dosim::scenario::Dur;
    let h = 3600 * 1_000_000_000u64;
    for (text, ns) in [
        ("1d19h", 43 * h),
        ("1h30m", 3 * h / 2),
        ("1h 30m", 3 * h / 2),
        ("30m15s", 1815 * 1_000_000_000),
        ("1.5h", 3 * h / 2),
        ("250ms", 250_000_000),
    ] {
        assert_eq!(text.parse::<Dur>(), Ok(Dur(ns)), "{text}");
    }
    for bad in ["", "h", "1d19", "1x", "3 weeks", "1e9d", "-1s", "1h-30m"] {
        let err = bad.parse::<Dur>().unwrap_err();
        assert!(err.contains("expected a duration"), "{bad}: {err}");
    }
    let err = "99999999d".parse::<Dur>().unwrap_err();
    assert!(err.contains("too long"), "{err}");
}
