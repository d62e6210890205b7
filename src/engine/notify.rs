//! Delivering the outbox. Each entry was bound, when it was written, to the channels
//! configured then; a delivery loop claims due deliveries under a lease (so two replicas never
//! send the same one at once), sends each, and settles it with a timeline entry: delivered,
//! failed (retried after the domain's backoff: 1s, 2s, 4s ... 256s, then every 5 minutes), or
//! dead once the retry limits are reached (a dead letter, never sent again). Rows survive
//! restarts, so nothing is lost while a receiver is down. A crash between a send and its
//! bookkeeping sends it again once the claim is released or expires: PagerDuty and
//! Alertmanager deduplicate by the incident key; webhook receivers get the incident id to do
//! the same.
//!
//! Owns: one delivery pass and what goes on the timeline. Must not touch: HTTP (the
//! [`Notifier`]), SQL (the [`Outbox`]), the clock (`now` is passed in).

use tracing::{info, warn};

use crate::domain::delivery::{self, AfterFailure, RetryLimits};
use crate::ports::{
    Channel, DeliveryRecord, DueDelivery, Instance, Notifier, Outbox, Settlement, StoreError,
    UnixSeconds,
};

/// How the delivery loop claims and retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeliverySettings {
    pub limits: RetryLimits,
    /// Seconds a claim lasts. Longer than a pass can take (`batch` sends of at most 10s each),
    /// so a live claimer never loses its claim; a crashed one's deliveries are due again
    /// after it.
    pub lease: i64,
    /// Deliveries claimed per pass.
    pub batch: i64,
}

pub const DEFAULT_LEASE_SECONDS: i64 = 60;
pub const DEFAULT_BATCH: i64 = 5;

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            limits: RetryLimits::default(),
            lease: DEFAULT_LEASE_SECONDS,
            batch: DEFAULT_BATCH,
        }
    }
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Deliveries claimed.
    pub claimed: usize,
    pub delivered: usize,
    /// Attempts that failed and will be retried.
    pub failed: usize,
    /// The channel of every delivery dead-lettered in this pass.
    pub dead: Vec<String>,
    /// Claims that expired under us and were taken by another claimer before we settled.
    pub lost: usize,
}

/// At start: binds the outbox to `channels` (see [`Outbox::bind_channels`]) and logs every
/// delivery that stopped because its channel is no longer configured.
pub async fn bind_channels<S: Outbox>(
    store: &S,
    channels: &[Channel],
    me: &Instance,
    now: UnixSeconds,
) -> Result<Vec<DeliveryRecord>, StoreError> {
    let stopped = store.bind_channels(channels, me, now).await?;
    for d in &stopped {
        info!(
            incident = d.incident_id,
            channel = %d.channel,
            event = %d.event,
            reason = d.end_reason.as_deref().unwrap_or_default(),
            "pending notification stopped"
        );
    }
    Ok(stopped)
}

/// One pass at `now`: claims up to `settings.batch` due deliveries as `claimer` and settles
/// each. A delivery to a channel this process does not have is claimed only once it is past
/// the maximum age, to dead-letter it.
pub async fn deliver_due<S: Outbox, N: Notifier>(
    store: &S,
    notifier: &N,
    settings: &DeliverySettings,
    claimer: &str,
    now: UnixSeconds,
) -> Result<DeliveryReport, StoreError> {
    let channels = notifier.channels();
    let limits = settings.limits;
    let due = store
        .claim_due(
            &channels,
            claimer,
            now,
            now + settings.lease,
            now - limits.max_age,
            settings.batch,
        )
        .await?;
    let mut report = DeliveryReport {
        claimed: due.len(),
        ..DeliveryReport::default()
    };
    for d in due {
        let made = u32::try_from(d.attempts).unwrap_or(u32::MAX);
        let (settlement, message) = if let Some(reason) =
            delivery::dead_before_attempt(made, d.written_at, now, limits)
        {
            let message = format!(
                "gave up notifying {} of `{}` after {made} attempts: {reason}; it is dead-lettered",
                d.channel, d.event
            );
            let settlement = Settlement::Dead {
                attempted: false,
                error: None,
                reason: reason.to_string(),
            };
            (settlement, message)
        } else if !channels.iter().any(|c| d.is_to(c)) {
            // Not ours and not dead yet: the claim query does not return these.
            store.release_claim(d.delivery_id, claimer).await?;
            continue;
        } else {
            attempt(notifier, &d, made + 1, now, limits).await
        };
        let dead = matches!(settlement, Settlement::Dead { .. });
        if store
            .settle_delivery(&d, claimer, &settlement, &message, now)
            .await?
        {
            match settlement {
                Settlement::Delivered { .. } => report.delivered += 1,
                Settlement::Failed { .. } => report.failed += 1,
                Settlement::Dead { .. } => report.dead.push(d.channel.clone()),
            }
            if dead {
                warn!(incident = d.incident_id, channel = %d.channel, event = %d.event, "{message}");
            }
        } else {
            report.lost += 1;
            warn!(
                incident = d.incident_id,
                channel = %d.channel,
                "a notification's claim expired before it was settled; another claimer has it"
            );
        }
    }
    Ok(report)
}

/// Sends one delivery: attempt number `attempt` at `now`.
async fn attempt<N: Notifier>(
    notifier: &N,
    d: &DueDelivery,
    attempt: u32,
    now: UnixSeconds,
    limits: RetryLimits,
) -> (Settlement, String) {
    match notifier.deliver(d).await {
        Ok(outcome) => {
            let message = format!(
                "notified {} of `{}` (attempt {attempt}): {outcome}",
                d.channel, d.event
            );
            (Settlement::Delivered { outcome }, message)
        }
        Err(error) => match delivery::after_failure(attempt, d.written_at, now, limits) {
            AfterFailure::RetryAt(retry_at) => {
                let message = format!(
                    "notifying {} of `{}` failed (attempt {attempt}): {error}; retrying in {}",
                    d.channel,
                    d.event,
                    delivery::seconds_text(retry_at - now)
                );
                (Settlement::Failed { error, retry_at }, message)
            }
            AfterFailure::Dead(reason) => {
                let message = format!(
                    "notifying {} of `{}` failed (attempt {attempt}): {error}; giving up: {reason}; it is dead-lettered",
                    d.channel, d.event
                );
                let settlement = Settlement::Dead {
                    attempted: true,
                    error: Some(error),
                    reason: reason.to_string(),
                };
                (settlement, message)
            }
        },
    }
}
