use std::path::{Path, PathBuf};

use dosim::scenario::Scenario;

/// The repository root (the workspace), where `scenarios/` lives.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A scenario parsed from text.
pub fn scenario(text: &str) -> Scenario {
    Scenario::parse(text, Path::new("test.toml")).expect("test scenario is valid")
}
