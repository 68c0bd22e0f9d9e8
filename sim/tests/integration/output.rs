use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::util::{dosim, dosim_in, repo};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn printed_reports_say_which_websocket_api_the_run_used() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("c.csv");
    for (flag, says, key, never) in [
        ("false", "accept()", "accept", "Hibernation API"),
        ("true", "Hibernation API", "hibernation", "accept()"),
    ] {
        let out = dosim(&[
            "compare",
            "scenarios/seed-phase0.toml",
            "--hibernation",
            flag,
            "--csv",
            csv.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        // In the header, above the table.
        let header = stdout.split("\n\n").next().unwrap();
        assert!(header.contains("\nWebSocket API: "), "{header}");
        assert!(header.contains(says), "{header}");
        assert!(!stdout.contains(never), "{stdout}");
        let table = std::fs::read_to_string(&csv).unwrap();
        let mut lines = table.lines();
        let columns: Vec<&str> = lines.next().unwrap().split(',').collect();
        let col = columns.iter().position(|&c| c == "websocket_api").unwrap();
        for l in lines {
            assert_eq!(l.split(',').nth(col), Some(key), "{table}");
        }

        let out = dosim(&[
            "simulate",
            "scenarios/seed-phase0.toml",
            "--hibernation",
            flag,
        ]);
        let stdout = text(&out.stdout);
        let header = stdout.split("\n\n").next().unwrap();
        assert!(header.contains(says), "{header}");
        assert!(!stdout.contains(never), "{stdout}");
    }
}

#[test]
fn compare_writes_markdown_tables_not_a_text_block() {
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("c.md");
    let out = dosim(&[
        "compare",
        "scenarios/seed-phase0.toml",
        "--strategies",
        "single,per-room,sharded:4",
        "--hibernation",
        "false",
        "--markdown",
        md.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let md = std::fs::read_to_string(md).unwrap();
    assert!(!md.contains("```"), "{md}");
    assert!(md.starts_with("# dosim compare: seed-phase0\n"), "{md}");
    // What the figures are, above the tables.
    let intro = md.split("\n|").next().unwrap();
    for fact in [
        "**Seed:** 20241201",
        "**Prices:** cloudflare-",
        "**WebSocket API:** standard accept() sockets",
        // One line per strategy: each simulation states its own event count.
        "**Figures:**\n  - `single`: simulated: discrete-event simulation of a 30d window",
        "**Monthly figures:**",
    ] {
        assert!(intro.contains(fact), "{fact} missing from\n{intro}");
    }
    // Tables with a header row of strategies, one right-aligned column each.
    assert!(
        md.contains("\n| | single | per-room | sharded:4 |\n|---|---:|---:|---:|\n"),
        "{md}"
    );
    assert!(md.contains("\n## Monthly bill (USD, "), "{md}");
    let rows: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
    assert!(rows.len() > 30, "{md}");
    for r in &rows {
        assert_eq!(r.matches('|').count(), 5, "{r}");
    }
    assert!(rows.iter().any(|r| r.starts_with("| total |")), "{md}");
}

/// A pseudo-terminal: the master to read what was written, the slave's path.
fn pty() -> (std::fs::File, std::path::PathBuf) {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let path = std::path::PathBuf::from(name.to_str().unwrap());
    (std::fs::File::from(master), path)
}

/// Run dosim in `dir` with standard error on a terminal; stdout and what the terminal got.
fn dosim_on_a_terminal(dir: &Path, args: &[&str]) -> (Output, String) {
    let (mut master, slave_path) = pty();
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&slave_path)
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_dosim"))
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    // Read the terminal while dosim runs (it could block on a full buffer otherwise); the
    // read ends with an error (EIO) once no one holds the slave side.
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).replace('\r', "")
    });
    let out = child.wait_with_output().unwrap();
    (out, reader.join().unwrap())
}

/// The lines of `stderr` that are not "wrote PATH".
fn other_than_wrote(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("wrote "))
        .collect()
}

