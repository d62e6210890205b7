//! How long a notification is tried: the wait between attempts, and when an outbox entry is
//! dead (too many attempts, or too old to be worth sending). The engine passes an entry's
//! attempts, when it was written and `now`, and carries the answer out against the store.
//!
//! ```text
//!  pending ──(sent)──────────────────────────────▶ delivered
//!  pending ──(failed)──▶ pending, next attempt after backoff(failures)
//!  pending ──(max attempts, or max age)──────────▶ dead      (a dead letter: never sent again)
//!  pending ──(its channel no longer configured)──▶ stopped
//! ```
//!
//! Owns: the backoff schedule, the limits' meaning and a delivery's states. Must not touch:
//! storage, clocks, HTTP.

use std::fmt;

/// The longest wait between two attempts: 5 minutes.
pub const MAX_BACKOFF_SECONDS: i64 = 300;

/// Seconds to wait after the `failures`-th failed attempt in a row (counting from 1):
/// 1, 2, 4, 8, 16, 32, 64, 128, 256, then 300 (5 minutes) for every later one.
/// `0` failures waits nothing.
pub fn backoff(failures: u32) -> i64 {
    match failures {
        0 => 0,
        // 2^(n-1) reaches 512 > 300 at the tenth failure; shifting further would overflow.
        1..=9 => (1_i64 << (failures - 1)).min(MAX_BACKOFF_SECONDS),
        _ => MAX_BACKOFF_SECONDS,
    }
}

/// When retrying ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryLimits {
    /// Attempts at most, the first one included (at least 1).
    pub max_attempts: u32,
    /// Seconds after the entry was written past which it is never sent (at least 1).
    pub max_age: i64,
}

pub const DEFAULT_MAX_ATTEMPTS: u32 = 20;
pub const DEFAULT_MAX_AGE_SECONDS: i64 = 24 * 3600;

impl Default for RetryLimits {
    fn default() -> Self {
        Self {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            max_age: DEFAULT_MAX_AGE_SECONDS,
        }
    }
}

/// Why an entry is dead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadReason {
    /// `made` attempts failed and `max` are allowed.
    Attempts { made: u32, max: u32 },
    /// Not delivered within `max_age` seconds of being written.
    Age { max_age: i64 },
}

impl fmt::Display for DeadReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeadReason::Attempts { made, max } => {
                write!(f, "{made} attempts failed, and at most {max} are made")
            }
            DeadReason::Age { max_age } => write!(
                f,
                "not delivered within {} of being written, the most it is tried for",
                seconds_text(*max_age)
            ),
        }
    }
}

/// Before an attempt: `Some` when the entry must not be sent any more (the limits may have
/// been lowered since its last attempt, or it waited past its age, e.g. while burnguard was
/// down or no replica had its channel).
pub fn dead_before_attempt(
    attempts_made: u32,
    written_at: i64,
    now: i64,
    limits: RetryLimits,
) -> Option<DeadReason> {
    if attempts_made >= limits.max_attempts {
        Some(DeadReason::Attempts {
            made: attempts_made,
            max: limits.max_attempts,
        })
    } else if now - written_at >= limits.max_age {
        Some(DeadReason::Age {
            max_age: limits.max_age,
        })
    } else {
        None
    }
}

/// What follows a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again at this time.
    RetryAt(i64),
    Dead(DeadReason),
}

/// After attempt number `attempts_made` (this one counted) failed at `now`: the next attempt
/// after [`backoff`], or dead when that was the last attempt allowed or the next one would
/// come at or past the maximum age (it would never be made).
pub fn after_failure(
    attempts_made: u32,
    written_at: i64,
    now: i64,
    limits: RetryLimits,
) -> AfterFailure {
    if attempts_made >= limits.max_attempts {
        return AfterFailure::Dead(DeadReason::Attempts {
            made: attempts_made,
            max: limits.max_attempts,
        });
    }
    let next = now + backoff(attempts_made);
    if next - written_at >= limits.max_age {
        AfterFailure::Dead(DeadReason::Age {
            max_age: limits.max_age,
        })
    } else {
        AfterFailure::RetryAt(next)
    }
}

