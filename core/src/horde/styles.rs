//! `Horde`'s styles: who may create, change and delete them, and the style a generation request
//! names (a style, or a collection's member), resolved and applied before the request is
//! submitted.

use horde_protocol::image::GenerateImageRequest;
use horde_protocol::styles as wire;
use horde_protocol::text::GenerateTextRequest;
use uuid::Uuid;

use super::Horde;
use crate::horde_ops::op;
use crate::styles::{self as st, Collection, Style, StyleKind, StyleName};
use crate::{HordeError, Result, Submission};

/// What a request's `style` names: a style, or a collection (whose member is drawn at random).
enum Named {
    Style(Style),
    Collection(Collection),
}

pub(super) fn not_found(what: &str, id: &str) -> HordeError {
    let id: String = id.chars().take(100).collect();
    match what {
        "Collection" => HordeError::missing("CollectionNotFound", format!("Collection with ID '{id}' not found.")),
        _ => HordeError::missing("StyleNotFound", format!("Style with ID '{id}' not found.")),
    }
}

pub(super) fn modified(id: String) -> wire::StyleModified {
    wire::StyleModified {
        id,
        message: "OK".into(),
        warnings: Vec::new(),
    }
}

impl Horde {
    /// The viewer's (trusted, moderator, anonymous) flags.
    pub(super) async fn style_author(&self, viewer: i64) -> Result<(bool, bool, bool)> {
        if !self.ensure_user(viewer).await? {
            return Err(HordeError::InvalidApiKey);
        }
        let s = self.local();
        let u = s.users.get(viewer).ok_or(HordeError::InvalidApiKey)?;
        Ok((u.trusted, u.moderator, u.is_anonymous()))
    }

    /// A style of `kind` by id (404 `StyleNotFound`; 400 `StyleGetMistmatch` for the other kind).
    async fn style_of_kind(&self, kind: StyleKind, id: &str) -> Result<Style> {
        if Uuid::parse_str(id.trim()).is_err() {
            return Err(not_found("Style", id));
        }
        let s = self.store.style_by_id(id.trim()).await?.ok_or_else(|| not_found("Style", id))?;
        Self::check_kind(&s, kind)?;
        Ok(s)
    }

    fn check_kind(s: &Style, kind: StyleKind) -> Result<()> {
        if s.kind != kind {
            return Err(HordeError::rejected(
                "StyleGetMistmatch",
                format!(
                    "Style was found but was of the wrong type: {} != {}",
                    s.kind.as_str(),
                    kind.as_str()
                ),
            ));
        }
        Ok(())
    }

    /// `GET /styles/image|text/{id}`.
    pub async fn style_details(&self, kind: StyleKind, id: &str) -> Result<wire::StyleDetails> {
        Ok(self.style_of_kind(kind, id).await?.details())
    }

    /// `GET /styles/image_by_name|text_by_name/{name}`.
    pub async fn style_details_by_name(&self, kind: StyleKind, name: &str) -> Result<wire::StyleDetails> {
        if name.chars().any(char::is_control) {
            return Err(not_found("Style", name));
        }
        let n = StyleName::parse(name);
        let s = self
            .store
            .style_by_name(&n.name, n.user_id)
            .await?
            .ok_or_else(|| not_found("Style", name))?;
        Self::check_kind(&s, kind)?;
        Ok(s.details())
    }

    /// `GET /styles/image|text`: a page of public styles, by tag and model when given.
    pub async fn list_styles(
        &self,
        kind: StyleKind,
        sort: Option<&str>,
        page: Option<i64>,
        tag: Option<&str>,
        model: Option<&str>,
    ) -> Result<Vec<wire::StyleDetails>> {
        let by_age = st::parse_sort(sort)?;
        let page = page.unwrap_or(1).max(1) as usize;
        let styles = self.store.public_styles(kind, by_age).await?;
        let mut out = Vec::new();
        for s in styles
            .into_iter()
            .filter(|s| tag.is_none_or(|t| s.tags.iter().any(|x| x == t)))
            .filter(|s| model.is_none_or(|m| s.models.iter().any(|x| x == m)))
            .skip((page - 1).saturating_mul(st::PAGE_SIZE))
            .take(st::PAGE_SIZE)
        {
            out.push(s.details());
        }
        Ok(out)
    }

