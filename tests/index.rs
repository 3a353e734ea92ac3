//! Every outcome can be traced to its item (issue "A new user's first hour" §2): `Error::index` on
//! retrying and timed lanes, and the `indexed()` terminal, in both orders, on a `ManualClock`.

mod common_time;

use std::time::Duration;

use common_time::*;
use futures::future::{self, Either};
use tasklane::time::ManualClock;
use tasklane::{prelude::*, Backoff, Error};

/// What item `i` of the job does: `i % 4 == 0` succeeds at once, `1` fails once then succeeds,
/// `2` always fails, `3` never finishes (so every attempt times out).
fn attempt(i: u32, attempt: u32) -> impl std::future::Future<Output = Result<u32, String>> {
    match i % 4 {
        0 => Either::Left(future::ready(Ok(i))),
        1 if attempt >= 2 => Either::Left(future::ready(Ok(i))),
        1 | 2 => Either::Left(future::ready(Err(format!(
            "item {i} attempt {attempt} failed"
        )))),
        _ => Either::Right(future::pending()),
    }
}

/// Runs 12 items through `lane(3).retry(2).timeout(100 ms)` (back-off 10 ms) in `order`, through
/// `indexed()`, and returns every `(index, outcome)`.
fn run(ordered: bool) -> Vec<(usize, Result<u32, Error<String>>)> {
    let clock = ManualClock::new();
    let calls = Calls::default();
    let lane = (0..12u32)
        .lane(3)
        .retry(2)
        .backoff(Backoff::constant(ms(10)))
        .timeout(ms(100))
        .with_clock(&clock);
    let lane = if ordered { lane.ordered() } else { lane };
    let mut out = lane.map_async(move |i| attempt(i, calls.next(i))).indexed();
    let got: Vec<_> = drive_until(&mut out, &clock, ms(5), Duration::from_secs(10))
        .into_iter()
        .map(|(_, item)| item)
        .collect();
    assert_done(&mut out);
    got
}

#[track_caller]
fn check(out: &[(usize, Result<u32, Error<String>>)]) {
    let mut seen: Vec<usize> = out.iter().map(|(i, _)| *i).collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..12).collect::<Vec<_>>(),
        "one outcome per item, each index once"
    );
    for (index, outcome) in out {
        let i = *index as u32;
        match (i % 4, outcome) {
            (0 | 1, Ok(v)) => assert_eq!(*v, i, "a success (item {i}, after a retry for 1)"),
            (2, Err(e)) => {
                assert_eq!(e.index(), *index, "a final failure names its item");
                assert_eq!(e.attempts(), 3);
                assert_eq!(
                    e.inner().map(String::as_str),
                    Some(&*format!("item {i} attempt 3 failed"))
                );
                // `{:#}` prints the cause (the item is in the cause here, and in `index`).
                assert_eq!(
                    format!("{e:#}"),
                    format!("task failed after 3 attempts: item {i} attempt 3 failed")
                );
            }
            (3, Err(e)) => {
                assert!(e.is_timeout());
                assert_eq!(e.index(), *index, "a timeout names its item");
                assert_eq!(e.attempts(), 3);
            }
            (_, other) => panic!("item {i}: unexpected {other:?}"),
        }
    }
}

#[test]
fn every_outcome_names_its_item_in_completion_order() {
    let out = run(false);
    check(&out);
    let order: Vec<usize> = out.iter().map(|(i, _)| *i).collect();
    assert_ne!(
        order,
        (0..12).collect::<Vec<_>>(),
        "completion order is not input order here"
    );
}

#[test]
fn every_outcome_names_its_item_in_input_order() {
    let out = run(true);
    check(&out);
    let order: Vec<usize> = out.iter().map(|(i, _)| *i).collect();
    assert_eq!(order, (0..12).collect::<Vec<_>>());
}

/// Running unordered and putting the outputs back in order by their index gives what `ordered()`
/// gives.
#[test]
fn unordered_outputs_sorted_by_index_are_the_ordered_outputs() {
    let mut unordered = run(false);
    unordered.sort_by_key(|(i, _)| *i);
    assert_eq!(unordered, run(true));
}

/// A plain lane's outputs get their positions too (the futures' outputs, unchanged), and an error
/// of a timed lane without retry names its item.
#[test]
fn plain_and_timed_lanes_name_their_items() {
    futures::executor::block_on(async {
        use futures::StreamExt;
        let out: Vec<(usize, char)> = "abc"
            .chars()
            .lane(1)
            .map_async(|c| async move { c })
            .indexed()
            .collect()
            .await;
        assert_eq!(out, [(0, 'a'), (1, 'b'), (2, 'c')]);
        let out: Vec<_> = [5u8, 6, 7]
            .lane(3)
            .timeout(Duration::from_secs(5))
            .map_async(|x| async move {
                if x == 6 {
                    Err(x)
                } else {
                    Ok(x)
                }
            })
            .collect()
            .await;
        let err = out.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert_eq!((err.index(), err.inner()), (1, Some(&6)));
    });
}
