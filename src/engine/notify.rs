//! Delivering the outbox: every notification to every configured channel, retried with
//! exponential backoff (1s, 2s, 4s ... at most 5 minutes) until it arrives; each attempt goes on
//! the incident's timeline. Rows survive restarts, so nothing is lost while a receiver is down.
//! A crash between a send and its bookkeeping sends it again: PagerDuty and Alertmanager
//! deduplicate by the incident key; webhook receivers get the incident id to do the same.

use tracing::warn;

use crate::ports::{Journal, Notifier, Outbox, UnixSeconds};

/// Seconds to wait after `attempts` failures.
pub fn backoff(attempts: i64) -> i64 {
    1_i64 << attempts.clamp(0, 9).min(8) as u32
}

/// Attempts every due delivery once; returns how many arrived.
pub async fn deliver_due<S: Outbox + Journal, N: Notifier>(
    store: &S,
    notifier: &N,
    at: UnixSeconds,
) -> usize {
    let channels = notifier.channels();
    if channels.is_empty() {
        return 0;
    }
    if let Err(error) = store.plan_deliveries(&channels, at).await {
        warn!(%error, "planning notifications failed");
        return 0;
    }
    let due = match store.due_deliveries(at, 100).await {
        Ok(due) => due,
        Err(error) => {
            warn!(%error, "reading the outbox failed");
            return 0;
        }
    };
    let mut delivered = 0;
    for d in due {
        let attempt = d.attempts + 1;
        match notifier.deliver(&d).await {
            Ok(outcome) => {
                delivered += 1;
                let _ = store.mark_delivered(d.delivery_id, at).await;
                let message = format!(
                    "notified {} of `{}` (attempt {attempt}): {outcome}",
                    d.channel, d.event
                );
                let _ = store
                    .add_event(
                        d.incident_id,
                        at,
                        "notification_delivered",
                        &message,
                        "burnguard",
                        None,
                    )
                    .await;
            }
            Err(error) => {
                let wait = backoff(d.attempts).min(300);
                let _ = store.mark_failed(d.delivery_id, &error, at + wait).await;
                let message = format!(
                    "notifying {} of `{}` failed (attempt {attempt}): {error}; retrying in {wait}s",
                    d.channel, d.event
                );
                let _ = store
                    .add_event(
                        d.incident_id,
                        at,
                        "notification_failed",
                        &message,
                        "burnguard",
                        None,
                    )
                    .await;
            }
        }
    }
    delivered
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_and_caps() {
        let waits: Vec<i64> = (0..12).map(super::backoff).collect();
        assert_eq!(&waits[..5], &[1, 2, 4, 8, 16]);
        assert!(waits.iter().all(|w| *w <= 300));
    }
}
