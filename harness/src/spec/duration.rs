//! Durations as the platform's specs write them (Go's `time.ParseDuration`:
//! `30s`, `1h30m`, `1.5h`, `300ms`), for `datum_timeout` and `job_timeout`.

use std::time::Duration;

/// Parses a Go duration. Negative and empty durations are refused; `0`
/// alone is allowed (no unit needed), as in Go.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err("an empty duration".into());
    }
    if text.starts_with('-') {
        return Err("a negative duration".into());
    }
    let body = text.strip_prefix('+').unwrap_or(text);
    let mut total = 0f64;
    let mut rest = body;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return Err(format!("`{text}` has a unit without a number"));
        }
        let number: f64 = rest[..number_len]
            .parse()
            .map_err(|_| format!("`{}` is not a number", &rest[..number_len]))?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" | "μs" => 1e-6,
            "ns" => 1e-9,
            "" => return Err(format!("`{text}` needs a unit (h, m, s, ms, us, ns)")),
            other => return Err(format!("`{other}` is not a unit (h, m, s, ms, us, ns)")),
        };
        total += number * seconds;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > 1e12 {
        return Err(format!("`{text}` is too long"));
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        for (text, seconds) in [
            ("30s", 30.0),
            ("1h30m", 5400.0),
            ("1.5h", 5400.0),
            ("300ms", 0.3),
            ("2m3.5s", 123.5),
            ("0", 0.0),
            ("+5s", 5.0),
            ("10us", 0.00001),
        ] {
            let got = parse_go_duration(text).unwrap().as_secs_f64();
            assert!((got - seconds).abs() < 1e-9, "{text}: {got}");
        }
    }

    #[test]
    fn bad_durations_say_why() {
        for (text, why) in [
            ("30", "needs a unit"),
            ("-1s", "negative"),
            ("", "empty"),
            ("5 minutes", "not a unit"),
            ("s", "without a number"),
            ("1..5s", "not a number"),
        ] {
            let e = parse_go_duration(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
