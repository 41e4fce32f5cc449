//! What a model learns from: one interaction of a subject with an item, at a time, in a
//! context. Plain data, `Copy`, no strings: the engine interns names before calling in.

use crate::ids::{ItemId, SubjectId};

/// Seconds since 1970-01-01T00:00:00Z. The model has no clock; callers pass times in.
pub type UnixSeconds = i64;

/// Seconds in one day, for half-lives given in days.
pub const SECONDS_PER_DAY: f64 = 86_400.0;

/// What the subject did with the item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InteractionKind {
    View,
    Cart,
    Purchase,
    Search,
    Rating,
}

impl InteractionKind {
    /// All kinds, in a fixed order.
    pub const ALL: [InteractionKind; 5] = [
        InteractionKind::View,
        InteractionKind::Cart,
        InteractionKind::Purchase,
        InteractionKind::Search,
        InteractionKind::Rating,
    ];

    /// A stable bit for kind sets.
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of interaction kinds (which kinds make an item "held" by a subject).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindSet(u8);

impl KindSet {
    /// The set of the given kinds.
    pub fn of(kinds: &[InteractionKind]) -> KindSet {
        KindSet(kinds.iter().fold(0, |bits, kind| bits | kind.bit()))
    }
    /// Purchases only: the evaluation protocol's binary "customer bought item".
    pub fn purchases() -> KindSet {
        KindSet::of(&[InteractionKind::Purchase])
    }
    /// Every kind that names an item the subject chose: view, cart, purchase, rating.
    pub fn engagement() -> KindSet {
        KindSet::of(&[
            InteractionKind::View,
            InteractionKind::Cart,
            InteractionKind::Purchase,
            InteractionKind::Rating,
        ])
    }
    /// True if `kind` is in the set.
    pub fn contains(self, kind: InteractionKind) -> bool {
        self.0 & kind.bit() != 0
    }
}

/// Coarse weather at the time of the interaction, as the shop reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Weather {
    #[default]
    Unknown,
    Clear,
    Cloudy,
    Rain,
    Snow,
    Hot,
    Cold,
}

impl Weather {
    /// Number of weather buckets.
    pub const COUNT: usize = 7;
    /// All buckets, in index order.
    pub const ALL: [Weather; 7] = [
        Weather::Unknown,
        Weather::Clear,
        Weather::Cloudy,
        Weather::Rain,
        Weather::Snow,
        Weather::Hot,
        Weather::Cold,
    ];
    /// Index of the bucket.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Dense id of a country (interned by the caller, e.g. by `ModelSet::country`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryId(pub u16);

/// Non-personal context of an interaction or a request: buckets for popularity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Context {
    pub weather: Weather,
    pub country: Option<CountryId>,
    /// Hour of day, 0..=23, in the shop's local time.
    pub hour_of_day: Option<u8>,
}

/// One interaction of a subject with an item.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interaction {
    pub subject: SubjectId,
    pub item: ItemId,
    pub at: UnixSeconds,
    pub kind: InteractionKind,
    /// Units (purchases, carts) or the rating value; 1 when it does not apply.
    pub quantity: u32,
    pub context: Context,
}
