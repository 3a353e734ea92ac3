//! The state a process keeps between calls, and the [`Admit`] implementation: what is handed
//! out locally, what goes to the server, and what comes back.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::MutexGuard;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tasklane::limit::{Admit, LimitError, Verdict, Waiter};

use crate::call::{Call, Pending, Reply};
use crate::limiter::{BackendKind, Inner};
use crate::RedisLimiter;

/// What a process keeps between calls.
#[derive(Default)]
pub(crate) struct State {
    /// The connection, made on the first call from a [`redis::Client`] (inside the runtime, which
    /// it needs). `None`: not made yet.
    conn: Option<ConnectionManager>,
    /// The call each waiter waits for, by waiter id: at most one per waiter.
    calls: HashMap<u64, InFlight>,
    /// The units each waiter reserved, by waiter id (a waiter with a reservation has no call).
    reserved: HashMap<u64, Reservation>,
    /// Units of the rate granted by the server and not handed out yet (a lease of several).
    pool: u32,
    /// Lease ids of the concurrency granted and not handed out yet.
    spare: Vec<String>,
    /// Lease ids of running attempts, with when each was taken or last renewed.
    held: VecDeque<(String, Instant)>,
    /// Lease ids to give back with the next call (released, or taken by a call that failed).
    to_free: Vec<String>,
    /// The last lease id's number.
    seq: u64,
}

/// A call in flight.
pub(crate) struct InFlight {
    reply: Pending,
    /// The lease ids it takes (given back if the call fails: it may have taken them).
    new: Vec<String>,
    /// The lease ids it gives back (given back again if the call fails: a free is idempotent).
    free: Vec<String>,
}

/// Units of the rate reserved on the server for one waiter, from a time on.
pub(crate) struct Reservation {
    units: u32,
    at: Instant,
    /// The lease ids the reserving call took.
    ids: Vec<String>,
}

impl Inner {
    /// See [`RedisLimiter::flush`].
    pub(crate) async fn flush(&self) -> Result<(), LimitError> {
        let inner = self;
        let (pending, free) = {
            let mut st = inner.state();
            if st.to_free.is_empty() && st.pool == 0 {
                return Ok(());
            }
            let Some(conn) = st.conn.clone().or_else(|| match &inner.backend {
                BackendKind::Manager(manager) => Some(manager.clone()),
                BackendKind::Client(_) => None,
            }) else {
                return Ok(());
            };
            let call = Call {
                interval_us: inner.settings.per_second.map_or(0.0, |r| 1e6 / r),
                burst: inner.settings.burst,
                refund: std::mem::take(&mut st.pool),
                free: std::mem::take(&mut st.to_free),
                ..Call::default()
            };
            inner.round_trips.fetch_add(1, Ordering::Relaxed);
            let pending = call.send(
                &inner.script,
                &inner.keys,
                conn,
                inner.settings.call_timeout,
            );
            (pending, call.free)
        };
        match pending.await {
            Ok(_) => Ok(()),
            Err(err) => {
                inner.state().to_free.extend(free);
                Err(err)
            }
        }
    }

    /// Units of the rate this process holds ahead of use.
    pub(crate) fn leased(&self) -> u32 {
        self.state().pool
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // A panic while the lock is held leaves counts that are still whole numbers: go on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands out `cost` units from what this process holds, if it holds enough.
    fn take(&self, st: &mut State, cost: u32) -> bool {
        let s = &self.settings;
        let rate_ok = s.per_second.is_none() || st.pool >= cost;
        let conc_ok = s.concurrency.is_none() || st.spare.len() >= cost as usize;
        if !(rate_ok && conc_ok) {
            return false;
        }
        if s.per_second.is_some() {
            st.pool -= cost;
        }
        if s.concurrency.is_some() {
            let now = Instant::now();
            let at = st.spare.len() - cost as usize;
            let ids: Vec<String> = st.spare.drain(at..).collect();
            st.held.extend(ids.into_iter().map(|id| (id, now)));
        }
        true
    }

    /// Makes the call that asks for what `cost` units lack, with the frees and renewals due.
    fn send(&self, st: &mut State, cost: u32) -> Result<InFlight, LimitError> {
        let s = &self.settings;
        let conn = match (&mut st.conn, &self.backend) {
            (Some(conn), _) => conn.clone(),
            (None, BackendKind::Manager(manager)) => manager.clone(),
            (slot @ None, BackendKind::Client(client)) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(s.call_timeout))
                    .set_response_timeout(None)
                    .set_min_delay(Duration::from_millis(10))
                    .set_max_delay(Duration::from_millis(100))
                    .set_number_of_retries(5);
                let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)
                    .map_err(|e| LimitError::new(format!("redis: {e}")))?;
                slot.insert(manager).clone()
            }
        };
        let want = match s.per_second {
            Some(_) if st.pool < cost => cost,
            _ => 0,
        };
        let mut call = Call {
            interval_us: s.per_second.map_or(0.0, |r| 1e6 / r),
            burst: s.burst,
            want,
            most: want.max(s.lease.min(s.burst)),
            limit: s.concurrency.unwrap_or(0),
            ttl_ms: s.lease_ttl.as_millis().try_into().unwrap_or(u64::MAX),
            poll_ms: s.poll.as_millis().try_into().unwrap_or(u64::MAX),
            ahead_us: s.ahead.as_micros().try_into().unwrap_or(u64::MAX),
            free: std::mem::take(&mut st.to_free),
            ..Call::default()
        };
        if s.concurrency.is_some() {
            let lacking = (cost as usize).saturating_sub(st.spare.len());
            for _ in 0..lacking {
                st.seq += 1;
                call.new.push(format!("{}:{}", self.instance, st.seq));
            }
            // Renew the leases of running attempts taken or renewed a third of their life ago.
            let now = Instant::now();
            let due = s.lease_ttl / 3;
            for (id, at) in st.held.iter_mut() {
                if call.renew.len() == 64 {
                    break;
                }
                if now.duration_since(*at) >= due {
                    *at = now;
                    call.renew.push(id.clone());
                }
            }
        }
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let reply = call.send(&self.script, &self.keys, conn, s.call_timeout);
        Ok(InFlight {
            reply,
            new: call.new,
            free: call.free,
        })
    }

    /// What the reply of `call` means: `None` when it granted units (then hand them out, or ask
    /// again).
    fn settle(
        &self,
        waiter: u64,
        call: InFlight,
        reply: Result<Reply, LimitError>,
    ) -> Option<Result<Verdict, LimitError>> {
        let mut st = self.state();
        match reply {
            Ok(Reply::Granted(units)) => {
                if self.settings.per_second.is_some() {
                    st.pool = st.pool.saturating_add(units);
                }
                st.spare.extend(call.new);
                None
            }
            Ok(Reply::Reserved(units, after)) => {
                let at = Instant::now() + after;
                let ids = call.new;
                st.reserved.insert(waiter, Reservation { units, at, ids });
                Some(Ok(Verdict::NotBefore(after)))
            }
            // The script took none of the new leases, and applied the frees.
            Ok(Reply::Denied(after)) => Some(Ok(Verdict::NotBefore(after))),
            Err(err) => {
                // It may have taken the new leases, and may not have applied the frees.
                st.to_free.extend(call.new);
                st.to_free.extend(call.free);
                // An attempt that starts anyway (failing open, or on a lane whose items cannot
                // fail) was not admitted: the lane gives nothing back for it (the `Admit`
                // contract), so nothing is counted for it here.
                Some(Err(err))
            }
        }
    }

    /// Gives back `cost` units of an attempt that ended or never started: leases to free with the
    /// next call, and (`cancelled`) the rate's units to this process's pool.
    fn give_back(&self, cost: u32, cancelled: bool) {
        let s = &self.settings;
        if s.per_second.is_none() && s.concurrency.is_none() {
            return;
        }
        let mut st = self.state();
        if cancelled && s.per_second.is_some() {
            st.pool = st.pool.saturating_add(cost);
        }
        for _ in 0..cost {
            match st.held.pop_back() {
                Some((id, _)) => st.to_free.push(id),
                None => break,
            }
        }
    }
}

