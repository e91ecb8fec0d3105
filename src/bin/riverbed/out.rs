//! Output helpers: aligned tables, JSON values, sizes and rates with units, RFC 3339 times.

use std::io::{self, Write};

use serde_json::{json, Value};

/// An aligned text table: a header row and rows of cells, columns padded to their widest cell.
/// Cells that look like numbers are right-aligned.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self, out: &mut dyn Write) -> io::Result<()> {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                let pad = widths[c].saturating_sub(cell.chars().count());
                let digits = cell.strip_prefix('-').unwrap_or(cell);
                let numeric = digits.starts_with(|ch: char| ch.is_ascii_digit());
                if c > 0 {
                    line.push_str("  ");
                }
                if numeric {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    if c + 1 < row.len() {
                        line.push_str(&" ".repeat(pad));
                    }
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// Writes one JSON value and a newline.
pub fn print_json(out: &mut dyn Write, v: &Value) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, v)?;
    writeln!(out)
}

/// `1.5 GiB`, `312 B`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// `1.2 MiB/s`.
pub fn byte_rate(per_sec: f64) -> String {
    format!("{}/s", size(per_sec.max(0.0) as u64))
}

/// `12.3k/s`.
pub fn count_rate(per_sec: f64) -> String {
    let v = per_sec.max(0.0);
    if v >= 1e6 {
        format!("{:.1}M/s", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k/s", v / 1e3)
    } else {
        format!("{v:.1}/s")
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 3339 in UTC with milliseconds: `2024-05-01T12:00:00.000Z`. Out-of-range values (years
/// outside 0..=9999) print as the raw number of milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rest = ms.rem_euclid(86_400_000);
    let (y, mo, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return format!("{ms}ms");
    }
    let (h, mi, s, milli) = (
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000,
    );
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// A timestamp both ways, for JSON: `{"ms": 1714564800000, "time": "2024-05-01T12:00:00.000Z"}`.
pub fn json_time(ms: i64) -> Value {
    json!({ "ms": ms, "time": rfc3339(ms) })
}

/// Parses a time: milliseconds since the epoch, or RFC 3339 (`2024-05-01T12:00:00Z`, with
/// optional fraction and a `Z` or `±hh:mm` offset). Without a zone — as Kafka's tools write it,
/// `2024-05-01T12:00:00.000` — the time is UTC (Kafka's tools read it in the JVM's zone; a
/// store's timestamps are UTC, so UTC is the one reading that does not depend on the machine).
/// A date alone means its midnight UTC. Dates must exist (no February 31st) and years lie in
/// 0..=9999.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || {
        format!(
            "{s:?} is neither milliseconds nor a time like 2024-05-01T12:00:00Z, \
             2024-05-01T12:00:00.000 (UTC) or 2024-05-01"
        )
    };
    let num = |t: &str| {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        t.parse::<i64>().map_err(|_| bad())
    };
    let (date, time) = match s.split_once(['T', 't', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut dp = date.splitn(3, '-');
    let (y, mo, d) = (
        num(dp.next().ok_or_else(bad)?)?,
        num(dp.next().ok_or_else(bad)?)?,
        num(dp.next().ok_or_else(bad)?)?,
    );
    if !(0..=9999).contains(&y) || !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return Err(format!("{}: no such date", bad()));
    }
    let mut ms = days_from_civil(y, mo as u32, d as u32) * 86_400_000;
    if let Some(t) = time {
        let (clock, offset_ms) = if let Some(c) = t.strip_suffix(['Z', 'z']) {
            (c, 0)
        } else if let Some(i) = t.rfind(['+', '-']) {
            let (c, off) = t.split_at(i);
            let sign = if off.starts_with('-') { -1 } else { 1 };
            let (oh, om) = off[1..].split_once(':').ok_or_else(bad)?;
            let (oh, om) = (num(oh)?, num(om)?);
            if oh > 23 || om > 59 {
                return Err(bad());
            }
            (c, sign * (oh * 3_600_000 + om * 60_000))
        } else {
            (t, 0)
        };
        let mut cp = clock.splitn(3, ':');
        let h = num(cp.next().ok_or_else(bad)?)?;
        let mi = num(cp.next().ok_or_else(bad)?)?;
        let sec = cp.next().unwrap_or("0");
        let (sec, frac) = sec.split_once('.').unwrap_or((sec, ""));
        let frac_ms = if frac.is_empty() {
            0
        } else {
            let digits: String = frac.chars().chain("000".chars()).take(3).collect();
            num(&digits)?
        };
        let sec = num(sec)?;
        if h > 23 || mi > 59 || sec > 60 {
            return Err(bad());
        }
        ms += h * 3_600_000 + mi * 60_000 + sec * 1000 + frac_ms - offset_ms;
    }
    Ok(ms)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Resolves kcat's escapes in a command-line string: `\n`, `\t`, `\r`, `\0`, `\\` and
/// `\xNN` (a byte in hex). Any other character after a backslash is an error, so that a typo
/// is not taken literally.
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            let mut b = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            continue;
        }
        match chars.next().map(|(_, c)| c) {
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('r') => out.push(b'\r'),
            Some('0') => out.push(0),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex = s
                    .get(i + 2..i + 4)
                    .ok_or_else(|| format!("{s:?}: \\x needs two hex digits (\\x09 is a tab)"))?;
                let b = u8::from_str_radix(hex, 16)
                    .map_err(|_| format!("{s:?}: \\x{hex} is not a hex byte"))?;
                out.push(b);
                chars.next();
                chars.next();
            }
            Some(o) => {
                return Err(format!(
                    "{s:?}: unknown escape \\{o} (known: \\n \\t \\r \\0 \\\\ \\xNN)"
                ))
            }
            None => return Err(format!("{s:?} ends in a lone backslash (write \\\\)")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_roundtrip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_714_564_800_123), "2024-05-01T12:00:00.123Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            parse_time("2024-05-01T12:00:00.123Z"),
            Ok(1_714_564_800_123)
        );
        assert_eq!(
            parse_time("2024-05-01T14:00:00+02:00"),
            Ok(1_714_564_800_000)
        );
        assert_eq!(parse_time("2024-05-01"), Ok(1_714_521_600_000));
        assert_eq!(parse_time("17"), Ok(17));
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2024-13-01").is_err());
        // Kafka's own format, without a zone: UTC.
        assert_eq!(parse_time("2024-05-01T12:00:00.000"), Ok(1_714_564_800_000));
        assert!(parse_time("2024-02-31").is_err());
        assert!(parse_time("2023-02-29").is_err());
        assert_eq!(parse_time("2024-02-29"), Ok(1_709_164_800_000));
        assert!(parse_time("99999999999-01-01").is_err());
        assert!(parse_time("2024-05-01T12:00:00+99:00").is_err());
        assert!(parse_time("2024-05-01T+1:00:00Z").is_err());
        assert_eq!(unescape("a\\tb\\x41\\\\"), Ok(b"a\tbA\\".to_vec()));
        assert!(unescape("\\q").is_err());
        assert!(unescape("\\x4").is_err());
        assert!(unescape("x\\").is_err());
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(12), "12 B");
    }
}
