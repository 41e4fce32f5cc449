//! Bounded contributions: with each subject contributing only its most recent K distinct
//! items, learning, unlearning and forgetting stay exact against that definition — the
//! model equals the one built from the same events — including subjects whose history
//! passes K and items sliding in and out of the window as newer events arrive or leave.

use discreet_model::{
    EaseConfig, EaseModel, Interaction, ItemItemConfig, ItemItemModel, KindSet, SubjectId,
};
use proptest::prelude::*;

use crate::streams::{shuffled, stream_subject_and_seed, without};
use crate::unlearning::largest_inverse_difference;

/// Small enough that most subjects of the random streams (up to 9 items) pass it.
const BOUND: usize = 3;
const EASE_TOLERANCE: f64 = 1e-10;

fn item_item_config() -> ItemItemConfig {
    ItemItemConfig {
        held_kinds: KindSet::engagement(),
        max_contributed_items: BOUND,
        ..ItemItemConfig::default()
    }
}

fn ease_config() -> EaseConfig {
    EaseConfig {
        regularisation: 2.0,
        held_kinds: KindSet::engagement(),
        max_contributed_items: BOUND,
        ..EaseConfig::default()
    }
}

/// Every count the item-item model holds, and every item's neighbours (warms the caches).
fn item_item_answers(model: &ItemItemModel) -> Vec<Vec<(u32, f32)>> {
    (0..crate::streams::N_ITEMS)
        .map(|item| {
            model
                .similar(discreet_model::ItemId(item), 5)
                .into_iter()
                .map(|scored| (scored.item.0, scored.score))
                .collect()
        })
        .collect()
}

fn learned_one_by_one(stream: &[Interaction]) -> ItemItemModel {
    let mut model = ItemItemModel::new(item_item_config());
    for interaction in stream {
        model.learn(interaction);
    }
    model
}

proptest! {
    #[test]
    fn item_item_with_a_bound_learns_in_any_order_and_in_batches_like_a_build((stream, _subject, seed) in stream_subject_and_seed()) {
        let built = ItemItemModel::build(item_item_config(), &stream);
        prop_assert_eq!(&learned_one_by_one(&stream), &built);
        prop_assert_eq!(&learned_one_by_one(&shuffled(&stream, seed)), &built);
        let half = stream.len() / 2;
        let mut batched = ItemItemModel::build(item_item_config(), &stream[..half]);
        item_item_answers(&batched);
        batched.learn_batch(&shuffled(&stream[half..], seed));
        prop_assert_eq!(&batched, &built);
        prop_assert_eq!(item_item_answers(&batched), item_item_answers(&built));
        // No subject contributes more than the bound: holder counts sum to at most K each.
        let contributed: u32 = (0..crate::streams::N_ITEMS)
            .map(|item| built.holder_count(discreet_model::ItemId(item)))
            .sum();
        prop_assert!(contributed as usize <= BOUND * crate::streams::N_SUBJECTS as usize);
    }

    #[test]
    fn item_item_with_a_bound_forgets_and_unlearns_exactly_as_the_window_slides((stream, subject, seed) in stream_subject_and_seed()) {
        let expected = ItemItemModel::build(item_item_config(), &without(&stream, subject));
        let mut by_forget = ItemItemModel::build(item_item_config(), &stream);
        item_item_answers(&by_forget);
        by_forget.forget_subject(subject);
        prop_assert_eq!(&by_forget, &expected);
        prop_assert_eq!(item_item_answers(&by_forget), item_item_answers(&expected));

        // Unlearning the subject's newest events one at a time slides older items back
        // into its window; after each step the model equals a build of what is left.
        let mut remaining = shuffled(&stream, seed);
        let mut by_events = ItemItemModel::build(item_item_config(), &remaining);
        item_item_answers(&by_events);
        while let Some(position) = remaining
            .iter()
            .enumerate()
            .filter(|(_, interaction)| interaction.subject == subject)
            .max_by_key(|(_, interaction)| interaction.at)
            .map(|(position, _)| position)
        {
            let interaction = remaining.remove(position);
            by_events.unlearn(&interaction).unwrap();
            let rebuilt = ItemItemModel::build(item_item_config(), &remaining);
            prop_assert_eq!(&by_events, &rebuilt);
            prop_assert_eq!(item_item_answers(&by_events), item_item_answers(&rebuilt));
        }
    }

    #[test]
    fn ease_with_a_bound_learns_unlearns_and_forgets_like_a_factorisation((stream, subject, seed) in stream_subject_and_seed()) {
        let built = EaseModel::build(ease_config(), &stream).unwrap();
        let half = stream.len() / 2;
        let mut incremental = EaseModel::build(ease_config(), &stream[..half]).unwrap();
        for interaction in shuffled(&stream[half..], seed) {
            incremental.learn(&interaction);
        }
        incremental.refresh().unwrap();
        prop_assert!(largest_inverse_difference(&incremental, &built) < EASE_TOLERANCE);

        let expected = EaseModel::build(ease_config(), &without(&stream, subject)).unwrap();
        let mut by_forget = EaseModel::build(ease_config(), &stream).unwrap();
        by_forget.forget_subject(subject);
        by_forget.refresh().unwrap();
        prop_assert!(largest_inverse_difference(&by_forget, &expected) < EASE_TOLERANCE);

        // Newest first, so older items slide back into the window at each step.
        let mut remaining = stream.clone();
        let mut by_events = EaseModel::build(ease_config(), &remaining).unwrap();
        while let Some(position) = remaining
            .iter()
            .enumerate()
            .filter(|(_, interaction)| interaction.subject == subject)
            .max_by_key(|(_, interaction)| interaction.at)
            .map(|(position, _)| position)
        {
            let interaction = remaining.remove(position);
            by_events.unlearn(&interaction).unwrap();
            by_events.refresh().unwrap();
            let rebuilt = EaseModel::build(ease_config(), &remaining).unwrap();
            prop_assert!(largest_inverse_difference(&by_events, &rebuilt) < EASE_TOLERANCE);
        }
    }
}

