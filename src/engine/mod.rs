//! The lane engine: the no-spawn state machine shared by every terminal.
//!
//! # Design
//!
//! ```text
//!          phase 1: admit, pull, start          phase 2: drive woken      phase 3: hand out
//! input ─────────────────────────────► slots ─────────────────────────► next output ──► consumer
//!          (only while a slot is free   (polled only    │ failed             ▲
//!           and a start is allowed)      when woken)    ▼                    │ refill its slot
//!                                               back-off, permit ─► restart  │ first
//! ```
//!
//! One `poll_next` call is one loop of four phases ([`core`]): **1.** admit and start new items in
//! the free slots, polling each fresh attempt at once (one that finishes at once and is next is held
//! without ever taking its slot), **2.** drive the slots whose wakers fired (only those; the first
//! item to finish that is next is held out of its slot, if phase 1 holds none), **3.** hand out the
//! held output or the next one waiting, refilling its slot from the input first, **4.** end, or
//! sleep once nothing is left to do. Filling comes first, so woken work that spends the call's
//! budget never keeps the lane below its limit. So a call that returns an output leaves every slot busy (the input
//! is read ahead while the consumer works), and an output that can go at once never waits in its
//! slot. Where each capability lives:
//!
//! | capability | file | what it is |
//! |---|---|---|
//! | an item's life in its slot | [`lifecycle`] | `State`: `Free`, `Running`, `BackingOff`, `AwaitingPermit`, `Done`, and every transition |
//! | the slots | [`arena`] | pinned chunks that never move, the per-slot meta ([`meta`]) |
//! | the wakers | [`waker`] | one signal per slot, a lock-free stack of woken slots, the consumer's sleep (model-checked with loom) |
//! | order | [`order`] | `Unordered` (a done queue) or `InOrder` (a ring, and the reorder window): a type |
//! | admission | [`admission`] | `Unlimited` (zero-sized) or a `Gate`: the lane's own rate limiter, its permit queue, and the shared limiters and keyed budgets (`crate::limit`), asked through the `Admit` trait |
//! | items waiting for shared limiters | [`parked`] | pulled items not granted yet (with their cost, keys and input position), and the read-ahead past full keys |
//! | deadlines | [`deadlines`], [`timers`] | timeouts (lazily stamped), back-offs, the one lane timer |
//! | handing out | [`emit`] | phase 3: keeping a finished output, handing one out, refilling its slot |
//! | retries, timeouts, rate waits | [`waits`] | the slow paths of the loop |
//! | progress | `crate::progress` | counters and snapshots, only when `Reports::REPORTS` |
//! | stop pulling | [`Mode::stops`] (`crate::mode::Until`) | an output that ends the input (`try_gather`, `first`, `first_ok`), only when `Mode::STOPS` |
//! | what an item is | [`Mode`] (`crate::mode`) | how attempts are made and settled: plain, timed, retrying |
//!
//! The components are Poll-free (they are asked with a clock reading and keep indexes over the
//! slots' states), and each has its own unit tests. The engine is generic over order and
//! admission ([`Core`]); [`Engine`] picks one of the four combinations when the lane is built, so a
//! lane without a rate limit carries the zero-sized `Unlimited` and runs none of its code, and an
//! unordered lane has no ring. A plain mode (`Mode::TIMED` is `false`) compiles the timeout and
//! back-off code away in the same way.
//!
//! What an item is and what its attempts return is the business of a [`Mode`]: a plain lane runs one
//! future per item and yields its output unchanged; a timed or retrying lane wraps the outcome in a
//! `Result` and may start several attempts.

mod admission;
mod arena;
mod core;
mod deadlines;
mod emit;
mod lifecycle;
mod meta;
mod order;
mod parked;
mod shared;
mod timers;
mod waits;
mod waker;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use self::admission::{Admission, Gate, Unlimited};
use self::core::Core;
pub(crate) use self::deadlines::Timers;
pub(crate) use self::meta::SlotMeta;
pub(crate) use self::meta::{Retried, Single};
use self::order::{InOrder, Order, Unordered};
use futures_core::Stream;

