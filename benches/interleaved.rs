//! Wall time in one interleaved run, on real executors: tasklane against futures-buffered and
//! futures-util, reported as the median of per-round ratios (see BENCHMARKS.md).
//!
//! ```sh
//! cargo bench -p tasklane-benches --bench interleaved            # every section, ~1-3 minutes
//! INTERLEAVED_SECTIONS=wake,timeout cargo bench -p tasklane-benches --bench interleaved
//! ```
//!
//! criterion measures one benchmark after the other, so machine drift between two benchmarks (another
//! build starting on a shared machine, the CPU's clock changing) lands in their ratio. Here every
//! section runs in rounds: each round runs every case of the section once, the cases in a shuffled
//! order, and within a case every implementation once, in a shuffled order (a seeded shuffle, the seed
//! printed), so the runs that a ratio compares are milliseconds apart. A ratio is computed per round
//! (tasklane's time over the peer's in that round) and the report gives the **median of the per-round
//! ratios** (not the ratio of the medians), with their interquartile range, beside the median ns per
//! item of each implementation for context.
//!
//! The rounds are shared out to several processes run one after the other (5 by default), each
//! with a warm-up round of its own, discarded, and a shuffle seed of its own; their rounds are
//! pooled. On this machine a whole process can run one implementation nearly twice as slowly as
//! the next process does (with a tight spread inside each process, and nothing else running), so
//! the rounds of one process alone can agree with each other and still be off.
//!
//! Each run builds its stream, drains it to the end under the executor and drops it, all timed: the
//! executor's `block_on` call as a whole, on `futures::executor::block_on` and on a tokio
//! current-thread runtime (`Runtime::block_on`, every driver enabled as `#[tokio::main(flavor =
//! "current_thread")]` builds it). The futures are written as users write them: `|x| async move { x }`
//! (ready) and `|x| async move { yield_now().await; x }` (yield: wakes its task and returns `Pending`
//! once). The outputs are counted and summed (and checked in input order for the ordered streams)
//! after each run, so nothing is optimized away.
//!
//! Sections (`INTERLEAVED_SECTIONS`, comma-separated, default all four):
//!
//! - `lane`: `(0..n).lane(L)[.ordered()].map_async(f)` against futures-buffered's
//!   `buffered_unordered(L)` / `buffered_ordered(L)` and futures-util's `buffer_unordered(L)` /
//!   `buffered(L)` over `stream::iter(0..n).map(f)`, at each `L`, both orders, both futures.
//! - `wake`: wake cost with everything in flight pending: `n` items through `L` slots, each future
//!   waits at a gate that opens when `L` futures wait at it, then wakes them all in a random (fixed)
//!   order; at `L` = 100 and 10,000. Reported: each implementation's ns per item at 10,000 over its
//!   ns per item at 100 (per round, then the median), and tasklane over futures-buffered at each `L`.
//! - `gather`: `tasklane::gather(futs, limit)` against futures-buffered (`join_all(futs)` when
//!   unbounded, `stream::iter(futs).buffered_ordered(limit).collect::<Vec<_>>()` when bounded) and
//!   futures-util (`future::join_all(futs)`, `stream::iter(futs).buffered(limit).collect()`).
//! - `timeout`: `(0..n).lane(L).timeout::<()>(1 s).map_async(|x| async move { Ok(x) })` against the
//!   same lane without the timeout (`Ok::<u64, ()>(x)`): the median of the per-round differences in
//!   ns per item. Each row names the timer the lane sleeps on: futures-timer's by default,
//!   async-io's with `--features async-io`, and tokio's on the tokio executor with
//!   `--features tokio-timer` (`INTERLEAVED_SECTIONS=timeout cargo bench -p tasklane-benches
//!   --bench interleaved --features tokio-timer`; the tokio runtime needs its drivers then).
//!
//! Settings (environment variables):
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `INTERLEAVED_SECTIONS` | sections to run | `lane,wake,gather,timeout` |
//! | `INTERLEAVED_ROUNDS` | measured rounds, over all processes | `31` |
//! | `INTERLEAVED_PROCESSES` | processes to share the rounds out to (each warms up first) | `5` |
//! | `INTERLEAVED_N` | items per run | `100000` |
//! | `INTERLEAVED_SEED` | seed of the shuffles and of the gate's wake order | `20261201` |
//! | `INTERLEAVED_EXECUTORS` | `block_on`, `tokio` | `block_on,tokio` |
//! | `INTERLEAVED_LIMITS` | `L` of the `lane` and `timeout` sections | `1,16,256,4096` |
//! | `INTERLEAVED_WAKE_LIMITS` | `L` of the `wake` section (ratio: last over first) | `100,10000` |
//! | `INTERLEAVED_GATHER_LIMIT` | the bounded gather's limit (the other is unbounded) | `256` |
//! | `INTERLEAVED_TOKIO` | tokio drivers: `all` (`enable_all`) or `none` | `all` |
//! | `INTERLEAVED_CLOCK` | `wall`, or `cpu`: the thread's CPU time, for a loaded machine | `wall` |
//! | `INTERLEAVED_RAW` | a file to append every measured run to (tab-separated), to see the spread | none |
//!
//! The tables go to stdout as Markdown, ready to paste into BENCHMARKS.md; progress goes to stderr.
//! Under each table a line says how much the machine got in the way: the share of runs whose
//! thread was off the CPU (wall time less the thread's CPU time) for more than 5 % of their wall
//! time. Where that is high, read the interquartile ranges, run again, or read the same run on the
//! thread's CPU time (`INTERLEAVED_CLOCK=cpu`).
//!
//! As with criterion, an argument that does not start with `--` is a filter: only the sections
//! whose name contains it run (so `cargo bench -- wake_scaling` at the root runs none of this
//! file), and without the `--bench` that `cargo bench` passes (`cargo test --benches`) every
//! section runs one round on 1,000 items, a check that every run works.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::future::Future;
use std::hint::black_box;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use futures::stream::{self, Stream, StreamExt};
use futures_buffered::BufferedStreamExt;
use tasklane::prelude::*;

#[allow(dead_code)]
// reason: this bench uses only `yield_once` of the helpers the bench files share
mod common;
use common::{Exec, YieldOnce};

/// The future users await to give way once: it wakes its task and returns `Pending` at its first
/// poll, and is ready at its second (like `tokio::task::yield_now`).
fn yield_now() -> YieldOnce<()> {
    common::yield_once(())
}

/// The timeout of the `timeout` section: never fires within a run.
const TIMEOUT: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

/// Every section, in the order they run.
const SECTIONS: [&str; 4] = ["lane", "wake", "gather", "timeout"];

/// What one run of the bench measures, from the `INTERLEAVED_*` variables.
#[derive(Debug)]
struct Settings {
    /// Sections to run, in [`SECTIONS`] order.
    sections: Vec<&'static str>,
    /// Measured rounds per section (after one warm-up round).
    rounds: usize,
    /// Items per run.
    n: u64,
    /// Seed of every shuffle.
    seed: u64,
    /// Executors, in the order given.
    executors: Vec<ExecKind>,
    /// Limits of the `lane` and `timeout` sections.
    limits: Vec<usize>,
    /// Limits of the `wake` section: the scaling ratio is the last's over the first's.
    wake_limits: Vec<usize>,
    /// The bounded gather's limit.
    gather_limit: usize,
    /// Whether the tokio runtime has its I/O and time drivers (`enable_all`).
    tokio_drivers: bool,
    /// The variables that were set, for the command line in the report.
    overrides: Vec<(String, String)>,
    /// The clock the figures are read on.
    clock: Clock,
    /// A file to append every measured run to (`INTERLEAVED_RAW`).
    raw: Option<String>,
    /// Run without `--bench`: one round on a few items, a check that every run works.
    smoke: bool,
    /// Processes to share the rounds out to (`INTERLEAVED_PROCESSES`).
    processes: usize,
    /// In a child process: its index (`INTERLEAVED_CHILD`, set by the parent).
    child: Option<usize>,
    /// In the parent of child processes: what they measured.
    replay: Option<Replay>,
}

