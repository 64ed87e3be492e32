//! "Recurring in M365" (C8): a series' Graph `recurrence` (pattern and range) as the readable
//! English a CRM user sees, such as "Every 2 weeks on Monday and Wednesday, until 30 June
//! 2027", "Every day, 10 times" or "Monthly on the second Tuesday".
//!
//! The pull renders each series master's pattern once, and the text is what the mapping
//! plugin receives as the event's `recurrence` and what `event_series.recurrence` holds; the
//! raw JSON is kept beside it (`event_series.pattern`) for code that needs the pattern itself.
//! A pattern of a kind Graph may add later is not guessed at: it is named as Graph names it.

use chrono::NaiveDate;
use serde_json::Value;

/// Graph's days of the week, in the order English lists them (Monday first).
const DAYS: [(&str, &str); 7] = [
    ("monday", "Monday"),
    ("tuesday", "Tuesday"),
    ("wednesday", "Wednesday"),
    ("thursday", "Thursday"),
    ("friday", "Friday"),
    ("saturday", "Saturday"),
    ("sunday", "Sunday"),
];

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// "A", "A and B", "A, B and C".
fn and_list(items: &[&str], last_word: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} {last_word} {last}", init.join(", ")),
    }
}

/// The pattern's days of the week, Monday first, each once; unknown names are kept as given.
fn days(pattern: &Value) -> Vec<String> {
    let given: Vec<String> = pattern["daysOfWeek"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|d| d.as_str().map(|s| s.to_ascii_lowercase()))
        .collect();
    let mut out: Vec<String> = DAYS
        .iter()
        .filter(|(key, _)| given.iter().any(|g| g == key))
        .map(|(_, name)| name.to_string())
        .collect();
    for g in &given {
        if !DAYS.iter().any(|(key, _)| key == g) && !out.contains(g) {
            out.push(g.clone());
        }
    }
    out
}

/// "every day" / "every 3 days": `unit` singular, with its plural.
fn every(interval: u64, unit: &str, units: &str) -> String {
    if interval <= 1 {
        format!("Every {unit}")
    } else {
        format!("Every {interval} {units}")
    }
}

fn month_name(pattern: &Value) -> Option<&'static str> {
    let m = pattern["month"].as_u64()?;
    MONTHS.get((m as usize).checked_sub(1)?).copied()
}

/// Graph's `index` of a relative pattern as a word: "first" ... "fourth", "last".
fn index_word(pattern: &Value) -> &str {
    pattern["index"].as_str().unwrap_or("first")
}

/// "the second Tuesday", "the last Saturday or Sunday".
fn relative_day(pattern: &Value) -> String {
    let days = days(pattern);
    let names: Vec<&str> = days.iter().map(String::as_str).collect();
    let day = if names.is_empty() {
        "day".to_string()
    } else {
        and_list(&names, "or")
    };
    format!("the {} {day}", index_word(pattern))
}

/// "30 June 2027" for a Graph date (`YYYY-MM-DD`), or the text as given.
fn long_date(text: &str) -> String {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| d.format("%-d %B %Y").to_string())
        .unwrap_or_else(|_| text.to_string())
}

/// The pattern half: how often and on which days.
fn pattern_text(pattern: &Value) -> String {
    let interval = pattern["interval"].as_u64().unwrap_or(1);
    let kind = pattern["type"].as_str().unwrap_or_default();
    match kind {
        "daily" => every(interval, "day", "days"),
        "weekly" => {
            let days = days(pattern);
            let names: Vec<&str> = days.iter().map(String::as_str).collect();
            let base = every(interval, "week", "weeks");
            if names.is_empty() {
                base
            } else {
                format!("{base} on {}", and_list(&names, "and"))
            }
        }
        "absoluteMonthly" => {
            let base = if interval <= 1 {
                "Monthly".to_string()
            } else {
                every(interval, "month", "months")
            };
            match pattern["dayOfMonth"].as_u64() {
                Some(d) => format!("{base} on day {d}"),
                None => base,
            }
        }
        "relativeMonthly" => {
            let base = if interval <= 1 {
                "Monthly".to_string()
            } else {
                every(interval, "month", "months")
            };
            format!("{base} on {}", relative_day(pattern))
        }
        "absoluteYearly" => {
            let base = every(interval, "year", "years");
            match (pattern["dayOfMonth"].as_u64(), month_name(pattern)) {
                (Some(d), Some(m)) => format!("{base} on {d} {m}"),
                (None, Some(m)) => format!("{base} in {m}"),
                _ => base,
            }
        }
        "relativeYearly" => {
            let base = every(interval, "year", "years");
            match month_name(pattern) {
                Some(m) => format!("{base} on {} of {m}", relative_day(pattern)),
                None => format!("{base} on {}", relative_day(pattern)),
            }
        }
        "" => "Recurring".to_string(),
        other => format!("Recurring ({other} pattern)"),
    }
}

/// The range half: ", until 30 June 2027", ", 10 times", or nothing for no end.
fn range_text(range: &Value) -> String {
    match range["type"].as_str().unwrap_or_default() {
        "endDate" => match range["endDate"].as_str().filter(|d| !d.is_empty()) {
            Some(d) => format!(", until {}", long_date(d)),
            None => String::new(),
        },
        "numbered" => match range["numberOfOccurrences"].as_u64() {
            Some(1) => ", once".to_string(),
            Some(n) => format!(", {n} times"),
            None => String::new(),
        },
        _ => String::new(),
    }
}

