//! Which backups a retention policy keeps: the newest `last`, and the newest of each of the most
//! recent `daily` days, `weekly` ISO weeks and `monthly` months that have a backup (the scheme of
//! restic and borg). A backup kept by any rule is kept.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Utc};

/// The period a time falls in: `(year, day)`, `(ISO year, week)` or `(year, month)`.
type PeriodOf = fn(&DateTime<Utc>) -> (i32, u32);

/// How many of each to keep; 0 keeps none by that rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// The newest backups.
    pub last: u32,
    /// Days.
    pub daily: u32,
    /// ISO weeks.
    pub weekly: u32,
    /// Months.
    pub monthly: u32,
}

impl Retention {
    /// Whether it keeps nothing at all (refused: prune would delete every backup but one).
    pub fn keeps_nothing(&self) -> bool {
        self.last == 0 && self.daily == 0 && self.weekly == 0 && self.monthly == 0
    }

    /// The indexes into `created` (any order) of the backups to keep.
    pub fn keep(&self, created: &[DateTime<Utc>]) -> BTreeSet<usize> {
        let mut newest_first: Vec<usize> = (0..created.len()).collect();
        newest_first.sort_by(|a, b| created[*b].cmp(&created[*a]));
        let mut kept: BTreeSet<usize> = newest_first.iter().take(self.last as usize).copied().collect();
        let periods: [(u32, PeriodOf); 3] = [
            (self.daily, |t| (t.year(), t.ordinal())),
            (self.weekly, |t| (t.iso_week().year(), t.iso_week().week())),
            (self.monthly, |t| (t.year(), t.month())),
        ];
        for (count, period_of) in periods {
            let mut seen = BTreeSet::new();
            for &index in &newest_first {
                if seen.len() >= count as usize {
                    break;
                }
                // The first backup met in a period is its newest.
                if seen.insert(period_of(&created[index])) {
                    kept.insert(index);
                }
            }
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
    }

    #[test]
    fn keeps_the_newest_of_each_period() {
        // Two backups a day for ten days (Nov 1–10, 2026).
        let created: Vec<_> = (1..=10).flat_map(|day| [at(day, 1), at(day, 13)]).collect();
        let keep = |retention: Retention| -> Vec<DateTime<Utc>> {
            let mut kept: Vec<_> = retention.keep(&created).into_iter().map(|i| created[i]).collect();
            kept.sort();
            kept
        };
        assert_eq!(keep(Retention { last: 3, ..Retention::default() }), vec![at(9, 13), at(10, 1), at(10, 13)]);
        assert_eq!(keep(Retention { daily: 2, ..Retention::default() }), vec![at(9, 13), at(10, 13)]);
        // Nov 2 is a Monday: ISO weeks Oct 26–Nov 1, Nov 2–8, Nov 9–15.
        assert_eq!(keep(Retention { weekly: 5, ..Retention::default() }), vec![at(1, 13), at(8, 13), at(10, 13)]);
        assert_eq!(keep(Retention { monthly: 1, last: 1, ..Retention::default() }), vec![at(10, 13)]);
        assert!(keep(Retention::default()).is_empty());
    }
}
