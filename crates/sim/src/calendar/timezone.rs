//! Time zones as Graph names them: Windows names ("Pacific Standard Time") and IANA names
//! ("America/Los_Angeles"), both accepted wherever a client names a zone.
//!
//! Exchange keeps Windows names; clients send either kind in event bodies and in
//! `Prefer: outlook.timezone`. The table is CLDR's `windowsZones` (territory 001), so a zone
//! converts both ways and the tz database (chrono-tz) does the arithmetic, DST included.

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Windows zone name -> IANA zone, as CLDR maps them for the world territory.
const WINDOWS_ZONES: [(&str, &str); 141] = [
    ("Dateline Standard Time", "Etc/GMT+12"),
    ("UTC-11", "Etc/GMT+11"),
    ("Aleutian Standard Time", "America/Adak"),
    ("Hawaiian Standard Time", "Pacific/Honolulu"),
    ("Marquesas Standard Time", "Pacific/Marquesas"),
    ("Alaskan Standard Time", "America/Anchorage"),
    ("UTC-09", "Etc/GMT+9"),
    ("Pacific Standard Time (Mexico)", "America/Tijuana"),
    ("UTC-08", "Etc/GMT+8"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("US Mountain Standard Time", "America/Phoenix"),
    ("Mountain Standard Time (Mexico)", "America/Mazatlan"),
    ("Mountain Standard Time", "America/Denver"),
    ("Yukon Standard Time", "America/Whitehorse"),
    ("Central America Standard Time", "America/Guatemala"),
    ("Central Standard Time", "America/Chicago"),
    ("Easter Island Standard Time", "Pacific/Easter"),
    ("Central Standard Time (Mexico)", "America/Mexico_City"),
    ("Canada Central Standard Time", "America/Regina"),
    ("SA Pacific Standard Time", "America/Bogota"),
    ("Eastern Standard Time (Mexico)", "America/Cancun"),
    ("Eastern Standard Time", "America/New_York"),
    ("Haiti Standard Time", "America/Port-au-Prince"),
    ("Cuba Standard Time", "America/Havana"),
    ("US Eastern Standard Time", "America/Indiana/Indianapolis"),
    ("Turks And Caicos Standard Time", "America/Grand_Turk"),
    ("Paraguay Standard Time", "America/Asuncion"),
    ("Atlantic Standard Time", "America/Halifax"),
    ("Venezuela Standard Time", "America/Caracas"),
    ("Central Brazilian Standard Time", "America/Cuiaba"),
    ("SA Western Standard Time", "America/La_Paz"),
    ("Pacific SA Standard Time", "America/Santiago"),
    ("Newfoundland Standard Time", "America/St_Johns"),
    ("Tocantins Standard Time", "America/Araguaina"),
    ("E. South America Standard Time", "America/Sao_Paulo"),
    ("SA Eastern Standard Time", "America/Cayenne"),
    ("Argentina Standard Time", "America/Argentina/Buenos_Aires"),
    ("Greenland Standard Time", "America/Nuuk"),
    ("Montevideo Standard Time", "America/Montevideo"),
    ("Magallanes Standard Time", "America/Punta_Arenas"),
    ("Saint Pierre Standard Time", "America/Miquelon"),
    ("Bahia Standard Time", "America/Bahia"),
    ("UTC-02", "Etc/GMT+2"),
    ("Mid-Atlantic Standard Time", "Etc/GMT+2"),
    ("Azores Standard Time", "Atlantic/Azores"),
    ("Cape Verde Standard Time", "Atlantic/Cape_Verde"),
    ("UTC", "Etc/UTC"),
    ("GMT Standard Time", "Europe/London"),
    ("Greenwich Standard Time", "Atlantic/Reykjavik"),
    ("Sao Tome Standard Time", "Africa/Sao_Tome"),
    ("Morocco Standard Time", "Africa/Casablanca"),
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Central Europe Standard Time", "Europe/Budapest"),
    ("Romance Standard Time", "Europe/Paris"),
    ("Central European Standard Time", "Europe/Warsaw"),
    ("W. Central Africa Standard Time", "Africa/Lagos"),
    ("Jordan Standard Time", "Asia/Amman"),
    ("GTB Standard Time", "Europe/Bucharest"),
    ("Middle East Standard Time", "Asia/Beirut"),
    ("Egypt Standard Time", "Africa/Cairo"),
    ("E. Europe Standard Time", "Europe/Chisinau"),
    ("Syria Standard Time", "Asia/Damascus"),
    ("West Bank Standard Time", "Asia/Hebron"),
    ("South Africa Standard Time", "Africa/Johannesburg"),
    ("FLE Standard Time", "Europe/Kyiv"),
    ("Israel Standard Time", "Asia/Jerusalem"),
    ("South Sudan Standard Time", "Africa/Juba"),
    ("Kaliningrad Standard Time", "Europe/Kaliningrad"),
    ("Sudan Standard Time", "Africa/Khartoum"),
    ("Libya Standard Time", "Africa/Tripoli"),
    ("Namibia Standard Time", "Africa/Windhoek"),
    ("Arabic Standard Time", "Asia/Baghdad"),
    ("Turkey Standard Time", "Europe/Istanbul"),
    ("Arab Standard Time", "Asia/Riyadh"),
    ("Belarus Standard Time", "Europe/Minsk"),
    ("Russian Standard Time", "Europe/Moscow"),
    ("E. Africa Standard Time", "Africa/Nairobi"),
    ("Volgograd Standard Time", "Europe/Volgograd"),
    ("Iran Standard Time", "Asia/Tehran"),
    ("Arabian Standard Time", "Asia/Dubai"),
    ("Astrakhan Standard Time", "Europe/Astrakhan"),
    ("Azerbaijan Standard Time", "Asia/Baku"),
    ("Russia Time Zone 3", "Europe/Samara"),
    ("Mauritius Standard Time", "Indian/Mauritius"),
    ("Saratov Standard Time", "Europe/Saratov"),
    ("Georgian Standard Time", "Asia/Tbilisi"),
    ("Caucasus Standard Time", "Asia/Yerevan"),
    ("Afghanistan Standard Time", "Asia/Kabul"),
    ("West Asia Standard Time", "Asia/Tashkent"),
    ("Ekaterinburg Standard Time", "Asia/Yekaterinburg"),
    ("Pakistan Standard Time", "Asia/Karachi"),
    ("Qyzylorda Standard Time", "Asia/Qyzylorda"),
    ("India Standard Time", "Asia/Kolkata"),
    ("Sri Lanka Standard Time", "Asia/Colombo"),
    ("Nepal Standard Time", "Asia/Kathmandu"),
    ("Central Asia Standard Time", "Asia/Almaty"),
    ("Bangladesh Standard Time", "Asia/Dhaka"),
    ("Omsk Standard Time", "Asia/Omsk"),
    ("Myanmar Standard Time", "Asia/Yangon"),
    ("SE Asia Standard Time", "Asia/Bangkok"),
    ("Altai Standard Time", "Asia/Barnaul"),
    ("W. Mongolia Standard Time", "Asia/Hovd"),
    ("North Asia Standard Time", "Asia/Krasnoyarsk"),
    ("N. Central Asia Standard Time", "Asia/Novosibirsk"),
    ("Tomsk Standard Time", "Asia/Tomsk"),
    ("China Standard Time", "Asia/Shanghai"),
    ("North Asia East Standard Time", "Asia/Irkutsk"),
    ("Singapore Standard Time", "Asia/Singapore"),
    ("W. Australia Standard Time", "Australia/Perth"),
    ("Taipei Standard Time", "Asia/Taipei"),
    ("Ulaanbaatar Standard Time", "Asia/Ulaanbaatar"),
    ("Aus Central W. Standard Time", "Australia/Eucla"),
    ("Transbaikal Standard Time", "Asia/Chita"),
    ("Tokyo Standard Time", "Asia/Tokyo"),
    ("North Korea Standard Time", "Asia/Pyongyang"),
    ("Korea Standard Time", "Asia/Seoul"),
    ("Yakutsk Standard Time", "Asia/Yakutsk"),
    ("Cen. Australia Standard Time", "Australia/Adelaide"),
    ("AUS Central Standard Time", "Australia/Darwin"),
    ("E. Australia Standard Time", "Australia/Brisbane"),
    ("AUS Eastern Standard Time", "Australia/Sydney"),
    ("West Pacific Standard Time", "Pacific/Port_Moresby"),
    ("Tasmania Standard Time", "Australia/Hobart"),
    ("Vladivostok Standard Time", "Asia/Vladivostok"),
    ("Lord Howe Standard Time", "Australia/Lord_Howe"),
    ("Bougainville Standard Time", "Pacific/Bougainville"),
    ("Russia Time Zone 10", "Asia/Srednekolymsk"),
    ("Magadan Standard Time", "Asia/Magadan"),
    ("Norfolk Standard Time", "Pacific/Norfolk"),
    ("Sakhalin Standard Time", "Asia/Sakhalin"),
    ("Central Pacific Standard Time", "Pacific/Guadalcanal"),
    ("Russia Time Zone 11", "Asia/Kamchatka"),
    ("New Zealand Standard Time", "Pacific/Auckland"),
    ("UTC+12", "Etc/GMT-12"),
    ("Fiji Standard Time", "Pacific/Fiji"),
    ("Kamchatka Standard Time", "Asia/Kamchatka"),
    ("Chatham Islands Standard Time", "Pacific/Chatham"),
    ("UTC+13", "Etc/GMT-13"),
    ("Tonga Standard Time", "Pacific/Tongatapu"),
    ("Samoa Standard Time", "Pacific/Apia"),
    ("Line Islands Standard Time", "Pacific/Kiritimati"),
];

/// A zone as a client named it, with the tz database zone that does its arithmetic.
///
/// The name is kept as given because Graph echoes it back: an event created in
/// "Pacific Standard Time" is rendered with that `timeZone` under `Prefer: outlook.timezone`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// The name as the client gave it (Windows or IANA), echoed back in renderings.
    pub name: String,
    /// The tz database zone that does the arithmetic.
    pub tz: Tz,
}