    /// `POST /styles/image|text`: trusted users and moderators (the public horde's customizers).
    pub async fn create_style(&self, viewer: i64, kind: StyleKind, input: wire::StyleInput) -> Result<wire::StyleModified> {
        let (trusted, moderator, anonymous) = self.style_author(viewer).await?;
        if !trusted && !moderator {
            return Err(HordeError::forbidden(
                "StylesRequiresCustomizer",
                "Only trusted users and moderators can create new styles.",
            ));
        }
        if anonymous {
            return Err(HordeError::forbidden("StylesAnonForbidden", "Anonymous users cannot create styles"));
        }
        let sharedkey_id = self.style_shared_key(viewer, input.sharedkey.as_deref()).await?;
        let name = st::clean_name(input.name.as_deref().unwrap_or(""), "style")?;
        let prompt = input.prompt.unwrap_or_else(|| kind.default_prompt().to_string());
        st::check_template(kind, &prompt)?;
        st::check_text(&prompt)?;
        let models = st::clean_models(input.models.as_deref().unwrap_or(&[]))?;
        let params = input.params.unwrap_or_else(|| serde_json::json!({}));
        st::check_params(kind, &params, &models, &self.local().cfg)?;
        if self.store.style_name_taken(viewer, &name, "").await? {
            return Err(HordeError::rejected(
                "BadRequest",
                format!("Style with name '{name}' already exists for this user. Please use PATCH to modify an existing style."),
            ));
        }
        let style = Style {
            id: Uuid::new_v4().to_string(),
            kind,
            user_id: viewer,
            creator: String::new(),
            name,
            info: st::clean_info(input.info.as_deref().unwrap_or(""))?,
            prompt,
            params,
            models,
            tags: st::clean_tags(input.tags.as_deref().unwrap_or(&[]))?,
            public: input.public.unwrap_or(true),
            nsfw: input.nsfw.unwrap_or(false),
            use_count: 0,
            created_ms: self.now_ms() as i64,
            examples: Vec::new(),
            sharedkey_id,
        };
        self.store.insert_style(&style).await?;
        Ok(modified(style.id))
    }

    /// The shared key a style's author assigns to it: one of the author's, usable.
    async fn style_shared_key(&self, viewer: i64, key: Option<&str>) -> Result<Option<String>> {
        let Some(k) = key.map(str::trim) else { return Ok(None) };
        let invalid = || HordeError::rejected("SharedKeyInvalid", "This shared key does not exist");
        if Uuid::parse_str(k).is_err() {
            return Err(invalid());
        }
        let key = self
            .store
            .shared_key(k)
            .await?
            .filter(|s| s.user_id == viewer)
            .ok_or_else(invalid)?;
        key.check_usable(self.now_ms())?;
        Ok(Some(key.id))
    }

    /// The shared key that pays for a request naming `reference`: the named style's own, when it
    /// has one that is usable (a collection's styles pay for themselves only when named alone).
    pub async fn style_shared_key_for(&self, reference: Option<&str>) -> Result<Option<crate::shared_keys::SharedKey>> {
        let Some(r) = reference.filter(|r| !r.trim().is_empty()) else {
            return Ok(None);
        };
        let Named::Style(style) = self.named_style(r).await? else {
            return Ok(None);
        };
        let Some(id) = style.sharedkey_id else { return Ok(None) };
        let key = self.store.shared_key(&id).await?;
        Ok(key.filter(|k| k.check_usable(self.now_ms()).is_ok()))
    }

    /// `PATCH /styles/image|text/{id}`: the author only.
    pub async fn modify_style(&self, viewer: i64, kind: StyleKind, id: &str, input: wire::StyleInput) -> Result<wire::StyleModified> {
        self.style_author(viewer).await?;
        let mut s = self.style_of_kind(kind, id).await?;
        if s.user_id != viewer {
            return Err(HordeError::forbidden("Forbidden", "This style is not owned by you."));
        }
        if let Some(k) = self.style_shared_key(viewer, input.sharedkey.as_deref()).await? {
            s.sharedkey_id = Some(k);
        }
        if let Some(n) = input.name.as_deref() {
            let n = st::clean_name(n, "style")?;
            if self.store.style_name_taken(viewer, &n, &s.id).await? {
                return Err(HordeError::rejected(
                    "BadRequest",
                    format!("Style with name '{n}' already exists for this user. Please use a different name if you want to rename."),
                ));
            }
            s.name = n;
        }
        if let Some(i) = input.info.as_deref() {
            s.info = st::clean_info(i)?;
        }
        if let Some(p) = input.prompt {
            s.prompt = p;
        }
        if let Some(m) = input.models.as_deref() {
            s.models = st::clean_models(m)?;
        }
        if let Some(t) = input.tags.as_deref() {
            s.tags = st::clean_tags(t)?;
        }
        if let Some(p) = input.params {
            s.params = p;
        }
        if let Some(v) = input.public {
            s.public = v;
        }
        if let Some(v) = input.nsfw {
            s.nsfw = v;
        }
        st::check_template(kind, &s.prompt)?;
        st::check_text(&s.prompt)?;
        st::check_params(kind, &s.params, &s.models, &self.local().cfg)?;
        self.store.update_style(&s).await?;
        Ok(modified(s.id))
    }

