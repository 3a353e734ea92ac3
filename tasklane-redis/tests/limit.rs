//! `RedisLimiter` against a real redis-server on loopback: what the script grants and denies, the
//! lease of several units, the concurrency's leases, and lanes on tokio, smol and `block_on`.

use std::future::poll_fn;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tasklane::limit::{Admit, Verdict, Waiter};
use tasklane::prelude::*;
use tasklane_redis::RedisLimiter;

mod common;
use common::{fresh_key, shared_url, watchdog, Server};

fn limiter(key: &str) -> RedisLimiter {
    RedisLimiter::new(redis::Client::open(shared_url()).unwrap(), key)
}

/// One answer of `limiter` for `cost` units, waiting for the reply.
async fn ask(limiter: &RedisLimiter, waiter: &Waiter, cost: u32) -> Verdict {
    poll_fn(|cx| limiter.poll_admit(waiter, cost, cx))
        .await
        .expect("the server answers")
}

fn on_tokio<R>(f: impl std::future::Future<Output = R>) -> R {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn burst_then_the_rate_says_how_long_to_wait() {
    watchdog(Duration::from_secs(30), || {
        on_tokio(async {
            let api = limiter(&fresh_key("burst")).rate(10.0).burst(3);
            let me = Waiter::new();
            for _ in 0..3 {
                assert_eq!(ask(&api, &me, 1).await, Verdict::Admitted);
            }
            let Verdict::NotBefore(wait) = ask(&api, &me, 1).await else {
                panic!("a fourth start within the burst's time");
            };
            // One interval (100 ms) after the first start, less the time the three took.
            assert!(
                wait > Duration::from_millis(50) && wait <= Duration::from_millis(100),
                "{wait:?}"
            );
            assert_eq!(
                api.round_trips(),
                4,
                "a round trip per start without a lease"
            );
            futures_timer::Delay::new(wait).await;
            assert_eq!(ask(&api, &me, 1).await, Verdict::Admitted);
        })
    });
}

#[test]
fn a_lease_takes_several_units_per_round_trip() {
    watchdog(Duration::from_secs(30), || {
        on_tokio(async {
            let api = limiter(&fresh_key("lease")).rate(100.0).burst(8).lease(4);
            let me = Waiter::new();
            for _ in 0..8 {
                assert_eq!(ask(&api, &me, 1).await, Verdict::Admitted);
            }
            assert_eq!(api.round_trips(), 2, "4 units per round trip");
            assert_eq!(api.leased(), 0);
            assert!(matches!(ask(&api, &me, 1).await, Verdict::NotBefore(_)));
            // A cancelled attempt's units come back to the process: the next start needs no call.
            api.cancel(&me, 1);
            let trips = api.round_trips();
            assert_eq!(ask(&api, &me, 1).await, Verdict::Admitted);
            assert_eq!(api.round_trips(), trips);
        })
    });
}

#[test]
fn a_cost_is_that_many_units_and_more_than_the_burst_is_never() {
    watchdog(Duration::from_secs(30), || {
        on_tokio(async {
            let api = limiter(&fresh_key("cost")).rate(10.0).burst(4);
            let me = Waiter::new();
            assert_eq!(ask(&api, &me, 3).await, Verdict::Admitted);
            assert!(matches!(ask(&api, &me, 3).await, Verdict::NotBefore(_)));
            assert_eq!(ask(&api, &me, 1).await, Verdict::Admitted);
            assert!(api.can_ever_admit(4));
            assert!(!api.can_ever_admit(5));
        })
    });
}

#[test]
fn two_processes_share_one_concurrency_and_a_crashed_ones_leases_expire() {
    watchdog(Duration::from_secs(30), || {
        on_tokio(async {
            let key = fresh_key("concurrency");
            let ttl = Duration::from_millis(300);
            let make = || limiter(&key).concurrency(2).lease_ttl(ttl);
            let (a, b) = (make(), make());
            let (wa, wb) = (Waiter::new(), Waiter::new());
            assert_eq!(ask(&a, &wa, 1).await, Verdict::Admitted);
            assert_eq!(ask(&b, &wb, 1).await, Verdict::Admitted);
            assert!(matches!(ask(&b, &wb, 1).await, Verdict::NotBefore(_)));
            // `a` ends its attempt: the lease goes back with its next call.
            a.release(1);
            assert_eq!(ask(&a, &wa, 1).await, Verdict::Admitted);
            assert!(matches!(ask(&b, &wb, 1).await, Verdict::NotBefore(_)));
            // `a` crashes holding one: it comes back when its lease expires.
            drop(a);
            let crashed = Instant::now();
            loop {
                match ask(&b, &wb, 1).await {
                    Verdict::Admitted => break,
                    Verdict::NotBefore(wait) => futures_timer::Delay::new(wait).await,
                }
                assert!(
                    crashed.elapsed() < Duration::from_secs(5),
                    "never came back"
                );
            }
            let back = crashed.elapsed();
            assert!(back >= ttl - Duration::from_millis(50), "{back:?}");
        })
    });
}

/// 30 items at 200 per second with a burst of 10: the last starts about 100 ms after the first.
async fn thirty_items(api: &RedisLimiter) -> Duration {
    let started = Instant::now();
    let done = (0..30u32)
        .lane(8)
        .limiter(api)
        .map_async(|x| async move { x })
        .count()
        .await;
    assert_eq!(done, 30);
    started.elapsed()
}

fn check_thirty(took: Duration) {
    assert!(
        took >= Duration::from_millis(90) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[test]
fn a_lane_on_tokio() {
    watchdog(Duration::from_secs(30), || {
        let took = on_tokio(async {
            thirty_items(&limiter(&fresh_key("tokio")).rate(200.0).burst(10)).await
        });
        check_thirty(took);
    });
}

#[test]
fn a_lane_on_tokio_current_thread() {
    watchdog(Duration::from_secs(30), || {
        let took = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                thirty_items(&limiter(&fresh_key("tokio-ct")).rate(200.0).burst(10)).await
            });
        check_thirty(took);
    });
}

#[cfg(feature = "smol-comp")]
#[test]
fn a_lane_on_smol() {
    watchdog(Duration::from_secs(30), || {
        let took = smol::block_on(async {
            thirty_items(&limiter(&fresh_key("smol")).rate(200.0).burst(10)).await
        });
        check_thirty(took);
    });
}

/// With `smol-comp`, the connection's driver runs on smol's global executor: a lane runs under
/// `futures::executor::block_on`.
#[cfg(feature = "smol-comp")]
#[test]
fn a_lane_on_block_on() {
    watchdog(Duration::from_secs(30), || {
        let took = futures::executor::block_on(async {
            thirty_items(&limiter(&fresh_key("block-on")).rate(200.0).burst(10)).await
        });
        check_thirty(took);
    });
}

#[test]
fn fail_closed_fails_the_items_and_fail_open_runs_them_when_nobody_answers() {
    watchdog(Duration::from_secs(30), || {
        // A port nobody listens on (a server started and stopped).
        let mut server = Server::start();
        let url = server.url();
        server.kill();
        on_tokio(async move {
            let make = || {
                RedisLimiter::new(redis::Client::open(url.as_str()).unwrap(), "down")
                    .rate(100.0)
                    .call_timeout(Duration::from_millis(200))
            };
            let run = |api: RedisLimiter| async move {
                (0..5u32)
                    .lane(5)
                    .limiter(&api)
                    .timeout(Duration::from_secs(5))
                    .map_async(|x| async move { Ok::<u32, std::io::Error>(x) })
                    .collect::<Vec<_>>()
                    .await
            };
            let closed = run(make()).await;
            assert_eq!(closed.len(), 5);
            for out in &closed {
                let err = out.as_ref().unwrap_err();
                assert!(err.limit_error().is_some(), "{err}");
            }
            let open = run(make().fail_open()).await;
            assert_eq!(open.len(), 5);
            assert!(open.iter().all(|out| out.is_ok()));
        });
    });
}

#[test]
fn a_limiter_without_limits_never_calls() {
    watchdog(
        Duration::from_secs(30),
        a_limiter_without_limits_never_calls_body,
    );
}

fn a_limiter_without_limits_never_calls_body() {
    let api = RedisLimiter::new(redis::Client::open("redis://127.0.0.1:1/").unwrap(), "none");
    let done = futures::executor::block_on(
        (0..10u32)
            .lane(4)
            .limiter(&api)
            .map_async(|x| async move { x })
            .count(),
    );
    assert_eq!(done, 10);
    assert_eq!(api.round_trips(), 0);
}

#[test]
fn bad_arguments_panic_naming_them() {
    watchdog(
        Duration::from_secs(30),
        bad_arguments_panic_naming_them_body,
    );
}

fn bad_arguments_panic_naming_them_body() {
    let client = || redis::Client::open("redis://127.0.0.1:1/").unwrap();
    let message = |f: Box<dyn FnOnce() + std::panic::UnwindSafe>| {
        let err = std::panic::catch_unwind(f).unwrap_err();
        err.downcast_ref::<String>()
            .cloned()
            .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    };
    assert!(message(Box::new(|| drop(
        RedisLimiter::new(client(), "a").rate(0.0)
    )))
    .contains("`per_second`"));
    assert!(
        message(Box::new(|| drop(RedisLimiter::new(client(), "a").burst(0)))).contains("`burst`")
    );
    assert!(
        message(Box::new(|| drop(RedisLimiter::new(client(), "a").lease(0)))).contains("`lease`")
    );
    assert!(message(Box::new(|| drop(
        RedisLimiter::new(client(), "a").concurrency(0)
    )))
    .contains("`concurrency`"));
    assert!(message(Box::new(|| drop(RedisLimiter::new(client(), "{a}")))).contains("`key`"));
}

#[test]
fn the_limiter_is_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    check::<RedisLimiter>();
    fn send<T: Send + Sync>() {}
    send::<tasklane_redis::Backend>();
}

