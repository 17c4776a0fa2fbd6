//! Just enough of a POSIX shell reader for the script checks: logical
//! lines (continuations joined, comments and here-document bodies dropped),
//! the simple commands of a line as words, unquoting, and `$name`
//! expansion from known assignments. Rough by design: it finds `set` and
//! `cp` and what they are given, and never fails.

use std::collections::HashMap;

/// `NAME=value` → (NAME, value).
pub(super) fn assignment(word: &str) -> Option<(&str, &str)> {
    let (name, value) = word.split_once('=')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    ((first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_'))
    .then_some((name, value))
}

/// Replaces `$name` and `${name}` with the known values; leaves the rest.
pub(super) fn expand(text: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, consumed) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match vars.get(name) {
            Some(value) if !name.is_empty() => {
                out.push_str(value);
                rest = &after[consumed..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A logical line of a shell script: continuation lines joined, comments
/// and here-document bodies left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ShellLine {
    /// The line it starts on (1-based).
    pub line: usize,
    pub code: String,
}

pub(super) fn shell_lines(text: &str) -> Vec<ShellLine> {
    let mut out = Vec::new();
    let mut heredoc: Option<(String, bool)> = None;
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        if let Some((delimiter, strip_tabs)) = &heredoc {
            let end = if *strip_tabs {
                raw.trim_start_matches('\t')
            } else {
                raw
            };
            if end == delimiter {
                heredoc = None;
            }
            continue;
        }
        let code = strip_shell_comment(raw);
        let (code, continues) = match code.strip_suffix('\\') {
            Some(c) => (c, true),
            None => (code, false),
        };
        let (start, mut joined) = pending.take().unwrap_or((i + 1, String::new()));
        joined.push_str(code);
        if continues {
            joined.push(' ');
            pending = Some((start, joined));
            continue;
        }
        heredoc = heredoc_start(&joined);
        let code = joined.trim().to_string();
        if !code.is_empty() {
            out.push(ShellLine { line: start, code });
        }
    }
    if let Some((line, code)) = pending {
        out.push(ShellLine {
            line,
            code: code.trim().to_string(),
        });
    }
    out
}

/// The line without its comment: a `#` that starts a word, outside quotes.
fn strip_shell_comment(line: &str) -> &str {
    let (mut single, mut double, mut escaped) = (false, false, false);
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if single {
            single = c != '\'';
        } else {
            match c {
                '\\' => escaped = true,
                '\'' if !double => single = true,
                '"' => double = !double,
                '#' if !double
                    && (previous.is_whitespace() || ";&|()".contains(previous) || i == 0) =>
                {
                    return &line[..i];
                }
                _ => {}
            }
        }
        previous = c;
    }
    line
}

/// `<<WORD`, `<<'WORD'`, `<<-"WORD"` on a line: (WORD, strip leading tabs).
fn heredoc_start(code: &str) -> Option<(String, bool)> {
    let mut search = code;
    while let Some(i) = search.find("<<") {
        let after = &search[i + 2..];
        if let Some(rest) = after.strip_prefix('<') {
            // A here-string (`<<<`).
            search = rest;
            continue;
        }
        let (strip_tabs, after) = match after.strip_prefix('-') {
            Some(a) => (true, a),
            None => (false, after),
        };
        let after = after.trim_start();
        let word: String = after
            .chars()
            .filter(|c| *c != '\'' && *c != '"' && *c != '\\')
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        if !word.is_empty() {
            return Some((word, strip_tabs));
        }
        search = after;
    }
    None
}

/// The simple commands of a line, as words (quotes kept), split at
/// `;`, `&`, `|`, `&&`, `||`, `(` and `)` outside quotes. Rough, but enough
/// to find `set` and `cp` and what they are given.
pub(super) fn shell_commands(code: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let (mut single, mut double, mut escaped) = (false, false, false);
    let mut depth = 0usize; // inside `$( ... )` or `${ ... }`
    let mut previous = ' ';
    for c in code.chars() {
        if escaped {
            escaped = false;
            word.push(c);
        } else if single {
            single = c != '\'';
            word.push(c);
        } else if c == '\\' {
            escaped = true;
            word.push(c);
        } else if c == '\'' && !double && depth == 0 {
            single = true;
            word.push(c);
        } else if c == '"' {
            double = !double;
            word.push(c);
        } else if (c == '(' || c == '{') && previous == '$' {
            depth += 1;
            word.push(c);
        } else if (c == ')' || c == '}') && depth > 0 {
            depth -= 1;
            word.push(c);
        } else if double || depth > 0 {
            word.push(c);
        } else if c.is_whitespace() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
        } else if ";&|()".contains(c) {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            if !words.is_empty() {
                commands.push(std::mem::take(&mut words));
            }
        } else {
            word.push(c);
        }
        previous = c;
    }
    if !word.is_empty() {
        words.push(word);
    }
    if !words.is_empty() {
        commands.push(words);
    }
    // Reserved words before a command (`then cp ...`, `if set -e`) are not
    // the command.
    const RESERVED: &[&str] = &[
        "if", "then", "else", "elif", "do", "while", "until", "!", "{", "time",
    ];
    commands
        .into_iter()
        .map(|words| {
            let skip = words
                .iter()
                .take_while(|w| RESERVED.contains(&w.as_str()))
                .count();
            words[skip..].to_vec()
        })
        .filter(|words| !words.is_empty())
        .collect()
}

/// A word without its quotes and backslash escapes.
pub(super) fn unquote(word: &str) -> String {
    let mut out = String::new();
    let (mut single, mut double, mut escaped) = (false, false, false);
    for c in word.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if single {
            if c == '\'' {
                single = false;
            } else {
                out.push(c);
            }
        } else {
            match c {
                '\\' => escaped = true,
                '\'' if !double => single = true,
                '"' => double = !double,
                _ => out.push(c),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn here_documents_are_not_code() {
        let text = "#!/bin/sh\ncat <<'EOF'\nset -e\nEOF\npython3 - <<-PY\n\tcp run.sh /pfs/out\n\tPY\necho done\n";
        let lines = shell_lines(text);
        let codes: Vec<(usize, &str)> = lines.iter().map(|l| (l.line, l.code.as_str())).collect();
        assert_eq!(
            codes,
            [(2, "cat <<'EOF'"), (5, "python3 - <<-PY"), (8, "echo done")]
        );
    }

    #[test]
    fn comments_need_a_word_start() {
        assert_eq!(
            strip_shell_comment("echo $# ${#x} # count"),
            "echo $# ${#x} "
        );
        assert_eq!(
            strip_shell_comment("echo '# not' \"# not\""),
            "echo '# not' \"# not\""
        );
        assert_eq!(strip_shell_comment("# all"), "");
    }

    #[test]
    fn variables_expand_from_earlier_assignments() {
        let vars = HashMap::from([("out".to_string(), "/pfs/out".to_string())]);
        assert_eq!(expand("$out/run.sh", &vars), "/pfs/out/run.sh");
        assert_eq!(expand("${out}/a$unknown", &vars), "/pfs/out/a$unknown");
        assert_eq!(expand("$", &vars), "$");
    }
}
