//! Phase 1: a rule-based, deterministic script writer that turns a prompt into beats.

use crate::domain::script::{Beat, Script};
use crate::media::seed::{Rng, fnv1a, mix};

const MIN_BEATS: u32 = 1;
const MAX_BEATS: u32 = 12;
const TITLE_MAX_CHARS: usize = 80;
const NARRATION_MIN_CHARS: usize = 40;
const NARRATION_MAX_CHARS: usize = 160;
/// Longer "words" (URLs, glued-together text, scripts without spaces) would blow the
/// narration length budget, so keywords are cut to this many characters.
const KEYWORD_MAX_CHARS: usize = 18;
const FALLBACK_KEYWORDS: [&str; 3] = ["a quiet moment", "light", "change"];

const STOPWORDS: &[&str] = &[
    "a", "about", "above", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "because", "been", "before",
    "being", "below", "between", "both", "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for",
    "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "him", "his", "how", "i", "if", "in", "into", "is",
    "it", "its", "itself", "just", "like", "make", "me", "more", "most", "my", "no", "nor", "not", "now", "of", "off", "on", "once",
    "only", "or", "other", "our", "out", "over", "own", "please", "same", "she", "should", "show", "so", "some", "such", "than", "that",
    "the", "their", "them", "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very",
    "video", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your",
    "short", "clip", "film", "movie", "reel", "story", "near", "across", "around", "behind", "beyond", "inside", "outside", "toward",
    "towards", "within", "without", "along", "among", "upon", "onto", "amid", "against", "there's", "it's",
];

/// Minor words stay lower-case inside a title, as English title case expects.
const MINOR_WORDS: &[&str] = &["a", "an", "and", "as", "at", "but", "by", "for", "in", "nor", "of", "on", "or", "the", "to", "with"];

/// (setting, motif) — the motif word is what the storyboard keys its shapes on.
pub(crate) const SETTINGS: &[&str] = &[
    "a windswept coastline at dusk",
    "rolling hills under a wide sky",
    "city rooftops after rain",
    "a mountain ridge in thin air",
    "desert dunes in long shadow",
    "a still lake at first light",
    "a harbor full of moored boats",
    "downtown streets at night",
    "a meadow bending in the wind",
    "open sea under a low sun",
    "a quiet valley with distant hills",
    "a skyline against the evening glow",
];

/// Names the storyboard recognises and maps to real colours.
pub(crate) const PALETTES: &[&str] = &[
    "teal and amber",
    "dusky violet",
    "sunlit coral",
    "forest green",
    "arctic blue",
    "golden hour",
    "neon magenta",
    "sandstone",
    "rose and slate",
    "midnight indigo",
];

const CAMERA_MOVES: &[&str] =
    &["slow push-in", "gentle pull-back", "drift to the left", "drift to the right", "slow rise", "steady wide shot"];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    Opening,
    Development,
    Turn,
    Close,
}

// `{F}` is the focus phrase, `{a}`/`{b}` two rotating keywords; capitals mean "capitalise".
const OPENING: &[&str] = &[
    "It begins with {f}, small and ordinary at first.",
    "Meet {f}. Everything starts quietly here.",
    "Picture {f}, before anyone notices what is coming.",
    "Here is {f}, and a feeling that something will change.",
    "Somewhere, {f} waits for the day to begin.",
];
const DEVELOPMENT: &[&str] = &[
    "Slowly, {a} draws closer to {b}, and the details sharpen.",
    "Each step brings {a} into focus; {b} is never far away.",
    "We follow {a} as {b} takes shape around it.",
    "{A} grows stronger, and {b} starts to matter.",
    "Little by little, {b} leaves its mark on {a}.",
];
const TURN: &[&str] = &[
    "Then everything shifts: {a} meets {b} in a way no one planned.",
    "But {a} was never the whole story. {B} changes the picture.",
    "Suddenly {b} pushes back against {a}, and the stakes rise.",
    "And then, without warning, {b} turns {a} upside down.",
];
const CLOSE: &[&str] = &[
    "In the end, {f} finds its place, and the light settles.",
    "And so {f} comes full circle, calmer than before.",
    "What remains is {f}, remembered in a single frame.",
    "At last {f} rests, and the world feels a little wider.",
];
/// Optional second sentences; added when they fit, so seeds also vary the rhythm.
const CODAS: &[&str] = &[
    "Watch closely.",
    "Nothing stays the same.",
    "The air feels different now.",
    "Every detail counts.",
    "Time slows down.",
    "Listen closely.",
];

