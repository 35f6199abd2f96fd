//! The pages and their components. Components render wire types and dispatch server functions.
pub mod components;
pub mod live;
pub mod pages;

/// Loads another page from the server (islands have no client-side router).
pub fn go_to(path: &str) {
    #[cfg(feature = "hydrate")]
    let _ = leptos::prelude::window().location().set_href(path);
    #[cfg(not(feature = "hydrate"))]
    let _ = path;
}

/// "3 s ago" style durations are not needed; this formats a run's duration as "1.2 s".
pub fn duration(started: Option<i64>, finished: Option<i64>) -> String {
    match (started, finished) {
        (Some(s), Some(f)) if f >= s => format!("{} s", crate::api::decimal(f - s, 1000, 1)),
        (Some(_), None) => "running".into(),
        _ => "—".into(),
    }
}

/// Milliseconds since the epoch as a UTC date and time, identical on server and client.
pub fn timestamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", rem / 3600, (rem % 3600) / 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_utc_dates() {
        assert_eq!(super::timestamp(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::timestamp(1_795_000_000_000), "2026-11-18 11:06 UTC");
        assert_eq!(super::duration(Some(1000), Some(2500)), "1.5 s");
    }
}
