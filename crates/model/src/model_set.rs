//! `ModelSet`: the facade that keeps every model consistent — interners, item-item, EASE
//! and contextual popularity learn, unlearn and forget together — and blends their scores
//! into one personal list with explanations. Each model stays usable alone; this type only
//! routes calls and blends. Never does I/O and never keeps a forgotten subject's name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::ease::{EaseConfig, EaseModel, EaseScratch, RefreshReport};
use crate::error::{ModelError, Result};
use crate::history::HeldItem;
use crate::ids::{Catalogue, Interner, ItemId, SubjectId, Subjects};
use crate::interaction::{Context, CountryId, Interaction, KindSet, UnixSeconds};
use crate::item_item::{ItemItemConfig, ItemItemModel, ItemItemScratch};
use crate::popularity::{PopularityConfig, PopularityModel};
use crate::ranking::{ScoredItem, normalise_by_max, top_n};
use crate::recommendation::{Contribution, Recommendation, strongest_contributions, sum_ascending};

/// How the personal list blends the models (scores are each divided by their maximum).
#[derive(Clone, Debug, PartialEq)]
pub struct BlendConfig {
    pub ease_weight: f32,
    pub item_item_weight: f32,
    pub trending_weight: f32,
}

impl Default for BlendConfig {
    fn default() -> Self {
        BlendConfig {
            ease_weight: 1.0,
            item_item_weight: 0.3,
            trending_weight: 0.3,
        }
    }
}

/// Settings of every model in the set.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSetConfig {
    pub item_item: ItemItemConfig,
    pub ease: EaseConfig,
    pub popularity: PopularityConfig,
    pub blend: BlendConfig,
    /// EASE is kept only while the catalogue has at most this many items (memory is n²).
    pub ease_max_items: usize,
}

impl Default for ModelSetConfig {
    fn default() -> Self {
        ModelSetConfig {
            item_item: ItemItemConfig::default(),
            ease: EaseConfig::default(),
            popularity: PopularityConfig::default(),
            blend: BlendConfig::default(),
            ease_max_items: 20_000,
        }
    }
}

impl ModelSetConfig {
    /// The same settings, with every model counting only `held_kinds`.
    pub fn counting(mut self, held_kinds: KindSet) -> ModelSetConfig {
        self.item_item.held_kinds = held_kinds;
        self.ease.held_kinds = held_kinds;
        self.popularity.counted_kinds = held_kinds;
        self
    }
}

/// Buffers for `recommend_with`, reused across calls by one thread.
#[derive(Default)]
pub struct RecommendScratch {
    blended: Vec<f32>,
    component: Vec<f32>,
    ease: EaseScratch,
    item_item: ItemItemScratch,
}

/// What forgetting a subject removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForgetReport {
    pub events_removed: usize,
    pub items_held: usize,
}

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
    ease: Option<EaseModel>,
    popularity: PopularityModel,
    /// Normalised contextual trending scores per request context, emptied whenever the
    /// popularity counts change (every mutation takes `&mut self`).
    trending_cache: Mutex<HashMap<Context, Arc<Vec<f32>>>>,
}

/// Contexts whose trending scores are kept at most (weather × country × hour).
const TRENDING_CACHE_LIMIT: usize = 4_096;

