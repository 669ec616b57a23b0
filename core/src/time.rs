//! Time as a value.
//!
//! The core never reads a clock; callers pass the receive time in. A
//! [`Timestamp`] is milliseconds since the Unix epoch, which is what both
//! `Date.now()` in the Worker and PostgreSQL's `timestamptz` round-trip exactly.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// A timestamp from whole seconds since the epoch.
    pub const fn from_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(1000))
    }

    /// Milliseconds since the epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch, rounded down.
    pub const fn secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// This instant plus `secs` seconds (saturating).
    pub const fn plus_secs(self, secs: i64) -> Self {
        Timestamp(self.0.saturating_add(secs.saturating_mul(1000)))
    }

    /// This instant minus `secs` seconds (saturating).
    pub const fn minus_secs(self, secs: i64) -> Self {
        Timestamp(self.0.saturating_sub(secs.saturating_mul(1000)))
    }

    /// This instant plus `ms` milliseconds (saturating).
    pub const fn plus_millis(self, ms: i64) -> Self {
        Timestamp(self.0.saturating_add(ms))
    }

    /// RFC 3339 in UTC with millisecond precision, e.g. `2026-11-23T10:00:00.000Z`.
    ///
    /// Written digit by digit rather than through `format!`: every API
    /// answer formats several of these per delivery, and the formatting
    /// machinery was a visible share of the change feed's profile.
    pub fn to_rfc3339(self) -> String {
        let secs = self.secs();
        let ms = self.0.rem_euclid(1000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        if !(0..=9999).contains(&y) {
            // Outside four-digit years (never a real delivery): the general path.
            return format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
                rem / 3600,
                (rem % 3600) / 60,
                rem % 60
            );
        }
        let mut out = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut v: i64| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, y);
        put(5, 2, i64::from(m));
        put(8, 2, i64::from(d));
        put(11, 2, rem / 3600);
        put(14, 2, (rem % 3600) / 60);
        put(17, 2, rem % 60);
        put(20, 3, ms);
        out.iter().map(|&b| char::from(b)).collect()
    }
}

impl Timestamp {
    /// Parses RFC 3339 (`2026-11-23T10:00:00Z`, `…T10:00:00.123+02:00`), or
    /// whole milliseconds since the epoch. `None` if it is neither.
    pub fn parse(text: &str) -> Option<Timestamp> {
        let t = text.trim();
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            return t.parse().ok().map(Timestamp);
        }
        let b = t.as_bytes();
        if b.len() < 20
            || b[4] != b'-'
            || b[7] != b'-'
            || !matches!(b[10], b'T' | b't' | b' ')
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let s = t.get(r)?;
            s.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| s.parse().ok())?
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
            return None;
        }
        let mut rest = &t[19..];
        let mut ms = 0i64;
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            let f = &frac[..digits];
            ms = format!("{:0<3}", &f[..digits.min(3)]).parse().ok()?;
            rest = &frac[digits..];
        }
        let offset_secs = match rest {
            "Z" | "z" => 0,
            // Checked as bytes first: slicing a string at a byte offset
            // inside a multi-byte character would panic.
            o if o.len() == 6
                && o.is_ascii()
                && (o.starts_with('+') || o.starts_with('-'))
                && &o[3..4] == ":" =>
            {
                let oh: i64 = o[1..3].parse().ok()?;
                let om: i64 = o[4..6].parse().ok()?;
                let sign = if o.starts_with('-') { -1 } else { 1 };
                sign * (oh * 3600 + om * 60)
            }
            _ => return None,
        };
        let days = days_from_civil(y, mo as u32, d as u32);
        let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset_secs;
        Some(Timestamp(secs * 1000 + ms))
    }
}

/// Days since 1970-01-01 of a civil date (Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Converts days since 1970-01-01 to a (year, month, day) civil date.
///
/// This is Howard Hinnant's `civil_from_days`, exact for the whole `i64` range
/// we can meet, and avoids a date crate for one formatting function.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp(1_614_265_330_123).to_rfc3339(),
            "2021-02-25T15:02:10.123Z"
        );
        assert_eq!(
            Timestamp(951_782_400_000).to_rfc3339(),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(Timestamp(-1).to_rfc3339(), "1969-12-31T23:59:59.999Z");
        // Years outside 0000–9999 take the general path.
        assert_eq!(
            Timestamp(253_402_300_800_000).to_rfc3339(),
            "10000-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp(-62_167_219_200_001).to_rfc3339(),
            "-001-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn rfc3339_round_trips_across_the_range() {
        // Every digit position moves: steps of a prime number of
        // milliseconds across five centuries.
        let mut t = -2_208_988_800_000i64; // 1900-01-01
        while t < 16_725_225_600_000 {
            // 2500-01-01
            let text = Timestamp(t).to_rfc3339();
            assert_eq!(text.len(), 24, "{text}");
            assert_eq!(Timestamp::parse(&text), Some(Timestamp(t)), "{text}");
            t += 9_999_999_937;
        }
    }

    #[test]
    fn non_ascii_never_panics() {
        // A multi-byte character where the offset's digits or colon belong
        // used to panic on a byte slice inside the character.
        for text in [
            "2021-02-25T16:02:10+0é00",
            "2021-02-25T16:02:10+é:00",
            "2021-02-25T16:02:10.5+0€0",
            "2021-02-25T16:02:1é",
            "2021-02-25T16:02:10é",
            "ééééééééééééééééééééééé",
            "2021-02-25T16:02:10\u{0}",
        ] {
            assert_eq!(Timestamp::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn parses_what_it_formats_and_offsets() {
        for ms in [0i64, 1_614_265_330_123, 951_782_400_000, 4_102_444_800_999] {
            let t = Timestamp(ms);
            assert_eq!(Timestamp::parse(&t.to_rfc3339()), Some(t));
        }
        assert_eq!(
            Timestamp::parse("2021-02-25T16:02:10+01:00"),
            Some(Timestamp(1_614_265_330_000))
        );
        assert_eq!(
            Timestamp::parse("2021-02-25T15:02:10.5Z"),
            Some(Timestamp(1_614_265_330_500))
        );
        assert_eq!(
            Timestamp::parse("1614265330000"),
            Some(Timestamp(1_614_265_330_000))
        );
        for bad in [
            "",
            "yesterday",
            "2021-13-01T00:00:00Z",
            "2021-02-25T15:02:10",
            "2021-02-25T15:02:10.Z",
        ] {
            assert_eq!(Timestamp::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn seconds_round_down() {
        assert_eq!(Timestamp(1999).secs(), 1);
        assert_eq!(Timestamp(-1).secs(), -1);
        assert_eq!(Timestamp::from_secs(5).plus_secs(2).millis(), 7000);
    }
}
