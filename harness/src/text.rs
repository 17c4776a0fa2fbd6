//! Small text helpers the harness and the command line share: shell quoting,
//! short ids and hex digests, the last lines of some output, and the names a
//! message suggests. One copy of each, so that the messages agree.

use std::collections::VecDeque;

/// Quotes `word` for `sh`, always (single quotes; any byte but NUL survives).
/// For text a script reads back, where the same form every time is simpler.
pub fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Quotes `word` for `sh` only when it needs it: for a command line shown
/// to a user, which reads best with as few quotes as possible.
pub fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c));
    if plain {
        word.to_string()
    } else {
        shell_quote(word)
    }
}

/// A command line as a user would type it: each word quoted when it needs it.
pub fn shell_line<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| shell_word(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// An engine id as people read it: 12 hex digits, without `sha256:`.
pub fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    // Ids are ASCII; a longer char at the cut would panic, so stop short.
    let mut end = id.len().min(12);
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    &id[..end]
}

/// Lower-case hex of `bytes` (take a prefix of a digest for a shorter name).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The last `n` items.
pub fn last<T>(items: &[T], n: usize) -> &[T] {
    &items[items.len().saturating_sub(n)..]
}

/// The last `n` lines of `text` that hold more than white space.
pub fn last_lines(text: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    last(&lines, n).iter().map(|l| l.to_string()).collect()
}

/// The last lines of a stream of lines, for an error message: bounded, so a
/// program that prints for hours costs no more than `keep` lines.
#[derive(Debug, Clone)]
pub struct LastLines {
    keep: usize,
    lines: VecDeque<String>,
}

impl LastLines {
    pub fn new(keep: usize) -> LastLines {
        LastLines {
            keep,
            lines: VecDeque::with_capacity(keep.min(64)),
        }
    }

    pub fn push(&mut self, line: String) {
        self.lines.push_back(line);
        if self.lines.len() > self.keep {
            self.lines.pop_front();
        }
    }

    /// The lines kept, oldest first.
    pub fn to_vec(&self) -> Vec<String> {
        self.lines.iter().cloned().collect()
    }
}

/// The edit distance between two names (insertions, deletions,
/// substitutions, and swaps of two neighbours), case-insensitive.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    // Rows i-2, i-1 and i of the (optimal string alignment) table.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut last: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (last[j] + 1).min(row[j - 1] + 1).min(last[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(before[j - 2] + 1);
            }
        }
        before = std::mem::replace(&mut last, row);
    }
    last[b.len()]
}

/// The candidate nearest to `word`, when one is near enough to be what was
/// meant: within a third of the word's length (at least 1, at most 3
/// edits), or one starts with the other. Ties go to the first candidate.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    let lower = word.to_lowercase();
    candidates
        .into_iter()
        .filter_map(|candidate| {
            let d = edit_distance(word, candidate);
            let c = candidate.to_lowercase();
            let prefix = lower.len() >= 2 && (c.starts_with(&lower) || lower.starts_with(&c));
            (d <= limit || prefix).then_some((d, candidate))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, candidate)| candidate)
}

/// `text` with every character `allowed` refuses replaced by `with`: a
/// name made safe for the engine or a file system.
pub fn replace_refused(text: &str, allowed: impl Fn(char) -> bool, with: char) -> String {
    text.chars()
        .map(|c| if allowed(c) { c } else { with })
        .collect()
}

/// A name that would do in place of `name`, for a message's fix: every
/// character `allowed` refuses becomes `-`, and the ends are trimmed to a
/// letter or digit; `fallback` when nothing is left. A caller whose names
/// are lower-case lower-cases first.
pub fn suggest_name(name: &str, allowed: impl Fn(char) -> bool, fallback: &str) -> String {
    let mapped = replace_refused(name, allowed, '-');
    let trimmed = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.is_empty() {
        fallback.to_string()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_always_and_only_when_needed() {
        assert_eq!(shell_quote("echo 'a'"), r"'echo '\''a'\'''");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_word("/work/main"), "/work/main");
        assert_eq!(shell_word("a=b,c@d:e%f+g"), "a=b,c@d:e%f+g");
        assert_eq!(shell_word("/a b/it's"), r"'/a b/it'\''s'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("$HOME"), "'$HOME'");
        assert_eq!(
            shell_line(&["cargo", "xtask", "run", "my spec"]),
            "cargo xtask run 'my spec'"
        );
    }

    #[test]
    fn short_ids_and_hex() {
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(short_id("0123456789abcdef"), "0123456789ab");
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(short_id("ééééééé"), "éééééé");
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn last_lines_skip_blank_ones_and_keep_the_end() {
        assert_eq!(last_lines("one\n\n  \ntwo\nthree\n", 2), ["two", "three"]);
        assert_eq!(last_lines("one\ntwo", 10), ["one", "two"]);
        assert!(last_lines("", 3).is_empty());
        assert_eq!(last(&[1, 2, 3], 2), [2, 3]);
        assert_eq!(last(&[1, 2, 3], 0), [0; 0]);
        let mut kept = LastLines::new(3);
        for i in 0..10 {
            kept.push(format!("n{i}"));
        }
        assert_eq!(kept.to_vec(), ["n7", "n8", "n9"]);
    }

    #[test]
    fn the_nearest_name_is_offered_only_when_near() {
        let builders = ["go", "python", "rust"];
        assert_eq!(nearest("pyhton", builders), Some("python"));
        assert_eq!(nearest("PYTHON3", builders), Some("python"));
        assert_eq!(nearest("py", builders), Some("python"));
        assert_eq!(nearest("golang", builders), Some("go"));
        assert_eq!(nearest("rsut", builders), Some("rust"));
        assert_eq!(nearest("cobol", builders), None);
        assert_eq!(nearest("java", builders), None);
        assert_eq!(edit_distance("python", "python"), 0);
        assert_eq!(edit_distance("pyhton", "python"), 1, "a swap is one edit");
        assert_eq!(edit_distance("Pythn", "python"), 1);
        assert_eq!(edit_distance("go", "rust"), 4);
        assert_eq!(edit_distance("", "go"), 2);
        assert_eq!(edit_distance("glbo", "glob"), 1);
        assert_eq!(edit_distance("Kitten", "sitting"), 3);
    }

    #[test]
    fn suggested_names_replace_what_is_refused() {
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        assert_eq!(suggest_name("my pipe.v2", plain, "x"), "my-pipe-v2");
        assert_eq!(suggest_name("..", plain, "my-pipeline"), "my-pipeline");
        assert_eq!(suggest_name("", plain, "my-pipeline"), "my-pipeline");
        assert_eq!(suggest_name(" _data! ", plain, "x"), "data");
        assert_eq!(replace_refused("a b/c", plain, '_'), "a_b_c");
    }
}
