//! The two-context CSAM filter (DESIGN item 9). Moderators keep regexes in groups: "underage"
//! (types 10, replaceable, and 11) and "lewd" (type 20). A prompt matching one group passes. One
//! matching both is rewritten when the request allows it (`replacement_filter`, prompt under 1000
//! characters): each type-10 match becomes its adult replacement, and the result must then pass.
//! Otherwise it is refused (`CorruptPrompt`), and the caller times the client's IP out.
//!
//! Only the positive prompt (before `###`) is checked, after normalization: weights syntax such
//! as `(word:1.2)` is unwrapped, accents are stripped, punctuation becomes spaces, spaced-out
//! letters (`c h i l d`) are joined, whitespace is collapsed, and case is folded.

use regex::{Regex, RegexBuilder};
use unicode_normalization::UnicodeNormalization;

use crate::{HordeError, Result};

/// Replaceable "underage" terms.
pub const UNDERAGE_REPLACEABLE: i64 = 10;
/// "Underage" terms without a replacement.
pub const UNDERAGE: i64 = 11;
/// "Lewd" terms.
pub const LEWD: i64 = 20;
/// Prompts at least this long are refused rather than rewritten.
pub const MAX_REPLACEABLE_CHARS: usize = 1000;
/// Longest regex a moderator may store.
pub const MAX_REGEX_CHARS: usize = 4000;

/// One stored regex.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FilterRule {
    pub id: i64,
    pub regex: String,
    pub filter_type: i64,
    pub description: String,
    pub replacement: String,
    /// The moderator who last changed it (0: shipped).
    pub user_id: i64,
}

/// What the filter decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterOutcome {
    /// Passes unchanged.
    Pass,
    /// Passes as this rewritten prompt.
    Replaced(String),
    /// Refused.
    Corrupt,
}

/// The compiled filter.
#[derive(Debug, Clone, Default)]
pub struct PromptFilter {
    rules: Vec<FilterRule>,
    /// Type-10 rules with their compiled regex, applied to the raw prompt when rewriting.
    replaceable: Vec<(Regex, String)>,
    underage: Option<Regex>,
    lewd: Option<Regex>,
}

/// Compiles one rule's regex (case-insensitive, size-bounded).
pub fn compile(regex: &str) -> Result<Regex> {
    if regex.is_empty() || regex.chars().count() > MAX_REGEX_CHARS {
        return Err(HordeError::Validation(format!("regex must be 1 to {MAX_REGEX_CHARS} characters.")));
    }
    RegexBuilder::new(regex)
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| HordeError::Validation(format!("invalid regex: {e}")))
}

/// Checks a rule's fields before it is stored.
pub fn validate_rule(regex: &str, filter_type: i64) -> Result<()> {
    if ![UNDERAGE_REPLACEABLE, UNDERAGE, LEWD].contains(&filter_type) {
        return Err(HordeError::Validation("filter_type must be 10, 11 or 20.".into()));
    }
    compile(regex).map(|_| ())
}

fn alternation(rules: &[&FilterRule]) -> Result<Option<Regex>> {
    if rules.is_empty() {
        return Ok(None);
    }
    let joined: Vec<String> = rules.iter().map(|r| format!("(?:{})", r.regex)).collect();
    compile(&joined.join("|")).map(Some)
}

/// The prompt as the filter reads it.
pub fn normalize(prompt: &str) -> String {
    // Accents off (NFKD, then drop combining marks), case folded.
    let folded: String = prompt
        .nfkd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .collect::<String>()
        .to_lowercase();
    // Weights: "(word:1.2)" → "word"; then punctuation → space.
    let mut out = String::with_capacity(folded.len());
    let mut chars = folded.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek().is_some_and(|n| n.is_ascii_digit() || *n == '.') {
            while chars.peek().is_some_and(|n| n.is_ascii_digit() || *n == '.') {
                chars.next();
            }
            out.push(' ');
        } else if c.is_alphanumeric() {
            out.push(c);
        } else {
            out.push(' ');
        }
    }
    // Spaced-out letters: runs of three or more single characters are joined (a leading "a" or
    // "i" stays a word of its own: "a c h i l d" reads "a child").
    let words: Vec<&str> = out.split_whitespace().collect();
    let mut joined: Vec<String> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let mut j = i;
        while j < words.len() && words[j].chars().count() == 1 {
            j += 1;
        }
        if j - i >= 3 {
            if j - i >= 4 && matches!(words[i], "a" | "i") {
                joined.push(words[i].to_string());
                i += 1;
            }
            joined.push(words[i..j].concat());
            i = j;
        } else {
            joined.push(words[i].to_string());
            i += 1;
        }
    }
    joined.join(" ")
}

/// The positive part of a prompt (before `###`) and the rest (with its `###`).
fn split(prompt: &str) -> (&str, &str) {
    match prompt.find("###") {
        Some(i) => (&prompt[..i], &prompt[i..]),
        None => (prompt, ""),
    }
}

impl PromptFilter {
    pub fn new(rules: Vec<FilterRule>) -> Result<Self> {
        let of = |types: &[i64]| -> Vec<&FilterRule> { rules.iter().filter(|r| types.contains(&r.filter_type)).collect() };
        let underage = alternation(&of(&[UNDERAGE_REPLACEABLE, UNDERAGE]))?;
        let lewd = alternation(&of(&[LEWD]))?;
        let mut replaceable = Vec::new();
        for r in rules.iter().filter(|r| r.filter_type == UNDERAGE_REPLACEABLE) {
            replaceable.push((compile(&r.regex)?, r.replacement.clone()));
        }
        Ok(Self {
            rules,
            replaceable,
            underage,
            lewd,
        })
    }

