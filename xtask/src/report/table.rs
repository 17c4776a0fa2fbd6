//! The summary table: one row per case, columns aligned, columns with
//! nothing to show left out.

use std::path::Path;

use super::{Case, Results, Status};

/// The table of `results`, without a trailing newline.
pub fn render(results: &Results, cwd: &Path) -> String {
    let headers = [
        results.columns.0,
        results.columns.1,
        "RESULT",
        "BUILD",
        "RUN",
        "DATUMS",
        "LOG",
    ];
    let rows: Vec<[String; 7]> = results.cases.iter().map(|c| row(c, cwd)).collect();
    // Always the first three; the others when any row has something.
    let shown: Vec<usize> = (0..headers.len())
        .filter(|&i| i < 3 || rows.iter().any(|r| !r[i].is_empty()))
        .collect();
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([headers[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..headers.len()).map(width).collect();
    let line = |cells: Vec<&str>| -> String {
        let mut text = String::new();
        for (n, (&i, cell)) in shown.iter().zip(cells).enumerate() {
            if n + 1 == shown.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        text.trim_end().to_string()
    };
    let mut lines = vec![line(shown.iter().map(|&i| headers[i]).collect())];
    for r in &rows {
        lines.push(line(shown.iter().map(|&i| r[i].as_str()).collect()));
    }
    lines.join("\n")
}

fn row(case: &Case, cwd: &Path) -> [String; 7] {
    let status = match case.status {
        Status::Passed => "passed",
        Status::Failed => "FAILED",
        Status::Skipped => "skipped",
    };
    let result = match &case.note {
        Some(note) => format!("{status} ({note})"),
        None => status.to_string(),
    };
    let build = case.build.map_or_else(String::new, |b| {
        format!(
            "{} {}",
            seconds(b.seconds),
            if b.reused { "reused" } else { "built" }
        )
    });
    let run = case.run_seconds.map_or_else(String::new, seconds);
    let datums = case.datums.map_or_else(String::new, |d| {
        if d.reused > 0 {
            format!("{} + {} reused", d.ran, d.reused)
        } else {
            d.ran.to_string()
        }
    });
    let log = match (&case.log, case.status) {
        (Some(log), Status::Failed) => shown_path(log, cwd),
        _ => String::new(),
    };
    [
        case.suite.clone(),
        case.name.clone(),
        result,
        build,
        run,
        datums,
        log,
    ]
}

fn seconds(s: f64) -> String {
    format!("{s:.1}s")
}

/// `path` relative to `cwd` when it is inside it, else as it is.
pub fn shown_path(path: &Path, cwd: &Path) -> String {
    path.strip_prefix(cwd).unwrap_or(path).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_snapshot() {
        let results = super::super::tests::sample();
        insta::assert_snapshot!(render(&results, Path::new("/work/repo")));
    }

    #[test]
    fn empty_columns_are_left_out() {
        let mut results = Results::new("validate", ("BUILDER", "CHECK"));
        results
            .cases
            .push(Case::new("python", "static checks", Status::Passed));
        results.cases.push(
            Case::new("python", "hadolint", Status::Skipped).note("hadolint is not installed"),
        );
        assert_eq!(
            render(&results, Path::new("/")),
            "BUILDER  CHECK          RESULT\n\
             python   static checks  passed\n\
             python   hadolint       skipped (hadolint is not installed)"
        );
    }
}