/// Writes a script of `beats` beats (clamped to 1..=12) for `prompt`.
///
/// Same prompt and seed give an identical script; another seed rewords it.
pub fn write_script(prompt: &str, beats: u32, seed: u64) -> Script {
    let beats = beats.clamp(MIN_BEATS, MAX_BEATS) as usize;
    let cleaned = clean(prompt);
    let keywords = keywords(&cleaned);
    let focus = focus_phrase(&keywords);
    let base = mix(fnv1a(cleaned.to_lowercase().as_bytes()), seed);

    let orders = template_orders(&mut Rng::new(base));
    let mut used = [0usize; 4];
    let beats = (0..beats)
        .map(|i| {
            let mut rng = Rng::new(mix(base, i as u64 + 1));
            let role = role_of(i, beats);
            let r = role as usize;
            let template = orders[r][used[r] % orders[r].len()];
            used[r] += 1;
            let narration = narration(template, i, &focus, &keywords, &mut rng);
            let visual = visual(&keywords, i, &mut rng);
            let duration_ms = duration_for(&narration, &mut rng);
            Beat { narration, visual, duration_ms }
        })
        .collect();

    Script { title: title(&cleaned), beats, narration: Default::default() }
}

/// Collapses whitespace and drops control characters, which would otherwise end up
/// in titles and captions as invisible or box glyphs.
fn clean(prompt: &str) -> String {
    prompt
        .split_whitespace()
        .map(|w| w.chars().filter(|c| !c.is_control()).collect::<String>())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn title(cleaned: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    for (i, word) in cleaned.split(' ').filter(|w| !w.is_empty()).enumerate() {
        let lower = word.to_lowercase();
        let w = if i > 0 && MINOR_WORDS.contains(&lower.as_str()) {
            lower
        } else {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => continue,
            }
        };
        words.push(w);
    }
    let full = words.join(" ");
    let full = full.trim_matches(|c: char| c.is_whitespace() || c == '.' || c == ',');
    if full.is_empty() {
        return "Untitled Reel".to_string();
    }
    if full.chars().count() <= TITLE_MAX_CHARS {
        return full.to_string();
    }
    // Cut at a word boundary and mark the cut, keeping the total within the limit.
    let head = truncate_chars(full, TITLE_MAX_CHARS - 1);
    let head = match head.rfind(' ') {
        Some(i) if i > TITLE_MAX_CHARS / 2 => &head[..i],
        _ => head,
    };
    format!("{}…", head.trim_end_matches([' ', ',', ';', ':', '-']))
}

/// A word worth talking about; proper nouns keep their spelling and take no article.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Keyword {
    text: String,
    proper: bool,
}

impl Keyword {
    fn phrase(&self) -> String {
        if self.proper { self.text.clone() } else { format!("the {}", self.text) }
    }
}

/// Words after these are usually verbs ("who befriends", "to sail"), which read badly
/// as the subject of a sentence.
const VERB_MARKERS: &[&str] = &[
    "who", "that", "which", "to", "will", "can", "must", "should", "would", "could", "does", "did", "cannot", "won't", "don't", "doesn't",
    "never", "always",
];
const VERB_FOLLOWERS: &[&str] = &[
    "a", "an", "the", "to", "into", "across", "through", "over", "under", "with", "his", "her", "their", "its", "my", "our", "your", "up",
    "down", "out", "away", "back",
];
const LY_NOUNS: &[&str] = &["family", "butterfly", "italy", "july", "lily", "ally", "belly", "jelly", "rally", "valley"];

fn keywords(cleaned: &str) -> Vec<Keyword> {
    let mut out: Vec<Keyword> = Vec::new();
    let normalised: String = cleaned.chars().map(|c| if c.is_alphanumeric() || c == '\'' || c == '-' { c } else { ' ' }).collect();
    let mut prev = String::new();
    let words: Vec<&str> = normalised.split_whitespace().collect();
    for (i, raw) in words.iter().copied().enumerate() {
        let raw = raw.trim_matches(|c| c == '\'' || c == '-');
        let raw = raw.strip_suffix("'s").unwrap_or(raw);
        let lower = raw.to_lowercase();
        let after_marker = VERB_MARKERS.contains(&prev.as_str());
        prev = lower.clone();
        if lower.chars().count() < 3 && lower.is_ascii() {
            continue;
        }
        if STOPWORDS.contains(&lower.as_str()) || lower.chars().all(|c| c.is_numeric()) || after_marker {
            continue;
        }
        if lower.ends_with("ly") && lower.len() > 4 && !LY_NOUNS.contains(&lower.as_str()) {
            continue;
        }
        // "A paper boat crosses a city": a word in -s right after the subject and before an
        // article or preposition is the verb, not another thing the story is about.
        let next = words.get(i + 1).map(|w| w.to_lowercase()).unwrap_or_default();
        if !out.is_empty() && lower.ends_with('s') && !lower.ends_with("ss") && VERB_FOLLOWERS.contains(&next.as_str()) {
            continue;
        }
        // A capital letter mid-sentence marks a name; the first word is capitalised anyway.
        let proper = i > 0 && raw.chars().next().is_some_and(char::is_uppercase);
        let text = truncate_chars(if proper { raw } else { &lower }, KEYWORD_MAX_CHARS).to_string();
        if !out.iter().any(|k| k.text.to_lowercase() == text.to_lowercase()) {
            out.push(Keyword { text, proper });
        }
        if out.len() == 6 {
            break;
        }
    }
    out
}

