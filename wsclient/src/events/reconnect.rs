//! When and how soon to connect again: [`ReconnectPolicy`] (backoff,
//! attempt limit, reset after a stable connection) and the default retry
//! rules keyed on what happened ([`Outcome`] → [`Retry`]).
//!
//! Pure logic, no timers: the connection task asks for a delay and sleeps.

use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::proto::CloseCode;

/// How an attempt or a connection ended, as the retry rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The server closed with this code (1005 for none).
    Closed(CloseCode),
    /// The handshake was refused with this HTTP status; `retry_after` from
    /// its `Retry-After` header.
    Refused {
        /// The HTTP status.
        status: u16,
        /// `Retry-After`, in seconds.
        retry_after: Option<u64>,
    },
    /// The connection failed or broke with an error of this stable code
    /// ([`Error::code`]); `close` is the close code it ended with, if any.
    Failed {
        /// [`Error::code`].
        code: u16,
        /// The close code, if the connection was open.
        close: Option<CloseCode>,
    },
    /// The user closed the connection locally.
    LocalClose,
}

impl Outcome {
    /// The outcome an error stands for.
    #[must_use]
    pub fn from_error(e: &Error) -> Outcome {
        if let Some(r) = e.rejected() {
            return Outcome::Refused {
                status: r.status().as_u16(),
                retry_after: r.retry_after(),
            };
        }
        Outcome::Failed {
            code: e.code(),
            close: e.close_code(),
        }
    }
}

/// What to do after an outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retry {
    /// Reconnect after the policy's backoff delay.
    Backoff,
    /// Reconnect after exactly this delay (a server's `Retry-After`).
    After(Duration),
    /// Do not reconnect; the reason is logged and kept on the handle.
    Stop(&'static str),
}

/// The default rules:
///
/// - stop on close 1008 (policy violation), HTTP 401/403 (credentials),
///   other 4xx refusals but 408/429 (the request itself is wrong), a local
///   close, an invalid URL or header, and TLS certificate errors;
/// - retry after `Retry-After` when a 429/503 refusal carries one;
/// - retry with backoff on everything else: closes 1000, 1001, 1006,
///   1011-1013, HTTP 429/5xx, DNS/TCP failures, timeouts, protocol errors.
#[must_use]
pub fn default_rules(outcome: &Outcome) -> Retry {
    match *outcome {
        Outcome::LocalClose => Retry::Stop("closed locally"),
        Outcome::Closed(CloseCode::POLICY_VIOLATION) => {
            Retry::Stop("server closed with 1008 (policy violation)")
        }
        Outcome::Closed(_) => Retry::Backoff,
        Outcome::Refused { status: 401, .. } => {
            Retry::Stop("handshake refused with 401 (unauthorized)")
        }
        Outcome::Refused { status: 403, .. } => {
            Retry::Stop("handshake refused with 403 (forbidden)")
        }
        Outcome::Refused {
            status: 429 | 503,
            retry_after: Some(s),
        } => Retry::After(Duration::from_secs(s)),
        Outcome::Refused { status, .. }
            if (400..500).contains(&status) && status != 408 && status != 429 =>
        {
            Retry::Stop("handshake refused with a 4xx status")
        }
        Outcome::Refused { .. } => Retry::Backoff,
        // Invalid URL (1), invalid handshake (8) and TLS (5) errors do not
        // fix themselves.
        Outcome::Failed { code: 1, .. } => Retry::Stop("invalid URL"),
        Outcome::Failed { code: 5, .. } => Retry::Stop("TLS failure"),
        Outcome::Failed { code: 8, .. } => Retry::Stop("invalid handshake"),
        Outcome::Failed { .. } => Retry::Backoff,
    }
}

/// The retry rules as a function, replaceable by the user.
pub type RetryRules = Arc<dyn Fn(&Outcome) -> Retry + Send + Sync>;

/// The delay growth between attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backoff {
    /// The same delay every time (the seed's `reConnect(1)`).
    Fixed(Duration),
    /// `initial * factor^(attempt-1)`, capped at `max`, with up to
    /// `jitter` (0.0-1.0) of it randomly taken off.
    Exponential {
        /// The first delay.
        initial: Duration,
        /// The cap.
        max: Duration,
        /// The growth factor (2.0 doubles).
        factor: f64,
        /// The random share removed from each delay ("equal jitter").
        jitter: f64,
    },
}

impl Backoff {
    /// The delay before attempt `attempt` (1-based).
    #[must_use]
    pub fn delay(&self, attempt: u32) -> Duration {
        match *self {
            Backoff::Fixed(d) => d,
            Backoff::Exponential {
                initial,
                max,
                factor,
                jitter,
            } => {
                let exp = f64::from(attempt.saturating_sub(1).min(64));
                let raw = initial.as_secs_f64() * factor.max(1.0).powf(exp);
                let capped = raw.min(max.as_secs_f64());
                let jitter = jitter.clamp(0.0, 1.0);
                let cut = capped * jitter * rand::random::<f64>();
                Duration::from_secs_f64((capped - cut).max(0.0))
            }
        }
    }
}