#[test]
fn sweep_shows_progress_on_a_terminal_only_and_never_with_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let args = |csv: &str, quiet: bool| {
        let mut a: Vec<String> = [
            "sweep",
            &repo().join("scenarios/seed-phase0.toml").to_string_lossy(),
            "--sessions-per-day",
            "250,1000",
            "--strategies",
            "single,per-room",
            "--csv",
            csv,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if quiet {
            a.push("--quiet".into());
        }
        a
    };
    let run = |csv: &str, quiet: bool, terminal: bool| {
        let a = args(csv, quiet);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        if terminal {
            dosim_on_a_terminal(dir.path(), &a)
        } else {
            let out = dosim_in(dir.path(), &a);
            let err = text(&out.stderr);
            (out, err)
        }
    };

    // Standard error is a pipe (as in CI): nothing but the files written.
    let (piped, err) = run("piped.csv", false, false);
    assert!(piped.status.success(), "{err}");
    assert_eq!(other_than_wrote(&err), Vec::<&str>::new(), "{err}");

    // On a terminal: a progress bar, and the same standard output and files.
    let (shown, err) = run("shown.csv", false, true);
    assert!(shown.status.success(), "{err}");
    assert!(
        err.contains("points"),
        "no progress on the terminal: {err:?}"
    );
    assert!(err.contains("sessions/day"), "{err:?}");
    assert_eq!(text(&shown.stdout), text(&piped.stdout));
    let csv = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    assert_eq!(csv("shown.csv"), csv("piped.csv"));

    // --quiet: nothing on the terminal either.
    let (quiet, err) = run("quiet.csv", true, true);
    assert!(quiet.status.success(), "{err}");
    assert_eq!(other_than_wrote(&err), Vec::<&str>::new(), "{err:?}");
    assert_eq!(text(&quiet.stdout), text(&piped.stdout));
}

/// Shell words: split at spaces, double quotes group; leading `NAME=value` words are
/// environment settings.
fn shell_words(line: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut words = Vec::new();
    let (mut word, mut quoted, mut started) = (String::new(), false, false);
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                started = true;
            }
            ' ' if !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    let env_count = words
        .iter()
        .take_while(|w| w.split_once('=').is_some_and(|(k, _)| !k.starts_with('-')))
        .count();
    let env = words[..env_count]
        .iter()
        .map(|w| {
            let (k, v) = w.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    (env, words[env_count..].to_vec())
}

#[test]
fn every_help_ends_with_examples_that_run_as_written() {
    // A fresh folder that looks like the repository root, so that the examples' output files
    // land there.
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(repo().join("scenarios"), dir.path().join("scenarios")).unwrap();
    for sub in [
        "simulate",
        "compare",
        "sweep",
        "drive",
        "calibrate",
        "validate",
        "merge",
        "cost",
        "pricing",
    ] {
        let help = text(&dosim(&[sub, "--help"]).stdout);
        let (_, examples) = help
            .split_once("\nExamples:\n")
            .unwrap_or_else(|| panic!("dosim {sub} --help has no Examples section:\n{help}"));
        let commands: Vec<&str> = examples
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        assert!(
            (2..=3).contains(&commands.len()),
            "dosim {sub}: {commands:?}"
        );
        for line in commands {
            let (env, words) = shell_words(line);
            assert_eq!(words[0], "dosim", "{line}");
            // `pricing` also shows how to use a table with another command.
            assert!(
                sub == "pricing" || words.get(1) == Some(&sub.to_string()),
                "{line}"
            );
            // calibrate's .toml words are the files it writes.
            for w in words
                .iter()
                .filter(|w| w.ends_with(".toml") && sub != "calibrate")
            {
                assert!(dir.path().join(w).exists(), "{line}: no {w}");
            }
            let mut args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
            let drives = sub == "drive" || sub == "validate" || args.contains(&"--drive");
            if drives {
                // Driving needs a Worker: check that dosim takes the arguments, by pointing
                // them at a scenario that does not exist (it fails after parsing them).
                let at = args.iter().position(|a| a.ends_with(".toml")).unwrap();
                args[at] = "no-such-scenario.toml";
            }
            if sub == "calibrate" {
                // Calibrating drives a Worker: check that dosim takes the arguments, with one
                // strategy the Worker does not serve (refused before any run).
                args.extend(["--strategies", "sharded:2000"]);
            }
            let out = Command::new(env!("CARGO_BIN_EXE_dosim"))
                .current_dir(dir.path())
                .args(&args)
                .envs(env)
                .output()
                .unwrap();
            let err = text(&out.stderr);
            if sub == "calibrate" {
                assert_eq!(out.status.code(), Some(2), "{line}: {err}");
                assert!(err.contains("sharded:2000"), "{line}: {err}");
                assert!(!err.contains("Usage:"), "{line}: {err}");
            } else if sub == "merge" {
                // Merging needs shards' reports: check that dosim takes the arguments and
                // names the first report, which is not there.
                assert_eq!(out.status.code(), Some(2), "{line}: {err}");
                assert!(
                    err.contains("shard-0.json: cannot be read"),
                    "{line}: {err}"
                );
                assert!(!err.contains("Usage:"), "{line}: {err}");
            } else if drives {
                assert!(err.contains("no-such-scenario.toml"), "{line}: {err}");
                assert!(!err.contains("Usage:"), "{line}: {err}");
            } else {
                assert!(out.status.success(), "{line}: {err}");
            }
        }
    }
}