/// The phrase the script is "about": the first two keywords read as a noun phrase
/// ("the lighthouse keeper"), which fits templates better than the whole prompt.
fn focus_phrase(keywords: &[Keyword]) -> String {
    match keywords {
        [] => FALLBACK_KEYWORDS[0].to_string(),
        [one] => one.phrase(),
        [a, b, ..] if a.proper && b.proper => format!("{} {}", a.text, b.text),
        [a, b, ..] if b.proper => a.phrase(),
        [a, b, ..] => format!("{} {}", a.phrase(), b.text),
    }
}

fn role_of(i: usize, n: usize) -> Role {
    if i == 0 {
        Role::Opening
    } else if i + 1 == n {
        Role::Close
    } else if n >= 4 && i == (n * 2) / 3 {
        Role::Turn
    } else {
        Role::Development
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn narration(template: &str, i: usize, focus: &str, keywords: &[Keyword], rng: &mut Rng) -> String {
    let pool: Vec<String> = if keywords.is_empty() {
        FALLBACK_KEYWORDS[1..].iter().map(|k| format!("the {k}")).collect()
    } else {
        keywords.iter().map(Keyword::phrase).collect()
    };
    // Rotate through the keywords so successive beats talk about different things.
    let offset = i + rng.below(pool.len());
    let a = pool[offset % pool.len()].clone();
    let b = if pool.len() > 1 { pool[(offset + 1) % pool.len()].clone() } else { format!("the {}", FALLBACK_KEYWORDS[2]) };

    let mut text = template
        .replace("{f}", focus)
        .replace("{A}", &capitalise(&a))
        .replace("{B}", &capitalise(&b))
        .replace("{a}", &a)
        .replace("{b}", &b);
    if text.starts_with(|c: char| c.is_lowercase()) {
        text = capitalise(&text);
    }

    let coda = rng.pick(CODAS);
    let wants_coda = rng.below(3) == 0;
    if (wants_coda || text.chars().count() < NARRATION_MIN_CHARS) && text.chars().count() + 1 + coda.chars().count() <= NARRATION_MAX_CHARS
    {
        text.push(' ');
        text.push_str(coda);
    }
    while text.chars().count() < NARRATION_MIN_CHARS {
        text.push_str(" Watch closely.");
    }
    clamp_narration(text)
}

fn templates_for(role: Role) -> &'static [&'static str] {
    match role {
        Role::Opening => OPENING,
        Role::Development => DEVELOPMENT,
        Role::Turn => TURN,
        Role::Close => CLOSE,
    }
}

/// A seeded shuffle of each role's templates, so beats of one script do not repeat a
/// sentence until that role's templates run out.
fn template_orders(rng: &mut Rng) -> [Vec<&'static str>; 4] {
    [Role::Opening, Role::Development, Role::Turn, Role::Close].map(|role| {
        let mut t = templates_for(role).to_vec();
        for i in (1..t.len()).rev() {
            t.swap(i, rng.below(i + 1));
        }
        t
    })
}

/// A safety net: templates and keyword caps keep narrations short, but never trust that.
fn clamp_narration(text: String) -> String {
    if text.chars().count() <= NARRATION_MAX_CHARS {
        return text;
    }
    let head = truncate_chars(&text, NARRATION_MAX_CHARS - 1);
    let head = match head.rfind(' ') {
        Some(i) if head[..i].chars().count() >= NARRATION_MIN_CHARS => &head[..i],
        _ => head,
    };
    format!("{}.", head.trim_end_matches(|c: char| !c.is_alphanumeric()))
}

fn visual(keywords: &[Keyword], i: usize, rng: &mut Rng) -> String {
    let setting = rng.pick(SETTINGS);
    let palette = rng.pick(PALETTES);
    let camera = rng.pick(CAMERA_MOVES);
    let subject = if keywords.is_empty() {
        "a single glowing shape".to_string()
    } else {
        keywords[(i + rng.below(keywords.len())) % keywords.len()].phrase()
    };
    format!("{}, framed around {subject}; {palette} palette; {camera}.", capitalise(setting))
}

/// Longer narrations stay on screen longer; the seed nudges the rhythm by one step.
fn duration_for(narration: &str, rng: &mut Rng) -> u32 {
    let words = narration.split_whitespace().count() as i64;
    let jitter = (rng.below(3) as i64 - 1) * 250;
    let ms = 1750 + words * 90 + jitter;
    let stepped = (ms + 125) / 250 * 250;
    stepped.clamp(2000, 3500) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMPTS: &[&str] = &[
        "A lighthouse keeper who befriends a storm",
        "",
        "   ",
        "!!!???",
        "a",
        "Überraschung: die Katze fährt Fahrrad in Zürich",
        "猫が自転車に乗って東京を走る",
        "🚀🌕 rocket to the moon 🌕🚀",
        "\tline\nbreaks\r\nand\u{0007}bells",
        "NASA's Mars rover meets an old friend",
    ];

    fn long_prompt() -> String {
        let mut s = "supercalifragilisticexpialidocious-and-then-some ".repeat(20);
        s.push_str(&"x".repeat(5000));
        s
    }

    #[test]
    fn deterministic_and_seed_sensitive() {
        for p in PROMPTS {
            let a = write_script(p, 6, 42);
            let b = write_script(p, 6, 42);
            assert_eq!(a, b, "prompt {p:?}");
            let c = write_script(p, 6, 43);
            assert_ne!(a.beats, c.beats, "seed should change wording for {p:?}");
            assert_eq!(a.title, c.title, "title depends on the prompt only");
        }
    }

    #[test]
    fn beat_count_is_clamped() {
        assert_eq!(write_script("x y z", 0, 1).beats.len(), 1);
        for n in 1..=12 {
            assert_eq!(write_script("river journey", n, 1).beats.len(), n as usize);
        }
        assert_eq!(write_script("x", 99, 1).beats.len(), 12);
    }

    #[test]
    fn beats_are_in_range_for_odd_prompts() {
        let long = long_prompt();
        let mut prompts: Vec<&str> = PROMPTS.to_vec();
        prompts.push(&long);
        for p in prompts {
            for seed in 0..40 {
                let s = write_script(p, 12, seed);
                assert!(!s.title.is_empty());
                assert!(s.title.chars().count() <= TITLE_MAX_CHARS, "{}", s.title);
                assert_eq!(s.title, s.title.trim());
                for b in &s.beats {
                    let n = b.narration.chars().count();
                    assert!((40..=160).contains(&n), "{n} chars: {:?}", b.narration);
                    assert!((2000..=3500).contains(&b.duration_ms), "{}", b.duration_ms);
                    assert_eq!(b.duration_ms % 250, 0);
                    assert!(!b.visual.is_empty());
                    assert!(!b.narration.chars().any(char::is_control));
                }
            }
        }
    }

    #[test]
    fn title_is_title_cased() {
        let s = write_script("  a lighthouse keeper of   the north sea  ", 3, 0);
        assert_eq!(s.title, "A Lighthouse Keeper of the North Sea");
        let s = write_script(&long_prompt(), 3, 0);
        assert!(s.title.ends_with('…'));
    }

    #[test]
    fn skips_the_verb_after_the_subject() {
        let words: Vec<String> = keywords("A paper boat crosses a city in the rain").into_iter().map(|k| k.text).collect();
        assert!(!words.contains(&"crosses".to_string()), "{words:?}");
        assert!(words.contains(&"boat".to_string()) && words.contains(&"city".to_string()), "{words:?}");
        let words: Vec<String> = keywords("A lighthouse keeper teaches a gull to read the tides").into_iter().map(|k| k.text).collect();
        assert!(!words.contains(&"teaches".to_string()), "{words:?}");
        assert!(words.contains(&"tides".to_string()), "plural nouns at the end stay: {words:?}");
    }

    #[test]
    fn skips_verbs_and_keeps_names() {
        let k: Vec<String> = keywords(&clean("A lighthouse keeper who befriends a storm near Oslo")).iter().map(Keyword::phrase).collect();
        assert_eq!(k, ["the lighthouse", "the keeper", "the storm", "Oslo"]);
    }

    #[test]
    fn beats_do_not_repeat_sentences() {
        for seed in 0..20 {
            let s = write_script("A lighthouse keeper who befriends a storm", 8, seed);
            for (i, a) in s.beats.iter().enumerate() {
                for b in &s.beats[i + 1..] {
                    assert_ne!(a.narration, b.narration, "seed {seed}");
                }
            }
        }
    }

    #[test]
    fn uses_prompt_words_and_structure() {
        let s = write_script("A lighthouse keeper who befriends a storm", 5, 7);
        let all: String = s.beats.iter().map(|b| b.narration.as_str()).collect();
        assert!(all.contains("lighthouse"));
        assert!(all.contains("storm"));
        for b in &s.beats {
            assert!(b.visual.contains("palette"));
        }
    }
}