#[test]
fn a_waiter_that_leaves_drops_its_call() {
    watchdog(Duration::from_secs(30), || {
        on_tokio(async {
            // Sent, then abandoned before its reply is read. The reply can be in by the first
            // poll (the connection's task runs on another worker thread, and a loaded machine
            // may pause this one between the send and the read): then try again with a fresh
            // limiter, up to 50 times; a reply that is never late would leave nothing to test.
            let mut tries = 0;
            let (api, me) = loop {
                tries += 1;
                assert!(
                    tries <= 50,
                    "every reply was in by the first poll: nothing to abandon"
                );
                let api = limiter(&fresh_key("leave")).rate(100.0);
                let me = Waiter::new();
                let first = poll_fn(|cx| Poll::Ready(api.poll_admit(&me, 1, cx))).await;
                if first.is_pending() {
                    break (api, me);
                }
            };
            api.leave(&me);
            // A new call: the first one's unit (if the server took it) is lost, never handed out.
            let verdict = ask(&api, &me, 1).await;
            assert_eq!(api.round_trips(), 2);
            if let Verdict::NotBefore(wait) = verdict {
                assert!(wait <= Duration::from_millis(10), "{wait:?}");
            }
        })
    });
}

/// Two lanes with a limiter each (two processes, as the server sees them) share
/// `concurrency(3)`: at most 3 attempts run at once over both, and every lease comes back.
#[test]
fn two_lanes_with_a_limiter_each_share_one_concurrency() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    watchdog(Duration::from_secs(30), || {
        on_tokio(async {
            let key = fresh_key("lanes-concurrency");
            let make = || limiter(&key).concurrency(3).poll(Duration::from_millis(5));
            let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            let lane = |api: RedisLimiter| {
                let (running, most) = (Arc::clone(&running), Arc::clone(&most));
                async move {
                    (0..20u32)
                        .lane(4)
                        .limiter(&api)
                        .map_async(move |x| {
                            let (running, most) = (Arc::clone(&running), Arc::clone(&most));
                            async move {
                                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                                most.fetch_max(now, Ordering::SeqCst);
                                futures_timer::Delay::new(Duration::from_millis(10)).await;
                                running.fetch_sub(1, Ordering::SeqCst);
                                x
                            }
                        })
                        .count()
                        .await
                }
            };
            let (x, y) = (make(), make());
            let (a, b) = futures::join!(lane(x.clone()), lane(y.clone()));
            assert_eq!(a + b, 40);
            let most = most.load(Ordering::SeqCst);
            assert!((1..=3).contains(&most), "{most} at once");
            // The last releases had no call after them: `flush` gives them back.
            x.flush().await.unwrap();
            y.flush().await.unwrap();
            let mut conn = redis::Client::open(shared_url())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            let held: usize = redis::cmd("ZCARD")
                .arg(format!("{{{key}}}:lease"))
                .query_async(&mut conn)
                .await
                .unwrap();
            assert_eq!(held, 0, "every lease came back");
        })
    });
}

