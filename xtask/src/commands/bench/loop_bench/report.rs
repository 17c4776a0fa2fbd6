//! The table of `bench loop`: rows, ratios, targets met or not, and the
//! printout (pure, no engine).

use std::fmt::Write as _;

use super::super::stats::Samples;
use super::super::table::grid;

/// How a row's figures read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Wall-clock seconds.
    Seconds,
    /// Wall-clock seconds per datum.
    PerDatum,
    /// Mebibytes (resident memory).
    Mib,
}

impl Unit {
    fn format(self, value: f64) -> String {
        match self {
            Unit::Seconds => format!("{value:.3} s"),
            Unit::PerDatum => format!("{value:.3} s/datum"),
            Unit::Mib => format!("{value:.1} MiB"),
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Unit::Seconds => "s",
            Unit::PerDatum => "s/datum",
            Unit::Mib => "MiB",
        }
    }
}

/// One figure of the table, or why there is none (`n/a`, `skipped
/// (--quick)`, ...).
#[derive(Debug, Clone, PartialEq)]
pub enum Figure {
    Value(f64),
    Missing(String),
}

impl Figure {
    /// The median of `samples` in seconds, or `missing` when there are none.
    pub fn median(samples: &Samples, missing: &str) -> Figure {
        samples
            .median()
            .map_or_else(|| Figure::Missing(missing.to_string()), Figure::Value)
    }

    pub fn missing(why: &str) -> Figure {
        Figure::Missing(why.to_string())
    }

    pub fn value(&self) -> Option<f64> {
        match self {
            Figure::Value(v) => Some(*v),
            Figure::Missing(_) => None,
        }
    }

    fn text(&self, unit: Unit) -> String {
        match self {
            Figure::Value(v) => unit.format(*v),
            Figure::Missing(why) => why.clone(),
        }
    }
}

/// What a row should show.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// ours / baseline at most this.
    RatioAtMost(f64),
    /// ours at most this, in the row's unit.
    AtMost(f64),
    /// ours below this, in the row's unit.
    Below(f64),
    /// Reported only.
    None,
}

/// Whether a row's target is met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Met {
    Yes,
    No,
    /// A figure the target needs is missing.
    Unknown,
    /// The row has no target.
    NoTarget,
}

impl Met {
    fn text(self) -> &'static str {
        match self {
            Met::Yes => "yes",
            Met::No => "no",
            Met::Unknown => "n/a",
            Met::NoTarget => "-",
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What was measured, and against what.
    pub workload: String,
    pub unit: Unit,
    pub ours: Figure,
    pub baseline: Figure,
    pub target: Target,
}

impl Row {
    /// A row measuring `workload` in `unit`, ours against `baseline`.
    pub fn new(
        workload: impl Into<String>,
        unit: Unit,
        ours: Figure,
        baseline: Figure,
        target: Target,
    ) -> Row {
        Row {
            workload: workload.into(),
            unit,
            ours,
            baseline,
            target,
        }
    }

    /// ours / baseline, when both were measured (and the baseline is not 0).
    pub fn ratio(&self) -> Option<f64> {
        match (self.ours.value(), self.baseline.value()) {
            (Some(o), Some(b)) if b > 0.0 => Some(o / b),
            _ => None,
        }
    }

    pub fn met(&self) -> Met {
        let judged = match self.target {
            Target::None => return Met::NoTarget,
            Target::RatioAtMost(max) => self.ratio().map(|r| r <= max),
            Target::AtMost(max) => self.ours.value().map(|v| v <= max),
            Target::Below(max) => self.ours.value().map(|v| v < max),
        };
        match judged {
            Some(true) => Met::Yes,
            Some(false) => Met::No,
            None => Met::Unknown,
        }
    }

    fn target_text(&self) -> String {
        match self.target {
            Target::RatioAtMost(max) => format!("<= {max}x"),
            Target::AtMost(max) => format!("<= {max} {}", self.unit.symbol()),
            Target::Below(max) => format!("< {max} {}", self.unit.symbol()),
            Target::None => "-".to_string(),
        }
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.workload.clone(),
            self.ours.text(self.unit),
            self.baseline.text(self.unit),
            self.ratio()
                .map_or_else(|| "-".to_string(), |r| format!("{r:.2}x")),
            self.target_text(),
            self.met().text().to_string(),
        ]
    }
}

