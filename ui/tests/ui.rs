//! The compile errors a user meets, and the common forms that compile without annotations (issue 16,
//! items 4 and 5), with trybuild: `tests/ui/pass/*.rs` must compile and run, each
//! `tests/ui/fail/*.rs` must fail with the text in the `.stderr` beside it.
//!
//! The `.stderr` files are rustc's own text, so they change with the compiler: they were made with
//! stable 1.95. After a toolchain change, regenerate them with
//! `TRYBUILD=overwrite cargo test -p tasklane-ui` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}

/// Whatever the compiler version, the error for non-`Clone` items of a retrying lane names `Clone`
/// and the public trait `Takes`, not the crate's internal `engine::Mode`.
#[test]
fn the_non_clone_retry_error_names_clone_not_the_engine() {
    let stderr = include_str!("ui/fail/retry_needs_clone_items.stderr");
    assert!(stderr.contains("`Clone`"), "{stderr}");
    assert!(stderr.contains("Takes<Upload>"), "{stderr}");
    assert!(!stderr.contains("engine"), "{stderr}");
    assert!(!stderr.contains("Mode"), "{stderr}");
    assert_eq!(
        stderr.matches("error[").count(),
        1,
        "one error only:\n{stderr}"
    );
}

/// Whatever the compiler version, `backoff`, `retry_if` or `retry_after` before `retry` is one error
/// per call, which says to call `.retry(n)` first and names no internal of the crate.
#[test]
fn a_retry_setter_before_retry_says_to_call_retry_first() {
    let stderr = include_str!("ui/fail/backoff_needs_retry.stderr");
    assert!(
        stderr.contains("need a lane or policy with `retry`"),
        "{stderr}"
    );
    assert!(stderr.contains("`.retry(n)`"), "{stderr}");
    assert!(!stderr.contains("Internal"), "{stderr}");
    assert!(!stderr.contains("engine"), "{stderr}");
    assert_eq!(
        stderr.matches("error[").count(),
        2,
        "one error per call:\n{stderr}"
    );
}