/// A variable's value, if it is set (and not empty); records it for the report.
fn var(overrides: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let value = std::env::var(name).ok().filter(|v| !v.trim().is_empty())?;
    overrides.push((name.to_owned(), value.clone()));
    Some(value)
}

/// Parses a number, allowing `_` separators; panics naming `name` on a bad value.
fn number<T: std::str::FromStr>(name: &str, value: &str) -> T {
    value
        .trim()
        .replace('_', "")
        .parse()
        .unwrap_or_else(|_| panic!("{name}: {value:?} is not a number"))
}

/// Parses a comma-separated list of numbers.
fn numbers(name: &str, value: &str) -> Vec<usize> {
    value
        .split(',')
        .filter(|v| !v.trim().is_empty())
        .map(|v| number(name, v))
        .collect()
}

impl Settings {
    /// Reads the `INTERLEAVED_*` variables (see the table at the top of the file).
    fn from_env() -> Self {
        let mut overrides = Vec::new();
        let sections = match var(&mut overrides, "INTERLEAVED_SECTIONS") {
            Some(list) => {
                let wanted: Vec<&str> = list.split(',').map(str::trim).collect();
                for name in &wanted {
                    assert!(
                        SECTIONS.contains(name),
                        "INTERLEAVED_SECTIONS: {name:?} is none of {SECTIONS:?}"
                    );
                }
                SECTIONS
                    .into_iter()
                    .filter(|s| wanted.contains(s))
                    .collect()
            }
            None => SECTIONS.to_vec(),
        };
        let rounds = var(&mut overrides, "INTERLEAVED_ROUNDS")
            .map_or(31, |v| number("INTERLEAVED_ROUNDS", &v));
        let n =
            var(&mut overrides, "INTERLEAVED_N").map_or(100_000, |v| number("INTERLEAVED_N", &v));
        let seed = var(&mut overrides, "INTERLEAVED_SEED")
            .map_or(20_261_201, |v| number("INTERLEAVED_SEED", &v));
        let executors = match var(&mut overrides, "INTERLEAVED_EXECUTORS") {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| match v {
                    "block_on" => ExecKind::BlockOn,
                    "tokio" => ExecKind::Tokio,
                    other => {
                        panic!("INTERLEAVED_EXECUTORS: {other:?} is neither block_on nor tokio")
                    }
                })
                .collect(),
            None => vec![ExecKind::BlockOn, ExecKind::Tokio],
        };
        let limits = var(&mut overrides, "INTERLEAVED_LIMITS").map_or_else(
            || vec![1, 16, 256, 4096],
            |v| numbers("INTERLEAVED_LIMITS", &v),
        );
        let wake_limits = var(&mut overrides, "INTERLEAVED_WAKE_LIMITS").map_or_else(
            || vec![100, 10_000],
            |v| numbers("INTERLEAVED_WAKE_LIMITS", &v),
        );
        let gather_limit = var(&mut overrides, "INTERLEAVED_GATHER_LIMIT")
            .map_or(256, |v| number("INTERLEAVED_GATHER_LIMIT", &v));
        let raw = var(&mut overrides, "INTERLEAVED_RAW");
        let processes = var(&mut overrides, "INTERLEAVED_PROCESSES")
            .map_or(5, |v| number("INTERLEAVED_PROCESSES", &v));
        // Set by the parent, not by a user: not an override.
        let child = std::env::var("INTERLEAVED_CHILD")
            .ok()
            .map(|v| number("INTERLEAVED_CHILD", &v));
        let clock = match var(&mut overrides, "INTERLEAVED_CLOCK").as_deref() {
            None | Some("wall") => Clock::Wall,
            Some("cpu") => Clock::Cpu,
            Some(other) => panic!("INTERLEAVED_CLOCK: {other:?} is neither wall nor cpu"),
        };
        let tokio_drivers = match var(&mut overrides, "INTERLEAVED_TOKIO").as_deref() {
            None | Some("all") => true,
            Some("none") => false,
            Some(other) => panic!("INTERLEAVED_TOKIO: {other:?} is neither all nor none"),
        };
        assert!(rounds > 0, "INTERLEAVED_ROUNDS: at least one round");
        assert!(processes > 0, "INTERLEAVED_PROCESSES: at least one process");
        // A child's rounds are its share: its `processes` is the parent's, for its messages.
        let processes = if child.is_some() {
            processes
        } else {
            processes.min(rounds)
        };
        assert!(n > 0, "INTERLEAVED_N: at least one item");
        assert!(!executors.is_empty(), "INTERLEAVED_EXECUTORS: at least one");
        assert!(
            limits.iter().chain(&wake_limits).all(|&l| l > 0) && gather_limit > 0,
            "every limit is at least 1"
        );
        assert!(
            !wake_limits.is_empty(),
            "INTERLEAVED_WAKE_LIMITS: at least one"
        );
        Settings {
            sections,
            rounds,
            n,
            seed,
            executors,
            limits,
            wake_limits,
            gather_limit,
            tokio_drivers,
            clock,
            raw,
            overrides,
            smoke: false,
            processes,
            child,
            replay: None,
        }
    }

    /// Applies the command line that `cargo bench` or `cargo test` passes. As in criterion, a
    /// filter (an argument not starting with `--`) keeps the sections whose name contains it, so
    /// `cargo bench -- wake_scaling` at the root runs none of this file; and without `--bench`
    /// (`cargo test --benches`) each section runs once, on a few items, to check that it works.
    fn apply_args(&mut self, args: &[String]) {
        let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
        if !filters.is_empty() {
            self.sections
                .retain(|section| filters.iter().any(|f| section.contains(f.as_str())));
        }
        if !args.iter().any(|a| a == "--bench") {
            self.smoke = true;
            self.rounds = 1;
            self.processes = 1;
            self.n = self.n.min(1_000);
        }
    }
}

/// The clock the figures are read on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Clock {
    /// Wall time: what the issue asks for, and what a user waits.
    Wall,
    /// The calling thread's CPU time: leaves out the time other threads took the CPU (a loaded
    /// machine), and also the work of other threads (futures-timer's).
    Cpu,
}

// ---------------------------------------------------------------------------------------------
// Executors and runs
// ---------------------------------------------------------------------------------------------

/// The executors a run can be driven by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ExecKind {
    /// `futures::executor::block_on`.
    BlockOn,
    /// A tokio current-thread runtime's `Runtime::block_on`.
    Tokio,
}

/// One timed run: returns its times, after checking what it produced.
type Run<'a> = Box<dyn FnMut() -> Timing + 'a>;

