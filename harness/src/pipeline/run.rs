//! The run phase: N workers take the job's datums from one queue, as the
//! platform's workers do, and the outputs merge in datum order whatever N is.
//!
//! With one worker, lines stream live; with more, each datum's lines are held
//! until it ends and printed in datum order, so that logs never interleave.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::datum::Datum;
use crate::engine::{Engine, Labels, Owned};
use crate::error::Result;
use crate::progress::{DatumState, Event, Progress};

use super::log::LineSink;

/// How much of a datum's output is held for the terminal while other
/// datums' turn comes first (with several workers); the rest is in its log.
const MAX_HELD_BYTES: usize = 4 * 1024 * 1024;
use super::worker::{unique, DatumRun, Session, Worker, WorkerVolumes};
use super::{OutputDir, PhaseFailure, Prepared, Report, RunOptions};

/// How many workers a job gets: `--jobs`, capped by the spec's
/// `parallelism_spec.constant` and by the number of datums.
pub fn worker_count(prepared: &Prepared, jobs: usize, datums: usize) -> usize {
    let constant = prepared
        .loaded
        .spec
        .parallelism_spec
        .as_ref()
        .and_then(|p| p.constant);
    workers_for(jobs, constant, datums)
}

/// `jobs` workers at most, capped by a positive `constant` and by the datums.
fn workers_for(jobs: usize, constant: Option<u64>, datums: usize) -> usize {
    let cap = constant
        .filter(|c| *c > 0)
        .map_or(usize::MAX, |c| usize::try_from(c).unwrap_or(usize::MAX));
    jobs.max(1).min(cap).min(datums.max(1))
}

/// Lines of datums, printed in datum order.
struct OrderedLines<'s> {
    sink: LineSink<'s>,
    live: bool,
    next: usize,
    done: BTreeMap<usize, Vec<(String, String)>>,
}

impl OrderedLines<'_> {
    /// A datum ended: print what is now in order.
    fn finished(&mut self, position: usize, lines: Vec<(String, String)>) {
        self.done.insert(position, lines);
        while let Some(lines) = self.done.remove(&self.next) {
            for (label, line) in lines {
                (self.sink)(&label, &line);
            }
            self.next += 1;
        }
    }
}

/// The workers of a job, their worker processes and their job volume.
pub struct Crew<'a> {
    workers: Vec<Worker<'a>>,
    /// One per worker, open from the start, so that the first datum waits
    /// for no engine call.
    sessions: Vec<Session<'a>>,
    job: Owned,
    progress: Progress,
}

