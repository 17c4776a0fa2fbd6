//! How the command line talks to people: every line xtask prints goes
//! through here (`outln!`, `errln!`, [`Ui::status`]), and so do the
//! library's progress events ([`Ui::progress`]).
//!
//! On a terminal (stderr is one, `CI` unset, not `--quiet`) progress is
//! drawn with indicatif bars on stderr and every line is printed above them
//! (`MultiProgress::suspend`), so streamed logs stay readable. Elsewhere
//! progress is a few plain lines and nothing is ever redrawn: no `\r`, and
//! no ANSI sequence unless `--color always`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use harness::progress::{DatumState, Direction, Event, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Color on a terminal, unless NO_COLOR is set.
    Auto,
    Always,
    Never,
}

/// What the user asked for, and what the terminal allows.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub color: ColorChoice,
    pub quiet: bool,
    pub verbose: u8,
}

/// A line printed through the UI (stdout).
macro_rules! outln {
    () => { $crate::ui::ui().out("") };
    ($($arg:tt)*) => { $crate::ui::ui().out(&format!($($arg)*)) };
}

/// A line printed through the UI (stderr).
macro_rules! errln {
    () => { $crate::ui::ui().err("") };
    ($($arg:tt)*) => { $crate::ui::ui().err(&format!($($arg)*)) };
}

pub struct Ui {
    /// Bars are drawn (stderr is a terminal, not CI, not quiet).
    bars: Option<MultiProgress>,
    color_out: bool,
    color_err: bool,
    quiet: bool,
    verbose: u8,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Base creation, by builder.
    bases: HashMap<String, ProgressBar>,
    /// Image builds, by image.
    builds: HashMap<String, ProgressBar>,
    /// One per fixture or pipeline running (its phase and datums).
    scopes: HashMap<String, ProgressBar>,
    /// Archives travelling, by scope and what.
    transfers: HashMap<(String, &'static str), ProgressBar>,
    /// Fixtures done of all.
    fixtures: Option<ProgressBar>,
}

static UI: OnceLock<Ui> = OnceLock::new();

/// Sets the UI up once, from the command line; later calls change nothing.
pub fn init(settings: Settings) -> &'static Ui {
    UI.get_or_init(|| Ui::new(settings, &Environment::read()))
}

/// The UI (plain, as without a terminal, when [`init`] was not called).
pub fn ui() -> &'static Ui {
    UI.get_or_init(|| {
        Ui::new(
            Settings {
                color: ColorChoice::Never,
                quiet: false,
                verbose: 0,
            },
            &Environment::default(),
        )
    })
}

/// What decides between bars and plain lines, and colors.
#[derive(Debug, Default, Clone)]
pub struct Environment {
    pub stdout_terminal: bool,
    pub stderr_terminal: bool,
    pub ci: bool,
    pub no_color: bool,
    pub dumb: bool,
}

impl Environment {
    pub fn read() -> Environment {
        let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
        Environment {
            stdout_terminal: std::io::stdout().is_terminal(),
            stderr_terminal: std::io::stderr().is_terminal(),
            ci: set("CI"),
            no_color: set("NO_COLOR"),
            dumb: std::env::var("TERM").is_ok_and(|t| t == "dumb"),
        }
    }

    /// Whether progress is drawn as bars.
    pub fn draws(&self, settings: &Settings) -> bool {
        self.stderr_terminal && !self.ci && !self.dumb && !settings.quiet
    }

    /// Whether a stream (a terminal or not) gets colors.
    pub fn colors(&self, settings: &Settings, terminal: bool) -> bool {
        match settings.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && !self.no_color && !self.dumb,
        }
    }
}

