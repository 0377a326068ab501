//! Timestamps in the formats log sources write: epoch seconds or
//! milliseconds, RFC 3339, strftime patterns (`%b %d %Y %H:%M:%S`) and
//! FlowLink's token style (`mmm dd yyyy HH:MM:SS`). A pattern is compiled
//! once, at `open`, into a list of items matched left to right.

use flowlink_plugin_sdk::text::shorten;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    Year4,
    Year2,
    Month,
    MonthName,
    Day,
    Hour,
    Hour12,
    AmPm,
    Minute,
    Second,
    /// `.123`, `,123456`: fraction of a second, any number of digits.
    Fraction,
    /// `Z`, `+02:00`, `-0500`.
    Zone,
    EpochSeconds,
    EpochMillis,
    /// One or more spaces (a single space in the pattern).
    Space,
    Literal(char),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampFormat {
    /// Digits: seconds, or milliseconds when 13 or more; else RFC 3339.
    Auto,
    Pattern {
        items: Vec<Item>,
        /// Offset applied when the text has no zone, seconds east of UTC.
        utc_offset_s: i64,
    },
}

impl TimestampFormat {
    /// `format` as written in the config; `timezone` is `UTC`, `Z` or
    /// `+hh:mm` for texts without a zone.
    pub fn compile(format: Option<&str>, timezone: Option<&str>) -> Result<Self, String> {
        let utc_offset_s = match timezone {
            None => 0,
            Some(tz) if tz.eq_ignore_ascii_case("utc") => 0,
            Some(tz) => {
                let mut at = 0;
                parse_zone(tz.as_bytes(), &mut at)
                    .filter(|_| at == tz.len())
                    .ok_or_else(|| format!("timezone {tz:?} is not UTC or an offset like +02:00"))?
            }
        };
        let Some(format) = format else {
            return Ok(TimestampFormat::Auto);
        };
        let items = match format.to_ascii_lowercase().as_str() {
            "auto" => return Ok(TimestampFormat::Auto),
            "epoch" | "epoch_s" | "epoch_seconds" | "unix" => vec![Item::EpochSeconds],
            "epoch_ms" | "epoch_millis" | "unix_ms" => vec![Item::EpochMillis],
            "rfc3339" | "iso8601" => strftime("%Y-%m-%dT%H:%M:%S%f%z")?,
            _ if format.contains('%') => strftime(format)?,
            _ => flowlink_tokens(format)?,
        };
        if items.is_empty() {
            return Err("timestamp_format is empty".to_owned());
        }
        Ok(TimestampFormat::Pattern {
            items,
            utc_offset_s,
        })
    }

    /// Unix milliseconds. `received_ms` supplies the year when the pattern
    /// has none (classic syslog).
    pub fn parse(&self, text: &str, received_ms: u64) -> Result<u64, String> {
        let text = text.trim();
        let fail = || format!("{:?} does not match the timestamp format", shorten(text));
        match self {
            TimestampFormat::Auto => {
                if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
                    let n: u64 = text.parse().map_err(|_| fail())?;
                    return Ok(if text.len() >= 13 { n } else { n * 1000 });
                }
                let rfc3339 = TimestampFormat::Pattern {
                    items: strftime("%Y-%m-%dT%H:%M:%S%f%z").expect("valid"),
                    utc_offset_s: 0,
                };
                rfc3339.parse(text, received_ms).map_err(|_| fail())
            }
            TimestampFormat::Pattern {
                items,
                utc_offset_s,
            } => match_items(items, text.as_bytes(), *utc_offset_s, received_ms).ok_or_else(fail),
        }
    }
}