/// The panics of the builder point at the caller's line (`#[track_caller]`).
#[test]
fn a_bad_argument_panics_at_the_callers_line() {
    watchdog(
        Duration::from_secs(30),
        a_bad_argument_panics_at_the_callers_line_body,
    );
}

fn a_bad_argument_panics_at_the_callers_line_body() {
    use std::sync::{Arc, Mutex};
    let seen = Arc::new(Mutex::new(None));
    let previous = std::panic::take_hook();
    {
        let seen = Arc::clone(&seen);
        std::panic::set_hook(Box::new(move |info| {
            *seen.lock().unwrap() = info.location().map(|l| l.file().to_owned());
        }));
    }
    let result = std::panic::catch_unwind(|| {
        RedisLimiter::new(redis::Client::open("redis://127.0.0.1:1/").unwrap(), "a").lease(0)
    });
    std::panic::set_hook(previous);
    assert!(result.is_err());
    let file = seen.lock().unwrap().clone().unwrap();
    assert!(file.ends_with("limit.rs"), "the panic points at {file}");
}

/// After `SCRIPT FLUSH` (as after a restart) the server answers `NOSCRIPT` to `EVALSHA`: the
/// script is sent again in full, and the call is answered.
#[test]
fn a_flushed_script_cache_is_refilled() {
    watchdog(Duration::from_secs(30), || {
        on_tokio(async {
            let api = limiter(&fresh_key("noscript")).rate(1000.0).burst(10);
            let me = Waiter::new();
            assert_eq!(ask(&api, &me, 1).await, Verdict::Admitted);
            let mut conn = redis::Client::open(shared_url())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            let () = redis::cmd("SCRIPT")
                .arg("FLUSH")
                .query_async(&mut conn)
                .await
                .unwrap();
            assert_eq!(ask(&api, &me, 1).await, Verdict::Admitted);
        })
    });
}