/// Where one delivery (an outbox entry on one channel) is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not sent yet; tried when due.
    Pending,
    Delivered,
    /// A dead letter: retries ended (see [`DeadReason`]).
    Dead,
    /// Its channel is no longer configured (removed, or pointed elsewhere).
    Stopped,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 4] = [
        DeliveryState::Pending,
        DeliveryState::Delivered,
        DeliveryState::Dead,
        DeliveryState::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
            DeliveryState::Stopped => "stopped",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A duration as people write it in settings: `24h`, `1h30m`, `5m`, `1m30s`, `45s`.
pub fn seconds_text(seconds: i64) -> String {
    if seconds <= 0 {
        return format!("{seconds}s");
    }
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    let mut text = String::new();
    for (value, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if value > 0 {
            text.push_str(&format!("{value}{unit}"));
        }
    }
    text
}

/// Why a pending delivery stops when channels are bound at start: its channel `name` is not
/// configured at all, or is configured to point elsewhere (another URL or routing key).
pub fn stop_reason(name: &str, name_still_configured: bool) -> String {
    if name_still_configured {
        format!(
            "{name} now points elsewhere (another URL or routing key), and a channel receives only notifications written after it was configured"
        )
    } else {
        format!("{name} is no longer configured")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_wait_doubles_from_one_second_and_stays_at_five_minutes() {
        let table: [(u32, i64); 14] = [
            (0, 0),
            (1, 1),
            (2, 2),
            (3, 4),
            (4, 8),
            (5, 16),
            (6, 32),
            (7, 64),
            (8, 128),
            (9, 256),
            (10, 300),
            (11, 300),
            (19, 300),
            (u32::MAX, 300),
        ];
        for (failures, wait) in table {
            assert_eq!(backoff(failures), wait, "after {failures} failures");
        }
    }

    #[test]
    fn twenty_attempts_with_the_default_limits_span_about_an_hour() {
        // Waits after failures 1..=19: 1 + 2 + ... + 256 = 511, then ten times 300.
        let span: i64 = (1..DEFAULT_MAX_ATTEMPTS).map(backoff).sum();
        assert_eq!(span, 511 + 10 * 300);
        assert!(span < DEFAULT_MAX_AGE_SECONDS);
    }

    #[test]
    fn what_follows_a_failed_attempt() {
        let limits = RetryLimits {
            max_attempts: 5,
            max_age: 100,
        };
        let attempts = |made, max| AfterFailure::Dead(DeadReason::Attempts { made, max });
        let too_old = AfterFailure::Dead(DeadReason::Age { max_age: 100 });
        // (attempts made, written at, now, what follows)
        let table: Vec<(u32, i64, i64, AfterFailure)> = vec![
            (1, 0, 0, AfterFailure::RetryAt(1)),
            (2, 0, 1, AfterFailure::RetryAt(3)),
            (3, 0, 3, AfterFailure::RetryAt(7)),
            (4, 0, 7, AfterFailure::RetryAt(15)),
            (5, 0, 15, attempts(5, 5)),
            (9, 0, 15, attempts(9, 5)),
            // The next attempt would come at the maximum age or later: it would never be made.
            (1, 0, 98, AfterFailure::RetryAt(99)),
            (1, 0, 99, too_old),
            (4, 0, 92, too_old),
            (4, 0, 91, AfterFailure::RetryAt(99)),
            // Attempts are checked before age.
            (5, 0, 500, attempts(5, 5)),
        ];
        for (made, written, now, expected) in table {
            assert_eq!(
                after_failure(made, written, now, limits),
                expected,
                "attempt {made} written at {written} failed at {now}"
            );
        }
    }

    #[test]
    fn what_is_dead_before_an_attempt() {
        let limits = RetryLimits {
            max_attempts: 3,
            max_age: 60,
        };
        // (attempts made, written at, now, verdict)
        let table: Vec<(u32, i64, i64, Option<DeadReason>)> = vec![
            (0, 0, 0, None),
            (2, 0, 59, None),
            (0, 0, 60, Some(DeadReason::Age { max_age: 60 })),
            (0, 1000, 1059, None),
            (0, 1000, 1060, Some(DeadReason::Age { max_age: 60 })),
            // Limits lowered between restarts: past them, nothing more is sent.
            (3, 0, 0, Some(DeadReason::Attempts { made: 3, max: 3 })),
            (7, 0, 0, Some(DeadReason::Attempts { made: 7, max: 3 })),
        ];
        for (made, written, now, expected) in table {
            assert_eq!(
                dead_before_attempt(made, written, now, limits),
                expected,
                "{made} attempts, written at {written}, now {now}"
            );
        }
    }

    #[test]
    fn reasons_say_which_limit_ended_the_retries() {
        let table = [
            (
                DeadReason::Attempts { made: 20, max: 20 },
                "20 attempts failed, and at most 20 are made",
            ),
            (
                DeadReason::Age { max_age: 86_400 },
                "not delivered within 24h of being written, the most it is tried for",
            ),
            (
                DeadReason::Age { max_age: 90 },
                "not delivered within 1m30s of being written, the most it is tried for",
            ),
        ];
        for (reason, text) in table {
            assert_eq!(reason.to_string(), text);
        }
    }

    #[test]
    fn durations_read_as_they_are_written_in_settings() {
        for (seconds, text) in [
            (86_400, "24h"),
            (5400, "1h30m"),
            (300, "5m"),
            (90, "1m30s"),
            (45, "45s"),
            (3661, "1h1m1s"),
            (0, "0s"),
        ] {
            assert_eq!(seconds_text(seconds), text);
        }
    }

    #[test]
    fn states_read_back_as_written() {
        for state in DeliveryState::ALL {
            assert_eq!(DeliveryState::parse(state.as_str()), Some(state));
        }
        assert_eq!(DeliveryState::parse("sent"), None);
    }

    #[test]
    fn a_stopped_delivery_says_whether_its_channel_went_or_moved() {
        assert_eq!(
            stop_reason("webhook", false),
            "webhook is no longer configured"
        );
        assert!(stop_reason("pagerduty", true).starts_with("pagerduty now points elsewhere"));
    }

    proptest! {
        /// Failing every time from the moment it is written, an entry is attempted at most
        /// `max_attempts` times, every attempt before its maximum age, with waits that never
        /// shrink and never exceed five minutes.
        #[test]
        fn retries_always_end_within_both_limits(max_attempts in 1u32..60, max_age in 1i64..200_000) {
            let limits = RetryLimits { max_attempts, max_age };
            let (mut now, mut made, mut last_wait) = (0_i64, 0_u32, 0_i64);
            loop {
                prop_assert!(dead_before_attempt(made, 0, now, limits).is_none());
                made += 1;
                prop_assert!(made <= max_attempts);
                prop_assert!(now < max_age);
                match after_failure(made, 0, now, limits) {
                    AfterFailure::RetryAt(next) => {
                        let wait = next - now;
                        prop_assert!(wait >= last_wait && (1..=MAX_BACKOFF_SECONDS).contains(&wait));
                        last_wait = wait;
                        now = next;
                    }
                    AfterFailure::Dead(_) => break,
                }
            }
        }
    }
}
