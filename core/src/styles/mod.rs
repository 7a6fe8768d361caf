//! Styles and collections: stored prompt templates, with the parameters and models a request
//! that names one gets (`style` on `/generate/async` and `/generate/text/async`).
//!
//! Styles live in the database only (every process of a horde reads the same rows), so they
//! need no operation on the replicated state: a request's style is resolved and applied before
//! the request is submitted.

pub mod apply;

use horde_protocol::styles as wire;
use serde_json::Value;

use crate::{HordeError, Result};

/// Styles a page of `GET /styles/…` or `/collections` lists.
pub const PAGE_SIZE: usize = 25;
/// Most models a style names.
pub const MAX_MODELS: usize = 5;
/// Most tags a style carries.
pub const MAX_TAGS: usize = 10;
/// Most example images of an image style.
pub const MAX_EXAMPLES: usize = 4;

/// Which requests a style serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StyleKind {
    Image,
    Text,
}

impl StyleKind {
    /// The name stored and shown (`image`, `text`).
    pub fn as_str(self) -> &'static str {
        match self {
            StyleKind::Image => "image",
            StyleKind::Text => "text",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "image" => Some(StyleKind::Image),
            "text" => Some(StyleKind::Text),
            _ => None,
        }
    }

    /// The template a style gets when it gives none.
    pub fn default_prompt(self) -> &'static str {
        match self {
            StyleKind::Image => "{p}{np}",
            StyleKind::Text => "{p}",
        }
    }
}

/// A stored style.
#[derive(Debug, Clone, PartialEq)]
pub struct Style {
    pub id: String,
    pub kind: StyleKind,
    pub user_id: i64,
    /// The author as `name#id` (read with the style).
    pub creator: String,
    pub name: String,
    pub info: String,
    pub prompt: String,
    /// A JSON object of generation parameters.
    pub params: Value,
    pub models: Vec<String>,
    pub tags: Vec<String>,
    pub public: bool,
    pub nsfw: bool,
    pub use_count: i64,
    pub created_ms: i64,
    pub examples: Vec<wire::StyleExample>,
    /// The author's shared key that pays for requests using this style.
    pub sharedkey_id: Option<String>,
}

impl Style {
    /// `author#id::style::name`, the name requests and collections may use.
    pub fn unique_name(&self) -> String {
        format!("{}::style::{}", self.creator, self.name)
    }

    pub fn details(&self) -> wire::StyleDetails {
        wire::StyleDetails {
            id: self.id.clone(),
            name: self.name.clone(),
            info: self.info.clone(),
            prompt: self.prompt.clone(),
            params: self.params.clone(),
            tags: self.tags.clone(),
            models: self.models.clone(),
            examples: (self.kind == StyleKind::Image).then(|| self.examples.clone()),
            creator: self.creator.clone(),
            use_count: self.use_count,
            public: self.public,
            nsfw: self.nsfw,
        }
    }
}

/// A stored collection of styles of one kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Collection {
    pub id: String,
    pub kind: StyleKind,
    pub user_id: i64,
    pub creator: String,
    pub name: String,
    pub info: String,
    pub public: bool,
    pub use_count: i64,
    pub created_ms: i64,
    /// Member styles' ids and unique names, in the order given.
    pub styles: Vec<wire::StyleReference>,
}

impl Collection {
    pub fn details(&self) -> wire::CollectionDetails {
        wire::CollectionDetails {
            id: self.id.clone(),
            name: self.name.clone(),
            info: self.info.clone(),
            kind: self.kind.as_str().to_string(),
            creator: self.creator.clone(),
            use_count: self.use_count,
            public: self.public,
            styles: self.styles.clone(),
        }
    }
}

/// How a list is ordered: `popular` (most used first) or `age` (oldest first).
pub fn parse_sort(sort: Option<&str>) -> Result<bool> {
    match sort.unwrap_or("popular") {
        "popular" => Ok(false),
        "age" => Ok(true),
        _ => Err(HordeError::rejected("BadRequest", "'sort' needs to be one of ['popular', 'age']")),
    }
}

/// A style or collection name: trimmed, 1 to 100 characters, no control characters and no `::`
/// (which separates the parts of a unique name).
pub fn clean_name(name: &str, what: &str) -> Result<String> {
    let name = name.trim();
    let len = name.chars().count();
    if len == 0 || len > 100 || name.chars().any(char::is_control) || name.contains("::") {
        return Err(HordeError::rejected(
            "BadRequest",
            format!("The {what} name must be 1 to 100 characters, without control characters or '::'."),
        ));
    }
    Ok(name.to_string())
}

/// Free text about a style or collection: at most 1000 characters.
pub fn clean_info(info: &str) -> Result<String> {
    let info = info.trim();
    if info.chars().count() > 1000 || info.chars().any(|c| c.is_control() && c != '\n') {
        return Err(HordeError::rejected("BadRequest", "The info must be at most 1000 characters."));
    }
    Ok(info.to_string())
}

/// The template holds `{p}` (and `{np}` for images).
pub fn check_template(kind: StyleKind, prompt: &str) -> Result<()> {
    if !prompt.contains("{p}") {
        return Err(HordeError::rejected(
            "StylePromptMissingVars",
            "A style prompt must include a dedicated spot where the user's positive prompt will be added, signified with '{p}'",
        ));
    }
    if kind == StyleKind::Image && !prompt.contains("{np}") {
        return Err(HordeError::rejected(
            "StylePromptMissingVars",
            "A style prompt must include a dedicated spot where the user's negative prompt will be added, signified with '{np}'",
        ));
    }
    Ok(())
}