/// Automatic reconnection: backoff, attempt limit, reset.
#[derive(Clone)]
pub struct ReconnectPolicy {
    /// The delays.
    pub backoff: Backoff,
    /// Give up after this many consecutive failed attempts (None: never).
    pub max_attempts: Option<u32>,
    /// A connection open this long counts as stable: the attempt counter
    /// (and so the backoff) starts again from 1.
    pub reset_after: Duration,
    /// Which outcomes retry and which stop.
    pub rules: RetryRules,
}

impl std::fmt::Debug for ReconnectPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconnectPolicy")
            .field("backoff", &self.backoff)
            .field("max_attempts", &self.max_attempts)
            .field("reset_after", &self.reset_after)
            .finish_non_exhaustive()
    }
}

impl ReconnectPolicy {
    /// Reconnect after the same delay every time, forever.
    #[must_use]
    pub fn fixed(delay: Duration) -> Self {
        ReconnectPolicy {
            backoff: Backoff::Fixed(delay),
            max_attempts: None,
            reset_after: Duration::from_secs(30),
            rules: Arc::new(default_rules),
        }
    }

    /// Exponential backoff from `initial` to `max`, doubling, with 50%
    /// jitter: the usual choice against a server that many clients use.
    #[must_use]
    pub fn exponential(initial: Duration, max: Duration) -> Self {
        ReconnectPolicy {
            backoff: Backoff::Exponential {
                initial,
                max,
                factor: 2.0,
                jitter: 0.5,
            },
            ..ReconnectPolicy::fixed(initial)
        }
    }

    /// Gives up after `n` consecutive failed attempts.
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }

    /// Sets how long a connection must last to reset the backoff.
    #[must_use]
    pub fn reset_after(mut self, d: Duration) -> Self {
        self.reset_after = d;
        self
    }

    /// Replaces the retry rules.
    #[must_use]
    pub fn rules(mut self, rules: impl Fn(&Outcome) -> Retry + Send + Sync + 'static) -> Self {
        self.rules = Arc::new(rules);
        self
    }

    /// The delay before attempt `attempt` after `outcome`, or `Err(reason)`
    /// to stop.
    pub fn next_delay(&self, outcome: &Outcome, attempt: u32) -> Result<Duration, &'static str> {
        if self.max_attempts.is_some_and(|m| attempt > m) {
            return Err("reconnect attempts exhausted");
        }
        match (self.rules)(outcome) {
            Retry::Backoff => Ok(self.backoff.delay(attempt)),
            Retry::After(d) => Ok(d),
            Retry::Stop(why) => Err(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_follow_the_issue() {
        let stop = |o| matches!(default_rules(&o), Retry::Stop(_));
        assert!(stop(Outcome::Closed(CloseCode(1008))));
        assert!(stop(Outcome::Refused {
            status: 401,
            retry_after: None
        }));
        assert!(stop(Outcome::Refused {
            status: 403,
            retry_after: None
        }));
        for c in [1001, 1006, 1011, 1012, 1013] {
            assert_eq!(
                default_rules(&Outcome::Closed(CloseCode(c))),
                Retry::Backoff,
                "{c}"
            );
        }
        for s in [429, 502, 503] {
            assert_eq!(
                default_rules(&Outcome::Refused {
                    status: s,
                    retry_after: None
                }),
                Retry::Backoff
            );
        }
        assert_eq!(
            default_rules(&Outcome::Refused {
                status: 429,
                retry_after: Some(7)
            }),
            Retry::After(Duration::from_secs(7))
        );
        assert!(stop(Outcome::LocalClose));
    }

    #[test]
    fn exponential_grows_caps_and_jitters() {
        let b = Backoff::Exponential {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            factor: 2.0,
            jitter: 0.5,
        };
        for attempt in 1..20 {
            let full = (0.1 * 2f64.powi(attempt as i32 - 1)).min(5.0);
            let d = b.delay(attempt).as_secs_f64();
            assert!(
                d <= full + 1e-9 && d >= full * 0.5 - 1e-9,
                "attempt {attempt}: {d} vs {full}"
            );
        }
    }

    #[test]
    fn attempt_limit() {
        let p = ReconnectPolicy::fixed(Duration::from_secs(1)).max_attempts(3);
        let o = Outcome::Closed(CloseCode(1006));
        assert!(p.next_delay(&o, 3).is_ok());
        assert!(p.next_delay(&o, 4).is_err());
    }
}