impl<'a> Crew<'a> {
    /// Makes the job volume, starts the workers at once and sends the job's
    /// inputs. Nothing here needs the build's output, so it runs while the
    /// build does.
    pub async fn start(
        engine: &'a Engine,
        prepared: &'a Prepared,
        options: &'a RunOptions,
        selected: &[(usize, &Datum)],
        mut volumes: WorkerVolumes,
    ) -> Result<Crew<'a>> {
        let wanted = worker_count(prepared, options.jobs, selected.len());
        let name = format!("pachbuild-job-{}-{}", options.run, unique());
        engine
            .create_volume(&name, &Labels::for_run(&options.run, "job"))
            .await?;
        let job = Owned::volume(engine, name).with_role("the job's inputs and outputs");
        volumes.job = job.id().to_string();
        let started =
            join_all((0..wanted).map(|_| Worker::start(engine, prepared, options, &volumes))).await;
        let mut workers = Vec::new();
        let mut failed = None;
        for worker in started {
            match worker {
                Ok(w) => workers.push(w),
                Err(e) => failed = Some(e),
            }
        }
        let mut crew = Crew {
            workers,
            sessions: Vec::new(),
            job,
            progress: options.progress.clone(),
        };
        let ready = match failed {
            Some(e) => Err(e),
            None => {
                let (staged, sessions) = tokio::join!(
                    crew.workers[0].stage_inputs(selected),
                    join_all(crew.workers.iter().map(|w| w.open_session()))
                );
                staged.and_then(|()| sessions.into_iter().collect::<Result<Vec<_>>>())
            }
        };
        match ready {
            Ok(sessions) => {
                crew.sessions = sessions;
                Ok(crew)
            }
            Err(e) => {
                crew.finish(false, &mut Vec::new()).await;
                Err(e)
            }
        }
    }

    /// Runs the datums; returns the first failure in datum order, if any.
    /// `numbering` gives each datum's number in the job and the job's
    /// datums (reused ones count: `datum 3/5`).
    pub async fn run(
        &mut self,
        selected: &[(usize, &Datum)],
        numbering: (&[usize], usize),
        keep_going: bool,
        build_end: Instant,
        report: &mut Report,
        sink: LineSink<'_>,
    ) -> Result<Option<PhaseFailure>> {
        report.workers = self.workers.len();
        let sessions = std::mem::take(&mut self.sessions);
        self.progress.emit(Event::Phase("run"));
        run_datums(
            sessions,
            selected,
            numbering,
            keep_going,
            build_end,
            report,
            (sink, &self.progress),
        )
        .await
    }

    /// After every datum succeeded: downloads the outputs (the other
    /// workers go meanwhile), then merges them in datum order (`order`:
    /// label and datum index of every datum of the job, run or reused) into
    /// `out`, after `before_merge`, while the last worker and the job volume
    /// go.
    pub async fn collect_and_finish(
        mut self,
        order: Vec<(String, usize)>,
        before_merge: impl FnOnce(&Path) -> Result<Vec<String>> + Send + 'static,
        options: &RunOptions,
        out: &mut OutputDir,
        report: &mut Report,
    ) -> Result<()> {
        let keep = options.keep;
        options.progress.emit(Event::Phase("outputs"));
        let first = self.workers.remove(0);
        let datums_dir = out.datums_dir();
        let (collected, others) = tokio::join!(
            first.collect_outputs(&datums_dir),
            finish_workers(self.workers, keep)
        );
        report.kept.extend(others);
        let merging = async {
            collected?;
            super::merge_outputs(out, order, options.strict_outputs, before_merge).await
        };
        let last = async {
            let mut kept = finish_workers(vec![first], keep).await;
            self.job.finish(keep, &mut kept).await;
            kept
        };
        let (merged, kept) = tokio::join!(merging, last);
        report.kept.extend(kept);
        let merged = merged?;
        out.files = merged.files;
        report.warnings.extend(merged.warnings);
        Ok(())
    }

    /// Removes the workers (all at once), then the job volume (or keeps
    /// them all).
    pub async fn finish(self, keep: bool, kept: &mut Vec<String>) {
        kept.extend(finish_workers(self.workers, keep).await);
        self.job.finish(keep, kept).await;
    }
}

/// Removes (or keeps) workers all at once; returns what was kept.
async fn finish_workers(workers: Vec<Worker<'_>>, keep: bool) -> Vec<String> {
    join_all(workers.into_iter().map(|worker| async move {
        let mut kept = Vec::new();
        worker.finish(keep, &mut kept).await;
        kept
    }))
    .await
    .into_iter()
    .flatten()
    .collect()
}