/// A template: at most 10,000 characters, no NUL.
pub fn check_text(prompt: &str) -> Result<()> {
    if prompt.chars().count() > 10_000 || prompt.contains('\0') {
        return Err(HordeError::rejected(
            "BadRequest",
            "A style prompt must be at most 10000 characters, without NUL.",
        ));
    }
    Ok(())
}

/// One to five model names, each cut to 100 characters, duplicates dropped.
pub fn clean_models(models: &[String]) -> Result<Vec<String>> {
    if models.len() > MAX_MODELS {
        return Err(HordeError::rejected("BadRequest", "A style can only use a maximum of 5 models."));
    }
    let mut out: Vec<String> = Vec::new();
    for m in models {
        let m: String = m.trim().chars().filter(|c| !c.is_control()).take(100).collect();
        if !m.is_empty() && !out.contains(&m) {
            out.push(m);
        }
    }
    if out.is_empty() {
        return Err(HordeError::rejected("BadRequest", "A style has to specify at least one model."));
    }
    Ok(out)
}

/// At most ten tags, each cut to 100 characters, duplicates dropped.
pub fn clean_tags(tags: &[String]) -> Result<Vec<String>> {
    if tags.len() > MAX_TAGS {
        return Err(HordeError::rejected("BadRequest", "A style can be tagged a maximum of 10 times."));
    }
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        let t: String = t.trim().chars().filter(|c| !c.is_control()).take(100).collect();
        if !t.is_empty() && !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// The parameters are a JSON object a request of `kind` accepts (checked by parsing a request
/// that carries them, under the horde's own bounds).
pub fn check_params(kind: StyleKind, params: &Value, models: &[String], cfg: &crate::config::HordeConfig) -> Result<()> {
    if !params.is_object() {
        return Err(HordeError::Validation("params must be a JSON object.".into()));
    }
    let bad = |e: serde_json::Error| HordeError::Validation(format!("params: {e}"));
    match kind {
        StyleKind::Image => {
            let req = horde_protocol::image::GenerateImageRequest {
                prompt: Some("style check".into()),
                params: Some(serde_json::from_value(params.clone()).map_err(bad)?),
                models: Some(models.to_vec()),
                ..Default::default()
            };
            crate::image::ImageRequest::parse(req, cfg)?;
        }
        StyleKind::Text => {
            let req = horde_protocol::text::GenerateTextRequest {
                prompt: Some("style check".into()),
                params: Some(serde_json::from_value(params.clone()).map_err(bad)?),
                models: Some(models.to_vec()),
                ..Default::default()
            };
            crate::text::TextRequest::try_from(req)?;
        }
    }
    Ok(())
}

/// How a request names a style: an id, or a name (`name`, `author#id::name`,
/// `style::name`, `collection::name`, `style::author#id::name`, `collection::author#id::name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StyleName {
    pub name: String,
    /// The author's id, when the name gives `author#id`.
    pub user_id: Option<i64>,
    /// `Some(true)` for `collection::…`, `Some(false)` for `style::…`.
    pub collection: Option<bool>,
}

impl StyleName {
    pub fn parse(s: &str) -> StyleName {
        let parts: Vec<&str> = s.split("::").collect();
        let kind = |p: &str| match p {
            "collection" => Some(true),
            "style" => Some(false),
            _ => None,
        };
        let author = |p: &str| p.rsplit_once('#').and_then(|(_, id)| id.parse::<i64>().ok());
        match parts.as_slice() {
            [a, b, name] => {
                // Both orders occur: `style::author#1::name` and `author#1::style::name`.
                let (k, u) = if kind(a).is_some() {
                    (kind(a), author(b))
                } else {
                    (kind(b), author(a))
                };
                StyleName {
                    name: name.to_string(),
                    user_id: u,
                    collection: k,
                }
            }
            [a, name] => StyleName {
                name: name.to_string(),
                user_id: author(a),
                collection: kind(a),
            },
            _ => StyleName {
                name: s.to_string(),
                user_id: None,
                collection: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_in_every_public_form() {
        let n = StyleName::parse("alice#7::style::impasto");
        assert_eq!((n.name.as_str(), n.user_id, n.collection), ("impasto", Some(7), Some(false)));
        let n = StyleName::parse("collection::bob#3::set");
        assert_eq!((n.name.as_str(), n.user_id, n.collection), ("set", Some(3), Some(true)));
        let n = StyleName::parse("bob#3::set");
        assert_eq!((n.name.as_str(), n.user_id, n.collection), ("set", Some(3), None));
        let n = StyleName::parse("plain");
        assert_eq!((n.name.as_str(), n.user_id, n.collection), ("plain", None, None));
    }

    #[test]
    fn templates_need_their_placeholders() {
        assert!(check_template(StyleKind::Image, "{p}, oil###{np}").is_ok());
        assert!(check_template(StyleKind::Image, "{p}, oil").is_err());
        assert!(check_template(StyleKind::Text, "Story: {p}").is_ok());
        assert!(check_template(StyleKind::Text, "Story").is_err());
    }

    #[test]
    fn models_and_tags_are_bounded() {
        assert!(clean_models(&[]).is_err());
        assert!(clean_models(&["a", "b", "c", "d", "e", "f"].map(String::from)).is_err());
        assert_eq!(
            clean_models(&["a".into(), "a".into(), "b".into()]).ok(),
            Some(vec!["a".into(), "b".into()])
        );
        assert!(clean_tags(&["t"; 11].map(String::from)).is_err());
    }
}