fn strftime(format: &str) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            items.push(if c == ' ' {
                Item::Space
            } else {
                Item::Literal(c)
            });
            continue;
        }
        let spec = chars
            .next()
            .ok_or_else(|| format!("timestamp_format {format:?} ends in a lone %"))?;
        match spec {
            'Y' => items.push(Item::Year4),
            'y' => items.push(Item::Year2),
            'm' => items.push(Item::Month),
            'b' | 'h' | 'B' => items.push(Item::MonthName),
            'd' | 'e' => items.push(Item::Day),
            'H' => items.push(Item::Hour),
            'I' => items.push(Item::Hour12),
            'p' => items.push(Item::AmPm),
            'M' => items.push(Item::Minute),
            'S' => items.push(Item::Second),
            'f' => items.push(Item::Fraction),
            'z' | 'Z' => items.push(Item::Zone),
            's' => items.push(Item::EpochSeconds),
            'T' => items.extend(strftime("%H:%M:%S")?),
            'F' => items.extend(strftime("%Y-%m-%d")?),
            '%' => items.push(Item::Literal('%')),
            other => {
                return Err(format!(
                    "timestamp_format {format:?}: %{other} is not supported \
                     (use %Y %y %m %b %d %e %H %I %p %M %S %f %z %s %T %F)"
                ));
            }
        }
    }
    Ok(items)
}

/// FlowLink's tokens: `yyyy yy mmm mm dd HH hh MM SS sss`; lower-case `mm`
/// is the month, upper-case `MM` the minute.
fn flowlink_tokens(format: &str) -> Result<Vec<Item>, String> {
    const TOKENS: [(&str, Item); 10] = [
        ("yyyy", Item::Year4),
        ("yy", Item::Year2),
        ("mmm", Item::MonthName),
        ("mm", Item::Month),
        ("dd", Item::Day),
        ("HH", Item::Hour),
        ("hh", Item::Hour12),
        ("MM", Item::Minute),
        ("SS", Item::Second),
        ("sss", Item::Fraction),
    ];
    let mut items = Vec::new();
    let mut rest = format;
    'outer: while let Some(c) = rest.chars().next() {
        for (token, item) in TOKENS {
            if let Some(after) = rest.strip_prefix(token) {
                items.push(item);
                rest = after;
                continue 'outer;
            }
        }
        if c.is_ascii_alphabetic() {
            return Err(format!(
                "timestamp_format {format:?}: {:?} is not a token (yyyy yy mmm mm dd HH hh MM SS sss), \
                 nor a strftime pattern (use %), nor epoch/epoch_ms/rfc3339",
                &rest[..rest.len().min(4)]
            ));
        }
        items.push(if c == ' ' {
            Item::Space
        } else {
            Item::Literal(c)
        });
        rest = &rest[c.len_utf8()..];
    }
    Ok(items)
}