use crate::limit::{Admit, Limiters};
use crate::progress::Progress;
use crate::rate::Rate;

/// Polls of user futures (fresh or woken) that one `poll_next` call may make before it yields to the
/// executor: a lane whose futures keep waking themselves must not starve the other tasks of its
/// thread (futures-util's `FuturesUnordered` and futures-buffered bound this the same way).
const BUDGET: u32 = 64;

/// How an attempt ended.
#[allow(unreachable_pub)] // reason: part of the sealed `Mode` trait, unnameable outside the crate
#[derive(Debug)]
pub enum Outcome<T> {
    /// The attempt's future finished with this output.
    Finished(T),
    /// The attempt ran out of time and was dropped.
    TimedOut,
    /// A limiter refused the item's next attempt, which was never made (only on lanes whose items
    /// can fail: `Mode::TIMED`).
    Refused(Refusal),
}

/// Why a limiter refused an attempt.
#[allow(unreachable_pub)] // reason: part of the sealed `Mode` trait, unnameable outside the crate
#[derive(Debug)]
pub enum Refusal {
    /// Its cost is more than the limiter can ever grant.
    Rejected,
    /// The limiter failed to answer and does not fail open.
    Failed(crate::limit::LimitError),
}

/// What becomes of an item after an attempt.
#[allow(unreachable_pub)] // reason: part of the sealed `Mode` trait, unnameable outside the crate
#[derive(Debug)]
pub enum Settle<O> {
    /// The item is finished with this output.
    Done(O),
    /// Start another attempt after a back-off (or after the error's own hint, if it gave one).
    Retry { hint: Option<Duration> },
}

/// What a lane does with an item. See the module docs.
///
/// Sealed: it is `pub` only so that public bounds can name it; it lives in a private module, so no
/// one outside the crate can name, implement or call it.
#[allow(unreachable_pub)] // reason: sealed, see above
pub trait Mode: Reports {
    /// An input item.
    type Item;
    /// What the slot keeps between attempts (the item, for retries).
    type Keep;
    /// One attempt.
    type Fut: Future;
    /// The lane's output per item.
    type Output;
    /// What each slot keeps for its item besides the future ([`Single`]: its input position).
    type Meta: SlotMeta<Self::Keep>;
    /// Whether attempts may have a timeout or be retried. When `false` (a plain lane), the engine
    /// runs none of its timeout and back-off code, whatever the lane's configuration.
    const TIMED: bool;
    /// Whether an attempt's output may stop the input ([`Mode::stops`]). When `false`, the engine
    /// never asks.
    const STOPS: bool;

    /// Whether items have costs of their own ([`Mode::cost`]). When `false`, every item costs 1
    /// and the engine never asks.
    const COSTED: bool;

    /// The units of every shared limiter that `item`'s attempts take (`Lane::cost`).
    fn cost(&mut self, item: &Self::Item) -> u32;

    /// Whether items pick keyed budgets ([`Mode::keys`]). When `false`, the engine never asks.
    const KEYED: bool;

    /// Pushes the budgets of `item`'s keys on `out` (`Lane::limiter_by`).
    fn keys(&mut self, item: &Self::Item, out: &mut Vec<Arc<dyn Admit>>);

    /// The stop-pulling hook: whether this attempt output stops the input. Consulted as each
    /// attempt finishes, before the engine refills a slot or starts anything more; from then on
    /// nothing more is pulled, and the lane ends once the items in progress are yielded.
    fn stops(&self, output: &<Self::Fut as Future>::Output) -> bool;

    /// The first attempt for an item.
    fn start(&mut self, item: Self::Item) -> (Option<Self::Keep>, Self::Fut);
    /// Another attempt for an item whose earlier attempt failed.
    fn restart(&mut self, keep: &Self::Keep) -> Self::Fut;
    /// Decides after attempt number `attempts` (1-based).
    /// `index` is the item's position in the input (0 for the first item pulled).
    fn settle(
        &mut self,
        outcome: Outcome<<Self::Fut as Future>::Output>,
        attempts: u32,
        index: usize,
    ) -> Settle<Self::Output>;
    /// The back-off in nanoseconds after `attempts` failed attempts, given the item's previous delay
    /// and the error's own hint.
    fn backoff(&mut self, attempts: u32, prev: Option<u64>, hint: Option<Duration>) -> u64;

