//! Which process made an object, and whether it still runs: `clean` removes
//! only the objects of runs that are over, never those of a live run (an
//! engine is often shared by several runs, users and CI jobs at once).
//!
//! Every object a run makes carries `io.pachbuild.owner`: the machine's
//! host name and boot id, the process id and its start time (clock ticks
//! since boot, from `/proc/<pid>/stat`). The start time tells a live owner
//! from a later process that reuses its pid; the boot id tells a reboot.

use std::sync::OnceLock;

pub use super::labels::{LABEL_OWNER, LABEL_SESSION};
/// The environment variable that names the session.
pub const SESSION_ENV: &str = "PACHBUILD_SESSION";

/// The session of this process (`PACHBUILD_SESSION`), if any.
pub fn session() -> Option<&'static str> {
    static SESSION: OnceLock<Option<String>> = OnceLock::new();
    SESSION
        .get_or_init(|| std::env::var(SESSION_ENV).ok().filter(|s| !s.is_empty()))
        .as_deref()
}

/// The owner of objects this process makes.
pub fn this_process() -> &'static str {
    static OWNER: OnceLock<String> = OnceLock::new();
    OWNER.get_or_init(|| {
        let pid = std::process::id();
        Owner {
            host: host_name(),
            boot: boot_id(),
            pid,
            start: start_ticks(pid).unwrap_or_default(),
        }
        .to_string()
    })
}

/// Whether the process that made an object still runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// It runs (its pid, on this machine).
    Alive { pid: u32 },
    /// It is over (or the object names no owner: made by an older version,
    /// or by a run that could not say).
    Gone,
    /// Made on another machine (`host`): whether it runs cannot be known.
    Elsewhere { host: String },
}

/// The liveness of the owner `label` names (`None`: no label).
pub fn liveness(label: Option<&str>) -> Liveness {
    let Some(owner) = label.and_then(Owner::parse) else {
        return Liveness::Gone;
    };
    let here = host_name();
    if owner.host != here {
        return Liveness::Elsewhere { host: owner.host };
    }
    if owner.boot != boot_id() {
        return Liveness::Gone;
    }
    match start_ticks(owner.pid) {
        Some(start) if start == owner.start => Liveness::Alive { pid: owner.pid },
        _ => Liveness::Gone,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Owner {
    host: String,
    boot: String,
    pid: u32,
    start: u64,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{};{};{};{}", self.host, self.boot, self.pid, self.start)
    }
}

impl Owner {
    fn parse(text: &str) -> Option<Owner> {
        let mut parts = text.rsplitn(4, ';');
        let start = parts.next()?.parse().ok()?;
        let pid = parts.next()?.parse().ok()?;
        let boot = parts.next()?.to_string();
        let host = parts.next()?.to_string();
        Some(Owner {
            host,
            boot,
            pid,
            start,
        })
    }
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn host_name() -> String {
    let name = read_trimmed("/proc/sys/kernel/hostname");
    if name.is_empty() {
        std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown-host".into())
    } else {
        name
    }
}

fn boot_id() -> String {
    read_trimmed("/proc/sys/kernel/random/boot_id")
}

/// The start time of process `pid` in clock ticks since boot; `None` when
/// there is no such process.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_ticks(&stat)
}

/// Field 22 of `/proc/<pid>/stat`; the command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last `)`.
fn parse_start_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_parses_back() {
        let me = this_process();
        assert_eq!(
            liveness(Some(me)),
            Liveness::Alive {
                pid: std::process::id()
            }
        );
        let owner = Owner::parse(me).unwrap();
        assert_eq!(owner.to_string(), me);
    }

    #[test]
    fn a_reused_pid_a_reboot_or_no_label_is_gone() {
        let me = Owner::parse(this_process()).unwrap();
        let reused = Owner {
            start: me.start + 1,
            ..me.clone()
        };
        assert_eq!(liveness(Some(&reused.to_string())), Liveness::Gone);
        let rebooted = Owner {
            boot: "another-boot".into(),
            ..me.clone()
        };
        assert_eq!(liveness(Some(&rebooted.to_string())), Liveness::Gone);
        assert_eq!(liveness(None), Liveness::Gone);
        assert_eq!(liveness(Some("garbage")), Liveness::Gone);
    }

    #[test]
    fn another_machine_cannot_be_judged() {
        let me = Owner::parse(this_process()).unwrap();
        let there = Owner {
            host: "other;host".into(),
            ..me
        };
        assert_eq!(
            liveness(Some(&there.to_string())),
            Liveness::Elsewhere {
                host: "other;host".into()
            }
        );
    }

    #[test]
    fn start_time_is_read_after_odd_command_names() {
        let stat = "42 (a) b (c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 20";
        assert_eq!(parse_start_ticks(stat), Some(987654));
        assert_eq!(parse_start_ticks("42 (x) S 1"), None);
    }
}
