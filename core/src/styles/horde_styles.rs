//! `Horde`'s styles and collections: who may create, change and delete them, and the style a
//! generation request names, resolved and applied before the request is submitted.

use horde_protocol::image::GenerateImageRequest;
use horde_protocol::styles as wire;
use horde_protocol::text::GenerateTextRequest;
use uuid::Uuid;

use super::Horde;
use crate::styles::{self as st, Collection, Style, StyleKind, StyleName};
use crate::{HordeError, Result};

/// What a request's `style` names: a style, or a collection (whose member is drawn at random).
enum Named {
    Style(Style),
    Collection(Collection),
}

fn not_found(what: &str, id: &str) -> HordeError {
    let id: String = id.chars().take(100).collect();
    match what {
        "Collection" => HordeError::missing("CollectionNotFound", format!("Collection with ID '{id}' not found.")),
        _ => HordeError::missing("StyleNotFound", format!("Style with ID '{id}' not found.")),
    }
}

fn modified(id: String) -> wire::StyleModified {
    wire::StyleModified {
        id,
        message: "OK".into(),
        warnings: Vec::new(),
    }
}

impl Horde {
    /// The viewer's (trusted, moderator, anonymous) flags.
    async fn style_author(&self, viewer: i64) -> Result<(bool, bool, bool)> {
        if !self.ensure_user(viewer).await? {
            return Err(HordeError::InvalidApiKey);
        }
        let s = self.local();
        let u = s.users.get(viewer).ok_or(HordeError::InvalidApiKey)?;
        Ok((u.trusted, u.moderator, u.is_anonymous()))
    }

