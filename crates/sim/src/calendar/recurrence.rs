//! Recurrence patterns (`recurrence{pattern, range}`) and the dates they produce.
//!
//! A series is expanded to dates here; `expand` turns dates into timed instances. Dates come
//! out in order from the range's start, which is what numbered ranges need (the n-th date is
//! the last one) and what lets callers stop at the end of a view window.

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// How the pattern repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PatternKind {
    Daily,
    Weekly,
    AbsoluteMonthly,
    RelativeMonthly,
    AbsoluteYearly,
    RelativeYearly,
}

const PATTERN_NAMES: [(PatternKind, &str); 6] = [
    (PatternKind::Daily, "daily"),
    (PatternKind::Weekly, "weekly"),
    (PatternKind::AbsoluteMonthly, "absoluteMonthly"),
    (PatternKind::RelativeMonthly, "relativeMonthly"),
    (PatternKind::AbsoluteYearly, "absoluteYearly"),
    (PatternKind::RelativeYearly, "relativeYearly"),
];

/// How the series ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RangeKind {
    EndDate,
    NoEnd,
    Numbered,
}

/// Graph's `weekIndex`.
const WEEK_INDEX: [&str; 5] = ["first", "second", "third", "fourth", "last"];

/// A series' repetition: Graph's `patternedRecurrence`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recurrence {
    pub kind: PatternKind,
    pub interval: u32,
    /// Sorted, no duplicates (weekly, relative patterns).
    pub days_of_week: Vec<Weekday>,
    /// 1-31 (absolute patterns).
    pub day_of_month: u32,
    /// 1-12 (yearly patterns).
    pub month: u32,
    /// Index into [`WEEK_INDEX`] (relative patterns).
    pub index: usize,
    pub first_day_of_week: Weekday,
    pub range: RangeKind,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub count: u32,
    pub time_zone: String,
}

/// More dates than any real series has; stops a runaway expansion.
const MAX_DATES: usize = 20_000;

fn weekday_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "monday",
        Weekday::Tue => "tuesday",
        Weekday::Wed => "wednesday",
        Weekday::Thu => "thursday",
        Weekday::Fri => "friday",
        Weekday::Sat => "saturday",
        Weekday::Sun => "sunday",
    }
}

fn parse_weekday(s: &str) -> Option<Weekday> {
    [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ]
    .into_iter()
    .find(|d| weekday_name(*d).eq_ignore_ascii_case(s))
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .map_or(28, |d| d.day())
}

/// The `index`-th (0-3, or 4 for last) `weekday` of a month.
fn nth_weekday(year: i32, month: u32, weekday: Weekday, index: usize) -> Option<NaiveDate> {
    if index == 4 {
        let last = NaiveDate::from_ymd_opt(year, month, days_in_month(year, month))?;
        let back = (last.weekday().num_days_from_monday() + 7 - weekday.num_days_from_monday()) % 7;
        return Some(last - Duration::days(back as i64));
    }
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let ahead = (weekday.num_days_from_monday() + 7 - first.weekday().num_days_from_monday()) % 7;
    let d = first + Duration::days(ahead as i64 + 7 * index as i64);
    (d.month() == month).then_some(d)
}

