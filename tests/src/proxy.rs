//! A proxy between the tool and the engine that a test can cut (the engine
//! goes away) or stall (the engine accepts connections and never answers).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A TCP listener on loopback forwarding to the engine's socket. `cut`
/// closes every connection and the listener (new ones are refused);
/// `reopen` listens again on the same port; `stall` holds every byte in
/// both directions (connections stay open, nothing answers) until `resume`.
pub struct Proxy {
    port: u16,
    runtime: tokio::runtime::Runtime,
    tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    stalled: Arc<AtomicBool>,
}

/// Copies `from` to `to`, holding what it read while `stalled`.
async fn pump(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    stalled: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

impl Proxy {
    pub fn start() -> Proxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Proxy {
            port,
            runtime,
            tasks: Arc::default(),
            stalled: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    pub fn host(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let tasks = self.tasks.clone();
        let stalled = self.stalled.clone();
        let accept = self.runtime.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    break;
                };
                let stalled = stalled.clone();
                let forward = tokio::spawn(async move {
                    if let Ok(unix) = tokio::net::UnixStream::connect("/var/run/docker.sock").await
                    {
                        let (tcp_in, tcp_out) = tcp.into_split();
                        let (unix_in, unix_out) = unix.into_split();
                        tokio::join!(
                            pump(tcp_in, unix_out, stalled.clone()),
                            pump(unix_in, tcp_out, stalled)
                        );
                    }
                });
                tasks.lock().unwrap().push(forward.abort_handle());
            }
        });
        self.tasks.lock().unwrap().push(accept.abort_handle());
    }

    /// The engine goes away: every connection closes, new ones are refused.
    pub fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
        // Let the aborted tasks drop their sockets (and the listener).
        std::thread::sleep(Duration::from_millis(100));
    }

    /// The engine stalls: connections stay open and are accepted, and no
    /// byte goes through either way.
    pub fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }

    /// The stalled engine answers again (what was held goes through).
    pub fn resume(&self) {
        self.stalled.store(false, Ordering::SeqCst);
    }

    pub fn reopen(&self) {
        let listener = self
            .runtime
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", self.port)))
            .unwrap();
        self.serve(listener);
    }

    /// A cutter to hand to [`crate::process::run_until`].
    pub fn cutter(self: &Arc<Self>) -> impl FnOnce(u32) + Send + 'static {
        let proxy = self.clone();
        move |_| proxy.cut()
    }
}