    /// A style of `kind` by id (404 `StyleNotFound`; 400 `StyleGetMistmatch` for the other kind).
    async fn style_of_kind(&self, kind: StyleKind, id: &str) -> Result<Style> {
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
            .skip((page - 1) * st::PAGE_SIZE)
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
        Self::check_shared_key(input.sharedkey.as_deref())?;
        let name = st::clean_name(input.name.as_deref().unwrap_or(""), "style")?;
        let prompt = input.prompt.unwrap_or_else(|| kind.default_prompt().to_string());
        st::check_template(kind, &prompt)?;
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
        };
        self.store.insert_style(&style).await?;
        Ok(modified(style.id))
    }

    /// Shared keys are not served yet: a style naming one is refused as naming an unknown key.
    fn check_shared_key(key: Option<&str>) -> Result<()> {
        match key {
            Some(_) => Err(HordeError::rejected("SharedKeyInvalid", "This shared key does not exist")),
            None => Ok(()),
        }
    }

    /// `PATCH /styles/image|text/{id}`: the author only.
    pub async fn modify_style(&self, viewer: i64, kind: StyleKind, id: &str, input: wire::StyleInput) -> Result<wire::StyleModified> {
        self.style_author(viewer).await?;
        let mut s = self.style_of_kind(kind, id).await?;
        if s.user_id != viewer {
            return Err(HordeError::forbidden("Forbidden", "This style is not owned by you."));
        }
        Self::check_shared_key(input.sharedkey.as_deref())?;
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
        st::check_params(kind, &s.params, &s.models, &self.local().cfg)?;
        self.store.update_style(&s).await?;
        Ok(modified(s.id))
    }

    /// The author or a moderator; never the anonymous user.
    async fn may_remove(&self, viewer: i64, owner: i64) -> Result<()> {
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
        if !url.starts_with("https://") || url.len() > 1000 || url.chars().any(char::is_whitespace) {
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

    // ----- collections ---------------------------------------------------------------------

    /// The styles `names` name (ids or names), all of one kind.
    async fn collection_members(&self, names: &[String]) -> Result<(StyleKind, Vec<wire::StyleReference>)> {
        if names.is_empty() {
            return Err(HordeError::rejected("BadRequest", "A collection has to include at least 1 style"));
        }
        let mut kind = None;
        let mut out: Vec<wire::StyleReference> = Vec::new();
        for n in names {
            let s = match self.store.style_by_id(n.trim()).await? {
                Some(s) => s,
                None => {
                    let parsed = StyleName::parse(n);
                    self.store.style_by_name(&parsed.name, parsed.user_id).await?.ok_or_else(|| {
                        HordeError::rejected(
                            "BadRequest",
                            format!("A style with name '{}' cannot be found", n.chars().take(100).collect::<String>()),
                        )
                    })?
                }
            };
            if kind.is_some_and(|k| k != s.kind) {
                return Err(HordeError::rejected(
                    "BadRequest",
                    "Cannot mix image and text styles in the same collection",
                ));
            }
            kind = Some(s.kind);
            if !out.iter().any(|r| r.id == s.id) {
                out.push(wire::StyleReference {
                    name: s.unique_name(),
                    id: s.id.clone(),
                });
            }
        }
        Ok((kind.unwrap_or(StyleKind::Image), out))
    }

    /// `POST /collections`: any registered user.
    pub async fn create_collection(&self, viewer: i64, input: wire::CollectionInput) -> Result<wire::StyleModified> {
        let (_, _, anonymous) = self.style_author(viewer).await?;
        if anonymous {
            return Err(HordeError::forbidden(
                "StylesAnonForbidden",
                "Anonymous users cannot create collections",
            ));
        }
        let (kind, styles) = self.collection_members(input.styles.as_deref().unwrap_or(&[])).await?;
        let name = st::clean_name(input.name.as_deref().unwrap_or(""), "collection")?;
        if self.store.collection_name_taken(viewer, &name, "").await? {
            return Err(HordeError::rejected(
                "BadRequest",
                format!("Collection with name '{name}' already exists for this user."),
            ));
        }
        let c = Collection {
            id: Uuid::new_v4().to_string(),
            kind,
            user_id: viewer,
            creator: String::new(),
            name,
            info: st::clean_info(input.info.as_deref().unwrap_or(""))?,
            public: input.public.unwrap_or(true),
            use_count: 0,
            created_ms: self.now_ms() as i64,
            styles,
        };
        self.store.save_collection(&c, true).await?;
        Ok(modified(c.id))
    }

    async fn collection_by_id(&self, id: &str) -> Result<Collection> {
        self.store
            .collection_by_id(id.trim())
            .await?
            .ok_or_else(|| not_found("Collection", id))
    }

    /// `PATCH /collections/{id}`: the author only.
    pub async fn modify_collection(&self, viewer: i64, id: &str, input: wire::CollectionInput) -> Result<wire::StyleModified> {
        self.style_author(viewer).await?;
        let mut c = self.collection_by_id(id).await?;
        if c.user_id != viewer {
            return Err(HordeError::forbidden("Forbidden", "This collection is not owned by you."));
        }
        if let Some(n) = input.name.as_deref() {
            let n = st::clean_name(n, "collection")?;
            if self.store.collection_name_taken(viewer, &n, &c.id).await? {
                return Err(HordeError::rejected(
                    "BadRequest",
                    format!("Collection with name '{n}' already exists for this user."),
                ));
            }
            c.name = n;
        }
        if let Some(i) = input.info.as_deref() {
            c.info = st::clean_info(i)?;
        }
        if let Some(p) = input.public {
            c.public = p;
        }
        if let Some(names) = input.styles.as_deref() {
            let (kind, styles) = self.collection_members(names).await?;
            c.kind = kind;
            c.styles = styles;
        }
        self.store.save_collection(&c, false).await?;
        Ok(modified(c.id))
    }

    /// `DELETE /collections/{id}`: the author or a moderator.
    pub async fn delete_collection(&self, viewer: i64, id: &str) -> Result<()> {
        let c = self.collection_by_id(id).await?;
        self.may_remove(viewer, c.user_id).await?;
        self.store.delete_collection(&c.id).await
    }

    /// `GET /collections/{id}`.
    pub async fn collection_details(&self, id: &str) -> Result<wire::CollectionDetails> {
        Ok(self.collection_by_id(id).await?.details())
    }

    /// `GET /collection_by_name/{name}`.
    pub async fn collection_details_by_name(&self, name: &str) -> Result<wire::CollectionDetails> {
        let n = StyleName::parse(name);
        let c = self
            .store
            .collection_by_name(&n.name, n.user_id)
            .await?
            .ok_or_else(|| not_found("Collection", name))?;
        Ok(c.details())
    }

    /// `GET /collections?sort&page&type`.
    pub async fn list_collections(
        &self,
        sort: Option<&str>,
        page: Option<i64>,
        kind: Option<&str>,
    ) -> Result<Vec<wire::CollectionDetails>> {
        let by_age = st::parse_sort(sort)?;
        let kind = match kind.unwrap_or("all") {
            "all" => None,
            k => Some(
                StyleKind::parse(k)
                    .ok_or_else(|| HordeError::rejected("BadRequest", "'type' needs to be one of ['all', 'image', 'text']"))?,
            ),
        };
        let page = page.unwrap_or(1).max(1);
        let size = st::PAGE_SIZE as i64;
        let list = self.store.public_collections(kind, by_age, (page - 1) * size, size).await?;
        Ok(list.iter().map(Collection::details).collect())
    }

    // ----- applying a style ----------------------------------------------------------------

    /// What `reference` (an id or a name) names: a style first, then a collection.
    async fn named_style(&self, reference: &str) -> Result<Named> {
        let r = reference.trim();
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

    /// An image request with its `style` (if any) applied.
    pub(super) async fn styled_image_request(&self, mut req: GenerateImageRequest) -> Result<GenerateImageRequest> {
        let Some(reference) = req.style.take().filter(|s| !s.trim().is_empty()) else {
            return Ok(req);
        };
        let style = self.style_for_request(&reference, StyleKind::Image).await?;
        st::apply::apply_image(&style, &mut req)?;
        Ok(req)
    }

    /// A text request with its `style` (if any) applied.
    pub(super) async fn styled_text_request(&self, mut req: GenerateTextRequest) -> Result<GenerateTextRequest> {
        let Some(reference) = req.style.take().filter(|s| !s.trim().is_empty()) else {
            return Ok(req);
        };
        let style = self.style_for_request(&reference, StyleKind::Text).await?;
        st::apply::apply_text(&style, &mut req)?;
        Ok(req)
    }

    /// `styles` of a user's details: `(name, id, type)` of each of their styles.
    pub async fn styles_of_user(&self, user_id: i64) -> Result<Vec<(String, String, String)>> {
        self.store.styles_of(user_id).await
    }
}