    /// Whether an output counts as a success in progress snapshots.
    fn succeeded(output: &Self::Output) -> bool;
}

/// What a lane does with its progress (every kind of lane the same way: through its reporter).
#[allow(unreachable_pub)] // reason: part of the sealed `Mode` trait, unnameable outside the crate
pub trait Reports {
    /// Whether the lane reports progress (has an `on_progress` callback). When `false`, the engine
    /// keeps no counters and never calls [`Reports::report`].
    const REPORTS: bool;
    /// Hands a progress snapshot to the lane's callback.
    fn report(&mut self, progress: &Progress);
}

/// A lane's engine: the [`Core`] for its order and admission, chosen when the lane is built.
pub(crate) enum Engine<M: Mode> {
    /// Completion order, no rate limit: the plain path.
    Unordered(Core<M, Unordered, Unlimited>),
    /// Input order, no rate limit.
    Ordered(Core<M, InOrder<M::Output>, Unlimited>),
    /// Completion order, limited (its own rate, shared limiters, or both).
    RatedUnordered(Core<M, Unordered, Gate>),
    /// Input order, limited (its own rate, shared limiters, or both).
    RatedOrdered(Core<M, InOrder<M::Output>, Gate>),
}

/// Runs `$body` with `$core` bound to the engine's core, whichever it is.
macro_rules! each {
    ($engine:expr, $core:ident => $body:expr) => {
        match $engine {
            Engine::Unordered($core) => $body,
            Engine::Ordered($core) => $body,
            Engine::RatedUnordered($core) => $body,
            Engine::RatedOrdered($core) => $body,
        }
    };
}

impl<M: Mode> Engine<M> {
    pub(crate) fn new(
        mode: M,
        limit: usize,
        ordered: bool,
        window: usize,
        timers: Timers,
        rate: Option<Rate>,
        shared: Limiters,
    ) -> Self {
        if rate.is_none() && shared.is_empty() && !M::KEYED {
            return if ordered {
                Engine::Ordered(Core::new(mode, limit, window, timers, Unlimited))
            } else {
                Engine::Unordered(Core::new(mode, limit, 0, timers, Unlimited))
            };
        }
        let gate = Gate::new(rate, shared, M::KEYED);
        if ordered {
            Engine::RatedOrdered(Core::new(mode, limit, window, timers, gate))
        } else {
            Engine::RatedUnordered(Core::new(mode, limit, 0, timers, gate))
        }
    }

    /// [`Core::poll_lane`] for a limited lane, pulling from `stream`. Such a lane does not read
    /// its input before a start is allowed, so it cannot see the end of the input that way: it
    /// asks the input whether it has anything left instead (its `size_hint`), so that it ends with
    /// its last output, not a period later.
    ///
    /// Inlined into the stream's `poll_next`, beside the plain kinds' poll: out of line, the call
    /// and its second frame cost a limited lane 42 to 62 instructions per item (callgrind, L = 16),
    /// against 0 to 2 that inlining costs a plain lane.
    #[inline(always)]
    pub(crate) fn poll_limited<const INDEXED: bool, St>(
        &mut self,
        stream: Pin<&mut St>,
        cx: &mut Context<'_>,
        emit: bool,
    ) -> Poll<Option<(usize, M::Output)>>
    where
        St: Stream<Item = M::Item>,
    {
        match self {
            Engine::RatedUnordered(core) => core.poll_limited::<INDEXED, St>(stream, cx, emit),
            Engine::RatedOrdered(core) => core.poll_limited::<INDEXED, St>(stream, cx, emit),
            Engine::Unordered(_) | Engine::Ordered(_) => {
                unreachable!("tasklane: a plain lane is polled by its core")
            }
        }
    }

    /// Items pulled from the input and not yet yielded.
    pub(crate) fn occupied(&self) -> usize {
        each!(self, core => core.occupied())
    }