impl Zone {
    /// UTC, Graph's default zone for rendering.
    pub fn utc() -> Zone {
        Zone {
            name: "UTC".into(),
            tz: Tz::UTC,
        }
    }

    /// Resolves a Windows or IANA name (Windows names case-insensitively, as Exchange does).
    pub fn parse(name: &str) -> Option<Zone> {
        let trimmed = name.trim();
        let tz = if trimmed.eq_ignore_ascii_case("UTC")
            || trimmed.eq_ignore_ascii_case("tzone://Microsoft/Utc")
        {
            Tz::UTC
        } else if let Some((_, iana)) = WINDOWS_ZONES
            .iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(trimmed))
        {
            iana.parse().ok()?
        } else {
            trimmed.parse().ok()?
        };
        Some(Zone {
            name: trimmed.to_string(),
            tz,
        })
    }

    /// The Windows name of this zone, which is how Exchange reports `originalStartTimeZone`.
    pub fn windows_name(&self) -> String {
        if self.tz == Tz::UTC || self.tz == Tz::Etc__UTC {
            return "UTC".into();
        }
        if WINDOWS_ZONES
            .iter()
            .any(|(w, _)| w.eq_ignore_ascii_case(&self.name))
        {
            return self.name.clone();
        }
        WINDOWS_ZONES
            .iter()
            .find(|(_, iana)| *iana == self.tz.name())
            .map(|(w, _)| w.to_string())
            .unwrap_or_else(|| self.name.clone())
    }

    /// The instant a wall-clock time in this zone names. A time skipped by a DST change moves
    /// forward by the gap and a repeated one takes its first instant, as Exchange does.
    pub fn to_utc(&self, local: NaiveDateTime) -> DateTime<Utc> {
        let mut probe = local;
        for _ in 0..4 {
            match self.tz.from_local_datetime(&probe) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                    return t.with_timezone(&Utc)
                }
                LocalResult::None => probe += chrono::Duration::minutes(30),
            }
        }
        Utc.from_utc_datetime(&local)
    }

    /// The wall-clock time of an instant in this zone.
    pub fn local(&self, at: DateTime<Utc>) -> NaiveDateTime {
        at.with_timezone(&self.tz).naive_local()
    }
}

