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
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Scenario::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 4, "expected the shipped scenarios, found {n}");
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
