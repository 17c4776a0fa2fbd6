//! Interrupts (SIGINT, SIGTERM) as the library sees them: the command line
//! records one here the moment it arrives, and long synchronous work (walks
//! of folders, content hashes, merges) checks between steps and stops with
//! [`Error::Interrupted`], so that an interrupt is served in moments even
//! where nothing awaits, and everything unwinds through its owners' clean-up.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::{Error, Result};

/// 0: none; else the signal's number.
static SIGNAL: AtomicU8 = AtomicU8::new(0);

/// Records that the process was asked to stop by signal `number` (2, 15).
pub fn request(number: u8) {
    let _ = SIGNAL.compare_exchange(0, number, Ordering::SeqCst, Ordering::SeqCst);
}

/// The signal that asked the process to stop, if one did.
pub fn requested() -> Option<u8> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        n => Some(n),
    }
}

/// `Err(Interrupted)` once an interrupt was requested.
pub fn check() -> Result<()> {
    match requested() {
        None => Ok(()),
        Some(_) => Err(Error::Interrupted),
    }
}
