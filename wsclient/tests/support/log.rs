//! A log of callback events shared between an event client's callbacks and
//! the test, and bounded waits on it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Events as the callbacks saw them, in order.
pub type Log = Arc<Mutex<Vec<String>>>;

/// A new, empty log.
pub fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

/// Appends an event.
pub fn push(log: &Log, s: impl Into<String>) {
    log.lock().unwrap().push(s.into());
}

/// The events so far.
pub fn snapshot(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

/// Waits (at most 10 s) until `pred` holds for the log.
pub async fn wait_for(log: &Log, what: &str, pred: impl Fn(&[String]) -> bool) {
    wait_for_within(log, what, Duration::from_secs(10), pred).await;
}

/// Waits (at most `limit`) until `pred` holds for the log; fails the test
/// with the log otherwise.
pub async fn wait_for_within(
    log: &Log,
    what: &str,
    limit: Duration,
    pred: impl Fn(&[String]) -> bool,
) {
    let deadline = Instant::now() + limit;
    while !pred(&snapshot(log)) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; log: {:?}",
            snapshot(log)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
