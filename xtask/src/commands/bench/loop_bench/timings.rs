//! The `timings:` line of a command's output (pure, no engine).
//!
//! `cargo xtask run` prints one on stderr at the end of a run:
//!
//! ```text
//! timings: build=12.345s (built) handoff=0.412s datums=0.601s total=13.400s
//! ```
//!
//! (`handoff`: from the end of the build phase to the start of the first
//! datum's command; the word in parentheses says whether the build phase ran
//! or its output was reused). The docker-CLI baseline prints one of the same
//! form: `timings: build=… datums=… merge=… total=…`.

use std::collections::BTreeMap;

/// What a timings line starts with.
pub const PREFIX: &str = "timings:";

/// The steps of one timings line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timings {
    /// Step → seconds.
    seconds: BTreeMap<String, f64>,
    /// Step → the word in parentheses after its value (`build` → `reused`).
    notes: BTreeMap<String, String>,
}

impl Timings {
    /// The seconds of `step`, when the line had it.
    pub fn get(&self, step: &str) -> Option<f64> {
        self.seconds.get(step).copied()
    }

    /// The word in parentheses after `step`'s value.
    pub fn note(&self, step: &str) -> Option<&str> {
        self.notes.get(step).map(String::as_str)
    }
}

/// Parses one line of the form `timings: STEP=VALUE [(WORD)] ...`, where a
/// VALUE is seconds (`1.5s`) or milliseconds (`412ms`). Tokens of any other
/// form are skipped, so that new fields break nothing. `None` when the line
/// is not a timings line or holds no value.
pub fn parse_line(line: &str) -> Option<Timings> {
    let rest = line.trim().strip_prefix(PREFIX)?;
    let mut timings = Timings::default();
    let mut last: Option<&str> = None;
    for token in rest.split_whitespace() {
        if let Some(word) = token.strip_prefix('(').and_then(|t| t.strip_suffix(')')) {
            if let Some(step) = last.take() {
                timings.notes.insert(step.to_string(), word.to_string());
            }
            continue;
        }
        last = None;
        let Some((step, value)) = token.split_once('=') else {
            continue;
        };
        let Some(seconds) = parse_duration(value) else {
            continue;
        };
        if !step.is_empty() {
            timings.seconds.insert(step.to_string(), seconds);
            last = Some(step);
        }
    }
    (!timings.seconds.is_empty()).then_some(timings)
}

/// `1.5s` or `412ms` in seconds; finite and not negative.
fn parse_duration(value: &str) -> Option<f64> {
    let (number, scale) = match value.strip_suffix("ms") {
        Some(n) => (n, 1e-3),
        None => (value.strip_suffix('s')?, 1.0),
    };
    let seconds = number.parse::<f64>().ok()? * scale;
    (seconds.is_finite() && seconds >= 0.0).then_some(seconds)
}

/// The last timings line of a command's output, when it printed one.
pub fn find(output: &str) -> Option<Timings> {
    output.lines().rev().find_map(parse_line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn parses_the_run_line() {
        let t =
            parse_line("timings: build=12.345s (built) handoff=0.412s datums=0.601s total=13.400s")
                .unwrap();
        assert!(close(t.get("build"), 12.345));
        assert!(close(t.get("handoff"), 0.412));
        assert!(close(t.get("datums"), 0.601));
        assert!(close(t.get("total"), 13.4));
        assert_eq!(t.note("build"), Some("built"));
        assert_eq!(t.note("handoff"), None);
        let t = parse_line("  timings: build=0s (reused) handoff=412ms").unwrap();
        assert!(close(t.get("build"), 0.0));
        assert_eq!(t.note("build"), Some("reused"));
        assert!(close(t.get("handoff"), 0.412));
    }

    #[test]
    fn parses_the_line_with_more_fields_and_no_handoff() {
        let t = parse_line(
            "timings: build=1.234s (built) handoff=0.210s datums=0.530s total=2.100s workers=2",
        )
        .unwrap();
        assert!(close(t.get("handoff"), 0.21));
        assert_eq!(t.get("workers"), None);
        // A run with no datum has no handoff.
        let t = parse_line("timings: build=0.004s (reused) handoff=n/a datums=0.000s total=0.9s")
            .unwrap();
        assert_eq!(t.get("handoff"), None);
        assert_eq!(t.note("build"), Some("reused"));
        assert!(close(t.get("total"), 0.9));
    }

    #[test]
    fn parses_the_baseline_line() {
        let t =
            parse_line("timings: build=1.101s datums=1.252s merge=0.008s total=2.361s").unwrap();
        assert!(close(t.get("merge"), 0.008));
        assert_eq!(t.get("handoff"), None);
    }

    #[test]
    fn skips_what_it_does_not_know() {
        let t = parse_line("timings: build=1s (built) cache=hit x=1 y=-1s z=NaNs handoff=2s (odd)")
            .unwrap();
        assert!(close(t.get("build"), 1.0));
        assert!(close(t.get("handoff"), 2.0));
        assert_eq!(t.get("x"), None);
        assert_eq!(t.get("y"), None);
        assert_eq!(t.get("z"), None);
        assert_eq!(t.note("handoff"), Some("odd"));
        // A parenthesised word after a skipped token belongs to nothing.
        let t = parse_line("timings: build=1s cache=hit (yes)").unwrap();
        assert_eq!(t.note("build"), None);
        assert_eq!(t.note("cache"), None);
    }

    #[test]
    fn other_lines_are_not_timings() {
        assert_eq!(parse_line("output: /tmp/out (5 files)"), None);
        assert_eq!(parse_line("timings:"), None);
        assert_eq!(parse_line("timings: none yet"), None);
        assert_eq!(parse_line("build | timings: build=1s"), None);
    }

    #[test]
    fn finds_the_last_line() {
        let log = "build | python builder: ready\ntimings: build=1s\ndatum 1/1 | x\ntimings: build=2s handoff=0.5s\noutput: /tmp/o (1 files)\n";
        let t = find(log).unwrap();
        assert!(close(t.get("build"), 2.0));
        assert!(close(t.get("handoff"), 0.5));
        assert_eq!(find("nothing here\n"), None);
    }
}