impl ModelSet {
    /// An empty set.
    pub fn new(config: ModelSetConfig) -> Result<ModelSet> {
        // Every setting is checked here, before anything is learned: a bad one found later
        // (say, in the middle of a forget) would leave the models half-changed.
        crate::ease::check_config(&config.ease)?;
        Ok(ModelSet {
            item_item: ItemItemModel::new(config.item_item.clone()),
            ease: Some(EaseModel::new(config.ease.clone())),
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
    /// The popularity model.
    pub fn popularity(&self) -> &PopularityModel {
        &self.popularity
    }
    /// Caps how many of a subject's most recent items score in item-item and EASE
    /// (0 = all): the lever between recommend latency and quality.
    pub fn set_history_cap(&mut self, max_history_items: usize) {
        self.config.item_item.max_history_items = max_history_items;
        self.item_item.set_scoring(self.config.item_item.clone());
        self.config.ease.max_history_items = max_history_items;
        if let Some(ease) = self.ease.as_mut() {
            ease.set_history_weighting(self.config.ease.history_half_life_days, max_history_items);
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

    /// Learns many interactions at once (ids from this set's interners) and refreshes.
    /// On an empty set this builds each model in one pass.
    pub fn learn_all(&mut self, interactions: &[Interaction]) -> Result<()> {
        self.trending_changed();
        for interaction in interactions {
            self.check_interaction(interaction)?;
        }
        if self.item_item.histories().n_events() == 0 && self.popularity.item_bound() == 0 {
            // The counting models build on one thread while EASE factorises on the others.
            let keep_ease = self.catalogue.len() <= self.config.ease_max_items;
            let (item_item, popularity, ease) =
                (&mut self.item_item, &mut self.popularity, &self.config.ease);
            let item_item_config = self.config.item_item.clone();
            let ease = std::thread::scope(|scope| {
                scope.spawn(|| {
                    *item_item = ItemItemModel::build(item_item_config, interactions);
                    for interaction in interactions {
                        popularity.learn(interaction);
                    }
                });
                keep_ease
                    .then(|| EaseModel::build(ease.clone(), interactions))
                    .transpose()
            })?;
            self.ease = ease;
            return Ok(());
        }
        self.item_item.learn_batch(interactions);
        for interaction in interactions {
            self.popularity.learn(interaction);
            if let Some(ease) = self.ease.as_mut() {
                ease.learn(interaction);
            }
        }
        self.refresh().map(|_| ())
    }

    /// Refuses what the models must never take: a subject whose name was released (forgotten),
    /// an item the catalogue does not know, a time outside ±2,000 years of 1970.
    fn check_interaction(&self, interaction: &Interaction) -> Result<()> {
        if self.subjects.name(interaction.subject).is_none() {
            return Err(ModelError::BadInteraction {
                detail: format!(
                    "subject #{} is not a live subject (never named, or forgotten)",
                    interaction.subject.0
                ),
            });
        }
        if self.catalogue.code(interaction.item).is_none() {
            return Err(ModelError::BadInteraction {
                detail: format!("item #{} is not in the catalogue", interaction.item.0),
            });
        }
        if interaction.at.unsigned_abs() > MAX_ABS_UNIX_SECONDS {
            return Err(ModelError::BadInteraction {
                detail: format!(
                    "time {} is outside the supported range of ±{MAX_ABS_UNIX_SECONDS} s",
                    interaction.at
                ),
            });
        }
        Ok(())
    }

    /// Learns one interaction. EASE applies it at the next `refresh`; until then personal
    /// lists blend the other models only.
    pub fn learn(&mut self, interaction: &Interaction) -> Result<()> {
        self.trending_changed();
        self.check_interaction(interaction)?;
        self.item_item.learn(interaction);
        self.popularity.learn(interaction);
        if let Some(ease) = self.ease.as_mut() {
            ease.learn(interaction);
        }
        Ok(())
    }

    /// Unlearns one previously learned interaction from every model. Checked against the
    /// item-item history first, so an interaction never learned changes nothing.
    pub fn unlearn(&mut self, interaction: &Interaction) -> Result<()> {
        self.trending_changed();
        self.check_interaction(interaction)?;
        let counted = self
            .item_item
            .histories()
            .held_kinds()
            .contains(interaction.kind);
        if counted
            && !self
                .item_item
                .histories()
                .held(interaction.subject)
                .iter()
                .any(|held| {
                    held.item == interaction.item
                        && held.event_times.binary_search(&interaction.at).is_ok()
                })
        {
            return Err(ModelError::NotLearned {
                subject: interaction.subject.0,
                item: interaction.item.0,
                at: interaction.at,
            });
        }
        self.popularity.unlearn(interaction)?;
        if let Err(error) = self.item_item.unlearn(interaction) {
            self.popularity.learn(interaction);
            return Err(error);
        }
        let ease_outcome = self
            .ease
            .as_mut()
            .map_or(Ok(()), |ease| ease.unlearn(interaction));
        if let Err(error) = ease_outcome {
            // Put back what was already removed, so a bad unlearn changes nothing.
            self.popularity.learn(interaction);
            self.item_item.learn(interaction);
            return Err(error);
        }
        Ok(())
    }

    /// Derives what scoring would otherwise derive lazily (EASE's pruned rows of the items
    /// in `items`), so that no request pays for it; returns the number of items to warm.
    /// Takes `&self`: it runs beside recommendations.
    pub fn warm(&self, items: std::ops::Range<usize>) -> usize {
        match self.ease.as_ref().filter(|ease| ease.scorable()) {
            Some(ease) => ease.warm_weight_rows(items),
            None => 0,
        }
    }

    /// Applies learned changes to EASE (rank-1 updates or a refactorisation).
    pub fn refresh(&mut self) -> Result<RefreshReport> {
        if self.ease.is_some() && self.catalogue.len() > self.config.ease_max_items {
            self.ease = None;
        }
        match self.ease.as_mut() {
            Some(ease) => ease.refresh(),
            None => Ok(RefreshReport::default()),
        }
    }

    /// Forgets a subject in every model: `interactions` are the subject's stored
    /// interactions (popularity has no per-subject state, so it unlearns these); the
    /// personal models drop what they hold; EASE is refreshed; the name is released.
    pub fn forget_subject(
        &mut self,
        name: &str,
        interactions: &[Interaction],
    ) -> Result<ForgetReport> {
        self.trending_changed();
        let Some(subject) = self.subjects.get(name) else {
            return Ok(ForgetReport {
                events_removed: 0,
                items_held: 0,
            });
        };
        let subject_interactions = interactions
            .iter()
            .filter(|interaction| interaction.subject == subject);
        // Popularity holds no per-subject state, so it unlearns what it is handed: check that
        // list against what the models hold of the subject first (as a multiset of item and
        // time), so that an event never learned cannot remove another customer's count and an
        // incomplete list cannot leave some behind. Nothing is changed when the check fails.
        let held_kinds = self.item_item.histories().held_kinds();
        let mut unmatched: HashMap<(u32, UnixSeconds), usize> = HashMap::new();
        for held in self.item_item.histories().held(subject) {
            for &at in &held.event_times {
                *unmatched.entry((held.item.0, at)).or_default() += 1;
            }
        }
        for interaction in subject_interactions.clone() {
            if !held_kinds.contains(interaction.kind) {
                continue;
            }
            match unmatched.get_mut(&(interaction.item.0, interaction.at)) {
                Some(count) if *count > 0 => *count -= 1,
                _ => {
                    return Err(ModelError::NotLearned {
                        subject: subject.0,
                        item: interaction.item.0,
                        at: interaction.at,
                    });
                }
            }
        }
        let left_out: usize = unmatched.values().sum();
        if left_out > 0 {
            return Err(ModelError::BadInteraction {
                detail: format!(
                    "the interactions handed to forget leave out {left_out} that the models hold"
                ),
            });
        }
        for (done, interaction) in subject_interactions.clone().enumerate() {
            if let Err(error) = self.popularity.unlearn(interaction) {
                // An interaction that was never learned: restore the ones already removed.
                for restored in subject_interactions.take(done) {
                    self.popularity.learn(restored);
                }
                return Err(error);
            }
        }
        let held: Vec<HeldItem> = match self.ease.as_mut() {
            None => self.item_item.forget_subject(subject),
            Some(ease) => {
                // Item-item and EASE are independent: forget in both at once.
                let item_item = &mut self.item_item;
                let (held, ease_outcome) = std::thread::scope(|scope| {
                    let item_item_forget = scope.spawn(|| item_item.forget_subject(subject));
                    ease.forget_subject(subject);
                    let ease_outcome = ease.refresh();
                    (item_item_forget.join(), ease_outcome)
                });
                ease_outcome?;
                held.map_err(|_| ModelError::Internal {
                    detail: "forgetting in the item-item model failed".to_string(),
                })?
            }
        };
        self.subjects.release(name);
        Ok(ForgetReport {
            events_removed: held
                .iter()
                .map(|held_item| held_item.event_times.len())
                .sum(),
            items_held: held.len(),
        })
    }

    /// Personal "discover" list for a subject: excludes what they hold; each entry says
    /// which of their own items contributed most. Subjects with no history get the
    /// contextual trending list (without explanations).
    pub fn recommend(
        &self,
        subject: SubjectId,
        n: usize,
        now: UnixSeconds,
        context: &Context,
    ) -> Vec<Recommendation> {
        let mut scratch = RecommendScratch::default();
        self.recommend_with(&mut scratch, subject, n, now, context)
    }

    /// `recommend` with caller-owned buffers (no per-call allocation of score vectors).
    pub fn recommend_with(
        &self,
        scratch: &mut RecommendScratch,
        subject: SubjectId,
        n: usize,
        now: UnixSeconds,
        context: &Context,
    ) -> Vec<Recommendation> {
        let held = self.item_item.histories().held(subject);
        if held.is_empty() {
            return self
                .popularity
                .popular(context, n, now)
                .into_iter()
                .map(|scored| Recommendation {
                    item: scored.item,
                    score: scored.score,
                    because: Vec::new(),
                })
                .collect();
        }
        let blend = &self.config.blend;
        let item_bound = self
            .item_item
            .item_bound()
            .max(self.popularity.item_bound());
        scratch.blended.clear();
        scratch.blended.resize(item_bound, 0.0);
        let ease = self
            .ease
            .as_ref()
            .filter(|ease| ease.scorable() && blend.ease_weight != 0.0);
        let mut ease_scale = 0.0;
        if let Some(ease) = ease {
            scratch.component.clear();
            scratch.component.resize(item_bound, 0.0);
            if ease
                .score_into(subject, now, &mut scratch.component, &mut scratch.ease)
                .is_ok()
            {
                ease_scale = blend.ease_weight / largest_unheld(&scratch.component, held);
                add_scaled(&mut scratch.blended, &scratch.component, ease_scale);
            }
        }
        let mut item_item_scale = 0.0;
        if blend.item_item_weight != 0.0 {
            scratch.component.clear();
            scratch.component.resize(item_bound, 0.0);
            self.item_item
                .score_into(subject, now, &mut scratch.component, &mut scratch.item_item);
            item_item_scale = blend.item_item_weight / largest_unheld(&scratch.component, held);
            add_scaled(&mut scratch.blended, &scratch.component, item_item_scale);
        }
        if blend.trending_weight != 0.0 {
            let trending = self.trending_normalised(context, item_bound);
            add_scaled(&mut scratch.blended, &trending, blend.trending_weight);
        }
        // Items no model has any data on (e.g. known only from a forgotten subject) are
        // never recommended, so a forget leaves no trace in what is offered.
        let best = top_n(&scratch.blended, n, |index| {
            let item = ItemId(index as u32);
            (self.item_item.holder_count(item) == 0 && self.popularity.event_count(item) == 0)
                || held
                    .binary_search_by_key(&item.0, |held_item| held_item.item.0)
                    .is_ok()
        });
        best.into_iter()
            .map(|scored| {
                // Each model's shares come ascending by history item; add them in one pass.
                let from_ease = ease
                    .filter(|_| ease_scale > 0.0)
                    .into_iter()
                    .flat_map(|ease| {
                        scaled(ease.contributions(scored.item, &scratch.ease), ease_scale)
                    });
                let from_item_item = (item_item_scale > 0.0)
                    .then(|| {
                        scaled(
                            self.item_item
                                .contributions(scored.item, &scratch.item_item),
                            item_item_scale,
                        )
                    })
                    .into_iter()
                    .flatten();
                Recommendation {
                    item: scored.item,
                    score: scored.score,
                    because: strongest_contributions(sum_ascending(from_ease, from_item_item), 3),
                }
            })
            .collect()
    }

    /// Empties the trending cache (the counts are about to change).
    fn trending_changed(&mut self) {
        self.trending_cache
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The contextual trending scores for `context`, divided by their maximum: computed
    /// once per context until the counts change.
    fn trending_normalised(&self, context: &Context, item_bound: usize) -> Arc<Vec<f32>> {
        let mut cache = self
            .trending_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(scores) = cache.get(context) {
            return Arc::clone(scores);
        }
        let mut scores = vec![0.0; item_bound];
        self.popularity.trending_scores_into(context, &mut scores);
        normalise_by_max(&mut scores);
        let scores = Arc::new(scores);
        if cache.len() >= TRENDING_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(*context, Arc::clone(&scores));
        scores
    }

    /// Items similar to `item` (item-item neighbours), best first.
    pub fn similar(&self, item: ItemId, n: usize) -> Vec<ScoredItem> {
        self.item_item.similar(item, n)
    }

    /// Non-personal answer: trending items in `context` at `now`.
    pub fn popular(&self, context: &Context, n: usize, now: UnixSeconds) -> Vec<ScoredItem> {
        self.popularity.popular(context, n, now)
    }

    /// "Buy again": the subject's repeat purchases ranked by their own reorder rhythm.
    pub fn buy_again(&self, subject: SubjectId, n: usize, now: UnixSeconds) -> Vec<ScoredItem> {
        self.item_item.histories().buy_again(subject, now, n)
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

/// Below this a component's largest score is rounding noise (e.g. what a rank-1 downdate
/// leaves of a forgotten subject's co-occurrences), and is not scaled up to 1.
const NOISE_FLOOR: f32 = 1e-6;
/// Interactions must lie within this many seconds of 1970 (about ±2,000 years).
const MAX_ABS_UNIX_SECONDS: u64 = 2_000 * 366 * 86_400;

/// Largest score among items the subject does not hold (1 when none is above the noise floor).
fn largest_unheld(scores: &[f32], held: &[HeldItem]) -> f32 {
    let mut largest = 0.0f32;
    let mut held_iter = held
        .iter()
        .map(|held_item| held_item.item.index())
        .peekable();
    for (index, &score) in scores.iter().enumerate() {
        while held_iter
            .peek()
            .is_some_and(|&held_index| held_index < index)
        {
            held_iter.next();
        }
        if held_iter.peek() == Some(&index) {
            continue;
        }
        if score.is_finite() {
            largest = largest.max(score);
        }
    }
    if largest > NOISE_FLOOR { largest } else { 1.0 }
}

fn add_scaled(into: &mut [f32], from: &[f32], scale: f32) {
    for (target, value) in into.iter_mut().zip(from) {
        *target += scale * value;
    }
}

fn scaled(
    contributions: impl Iterator<Item = Contribution>,
    scale: f32,
) -> impl Iterator<Item = Contribution> {
    contributions.map(move |contribution| Contribution {
        item: contribution.item,
        weight: scale * contribution.weight,
    })
}
