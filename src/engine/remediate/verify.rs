//! The `verify` step: polls the burn rate over a window until it is below a limit, for at
//! most a deadline. Only a number read from data passes it; no data, a partial answer, an
//! impossible ratio or a failed query never does, and at the deadline the step fails saying which it was.

use std::time::Duration;

use super::{Remediator, now};
use crate::domain::burn;
use crate::domain::policy::{Slo, Window};
use crate::domain::sli;
use crate::engine::reading::{Reading, one_value};
use crate::ports::{Actuator, Freezes, Journal, MetricsSource};

impl<S, A, M> Remediator<S, A, M>
where
    S: Journal + Freezes + 'static,
    A: Actuator + 'static,
    M: MetricsSource + 'static,
{
    pub(super) async fn verify(
        &self,
        slo: &Slo,
        group: &super::playbook::Group,
        window: Window,
        below: f64,
        within: Window,
    ) -> Result<String, String> {
        let deadline = now() + within.as_secs() as i64;
        let expr = sli::error_ratio(&slo.indicator, window, slo.min_events);
        // Often enough to notice recovery, never so late that the deadline passes unseen.
        let poll = Duration::from_secs(
            (window.as_secs() / 10)
                .min(within.as_secs() / 4)
                .clamp(1, 30),
        );
        let budget = slo.error_budget().ratio();
        loop {
            let at = now();
            // A grouped SLO's query answers every group: this group's series is the reading.
            let answer = self.metrics.instant(&expr, at).await.map(|samples| {
                samples
                    .into_iter()
                    .filter(|s| {
                        group
                            .iter()
                            .all(|(k, v)| s.labels.get(k) == Some(v.as_str()))
                    })
                    .collect()
            });
            let reading = match one_value(answer) {
                Reading::Value(ratio) => match burn::checked_ratio(ratio) {
                    Ok(ratio) => Reading::Value(ratio),
                    Err(impossible) => Reading::Failed(impossible.to_string()),
                },
                other => other,
            };
            if let Reading::Value(ratio) = reading {
                let burn = ratio / budget;
                if burn < below {
                    return Ok(format!(
                        "burn rate over {window} is {burn:.2}, below {below}"
                    ));
                }
            }
            if at >= deadline {
                return Err(match reading {
                    Reading::Value(ratio) => format!(
                        "burn rate over {window} is still {:.2} after {within} (wanted below {below})",
                        ratio / budget
                    ),
                    Reading::NoData(why) => format!(
                        "no burn rate over {window} could be read within {within} ({why}); missing data never passes a verify step"
                    ),
                    Reading::Failed(why) => {
                        format!("reading the burn rate over {window} failed: {why}")
                    }
                });
            }
            tokio::time::sleep(poll).await;
        }
    }
}