/// A Graph `recurrence` object as readable English, or `None` when `recurrence` is not an
/// object (the event does not recur).
pub fn describe(recurrence: &Value) -> Option<String> {
    if !recurrence.is_object() {
        return None;
    }
    Some(format!(
        "{}{}",
        pattern_text(&recurrence["pattern"]),
        range_text(&recurrence["range"])
    ))
}

/// The text a stored "Recurring in M365" value is shown as: a raw Graph JSON pattern (as
/// events pulled before the text existed still hold) is rendered; readable text is kept.
pub fn readable(stored: &str) -> String {
    if stored.trim_start().starts_with('{') {
        if let Some(text) = serde_json::from_str::<Value>(stored)
            .ok()
            .and_then(|v| describe(&v))
        {
            return text;
        }
    }
    stored.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(v: Value) -> String {
        describe(&v).unwrap()
    }

    #[test]
    fn daily_every_day_and_every_n_days_with_each_range() {
        assert_eq!(
            text(json!({"pattern": {"type": "daily", "interval": 1},
                        "range": {"type": "numbered", "startDate": "2027-01-04", "numberOfOccurrences": 10}})),
            "Every day, 10 times"
        );
        assert_eq!(
            text(json!({"pattern": {"type": "daily", "interval": 3},
                        "range": {"type": "noEnd", "startDate": "2027-01-04"}})),
            "Every 3 days"
        );
        assert_eq!(
            text(json!({"pattern": {"type": "daily", "interval": 1},
                        "range": {"type": "numbered", "numberOfOccurrences": 1}})),
            "Every day, once"
        );
    }

    #[test]
    fn weekly_lists_its_days_monday_first() {
        assert_eq!(
            text(
                json!({"pattern": {"type": "weekly", "interval": 2, "daysOfWeek": ["wednesday", "monday"], "firstDayOfWeek": "sunday"},
                        "range": {"type": "endDate", "startDate": "2027-01-04", "endDate": "2027-06-30"}})
            ),
            "Every 2 weeks on Monday and Wednesday, until 30 June 2027"
        );
        assert_eq!(
            text(
                json!({"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["Friday", "monday", "wednesday"]},
                        "range": {"type": "noEnd"}})
            ),
            "Every week on Monday, Wednesday and Friday"
        );
        assert_eq!(
            text(json!({"pattern": {"type": "weekly", "interval": 1}})),
            "Every week"
        );
    }

    #[test]
    fn monthly_absolute_and_relative() {
        assert_eq!(
            text(
                json!({"pattern": {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 15},
                        "range": {"type": "noEnd"}})
            ),
            "Monthly on day 15"
        );
        assert_eq!(
            text(
                json!({"pattern": {"type": "absoluteMonthly", "interval": 3, "dayOfMonth": 1},
                        "range": {"type": "numbered", "numberOfOccurrences": 4}})
            ),
            "Every 3 months on day 1, 4 times"
        );
        assert_eq!(
            text(
                json!({"pattern": {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["tuesday"], "index": "second"},
                        "range": {"type": "noEnd"}})
            ),
            "Monthly on the second Tuesday"
        );
        assert_eq!(
            text(
                json!({"pattern": {"type": "relativeMonthly", "interval": 2, "daysOfWeek": ["sunday", "saturday"], "index": "last"},
                        "range": {"type": "endDate", "endDate": "2028-01-01"}})
            ),
            "Every 2 months on the last Saturday or Sunday, until 1 January 2028"
        );
    }

    #[test]
    fn yearly_absolute_and_relative() {
        assert_eq!(
            text(
                json!({"pattern": {"type": "absoluteYearly", "interval": 1, "dayOfMonth": 15, "month": 3},
                        "range": {"type": "noEnd"}})
            ),
            "Every year on 15 March"
        );
        assert_eq!(
            text(
                json!({"pattern": {"type": "absoluteYearly", "interval": 2, "dayOfMonth": 29, "month": 2},
                        "range": {"type": "numbered", "numberOfOccurrences": 5}})
            ),
            "Every 2 years on 29 February, 5 times"
        );
        assert_eq!(
            text(
                json!({"pattern": {"type": "relativeYearly", "interval": 1, "daysOfWeek": ["thursday"], "index": "fourth", "month": 11},
                        "range": {"type": "noEnd"}})
            ),
            "Every year on the fourth Thursday of November"
        );
    }

    #[test]
    fn what_is_not_a_pattern_is_not_guessed() {
        assert_eq!(describe(&Value::Null), None);
        assert_eq!(
            text(json!({"pattern": {"type": "hourly", "interval": 1}})),
            "Recurring (hourly pattern)"
        );
        assert_eq!(text(json!({})), "Recurring");
        // An end date Graph did not give as a date is shown as given.
        assert_eq!(
            text(
                json!({"pattern": {"type": "daily"}, "range": {"type": "endDate", "endDate": "soon"}})
            ),
            "Every day, until soon"
        );
    }

    #[test]
    fn stored_json_reads_as_text_and_text_stays() {
        assert_eq!(
            readable(r#"{"pattern":{"type":"weekly","interval":1,"daysOfWeek":["monday"]}}"#),
            "Every week on Monday"
        );
        assert_eq!(readable("Every day, 10 times"), "Every day, 10 times");
        assert_eq!(readable("{not json"), "{not json");
    }
}