/// What one run took.
#[derive(Clone, Copy, Debug)]
struct Timing {
    /// Wall time (`Instant`).
    wall: Duration,
    /// The calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`): the wall time less the time the
    /// thread was off the CPU. Other threads (futures-timer's) are not in it.
    cpu: Duration,
}

/// Both clocks of a [`Timing`], started.
#[derive(Debug)]
struct Stopwatch {
    /// The wall clock at the start.
    wall: Instant,
    /// The thread's CPU clock at the start.
    cpu: Duration,
}

impl Stopwatch {
    /// Reads both clocks (the CPU clock first, so the wall time spans the CPU time).
    fn start() -> Self {
        let cpu = thread_cpu_time();
        Stopwatch {
            wall: Instant::now(),
            cpu,
        }
    }

    /// The times since [`start`](Stopwatch::start).
    fn stop(self) -> Timing {
        let wall = self.wall.elapsed();
        Timing {
            wall,
            cpu: thread_cpu_time().saturating_sub(self.cpu),
        }
    }
}

/// The calling thread's CPU time (on other systems than Unix: the wall time since the first call).
fn thread_cpu_time() -> Duration {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable `timespec`; CLOCK_THREAD_CPUTIME_ID is always there.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
    #[cfg(not(unix))]
    {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        START.get_or_init(Instant::now).elapsed()
    }
}

/// One implementation in a case.
struct Variant<'a> {
    /// Its name (for progress and for finding it in the results).
    name: String,
    /// Items per run, to turn a run's time into ns per item.
    items: u64,
    /// The run.
    run: Run<'a>,
}

/// What a drain saw: the number of items, their sum, and whether each was its own position.
#[derive(Clone, Copy, Debug)]
struct Tally {
    /// Items.
    count: u64,
    /// Their sum.
    sum: u64,
    /// Whether item `i` was `i` for every `i` (input order).
    in_order: bool,
}

impl Tally {
    /// Asserts that a run over `0..n` gave `n` items summing to `0 + ... + (n - 1)`, in input order
    /// if `ordered`.
    fn check(self, n: u64, ordered: bool) {
        assert_eq!(self.count, n, "one output per item");
        assert_eq!(self.sum, n * (n - 1) / 2, "every output once");
        assert!(!ordered || self.in_order, "outputs in input order");
    }

    /// The tally of a gathered `Vec`.
    fn of(out: &[u64]) -> Self {
        Tally {
            count: out.len() as u64,
            sum: out.iter().sum(),
            in_order: out.iter().zip(0..).all(|(&x, i)| x == i),
        }
    }
}

/// Drains `stream` with `while let Some(x) = stream.next().await`, as users do; `value` takes each
/// item's value (the `Ok` of the timeout section's results).
async fn consume<S, V>(stream: S, value: V) -> Tally
where
    S: Stream,
    V: Fn(S::Item) -> u64,
{
    let mut stream = pin!(stream);
    let mut tally = Tally {
        count: 0,
        sum: 0,
        in_order: true,
    };
    while let Some(item) = stream.next().await {
        let x = black_box(value(item));
        tally.in_order &= x == tally.count;
        tally.count += 1;
        tally.sum += x;
    }
    tally
}

/// The value of a plain item.
fn plain(x: u64) -> u64 {
    x
}

/// The value of an item that must be `Ok`.
fn ok<E: std::fmt::Debug>(x: Result<u64, E>) -> u64 {
    x.expect("no item fails or times out")
}

/// A variant that builds a stream with `make` and drains it on `exec`, all timed, then checks it.
fn stream_variant<'a, S, M, V>(
    name: &str,
    exec: Exec<'a>,
    n: u64,
    ordered: bool,
    make: M,
    value: V,
) -> Variant<'a>
where
    S: Stream,
    M: Fn() -> S + 'a,
    V: Fn(S::Item) -> u64 + Copy + 'a,
{
    Variant {
        name: name.to_owned(),
        items: n,
        run: Box::new(move || {
            let stopwatch = Stopwatch::start();
            let tally = exec.block_on(async { consume(make(), value).await });
            let timing = stopwatch.stop();
            tally.check(n, ordered);
            timing
        }),
    }
}

