//! Bridges between the engine's async byte streams and the synchronous
//! `tar` crate, through small bounded channels: an archive is written (or
//! read) on a blocking thread while it travels, so memory holds a few chunks
//! whatever the archive's size.

use std::io::{self, Read, Write};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::engine::{ArchiveStream, BodyStream};
use crate::error::{Error, Result};

/// Bytes gathered before a chunk is sent.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight between the two sides.
const IN_FLIGHT: usize = 4;

/// An archive being written on a blocking thread while its bytes are sent.
pub struct OutgoingArchive {
    pub body: BodyStream,
    writer: JoinHandle<Result<()>>,
}

impl std::fmt::Debug for OutgoingArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutgoingArchive")
    }
}

impl OutgoingArchive {
    /// Runs `write` on a blocking thread; what it writes becomes `body`.
    pub fn spawn<F>(write: F) -> OutgoingArchive
    where
        F: FnOnce(&mut ChunkWriter) -> Result<()> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(IN_FLIGHT);
        let writer = tokio::task::spawn_blocking(move || {
            let mut out = ChunkWriter {
                tx: tx.clone(),
                buf: Vec::with_capacity(CHUNK),
            };
            let written = write(&mut out).and_then(|()| {
                out.flush()
                    .map_err(|e| Error::Failed(format!("cannot send an archive: {e}")))
            });
            if let Err(e) = &written {
                // Abort the upload: the engine must not unpack half an archive
                // as if it were whole.
                let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
            }
            written
        });
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        OutgoingArchive {
            body: Box::pin(body),
            writer,
        }
    }

    /// Splits into the body to send and a handle to await afterwards.
    pub fn into_parts(self) -> (BodyStream, ArchiveWriter) {
        (self.body, ArchiveWriter(self.writer))
    }
}

/// The writing side of an [`OutgoingArchive`], to await once it is sent.
pub struct ArchiveWriter(JoinHandle<Result<()>>);

impl ArchiveWriter {
    /// The writer's own error is the better message when both sides failed
    /// (a file that vanished says more than "the upload broke").
    pub async fn finish(self, sent: Result<()>) -> Result<()> {
        let written = self
            .0
            .await
            .map_err(|e| Error::Failed(format!("the archive writer stopped: {e}")))?;
        written.and(sent)
    }
}

/// The `Write` end of an [`OutgoingArchive`].
pub struct ChunkWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the engine stopped reading"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let taken = data.len().min(room);
        self.buf.extend_from_slice(&data[..taken]);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// Reads an archive stream from the engine on a blocking thread: `read`
/// gets a `Read` over the stream's bytes as they arrive.
pub async fn read_blocking<T, F>(stream: ArchiveStream, read: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&mut ChunkReader) -> Result<T> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Result<Bytes>>(IN_FLIGHT);
    let forward = async move {
        let mut stream = stream;
        while let Some(item) = stream.next().await {
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    };
    let reader = tokio::task::spawn_blocking(move || {
        let mut input = ChunkReader {
            rx,
            current: Bytes::new(),
            failure: None,
        };
        let result = read(&mut input);
        // A broken stream explains a broken archive better than tar does.
        match input.failure.take() {
            Some(e) => Err(e),
            None => result,
        }
    });
    let ((), read) = tokio::join!(forward, reader);
    read.map_err(|e| Error::Failed(format!("the archive reader stopped: {e}")))?
}

/// The `Read` end of [`read_blocking`].
pub struct ChunkReader {
    rx: mpsc::Receiver<Result<Bytes>>,
    current: Bytes,
    failure: Option<Error>,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => {
                    let text = e.to_string();
                    self.failure = Some(e);
                    return Err(io::Error::other(text));
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bytes_cross_both_bridges_intact() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let expected = data.clone();
        let outgoing = OutgoingArchive::spawn(move |w| {
            for piece in data.chunks(7_777) {
                w.write_all(piece).unwrap();
            }
            Ok(())
        });
        let (body, writer) = outgoing.into_parts();
        let incoming: ArchiveStream =
            Box::pin(body.map(|r| r.map_err(|e| Error::Failed(e.to_string()))));
        let got = read_blocking(incoming, |r| {
            let mut all = Vec::new();
            r.read_to_end(&mut all).unwrap();
            Ok(all)
        })
        .await
        .unwrap();
        writer.finish(Ok(())).await.unwrap();
        assert_eq!(got, expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_failure_breaks_the_body_and_is_reported() {
        let outgoing = OutgoingArchive::spawn(|w| {
            w.write_all(b"partial").unwrap();
            Err(Error::Failed("file vanished".into()))
        });
        let (body, writer) = outgoing.into_parts();
        let items: Vec<io::Result<Bytes>> = body.collect().await;
        assert!(items.last().unwrap().is_err());
        let err = writer.finish(Ok(())).await.unwrap_err();
        assert!(err.to_string().contains("file vanished"), "{err}");
    }
}
