use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dosim::scenario::Scenario;

/// The repository root (the workspace), where `scenarios/` lives.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A scenario parsed from text.
pub fn scenario(text: &str) -> Scenario {
    Scenario::parse(text, Path::new("test.toml")).expect("test scenario is valid")
}

/// `dosim ARGS` run in `dir`, to completion.
pub fn dosim_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dosim"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

/// `dosim ARGS` run from the repository root, to completion.
pub fn dosim(args: &[&str]) -> Output {
    dosim_in(&repo(), args)
}