fn digits(text: &[u8], at: &mut usize, min: usize, max: usize) -> Option<u64> {
    let start = *at;
    while *at < text.len() && *at - start < max && text[*at].is_ascii_digit() {
        *at += 1;
    }
    if *at - start < min {
        return None;
    }
    text[start..*at].iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// `Z`, `UTC`, `+hh:mm`, `+hhmm`, `+hh`: seconds east of UTC.
fn parse_zone(text: &[u8], at: &mut usize) -> Option<i64> {
    match text.get(*at)? {
        b'Z' | b'z' => {
            *at += 1;
            Some(0)
        }
        b'U' if text[*at..].starts_with(b"UTC") => {
            *at += 3;
            Some(0)
        }
        sign @ (b'+' | b'-') => {
            let sign = if *sign == b'-' { -1 } else { 1 };
            *at += 1;
            let hours = digits(text, at, 2, 2)? as i64;
            if text.get(*at) == Some(&b':') {
                *at += 1;
            }
            let minutes = digits(text, at, 0, 2).unwrap_or(0) as i64;
            (hours <= 23 && minutes <= 59).then_some(sign * (hours * 3600 + minutes * 60))
        }
        _ => None,
    }
}

const MONTHS: [&[u8; 3]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];

fn match_items(items: &[Item], text: &[u8], default_offset: i64, received_ms: u64) -> Option<u64> {
    let (mut year, mut month, mut day) = (None, 1u64, 1u64);
    let (mut hour, mut minute, mut second, mut millis) = (0u64, 0u64, 0u64, 0u64);
    let mut pm = None;
    let mut offset = default_offset;
    let mut at = 0;
    for item in items {
        match *item {
            Item::Year4 => year = Some(digits(text, &mut at, 4, 4)? as i64),
            Item::Year2 => year = Some(2000 + digits(text, &mut at, 2, 2)? as i64),
            Item::Month => month = digits(text, &mut at, 1, 2)?,
            Item::MonthName => {
                let name = text.get(at..at + 3)?.to_ascii_lowercase();
                month = MONTHS.iter().position(|m| m[..] == name[..])? as u64 + 1;
                at += 3;
                // Full names: skip the rest of the word.
                while at < text.len() && text[at].is_ascii_alphabetic() {
                    at += 1;
                }
            }
            Item::Day => {
                // %e pads with a space: "Nov  3".
                while text.get(at) == Some(&b' ') {
                    at += 1;
                }
                day = digits(text, &mut at, 1, 2)?;
            }
            Item::Hour | Item::Hour12 => hour = digits(text, &mut at, 1, 2)?,
            Item::AmPm => {
                let word = text.get(at..at + 2)?.to_ascii_lowercase();
                pm = Some(match &word[..] {
                    b"am" => false,
                    b"pm" => true,
                    _ => return None,
                });
                at += 2;
            }
            Item::Minute => minute = digits(text, &mut at, 1, 2)?,
            Item::Second => second = digits(text, &mut at, 1, 2)?,
            Item::Fraction => {
                // Optional: "12:00:00" matches "%H:%M:%S%f" too.
                if matches!(text.get(at), Some(b'.' | b',')) {
                    at += 1;
                    let start = at;
                    let value = digits(text, &mut at, 1, 9)?;
                    let scale = 10u64.pow((at - start) as u32);
                    millis = value * 1000 / scale;
                    while text.get(at).is_some_and(u8::is_ascii_digit) {
                        at += 1;
                    }
                } else if at < text.len() && text[at].is_ascii_digit() {
                    // FlowLink's `sss` after a literal dot.
                    millis = digits(text, &mut at, 3, 3)?;
                }
            }
            Item::Zone => {
                // Optional, so RFC 3339 without an offset still matches.
                if at < text.len() {
                    offset = parse_zone(text, &mut at)?;
                }
            }
            Item::EpochSeconds => return (at_end(text, &mut at)?).checked_mul(1000),
            Item::EpochMillis => return at_end(text, &mut at),
            Item::Space => {
                if text.get(at) != Some(&b' ') {
                    return None;
                }
                while text.get(at) == Some(&b' ') {
                    at += 1;
                }
            }
            Item::Literal(c) => {
                let mut buf = [0u8; 4];
                let c = c.encode_utf8(&mut buf).as_bytes();
                // `T` in RFC 3339 may be a space.
                if text.get(at..at + c.len()) == Some(c)
                    || (c == b"T" && text.get(at) == Some(&b' '))
                {
                    at += c.len();
                } else {
                    return None;
                }
            }
        }
    }
    if at != text.len() {
        return None;
    }
    match pm {
        Some(true) if hour < 12 => hour += 12,
        Some(false) if hour == 12 => hour = 0,
        _ => {}
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let year = year.unwrap_or_else(|| year_for(month, received_ms));
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64 - offset;
    u64::try_from(seconds)
        .ok()?
        .checked_mul(1000)?
        .checked_add(millis)
}

fn at_end(text: &[u8], at: &mut usize) -> Option<u64> {
    let value = digits(text, at, 1, 20)?;
    (*at == text.len()).then_some(value)
}

/// Syslog stamps have no year: the reception year, or the one before when
/// the month is ahead of reception (a December record read in January).
fn year_for(month: u64, received_ms: u64) -> i64 {
    let days = (received_ms / 86_400_000) as i64;
    let (year, received_month, _) = civil_from_days(days);
    if month > received_month + 1 {
        year - 1
    } else {
        year
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u64, day: u64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOV_28_2026: u64 = 1_795_867_200_000; // 2026-11-28T12:00:00Z

    fn parse(format: &str, text: &str) -> Result<u64, String> {
        TimestampFormat::compile(Some(format), None)?.parse(text, NOV_28_2026)
    }

    #[test]
    fn flowlink_tokens_and_strftime_agree() {
        let expected = 1_795_867_200_000 - 12 * 3_600_000 + (13 * 3600 + 4 * 60 + 5) * 1000;
        assert_eq!(
            parse("mmm dd yyyy HH:MM:SS", "Nov 28 2026 13:04:05"),
            Ok(expected)
        );
        assert_eq!(
            parse("%b %d %Y %H:%M:%S", "Nov 28 2026 13:04:05"),
            Ok(expected)
        );
        assert_eq!(
            parse("yyyy-mm-dd HH:MM:SS.sss", "2026-11-28 13:04:05.250"),
            Ok(expected + 250)
        );
        assert_eq!(
            parse("%d/%m/%y %I:%M:%S %p", "28/11/26 01:04:05 PM"),
            Ok(expected)
        );
        assert_eq!(parse("%F %T", "2026-11-28 13:04:05"), Ok(expected));
    }

    #[test]
    fn epochs_rfc3339_and_auto() {
        assert_eq!(parse("epoch", "1795867200"), Ok(NOV_28_2026));
        assert_eq!(parse("epoch_ms", "1795867200123"), Ok(NOV_28_2026 + 123));
        assert_eq!(
            parse("rfc3339", "2026-11-28T14:00:00+02:00"),
            Ok(NOV_28_2026)
        );
        assert_eq!(
            parse("rfc3339", "2026-11-28T12:00:00.5Z"),
            Ok(NOV_28_2026 + 500)
        );
        let auto = TimestampFormat::compile(None, None).unwrap();
        assert_eq!(auto.parse("1795867200", 0), Ok(NOV_28_2026));
        assert_eq!(auto.parse("1795867200000", 0), Ok(NOV_28_2026));
        assert_eq!(auto.parse("2026-11-28 12:00:00Z", 0), Ok(NOV_28_2026));
        assert!(auto.parse("yesterday", 0).is_err());
    }

    #[test]
    fn syslog_stamps_take_the_year_from_reception() {
        // "Dec 31" read on 28 Nov 2026 → 2026; read on 2 Jan 2027 → 2026.
        let dec31 = parse("%b %e %H:%M:%S", "Dec 31 23:00:00").unwrap();
        let jan2_2027 = 1_798_848_000_000 + 86_400_000;
        let again = TimestampFormat::compile(Some("%b %e %H:%M:%S"), None)
            .unwrap()
            .parse("Dec 31 23:00:00", jan2_2027)
            .unwrap();
        assert_eq!(dec31, again);
        assert_eq!(
            parse("%b %e %H:%M:%S", "Nov  3 00:00:00").map(|t| t < NOV_28_2026),
            Ok(true)
        );
    }

    #[test]
    fn timezone_setting_applies_to_zoneless_text() {
        let cet = TimestampFormat::compile(Some("%F %T"), Some("+01:00")).unwrap();
        assert_eq!(cet.parse("2026-11-28 13:00:00", 0), Ok(NOV_28_2026));
        assert!(TimestampFormat::compile(None, Some("Mars/Olympus")).is_err());
    }

    #[test]
    fn bad_patterns_and_values_are_named() {
        assert!(
            TimestampFormat::compile(Some("%Q"), None)
                .unwrap_err()
                .contains("%Q")
        );
        assert!(
            TimestampFormat::compile(Some("mmm xx"), None)
                .unwrap_err()
                .contains("xx")
        );
        assert!(parse("%F %T", "2026-13-28 13:00:00").is_err());
        assert!(parse("%F %T", "2026-11-28 13:00:00 trailing").is_err());
        assert!(parse("epoch", "12a").is_err());
    }
}
