//! `Horde`'s collections of styles: any account makes them from styles of one kind; their
//! author changes them; the author or a moderator deletes them.

use horde_protocol::styles as wire;
use uuid::Uuid;

use super::styles::{modified, not_found};
use super::Horde;
use crate::styles::{self as st, Collection, StyleKind, StyleName};
use crate::{HordeError, Result};

impl Horde {
    /// The styles `names` name (ids or names), all of one kind.
    async fn collection_members(&self, names: &[String]) -> Result<(StyleKind, Vec<wire::StyleReference>)> {
        if names.is_empty() {
            return Err(HordeError::rejected("BadRequest", "A collection has to include at least 1 style"));
        }
        let mut kind = None;
        let mut out: Vec<wire::StyleReference> = Vec::new();
        for n in names {
            let by_id = match Uuid::parse_str(n.trim()) {
                Ok(_) => self.store.style_by_id(n.trim()).await?,
                Err(_) if n.chars().any(char::is_control) => {
                    return Err(HordeError::rejected("BadRequest", "A style name cannot hold control characters"));
                }
                Err(_) => None,
            };
            let s = match by_id {
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
        if Uuid::parse_str(id.trim()).is_err() {
            return Err(not_found("Collection", id));
        }
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
        if name.chars().any(char::is_control) {
            return Err(not_found("Collection", name));
        }
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
        let list = self
            .store
            .public_collections(kind, by_age, (page - 1).saturating_mul(size), size)
            .await?;
        Ok(list.iter().map(Collection::details).collect())
    }
}