    /// The author or a moderator; never the anonymous user.
    pub(super) async fn may_remove(&self, viewer: i64, owner: i64) -> Result<()> {
        let (_, moderator, anonymous) = self.style_author(viewer).await?;
        if anonymous {
            return Err(HordeError::forbidden("StylesAnonForbidden", "Anonymous users cannot delete styles"));
        }
        if owner != viewer && !moderator {
            return Err(HordeError::forbidden("Forbidden", "This style is not owned by you."));
        }
        Ok(())
    }

    /// `DELETE /styles/image|text/{id}`: the author or a moderator.
    pub async fn delete_style(&self, viewer: i64, kind: StyleKind, id: &str) -> Result<()> {
        let s = self.style_of_kind(kind, id).await?;
        self.may_remove(viewer, s.user_id).await?;
        self.store.delete_style(&s.id).await
    }

    /// `POST /styles/image/{id}/example`: the author or a moderator; at most four, `https://`.
    pub async fn add_style_example(&self, viewer: i64, id: &str, input: wire::StyleExampleInput) -> Result<wire::StyleModified> {
        let s = self.style_of_kind(StyleKind::Image, id).await?;
        self.may_remove(viewer, s.user_id).await?;
        let url = Self::example_url(input.url.as_deref())?;
        if s.examples.len() >= st::MAX_EXAMPLES {
            return Err(HordeError::forbidden(
                "TooManyStyleExamples",
                "You cannot have more than 4 examples for each style",
            ));
        }
        if s.examples.iter().any(|e| e.url == url) {
            return Err(HordeError::rejected(
                "ExampleURLAlreadyInUse",
                format!("The url '{url}' is already used for this style."),
            ));
        }
        let mut examples = s.examples;
        let primary = input.primary.unwrap_or(false) || !examples.iter().any(|e| e.primary);
        if primary {
            examples.iter_mut().for_each(|e| e.primary = false);
        }
        let example = wire::StyleExample {
            id: Uuid::new_v4().to_string(),
            url,
            primary,
        };
        let new_id = example.id.clone();
        examples.push(example);
        self.store.set_style_examples(&s.id, &examples, self.now_ms() as i64).await?;
        Ok(modified(new_id))
    }

