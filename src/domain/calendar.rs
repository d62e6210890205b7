//! Calendar SLO windows: the period (a week from Monday 00:00, or a calendar month) that holds
//! an instant, in an IANA time zone, as unix seconds. A calendar SLO's budget resets at each
//! period's start; its budget and burn-down use the part of the period that has passed.
//!
//! Pure: the time zone database is compiled in (jiff's bundled tzdb), so the same policy gives
//! the same periods on every machine (a distroless image has no `/usr/share/zoneinfo`), and
//! nothing here reads a clock or a file. Owns: period boundaries across DST changes, month
//! lengths, leap years and week starts. Must not touch: what is computed over a period.
//!
//! Also the step table the generated rules carry to find a period's start and length in
//! PromQL, which has no time zones (see [`CalendarWindow::step_table`]).

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// How long a calendar period is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CalendarPeriod {
    /// Monday 00:00 to the next Monday 00:00 (ISO 8601 weeks).
    Week,
    /// The 1st 00:00 to the next month's 1st 00:00.
    Month,
}

impl CalendarPeriod {
    /// Its name in policies: `week` or `month`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Week => "week",
            Self::Month => "month",
        }
    }

    /// From its name in policies.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "week" => Some(Self::Week),
            "month" => Some(Self::Month),
            _ => None,
        }
    }

    /// The rolling length the alert table is sized for: alert rows stay rolling, and their
    /// burn-rate thresholds are those of a 7d or 30d window.
    pub fn nominal_seconds(self) -> u64 {
        match self {
            Self::Week => 7 * 86_400,
            Self::Month => 30 * 86_400,
        }
    }
}

/// Checks an OpenSLO calendar `startTime` (`2024-01-01 00:00:00`, local time): burnguard's
/// periods start on the 1st at 00:00 (months) or on Monday at 00:00 (weeks), so a start
/// elsewhere would move every period, which it cannot do; any such boundary is accepted.
pub fn check_period_start(period: CalendarPeriod, text: &str) -> Result<(), String> {
    let local: jiff::civil::DateTime = text.trim().parse().map_err(|_| {
        format!("`{text}` is not a local date and time such as 2024-01-01 00:00:00")
    })?;
    let midnight = local.time() == jiff::civil::Time::midnight();
    let on_boundary = match period {
        CalendarPeriod::Month => local.day() == 1,
        CalendarPeriod::Week => local.weekday() == jiff::civil::Weekday::Monday,
    };
    if midnight && on_boundary {
        Ok(())
    } else {
        Err(format!(
            "`{text}` is not the start of a {}: burnguard's periods start {}",
            period.as_str(),
            match period {
                CalendarPeriod::Month => "on the 1st at 00:00, such as 2024-01-01 00:00:00",
                CalendarPeriod::Week => "on Monday at 00:00, such as 2024-01-01 00:00:00",
            }
        ))
    }
}

/// A run of periods of one length, from `start`: the periods from `start` (until the next
/// step's start) all last `length` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeriodStep {
    pub start: i64,
    pub length: i64,
}

/// Why a calendar window cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error(
        "`{0}` is not a time zone of the IANA database; expected a name such as Europe/Berlin, America/New_York or UTC"
    )]
    UnknownZone(String),
    #[error("{0} is outside the dates burnguard handles")]
    OutOfRange(i64),
}

/// A calendar window: a period length in a time zone.
#[derive(Clone, Debug, PartialEq)]
pub struct CalendarWindow {
    pub period: CalendarPeriod,
    pub zone_name: String,
    zone: TimeZone,
}

/// One period: `[start, end)` in unix seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub start: i64,
    pub end: i64,
}

impl Period {
    /// Its length in seconds: a month of 31 days with a DST change is 31 days less an hour.
    pub fn length(&self) -> i64 {
        self.end - self.start
    }

    /// The seconds of it that have passed at `at` (within it).
    pub fn elapsed(&self, at: i64) -> i64 {
        (at - self.start).clamp(0, self.length())
    }
}

impl CalendarWindow {
    pub fn new(period: CalendarPeriod, zone_name: &str) -> Result<Self, CalendarError> {
        let zone = jiff::tz::db()
            .get(zone_name.trim())
            .map_err(|_| CalendarError::UnknownZone(zone_name.to_string()))?;
        Ok(Self {
            period,
            zone_name: zone_name.trim().to_string(),
            zone,
        })
    }

    /// The period that holds `at`: its start is at or before `at`, its end after.
    pub fn period_at(&self, at: i64) -> Result<Period, CalendarError> {
        let out_of_range = |_| CalendarError::OutOfRange(at);
        let local = Timestamp::from_second(at)
            .map_err(out_of_range)?
            .to_zoned(self.zone.clone())
            .date();
        let (first, next) = match self.period {
            CalendarPeriod::Week => {
                let back = i64::from(local.weekday().to_monday_zero_offset());
                let monday = local.checked_sub(back.days()).map_err(out_of_range)?;
                (monday, monday.checked_add(7.days()).map_err(out_of_range)?)
            }
            CalendarPeriod::Month => {
                let first = local.first_of_month();
                (first, first.checked_add(1.month()).map_err(out_of_range)?)
            }
        };
        Ok(Period {
            start: self
                .start_of_day(first)
                .ok_or(CalendarError::OutOfRange(at))?,
            end: self
                .start_of_day(next)
                .ok_or(CalendarError::OutOfRange(at))?,
        })
    }

