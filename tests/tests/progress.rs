//! Progress as people see it: a command run on a pseudo-terminal draws bars
//! (cursor movements, `\r`); the same command piped prints plain lines with
//! no control sequence at all; `CI` set or `--quiet` draw nothing either.
//! The `shtest` builder of `tests/fixtures/builders` is built once
//! (ephemeral) and removed at the end, as in `cli.rs`.

use std::io::Read;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use e2e::{fixtures_root, TEST_PREFIX};

/// `cargo xtask ARGS` against the test builders, with no CI, color or
/// terminal settings inherited from whoever runs the test.
fn cli(args: &[&str]) -> Command {
    let mut command = e2e::xtask_std();
    command
        .env("PACHBUILD_ROOT", fixtures_root())
        .env("TERM", "xterm-256color")
        .env_remove("CI")
        .env_remove("NO_COLOR")
        .env_remove("UPDATE_EXPECTED")
        .args(["--prefix", TEST_PREFIX])
        .args(args);
    command
}

/// What a command printed on a terminal (stdout and stderr both), and its
/// exit code. The terminal is 120 columns wide; its `\r\n` line ends (the
/// terminal's own) become `\n`.
fn on_terminal(mut command: Command) -> (Option<i32>, String) {
    let size = nix::pty::Winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(&size, None).expect("a pseudo-terminal");
    let out = pty.slave.try_clone().expect("a second slave descriptor");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(pty.slave))
        .spawn()
        .expect("xtask starts");
    // Ours closed (moved into the child's command, dropped with it), the
    // master reads until the child's side closes (EIO on Linux). Read all
    // along: a full terminal buffer would stop the child.
    drop(command);
    let mut master = std::fs::File::from(pty.master);
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match master.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
        bytes
    });
    let status = wait_with_limit(&mut child, Duration::from_secs(600));
    let bytes = reader.join().expect("the reader ends");
    let text = String::from_utf8_lossy(&bytes).replace("\r\n", "\n");
    (status, text)
}

fn wait_with_limit(child: &mut std::process::Child, limit: Duration) -> Option<i32> {
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("the command ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a command printed to pipes: (exit code, stdout, stderr).
fn piped(mut command: Command) -> (Option<i32>, String, String) {
    let output = command.output().expect("xtask runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// No escape sequence and no carriage return: what a log file or CI gets.
fn assert_plain(what: &str, text: &str) {
    assert!(
        !text.contains('\u{1b}') && !text.contains('\r'),
        "{what} has control sequences:\n{text:?}"
    );
}

/// `text` without its SGR sequences (colors), to read what bars say.
fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Times, run ids and image ids made stable, for snapshots.
fn stable(text: &str) -> String {
    text.lines()
        .map(|line| {
            let line = if line.starts_with("shtest: ") {
                // The image line: reused or built, base made or pulled.
                "shtest: [builder image] on [base]"
            } else {
                line
            };
            line.split(' ')
                .map(|word| {
                    let bare = word.trim_matches(|c| "(),".contains(c));
                    let is_time = bare.ends_with('s')
                        && bare.len() > 1
                        && bare[..bare.len() - 1].parse::<f64>().is_ok();
                    if is_time {
                        word.replace(bare, "[T]")
                    } else {
                        word.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// ----- scenarios ------------------------------------------------------------

const FIXTURE: &[&str] = &["test-builder", "shtest", "--fixture", "hello"];

fn a_terminal_gets_bars() {
    let (code, text) = on_terminal(cli(FIXTURE));
    assert_eq!(code, Some(0), "{text}");
    // Bars are redrawn in place: carriage returns and line erasing.
    assert!(text.contains('\r'), "no bar drawn:\n{text:?}");
    assert!(text.contains("\u{1b}[2K"), "no line erased:\n{text:?}");
    // The fixtures bar, and the fixture's own (its phase, then its datums;
    // which of them a redraw catches depends on the machine's speed).
    let shown = strip_ansi(&text);
    assert!(shown.contains("fixtures ["), "no fixtures bar:\n{shown}");
    assert!(
        shown.contains(" hello build phase")
            || shown.contains("hello [")
            || shown.contains(" hello run phase"),
        "no bar of the fixture:\n{shown}"
    );
    // On a terminal the words people look for are colored.
    assert!(
        text.contains("\u{1b}[32mPASS\u{1b}[0m shtest/hello"),
        "{text:?}"
    );
    // The lines printed around the bars stay whole.
    assert!(text.contains("BUILDER  FIXTURE"), "{text}");
    assert!(text.trim_end().ends_with("1 passed, 0 failed"), "{text:?}");
}

fn piped_output_is_plain() {
    let (code, stdout, stderr) = piped(cli(FIXTURE));
    assert_eq!(code, Some(0), "{stderr}");
    assert_plain("stdout", &stdout);
    assert_plain("stderr", &stderr);
    insta::assert_snapshot!("test_builder_piped", stable(&format!("{stdout}{stderr}")));

    // Verbose: every phase's line and each engine call with its time.
    let mut verbose = cli(FIXTURE);
    verbose.arg("-v");
    let (code, stdout, stderr) = piped(verbose);
    assert_eq!(code, Some(0), "{stderr}");
    assert_plain("stdout", &stdout);
    assert_plain("stderr", &stderr);
    assert!(stderr.contains("datum 1/6"), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("DEBUG engine: start container") && l.ends_with(" ms")),
        "{stderr}"
    );

    // --color always colors a pipe, and still draws nothing.
    let mut colored = cli(FIXTURE);
    colored.args(["--color", "always"]);
    let (code, stdout, stderr) = piped(colored);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("\u{1b}[32mPASS\u{1b}[0m"), "{stdout:?}");
    assert!(
        !stdout.contains('\r') && !stderr.contains('\r'),
        "{stderr:?}"
    );
}

fn ci_quiet_and_no_color_draw_nothing_on_a_terminal() {
    let mut ci = cli(FIXTURE);
    ci.env("CI", "true").env("NO_COLOR", "1");
    let (code, text) = on_terminal(ci);
    assert_eq!(code, Some(0), "{text}");
    assert_plain("CI output on a terminal", &text);
    assert!(text.contains("PASS shtest/hello"), "{text}");

    let mut quiet = cli(FIXTURE);
    quiet.args(["--quiet", "--color", "never"]);
    let (code, text) = on_terminal(quiet);
    assert_eq!(code, Some(0), "{text}");
    assert_plain("--quiet output on a terminal", &text);
    // Only the result: the table and the closing line.
    assert!(!text.contains("PASS"), "{text}");
    insta::assert_snapshot!("test_builder_quiet", stable(&text));
}

const SCENARIOS: &[e2e::Scenario] = &[
    ("a_terminal_gets_bars", a_terminal_gets_bars),
    ("piped_output_is_plain", piped_output_is_plain),
    (
        "ci_quiet_and_no_color_draw_nothing_on_a_terminal",
        ci_quiet_and_no_color_draw_nothing_on_a_terminal,
    ),
];

fn main() -> ExitCode {
    e2e::run_suite(SCENARIOS)
}