    /// Whether `poll_next` has returned `None`.
    pub(crate) fn is_terminated(&self) -> bool {
        each!(self, core => core.terminated)
    }

    /// Whether the lane has a rate limit.
    #[inline]
    pub(crate) fn is_rate_limited(&self) -> bool {
        matches!(self, Engine::RatedUnordered(_) | Engine::RatedOrdered(_))
    }

    /// Starts the progress clock and takes the total from the input's `size_hint`, at the first poll
    /// of a reporting lane (later calls do nothing).
    #[cold]
    pub(crate) fn begin_progress(&mut self, input: (usize, Option<usize>)) {
        each!(self, core => core.begin_progress(input))
    }

    /// Whether the progress clock still has to be started (see [`Engine::begin_progress`]).
    #[inline]
    pub(crate) fn progress_unstarted(&self) -> bool {
        M::REPORTS && each!(self, core => core.counters.started_at.is_none())
    }

    /// `size_hint` of the output, given the input's: every item still to be pulled and every occupied
    /// slot yields exactly one output.
    pub(crate) fn size_hint(&self, input: (usize, Option<usize>)) -> (usize, Option<usize>) {
        each!(self, core => core.size_hint(input))
    }
}

impl<M: Mode, O: Order<M::Output>> Core<M, O, Gate> {
    /// See [`Engine::poll_limited`].
    #[inline(always)]
    fn poll_limited<const INDEXED: bool, St>(
        &mut self,
        mut stream: Pin<&mut St>,
        cx: &mut Context<'_>,
        emit: bool,
    ) -> Poll<Option<(usize, M::Output)>>
    where
        St: Stream<Item = M::Item>,
    {
        let polled = self.poll_lane::<INDEXED, _>(cx, |cx| stream.as_mut().poll_next(cx), emit);
        if polled.is_pending() && self.waits_for_permit_to_pull() && stream.size_hint().1 == Some(0)
        {
            self.input_done = true;
            return self.poll_lane::<INDEXED, _>(cx, |cx| stream.as_mut().poll_next(cx), emit);
        }
        polled
    }
}

impl<M: Mode, O: Order<M::Output>, A: Admission> Core<M, O, A> {
    fn is_ordered(&self) -> bool {
        O::ORDERED
    }

    fn occupied(&self) -> usize {
        self.occupied + self.order.held() + self.parked_len()
    }

    fn waits_for_permit_to_pull(&self) -> bool {
        A::LIMITED
            && self.admission.gate_ref().due.is_some()
            && !self.input_done
            && self.occupied < self.limit
    }

    fn begin_progress(&mut self, input: (usize, Option<usize>)) {
        if self.counters.started_at.is_some() {
            return;
        }
        self.counters.started_at = Some(self.timers.clock.now());
        self.counters.total = match input {
            (lo, Some(hi)) if lo == hi => Some(lo as u64 + self.occupied() as u64),
            _ => None,
        };
    }

    fn size_hint(&self, input: (usize, Option<usize>)) -> (usize, Option<usize>) {
        if self.terminated {
            return (0, Some(0));
        }
        let (lo, hi) = if self.input_done { (0, Some(0)) } else { input };
        (
            lo.saturating_add(self.occupied()),
            hi.and_then(|hi| hi.checked_add(self.occupied())),
        )
    }
}

/// The panic of a lane polled after user code panicked out of an earlier poll (see
/// [`Core::poll_lane`]).
#[cold]
#[inline(never)]
#[track_caller]
pub(crate) fn poisoned() -> ! {
    panic!(
        "tasklane: lane polled after a panic in user code escaped an earlier poll; \
         it is poisoned and can only be dropped"
    )
}

impl<M: Mode> std::fmt::Debug for Engine<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        each!(self, core => f
            .debug_struct("Engine")
            .field("limit", &core.limit)
            .field("ordered", &core.is_ordered())
            .field("rate_limited", &self.is_rate_limited())
            .field("occupied", &core.occupied())
            .field("slots", &core.arena.len())
            .field("input_done", &core.input_done)
            .field("terminated", &core.terminated)
            .finish_non_exhaustive())
    }
}
