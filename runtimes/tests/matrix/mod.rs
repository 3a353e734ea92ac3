//! The runtime matrix shared by `runtimes/tests/runtimes*.rs`: one runner per
//! supported executor, a watchdog that turns a lost wake-up into a failure, and a macro that makes
//! one `#[test]` per (runtime, scenario).

use std::future::Future;
use std::time::Duration;

use futures::future::{self, Either};
use futures_timer::Delay;

/// Fails the scenario instead of hanging if it makes no progress (a lost wake-up): the timer runs
/// on its own thread, so it fires even when the scenario's own wake-ups were lost.
pub(crate) async fn watchdog<Fut: Future<Output = ()>>(name: &str, scenario: Fut) {
    const LIMIT: Duration = Duration::from_secs(60);
    let scenario = std::pin::pin!(scenario);
    match future::select(scenario, Delay::new(LIMIT)).await {
        Either::Left(((), _)) => {}
        Either::Right(((), _)) => panic!("{name}: no result after {LIMIT:?} (lost wake-up?)"),
    }
}

pub(crate) fn on_tokio_current_thread<Fut>(scenario: impl FnOnce() -> Fut + Send + 'static)
where
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(scenario());
}

/// The scenario (lane included) runs as a spawned task, which may move between worker threads:
/// this compiles only because every scenario future is `Send`.
pub(crate) fn on_tokio_multi_thread<Fut>(scenario: impl FnOnce() -> Fut + Send + 'static)
where
    Fut: Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        if let Err(err) = tokio::spawn(async move { scenario().await }).await {
            if err.is_panic() {
                std::panic::resume_unwind(err.into_panic());
            }
            panic!("the scenario task failed: {err}");
        }
    });
}

pub(crate) fn on_async_std<Fut>(scenario: impl FnOnce() -> Fut + Send + 'static)
where
    Fut: Future<Output = ()> + Send + 'static,
{
    ::async_std::task::block_on(scenario());
}

pub(crate) fn on_smol<Fut>(scenario: impl FnOnce() -> Fut + Send + 'static)
where
    Fut: Future<Output = ()> + Send + 'static,
{
    ::smol::block_on(scenario());
}

pub(crate) fn on_futures_executor<Fut>(scenario: impl FnOnce() -> Fut + Send + 'static)
where
    Fut: Future<Output = ()> + Send + 'static,
{
    futures::executor::block_on(scenario());
}

/// One `#[test]` per (runtime, scenario): `<runtime module>::<scenario>`.
macro_rules! runtime_matrix {
    ($($scenario:ident),* $(,)?) => {
        runtime_matrix!(@on tokio_current_thread, on_tokio_current_thread; $($scenario),*);
        runtime_matrix!(@on tokio_multi_thread, on_tokio_multi_thread; $($scenario),*);
        runtime_matrix!(@on async_std, on_async_std; $($scenario),*);
        runtime_matrix!(@on smol, on_smol; $($scenario),*);
        runtime_matrix!(@on futures_executor, on_futures_executor; $($scenario),*);
    };
    (@on $runtime:ident, $runner:ident; $($scenario:ident),*) => {
        mod $runtime {
            $(
                #[test]
                #[cfg_attr(miri, ignore = "real runtimes, threads and timers")]
                fn $scenario() {
                    crate::matrix::$runner(|| {
                        crate::matrix::watchdog(
                            concat!(stringify!($runtime), "::", stringify!($scenario)),
                            super::$scenario(),
                        )
                    });
                }
            )*
        }
    };
}
