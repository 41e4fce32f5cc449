//! Random interaction streams shared by the property tests.

use discreet_model::{
    Context, CountryId, Interaction, InteractionKind, ItemId, SubjectId, Weather,
};
use proptest::prelude::*;

pub const N_SUBJECTS: u32 = 6;
pub const N_ITEMS: u32 = 9;

/// One interaction with small ids, so subjects share items often.
pub fn interaction() -> impl Strategy<Value = Interaction> {
    (
        0..N_SUBJECTS,
        0..N_ITEMS,
        0i64..200 * 86_400,
        0usize..5,
        0u16..3,
        0u8..24,
        0usize..3,
    )
        .prop_map(
            |(subject, item, at, kind, country, hour, weather)| Interaction {
                subject: SubjectId(subject),
                item: ItemId(item),
                at,
                kind: InteractionKind::ALL[kind],
                quantity: 1,
                context: Context {
                    weather: [Weather::Unknown, Weather::Rain, Weather::Clear][weather],
                    country: Some(CountryId(country)),
                    hour_of_day: Some(hour),
                },
            },
        )
}

/// A stream of interactions.
pub fn stream() -> impl Strategy<Value = Vec<Interaction>> {
    prop::collection::vec(interaction(), 0..80)
}

/// A stream with a subject to forget and a permutation seed.
pub fn stream_subject_and_seed() -> impl Strategy<Value = (Vec<Interaction>, SubjectId, u64)> {
    (stream(), 0..N_SUBJECTS, any::<u64>())
        .prop_map(|(stream, subject, seed)| (stream, SubjectId(subject), seed))
}

/// The stream shuffled deterministically by `seed` (Fisher–Yates with an LCG).
pub fn shuffled(stream: &[Interaction], seed: u64) -> Vec<Interaction> {
    let mut shuffled = stream.to_vec();
    let mut state = seed | 1;
    for index in (1..shuffled.len()).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let other = ((state >> 33) as usize) % (index + 1);
        shuffled.swap(index, other);
    }
    shuffled
}

/// The stream without `subject`'s interactions.
pub fn without(stream: &[Interaction], subject: SubjectId) -> Vec<Interaction> {
    stream
        .iter()
        .filter(|interaction| interaction.subject != subject)
        .copied()
        .collect()
}
