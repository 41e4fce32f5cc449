//! The settings of a `ModelSet`: each model's own, how the personal list blends them, and
//! when dense EASE gives way to sparse EASE for a large catalogue. Plain data; checked by `ModelSet::new`.

use crate::ease::EaseConfig;
use crate::interaction::KindSet;
use crate::item_item::ItemItemConfig;
use crate::popularity::PopularityConfig;
use crate::sparse_ease::SparseEaseConfig;

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
    /// Dense EASE is kept only while the catalogue has at most this many items (memory is
    /// n²); past it, sparse EASE takes its place (and its blend weight).
    pub ease_max_items: usize,
    /// The settings of sparse EASE, used past `ease_max_items`: in a set only its λ and
    /// neighbourhood size are read; kinds, history weighting and contribution bound are
    /// EASE's, since it takes over EASE's histories and its place in the blend.
    pub sparse_ease: SparseEaseConfig,
}

impl Default for ModelSetConfig {
    fn default() -> Self {
        ModelSetConfig {
            item_item: ItemItemConfig::default(),
            ease: EaseConfig::default(),
            popularity: PopularityConfig::default(),
            blend: BlendConfig::default(),
            ease_max_items: 20_000,
            sparse_ease: SparseEaseConfig::default(),
        }
    }
}

impl ModelSetConfig {
    /// The same settings, with each subject contributing at most `bound` of its most recent
    /// distinct items to item-item's counts and (sparse) EASE's Gram matrix (0 = all).
    pub fn contributing(mut self, bound: usize) -> ModelSetConfig {
        self.item_item.max_contributed_items = bound;
        self.ease.max_contributed_items = bound;
        self.sparse_ease.max_contributed_items = bound;
        self
    }

    /// The same settings, with every model counting only `held_kinds`.
    pub fn counting(mut self, held_kinds: KindSet) -> ModelSetConfig {
        self.item_item.held_kinds = held_kinds;
        self.ease.held_kinds = held_kinds;
        self.sparse_ease.held_kinds = held_kinds;
        self.popularity.counted_kinds = held_kinds;
        self
    }
}
