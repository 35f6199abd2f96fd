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

/// The fields of the form a submit event is sending, by name (`None`: no such field). The
/// islands' forms post to their server function's address, so they work before the WASM loads;
/// once hydrated they read their fields here and dispatch the action, with no form decoder in
/// the bundle. On the server (where no form is submitted) every field is missing.
pub struct Submitted {
    #[cfg(feature = "hydrate")]
    data: Option<web_sys::FormData>,
}

impl Submitted {
    /// Stops the browser's own submission and reads the form's fields.
    pub fn take(ev: &leptos::ev::SubmitEvent) -> Self {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            let form = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlFormElement>().ok());
            Submitted { data: form.and_then(|f| web_sys::FormData::new_with_form(&f).ok()) }
        }
        #[cfg(not(feature = "hydrate"))]
        Submitted {}
    }

    pub fn field(&self, name: &str) -> Option<String> {
        #[cfg(feature = "hydrate")]
        return self.data.as_ref().and_then(|d| d.get(name).as_string());
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = name;
            None
        }
    }

    /// A text field, empty if missing.
    pub fn text(&self, name: &str) -> String {
        self.field(name).unwrap_or_default()
    }
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
