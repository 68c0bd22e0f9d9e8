//! dosim's integration tests, one binary of commented modules (as ripgrep does).

/// Randomized event sequences against the admission invariants.
mod admission_invariants;
/// The shared admission vectors, replayed against the Rust admission module.
mod admission_vectors;
/// `dosim calibrate` against a real workerd (quick ladder, --local and --target), and
/// calibration files applied to scenarios or refused with file, line and key.
mod calibrate;
/// The `dosim` binary: exit codes, files written, error messages.
mod cli;
/// `dosim cost`: usage files, a report's usage blocks priced back to its bill, the README's
/// command, the shipped example, stored GB-months as Cloudflare counts them.
mod cost;
/// Same scenario and seed, same bytes.
mod determinism;
/// `dosim drive` and its client against the real Worker on workerd (127.0.0.1 only).
mod drive;
/// `drive --local` and the Worker's edges: its limits, 5xx answers, pruned objects, and no
/// workerd or npm left behind when dosim is killed.
mod drive_local;
/// `wss://` targets: the client and the stats reader over TLS, a private CA via `--ca-cert`.
mod drive_tls;
/// `dosim merge`: four `drive --shard I/4` processes against one workerd merged, equal to one
/// process driving the same plan; the histograms added exactly; bad sets of shards refused.
mod merge;
/// Behaviour of the platform model: socket caps, billing states, the lobby, overload.
mod model;
/// What a user reads: report headers, Markdown, sweep progress, `--help` examples.
mod output;
/// The simulator against closed-form queueing theory.
mod queueing;
/// Replications: the plain run at R = 1, the same bytes on any thread count, an interval
/// that covers a known truth, the precision loop, thresholds on the means, every output.
mod replications;
/// Broken scenario and usage files get clear errors.
mod scenario_errors;
/// `dosim sweep --drive --local`: measured points beside the simulated curve in every
/// output, against a real local workerd; refusals before anything runs.
mod sweep_drive;
/// `dosim sweep --vary`: grids, bad keys by name, thread-count determinism, the window
/// projection check, the charts and the Markdown report.
mod sweep_vary;
/// Helpers shared by the modules.
mod util;
/// `dosim validate`: the local-workerd runtime, the loopback preset, a simulated drive
/// stretch, and a small validation against a real local workerd.
mod validation;
