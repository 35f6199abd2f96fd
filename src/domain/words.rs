//! Numbers in sentences, the same on every page and in every message: money, decimals, and a
//! count with its noun ("1 beat", "3 beats"). Integer arithmetic, so the browser's bundle
//! carries no float formatting.

/// Dollars for people: "$0.120" (tenths of a cent: a unit may cost less than a cent).
pub fn dollars(micros: i64) -> String {
    let amount = decimal(micros, 1_000_000, 3);
    match amount.strip_prefix('-') {
        Some(owed) => format!("-${owed}"),
        None => format!("${amount}"),
    }
}

/// `value / per_one` with `places` decimals, rounded half away from zero: `decimal(1250, 1000, 1)`
/// is "1.3".
pub fn decimal(value: i64, per_one: i64, places: u32) -> String {
    let per_one = i128::from(per_one.max(1));
    let scale = 10i128.pow(places);
    let scaled = i128::from(value) * scale;
    let rounded = (scaled.abs() * 2 + per_one) / (per_one * 2);
    let sign = if scaled < 0 && rounded != 0 { "-" } else { "" };
    let (whole, frac) = (rounded / scale, rounded % scale);
    if places == 0 { format!("{sign}{whole}") } else { format!("{sign}{whole}.{frac:0width$}", width = places as usize) }
}

/// An amount of dollars to type back exactly: at least cents, and every nonzero digit after
/// ("0.125", not "0.13", which a second save would make the budget).
pub fn exact_dollars(micros: i64) -> String {
    let full = decimal(micros, 1_000_000, 6);
    let keep = full.len() - full.bytes().rev().take(4).take_while(|b| *b == b'0').count();
    full[..keep].to_string()
}

/// A count and its noun: `count(1, "beat", "beats")` is "1 beat", `count(0, …)` "0 beats".
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Text as markup reads it back: `&`, `<` and `>` as entities (an HTML element's text set as its
/// inner HTML, a WebVTT cue, where `-->` would otherwise read as a timing line).
pub fn markup_text(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::{count, decimal, dollars, markup_text};

    #[test]
    fn markup_text_escapes_what_markup_would_read() {
        assert_eq!(markup_text("a </textarea><b>&amp; --> ok"), "a &lt;/textarea&gt;&lt;b&gt;&amp;amp; --&gt; ok");
        assert_eq!(markup_text("plain ü 灯台"), "plain ü 灯台");
    }

    #[test]
    fn decimals_round_half_away_from_zero_without_floats() {
        assert_eq!(decimal(1250, 1000, 1), "1.3");
        assert_eq!(decimal(1249, 1000, 1), "1.2");
        assert_eq!(decimal(0, 1000, 2), "0.00");
        assert_eq!(decimal(40, 1000, 1), "0.0");
        assert_eq!(decimal(-1250, 1000, 1), "-1.3");
        assert_eq!(decimal(-40, 1000, 1), "0.0");
        assert_eq!(decimal(7, 1, 0), "7");
        assert_eq!(decimal(12_345_678, 1_000_000, 2), "12.35");
        assert_eq!(decimal(i64::MAX, 1, 0), i64::MAX.to_string());
        assert_eq!(dollars(120_000), "$0.120");
        assert_eq!(dollars(1_234_567), "$1.235");
        assert_eq!(dollars(-5_000), "-$0.005", "the sign before the dollar sign");
    }

    #[test]
    fn a_budget_shows_every_digit_it_has() {
        use super::exact_dollars;
        assert_eq!(exact_dollars(125_000), "0.125");
        assert_eq!(exact_dollars(5_000_000), "5.00");
        assert_eq!(exact_dollars(1_500_000), "1.50");
        assert_eq!(exact_dollars(1), "0.000001");
        assert_eq!(exact_dollars(0), "0.00");
    }

    #[test]
    fn a_count_of_one_takes_the_singular() {
        assert_eq!(count(1u32, "beat", "beats"), "1 beat");
        assert_eq!(count(0u32, "beat", "beats"), "0 beats");
        assert_eq!(count(12u64, "try", "tries"), "12 tries");
    }
}
