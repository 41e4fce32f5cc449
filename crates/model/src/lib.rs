//! Recommenders as pure data structures: learn, unlearn, recommend, explain; evaluation
//! metrics. No I/O, no clock, no crypto.
//!
//! - [`item_item::ItemItemModel`]: exact co-occurrence counts; "for you" and "similar items".
//! - [`ease::EaseModel`]: closed-form item-item regression with exact rank-1 unlearning.
//! - [`sparse_ease::SparseEaseModel`]: EASE restricted to each item's strongest neighbours,
//!   for catalogues too large for the dense inverse; exact unlearning by re-solving.
//! - [`popularity::PopularityModel`]: contextual popular/trending items, no personal state.
//! - [`history::SubjectHistories`]: what each subject holds; "buy again" by reorder rhythm.
//! - [`model_set::ModelSet`]: the facade keeping all of them consistent, with a blend.
//!
//! Every model is a pure function of the multiset of interactions it was taught (up to
//! float rounding): the order of learning does not matter, and unlearning a subject gives
//! the model built without them.

pub mod ease;
pub mod error;
pub mod history;
pub mod ids;
pub mod interaction;
pub mod item_item;
pub mod metrics;
pub mod model_set;
pub mod popularity;
pub mod ranking;
pub mod recommendation;
pub mod selection;
pub mod sparse_ease;

pub use ease::{EaseConfig, EaseModel, RefreshOutcome, RefreshPlan, RefreshReport};
pub use error::{ModelError, Result};
pub use history::{HeldItem, SubjectHistories};
pub use ids::{Catalogue, Interner, ItemId, SubjectId, Subjects};
pub use interaction::{
    Context, CountryId, Interaction, InteractionKind, KindSet, UnixSeconds, Weather,
};
pub use item_item::{ItemItemConfig, ItemItemModel};
pub use model_set::{
    BlendConfig, ForgetReport, ModelRefreshOutcome, ModelRefreshPlan, ModelSet, ModelSetConfig,
    RecommendScratch, SubjectView,
};
pub use popularity::{PopularityConfig, PopularityModel};
pub use ranking::ScoredItem;
pub use recommendation::{Contribution, Recommendation};
pub use selection::{AnyItem, ItemSelection};
pub use sparse_ease::{SparseEaseConfig, SparseEaseModel, SparseRefreshReport};
