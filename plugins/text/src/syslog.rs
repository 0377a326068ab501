//! Removes a syslog header (RFC 5424 or RFC 3164, with or without the
//! `<PRI>` part), leaving the message a format's fields are read from.

/// The message part of `line`; `line` itself when no header is recognised.
pub fn strip_prefix(line: &str) -> &str {
    let mut rest = line;
    if let Some(after) = rest.strip_prefix('<')
        && let Some(end) = after.find('>')
        && (1..=3).contains(&end)
        && after[..end].bytes().all(|b| b.is_ascii_digit())
    {
        rest = &after[end + 1..];
    }
    if let Some(after) = rest.strip_prefix("1 ") {
        return strip_rfc5424(after).unwrap_or(rest);
    }
    strip_rfc3164(rest).unwrap_or(rest)
}

/// After `VERSION SP`: TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG].
fn strip_rfc5424(mut rest: &str) -> Option<&str> {
    for _ in 0..5 {
        let space = rest.find(' ')?;
        rest = &rest[space + 1..];
    }
    if let Some(after) = rest.strip_prefix('-') {
        rest = after;
    } else {
        // One or more [id param="value" ...] elements; values may hold
        // escaped quotes and brackets.
        while rest.starts_with('[') {
            let bytes = rest.as_bytes();
            let (mut i, mut quoted) = (1, false);
            loop {
                match bytes.get(i)? {
                    b'\\' if quoted => i += 1,
                    b'"' => quoted = !quoted,
                    b']' if !quoted => break,
                    _ => {}
                }
                i += 1;
            }
            rest = &rest[i + 1..];
        }
    }
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    Some(rest.strip_prefix('\u{feff}').unwrap_or(rest))
}

/// `Mmm dd hh:mm:ss HOSTNAME TAG: MSG`; the tag is optional.
fn strip_rfc3164(rest: &str) -> Option<&str> {
    let b = rest.as_bytes();
    let stamp = b.len() > 16
        && b[..3].iter().all(u8::is_ascii_alphabetic)
        && b[3] == b' '
        && b[6] == b' '
        && b[9] == b':'
        && b[12] == b':'
        && b[15] == b' ';
    if !stamp {
        return None;
    }
    let after_stamp = &rest[16..];
    let after_host = &after_stamp[after_stamp.find(' ')? + 1..];
    let first_word = after_host.split(' ').next().unwrap_or("");
    Some(match first_word.strip_suffix(':') {
        Some(_) => after_host[first_word.len()..].trim_start(),
        None => after_host,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_rfc5424_from_logger() {
        let line = r#"<13>1 2026-11-28T13:04:05.123456+00:00 host1 flowtest 4242 - [timeQuality tzKnown="1" isSynced="0"] sip=10.0.0.1 dip=10.0.0.2"#;
        assert_eq!(strip_prefix(line), "sip=10.0.0.1 dip=10.0.0.2");
        let no_sd = "<13>1 2026-11-28T13:04:05Z host app - - - a=1";
        assert_eq!(strip_prefix(no_sd), "a=1");
        let escaped = r#"<13>1 - h a - - [x y="a\"]b"][z] msg"#;
        assert_eq!(strip_prefix(escaped), "msg");
    }

    #[test]
    fn strips_rfc3164_with_and_without_pri_and_tag() {
        assert_eq!(
            strip_prefix("<13>Nov 28 13:04:05 host1 flowtest[42]: 10.0.0.1,10.0.0.2"),
            "10.0.0.1,10.0.0.2"
        );
        assert_eq!(strip_prefix("Nov  3 13:04:05 host1 fw: a b"), "a b");
        assert_eq!(strip_prefix("Nov 28 13:04:05 host1 a=b"), "a=b");
    }

    #[test]
    fn leaves_other_lines_alone() {
        for line in ["10.0.0.1,10.0.0.2,6", "<x>oops", "1 short", "{\"a\":1}"] {
            assert_eq!(strip_prefix(line), line);
        }
    }
}