/// Guards the bound against a hostile subject: one subject holding 2,000 distinct items adds
/// at most K² pairs to the co-occurrence counts and at most K slots to EASE's `P`.
#[test]
fn a_subject_with_thousands_of_items_contributes_at_most_the_bound() {
    let bound = 50;
    let purchase = |subject: u32, item: u32, at: i64| Interaction {
        subject: SubjectId(subject),
        item: discreet_model::ItemId(item),
        at,
        kind: discreet_model::InteractionKind::Purchase,
        quantity: 1,
        context: discreet_model::Context::default(),
    };
    let mut stream: Vec<Interaction> = (0..2_000)
        .map(|item| purchase(0, item, item as i64))
        .collect();
    stream.push(purchase(1, 0, 5));
    stream.push(purchase(1, 1_999, 5));
    let item_item = ItemItemModel::build(
        ItemItemConfig {
            max_contributed_items: bound,
            ..ItemItemConfig::default()
        },
        &stream,
    );
    let pairs: u32 = (0..2_000)
        .map(|item| item_item.holder_count(discreet_model::ItemId(item)))
        .sum();
    assert_eq!(
        pairs as usize,
        bound + 2,
        "holders: subject 0's newest {bound}, subject 1's two"
    );
    assert_eq!(
        item_item.cooccurrence(discreet_model::ItemId(0), discreet_model::ItemId(1_999)),
        1
    );
    assert_eq!(
        item_item.cooccurrence(discreet_model::ItemId(1_998), discreet_model::ItemId(1_999)),
        1
    );
    assert_eq!(
        item_item.cooccurrence(discreet_model::ItemId(0), discreet_model::ItemId(1)),
        0
    );
    let ease = EaseModel::build(
        EaseConfig {
            max_contributed_items: bound,
            ..EaseConfig::default()
        },
        &stream,
    )
    .unwrap();
    assert_eq!(
        ease.dimension(),
        bound + 1,
        "the newest {bound} items and item 0"
    );
}

/// Guards the refresh that runs beside readers: a forget made while a refresh computes is
/// not covered by that refresh, so EASE must stay unscorable until the next one — and then
/// equal the model built without the subject.
#[test]
fn a_forget_during_a_refresh_keeps_ease_from_scoring_until_the_next_refresh() {
    let purchase = |subject: u32, item: u32| Interaction {
        subject: SubjectId(subject),
        item: discreet_model::ItemId(item),
        at: 86_400 + item as i64,
        kind: discreet_model::InteractionKind::Purchase,
        quantity: 1,
        context: discreet_model::Context::default(),
    };
    let stream: Vec<Interaction> = (0..4)
        .flat_map(|subject| (0..6).map(move |item| purchase(subject, (item + subject) % 8)))
        .collect();
    let mut model = EaseModel::build(ease_config(), &stream[..12]).unwrap();
    for interaction in &stream[12..] {
        model.learn(interaction);
    }
    let plan = model
        .begin_refresh()
        .expect("learned changes need a refresh");
    assert!(
        model.scorable(),
        "learned events pending do not stop scoring"
    );
    model.forget_subject(SubjectId(3));
    let outcome = plan.compute();
    model.finish_refresh(outcome).unwrap();
    assert!(
        !model.scorable(),
        "the installed P still holds the forgotten subject"
    );
    model.refresh().unwrap();
    assert!(model.scorable());
    let rebuilt = EaseModel::build(ease_config(), &without(&stream, SubjectId(3))).unwrap();
    assert!(largest_inverse_difference(&model, &rebuilt) < EASE_TOLERANCE);

    // An outcome planned on a solution that was replaced meanwhile is refused, and the
    // next refresh factorises instead.
    model.learn(&purchase(0, 7));
    let stale = model.begin_refresh().unwrap().compute();
    model.refactorise().unwrap();
    assert!(model.finish_refresh(stale).is_err());
    assert!(model.needs_refresh());
    model.refresh().unwrap();
    assert!(model.scorable());
}