/// Runs every datum on the workers. Returns the first failure in datum
/// order, if any.
async fn run_datums(
    sessions: Vec<Session<'_>>,
    selected: &[(usize, &Datum)],
    (numbers, job_total): (&[usize], usize),
    keep_going: bool,
    build_end: Instant,
    report: &mut Report,
    (sink, progress): (LineSink<'_>, &Progress),
) -> Result<Option<PhaseFailure>> {
    let total = selected.len();
    let queue = Mutex::new((0..total).collect::<VecDeque<usize>>());
    let stop = AtomicBool::new(false);
    let lines = Mutex::new(OrderedLines {
        live: sessions.len() == 1,
        sink,
        next: 0,
        done: BTreeMap::new(),
    });
    let results: Mutex<BTreeMap<usize, DatumRun>> = Mutex::new(BTreeMap::new());

    let ended = {
        let (queue, stop, lines, results) = (&queue, &stop, &lines, &results);
        let work = sessions.into_iter().map(|mut session| async move {
            loop {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Some(position) = queue.lock().expect("queue lock").pop_front() else {
                    break;
                };
                let (index, datum) = selected[position];
                let number = numbers.get(position).copied().unwrap_or(position + 1);
                let label = format!("datum {number}/{job_total} {}", datum.id());
                let event = |state| Event::Datum {
                    number,
                    total: job_total,
                    id: datum.id(),
                    state,
                };
                progress.emit(event(DatumState::Started));
                let mut held: Vec<(String, String)> = Vec::new();
                let live = lines.lock().expect("lines lock").live;
                let done = if live {
                    let mut to_sink = |label: &str, line: &str| {
                        let mut lines = lines.lock().expect("lines lock");
                        (lines.sink)(label, line);
                    };
                    session.run_datum(index, datum, &label, &mut to_sink).await
                } else {
                    // Held in memory until the datum's turn: bounded, the
                    // log file has every line.
                    let (mut held_bytes, mut dropped) = (0usize, 0usize);
                    let mut hold = |label: &str, line: &str| {
                        held_bytes += line.len();
                        if held_bytes <= MAX_HELD_BYTES {
                            held.push((label.to_string(), line.to_string()));
                        } else {
                            dropped += 1;
                        }
                    };
                    let done = session.run_datum(index, datum, &label, &mut hold).await;
                    if dropped > 0 {
                        held.push((
                            label.clone(),
                            format!("[{dropped} more lines not shown here: the datum's log has them all]"),
                        ));
                    }
                    done
                };
                let done = match done {
                    Ok(done) => done,
                    Err(e) => {
                        stop.store(true, Ordering::SeqCst);
                        return Err(e);
                    }
                };
                if done.outcome.is_err() && !keep_going {
                    stop.store(true, Ordering::SeqCst);
                }
                progress.emit(event(if done.outcome.is_ok() {
                    DatumState::Passed
                } else {
                    DatumState::Failed
                }));
                {
                    let mut lines = lines.lock().expect("lines lock");
                    if lines.live {
                        lines.next += 1;
                    } else {
                        lines.finished(position, held);
                    }
                }
                results.lock().expect("results lock").insert(position, done);
            }
            session.close().await
        });
        join_all(work).await
    };
    // Lines of datums that ran after a failure elsewhere are still shown.
    {
        let mut lines = lines.lock().expect("lines lock");
        let rest = std::mem::take(&mut lines.done);
        for (_, held) in rest {
            for (label, line) in held {
                (lines.sink)(&label, &line);
            }
        }
    }
    for result in ended {
        result?;
    }

    let results = results.into_inner().expect("results lock");
    let first_start = results.values().map(|r| r.started).min();
    let last_end = results.values().map(|r| r.started + r.elapsed).max();
    report.handoff_time = first_start.map(|s| s.saturating_duration_since(build_end));
    report.datums_time = match (first_start, last_end) {
        (Some(a), Some(b)) => b.saturating_duration_since(a),
        _ => Duration::ZERO,
    };
    let mut failure = None;
    for (position, run) in results {
        let (index, datum) = selected[position];
        report.datum_times.push((datum.id(), run.elapsed));
        if run.recovered {
            report.datums_recovered.push((index, datum.id()));
        }
        if let Err(f) = run.outcome {
            if failure.is_none() {
                failure = Some(f);
            } else {
                report.more_failures.push(f);
            }
        }
    }
    Ok(failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_are_capped_by_the_spec_and_the_datums() {
        assert_eq!(workers_for(4, None, 100), 4);
        assert_eq!(workers_for(4, Some(2), 100), 2);
        assert_eq!(workers_for(4, Some(0), 100), 4);
        assert_eq!(workers_for(4, None, 3), 3);
        assert_eq!(workers_for(0, None, 3), 1);
        assert_eq!(workers_for(4, None, 0), 1);
    }

    #[test]
    fn held_lines_come_out_in_datum_order() {
        let mut seen = Vec::new();
        let mut sink = |label: &str, line: &str| seen.push(format!("{label}:{line}"));
        let mut lines = OrderedLines {
            sink: &mut sink,
            live: false,
            next: 0,
            done: BTreeMap::new(),
        };
        lines.finished(1, vec![("d2".into(), "b".into())]);
        lines.finished(2, vec![("d3".into(), "c".into())]);
        lines.finished(0, vec![("d1".into(), "a".into())]);
        drop(lines);
        assert_eq!(seen, ["d1:a", "d2:b", "d3:c"]);
    }
}
