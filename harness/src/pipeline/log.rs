//! Phase logs: each phase's output streams live to the caller, line by line,
//! and is saved to a file; the last lines are kept for error messages.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::engine::Stream;
use crate::error::{IoContext, Result};
use crate::text::LastLines;

/// How many lines of a failed phase are shown in its error.
pub const TAIL_LINES: usize = 20;

/// The longest line kept whole: a longer one (a program printing megabytes
/// without a newline) is passed on in pieces of this size, so that memory
/// stays bounded and each chunk is looked at once.
pub const MAX_LINE: usize = 64 * 1024;

/// The most a phase's log file keeps; past it, only the last lines (for the
/// error message) are kept, and the file says how much it left out.
pub const MAX_LOG_BYTES: u64 = 64 * 1024 * 1024;

/// Receives every line of every phase, with its label (`build`, `datum 2/5 …`).
pub type LineSink<'a> = &'a mut (dyn FnMut(&str, &str) + Send);

/// The log of one phase (the build, or one datum).
pub struct PhaseLog {
    pub label: String,
    pub path: PathBuf,
    file: File,
    tail: LastLines,
    partial: [Vec<u8>; 2],
    /// Bytes written to the file so far, and bytes left out past the limit.
    written: u64,
    left_out: u64,
    limit: u64,
}

impl PhaseLog {
    pub fn create(dir: &Path, file_name: &str, label: &str) -> Result<PhaseLog> {
        std::fs::create_dir_all(dir).with_path("cannot create the log folder", dir)?;
        let path = dir.join(file_name);
        let file = File::create(&path).with_path("cannot create the log", &path)?;
        Ok(PhaseLog {
            label: label.to_string(),
            path,
            file,
            tail: LastLines::new(TAIL_LINES),
            partial: [Vec::new(), Vec::new()],
            written: 0,
            left_out: 0,
            limit: MAX_LOG_BYTES,
        })
    }

    /// Takes a chunk of output; complete lines go to the sink and the file.
    /// Only the new bytes are searched for line ends: a line that grows over
    /// many chunks costs no more than its length.
    pub fn write(&mut self, stream: Stream, bytes: &[u8], sink: LineSink<'_>) {
        let index = match stream {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        };
        let mut rest = bytes;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            self.partial[index].extend_from_slice(&rest[..newline]);
            rest = &rest[newline + 1..];
            let line = std::mem::take(&mut self.partial[index]);
            self.emit(shown_line(&line), sink);
        }
        if rest.is_empty() {
            return;
        }
        // A carriage return redraws the line (progress bars): what came
        // before the last one is never seen on a terminal, so it is not kept.
        if let Some(cr) = rest.iter().rposition(|&b| b == b'\r') {
            self.partial[index].clear();
            rest = &rest[cr + 1..];
        }
        self.partial[index].extend_from_slice(rest);
        while self.partial[index].len() > MAX_LINE {
            let tail = self.partial[index].split_off(MAX_LINE);
            let piece = std::mem::replace(&mut self.partial[index], tail);
            self.emit(shown_line(&piece), sink);
        }
    }

    /// Whether `stream` has an unfinished line (no newline yet).
    pub fn line_open(&self, stream: Stream) -> bool {
        let index = match stream {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        };
        !self.partial[index].is_empty()
    }

    /// A line of our own (not the program's), e.g. the exit code.
    /// Always written to the file, even past its limit: they are few and
    /// say what happened.
    pub fn note(&mut self, text: &str, sink: LineSink<'_>) {
        let _ = writeln!(self.file, "{text}");
        self.push_tail(text.to_string(), sink);
    }

    /// Flushes unterminated lines.
    pub fn finish(&mut self, sink: LineSink<'_>) {
        for index in 0..2 {
            if !self.partial[index].is_empty() {
                let line = std::mem::take(&mut self.partial[index]);
                self.emit(shown_line(&line), sink);
            }
        }
        if self.left_out > 0 {
            let _ = writeln!(
                self.file,
                "[pachbuild: the log stops here: it reached {} MiB; {} more bytes of output were left out (the last {TAIL_LINES} lines are in the error message)]",
                self.limit / (1024 * 1024),
                self.left_out
            );
            self.left_out = 0;
        }
        let _ = self.file.flush();
    }

    /// The last lines, for an error message.
    pub fn tail(&self) -> Vec<String> {
        self.tail.to_vec()
    }

    fn emit(&mut self, text: String, sink: LineSink<'_>) {
        let size = text.len() as u64 + 1;
        if self.written + size <= self.limit {
            let _ = writeln!(self.file, "{text}");
            self.written += size;
        } else {
            self.left_out += size;
        }
        self.push_tail(text, sink);
    }

    fn push_tail(&mut self, text: String, sink: LineSink<'_>) {
        sink(&self.label, &text);
        self.tail.push(text);
    }
}

