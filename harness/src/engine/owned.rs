//! Engine objects owned by a value: a container or volume that the code made
//! is removed when its owner is dropped, on every path out (an error, a
//! panic, an interrupt that drops the running command), unless it was kept
//! for debugging (`--keep`) or handed on (a cache entry).

use std::sync::atomic::{AtomicBool, Ordering};

use super::{Engine, VolumeRemoval};

/// Set when a removal found the engine not answering: the objects dropped
/// after it are not tried again (each try waits for a connection to fail).
static ENGINE_UNRESPONSIVE: AtomicBool = AtomicBool::new(false);

/// Whether a removal of this process found the engine not answering.
pub fn engine_unresponsive() -> bool {
    ENGINE_UNRESPONSIVE.load(Ordering::SeqCst)
}

/// Runs `work` with a fresh connection to the engine at `host` (or the
/// error when it does not answer, which the process then remembers: see
/// [`engine_unresponsive`]) on a thread of its own, and waits for it. For
/// clean-ups in `Drop`, which cannot await and may run while the runtime
/// shuts down.
pub fn clean_up_now<F, Fut>(host: &str, work: F)
where
    F: FnOnce(Result<Engine>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let host = host.to_string();
    let _ = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            let engine = Engine::connect_to(&host).await;
            if engine.is_err() {
                ENGINE_UNRESPONSIVE.store(true, Ordering::SeqCst);
            }
            work(engine).await
        });
    })
    .join();
}
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Container,
    Volume,
}

/// A container or volume that is removed when dropped.
#[derive(Debug)]
pub struct Owned {
    engine: Engine,
    kind: Kind,
    id: String,
    armed: bool,
    /// What the object is for (`--keep` says it).
    role: Option<&'static str>,
}

impl Owned {
    /// Takes ownership of the container `id`.
    pub fn container(engine: &Engine, id: String) -> Owned {
        Owned {
            engine: engine.clone(),
            kind: Kind::Container,
            id,
            armed: true,
            role: None,
        }
    }

    /// Takes ownership of the volume `name`.
    pub fn volume(engine: &Engine, name: String) -> Owned {
        Owned {
            engine: engine.clone(),
            kind: Kind::Volume,
            id: name,
            armed: true,
            role: None,
        }
    }

    /// Names what the object is for (`--keep` lists it with its role).
    pub fn with_role(mut self, role: &'static str) -> Owned {
        self.role = Some(role);
        self
    }

    /// The container's id or the volume's name.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Removes the object now (the normal way out).
    pub async fn remove(mut self) -> Result<()> {
        self.armed = false;
        remove(&self.engine, self.kind, &self.id).await
    }

    /// Leaves the object on the engine and returns its id.
    pub fn release(mut self) -> String {
        self.armed = false;
        std::mem::take(&mut self.id)
    }

    /// Removes the object now, or leaves it when `keep`; kept ids are
    /// recorded in `kept`. A failed removal is a warning: the run's label
    /// lets `cargo xtask clean` find the object later.
    pub async fn finish(self, keep: bool, kept: &mut Vec<String>) {
        if keep {
            let what = match self.kind {
                Kind::Container => "container",
                Kind::Volume => "volume",
            };
            let role = self.role;
            if self.kind == Kind::Container {
                self.engine.keep_alive(&self.id).await;
            }
            let id = self.release();
            kept.push(match (self_kind_is_container(what), role) {
                (true, Some(role)) => format!(
                    "{what} {id} ({role}; enter it with `docker exec -it {} sh`)",
                    &id[..12.min(id.len())]
                ),
                (false, Some(role)) => format!("{what} {id} ({role})"),
                (_, None) => format!("{what} {id}"),
            });
        } else {
            let progress = self.engine.progress().clone();
            if let Err(e) = self.remove().await {
                progress.warn(e.to_string());
            }
        }
    }
}

async fn remove(engine: &Engine, kind: Kind, id: &str) -> Result<()> {
    match kind {
        Kind::Container => engine.remove_container(id).await,
        Kind::Volume => match engine.remove_volume(id).await? {
            VolumeRemoval::InUse => Err(super::EngineError::new(
                super::Operation::RemoveVolume,
                id,
                super::Failure::Conflict,
                "a container still uses it (`cargo xtask clean` removes it later)",
            )
            .into()),
            VolumeRemoval::Removed | VolumeRemoval::Gone => Ok(()),
        },
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Drop cannot await, and the runtime may be shutting down: remove
        // on a thread of its own with a fresh connection, and wait for it.
        let (host, kind, id) = (self.engine.host().to_string(), self.kind, self.id.clone());
        let what = match kind {
            Kind::Container => "container",
            Kind::Volume => "volume",
        };
        let progress = self.engine.progress().clone();
        if ENGINE_UNRESPONSIVE.load(Ordering::SeqCst) {
            // Asked once already (10 s): each object need not wait again.
            progress.warn(format!(
                "cannot remove {what} {id}: the engine at {host} does not answer"
            ));
            self.engine.drop_lifeline(&self.id);
            return;
        }
        let engine_host = host.clone();
        clean_up_now(&engine_host, move |engine| async move {
            match engine {
                Ok(engine) => {
                    if let Err(e) = remove(&engine, kind, &id).await {
                        progress.warn(e.to_string());
                    }
                }
                Err(_) => progress.warn(format!(
                    "cannot remove {what} {id}: the engine at {host} does not answer"
                )),
            }
        });
        if self.kind == Kind::Container {
            self.engine.drop_lifeline(&self.id);
        }
    }
}

fn self_kind_is_container(what: &str) -> bool {
    what == "container"
}
