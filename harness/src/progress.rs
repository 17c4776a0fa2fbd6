//! What the library is doing, for a caller to show: a small event enum and a
//! cheap, cloneable [`Progress`] handle that forwards events to the caller's
//! function. The default handle drops everything; the library never draws or
//! prints itself, so a caller decides between bars, plain lines or nothing.
//!
//! ```
//! use harness::progress::{Event, Progress};
//!
//! let progress = Progress::new(|scope, event| eprintln!("{scope:?}: {event:?}"));
//! progress.scoped("hello").emit(Event::Warning("something to know".into()));
//! Progress::default().warn("nobody hears this");
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;

use crate::engine::{ArchiveStream, BodyStream};

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The base of `builder` is being made; `phase` is what is going on now
    /// (a line of mmdebstrap's, a pull, the import).
    BasePhase { builder: String, phase: String },
    /// Making the base of `builder` ended (made, pulled, or failed).
    BaseDone { builder: String },
    /// An image build is at `step` of `steps` (`instruction` is the step's
    /// Dockerfile line).
    BuildStep {
        image: String,
        step: u32,
        steps: u32,
        instruction: String,
    },
    /// The image build ended (built, failed, or reused).
    BuildDone { image: String },
    /// An archive moving to or from a container: `bytes` so far; `done`
    /// once, at its end, with the time it took.
    Transfer {
        what: &'static str,
        direction: Direction,
        bytes: u64,
        done: Option<Duration>,
    },
    /// A phase of a pipeline run starts (`build`, `run`, `outputs`).
    Phase(&'static str),
    /// Datum `number` of `total` (the job's numbering) changed state.
    Datum {
        number: usize,
        total: usize,
        id: String,
        state: DatumState,
    },
    /// Something to know that is not an error (a clean-up that failed).
    Warning(String),
}

/// Which way bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the host to a container.
    Sent,
    /// From a container to the host.
    Received,
}

/// Where a datum is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatumState {
    Started,
    Passed,
    Failed,
    /// Skipped: an earlier run's output is reused.
    Reused,
}

type Callback = dyn Fn(Option<&str>, &Event) + Send + Sync;

/// Where events go: a function of the caller's, or nowhere (the default).
/// Cloning is cheap (two reference counts).
#[derive(Clone, Default)]
pub struct Progress {
    callback: Option<Arc<Callback>>,
    /// What the events are about (a fixture, a pipeline), when several run
    /// at once.
    scope: Option<Arc<str>>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("listening", &self.callback.is_some())
            .field("scope", &self.scope)
            .finish()
    }
}

impl Progress {
    /// Events go to `callback`, with the scope they were emitted in.
    pub fn new(callback: impl Fn(Option<&str>, &Event) + Send + Sync + 'static) -> Progress {
        Progress {
            callback: Some(Arc::new(callback)),
            scope: None,
        }
    }

    /// The same handle, its events marked as being about `scope`.
    pub fn scoped(&self, scope: &str) -> Progress {
        Progress {
            callback: self.callback.clone(),
            scope: Some(scope.into()),
        }
    }

    /// Whether anyone listens (to skip work that only feeds events).
    pub fn is_listening(&self) -> bool {
        self.callback.is_some()
    }

    pub fn emit(&self, event: Event) {
        if let Some(callback) = &self.callback {
            callback(self.scope.as_deref(), &event);
        }
    }

    pub fn warn(&self, text: impl Into<String>) {
        self.emit(Event::Warning(text.into()));
    }

    /// `body` as it is, counting the bytes that go through it as `what`.
    pub fn count_sent(&self, what: &'static str, body: BodyStream) -> BodyStream {
        if !self.is_listening() {
            return body;
        }
        Box::pin(Counted::new(body, self.clone(), what, Direction::Sent))
    }

    /// `archive` as it is, counting the bytes that come through it as `what`.
    pub fn count_received(&self, what: &'static str, archive: ArchiveStream) -> ArchiveStream {
        if !self.is_listening() {
            return archive;
        }
        Box::pin(Counted::new(
            archive,
            self.clone(),
            what,
            Direction::Received,
        ))
    }
}

/// A byte stream that reports how much went through it: a `Transfer` event
/// per chunk, and one with `done` when it ends (or is dropped half-way, so
/// that a caller's bar does not stay open).
struct Counted<S> {
    inner: S,
    progress: Progress,
    what: &'static str,
    direction: Direction,
    bytes: u64,
    started: Instant,
    ended: bool,
}

impl<S> Counted<S> {
    fn new(inner: S, progress: Progress, what: &'static str, direction: Direction) -> Self {
        Counted {
            inner,
            progress,
            what,
            direction,
            bytes: 0,
            started: Instant::now(),
            ended: false,
        }
    }

    fn report(&self, done: Option<Duration>) {
        self.progress.emit(Event::Transfer {
            what: self.what,
            direction: self.direction,
            bytes: self.bytes,
            done,
        });
    }

    fn end(&mut self) {
        if !self.ended {
            self.ended = true;
            self.report(Some(self.started.elapsed()));
        }
    }
}

impl<S, E> futures_util::Stream for Counted<S>
where
    S: futures_util::Stream<Item = std::result::Result<Bytes, E>> + Unpin,
{
    type Item = std::result::Result<Bytes, E>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let polled = self.inner.poll_next_unpin(cx);
        match &polled {
            std::task::Poll::Ready(Some(Ok(chunk))) => {
                self.bytes += chunk.len() as u64;
                self.report(None);
            }
            std::task::Poll::Ready(_) => self.end(),
            std::task::Poll::Pending => {}
        }
        polled
    }
}

impl<S> Drop for Counted<S> {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn the_default_handle_drops_events_and_scopes_are_passed() {
        Progress::default().warn("nobody");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let progress = {
            let seen = seen.clone();
            Progress::new(move |scope, event| {
                seen.lock()
                    .unwrap()
                    .push((scope.map(str::to_string), event.clone()))
            })
        };
        progress.warn("a");
        progress.scoped("hello").warn("b");
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0], (None, Event::Warning("a".into())));
        assert_eq!(seen[1], (Some("hello".into()), Event::Warning("b".into())));
    }

    #[tokio::test]
    async fn counted_streams_report_bytes_and_end_once() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let progress = {
            let seen = seen.clone();
            Progress::new(move |_, event| seen.lock().unwrap().push(event.clone()))
        };
        let chunks: Vec<std::io::Result<Bytes>> = vec![
            Ok(Bytes::from_static(b"abc")),
            Ok(Bytes::from_static(b"de")),
        ];
        let body: BodyStream = Box::pin(futures_util::stream::iter(chunks));
        let body = progress.count_sent("source", body);
        let sent: Vec<_> = body.collect().await;
        assert_eq!(sent.len(), 2);
        let seen = seen.lock().unwrap();
        let bytes: Vec<(u64, bool)> = seen
            .iter()
            .map(|e| match e {
                Event::Transfer { bytes, done, .. } => (*bytes, done.is_some()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(bytes, [(3, false), (5, false), (5, true)]);
    }
}
