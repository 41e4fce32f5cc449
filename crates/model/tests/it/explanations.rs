//! Explanations name only items from the subject's own history, in every model and in the
//! blend; forgetting through the facade leaves models equal to a set built without them.

use discreet_model::{
    Context, EaseConfig, EaseModel, Interaction, ItemItemConfig, ItemItemModel, KindSet,
    ModelError, ModelSet, ModelSetConfig, SubjectId,
};
use proptest::prelude::*;

use crate::streams::{N_ITEMS, N_SUBJECTS, stream, stream_subject_and_seed, without};

fn small_config() -> ModelSetConfig {
    let mut config = ModelSetConfig::default().counting(KindSet::engagement());
    config.ease.regularisation = 2.0;
    config.popularity.reference_time = 100 * 86_400;
    config
}

/// A set whose interners map "subject-k" to `SubjectId(k)` and "item-k" to `ItemId(k)`.
fn model_set(stream: &[Interaction]) -> ModelSet {
    let mut model_set = ModelSet::new(small_config()).unwrap();
    for subject in 0..N_SUBJECTS {
        assert_eq!(
            model_set.subject(&format!("subject-{subject}")),
            SubjectId(subject)
        );
    }
    for item in 0..N_ITEMS {
        assert_eq!(model_set.item(&format!("item-{item}")).0, item);
    }
    model_set.learn_all(stream).unwrap();
    model_set
}

proptest! {
    #[test]
    fn explanations_name_only_the_subjects_own_items(stream in stream()) {
        let now = 200 * 86_400;
        let item_item = ItemItemModel::build(ItemItemConfig { held_kinds: KindSet::engagement(), ..ItemItemConfig::default() }, &stream);
        let ease = EaseModel::build(EaseConfig { regularisation: 2.0, held_kinds: KindSet::engagement(), ..EaseConfig::default() }, &stream).unwrap();
        let mut pruned_ease = ease.clone();
        pruned_ease.set_kept_weights(2);
        let model_set = model_set(&stream);
        for subject in (0..N_SUBJECTS).map(SubjectId) {
            let lists = [
                item_item.recommend(subject, 5, now),
                ease.recommend(subject, 5, now).unwrap(),
                pruned_ease.recommend(subject, 5, now).unwrap(),
                model_set.recommend(subject, 5, now, &Context::default()),
            ];
            for recommendation in lists.iter().flatten() {
                prop_assert!(!item_item.histories().holds(subject, recommendation.item), "discover lists exclude held items");
                for contribution in &recommendation.because {
                    prop_assert!(item_item.histories().holds(subject, contribution.item));
                }
            }
        }
    }

    #[test]
    fn forgetting_through_the_facade_equals_a_set_built_without_the_subject((stream, subject, _seed) in stream_subject_and_seed()) {
        let now = 200 * 86_400;
        let mut forgotten = model_set(&stream);
        let name = format!("subject-{}", subject.0);
        let subject_events: Vec<Interaction> = stream.iter().filter(|interaction| interaction.subject == subject).copied().collect();
        let held_in_ease = !forgotten.ease().unwrap().histories().held(subject).is_empty();
        forgotten.forget_subject(&name, &subject_events).unwrap();
        if held_in_ease {
            // Until a refresh has removed the subject from `P`, EASE answers nothing.
            prop_assert!(!forgotten.ease().unwrap().scorable());
        }
        forgotten.refresh().unwrap();
        prop_assert_eq!(forgotten.subjects().get(&name), None);
        prop_assert!(forgotten.view_of(subject).held_items.is_empty());

        let expected = model_set(&without(&stream, subject));
        prop_assert_eq!(forgotten.item_item(), expected.item_item());
        // Weights here are at most 2^(100/7) ≈ 2e4 times the reference weight.
        prop_assert!(forgotten.popularity().largest_difference(expected.popularity()) < 1e-12 * 2e4);
        for other in (0..N_SUBJECTS).map(SubjectId).filter(|other| *other != subject) {
            let left = forgotten.recommend(other, 5, now, &Context::default());
            let right = expected.recommend(other, 5, now, &Context::default());
            prop_assert_eq!(left.len(), right.len());
            for (left, right) in left.iter().zip(&right) {
                prop_assert!((left.score - right.score).abs() < 1e-4, "{} vs {}", left.score, right.score);
            }
        }
    }
}

#[test]
fn forgetting_with_an_interaction_never_learned_changes_nothing() {
    let stream: Vec<Interaction> = (0..6u32)
        .map(|step| Interaction {
            subject: SubjectId(step % 2),
            item: discreet_model::ItemId(step % 4),
            at: step as i64 * 86_400,
            kind: discreet_model::InteractionKind::Purchase,
            quantity: 1,
            context: Context::default(),
        })
        .collect();
    let mut model_set = model_set(&stream);
    let mut handed_in: Vec<Interaction> = stream
        .iter()
        .filter(|interaction| interaction.subject == SubjectId(0))
        .copied()
        .collect();
    handed_in.push(Interaction {
        at: 99 * 86_400,
        ..handed_in[0]
    });
    assert!(model_set.forget_subject("subject-0", &handed_in).is_err());
    let untouched = crate::explanations::model_set(&stream);
    assert_eq!(model_set.item_item(), untouched.item_item());
    assert!(
        model_set
            .popularity()
            .largest_difference(untouched.popularity())
            < 1e-9
    );
    assert_eq!(model_set.subjects().get("subject-0"), Some(SubjectId(0)));
}

fn purchase(subject: u32, item: u32, at: i64) -> Interaction {
    Interaction {
        subject: SubjectId(subject),
        item: discreet_model::ItemId(item),
        at,
        kind: discreet_model::InteractionKind::Purchase,
        quantity: 1,
        context: Context::default(),
    }
}