    fn example_url(url: Option<&str>) -> Result<String> {
        let url = url.unwrap_or("").trim();
        if !url.starts_with("https://") || url.len() > 1000 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(HordeError::rejected("BadRequest", "The url has to start with 'https://'"));
        }
        Ok(url.to_string())
    }

    /// `PATCH|DELETE /styles/image/{id}/example/{example_id}` (`input` `None` deletes).
    pub async fn change_style_example(
        &self,
        viewer: i64,
        id: &str,
        example_id: &str,
        input: Option<wire::StyleExampleInput>,
    ) -> Result<wire::StyleModified> {
        let s = self.style_of_kind(StyleKind::Image, id).await?;
        self.may_remove(viewer, s.user_id).await?;
        let mut examples = s.examples;
        let at = examples.iter().position(|e| e.id == example_id).ok_or_else(|| {
            HordeError::missing(
                "StyleExampleNotFound",
                format!(
                    "Style Example with ID '{}' not found.",
                    example_id.chars().take(40).collect::<String>()
                ),
            )
        })?;
        match input {
            None => {
                let was_primary = examples.remove(at).primary;
                if was_primary {
                    if let Some(first) = examples.first_mut() {
                        first.primary = true;
                    }
                }
            }
            Some(i) => {
                let url = Self::example_url(i.url.as_deref())?;
                if examples.iter().enumerate().any(|(k, e)| k != at && e.url == url) {
                    return Err(HordeError::rejected(
                        "ExampleURLAlreadyInUse",
                        format!("The url '{url}' is already used for this style."),
                    ));
                }
                examples[at].url = url;
                if i.primary == Some(true) {
                    examples.iter_mut().enumerate().for_each(|(k, e)| e.primary = k == at);
                }
            }
        }
        self.store.set_style_examples(&s.id, &examples, self.now_ms() as i64).await?;
        Ok(modified(example_id.to_string()))
    }

    // ----- applying a style ----------------------------------------------------------------

    /// What `reference` (an id or a name) names: a style first, then a collection.
    async fn named_style(&self, reference: &str) -> Result<Named> {
        let r = reference.trim();
        if r.chars().any(char::is_control) {
            return Err(not_found("Style", reference));
        }
        if Uuid::parse_str(r).is_ok() {
            if let Some(s) = self.store.style_by_id(r).await? {
                return Ok(Named::Style(s));
            }
            if let Some(c) = self.store.collection_by_id(r).await? {
                return Ok(Named::Collection(c));
            }
        }
        let n = StyleName::parse(r);
        if n.collection != Some(true) {
            if let Some(s) = self.store.style_by_name(&n.name, n.user_id).await? {
                return Ok(Named::Style(s));
            }
        }
        if n.collection != Some(false) {
            if let Some(c) = self.store.collection_by_name(&n.name, n.user_id).await? {
                return Ok(Named::Collection(c));
            }
        }
        Err(not_found("Style", reference))
    }

    /// The style a request names, of `kind` (a collection's member drawn at random); counts its use.
    async fn style_for_request(&self, reference: &str, kind: StyleKind) -> Result<Style> {
        let mismatch = || {
            let other = if kind == StyleKind::Image { "Text" } else { "Image" };
            HordeError::rejected(
                "StyleMismatch",
                format!("{other} styles cannot be used on {} requests", kind.as_str()),
            )
        };
        let style = match self.named_style(reference).await? {
            Named::Style(s) => s,
            Named::Collection(c) => {
                if c.kind != kind || c.styles.is_empty() {
                    return Err(mismatch());
                }
                let pick = &c.styles[(rand::random::<u64>() % c.styles.len() as u64) as usize];
                let s = self
                    .store
                    .style_by_id(&pick.id)
                    .await?
                    .ok_or_else(|| not_found("Style", &pick.id))?;
                self.store.count_collection_use(&c.id).await?;
                s
            }
        };
        if style.kind != kind {
            return Err(mismatch());
        }
        self.store.count_style_use(&style.id).await?;
        Ok(style)
    }

    /// An image request with its `style` (if any) applied, and the style's author.
    pub(super) async fn styled_image_request(&self, mut req: GenerateImageRequest) -> Result<(GenerateImageRequest, Option<i64>)> {
        let Some(reference) = req.style.take().filter(|s| !s.trim().is_empty()) else {
            return Ok((req, None));
        };
        let style = self.style_for_request(&reference, StyleKind::Image).await?;
        st::apply::apply_image(&style, &mut req)?;
        Ok((req, Some(style.user_id)))
    }

    /// A text request with its `style` (if any) applied, and the style's author.
    pub(super) async fn styled_text_request(&self, mut req: GenerateTextRequest) -> Result<(GenerateTextRequest, Option<i64>)> {
        let Some(reference) = req.style.take().filter(|s| !s.trim().is_empty()) else {
            return Ok((req, None));
        };
        let style = self.style_for_request(&reference, StyleKind::Text).await?;
        st::apply::apply_text(&style, &mut req)?;
        Ok((req, Some(style.user_id)))
    }

    /// Pays a style's `author` for `requester`'s request that used it, once it is queued (not
    /// for a dry run, nor for the author's own requests).
    pub(super) async fn reward_style_author(&self, author: Option<i64>, requester: i64, submitted: &Submission) -> Result<()> {
        if let (Some(author), Submission::Queued(_)) = (author, submitted) {
            if author != requester && self.ensure_user(author).await? {
                let now = self.now_ms();
                self.run(op::RewardStyleAuthor { author, requester, now }).await?;
            }
        }
        Ok(())
    }

    /// `styles` of a user's details: `(name, id, type)` of each of their styles.
    pub async fn styles_of_user(&self, user_id: i64) -> Result<Vec<(String, String, String)>> {
        self.store.styles_of(user_id).await
    }
}