    pub fn rules(&self) -> &[FilterRule] {
        &self.rules
    }

    /// The compiled alternation of one type (for `GET /filters/regex`).
    pub fn regex_of(&self, filter_type: i64) -> Option<String> {
        let parts: Vec<String> = self
            .rules
            .iter()
            .filter(|r| r.filter_type == filter_type)
            .map(|r| format!("(?:{})", r.regex))
            .collect();
        (!parts.is_empty()).then(|| parts.join("|"))
    }

    /// Which contexts a positive prompt touches: (underage, lewd).
    pub fn contexts(&self, positive: &str) -> (bool, bool) {
        let n = normalize(positive);
        (
            self.underage.as_ref().is_some_and(|r| r.is_match(&n)),
            self.lewd.as_ref().is_some_and(|r| r.is_match(&n)),
        )
    }

    /// The rules of `filter_type` (all with `None`) that match a prompt, for moderators' checks.
    pub fn matches(&self, prompt: &str, filter_type: Option<i64>) -> Vec<String> {
        let n = normalize(split(prompt).0);
        self.rules
            .iter()
            .filter(|r| filter_type.is_none_or(|t| t == r.filter_type))
            .filter_map(|r| compile(&r.regex).ok().and_then(|re| re.find(&n).map(|m| m.as_str().to_string())))
            .collect()
    }

    /// Decides on an image prompt.
    pub fn check(&self, prompt: &str, replacement_filter: bool) -> FilterOutcome {
        let (positive, rest) = split(prompt);
        let (underage, lewd) = self.contexts(positive);
        if !(underage && lewd) {
            return FilterOutcome::Pass;
        }
        if !replacement_filter || positive.chars().count() >= MAX_REPLACEABLE_CHARS {
            return FilterOutcome::Corrupt;
        }
        let mut rewritten = positive.to_string();
        for (re, replacement) in &self.replaceable {
            rewritten = re.replace_all(&rewritten, replacement.as_str()).into_owned();
        }
        let (still_underage, _) = self.contexts(&rewritten);
        if still_underage || rewritten.trim().is_empty() {
            return FilterOutcome::Corrupt;
        }
        FilterOutcome::Replaced(format!("{rewritten}{rest}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: i64, regex: &str, t: i64, replacement: &str) -> FilterRule {
        FilterRule {
            id,
            regex: regex.into(),
            filter_type: t,
            description: String::new(),
            replacement: replacement.into(),
            user_id: 0,
        }
    }

    fn filter() -> PromptFilter {
        PromptFilter::new(vec![
            rule(1, r"\b(child|children|kid|kids)\b", UNDERAGE_REPLACEABLE, "adult"),
            rule(2, r"\b(little|young) girls?\b", UNDERAGE_REPLACEABLE, "adult woman"),
            rule(3, r"\b([1-9]|1[0-7]) ?(yo|years? old)\b", UNDERAGE, ""),
            rule(4, r"\b(nude|naked|nsfw|lewd)\b", LEWD, ""),
        ])
        .expect("compiles")
    }

    #[test]
    fn normalization_defeats_tricks() {
        assert_eq!(normalize("(Child:1.3), NAKED!"), "child naked");
        assert_eq!(normalize("a c h i l d in a field"), "a child in a field");
        assert_eq!(normalize("Chïld   nüde"), "child nude");
        assert_eq!(normalize("k.i.d"), "kid");
    }

    #[test]
    fn two_contexts_table() {
        let f = filter();
        use FilterOutcome::*;
        let long = format!("{} child nude", "word ".repeat(250));
        let cases: Vec<(&str, bool, FilterOutcome)> = vec![
            ("a child playing in a park", true, Pass),
            ("a nude statue", true, Pass),
            ("a nude statue ### child", true, Pass),
            ("a child, nude", true, Replaced("a adult, nude".into())),
            ("(child:1.2) nude", true, Replaced("(adult:1.2) nude".into())),
            (
                "a little girl, naked ### blurry",
                true,
                Replaced("a adult woman, naked ### blurry".into()),
            ),
            ("a child, nude", false, Corrupt),
            ("c h i l d nude", true, Corrupt),
            ("k i d aa kid nude", true, Corrupt),
            ("Chïld nüde", true, Corrupt),
            ("a 12 yo, nsfw", true, Corrupt),
            (long.as_str(), true, Corrupt),
        ];
        for (prompt, replace, expected) in cases {
            assert_eq!(f.check(prompt, replace), expected, "{prompt}");
        }
    }

    #[test]
    fn rules_are_validated() {
        assert!(validate_rule("(", LEWD).is_err());
        assert!(validate_rule("ok", 5).is_err());
        assert!(validate_rule("ok", LEWD).is_ok());
        let f = filter();
        assert_eq!(f.matches("a child, nude", Some(LEWD)), vec!["nude".to_string()]);
        assert_eq!(f.matches("a child, nude", None).len(), 2);
        assert!(f.regex_of(LEWD).is_some_and(|r| r.contains("nude")));
    }
}