/// `flush` gives the units a process leased and did not use back to the fleet's schedule.
#[test]
fn flush_gives_leased_units_back() {
    watchdog(Duration::from_secs(30), || {
        on_tokio(async {
            let key = fresh_key("refund");
            let leasing = limiter(&key).rate(10.0).burst(4).lease(4);
            let me = Waiter::new();
            assert_eq!(ask(&leasing, &me, 1).await, Verdict::Admitted);
            assert_eq!(leasing.leased(), 3, "the whole burst in one round trip");
            leasing.flush().await.unwrap();
            assert_eq!(leasing.leased(), 0);
            // Another process finds the 3 units in the schedule again.
            let other = limiter(&key).rate(10.0).burst(4);
            let them = Waiter::new();
            for _ in 0..3 {
                assert_eq!(ask(&other, &them, 1).await, Verdict::Admitted);
            }
            assert!(matches!(ask(&other, &them, 1).await, Verdict::NotBefore(_)));
        })
    });
}

/// A `ConnectionManager` of the user's (shared with other traffic) is a backend too.
#[test]
fn a_connection_manager_of_yours_is_a_backend() {
    watchdog(Duration::from_secs(30), || {
        on_tokio(async {
            let client = redis::Client::open(shared_url()).unwrap();
            let manager = redis::aio::ConnectionManager::new(client).await.unwrap();
            let api = RedisLimiter::new(manager, fresh_key("manager")).rate(100.0);
            let me = Waiter::new();
            assert_eq!(ask(&api, &me, 1).await, Verdict::Admitted);
            assert_eq!(api.round_trips(), 1);
        })
    });
}
