//! Property tests (issue 11) of the pure parsers: spec parsing and the
//! client's rules, `.pachignore` and the source walk, the archive reader,
//! and datum planning. Each property holds for every input: no panic, bad
//! input is an error of the bad-input kind naming its file, nothing lands
//! outside a destination folder.
//!
//! Bounded for CI: every property runs [`CASES`] cases (fewer for those that
//! build file trees), unless `PROPTEST_CASES` says otherwise (e.g. 3000 for
//! a longer hunt). A failure is shrunk, and its seed saved in
//! `harness/tests/properties/proptest-regressions/<file>.txt` (proptest's
//! default, beside this `main.rs`) and tried first on later runs.

mod archive;
mod datum;
mod pachignore;
mod spec;

use proptest::test_runner::Config;

/// Cases of a property on in-memory inputs.
pub const CASES: u32 = 256;

/// Cases of a property that builds a tree of files per case.
pub const FS_CASES: u32 = 64;

/// A config of `cases` cases, or `PROPTEST_CASES` when set.
pub fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        ..Config::default()
    }
}