/// Regression: a released subject id was handed to the next new customer, so a late
/// interaction of the forgotten one attached to them (and showed in their export).
#[test]
fn a_forgotten_subjects_id_is_never_learned_again_nor_handed_to_someone_else() {
    let stream = vec![purchase(0, 3, 86_400), purchase(1, 1, 86_400)];
    let mut model_set = model_set(&stream);
    model_set.forget_subject("subject-0", &stream[..1]).unwrap();
    let late = purchase(0, 2, 2 * 86_400);
    assert!(matches!(
        model_set.learn(&late),
        Err(ModelError::BadInteraction { .. })
    ));
    assert!(matches!(
        model_set.learn_all(&[late]),
        Err(ModelError::BadInteraction { .. })
    ));
    let newcomer = model_set.subject("newcomer");
    assert_ne!(newcomer, SubjectId(0));
    assert!(model_set.view_of(newcomer).held_items.is_empty());
    let unknown_item = purchase(1, 999, 86_400);
    assert!(matches!(
        model_set.learn(&unknown_item),
        Err(ModelError::BadInteraction { .. })
    ));
    let far_future = purchase(1, 1, i64::MAX);
    assert!(matches!(
        model_set.learn(&far_future),
        Err(ModelError::BadInteraction { .. })
    ));
}

/// Regression: an event far from the popularity reference time weighed `2^large` = inf,
/// and forgetting it left inf - inf = NaN, which hid the item from everyone.
#[test]
fn events_far_from_the_reference_time_never_turn_popularity_into_nan() {
    let years = 365 * 86_400;
    let stream = vec![
        purchase(0, 0, 22 * years),
        purchase(1, 0, 86_400),
        purchase(1, 2, 86_400),
    ];
    let mut model_set = model_set(&stream);
    model_set.forget_subject("subject-0", &stream[..1]).unwrap();
    let rebuilt = crate::explanations::model_set(&stream[1..]);
    // Next to a weight of 2^960 the small ones are absorbed, so the sums match a rebuild only
    // up to rounding relative to that weight (callers keep the reference time near their
    // data); what must never happen is inf - inf = NaN hiding items from everyone.
    let difference = model_set
        .popularity()
        .largest_difference(rebuilt.popularity());
    assert!(
        difference.is_finite(),
        "popularity differs from a rebuild by {difference}"
    );
    let now = 86_400 * 2;
    let popular: Vec<u32> = model_set
        .popular(&Context::default(), 10, now)
        .iter()
        .map(|scored| scored.item.0)
        .collect();
    assert!(popular.contains(&0), "{popular:?}");
}

/// Regression: forget trusted the interactions it was handed, so an event never learned
/// removed another customer's popularity count, and an incomplete list left counts behind.
#[test]
fn forget_refuses_a_list_that_does_not_match_what_the_models_hold() {
    // Subjects 0 and 1 both bought item 0 on day 1.
    let stream = vec![
        purchase(0, 0, 86_400),
        purchase(1, 0, 86_400),
        purchase(0, 1, 2 * 86_400),
    ];
    let mut model_set = model_set(&stream);
    let untouched = crate::explanations::model_set(&stream);
    let never_learned = purchase(0, 0, 5 * 86_400);
    let with_extra = vec![stream[0], stream[2], never_learned];
    assert!(matches!(
        model_set.forget_subject("subject-0", &with_extra),
        Err(ModelError::NotLearned { .. })
    ));
    let incomplete = vec![stream[0]];
    assert!(matches!(
        model_set.forget_subject("subject-0", &incomplete),
        Err(ModelError::BadInteraction { .. })
    ));
    assert_eq!(
        model_set
            .popularity()
            .largest_difference(untouched.popularity()),
        0.0,
        "nothing changed"
    );
    assert_eq!(model_set.item_item(), untouched.item_item());
    let exact = vec![stream[0], stream[2]];
    model_set.forget_subject("subject-0", &exact).unwrap();
    let rebuilt = crate::explanations::model_set(&stream[1..2]);
    assert!(
        model_set
            .popularity()
            .largest_difference(rebuilt.popularity())
            < 1e-12
    );
}

/// Guards the trending cache: after learning, unlearning or forgetting, every list (the
/// personal blend and the non-personal one) equals that of a set that learned the same
/// events from scratch — never one computed from the counts before the change.
#[test]
fn lists_after_a_change_never_come_from_stale_trending_scores() {
    let first: Vec<Interaction> = (0..6)
        .flat_map(|subject| (0..3).map(move |item| purchase(subject, (subject + item) % 7, 86_400)))
        .collect();
    // The later events make item 5 trend: a stale cache would not show it.
    let later: Vec<Interaction> = (0..5)
        .map(|subject| purchase(subject, 5, 90 * 86_400))
        .collect();
    let mut changed = model_set(&first);
    let now = 91 * 86_400;
    let context = Context::default();
    let lists = |set: &ModelSet| {
        (0..7)
            .map(|subject| {
                set.recommend(SubjectId(subject), 5, now, &context)
                    .iter()
                    .map(|recommendation| (recommendation.item.0, recommendation.score))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    let before = lists(&changed);
    for interaction in &later {
        changed.learn(interaction).unwrap();
    }
    changed.refresh().unwrap();
    let all: Vec<Interaction> = first.iter().chain(&later).copied().collect();
    let after = lists(&changed);
    assert_ne!(before, after, "the later events change the lists");
    assert_eq!(after, lists(&model_set(&all)));
    changed.unlearn(&later[0]).unwrap();
    changed.refresh().unwrap();
    assert_eq!(
        lists(&changed),
        lists(&model_set(
            &all[..all.len() - 5]
                .iter()
                .chain(&later[1..])
                .copied()
                .collect::<Vec<_>>()
        ))
    );
}
