//! `ModelSet`: the facade that keeps every model consistent — interners, item-item, EASE
//! (dense, or sparse past `ease_max_items`) and contextual popularity learn, unlearn and
//! forget together — and blends their scores
//! into one personal list with explanations. Each model stays usable alone; this type only
//! routes calls and blends. Never does I/O and never keeps a forgotten subject's name.
//!
//! The rooms: this file holds the type, its interners, accessors and settings levers, and
//! the export view; `config` the settings; `learning` learn, unlearn and refresh; `forget`
//! the erasure of one subject; `recommend` the blended personal list and the pass-through
//! answers (similar, popular, buy again).

mod config;
mod forget;
mod learning;
mod recommend;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::ease::EaseModel;
use crate::error::Result;
use crate::ids::{Catalogue, Interner, ItemId, SubjectId, Subjects};
use crate::interaction::{Context, CountryId, UnixSeconds};
use crate::item_item::ItemItemModel;
use crate::popularity::PopularityModel;
use crate::sparse_ease::SparseEaseModel;

pub use config::{BlendConfig, ModelSetConfig};
pub use forget::ForgetReport;
pub use learning::{ModelRefreshOutcome, ModelRefreshPlan};
pub use recommend::RecommendScratch;

/// Everything the models hold about one subject, for data exports.
#[derive(Clone, Debug, PartialEq)]
pub struct SubjectView {
    /// Held items with the times of their events (item codes, not ids).
    pub held_items: Vec<HeldItemView>,
}

/// One held item in a `SubjectView`.
#[derive(Clone, Debug, PartialEq)]
pub struct HeldItemView {
    pub item_code: String,
    pub event_times: Vec<UnixSeconds>,
}

/// Every model, kept consistent.
pub struct ModelSet {
    config: ModelSetConfig,
    catalogue: Catalogue,
    subjects: Subjects,
    countries: Interner,
    item_item: ItemItemModel,
    /// Dense EASE while the catalogue is within `ease_max_items`, else `None`.
    ease: Option<EaseModel>,
    /// Sparse EASE once the catalogue has passed `ease_max_items` (then `ease` is `None`).
    sparse_ease: Option<SparseEaseModel>,
    popularity: PopularityModel,
    /// Normalised contextual trending scores per request context, emptied whenever the
    /// popularity counts change (every mutation takes `&mut self`).
    trending_cache: Mutex<HashMap<Context, Arc<Vec<f32>>>>,
}

impl ModelSet {
    /// An empty set.
    pub fn new(config: ModelSetConfig) -> Result<ModelSet> {
        // Every setting is checked here, before anything is learned: a bad one found later
        // (say, in the middle of a forget) would leave the models half-changed.
        crate::ease::check_config(&config.ease)?;
        crate::sparse_ease::check_config(&config.sparse_ease)?;
        Ok(ModelSet {
            item_item: ItemItemModel::new(config.item_item.clone()),
            ease: Some(EaseModel::new(config.ease.clone())),
            sparse_ease: None,
            popularity: PopularityModel::new(config.popularity.clone())?,
            catalogue: Catalogue::default(),
            subjects: Subjects::default(),
            countries: Interner::default(),
            trending_cache: Mutex::new(HashMap::new()),
            config,
        })
    }

    /// A set whose interners are the given ones (interactions already carry their ids).
    pub fn with_names(
        config: ModelSetConfig,
        catalogue: Catalogue,
        subjects: Subjects,
        countries: Interner,
    ) -> Result<ModelSet> {
        let mut model_set = ModelSet::new(config)?;
        model_set.catalogue = catalogue;
        model_set.subjects = subjects;
        model_set.countries = countries;
        Ok(model_set)
    }

    /// The id of item `code` (added to the catalogue if new).
    pub fn item(&mut self, code: &str) -> ItemId {
        self.catalogue.intern(code)
    }

    /// The id of subject `name` (assigned if new).
    pub fn subject(&mut self, name: &str) -> SubjectId {
        self.subjects.intern(name)
    }

    /// The id of country `name` (assigned if new).
    pub fn country(&mut self, name: &str) -> CountryId {
        CountryId(self.countries.intern(name).min(u16::MAX as u32) as u16)
    }

    /// The id of country `name`, if any interaction named it (nothing is assigned).
    pub fn country_id(&self, name: &str) -> Option<CountryId> {
        self.countries
            .get(name)
            .map(|id| CountryId(id.min(u16::MAX as u32) as u16))
    }

    /// The catalogue.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// The subjects.
    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// The item-item model.
    pub fn item_item(&self) -> &ItemItemModel {
        &self.item_item
    }

    /// The EASE model, if the catalogue is small enough to keep one.
    pub fn ease(&self) -> Option<&EaseModel> {
        self.ease.as_ref()
    }

    /// Sparse EASE's settings as the set uses them: EASE's kinds, history weighting and
    /// contribution bound (it takes over EASE's histories and place in the blend when the
    /// catalogue passes `ease_max_items`), with its own λ and neighbourhood size.
    fn sparse_ease_config(&self) -> crate::sparse_ease::SparseEaseConfig {
        let ease = &self.config.ease;
        crate::sparse_ease::SparseEaseConfig {
            held_kinds: ease.held_kinds,
            history_half_life_days: ease.history_half_life_days,
            max_history_items: ease.max_history_items,
            max_contributed_items: ease.max_contributed_items,
            ..self.config.sparse_ease.clone()
        }
    }

    /// The sparse EASE model, once the catalogue has passed `ease_max_items`.
    pub fn sparse_ease(&self) -> Option<&SparseEaseModel> {
        self.sparse_ease.as_ref()
    }

    /// The popularity model.
    pub fn popularity(&self) -> &PopularityModel {
        &self.popularity
    }

    /// Caps how many of a subject's most recent items score in item-item and (sparse) EASE
    /// (0 = all): the lever between recommend latency and quality.
    pub fn set_history_cap(&mut self, max_history_items: usize) {
        self.config.item_item.max_history_items = max_history_items;
        self.item_item.set_scoring(self.config.item_item.clone());
        self.config.ease.max_history_items = max_history_items;
        if let Some(ease) = self.ease.as_mut() {
            ease.set_history_weighting(self.config.ease.history_half_life_days, max_history_items);
        }
        self.config.sparse_ease.max_history_items = max_history_items;
        if let Some(sparse_ease) = self.sparse_ease.as_mut() {
            sparse_ease
                .set_history_weighting(self.config.ease.history_half_life_days, max_history_items);
        }
    }

    /// Prunes EASE scoring to each history item's strongest `kept_weights_per_item`
    /// weights (0 = exact EASE).
    pub fn set_ease_kept_weights(&mut self, kept_weights_per_item: usize) {
        self.config.ease.kept_weights_per_item = kept_weights_per_item;
        if let Some(ease) = self.ease.as_mut() {
            ease.set_kept_weights(kept_weights_per_item);
        }
    }

    /// Changes the blend weights.
    pub fn set_blend(&mut self, blend: BlendConfig) {
        self.config.blend = blend;
    }

    /// The configuration.
    pub fn config(&self) -> &ModelSetConfig {
        &self.config
    }

    /// What the models hold about a subject (item codes and event times), for exports.
    pub fn view_of(&self, subject: SubjectId) -> SubjectView {
        let held_items = self
            .item_item
            .histories()
            .held(subject)
            .iter()
            .map(|held_item| HeldItemView {
                item_code: self
                    .catalogue
                    .code(held_item.item)
                    .unwrap_or_default()
                    .to_string(),
                event_times: held_item.event_times.clone(),
            })
            .collect();
        SubjectView { held_items }
    }
}