impl Admit for RedisLimiter {
    fn poll_admit(
        &self,
        waiter: &Waiter,
        cost: u32,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Verdict, LimitError>> {
        let inner = &*self.inner;
        let s = &inner.settings;
        if s.per_second.is_none() && s.concurrency.is_none() {
            return Poll::Ready(Ok(Verdict::Admitted));
        }
        let id = waiter.id();
        let mut call = {
            let mut st = inner.state();
            // Units in hand (a lease, a cancelled attempt's) go first.
            if inner.take(&mut st, cost) {
                return Poll::Ready(Ok(Verdict::Admitted));
            }
            // A reservation whose time has come: its units are this waiter's.
            if let Some(reservation) = st.reserved.get(&id) {
                let now = Instant::now();
                if reservation.at > now {
                    return Poll::Ready(Ok(Verdict::NotBefore(reservation.at - now)));
                }
                let reservation = st.reserved.remove(&id).expect("just seen");
                if s.per_second.is_some() {
                    st.pool = st.pool.saturating_add(reservation.units);
                }
                st.spare.extend(reservation.ids);
            }
            // The waiter's call in flight, if any (polled without the lock: other lanes go on).
            st.calls.remove(&id)
        };
        // Bounded: a granted reply is handed out at once, or a new call is sent and polled once.
        for _ in 0..3 {
            if let Some(mut in_flight) = call.take() {
                match in_flight.reply.as_mut().poll(cx) {
                    Poll::Pending => {
                        inner.state().calls.insert(id, in_flight);
                        return Poll::Pending;
                    }
                    Poll::Ready(reply) => {
                        if let Some(verdict) = inner.settle(id, in_flight, reply) {
                            return Poll::Ready(verdict);
                        }
                    }
                }
            }
            let mut st = inner.state();
            if inner.take(&mut st, cost) {
                return Poll::Ready(Ok(Verdict::Admitted));
            }
            match inner.send(&mut st, cost) {
                Ok(in_flight) => call = Some(in_flight),
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
        // Granted twice and handed out to others both times: ask again soon.
        if let Some(in_flight) = call {
            inner.state().calls.insert(id, in_flight);
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn release(&self, cost: u32) {
        self.inner.give_back(cost, false);
    }

    fn cancel(&self, _: &Waiter, cost: u32) {
        self.inner.give_back(cost, true);
    }

    fn leave(&self, waiter: &Waiter) {
        let mut st = self.inner.state();
        if let Some(call) = st.calls.remove(&waiter.id()) {
            // Dropped unanswered: it may have taken its leases.
            st.to_free.extend(call.new);
            st.to_free.extend(call.free);
        }
        if let Some(reservation) = st.reserved.remove(&waiter.id()) {
            // Its units are lost: handing them to another waiter now would start them early.
            st.to_free.extend(reservation.ids);
        }
    }

    fn can_ever_admit(&self, cost: u32) -> bool {
        let s = &self.inner.settings;
        (s.per_second.is_none() || cost <= s.burst) && s.concurrency.is_none_or(|n| cost <= n)
    }

    fn fails_open(&self) -> bool {
        self.inner.settings.fails_open
    }
}
