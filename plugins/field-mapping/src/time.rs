//! RFC 3339 arithmetic without a date library (keeps the component small): parse to Unix
//! seconds, subtract, print back in UTC.

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

fn num(s: &str, at: usize, len: usize) -> Result<i64, String> {
    s.get(at..at + len)
        .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| "not an RFC 3339 date-time".to_string())
}

/// Unix seconds of `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`; fractions are dropped.
pub fn parse(s: &str) -> Result<i64, String> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err("not an RFC 3339 date-time".into());
    }
    let (y, mo, d) = (num(s, 0, 4)?, num(s, 5, 2)?, num(s, 8, 2)?);
    let (h, mi, sec) = (num(s, 11, 2)?, num(s, 14, 2)?, num(s, 17, 2)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return Err("date-time field out of range".into());
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() => {
            let off = num(s, i + 1, 2)? * 3600 + num(s, i + 4, 2)? * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return Err("missing or malformed time zone offset".into()),
    };
    Ok(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// The same instant in UTC, whole seconds.
pub fn normalize(s: &str) -> Result<String, String> {
    parse(s).map(format)
}

/// Reminder date/time <- start minus reminderMinutesBeforeStart.
pub fn minus_minutes(start: &str, minutes: u32) -> Result<String, String> {
    parse(start).map(|t| format(t - i64::from(minutes) * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(
            normalize("2026-03-01T00:10:00.1234567Z").unwrap(),
            "2026-03-01T00:10:00Z"
        );
        assert_eq!(
            minus_minutes("2026-03-01T00:10:00Z", 15).unwrap(),
            "2026-02-28T23:55:00Z"
        );
        assert_eq!(
            normalize("2026-01-01T01:00:00+02:00").unwrap(),
            "2025-12-31T23:00:00Z"
        );
        assert!(parse("2026-01-01").is_err());
    }
}
