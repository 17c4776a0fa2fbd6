//! The JUnit XML report (`--junit FILE`): the shape CI systems read
//! (`testsuites` > `testsuite` per builder or pipeline > `testcase`, with
//! `failure` and `skipped`). Written by hand: a few elements, escaped.

use std::fmt::Write as _;

use super::{Case, Results, Status};

/// The XML document for `results`.
pub fn render(results: &Results) -> String {
    // Suites in the order their first case came.
    let mut suites: Vec<(&str, Vec<&Case>)> = Vec::new();
    for case in &results.cases {
        match suites.iter_mut().find(|(name, _)| *name == case.suite) {
            Some((_, cases)) => cases.push(case),
            None => suites.push((&case.suite, vec![case])),
        }
    }
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{:.3}\">",
        escape(&format!("cargo xtask {}", results.command)),
        results.cases.len(),
        results.failed(),
        results.skipped(),
        results.elapsed.as_secs_f64()
    );
    for (suite, cases) in &suites {
        let count = |s: Status| cases.iter().filter(|c| c.status == s).count();
        let time: f64 = cases.iter().map(|c| case_seconds(c)).sum();
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{time:.3}\">",
            escape(suite),
            cases.len(),
            count(Status::Failed),
            count(Status::Skipped)
        );
        for case in cases {
            write_case(&mut xml, results.command, case);
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

fn case_seconds(case: &Case) -> f64 {
    case.build.map_or(0.0, |b| b.seconds) + case.run_seconds.unwrap_or(0.0)
}

fn write_case(xml: &mut String, command: &str, case: &Case) {
    let _ = write!(
        xml,
        "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
        escape(&case.name),
        escape(&format!("{command}.{}", case.suite)),
        case_seconds(case)
    );
    let mut out = Vec::new();
    if let Some(note) = &case.note {
        out.push(format!("note: {note}"));
    }
    if let Some(build) = case.build {
        out.push(format!(
            "build: {:.3}s ({})",
            build.seconds,
            if build.reused { "reused" } else { "built" }
        ));
    }
    if let Some(log) = &case.log {
        out.push(format!("log: {}", log.display()));
    }
    match case.status {
        Status::Passed if out.is_empty() => {
            xml.push_str("/>\n");
            return;
        }
        Status::Passed => xml.push_str(">\n"),
        Status::Skipped => {
            let _ = writeln!(
                xml,
                ">\n      <skipped message=\"{}\"/>",
                escape(case.note.as_deref().unwrap_or("skipped"))
            );
        }
        Status::Failed => {
            let message = case.message.as_deref().unwrap_or("failed");
            let first = message.lines().next().unwrap_or("failed");
            let mut body = message.to_string();
            let tail_shown = case
                .log_tail
                .first()
                .is_some_and(|l| message.contains(&format!("| {l}")));
            if !case.log_tail.is_empty() && !tail_shown {
                body.push_str("\nlast lines of the log:");
                for line in &case.log_tail {
                    body.push_str(&format!("\n  | {line}"));
                }
            }
            for hint in &case.hints {
                body.push_str(&format!("\nhint: {hint}"));
            }
            if let Some(rerun) = &case.rerun {
                body.push_str(&format!("\nrerun only this datum: {rerun}"));
            }
            let _ = writeln!(
                xml,
                ">\n      <failure message=\"{}\" type=\"failure\">{}</failure>",
                escape(first),
                escape_text(&body)
            );
        }
    }
    if !out.is_empty() {
        let _ = writeln!(
            xml,
            "      <system-out>{}</system-out>",
            escape_text(&out.join("\n"))
        );
    }
    xml.push_str("    </testcase>\n");
}

/// Text as an XML attribute value: the five special characters and line
/// breaks escaped, characters XML 1.0 cannot hold replaced.
fn escape(text: &str) -> String {
    escape_with(text, true)
}

/// Text as XML character data (line breaks kept as they are).
fn escape_text(text: &str) -> String {
    escape_with(text, false)
}

fn escape_with(text: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\n' => out.push(c),
            '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_is_xml_with_the_right_counts() {
        let mut results = super::super::tests::sample();
        let mut skipped = Case::new("other <suite>", "3 ab&cd", Status::Skipped).note("reused");
        skipped.message = Some("\u{1b}[31mred\u{1b}[0m".into());
        results.cases.push(skipped);
        let xml = render(&results);
        let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "testsuites");
        assert_eq!(root.attribute("tests"), Some("5"));
        assert_eq!(root.attribute("failures"), Some("2"));
        assert_eq!(root.attribute("skipped"), Some("1"));
        let suites: Vec<_> = root.children().filter(|n| n.is_element()).collect();
        assert_eq!(suites.len(), 2);
        assert_eq!(suites[0].attribute("name"), Some("shtest"));
        assert_eq!(suites[0].attribute("tests"), Some("4"));
        assert_eq!(suites[0].attribute("failures"), Some("2"));
        assert_eq!(suites[1].attribute("name"), Some("other <suite>"));
        let cases: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        assert_eq!(cases.len(), 5);
        assert_eq!(cases[4].attribute("name"), Some("3 ab&cd"));
        let failures: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("failure"))
            .collect();
        assert_eq!(failures.len(), 2);
        let datum = failures[1];
        assert!(datum
            .attribute("message")
            .unwrap()
            .starts_with("the run phase failed on datum 8f3a"));
        let text = datum.text().unwrap();
        assert!(
            text.contains("rerun only this datum: cargo xtask run"),
            "{text}"
        );
        assert!(text.contains("requirements.txt"), "{text}");
        assert!(text.contains("| ModuleNotFoundError"), "{text}");
        assert_eq!(
            doc.descendants()
                .filter(|n| n.has_tag_name("skipped"))
                .count(),
            1
        );
    }

    #[test]
    fn escaping() {
        assert_eq!(
            escape("a<b>&\"'\n\u{0}"),
            "a&lt;b&gt;&amp;&quot;&apos;&#10;\u{fffd}"
        );
        assert_eq!(escape_text("a\nb<"), "a\nb&lt;");
    }
}