impl Recurrence {
    /// Parses Graph's `recurrence` object; the error names the property at fault.
    pub fn parse(v: &Value) -> Result<Recurrence, (&'static str, String)> {
        let pattern = &v["pattern"];
        let range = &v["range"];
        let text = |o: &Value, k: &str| o[k].as_str().unwrap_or_default().to_string();
        let kind_name = text(pattern, "type");
        let kind = PATTERN_NAMES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(&kind_name))
            .map(|(k, _)| *k)
            .ok_or((
                "recurrence.pattern.type",
                format!("'{kind_name}' is not a recurrence pattern type"),
            ))?;
        let interval = pattern["interval"].as_u64().unwrap_or(1).max(1) as u32;
        let mut days_of_week = Vec::new();
        for d in pattern["daysOfWeek"].as_array().into_iter().flatten() {
            let name = d.as_str().unwrap_or_default();
            days_of_week.push(parse_weekday(name).ok_or((
                "recurrence.pattern.daysOfWeek",
                format!("'{name}' is not a day of the week"),
            ))?);
        }
        days_of_week.sort_by_key(|d| d.num_days_from_monday());
        days_of_week.dedup();
        let first_day_of_week = match pattern["firstDayOfWeek"].as_str() {
            Some(s) => parse_weekday(s).ok_or((
                "recurrence.pattern.firstDayOfWeek",
                format!("'{s}' is not a day of the week"),
            ))?,
            None => Weekday::Sun,
        };
        let index_name = pattern["index"].as_str().unwrap_or("first");
        let index = WEEK_INDEX
            .iter()
            .position(|i| i.eq_ignore_ascii_case(index_name))
            .ok_or((
                "recurrence.pattern.index",
                format!("'{index_name}' is not a week index"),
            ))?;
        let day_of_month = pattern["dayOfMonth"].as_u64().unwrap_or(0) as u32;
        let month = pattern["month"].as_u64().unwrap_or(0) as u32;
        let needs_days = matches!(
            kind,
            PatternKind::Weekly | PatternKind::RelativeMonthly | PatternKind::RelativeYearly
        );
        if needs_days && days_of_week.is_empty() {
            return Err((
                "recurrence.pattern.daysOfWeek",
                format!("a {kind_name} pattern needs daysOfWeek"),
            ));
        }
        if matches!(
            kind,
            PatternKind::AbsoluteMonthly | PatternKind::AbsoluteYearly
        ) && !(1..=31).contains(&day_of_month)
        {
            return Err((
                "recurrence.pattern.dayOfMonth",
                format!("a {kind_name} pattern needs dayOfMonth 1-31"),
            ));
        }
        if matches!(
            kind,
            PatternKind::AbsoluteYearly | PatternKind::RelativeYearly
        ) && !(1..=12).contains(&month)
        {
            return Err((
                "recurrence.pattern.month",
                format!("a {kind_name} pattern needs month 1-12"),
            ));
        }
        let date = |k: &str| NaiveDate::parse_from_str(&text(range, k), "%Y-%m-%d");
        let start_date = date("startDate").map_err(|_| {
            (
                "recurrence.range.startDate",
                format!(
                    "'{}' is not a date such as 2026-01-05",
                    text(range, "startDate")
                ),
            )
        })?;
        let range_name = text(range, "type");
        let (range_kind, end_date, count) = match range_name.to_ascii_lowercase().as_str() {
            "enddate" => {
                let end = date("endDate").map_err(|_| {
                    (
                        "recurrence.range.endDate",
                        format!(
                            "'{}' is not a date such as 2026-06-01",
                            text(range, "endDate")
                        ),
                    )
                })?;
                if end < start_date {
                    return Err((
                        "recurrence.range.endDate",
                        "the range ends before it starts".into(),
                    ));
                }
                (RangeKind::EndDate, Some(end), 0)
            }
            "noend" => (RangeKind::NoEnd, None, 0),
            "numbered" => {
                let n = range["numberOfOccurrences"].as_u64().unwrap_or(0);
                if n == 0 {
                    return Err((
                        "recurrence.range.numberOfOccurrences",
                        "a numbered range needs numberOfOccurrences > 0".into(),
                    ));
                }
                (RangeKind::Numbered, None, n.min(MAX_DATES as u64) as u32)
            }
            _ => {
                return Err((
                    "recurrence.range.type",
                    format!("'{range_name}' is not a range type (endDate, noEnd, numbered)"),
                ))
            }
        };
        Ok(Recurrence {
            kind,
            interval,
            days_of_week,
            day_of_month,
            month,
            index,
            first_day_of_week,
            range: range_kind,
            start_date,
            end_date,
            count,
            time_zone: text(range, "recurrenceTimeZone"),
        })
    }

    /// Graph's JSON for this recurrence.
    pub fn to_json(&self) -> Value {
        let kind = PATTERN_NAMES
            .iter()
            .find(|(k, _)| *k == self.kind)
            .map_or("daily", |(_, n)| n);
        json!({
            "pattern": {
                "type": kind,
                "interval": self.interval,
                "month": self.month,
                "dayOfMonth": self.day_of_month,
                "daysOfWeek": self.days_of_week.iter().map(|d| weekday_name(*d)).collect::<Vec<_>>(),
                "firstDayOfWeek": weekday_name(self.first_day_of_week),
                "index": WEEK_INDEX[self.index],
            },
            "range": {
                "type": match self.range {
                    RangeKind::EndDate => "endDate",
                    RangeKind::NoEnd => "noEnd",
                    RangeKind::Numbered => "numbered",
                },
                "startDate": self.start_date.format("%Y-%m-%d").to_string(),
                "endDate": self.end_date.map_or("0001-01-01".to_string(), |d| d.format("%Y-%m-%d").to_string()),
                "recurrenceTimeZone": self.time_zone,
                "numberOfOccurrences": self.count,
            },
        })
    }

    /// Candidate dates of one period (day, week, month or year number `p` from the start), in
    /// order, before the range's start is applied.
    fn period(&self, p: i64) -> Vec<NaiveDate> {
        let step = p * self.interval as i64;
        let start = self.start_date;
        let month_of = |months: i64| {
            let total = start.year() as i64 * 12 + start.month0() as i64 + months;
            (
                (total.div_euclid(12)) as i32,
                (total.rem_euclid(12) + 1) as u32,
            )
        };
        match self.kind {
            PatternKind::Daily => vec![start + Duration::days(step)],
            PatternKind::Weekly => {
                let back = (start.weekday().num_days_from_monday() + 7
                    - self.first_day_of_week.num_days_from_monday())
                    % 7;
                let week = start - Duration::days(back as i64) + Duration::weeks(step);
                let mut days: Vec<NaiveDate> = self
                    .days_of_week
                    .iter()
                    .map(|d| {
                        let off = (d.num_days_from_monday() + 7
                            - self.first_day_of_week.num_days_from_monday())
                            % 7;
                        week + Duration::days(off as i64)
                    })
                    .collect();
                days.sort();
                days
            }
            PatternKind::AbsoluteMonthly => {
                let (y, m) = month_of(step);
                NaiveDate::from_ymd_opt(y, m, self.day_of_month.min(days_in_month(y, m)))
                    .into_iter()
                    .collect()
            }
            PatternKind::RelativeMonthly => {
                let (y, m) = month_of(step);
                let mut days: Vec<NaiveDate> = self
                    .days_of_week
                    .iter()
                    .filter_map(|d| nth_weekday(y, m, *d, self.index))
                    .collect();
                days.sort();
                days
            }
            PatternKind::AbsoluteYearly => {
                let y = start.year() + step as i32;
                NaiveDate::from_ymd_opt(
                    y,
                    self.month,
                    self.day_of_month.min(days_in_month(y, self.month)),
                )
                .into_iter()
                .collect()
            }
            PatternKind::RelativeYearly => {
                let y = start.year() + step as i32;
                let mut days: Vec<NaiveDate> = self
                    .days_of_week
                    .iter()
                    .filter_map(|d| nth_weekday(y, self.month, *d, self.index))
                    .collect();
                days.sort();
                days
            }
        }
    }

    /// The series' dates in order, up to and including `until` (and the range's own end).
    pub fn dates_until(&self, until: NaiveDate) -> Vec<NaiveDate> {
        let last = match self.range {
            RangeKind::EndDate => self.end_date.map_or(until, |e| e.min(until)),
            _ => until,
        };
        let max = match self.range {
            RangeKind::Numbered => self.count as usize,
            _ => MAX_DATES,
        };
        let mut out = Vec::new();
        let mut p = 0;
        'periods: loop {
            let candidates = self.period(p);
            p += 1;
            let first = candidates.first().copied();
            for d in candidates {
                if d < self.start_date {
                    continue;
                }
                if d > last || out.len() >= max {
                    break 'periods;
                }
                out.push(d);
            }
            // A period with no candidate (the 31st in a short month is clamped, the fifth
            // Monday may not exist) must not stop the walk, unless it is already past the end.
            if first.is_some_and(|f| f > last) || p > MAX_DATES as i64 {
                break;
            }
        }
        out
    }

    /// True when `date` is one of the series' dates.
    pub fn has_date(&self, date: NaiveDate) -> bool {
        self.dates_until(date).last() == Some(&date)
    }

    /// The series' last date, if it has one.
    pub fn last_date(&self) -> Option<NaiveDate> {
        match self.range {
            RangeKind::NoEnd => None,
            RangeKind::EndDate => self.end_date,
            RangeKind::Numbered => self.dates_until(NaiveDate::MAX).last().copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn rec(pattern: Value, range: Value) -> Recurrence {
        Recurrence::parse(&json!({"pattern": pattern, "range": range})).unwrap()
    }

    fn strs(dates: &[NaiveDate]) -> Vec<String> {
        dates.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn weekly_on_two_days_every_other_week() {
        let r = rec(
            json!({"type": "weekly", "interval": 2, "daysOfWeek": ["thursday", "monday"], "firstDayOfWeek": "sunday"}),
            json!({"type": "endDate", "startDate": "2026-01-05", "endDate": "2026-02-05"}),
        );
        assert_eq!(
            strs(&r.dates_until(d("2030-01-01"))),
            [
                "2026-01-05",
                "2026-01-08",
                "2026-01-19",
                "2026-01-22",
                "2026-02-02",
                "2026-02-05"
            ]
        );
        assert!(r.has_date(d("2026-01-19")));
        assert!(!r.has_date(d("2026-01-12")));
    }

    #[test]
    fn numbered_daily_stops_after_n() {
        let r = rec(
            json!({"type": "daily", "interval": 3}),
            json!({"type": "numbered", "startDate": "2026-03-30", "numberOfOccurrences": 3}),
        );
        assert_eq!(
            strs(&r.dates_until(NaiveDate::MAX)),
            ["2026-03-30", "2026-04-02", "2026-04-05"]
        );
        assert_eq!(r.last_date(), Some(d("2026-04-05")));
    }

    #[test]
    fn absolute_monthly_clamps_to_short_months() {
        let r = rec(
            json!({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31}),
            json!({"type": "noEnd", "startDate": "2026-01-31"}),
        );
        assert_eq!(
            strs(&r.dates_until(d("2026-04-30"))),
            ["2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"]
        );
        assert_eq!(r.last_date(), None);
    }

    #[test]
    fn relative_monthly_last_friday_and_second_tuesday() {
        let last_friday = rec(
            json!({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["friday"], "index": "last"}),
            json!({"type": "noEnd", "startDate": "2026-01-01"}),
        );
        assert_eq!(
            strs(&last_friday.dates_until(d("2026-03-31"))),
            ["2026-01-30", "2026-02-27", "2026-03-27"]
        );
        let second_tuesday = rec(
            json!({"type": "relativeMonthly", "interval": 2, "daysOfWeek": ["tuesday"], "index": "second"}),
            json!({"type": "numbered", "startDate": "2026-01-01", "numberOfOccurrences": 2}),
        );
        assert_eq!(
            strs(&second_tuesday.dates_until(NaiveDate::MAX)),
            ["2026-01-13", "2026-03-10"]
        );
    }

    #[test]
    fn yearly_patterns_and_leap_days() {
        let leap = rec(
            json!({"type": "absoluteYearly", "interval": 1, "month": 2, "dayOfMonth": 29}),
            json!({"type": "numbered", "startDate": "2028-02-29", "numberOfOccurrences": 2}),
        );
        assert_eq!(
            strs(&leap.dates_until(NaiveDate::MAX)),
            ["2028-02-29", "2029-02-28"]
        );
        let thanksgiving = rec(
            json!({"type": "relativeYearly", "interval": 1, "month": 11, "daysOfWeek": ["thursday"], "index": "fourth"}),
            json!({"type": "endDate", "startDate": "2026-01-01", "endDate": "2027-12-31"}),
        );
        assert_eq!(
            strs(&thanksgiving.dates_until(NaiveDate::MAX)),
            ["2026-11-26", "2027-11-25"]
        );
    }

    #[test]
    fn bad_patterns_name_their_property() {
        let err = Recurrence::parse(&json!({"pattern": {"type": "weekly"}, "range": {"type": "noEnd", "startDate": "2026-01-01"}}))
            .unwrap_err();
        assert_eq!(err.0, "recurrence.pattern.daysOfWeek");
        let err =
            Recurrence::parse(&json!({"pattern": {"type": "hourly"}, "range": {}})).unwrap_err();
        assert_eq!(err.0, "recurrence.pattern.type");
    }

    #[test]
    fn json_round_trips() {
        let r = rec(
            json!({"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]}),
            json!({"type": "endDate", "startDate": "2026-01-05", "endDate": "2026-03-02", "recurrenceTimeZone": "UTC"}),
        );
        assert_eq!(Recurrence::parse(&r.to_json()).unwrap(), r);
    }
}