/// A line as a terminal would show it: the text after its last carriage
/// return (a progress bar's final state), without the line end.
fn shown_line(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let shown = match line.iter().rposition(|&b| b == b'\r') {
        Some(cr) => &line[cr + 1..],
        None => line,
    };
    String::from_utf8_lossy(shown).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_across_chunks_and_keeps_a_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PhaseLog::create(dir.path(), "build.log", "build").unwrap();
        let mut seen = Vec::new();
        let mut sink = |label: &str, line: &str| seen.push(format!("{label}|{line}"));
        log.write(Stream::Stdout, b"one\ntw", &mut sink);
        log.write(Stream::Stderr, b"err\n", &mut sink);
        log.write(Stream::Stdout, b"o\nthree", &mut sink);
        log.finish(&mut sink);
        for i in 0..30 {
            log.note(&format!("n{i}"), &mut sink);
        }
        assert_eq!(
            &seen[..4],
            ["build|one", "build|err", "build|two", "build|three"]
        );
        let text = std::fs::read_to_string(&log.path).unwrap();
        assert!(text.starts_with("one\nerr\ntwo\nthree\nn0\n"), "{text}");
        assert_eq!(log.tail().len(), TAIL_LINES);
        assert_eq!(log.tail().last().unwrap(), "n29");
    }

    #[test]
    fn a_line_without_end_is_passed_on_in_bounded_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PhaseLog::create(dir.path(), "d.log", "d").unwrap();
        let mut seen: Vec<usize> = Vec::new();
        let mut sink = |_: &str, line: &str| seen.push(line.len());
        let chunk = vec![b'x'; 4096];
        for _ in 0..(5 * MAX_LINE / 4096) {
            log.write(Stream::Stdout, &chunk, &mut sink);
            assert!(log.partial[0].len() <= MAX_LINE);
        }
        log.finish(&mut sink);
        assert_eq!(seen, vec![MAX_LINE; 5]);
    }

    #[test]
    fn carriage_returns_keep_only_what_a_terminal_shows() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PhaseLog::create(dir.path(), "d.log", "d").unwrap();
        let mut seen = Vec::new();
        let mut sink = |_: &str, line: &str| seen.push(line.to_string());
        for percent in 0..=100 {
            log.write(
                Stream::Stdout,
                format!("\r{percent}%").as_bytes(),
                &mut sink,
            );
            assert!(log.partial[0].len() <= 5);
        }
        log.write(Stream::Stdout, b" done\r\nnext\n", &mut sink);
        assert_eq!(seen, ["100% done", "next"]);
    }

    #[test]
    fn the_log_file_stops_at_its_limit_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PhaseLog::create(dir.path(), "d.log", "d").unwrap();
        log.limit = 100;
        let mut shown = 0;
        let mut sink = |_: &str, _: &str| shown += 1;
        for i in 0..50 {
            log.write(
                Stream::Stdout,
                format!("line {i:04}\n").as_bytes(),
                &mut sink,
            );
        }
        log.note("the command exited with code 1", &mut sink);
        log.finish(&mut sink);
        let text = std::fs::read_to_string(&log.path).unwrap();
        assert!(text.len() < 400, "{text}");
        assert!(text.starts_with("line 0000\n"), "{text}");
        assert!(text.contains("the command exited with code 1"), "{text}");
        assert!(text.contains("the log stops here"), "{text}");
        assert_eq!(shown, 51);
        assert_eq!(log.tail().last().unwrap(), "the command exited with code 1");
    }
}
