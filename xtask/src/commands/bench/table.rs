//! What the builders bench measured, and how it is printed: the table, the
//! build phases, the image sizes and the targets (pure, no engine).

use std::fmt::Write as _;
use std::time::Duration;

use super::stats::Samples;

/// Our run phase may cost at most this much per datum beyond the program's
/// own imports.
pub const MAX_OVERHEAD_S: f64 = 0.05;
/// The upstream design must cost at least this many times ours ...
pub const MIN_RATIO: f64 = 10.0;
/// ... with this workload in a fresh container.
pub const RATIO_WORKLOAD: &str = "numpy+pandas";

/// One builder's runs of one workload.
#[derive(Debug, Clone, Default)]
pub struct SideResult {
    /// The first datum of each run container.
    pub fresh: Samples,
    /// The later datums of each run container.
    pub warm: Samples,
    pub build_time: Duration,
    /// Bytes of files in the build output.
    pub build_output_bytes: u64,
}

/// One workload, both builders.
#[derive(Debug, Clone, Default)]
pub struct WorkloadResult {
    pub name: String,
    /// The code timed as "imports alone" (`python3 -c CODE`).
    pub imports_code: String,
    pub imports: Samples,
    pub ours: SideResult,
    pub upstream: SideResult,
}

/// An image and its base, with their sizes.
#[derive(Debug, Clone)]
pub struct ImageSize {
    pub role: String,
    pub image: String,
    pub bytes: u64,
    pub base: String,
    pub base_bytes: u64,
}

/// Everything one bench run measured.
#[derive(Debug, Clone, Default)]
pub struct BenchReport {
    pub datums: u32,
    pub runs: u32,
    pub workloads: Vec<WorkloadResult>,
    /// An exec of `true`: the engine's round trip, part of every time.
    pub exec_floor: Samples,
    pub images: Vec<ImageSize>,
}

/// Fresh or warm container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Fresh,
    Warm,
}

impl Container {
    fn label(self) -> &'static str {
        match self {
            Container::Fresh => "fresh",
            Container::Warm => "warm",
        }
    }
}

/// The medians of one row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub workload: String,
    pub container: Container,
    pub imports: Option<f64>,
    pub ours: Option<f64>,
    pub upstream: Option<f64>,
}

impl Row {
    /// How many times ours the upstream design costs.
    pub fn ratio(&self) -> Option<f64> {
        match (self.ours, self.upstream) {
            (Some(o), Some(u)) if o > 0.0 => Some(u / o),
            _ => None,
        }
    }

    /// What our run phase costs beyond the program's imports.
    pub fn overhead(&self) -> Option<f64> {
        Some(self.ours? - self.imports?)
    }
}

impl BenchReport {
    /// Two rows per workload: fresh, then warm.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        for w in &self.workloads {
            for container in [Container::Fresh, Container::Warm] {
                let pick = |side: &SideResult| match container {
                    Container::Fresh => side.fresh.median(),
                    Container::Warm => side.warm.median(),
                };
                rows.push(Row {
                    workload: w.name.clone(),
                    container,
                    imports: w.imports.median(),
                    ours: pick(&w.ours),
                    upstream: pick(&w.upstream),
                });
            }
        }
        rows
    }
}

/// Whether a target is met.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Met(String),
    Missed(String),
    NotMeasured,
}

/// Our overhead beyond imports, worst row against [`MAX_OVERHEAD_S`].
pub fn overhead_target(rows: &[Row]) -> Verdict {
    let worst = rows
        .iter()
        .filter_map(|r| r.overhead().map(|o| (o, r)))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match worst {
        None => Verdict::NotMeasured,
        Some((o, row)) => {
            let what = format!(
                "worst: {} {}, {:+.3} s",
                row.workload,
                row.container.label(),
                o
            );
            if o <= MAX_OVERHEAD_S {
                Verdict::Met(what)
            } else {
                Verdict::Missed(what)
            }
        }
    }
}

/// The upstream/ours ratio of [`RATIO_WORKLOAD`] fresh against [`MIN_RATIO`].
pub fn ratio_target(rows: &[Row]) -> Verdict {
    let ratio = rows
        .iter()
        .find(|r| r.workload == RATIO_WORKLOAD && r.container == Container::Fresh)
        .and_then(Row::ratio);
    match ratio {
        None => Verdict::NotMeasured,
        Some(r) if r >= MIN_RATIO => Verdict::Met(format!("{r:.1}x")),
        Some(r) => Verdict::Missed(format!("{r:.1}x")),
    }
}

fn verdict_text(v: &Verdict) -> String {
    match v {
        Verdict::Met(why) => format!("met ({why})"),
        Verdict::Missed(why) => format!("NOT met ({why})"),
        Verdict::NotMeasured => "not measured".to_string(),
    }
}