/// A variant that awaits the `Vec` that `make` gives on `exec`, timed, then checks it (in input
/// order) and drops it, untimed.
fn gather_variant<'a, F, M>(name: &str, exec: Exec<'a>, n: u64, make: M) -> Variant<'a>
where
    F: Future<Output = Vec<u64>>,
    M: Fn() -> F + 'a,
{
    Variant {
        name: name.to_owned(),
        items: n,
        run: Box::new(move || {
            let stopwatch = Stopwatch::start();
            let out = exec.block_on(async { make().await });
            let timing = stopwatch.stop();
            Tally::of(&out).check(n, true);
            timing
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// The interleaving
// ---------------------------------------------------------------------------------------------

/// The measurements of one case: ns per item of each variant (in the case's variant order), one
/// value per measured round.
type Samples = Vec<Vec<f64>>;

/// What [`interleave`] measured.
#[derive(Debug)]
struct Measured {
    /// Per case, per variant, one ns per item per measured round, on the clock of the settings.
    samples: Vec<Samples>,
    /// Per measured run, the share of its wall time that its thread spent off the CPU.
    off_cpu: Vec<f64>,
    /// How many CPUs other processes kept busy, on average over the section (from `/proc`).
    others: Option<f64>,
}

impl Measured {
    /// A line saying how much of the section's time other threads took: runs whose thread was
    /// off the CPU for more than 5 % of their wall time were slowed by the machine, not the code.
    fn note(&self) -> String {
        let disturbed = self.off_cpu.iter().filter(|&&share| share > 0.05).count();
        let others = self.others.map_or_else(String::new, |busy| {
            format!(
                "Other processes kept {busy:.2} of the {} CPUs busy on average during this section. ",
                cores()
            )
        });
        format!(
            "{others}Off the CPU (wall time less the thread's CPU time): {disturbed} of {} runs \
             lost more than 5 % of their wall time to other threads; the median run lost {:.1} %, \
             the worst {:.0} %.\n",
            self.off_cpu.len(),
            100.0 * median(&self.off_cpu),
            100.0 * self.off_cpu.iter().copied().fold(0.0, f64::max),
        )
    }
}

/// The CPU time used so far by the whole machine and by this process, in clock ticks, from
/// `/proc/stat` and `/proc/self/stat` (Linux; `None` elsewhere).
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    // `cpu  user nice system idle iowait irq softirq steal ...`: busy is all but idle and iowait.
    let all: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|field| field.parse().ok())
        .collect::<Option<_>>()?;
    let machine = all.get(..7)?.iter().sum::<u64>() - all[3] - all[4];
    let own = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command name in parentheses: the state is field 3, utime 14 and stime 15.
    let fields: Vec<&str> = own.rsplit_once(')')?.1.split_whitespace().collect();
    let process = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((machine, process))
}

/// How many CPUs other processes kept busy on average since `start` (the [`cpu_ticks`] and the
/// time then).
fn others_busy(start: Option<(u64, u64)>, since: Instant) -> Option<f64> {
    let ((machine0, process0), (machine1, process1)) = (start?, cpu_ticks()?);
    #[cfg(unix)]
    // SAFETY: sysconf only reads a configuration value.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    #[cfg(not(unix))]
    let ticks_per_second = 100.0;
    let others = (machine1 - machine0).saturating_sub(process1 - process0);
    Some(others as f64 / ticks_per_second / since.elapsed().as_secs_f64())
}

/// The times of one section: per case, per variant, per measured round, wall and CPU ns per item.
type Times = Vec<Vec<Vec<(f64, f64)>>>;

/// How many CPUs other processes kept busy during a section, and over how many seconds.
type Others = Option<(f64, f64)>;

/// Measures a section: runs its rounds here ([`run_rounds`]), or, in the parent of several
/// processes, takes what the processes measured ([`Replay`]). A child process also prints its
/// times to stdout for its parent.
fn interleave(
    title: &str,
    labels: &[String],
    cases: &mut [Vec<Variant<'_>>],
    settings: &Settings,
    rng: &mut fastrand::Rng,
) -> Measured {
    let (times, others) = match &settings.replay {
        Some(replay) => replay.section(title, cases),
        None => run_rounds(title, labels, cases, settings, rng),
    };
    if settings.child.is_some() {
        let mut out = String::new();
        for (c, variants) in times.iter().enumerate() {
            for (v, rounds) in variants.iter().enumerate() {
                for (wall, cpu) in rounds {
                    let _ = writeln!(out, "S\t{title}\t{c}\t{v}\t{wall}\t{cpu}");
                }
            }
        }
        if let Some((busy, seconds)) = others {
            let _ = writeln!(out, "O\t{title}\t{busy}\t{seconds}");
        }
        print!("{out}");
    }
    let samples = times
        .iter()
        .map(|variants| {
            variants
                .iter()
                .map(|rounds| {
                    rounds
                        .iter()
                        .map(|&(wall, cpu)| match settings.clock {
                            Clock::Wall => wall,
                            Clock::Cpu => cpu,
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let off_cpu = times
        .iter()
        .flatten()
        .flatten()
        .map(|&(wall, cpu)| (1.0 - cpu / wall).max(0.0))
        .collect();
    Measured {
        samples,
        off_cpu,
        others: others.map(|(busy, _)| busy),
    }
}

/// Runs `1 + rounds` rounds over `cases`: each round runs every case once, the cases in a shuffled
/// order, and within a case every variant once, in a shuffled order. The first round is a warm-up
/// and is discarded. Returns each variant's wall and CPU ns per item per measured round, and how
/// busy other processes kept the machine meanwhile. With `INTERLEAVED_RAW`, every measured run is
/// also appended to that file, one line each: section, process, case (`labels`), variant, round,
/// wall and CPU ns per item, tab-separated.
fn run_rounds(
    title: &str,
    labels: &[String],
    cases: &mut [Vec<Variant<'_>>],
    settings: &Settings,
    rng: &mut fastrand::Rng,
) -> (Times, Others) {
    let rounds = settings.rounds;
    let process = settings.child.unwrap_or(0);
    let mut raw = String::new();
    let mut times: Times = cases
        .iter()
        .map(|variants| vec![Vec::with_capacity(rounds); variants.len()])
        .collect();
    let mut case_order: Vec<usize> = (0..cases.len()).collect();
    let start = Instant::now();
    let ticks = cpu_ticks();
    let prefix = settings.child.map_or_else(String::new, |p| {
        format!("[process {}/{}] ", p + 1, settings.processes)
    });
    eprint!("{prefix}{title}: warm-up");
    for round in 0..=rounds {
        rng.shuffle(&mut case_order);
        for &c in &case_order {
            let variants = &mut cases[c];
            let mut order: Vec<usize> = (0..variants.len()).collect();
            rng.shuffle(&mut order);
            for v in order {
                let variant = &mut variants[v];
                let timing = (variant.run)();
                if round == 0 {
                    continue;
                }
                let per_item = |d: Duration| d.as_nanos() as f64 / variant.items as f64;
                let (wall, cpu) = (per_item(timing.wall), per_item(timing.cpu));
                times[c][v].push((wall, cpu));
                if settings.raw.is_some() {
                    let _ = writeln!(
                        raw,
                        "{title}\t{process}\t{}\t{}\t{round}\t{wall:.2}\t{cpu:.2}",
                        labels[c], variant.name
                    );
                }
            }
        }
        if round == 0 {
            eprint!(" done, rounds:");
        } else if round % 10 == 0 || round == rounds {
            eprint!(" {round}");
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    eprintln!(" ({seconds:.1} s)");
    if let Some(path) = &settings.raw {
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| std::io::Write::write_all(&mut file, raw.as_bytes()));
        if let Err(err) = appended {
            eprintln!("INTERLEAVED_RAW: cannot append to {path}: {err}");
        }
    }
    (times, others_busy(ticks, start).map(|busy| (busy, seconds)))
}

/// What the child processes measured, gathered by their parent: the rounds of every process one
/// after the other, so that a round's variants still pair up.
#[derive(Debug, Default)]
struct Replay {
    /// Wall and CPU ns per item, by section, case and variant, in process and round order.
    times: std::collections::HashMap<(String, usize, usize), Vec<(f64, f64)>>,
    /// By section: each process's (busy CPUs of other processes, seconds).
    others: std::collections::HashMap<String, Vec<(f64, f64)>>,
}

impl Replay {
    /// Reads one child's stdout (see [`interleave`]).
    fn add(&mut self, output: &str) {
        for line in output.lines() {
            let fields: Vec<&str> = line.split('\t').collect();
            let float = |i: usize| -> f64 { number("the child's output", fields[i]) };
            match fields[..] {
                ["S", section, case, variant, _, _] => self
                    .times
                    .entry((
                        section.to_owned(),
                        number("case", case),
                        number("variant", variant),
                    ))
                    .or_default()
                    .push((float(4), float(5))),
                ["O", section, _, _] => self
                    .others
                    .entry(section.to_owned())
                    .or_default()
                    .push((float(2), float(3))),
                _ => panic!("unexpected line from a child process: {line:?}"),
            }
        }
    }

    /// The times of section `title`, shaped like its `cases`; the other processes' load is the
    /// mean over the processes, weighted by their time.
    fn section(&self, title: &str, cases: &[Vec<Variant<'_>>]) -> (Times, Others) {
        let times: Times = cases
            .iter()
            .enumerate()
            .map(|(c, variants)| {
                (0..variants.len())
                    .map(|v| {
                        self.times
                            .get(&(title.to_owned(), c, v))
                            .cloned()
                            .unwrap_or_else(|| panic!("no times for {title} case {c} variant {v}"))
                    })
                    .collect()
            })
            .collect();
        let others = self.others.get(title).and_then(|parts| {
            let seconds: f64 = parts.iter().map(|&(_, s)| s).sum();
            (seconds > 0.0).then(|| {
                let busy = parts.iter().map(|&(b, s)| b * s).sum::<f64>() / seconds;
                (busy, seconds)
            })
        });
        (times, others)
    }
}

/// The measured rounds of each of `processes` processes: `rounds` shared out as evenly as can be.
fn rounds_per_process(rounds: usize, processes: usize) -> Vec<usize> {
    (0..processes)
        .map(|p| rounds / processes + usize::from(p < rounds % processes))
        .collect()
}

/// Runs this bench in `settings.processes` child processes, one after the other, each with its
/// share of the rounds and a seed of its own, and gathers what they measured.
fn run_children(settings: &Settings, args: &[String]) -> Replay {
    let exe = std::env::current_exe().expect("the bench's own path");
    let mut replay = Replay::default();
    for (p, rounds) in rounds_per_process(settings.rounds, settings.processes)
        .into_iter()
        .enumerate()
    {
        let output = std::process::Command::new(&exe)
            .args(args)
            .env("INTERLEAVED_CHILD", p.to_string())
            .env("INTERLEAVED_ROUNDS", rounds.to_string())
            .env("INTERLEAVED_PROCESSES", settings.processes.to_string())
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("a child process of the bench");
        assert!(
            output.status.success(),
            "child process {p} failed: {}",
            output.status
        );
        replay.add(&String::from_utf8_lossy(&output.stdout));
    }
    replay
}

/// The index of the variant named `name` in `variants`.
fn index(variants: &[Variant<'_>], name: &str) -> usize {
    variants
        .iter()
        .position(|v| v.name == name)
        .unwrap_or_else(|| panic!("no variant {name:?}"))
}

// ---------------------------------------------------------------------------------------------
// Statistics and formatting
// ---------------------------------------------------------------------------------------------

/// The `q`-quantile of `values` (linear interpolation between the closest ranks).
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = q * (sorted.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64)
}

/// The median of `values`.
fn median(values: &[f64]) -> f64 {
    quantile(values, 0.5)
}

/// Per-round `a[r] / b[r]`.
fn ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(a, b)| a / b).collect()
}

/// Per-round `a[r] - b[r]`.
fn differences(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(a, b)| a - b).collect()
}

/// A median of ns per item, one decimal.
fn ns(values: &[f64]) -> String {
    format!("{:.1}", median(values))
}

/// The median of per-round ratios in bold, with their interquartile range.
fn ratio(values: &[f64]) -> String {
    format!(
        "**{:.2}** ({:.2}–{:.2})",
        median(values),
        quantile(values, 0.25),
        quantile(values, 0.75)
    )
}

/// The median of per-round differences (ns per item) in bold, signed, with their interquartile range.
fn difference(values: &[f64]) -> String {
    format!(
        "**{:+.1}** ({:+.1} to {:+.1})",
        median(values),
        quantile(values, 0.25),
        quantile(values, 0.75)
    )
}

/// `n` with thousands separators (`100,000`).
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A limit as the tables name it.
fn limit_name(limit: usize) -> String {
    if limit == usize::MAX {
        "unbounded".to_owned()
    } else {
        thousands(limit as u64)
    }
}

/// A Markdown table: a header row, the separator, the rows.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    };
    line(
        &mut out,
        &header.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
    );
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    for row in rows {
        line(&mut out, row);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Section `lane`
// ---------------------------------------------------------------------------------------------

/// What a `lane` case is: executor, future, order, limit.
#[derive(Clone, Copy, Debug)]
struct LaneCase {
    /// The executor's name.
    exec: &'static str,
    /// `ready` or `yield`.
    fut: &'static str,
    /// Input order rather than completion order.
    ordered: bool,
    /// The concurrency limit.
    limit: usize,
}

/// The three implementations of one `lane` case over `0..n` mapped through `f`.
fn lane_variants<'a, F, Fut>(
    exec: Exec<'a>,
    n: u64,
    ordered: bool,
    limit: usize,
    f: F,
) -> Vec<Variant<'a>>
where
    F: Fn(u64) -> Fut + Copy + 'a,
    Fut: Future<Output = u64> + 'a,
{
    let items = move || 0..black_box(n);
    if ordered {
        vec![
            stream_variant(
                "tasklane",
                exec,
                n,
                true,
                move || items().lane(limit).ordered().map_async(f),
                plain,
            ),
            stream_variant(
                "futures_buffered",
                exec,
                n,
                true,
                move || stream::iter(items()).map(f).buffered_ordered(limit),
                plain,
            ),
            stream_variant(
                "futures_util",
                exec,
                n,
                true,
                move || stream::iter(items()).map(f).buffered(limit),
                plain,
            ),
        ]
    } else {
        vec![
            stream_variant(
                "tasklane",
                exec,
                n,
                false,
                move || items().lane(limit).map_async(f),
                plain,
            ),
            stream_variant(
                "futures_buffered",
                exec,
                n,
                false,
                move || stream::iter(items()).map(f).buffered_unordered(limit),
                plain,
            ),
            stream_variant(
                "futures_util",
                exec,
                n,
                false,
                move || stream::iter(items()).map(f).buffer_unordered(limit),
                plain,
            ),
        ]
    }
}

/// Section `lane`: per-item wall time of the three implementations, every limit, both orders, both
/// futures, on each executor. One table per executor.
fn lane_section(settings: &Settings, execs: &[Exec<'_>], rng: &mut fastrand::Rng) -> String {
    let n = settings.n;
    let mut meta = Vec::new();
    let mut cases = Vec::new();
    for &exec in execs {
        for fut in ["ready", "yield"] {
            for ordered in [false, true] {
                for &limit in &settings.limits {
                    meta.push(LaneCase {
                        exec: exec.name(),
                        fut,
                        ordered,
                        limit,
                    });
                    cases.push(match fut {
                        "ready" => lane_variants(exec, n, ordered, limit, |x| async move { x }),
                        _ => lane_variants(exec, n, ordered, limit, |x| async move {
                            yield_now().await;
                            x
                        }),
                    });
                }
            }
        }
    }
    let labels: Vec<String> = meta.iter().map(|m| format!("{m:?}")).collect();
    let measured = interleave("lane", &labels, &mut cases, settings, rng);
    let samples = &measured.samples;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "### lane: `(0..n).lane(L)[.ordered()].map_async(f)` against futures-buffered and futures-util\n\n\
         N = {} items per run; ns per item (median over rounds) and tasklane's time over the peer's \
         (median of per-round ratios, interquartile range in brackets; below 1: tasklane is faster). \
         Peers: futures-buffered `buffered_unordered(L)` / `buffered_ordered(L)`, futures-util \
         `buffer_unordered(L)` / `buffered(L)`, over `stream::iter(0..n).map(f)`.\n",
        thousands(n)
    );
    for &exec in execs {
        let rows: Vec<Vec<String>> = meta
            .iter()
            .zip(&cases)
            .zip(samples)
            .filter(|((m, _), _)| m.exec == exec.name())
            .map(|((m, variants), s)| {
                let [t, fb, fu] = ["tasklane", "futures_buffered", "futures_util"]
                    .map(|name| &s[index(variants, name)]);
                vec![
                    m.fut.to_owned(),
                    if m.ordered { "ordered" } else { "unordered" }.to_owned(),
                    limit_name(m.limit),
                    ns(t),
                    ns(fb),
                    ns(fu),
                    ratio(&ratios(t, fb)),
                    ratio(&ratios(t, fu)),
                ]
            })
            .collect();
        let _ = writeln!(out, "**{}**\n", executor_title(exec));
        out.push_str(&table(
            &[
                "fut",
                "order",
                "L",
                "tasklane",
                "futures-buffered",
                "futures-util",
                "tasklane / futures-buffered",
                "tasklane / futures-util",
            ],
            &rows,
        ));
        out.push('\n');
    }
    out.push_str(&measured.note());
    out.push('\n');
    out
}

/// An executor's description in the table titles.
fn executor_title(exec: Exec<'_>) -> &'static str {
    match exec {
        Exec::BlockOn => "`futures::executor::block_on`",
        Exec::Tokio(_) => "tokio current-thread `Runtime::block_on`",
    }
}

// ---------------------------------------------------------------------------------------------
// Section `wake`
// ---------------------------------------------------------------------------------------------

/// A barrier of `width` futures: each future that arrives stores its waker and returns `Pending`;
/// the `width`-th arrival opens the gate, waking every waiter (itself included) in the order
/// `order`, and the next arrivals wait for the next opening. So every item is pending once and woken
/// once, with `width` futures pending at each opening. Single-threaded (`Cell`, `RefCell`), as both
/// executors here are.
#[derive(Debug)]
struct Gate<'o> {
    /// The release order: a permutation of `0..width`, the positions of arrival.
    order: &'o [u32],
    /// The number of openings so far.
    opened: Cell<u64>,
    /// The wakers of the futures waiting for the next opening, in arrival order.
    waiting: RefCell<Vec<Option<Waker>>>,
}

impl<'o> Gate<'o> {
    /// A closed gate for `order.len()` waiters.
    fn new(order: &'o [u32]) -> Self {
        Gate {
            order,
            opened: Cell::new(0),
            waiting: RefCell::new(Vec::with_capacity(order.len())),
        }
    }

    /// A future that waits for the gate's next opening.
    fn arrive(&self) -> Arrive<'_, 'o> {
        Arrive {
            gate: self,
            ticket: None,
        }
    }
}

/// The future of [`Gate::arrive`].
#[derive(Debug)]
struct Arrive<'g, 'o> {
    /// The gate.
    gate: &'g Gate<'o>,
    /// After the first poll: the opening waited for (the count of openings then) and the position
    /// of this future's waker among the waiters.
    ticket: Option<(u64, usize)>,
}

impl Future for Arrive<'_, '_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let gate = self.gate;
        match self.ticket {
            Some((opened, _)) if gate.opened.get() != opened => Poll::Ready(()),
            Some((_, position)) => {
                // Polled again before the opening: keep the newest waker.
                let mut waiting = gate.waiting.borrow_mut();
                let slot = &mut waiting[position];
                if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *slot = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            None => {
                let mut waiting = gate.waiting.borrow_mut();
                self.ticket = Some((gate.opened.get(), waiting.len()));
                waiting.push(Some(cx.waker().clone()));
                if waiting.len() == gate.order.len() {
                    gate.opened.set(gate.opened.get() + 1);
                    // Waking never polls a future in place (it only queues it), so holding the
                    // borrow here is fine.
                    for &i in gate.order {
                        waiting[i as usize]
                            .take()
                            .expect("every waiter is woken once")
                            .wake();
                    }
                    waiting.clear();
                }
                Poll::Pending
            }
        }
    }
}

/// The three implementations of one `wake` case: `n` items, `limit` in flight, each waiting at
/// `gate` (of width `limit`). The runs share the gate, which is empty between runs.
fn wake_variants<'a>(exec: Exec<'a>, n: u64, limit: usize, gate: &'a Gate<'a>) -> Vec<Variant<'a>> {
    /// One run of the stream that `make` builds.
    fn run<'a, S, M>(
        name: String,
        exec: Exec<'a>,
        n: u64,
        gate: &'a Gate<'a>,
        make: M,
    ) -> Variant<'a>
    where
        S: Stream<Item = u64>,
        M: Fn() -> S + 'a,
    {
        Variant {
            name,
            items: n,
            run: Box::new(move || {
                assert!(
                    gate.waiting.borrow().is_empty(),
                    "no waiter left from the last run"
                );
                let stopwatch = Stopwatch::start();
                let tally = exec.block_on(async { consume(make(), plain).await });
                let timing = stopwatch.stop();
                tally.check(n, false);
                timing
            }),
        }
    }
    let wait = move |x: u64| async move {
        gate.arrive().await;
        x
    };
    vec![
        run(format!("tasklane/{limit}"), exec, n, gate, move || {
            (0..black_box(n)).lane(limit).map_async(wait)
        }),
        run(
            format!("futures_buffered/{limit}"),
            exec,
            n,
            gate,
            move || {
                stream::iter(0..black_box(n))
                    .map(wait)
                    .buffered_unordered(limit)
            },
        ),
        run(format!("futures_util/{limit}"), exec, n, gate, move || {
            stream::iter(0..black_box(n))
                .map(wait)
                .buffer_unordered(limit)
        }),
    ]
}

/// Section `wake`: the cost per item when every future in flight is pending and then woken, at
/// each of the wake limits; the scaling ratio (last limit over first, per round) per
/// implementation. One case per executor, holding every implementation at every limit.
fn wake_section(settings: &Settings, execs: &[Exec<'_>], rng: &mut fastrand::Rng) -> String {
    // The items of a run at `limit`: a multiple of `limit`, so that every opening is full.
    let items = |limit: usize| (settings.n / limit as u64).max(1) * limit as u64;
    let orders: Vec<Vec<u32>> = settings
        .wake_limits
        .iter()
        .map(|&limit| {
            // The same order in every process: from the seed, not from the process's shuffles.
            let mut order: Vec<u32> = (0..limit as u32).collect();
            fastrand::Rng::with_seed(settings.seed ^ limit as u64).shuffle(&mut order);
            order
        })
        .collect();
    let gates: Vec<Gate<'_>> = orders.iter().map(|order| Gate::new(order)).collect();
    let mut cases: Vec<Vec<Variant<'_>>> = execs
        .iter()
        .map(|&exec| {
            settings
                .wake_limits
                .iter()
                .zip(&gates)
                .flat_map(|(&limit, gate)| wake_variants(exec, items(limit), limit, gate))
                .collect()
        })
        .collect();
    let labels: Vec<String> = execs.iter().map(|e| e.name().to_owned()).collect();
    let measured = interleave("wake", &labels, &mut cases, settings, rng);
    let samples = &measured.samples;

    let (first, last) = (
        settings.wake_limits[0],
        *settings.wake_limits.last().expect("one limit"),
    );
    let mut header: Vec<String> = vec!["executor".into(), "implementation".into()];
    for &limit in &settings.wake_limits {
        header.push(format!("L = {}", limit_name(limit)));
    }
    header.push(format!(
        "L = {} / L = {}",
        limit_name(last),
        limit_name(first)
    ));
    for &limit in &settings.wake_limits {
        header.push(format!(
            "tasklane / futures-buffered, L = {}",
            limit_name(limit)
        ));
    }
    let mut rows = Vec::new();
    for ((exec, variants), s) in execs.iter().zip(&cases).zip(samples) {
        for (name, title) in [
            ("tasklane", "tasklane"),
            ("futures_buffered", "futures-buffered"),
            ("futures_util", "futures-util"),
        ] {
            let at = |limit: usize| &s[index(variants, &format!("{name}/{limit}"))];
            let mut row = vec![exec.name().to_owned(), title.to_owned()];
            for &limit in &settings.wake_limits {
                row.push(ns(at(limit)));
            }
            row.push(ratio(&ratios(at(last), at(first))));
            for &limit in &settings.wake_limits {
                row.push(if name == "tasklane" {
                    ratio(&ratios(
                        at(limit),
                        &s[index(variants, &format!("futures_buffered/{limit}"))],
                    ))
                } else {
                    "—".to_owned()
                });
            }
            rows.push(row);
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### wake: every future in flight pending, then woken\n\n\
         `(0..n).lane(L).map_async(|x| async move {{ gate.arrive().await; x }})` and the same futures \
         through futures-buffered `buffered_unordered(L)` and futures-util `buffer_unordered(L)`: \
         each future stores its waker at a gate and returns `Pending`; the L-th arrival wakes all L \
         in a random (seeded, fixed) order. N = {} items per run (a multiple of L). ns per item \
         (median over rounds); the scaling column is the median of per-round ratios of the same \
         implementation's ns per item at the two limits (target for tasklane: at most 1.2), \
         interquartile range in brackets.\n",
        thousands(settings.n)
    );
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    out.push_str(&table(&header, &rows));
    out.push('\n');
    out.push_str(&measured.note());
    out.push('\n');
    out
}

// ---------------------------------------------------------------------------------------------
// Section `gather`
// ---------------------------------------------------------------------------------------------

/// What a `gather` case is.
#[derive(Clone, Copy, Debug)]
struct GatherCase {
    /// The executor's name.
    exec: &'static str,
    /// `ready` or `yield`.
    fut: &'static str,
    /// The limit (`usize::MAX`: unbounded).
    limit: usize,
}

/// The three implementations of one `gather` case over the futures `(0..n).map(f)`.
fn gather_variants<'a, F, Fut>(exec: Exec<'a>, n: u64, limit: usize, f: F) -> Vec<Variant<'a>>
where
    F: Fn(u64) -> Fut + Copy + 'a,
    Fut: Future<Output = u64> + 'a,
{
    let futs = move || (0..black_box(n)).map(f);
    let tasklane = gather_variant("tasklane", exec, n, move || tasklane::gather(futs(), limit));
    if limit == usize::MAX {
        vec![
            tasklane,
            gather_variant("futures_buffered", exec, n, move || {
                futures_buffered::join_all(futs())
            }),
            gather_variant("futures_util", exec, n, move || {
                futures::future::join_all(futs())
            }),
        ]
    } else {
        vec![
            tasklane,
            gather_variant("futures_buffered", exec, n, move || {
                stream::iter(futs())
                    .buffered_ordered(limit)
                    .collect::<Vec<u64>>()
            }),
            gather_variant("futures_util", exec, n, move || {
                stream::iter(futs()).buffered(limit).collect::<Vec<u64>>()
            }),
        ]
    }
}

/// Section `gather`: `tasklane::gather` against futures-buffered's and futures-util's ways to
/// collect the outputs of many futures in input order, bounded and unbounded.
fn gather_section(settings: &Settings, execs: &[Exec<'_>], rng: &mut fastrand::Rng) -> String {
    let n = settings.n;
    let mut meta = Vec::new();
    let mut cases = Vec::new();
    for &exec in execs {
        for fut in ["ready", "yield"] {
            for limit in [settings.gather_limit, usize::MAX] {
                meta.push(GatherCase {
                    exec: exec.name(),
                    fut,
                    limit,
                });
                cases.push(match fut {
                    "ready" => gather_variants(exec, n, limit, |x| async move { x }),
                    _ => gather_variants(exec, n, limit, |x| async move {
                        yield_now().await;
                        x
                    }),
                });
            }
        }
    }
    let labels: Vec<String> = meta.iter().map(|m| format!("{m:?}")).collect();
    let measured = interleave("gather", &labels, &mut cases, settings, rng);
    let samples = &measured.samples;
    let rows: Vec<Vec<String>> = meta
        .iter()
        .zip(&cases)
        .zip(samples)
        .map(|((m, variants), s)| {
            let [t, fb, fu] = ["tasklane", "futures_buffered", "futures_util"]
                .map(|name| &s[index(variants, name)]);
            vec![
                m.exec.to_owned(),
                m.fut.to_owned(),
                limit_name(m.limit),
                ns(t),
                ns(fb),
                ns(fu),
                ratio(&ratios(t, fb)),
                ratio(&ratios(t, fu)),
            ]
        })
        .collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### gather: `tasklane::gather(futs, limit)` against futures-buffered and futures-util\n\n\
         N = {} futures per run, `futs = (0..n).map(f)`, outputs in input order. Peers: unbounded \
         (`limit = usize::MAX`), futures-buffered `join_all(futs)` and futures-util \
         `future::join_all(futs)`; bounded, `stream::iter(futs).buffered_ordered(limit)` \
         (futures-buffered) and `.buffered(limit)` (futures-util), `.collect::<Vec<_>>()`. ns per \
         future (median over rounds); ratios: median of per-round ratios (target against \
         futures-buffered: at most 0.8), interquartile range in brackets.\n",
        thousands(n)
    );
    out.push_str(&table(
        &[
            "executor",
            "fut",
            "limit",
            "tasklane::gather",
            "futures-buffered",
            "futures-util",
            "tasklane / futures-buffered",
            "tasklane / futures-util",
        ],
        &rows,
    ));
    out.push('\n');
    out.push_str(&measured.note());
    out.push('\n');
    out
}

// ---------------------------------------------------------------------------------------------
// Section `timeout`
// ---------------------------------------------------------------------------------------------

/// The timer that a lane's timeouts sleep on under `exec` in this build (see the features in
/// benches/Cargo.toml).
fn timer_name(exec: Exec<'_>) -> &'static str {
    match exec {
        Exec::Tokio(_) if cfg!(feature = "tokio-timer") => "tokio",
        _ if cfg!(feature = "async-io") => "async-io",
        _ => "futures-timer",
    }
}

/// What a `timeout` case is.
#[derive(Clone, Copy, Debug)]
struct TimeoutCase {
    /// The executor's name.
    exec: &'static str,
    /// The timer's name ([`timer_name`]).
    timer: &'static str,
    /// `ready` or `yield`.
    fut: &'static str,
    /// The concurrency limit.
    limit: usize,
}

/// The two lanes of one `timeout` case: without and with `.timeout::<()>(1 s)`, over `0..n` mapped
/// through `f` (futures of `Result<u64, ()>`).
fn timeout_variants<'a, F, Fut>(exec: Exec<'a>, n: u64, limit: usize, f: F) -> Vec<Variant<'a>>
where
    F: Fn(u64) -> Fut + Copy + 'a,
    Fut: Future<Output = Result<u64, ()>> + 'a,
{
    let items = move || 0..black_box(n);
    vec![
        stream_variant(
            "plain",
            exec,
            n,
            false,
            move || items().lane(limit).map_async(f),
            ok,
        ),
        stream_variant(
            "timeout",
            exec,
            n,
            false,
            move || items().lane(limit).timeout::<()>(TIMEOUT).map_async(f),
            ok,
        ),
    ]
}

/// Section `timeout`: what an armed timeout that never fires costs per item, as the per-round
/// difference between the same lane with and without it.
fn timeout_section(settings: &Settings, execs: &[Exec<'_>], rng: &mut fastrand::Rng) -> String {
    let n = settings.n;
    let mut meta = Vec::new();
    let mut cases = Vec::new();
    for &exec in execs {
        for fut in ["ready", "yield"] {
            for &limit in &settings.limits {
                meta.push(TimeoutCase {
                    exec: exec.name(),
                    timer: timer_name(exec),
                    fut,
                    limit,
                });
                cases.push(match fut {
                    "ready" => timeout_variants(exec, n, limit, |x| async move { Ok(x) }),
                    _ => timeout_variants(exec, n, limit, |x| async move {
                        yield_now().await;
                        Ok(x)
                    }),
                });
            }
        }
    }
    let labels: Vec<String> = meta.iter().map(|m| format!("{m:?}")).collect();
    let measured = interleave("timeout", &labels, &mut cases, settings, rng);
    let samples = &measured.samples;
    let rows: Vec<Vec<String>> = meta
        .iter()
        .zip(&cases)
        .zip(samples)
        .map(|((m, variants), s)| {
            let [plain, timed] = ["plain", "timeout"].map(|name| &s[index(variants, name)]);
            vec![
                m.exec.to_owned(),
                m.timer.to_owned(),
                m.fut.to_owned(),
                limit_name(m.limit),
                ns(plain),
                ns(timed),
                difference(&differences(timed, plain)),
                ratio(&ratios(timed, plain)),
            ]
        })
        .collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### timeout: an armed `.timeout(1 s)` that never fires\n\n\
         `(0..n).lane(L).timeout::<()>(1 s).map_async(|x| async move {{ Ok(x) }})` (and the yielding \
         future) against the same lane without the timeout (`Ok::<u64, ()>(x)`), unordered; \
         N = {} items per run. ns per item (median over rounds); overhead: the median of per-round \
         differences (target: at most +10 ns), interquartile range in brackets.\n",
        thousands(n)
    );
    out.push_str(&table(
        &[
            "executor",
            "timer",
            "fut",
            "L",
            "plain lane",
            "with `.timeout(1 s)`",
            "overhead, ns per item",
            "with / without",
        ],
        &rows,
    ));
    out.push('\n');
    out.push_str(&measured.note());
    out.push('\n');
    out
}

// ---------------------------------------------------------------------------------------------
// The report's header
// ---------------------------------------------------------------------------------------------

/// The date and time now, UTC, as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// The number of CPUs this process may run on (`nproc`).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// The CPU model from `/proc/cpuinfo`.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

/// The load averages from `/proc/loadavg` (1, 5 and 15 minutes).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// The commit the bench was run at (`git log -1`), with a note if the tree has changes.
fn commit() -> Option<String> {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let head = git(&["log", "-1", "--format=%h \"%s\""])?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("{head}, with uncommitted changes")
    } else {
        head
    })
}

/// rustc's version and the peers' versions from the workspace's `Cargo.lock`.
fn versions() -> Option<String> {
    let rustc =
        std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).ok();
    let version = |name: &str| -> Option<String> {
        let lock = lock.as_deref()?;
        let at = lock.find(&format!("name = \"{name}\"\nversion = \""))?;
        let rest = &lock[at..];
        let start = rest.find("version = \"")? + "version = \"".len();
        let end = start + rest[start..].find('"')?;
        Some(format!("{name} {}", &rest[start..end]))
    };
    let mut parts: Vec<String> = rustc.into_iter().collect();
    parts.extend(
        [
            "futures-buffered",
            "futures-util",
            "futures-executor",
            "tokio",
        ]
        .into_iter()
        .filter_map(version),
    );
    (!parts.is_empty()).then(|| parts.join(", "))
}

// A plain `main` (`harness = false`): the rounds are the harness.
fn main() {
    let mut settings = Settings::from_env();
    let args: Vec<String> = std::env::args().skip(1).collect();
    settings.apply_args(&args);
    if settings.smoke {
        eprintln!("interleaved: no --bench argument, so a smoke run (1 round, n <= 1,000); the figures mean nothing");
    }
    if settings.sections.is_empty() {
        eprintln!("interleaved: no section matches the filter {args:?}");
        return;
    }
    let started = Instant::now();
    let load_before = load_average();
    let date = utc_now();
    if settings.child.is_none() && settings.processes > 1 {
        settings.replay = Some(run_children(&settings, &args));
    }

    let runtime = tokio_runtime(settings.tokio_drivers);
    let execs: Vec<Exec<'_>> = settings
        .executors
        .iter()
        .map(|kind| match kind {
            ExecKind::BlockOn => Exec::BlockOn,
            ExecKind::Tokio => Exec::Tokio(&runtime),
        })
        .collect();
    // Each process shuffles with a seed of its own.
    let process = settings.child.unwrap_or(0) as u64;
    let mut rng = fastrand::Rng::with_seed(settings.seed.wrapping_add(process));

    let mut sections = String::new();
    for &section in &settings.sections {
        let report = match section {
            "lane" => lane_section(&settings, &execs, &mut rng),
            "wake" => wake_section(&settings, &execs, &mut rng),
            "gather" => gather_section(&settings, &execs, &mut rng),
            "timeout" => timeout_section(&settings, &execs, &mut rng),
            other => unreachable!("no section {other}"),
        };
        sections.push_str(&report);
    }
    if settings.child.is_some() {
        return; // The parent reports.
    }

    let mut command: Vec<String> = settings
        .overrides
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    command.push("cargo bench -p tasklane-benches --bench interleaved".to_owned());
    let features: Vec<&str> = [
        ("tokio-timer", cfg!(feature = "tokio-timer")),
        ("async-io", cfg!(feature = "async-io")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect();
    if !features.is_empty() {
        command.push(format!("--features {}", features.join(",")));
    }
    let filters: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if !filters.is_empty() {
        command.push(format!("-- {}", filters.join(" ")));
    }
    let cores = cores();
    let executors: Vec<&str> = execs
        .iter()
        .map(|&e| match e {
            Exec::BlockOn => "`futures::executor::block_on`",
            Exec::Tokio(_) if settings.tokio_drivers => {
                "tokio current-thread `Runtime::block_on` (`enable_all`, as `#[tokio::main(flavor = \"current_thread\")]`)"
            }
            Exec::Tokio(_) => "tokio current-thread `Runtime::block_on` (no drivers)",
        })
        .collect();
    if settings.smoke {
        println!("## Smoke run, not a measurement: no --bench argument ({date})\n");
    } else {
        println!("## Interleaved wall time ({date})\n");
    }
    println!("- Command: `{}`", command.join(" "));
    if let Some(commit) = commit() {
        println!("- Commit: {commit}");
    }
    println!(
        "- Machine: {cores} cores (`nproc`), {}; load average {load_before} at the start, {} at the end; took {:.0} s",
        cpu_model(),
        load_average(),
        started.elapsed().as_secs_f64()
    );
    if let Some(versions) = versions() {
        println!("- {versions}");
    }
    let shares = rounds_per_process(settings.rounds, settings.processes);
    let rounds = if settings.processes == 1 {
        format!(
            "{} measured, after one warm-up round (discarded); seed {}",
            settings.rounds, settings.seed
        )
    } else {
        format!(
            "{} measured, in {} processes one after the other ({}), each after a warm-up round of \
             its own (discarded); seed {} plus the process's index",
            settings.rounds,
            settings.processes,
            shares
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(" + "),
            settings.seed
        )
    };
    println!("- Rounds: {rounds}; executors: {}", executors.join(", "));
    println!(
        "- Release profile; each run timed as a whole (build, drain, drop): {}\n",
        match settings.clock {
            Clock::Wall => "wall time (`Instant`)",
            Clock::Cpu => "**the thread's CPU time** (`CLOCK_THREAD_CPUTIME_ID`), not wall time",
        }
    );
    print!("{sections}");
}

/// The tokio current-thread runtime of the `tokio` executor: with every driver, as
/// `#[tokio::main(flavor = "current_thread")]` builds it, or with none.
fn tokio_runtime(drivers: bool) -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    if drivers {
        builder.enable_all();
    }
    builder.build().expect("a tokio current-thread runtime")
}