/// The machine the figures were taken on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub cores: usize,
    /// `MemTotal` of /proc/meminfo.
    pub memory_kib: Option<u64>,
}

impl Machine {
    /// This machine: the cores this process may use (as `nproc` counts them)
    /// and /proc/meminfo.
    pub fn this() -> Machine {
        Machine {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_kib: std::fs::read_to_string("/proc/meminfo")
                .ok()
                .as_deref()
                .and_then(mem_total_kib),
        }
    }

    pub fn describe(&self) -> String {
        let memory = self.memory_kib.map_or_else(
            || "memory unknown".to_string(),
            |kib| format!("{:.1} GiB memory", kib as f64 / (1024.0 * 1024.0)),
        );
        format!("{} cores, {memory}", self.cores)
    }
}

/// `MemTotal` in KiB from the text of /proc/meminfo.
pub fn mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix("MemTotal:")?;
        let mut words = rest.split_whitespace();
        let value = words.next()?.parse().ok()?;
        (words.next() == Some("kB")).then_some(value)
    })
}

/// Everything printed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Lines above the table (what, where, how).
    pub header: Vec<String>,
    pub rows: Vec<Row>,
    /// Lines below the table.
    pub notes: Vec<String>,
}

/// The printout: header, table, a count of targets met, notes.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    for line in &report.header {
        let _ = writeln!(out, "{line}");
    }
    out.push('\n');
    let cells: Vec<Vec<String>> = report.rows.iter().map(Row::cells).collect();
    out.push_str(&grid(
        &["workload", "ours", "baseline", "ratio", "target", "met"],
        &cells,
        &[false, true, true, true, false, false],
    ));
    let judged: Vec<Met> = report
        .rows
        .iter()
        .map(Row::met)
        .filter(|m| *m != Met::NoTarget)
        .collect();
    let count = |m: Met| judged.iter().filter(|x| **x == m).count();
    let _ = write!(
        out,
        "\ntargets met: {} of {}",
        count(Met::Yes),
        judged.len()
    );
    if count(Met::Unknown) > 0 {
        let _ = write!(out, " ({} not measured)", count(Met::Unknown));
    }
    out.push_str(" (reported, not asserted)\n");
    if !report.notes.is_empty() {
        out.push_str("\nnotes:\n");
        for note in &report.notes {
            let _ = writeln!(out, "  - {note}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn row(ours: Figure, baseline: Figure, target: Target) -> Row {
        Row {
            workload: "w".into(),
            unit: Unit::Seconds,
            ours,
            baseline,
            target,
        }
    }

    #[test]
    fn ratio_is_ours_over_baseline() {
        let r = row(Figure::Value(1.0), Figure::Value(4.0), Target::None);
        assert_eq!(r.ratio(), Some(0.25));
        assert_eq!(
            row(Figure::Value(1.0), Figure::Value(0.0), Target::None).ratio(),
            None
        );
        assert_eq!(
            row(Figure::Value(1.0), Figure::missing("n/a"), Target::None).ratio(),
            None
        );
    }

    #[test]
    fn targets_are_judged() {
        let v = Figure::Value;
        let ratio = Target::RatioAtMost(0.8);
        assert_eq!(row(v(0.8), v(1.0), ratio).met(), Met::Yes);
        assert_eq!(row(v(0.81), v(1.0), ratio).met(), Met::No);
        assert_eq!(
            row(v(0.5), Figure::missing("n/a"), ratio).met(),
            Met::Unknown
        );
        assert_eq!(
            row(v(1.0), Figure::missing("-"), Target::AtMost(1.0)).met(),
            Met::Yes
        );
        assert_eq!(
            row(v(1.01), Figure::missing("-"), Target::AtMost(1.0)).met(),
            Met::No
        );
        assert_eq!(
            row(
                Figure::missing("n/a"),
                Figure::missing("-"),
                Target::AtMost(1.0)
            )
            .met(),
            Met::Unknown
        );
        assert_eq!(row(v(99.9), v(1.0), Target::Below(100.0)).met(), Met::Yes);
        assert_eq!(row(v(100.0), v(1.0), Target::Below(100.0)).met(), Met::No);
        assert_eq!(row(v(1.0), v(2.0), Target::None).met(), Met::NoTarget);
    }

    #[test]
    fn figures_from_samples() {
        let mut s = Samples::new();
        assert_eq!(Figure::median(&s, "n/a"), Figure::missing("n/a"));
        s.extend([1, 3, 2].map(Duration::from_secs));
        assert_eq!(Figure::median(&s, "n/a"), Figure::Value(2.0));
    }

    #[test]
    fn cells_read_well() {
        let r = Row {
            workload: "1 six".into(),
            unit: Unit::Seconds,
            ours: Figure::Value(1.23456),
            baseline: Figure::Value(2.0),
            target: Target::RatioAtMost(0.8),
        };
        assert_eq!(
            r.cells(),
            ["1 six", "1.235 s", "2.000 s", "0.62x", "<= 0.8x", "yes"]
        );
        let r = Row {
            workload: "5 rss".into(),
            unit: Unit::Mib,
            ours: Figure::Value(42.04),
            baseline: Figure::missing("-"),
            target: Target::Below(100.0),
        };
        assert_eq!(
            r.cells(),
            ["5 rss", "42.0 MiB", "-", "-", "< 100 MiB", "yes"]
        );
        let r = Row {
            workload: "4 handoff".into(),
            unit: Unit::Seconds,
            ours: Figure::missing("n/a"),
            baseline: Figure::missing("-"),
            target: Target::AtMost(1.0),
        };
        assert_eq!(r.cells(), ["4 handoff", "n/a", "-", "-", "<= 1 s", "n/a"]);
        let r = Row {
            workload: "3 per datum".into(),
            unit: Unit::PerDatum,
            ours: Figure::Value(0.05),
            baseline: Figure::Value(0.25),
            target: Target::RatioAtMost(0.2),
        };
        assert_eq!(
            r.cells()[1..5],
            ["0.050 s/datum", "0.250 s/datum", "0.20x", "<= 0.2x"]
        );
        assert_eq!(r.met(), Met::Yes);
    }

    #[test]
    fn meminfo_is_read() {
        let text = "MemFree:        20746916 kB\nMemTotal:       24683656 kB\n";
        assert_eq!(mem_total_kib(text), Some(24_683_656));
        assert_eq!(mem_total_kib("MemTotal: lots\n"), None);
        assert_eq!(mem_total_kib(""), None);
        let m = Machine {
            cores: 2,
            memory_kib: Some(24_683_656),
        };
        assert_eq!(m.describe(), "2 cores, 23.5 GiB memory");
        let m = Machine {
            cores: 8,
            memory_kib: None,
        };
        assert_eq!(m.describe(), "8 cores, memory unknown");
        assert!(Machine::this().cores >= 1);
    }

    #[test]
    fn render_lays_out_the_table() {
        let report = Report {
            header: vec!["bench loop".into(), "machine: 2 cores".into()],
            rows: vec![
                Row {
                    workload: "1 cold".into(),
                    unit: Unit::Seconds,
                    ours: Figure::Value(2.0),
                    baseline: Figure::Value(2.5),
                    target: Target::RatioAtMost(0.8),
                },
                Row {
                    workload: "4 handoff".into(),
                    unit: Unit::Seconds,
                    ours: Figure::missing("n/a"),
                    baseline: Figure::missing("-"),
                    target: Target::AtMost(1.0),
                },
                Row {
                    workload: "6 jobs".into(),
                    unit: Unit::Seconds,
                    ours: Figure::Value(10.0),
                    baseline: Figure::Value(20.0),
                    target: Target::None,
                },
            ],
            notes: vec!["a note".into()],
        };
        let text = render(&report);
        let expected = "\
bench loop
machine: 2 cores

workload       ours  baseline  ratio  target   met
1 cold      2.000 s   2.500 s  0.80x  <= 0.8x  yes
4 handoff       n/a         -      -  <= 1 s   n/a
6 jobs     10.000 s  20.000 s  0.50x  -        -

targets met: 1 of 2 (1 not measured) (reported, not asserted)

notes:
  - a note
";
        assert_eq!(text, expected);
        assert!(!text.lines().any(|l| l.ends_with(' ')), "{text}");
    }
}