impl Ui {
    pub fn new(settings: Settings, env: &Environment) -> Ui {
        let bars = env
            .draws(&settings)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8)));
        Ui {
            bars,
            color_out: env.colors(&settings, env.stdout_terminal),
            color_err: env.colors(&settings, env.stderr_terminal),
            quiet: settings.quiet,
            verbose: settings.verbose,
            state: Mutex::new(State::default()),
        }
    }

    /// `-v` was given.
    pub fn verbose(&self) -> bool {
        self.verbose > 0
    }

    /// `--quiet` was given.
    pub fn quiet(&self) -> bool {
        self.quiet
    }

    /// Bars are drawn.
    pub fn draws(&self) -> bool {
        self.bars.is_some()
    }

    /// A line of the result on stdout.
    pub fn out(&self, text: &str) {
        let line = paint(text, self.color_out);
        self.above_bars(|| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
        });
    }

    /// A line on stderr; with `--quiet` notes are left out.
    pub fn err(&self, text: &str) {
        // Warnings stay with --quiet (a file left out, a clean-up that could
        // not finish): quiet drops chatter, not what the user must know.
        if self.quiet && text.trim_start().starts_with("note:") {
            return;
        }
        self.write_err(text);
    }

    /// A line saying how things go (logs, steps, a fixture that passed):
    /// left out with `--quiet`.
    pub fn status(&self, text: &str) {
        if !self.quiet {
            self.write_err(text);
        }
    }

    fn write_err(&self, text: &str) {
        let line = paint(text, self.color_err);
        self.above_bars(|| {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}");
        });
    }

    /// Runs `print` with the bars out of the way.
    fn above_bars(&self, print: impl FnOnce()) {
        match &self.bars {
            Some(bars) => bars.suspend(print),
            None => print(),
        }
    }

    /// The handle the library reports to.
    pub fn progress(&'static self) -> Progress {
        Progress::new(move |scope, event| self.event(scope, event))
    }

    /// `total` fixtures are about to run.
    pub fn fixtures_start(&self, total: usize) {
        if self.bars.is_some() {
            let style = self.style(
                "{prefix:.bold} [{bar:24.green/dim}] {pos}/{len} {elapsed:.dim}",
                "{prefix} [{bar:24}] {pos}/{len} {elapsed}",
            );
            let bar = self.new_bar(Some(total as u64), style, "fixtures");
            self.lock().fixtures = Some(bar);
        }
    }

    /// A fixture (`scope`, as the library names it) is over.
    pub fn fixture_done(&self, scope: &str) {
        let mut state = self.lock();
        if let Some(bar) = state.scopes.remove(scope) {
            bar.finish_and_clear();
        }
        state.transfers.retain(|(s, _), bar| {
            let keep = s != scope;
            if !keep {
                bar.finish_and_clear();
            }
            keep
        });
        if let Some(bar) = &state.fixtures {
            bar.inc(1);
        }
    }

    /// Every bar goes (the command is over).
    pub fn clear(&self) {
        let mut state = self.lock();
        let state = &mut *state;
        for bar in state
            .bases
            .drain()
            .map(|(_, b)| b)
            .chain(state.builds.drain().map(|(_, b)| b))
            .chain(state.scopes.drain().map(|(_, b)| b))
            .chain(state.transfers.drain().map(|(_, b)| b))
            .chain(state.fixtures.take())
        {
            bar.finish_and_clear();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn style(&self, colored: &str, plain: &str) -> ProgressStyle {
        let template = if self.color_err { colored } else { plain };
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ")
    }

    /// A new bar of `len` steps (a spinner without), drawn only through
    /// the multi-bar: a bar of its own would draw to stderr directly.
    fn new_bar(&self, len: Option<u64>, style: ProgressStyle, prefix: &str) -> ProgressBar {
        self.new_bar_saying(len, style, prefix, "")
    }

    /// [`Ui::new_bar`] with its first message (set before it is first drawn).
    fn new_bar_saying(
        &self,
        len: Option<u64>,
        style: ProgressStyle,
        prefix: &str,
        message: &str,
    ) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::hidden())
            .with_style(style)
            .with_prefix(prefix.to_string())
            .with_message(message.to_string());
        let bar = match &self.bars {
            Some(bars) => bars.add(bar),
            None => bar,
        };
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    fn spinner(&self, prefix: &str, message: &str) -> ProgressBar {
        let style = self.style(
            "{spinner:.cyan} {prefix:.bold} {msg} {elapsed:.dim}",
            "{spinner} {prefix} {msg} {elapsed}",
        );
        self.new_bar_saying(None, style, prefix, message)
    }

    fn event(&self, scope: Option<&str>, event: &Event) {
        if let Event::Warning(text) = event {
            return self.err(&format!("warning: {text}"));
        }
        if self.quiet {
            return;
        }
        if self.bars.is_some() {
            self.draw(scope, event);
        } else {
            self.plain(scope, event);
        }
    }

    /// Without a terminal: a line for what would otherwise be silent for
    /// long (mmdebstrap's phases, a big transfer), nothing for the rest
    /// (build steps, datums and fixtures have their own lines).
    fn plain(&self, scope: Option<&str>, event: &Event) {
        match event {
            Event::BasePhase { builder, phase }
                if !phase.starts_with("pulling ") && !phase.starts_with("importing ") =>
            {
                self.status(&format!("  {builder} | base: {phase}"));
            }
            Event::Transfer {
                what,
                direction,
                bytes,
                done: Some(took),
            } if *took >= Duration::from_secs(1) => {
                let verb = match direction {
                    Direction::Sent => "sent",
                    Direction::Received => "received",
                };
                let scope = scope.map_or_else(String::new, |s| format!("{s}: "));
                self.status(&format!(
                    "{scope}{verb} {} of {what} in {:.1}s",
                    indicatif::HumanBytes(*bytes),
                    took.as_secs_f64()
                ));
            }
            _ => {}
        }
    }

    fn draw(&self, scope: Option<&str>, event: &Event) {
        let mut state = self.lock();
        let scope_name = scope.unwrap_or("pipeline").to_string();
        match event {
            Event::BasePhase { builder, phase } => {
                // One line: mmdebstrap's lines can be long (its scratch path).
                let phase: String = phase.chars().take(60).collect();
                let bar = state
                    .bases
                    .entry(builder.clone())
                    .or_insert_with(|| self.spinner(&format!("{builder} base"), &phase));
                bar.set_message(phase);
            }
            Event::BaseDone { builder } => {
                if let Some(bar) = state.bases.remove(builder) {
                    bar.finish_and_clear();
                }
            }
            Event::BuildStep {
                image,
                step,
                steps,
                instruction,
            } => {
                let bar = state.builds.entry(image.clone()).or_insert_with(|| {
                    let style = self.style(
                        "{prefix:.bold} [{bar:24.cyan/dim}] step {pos}/{len} {msg} {elapsed:.dim}",
                        "{prefix} [{bar:24}] step {pos}/{len} {msg} {elapsed}",
                    );
                    self.new_bar(Some(u64::from(*steps)), style, image)
                });
                bar.set_length(u64::from(*steps));
                bar.set_position(u64::from(*step));
                bar.set_message(instruction.chars().take(60).collect::<String>());
            }
            Event::BuildDone { image } => {
                if let Some(bar) = state.builds.remove(image) {
                    bar.finish_and_clear();
                }
            }
            Event::Transfer {
                what,
                direction,
                bytes,
                done,
            } => {
                let key = (scope_name.clone(), *what);
                if done.is_some() {
                    if let Some(bar) = state.transfers.remove(&key) {
                        bar.finish_and_clear();
                    }
                    return;
                }
                let bar = state.transfers.entry(key).or_insert_with(|| {
                    let verb = match direction {
                        Direction::Sent => "sending",
                        Direction::Received => "receiving",
                    };
                    let style = self.style(
                        &format!("{{spinner:.cyan}} {{prefix:.bold}} {verb} {what} {{bytes}} ({{bytes_per_sec}})"),
                        &format!("{{spinner}} {{prefix}} {verb} {what} {{bytes}} ({{bytes_per_sec}})"),
                    );
                    self.new_bar(None, style, &scope_name)
                });
                bar.set_position(*bytes);
            }
            Event::Phase(phase) => {
                let message = format!("{phase} phase");
                self.scope_bar(&mut state, &scope_name, &message)
                    .set_message(message);
            }
            Event::Datum {
                number,
                total,
                id,
                state: datum,
            } => {
                let bar = self.scope_bar(&mut state, &scope_name, "");
                if bar.length() != Some(*total as u64) {
                    bar.set_length(*total as u64);
                    bar.set_style(self.style(
                        "{prefix:.bold} [{bar:24.green/dim}] {pos}/{len} datums {msg} {elapsed:.dim}",
                        "{prefix} [{bar:24}] {pos}/{len} datums {msg} {elapsed}",
                    ));
                }
                match datum {
                    DatumState::Started => bar.set_message(format!("running #{number} {id}")),
                    DatumState::Passed | DatumState::Reused => bar.inc(1),
                    DatumState::Failed => {
                        bar.inc(1);
                        bar.set_message(format!("#{number} {id} failed"));
                    }
                }
            }
            Event::Warning(_) => {}
        }
    }

    fn scope_bar(&self, state: &mut State, scope: &str, message: &str) -> ProgressBar {
        state
            .scopes
            .entry(scope.to_string())
            .or_insert_with(|| self.spinner(scope, message))
            .clone()
    }
}