    /// The periods from the one holding `from` to the one holding `until`, as runs of equal
    /// length: a period's start is `step.start + n * step.length` for the last step at or
    /// before it. Weeks in a zone without daylight saving are one step; each DST change adds
    /// two (its odd-length week, then the run after it); months change length nearly every
    /// time. This is what lets PromQL, which knows no time zones, find the period of `time()`
    /// with a few comparisons per year.
    pub fn step_table(&self, from: i64, until: i64) -> Result<Vec<PeriodStep>, CalendarError> {
        let mut steps: Vec<PeriodStep> = Vec::new();
        let mut period = self.period_at(from)?;
        loop {
            let length = period.length();
            let continues_run = steps.last().is_some_and(|last| {
                last.length == length && (period.start - last.start) % last.length == 0
            });
            if !continues_run {
                steps.push(PeriodStep {
                    start: period.start,
                    length,
                });
            }
            if period.end > until {
                break;
            }
            period = self.period_at(period.end)?;
        }
        Ok(steps)
    }

    /// The first instant of `date` in the zone: midnight, or the end of the gap where a DST
    /// change skips midnight.
    fn start_of_day(&self, date: Date) -> Option<i64> {
        date.to_zoned(self.zone.clone())
            .ok()?
            .start_of_day()
            .ok()
            .map(|z| z.timestamp().as_second())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn window(period: CalendarPeriod, zone: &str) -> CalendarWindow {
        CalendarWindow::new(period, zone).unwrap()
    }

    // Expected instants below were worked out with Python's zoneinfo, not with this code.

    #[test]
    fn a_month_with_the_spring_change_is_an_hour_short_and_the_autumn_one_an_hour_long() {
        let berlin = window(CalendarPeriod::Month, "Europe/Berlin");
        // 2026-03-15T12:00Z
        let march = berlin.period_at(1_773_576_000).unwrap();
        assert_eq!(
            march,
            Period {
                start: 1_772_319_600,
                end: 1_774_994_400
            }
        );
        assert_eq!(march.length(), 31 * 86_400 - 3_600);
        // 2026-10-20T00:00Z
        let october = berlin.period_at(1_792_454_400).unwrap();
        assert_eq!(
            october,
            Period {
                start: 1_790_805_600,
                end: 1_793_487_600
            }
        );
        assert_eq!(october.length(), 31 * 86_400 + 3_600);
        // New York's November (its change is on the 1st itself, at 02:00).
        let ny = window(CalendarPeriod::Month, "America/New_York");
        let november = ny.period_at(1_794_000_000).unwrap();
        assert_eq!(
            november,
            Period {
                start: 1_793_505_600,
                end: 1_796_101_200
            }
        );
        assert_eq!(november.length(), 30 * 86_400 + 3_600);
        // Lord Howe moves its clocks by half an hour.
        let lord_howe = window(CalendarPeriod::Month, "Australia/Lord_Howe");
        let april = lord_howe.period_at(1_776_000_000).unwrap();
        assert_eq!(
            april,
            Period {
                start: 1_774_962_000,
                end: 1_777_555_800
            }
        );
        assert_eq!(april.length(), 30 * 86_400 + 1_800);
    }

    #[test]
    fn february_has_29_days_in_a_leap_year_and_28_otherwise() {
        let utc = window(CalendarPeriod::Month, "UTC");
        let leap = utc.period_at(1_832_976_000 + 10 * 86_400).unwrap();
        assert_eq!(
            leap,
            Period {
                start: 1_832_976_000,
                end: 1_835_481_600
            }
        );
        assert_eq!(leap.length(), 29 * 86_400);
        let plain = utc.period_at(1_801_440_000 + 27 * 86_400 + 86_399).unwrap();
        assert_eq!(
            plain,
            Period {
                start: 1_801_440_000,
                end: 1_803_859_200
            }
        );
        assert_eq!(plain.length(), 28 * 86_400);
    }

    #[test]
    fn weeks_start_on_monday_local_time_even_across_a_dst_change_and_a_new_year() {
        let berlin = window(CalendarPeriod::Week, "Europe/Berlin");
        // 2026-03-29 01:30 local, the Sunday of the spring change.
        let week = berlin.period_at(1_774_744_200).unwrap();
        assert_eq!(
            week,
            Period {
                start: 1_774_220_400,
                end: 1_774_821_600
            }
        );
        assert_eq!(week.length(), 7 * 86_400 - 3_600);
        let utc = window(CalendarPeriod::Week, "UTC");
        // Thursday 2026-12-31 12:00Z: from Monday 2026-12-28 to Monday 2027-01-04.
        assert_eq!(
            utc.period_at(1_798_718_400).unwrap(),
            Period {
                start: 1_798_416_000,
                end: 1_799_020_800
            }
        );
    }

    #[test]
    fn the_first_second_of_a_period_is_in_it_and_the_last_of_the_one_before_is_not() {
        let berlin = window(CalendarPeriod::Month, "Europe/Berlin");
        let april_start = 1_774_994_400;
        assert_eq!(berlin.period_at(april_start).unwrap().start, april_start);
        assert_eq!(berlin.period_at(april_start - 1).unwrap().end, april_start);
        let p = berlin.period_at(april_start).unwrap();
        assert_eq!(p.elapsed(april_start), 0);
        assert_eq!(p.elapsed(april_start + 90), 90);
        assert_eq!(p.elapsed(p.end + 10), p.length());
    }

    #[test]
    fn an_unknown_zone_is_refused_by_name() {
        let e = CalendarWindow::new(CalendarPeriod::Month, "Mars/Olympus_Mons").unwrap_err();
        assert!(e.to_string().contains("Mars/Olympus_Mons"), "{e}");
        assert!(CalendarWindow::new(CalendarPeriod::Week, "UTC").is_ok());
    }

    #[test]
    fn openslo_start_times_must_fall_on_a_period_start() {
        assert!(check_period_start(CalendarPeriod::Month, "2022-03-01 00:00:00").is_ok());
        assert!(check_period_start(CalendarPeriod::Week, "2024-01-01 00:00:00").is_ok());
        // 2024-01-02 is a Tuesday.
        let e = check_period_start(CalendarPeriod::Week, "2024-01-02 00:00:00").unwrap_err();
        assert!(e.contains("Monday"), "{e}");
        assert!(check_period_start(CalendarPeriod::Month, "2022-01-01 12:00:00").is_err());
        assert!(check_period_start(CalendarPeriod::Month, "2022-01-15 00:00:00").is_err());
        assert!(check_period_start(CalendarPeriod::Month, "first of the month").is_err());
    }

    #[test]
    fn a_zone_without_daylight_saving_has_one_step_for_weeks() {
        let steps = window(CalendarPeriod::Week, "UTC")
            .step_table(1_735_689_600, 2_051_222_400)
            .unwrap();
        assert_eq!(steps.len(), 1, "{steps:?}");
        assert_eq!(steps[0].length, 7 * 86_400);
        let berlin = window(CalendarPeriod::Week, "Europe/Berlin")
            .step_table(1_735_689_600, 1_767_225_600)
            .unwrap();
        // 2025: the run from January, the short week of the spring change, the run after it,
        // the long week of the autumn change and the run after that.
        assert_eq!(berlin.len(), 5, "{berlin:?}");
        assert_eq!(berlin[1].length, 7 * 86_400 - 3_600);
        assert_eq!(berlin[3].length, 7 * 86_400 + 3_600);
    }

    proptest! {
        #[test]
        fn the_step_table_gives_every_period_in_its_range(
            at in 1_735_689_600i64..2_051_222_400,
            zone in prop::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago"]),
            weekly in any::<bool>(),
        ) {
            let period = if weekly { CalendarPeriod::Week } else { CalendarPeriod::Month };
            let w = window(period, zone);
            let steps = w.step_table(1_735_689_600, 2_051_222_400).unwrap();
            // As the rules compute it: the last step at or before `at`, then whole lengths.
            let step = steps.iter().rev().find(|s| s.start <= at).unwrap();
            let start = step.start + (at - step.start) / step.length * step.length;
            let expected = w.period_at(at).unwrap();
            prop_assert_eq!(Period { start, end: start + step.length }, expected);
        }

        #[test]
        fn every_instant_lies_in_exactly_one_period_and_periods_tile_time(
            at in 0i64..4_102_444_800,
            zone in prop::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "America/Santiago"]),
            weekly in any::<bool>(),
        ) {
            let period = if weekly { CalendarPeriod::Week } else { CalendarPeriod::Month };
            let w = window(period, zone);
            let p = w.period_at(at).unwrap();
            prop_assert!(p.start <= at && at < p.end, "{p:?} does not hold {at}");
            prop_assert_eq!(w.period_at(p.start).unwrap(), p);
            prop_assert_eq!(w.period_at(p.end - 1).unwrap(), p);
            prop_assert_eq!(w.period_at(p.end).unwrap().start, p.end);
            let (low, high) = if weekly { (7 * 86_400 - 7_200, 7 * 86_400 + 7_200) } else { (28 * 86_400 - 7_200, 31 * 86_400 + 7_200) };
            prop_assert!((low..=high).contains(&p.length()), "{p:?}: {} s", p.length());
        }
    }
}