/// `1 sample`, `3 samples`.
pub fn count(n: u32, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |s| format!("{s:.3}"))
}

/// A size in MB (10^6 bytes, as the engine counts them), or kB below 1 MB.
pub fn size(bytes: u64) -> String {
    if bytes >= 1_000_000 {
        format!("{:.1} MB", bytes as f64 / 1e6)
    } else {
        format!("{:.1} kB", bytes as f64 / 1e3)
    }
}

/// `new - old` as a signed [`size`].
pub fn size_change(new: u64, old: u64) -> String {
    if new >= old {
        format!("+{}", size(new - old))
    } else {
        format!("-{}", size(old - new))
    }
}

/// Columns padded to their widest cell, two spaces apart; the columns
/// flagged in `right` are right-aligned. Trailing spaces are trimmed.
pub fn grid(header: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
    let cols = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(cols) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, width) in widths.iter().enumerate() {
            let cell = row.get(i).map(String::as_str).unwrap_or("");
            let pad = width.saturating_sub(cell.chars().count());
            if i > 0 {
                line.push_str("  ");
            }
            if right.get(i).copied().unwrap_or(false) {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The whole printout.
pub fn render(report: &BenchReport) -> String {
    let mut out = String::new();
    let rows = report.rows();
    let warm_each = report.datums.saturating_sub(1);
    let _ = writeln!(
        out,
        "python run phase: seconds per datum (medians)\n  fresh: the first datum in a new run container ({}, {})\n  warm: the later datums in the same container ({} each, {})",
        count(report.runs, "container"),
        count(report.runs, "sample"),
        warm_each,
        count(report.runs * warm_each, "sample"),
    );
    out.push('\n');
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.workload.clone(),
                r.container.label().to_string(),
                secs(r.imports),
                secs(r.ours),
                secs(r.upstream),
                r.ratio()
                    .map_or_else(|| "n/a".into(), |x| format!("{x:.1}x")),
                r.overhead()
                    .map_or_else(|| "n/a".into(), |x| format!("{x:+.3}")),
            ]
        })
        .collect();
    out.push_str(&grid(
        &[
            "workload",
            "container",
            "imports alone (s)",
            "ours (s)",
            "upstream-style (s)",
            "ratio",
            "ours - imports (s)",
        ],
        &cells,
        &[false, false, true, true, true, true, true],
    ));
    out.push('\n');
    for w in &report.workloads {
        let _ = writeln!(
            out,
            "imports alone, {}: `python3 -c \"{}\"` in our run image with our build output, median of {}",
            w.name,
            w.imports_code,
            w.imports.len()
        );
    }
    let _ = writeln!(
        out,
        "a datum needs no engine call (the worker process takes it); each probe is an exec: `true` takes {} s (median of {})",
        secs(report.exec_floor.median()),
        report.exec_floor.len()
    );
    let _ = writeln!(
        out,
        "ratio = upstream-style / ours; ours - imports = our run phase beyond the program's own imports"
    );

    out.push_str("\nbuild phase, once per builder and workload:\n");
    let cells: Vec<Vec<String>> = report
        .workloads
        .iter()
        .map(|w| {
            vec![
                w.name.clone(),
                format!("{:.1} s", w.ours.build_time.as_secs_f64()),
                size(w.ours.build_output_bytes),
                format!("{:.1} s", w.upstream.build_time.as_secs_f64()),
                size(w.upstream.build_output_bytes),
            ]
        })
        .collect();
    out.push_str(&grid(
        &[
            "workload",
            "ours: time",
            "output (installed)",
            "upstream-style: time",
            "output (wheels)",
        ],
        &cells,
        &[false, true, true, true, true],
    ));

    out.push_str("\nimage sizes:\n");
    let cells: Vec<Vec<String>> = report
        .images
        .iter()
        .map(|i| {
            vec![
                i.role.clone(),
                i.image.clone(),
                size(i.bytes),
                format!("base {}", i.base),
                size(i.base_bytes),
                size_change(i.bytes, i.base_bytes),
            ]
        })
        .collect();
    out.push_str(&grid(
        &["builder", "image", "size", "base", "size", "added"],
        &cells,
        &[false, false, true, false, true, true],
    ));

    out.push_str("\ntargets:\n");
    let _ = writeln!(
        out,
        "  ours - imports <= {MAX_OVERHEAD_S:.2} s per datum, every workload and container: {}",
        verdict_text(&overhead_target(&rows))
    );
    let _ = writeln!(
        out,
        "  upstream-style / ours >= {MIN_RATIO:.0}x with {RATIO_WORKLOAD} in a fresh container: {}",
        verdict_text(&ratio_target(&rows))
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(ms: &[u64]) -> Samples {
        ms.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    fn side(fresh: &[u64], warm: &[u64]) -> SideResult {
        SideResult {
            fresh: samples(fresh),
            warm: samples(warm),
            build_time: Duration::from_millis(2500),
            build_output_bytes: 1_500_000,
        }
    }

    fn report() -> BenchReport {
        BenchReport {
            datums: 3,
            runs: 2,
            workloads: vec![
                WorkloadResult {
                    name: "six".into(),
                    imports_code: "import six".into(),
                    imports: samples(&[40, 42, 44]),
                    ours: side(&[60, 62], &[50, 52, 54, 56]),
                    upstream: side(&[400, 500], &[300, 310, 320, 330]),
                },
                WorkloadResult {
                    name: "numpy+pandas".into(),
                    imports_code: "import numpy, pandas".into(),
                    imports: samples(&[300]),
                    ours: side(&[320, 340], &[310, 330]),
                    upstream: side(&[5000, 6000], &[800, 900]),
                },
            ],
            exec_floor: samples(&[20, 30, 25]),
            images: vec![ImageSize {
                role: "ours".into(),
                image: "pachbuild/python-build:0.1.0".into(),
                bytes: 191_200_000,
                base: "pachbuild/base-python:bookworm".into(),
                base_bytes: 191_100_000,
            }],
        }
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn rows_hold_medians_ratio_and_overhead() {
        let rows = report().rows();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].container, Container::Fresh);
        assert!(close(rows[0].ours, 0.061));
        assert!(close(rows[0].upstream, 0.45));
        assert!(close(rows[0].imports, 0.042));
        assert!(close(rows[0].overhead(), 0.019));
        assert!(close(rows[1].ours, 0.053));
        assert!(close(rows[2].ratio(), 5.5 / 0.33));
    }

    #[test]
    fn missing_samples_give_no_ratio_or_overhead() {
        let row = Row {
            workload: "x".into(),
            container: Container::Warm,
            imports: None,
            ours: Some(0.0),
            upstream: Some(1.0),
        };
        assert_eq!(row.ratio(), None);
        assert_eq!(row.overhead(), None);
        assert_eq!(
            overhead_target(std::slice::from_ref(&row)),
            Verdict::NotMeasured
        );
        assert_eq!(ratio_target(&[row]), Verdict::NotMeasured);
    }

    #[test]
    fn targets_are_judged() {
        let mut r = report();
        let rows = r.rows();
        assert_eq!(
            overhead_target(&rows),
            Verdict::Met("worst: numpy+pandas fresh, +0.030 s".into())
        );
        assert_eq!(ratio_target(&rows), Verdict::Met("16.7x".into()));
        r.workloads[1].ours.fresh = samples(&[900]);
        let rows = r.rows();
        assert_eq!(
            overhead_target(&rows),
            Verdict::Missed("worst: numpy+pandas fresh, +0.600 s".into())
        );
        assert_eq!(ratio_target(&rows), Verdict::Missed("6.1x".into()));
    }

    #[test]
    fn counts_read_well() {
        assert_eq!(count(1, "sample"), "1 sample");
        assert_eq!(count(0, "sample"), "0 samples");
        assert_eq!(count(12, "container"), "12 containers");
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(size(0), "0.0 kB");
        assert_eq!(size(7_900), "7.9 kB");
        assert_eq!(size(191_049_999), "191.0 MB");
        assert_eq!(size_change(191_010_000, 191_000_000), "+10.0 kB");
        assert_eq!(size_change(5, 2_000_005), "-2.0 MB");
    }

    #[test]
    fn grid_aligns_columns() {
        let text = grid(
            &["name", "n"],
            &[
                vec!["a".into(), "10".into()],
                vec!["long name".into(), "2".into()],
            ],
            &[false, true],
        );
        assert_eq!(text, "name        n\na          10\nlong name   2\n");
        // A short row is padded, not a panic.
        assert_eq!(grid(&["a", "b"], &[vec![]], &[]), "a  b\n\n");
    }

    #[test]
    fn render_shows_everything() {
        let text = render(&report());
        for wanted in [
            "fresh: the first datum in a new run container (2 containers, 2 samples)",
            "warm: the later datums in the same container (2 each, 4 samples)",
            "six           fresh",
            "0.061",
            "7.4x",
            "+0.019",
            "`python3 -c \"import numpy, pandas\"` in our run image with our build output, median of 1",
            "`true` takes 0.025 s (median of 3)",
            "pachbuild/python-build:0.1.0  191.2 MB  base pachbuild/base-python:bookworm  191.1 MB  +100.0 kB",
            "ours - imports <= 0.05 s per datum, every workload and container: met (worst: numpy+pandas fresh, +0.030 s)",
            "upstream-style / ours >= 10x with numpy+pandas in a fresh container: met (16.7x)",
        ] {
            assert!(text.contains(wanted), "missing {wanted:?} in:\n{text}");
        }
        assert!(!text.lines().any(|l| l.ends_with(' ')), "{text}");
    }
}