/// Colors the words a reader looks for first: `error:`, `warning:`, `PASS`,
/// `FAIL` at the start of a line.
fn paint(text: &str, color: bool) -> std::borrow::Cow<'_, str> {
    if !color {
        return text.into();
    }
    let indent = text.len() - text.trim_start().len();
    let (lead, rest) = text.split_at(indent);
    for (word, code) in [
        ("error:", "1;31"),
        ("warning:", "33"),
        ("hint:", "36"),
        ("PASS", "32"),
        ("FAIL", "1;31"),
    ] {
        if let Some(after) = rest.strip_prefix(word) {
            return format!("{lead}\u{1b}[{code}m{word}\u{1b}[0m{after}").into();
        }
    }
    text.into()
}

/// Where `tracing` writes (`-v`): stderr, above the bars.
#[derive(Clone, Copy)]
pub struct TracingWriter;

impl Write for TracingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let ui = ui();
        ui.above_bars(|| {
            let _ = std::io::stderr().lock().write_all(buf);
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Installs the `tracing` subscriber: warnings always, `-v` the library's
/// and xtask's details (each engine call with its time), `-vv` everything.
pub fn init_tracing(ui: &Ui) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let level = match ui.verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let filter = Targets::new()
        .with_target("harness", level)
        .with_target("xtask", level)
        .with_default(if ui.verbose > 1 {
            LevelFilter::TRACE
        } else {
            LevelFilter::WARN
        });
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(|| TracingWriter)
        .with_ansi(ui.color_err)
        .with_target(false)
        .with_timer(tracing_subscriber::fmt::time::Uptime::default());
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(color: ColorChoice, quiet: bool) -> Settings {
        Settings {
            color,
            quiet,
            verbose: 0,
        }
    }

    #[test]
    fn bars_only_on_a_terminal_outside_ci_and_not_quiet() {
        let terminal = Environment {
            stderr_terminal: true,
            ..Default::default()
        };
        assert!(terminal.draws(&settings(ColorChoice::Auto, false)));
        assert!(!terminal.draws(&settings(ColorChoice::Auto, true)));
        let ci = Environment {
            ci: true,
            ..terminal.clone()
        };
        assert!(!ci.draws(&settings(ColorChoice::Auto, false)));
        assert!(!Environment::default().draws(&settings(ColorChoice::Auto, false)));
    }

    #[test]
    fn colors_follow_the_flag_then_no_color_then_the_terminal() {
        let terminal = Environment {
            stderr_terminal: true,
            ..Default::default()
        };
        let no_color = Environment {
            no_color: true,
            ..terminal.clone()
        };
        let auto = settings(ColorChoice::Auto, false);
        assert!(terminal.colors(&auto, true));
        assert!(!terminal.colors(&auto, false));
        assert!(!no_color.colors(&auto, true));
        assert!(no_color.colors(&settings(ColorChoice::Always, false), false));
        assert!(!terminal.colors(&settings(ColorChoice::Never, false), true));
    }

    #[test]
    fn only_leading_words_are_painted() {
        assert_eq!(paint("error: x", false), "error: x");
        assert_eq!(paint("  FAIL a", true), "  \u{1b}[1;31mFAIL\u{1b}[0m a");
        assert_eq!(paint("a FAIL", true), "a FAIL");
    }
}
