//! When each SLO is due: every SLO without a `schedule` on the service's interval (all of them
//! in one batch, so rules-mode reads stay one query per window), the others on their cron.
//!
//! Pure: `now` is passed in; the serve loop sleeps until [`Scheduler::next_wake`].

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::policy::Slo;

/// Due times for a set of SLOs.
#[derive(Debug, Clone)]
pub struct Scheduler {
    interval: chrono::Duration,
    next_interval: DateTime<Utc>,
    on_interval: Vec<usize>,
    cron: Vec<(usize, cron::Schedule, Option<DateTime<Utc>>)>,
}

impl Scheduler {
    /// Interval SLOs are due at once; cron SLOs at their next fire time after `now`.
    pub fn new(slos: &[Slo], interval: Duration, now: DateTime<Utc>) -> Self {
        let mut on_interval = Vec::new();
        let mut cron = Vec::new();
        for (i, slo) in slos.iter().enumerate() {
            // Validation parsed every schedule already; one that fails here stays on the interval.
            match slo.schedule.as_deref().map(cron::Schedule::from_str) {
                Some(Ok(schedule)) => {
                    let next = schedule.after(&now).next();
                    cron.push((i, schedule, next));
                }
                _ => on_interval.push(i),
            }
        }
        Self {
            interval: chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::seconds(30)),
            next_interval: now,
            on_interval,
            cron,
        }
    }

    /// The earliest time anything is due.
    pub fn next_wake(&self) -> DateTime<Utc> {
        let mut wake = if self.on_interval.is_empty() {
            None
        } else {
            Some(self.next_interval)
        };
        for (_, _, next) in &self.cron {
            if let Some(next) = next {
                wake = Some(wake.map_or(*next, |w: DateTime<Utc>| w.min(*next)));
            }
        }
        wake.unwrap_or(self.next_interval + self.interval)
    }

    /// The SLOs due at `now` (indices into the slice given to `new`), advancing their next
    /// due times. An interval tick that was missed is not replayed: the next one is a whole
    /// interval after `now`.
    pub fn take_due(&mut self, now: DateTime<Utc>) -> Vec<usize> {
        let mut due = Vec::new();
        if !self.on_interval.is_empty() && self.next_interval <= now {
            due.extend(&self.on_interval);
            self.next_interval += self.interval;
            if self.next_interval <= now {
                self.next_interval = now + self.interval;
            }
        }
        for (i, schedule, next) in &mut self.cron {
            if next.is_some_and(|n| n <= now) {
                due.push(*i);
                *next = schedule.after(&now).next();
            }
        }
        due.sort_unstable();
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policies;

    fn slos(schedules: &[Option<&str>]) -> Vec<Slo> {
        let text: String = schedules
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let schedule = s.map(|s| format!("  schedule: '{s}'\n")).unwrap_or_default();
                format!(
                    "---\napiVersion: burnguard.dev/v1\nkind: SLO\nmetadata: {{name: s{i}}}\nspec:\n  service: x\n  objective: 99\n{schedule}  indicator: {{raw: {{errorRatio: 'x[{{{{.window}}}}]'}}}}\n"
                )
            })
            .collect();
        let (loaded, problems) = policies::parse_source("t.yaml", &text);
        assert!(problems.is_empty(), "{problems:?}");
        loaded.into_iter().map(|l| l.slo).collect()
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn interval_slos_are_due_together_at_start_and_every_interval() {
        let now = at("2026-01-01T00:00:00Z");
        let mut s = Scheduler::new(&slos(&[None, None]), Duration::from_secs(30), now);
        assert_eq!(s.take_due(now), vec![0, 1]);
        assert_eq!(s.next_wake(), at("2026-01-01T00:00:30Z"));
        assert!(s.take_due(at("2026-01-01T00:00:29Z")).is_empty());
        assert_eq!(s.take_due(at("2026-01-01T00:00:30Z")), vec![0, 1]);
    }

    #[test]
    fn a_cron_slo_runs_on_its_schedule_and_not_on_the_interval() {
        let now = at("2026-01-01T00:00:10Z");
        let mut s = Scheduler::new(
            &slos(&[None, Some("0 */5 * * * *")]),
            Duration::from_secs(60),
            now,
        );
        assert_eq!(s.take_due(now), vec![0]);
        assert_eq!(s.next_wake(), at("2026-01-01T00:01:10Z"));
        assert_eq!(s.take_due(at("2026-01-01T00:01:10Z")), vec![0]);
        assert_eq!(s.take_due(at("2026-01-01T00:05:00Z")), vec![0, 1]);
        assert_eq!(s.take_due(at("2026-01-01T00:05:30Z")), Vec::<usize>::new());
    }

    #[test]
    fn a_late_wake_does_not_replay_missed_ticks() {
        let now = at("2026-01-01T00:00:00Z");
        let mut s = Scheduler::new(&slos(&[None]), Duration::from_secs(30), now);
        s.take_due(now);
        assert_eq!(s.take_due(at("2026-01-01T00:05:00Z")), vec![0]);
        assert_eq!(s.next_wake(), at("2026-01-01T00:05:30Z"));
    }
}
