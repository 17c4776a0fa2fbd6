//! Phase logs: each phase's output streams live to the caller, line by line,
//! and is saved to a file; the last lines are kept for error messages.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::engine::Stream;
use crate::error::{IoContext, Result};

/// How many lines of a failed phase are shown in its error.
pub const TAIL_LINES: usize = 20;

/// Receives every line of every phase, with its label (`build`, `datum 2/5 …`).
pub type LineSink<'a> = &'a mut (dyn FnMut(&str, &str) + Send);

/// The log of one phase (the build, or one datum).
pub struct PhaseLog {
    pub label: String,
    pub path: PathBuf,
    file: File,
    tail: VecDeque<String>,
    partial: [Vec<u8>; 2],
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
            tail: VecDeque::new(),
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Takes a chunk of output; complete lines go to the sink and the file.
    pub fn write(&mut self, stream: Stream, bytes: &[u8], sink: LineSink<'_>) {
        let index = match stream {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        };
        self.partial[index].extend_from_slice(bytes);
        while let Some(newline) = self.partial[index].iter().position(|&b| b == b'\n') {
            let rest = self.partial[index].split_off(newline + 1);
            let line = std::mem::replace(&mut self.partial[index], rest);
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            self.emit(text, sink);
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
    pub fn note(&mut self, text: &str, sink: LineSink<'_>) {
        self.emit(text.to_string(), sink);
    }

    /// Flushes unterminated lines.
    pub fn finish(&mut self, sink: LineSink<'_>) {
        for index in 0..2 {
            if !self.partial[index].is_empty() {
                let text =
                    String::from_utf8_lossy(&std::mem::take(&mut self.partial[index])).into_owned();
                self.emit(text, sink);
            }
        }
        let _ = self.file.flush();
    }

    /// The last lines, for an error message.
    pub fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }

    fn emit(&mut self, text: String, sink: LineSink<'_>) {
        let text = text.trim_end_matches('\r').to_string();
        let _ = writeln!(self.file, "{text}");
        sink(&self.label, &text);
        self.tail.push_back(text);
        if self.tail.len() > TAIL_LINES {
            self.tail.pop_front();
        }
    }
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
}