/// Graph's `dateTime` text: seven fractional digits and no offset.
pub fn graph_date_time(local: NaiveDateTime) -> String {
    format!("{}.0000000", local.format("%Y-%m-%dT%H:%M:%S"))
}

/// Parses a `dateTime` as clients send it (`2026-12-09T20:30:00`, with or without fractions;
/// a trailing `Z` or offset is dropped, the `timeZone` next to it is what counts).
pub fn parse_date_time(text: &str) -> Option<NaiveDateTime> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.naive_local());
    }
    let t = t.trim_end_matches('Z');
    NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M"))
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .ok()
                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, 0)
            .unwrap()
    }

    #[test]
    fn every_windows_zone_maps_to_a_tz_database_zone() {
        for (windows, iana) in WINDOWS_ZONES {
            assert!(iana.parse::<Tz>().is_ok(), "{windows} -> {iana}");
            assert!(Zone::parse(windows).is_some(), "{windows}");
        }
    }

    #[test]
    fn windows_and_iana_names_convert_both_ways() {
        let pacific = Zone::parse("pacific standard time").unwrap();
        assert_eq!(pacific.tz, chrono_tz::America::Los_Angeles);
        let iana = Zone::parse("America/Los_Angeles").unwrap();
        assert_eq!(iana.windows_name(), "Pacific Standard Time");
        assert_eq!(
            Zone::parse("Europe/London").unwrap().windows_name(),
            "GMT Standard Time"
        );
        assert_eq!(Zone::parse("UTC").unwrap().windows_name(), "UTC");
        assert!(Zone::parse("Mars/Olympus_Mons").is_none());
    }

    #[test]
    fn wall_clock_follows_daylight_saving() {
        let pacific = Zone::parse("Pacific Standard Time").unwrap();
        // 09:00 in January is PST (UTC-8), in July PDT (UTC-7).
        assert_eq!(
            pacific.to_utc(at(2026, 1, 15, 9, 0)).to_rfc3339(),
            "2026-01-15T17:00:00+00:00"
        );
        assert_eq!(
            pacific.to_utc(at(2026, 7, 15, 9, 0)).to_rfc3339(),
            "2026-07-15T16:00:00+00:00"
        );
        // 02:30 on 8 March 2026 does not exist in Los Angeles: it moves forward.
        assert_eq!(
            pacific.to_utc(at(2026, 3, 8, 2, 30)).to_rfc3339(),
            "2026-03-08T10:00:00+00:00"
        );
        let back = pacific.local(pacific.to_utc(at(2026, 7, 15, 9, 0)));
        assert_eq!(back, at(2026, 7, 15, 9, 0));
    }

    #[test]
    fn graph_date_times_round_trip() {
        let t = at(2026, 12, 9, 20, 30);
        assert_eq!(graph_date_time(t), "2026-12-09T20:30:00.0000000");
        assert_eq!(parse_date_time("2026-12-09T20:30:00.0000000"), Some(t));
        assert_eq!(parse_date_time("2026-12-09T20:30:00"), Some(t));
        assert_eq!(parse_date_time("2026-12-09T20:30:00Z"), Some(t));
        assert_eq!(parse_date_time("2026-12-09T20:30"), Some(t));
        assert_eq!(parse_date_time("9 Dec"), None);
    }
}
