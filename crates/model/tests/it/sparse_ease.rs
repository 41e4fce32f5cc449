//! Sparse EASE, the model for catalogues past dense EASE's limit: exact unlearning against
//! the bounded-contribution definition — forgetting a subject, then refreshing, gives the
//! model built without them, bit for bit, including subjects past the bound K and windows
//! that slide as newer events arrive or leave; learning incrementally equals a build, also
//! when changes arrive while a refresh computes; it does not score between a removal and
//! its refresh; with every item as neighbour it is
//! dense EASE; and `ModelSet` chooses it once the catalogue passes `ease_max_items`.

use discreet_model::{
    Context, EaseConfig, EaseModel, Interaction, ItemId, KindSet, ModelError, ModelSet,
    ModelSetConfig, SparseEaseConfig, SparseEaseModel, SubjectId,
};
use proptest::prelude::*;

use crate::streams::{N_ITEMS, N_SUBJECTS, shuffled, stream, stream_subject_and_seed, without};

/// Small enough that most subjects of the random streams (up to 9 items) pass it.
const BOUND: usize = 3;
const NOW: i64 = 200 * 86_400;

/// A bound and a neighbourhood small enough that both truncate on the random streams.
fn config(bound: usize) -> SparseEaseConfig {
    SparseEaseConfig {
        held_kinds: KindSet::engagement(),
        regularisation: 2.0,
        neighbours_per_item: 3,
        max_contributed_items: bound,
        ..SparseEaseConfig::default()
    }
}

fn build(bound: usize, stream: &[Interaction]) -> SparseEaseModel {
    SparseEaseModel::build(config(bound), stream).unwrap()
}

/// One recommendation as a comparable value: item, score, explanation.
type Answer = (u32, f32, Vec<(u32, f32)>);

/// Every subject's list with its explanation, as comparable values.
fn answers(model: &SparseEaseModel) -> Vec<Vec<Answer>> {
    (0..N_SUBJECTS)
        .map(|subject| {
            model
                .recommend(SubjectId(subject), 5, NOW)
                .unwrap()
                .into_iter()
                .map(|recommendation| {
                    let because = recommendation
                        .because
                        .iter()
                        .map(|contribution| (contribution.item.0, contribution.weight))
                        .collect();
                    (recommendation.item.0, recommendation.score, because)
                })
                .collect()
        })
        .collect()
}

/// The subject's newest event still in `remaining`, removed from it.
fn take_newest(remaining: &mut Vec<Interaction>, subject: SubjectId) -> Option<Interaction> {
    let position = remaining
        .iter()
        .enumerate()
        .filter(|(_, interaction)| interaction.subject == subject)
        .max_by_key(|(_, interaction)| interaction.at)
        .map(|(position, _)| position)?;
    Some(remaining.remove(position))
}

proptest! {
    #[test]
    fn sparse_ease_learned_in_any_order_and_in_batches_equals_a_build((stream, _subject, seed) in stream_subject_and_seed()) {
        for bound in [BOUND, 0] {
            let built = build(bound, &stream);
            let half = stream.len() / 2;
            let mut incremental = build(bound, &stream[..half]);
            for interaction in shuffled(&stream[half..], seed) {
                incremental.learn(&interaction);
            }
            incremental.refresh().unwrap();
            prop_assert_eq!(&incremental, &built);
            prop_assert_eq!(answers(&incremental), answers(&built));

            let mut batched = SparseEaseModel::new(config(bound)).unwrap();
            batched.learn_batch(&shuffled(&stream, seed));
            batched.refresh().unwrap();
            prop_assert_eq!(&batched, &built);
        }
    }

    #[test]
    fn sparse_ease_forgets_exactly_past_the_bound_and_as_the_window_slides((stream, subject, seed) in stream_subject_and_seed()) {
        let expected = build(BOUND, &without(&stream, subject));
        let mut by_forget = build(BOUND, &stream);
        let held = !by_forget.histories().held(subject).is_empty();
        by_forget.forget_subject(subject);
        // Until the refresh, nothing is served (the weights still read the subject).
        prop_assert_eq!(by_forget.scorable(), !held);
        by_forget.refresh().unwrap();
        prop_assert_eq!(&by_forget, &expected);
        prop_assert_eq!(answers(&by_forget), answers(&expected));

        // Unlearning the subject's newest events one at a time slides older items back
        // into its window; after each step and refresh the model equals a build.
        let mut remaining = shuffled(&stream, seed);
        let mut by_events = build(BOUND, &remaining);
        while let Some(interaction) = take_newest(&mut remaining, subject) {
            by_events.unlearn(&interaction).unwrap();
            by_events.refresh().unwrap();
            let rebuilt = build(BOUND, &remaining);
            prop_assert_eq!(&by_events, &rebuilt);
            prop_assert_eq!(answers(&by_events), answers(&rebuilt));
        }
    }

    #[test]
    fn sparse_ease_forgets_exactly_after_new_items_slid_the_window((stream, subject, seed) in stream_subject_and_seed()) {
        // The subject's newest events arrive after the build (and a refresh), pushing its
        // older items out of the window; then the subject is forgotten.
        let ordered = shuffled(&stream, seed);
        let (late, early): (Vec<Interaction>, Vec<Interaction>) = ordered
            .iter()
            .partition(|interaction| interaction.subject == subject && interaction.at >= 100 * 86_400);
        let mut model = build(BOUND, &early);
        for interaction in &late {
            model.learn(interaction);
        }
        model.refresh().unwrap();
        prop_assert_eq!(&model, &build(BOUND, &ordered));
        let other_events: Vec<Interaction> = without(&ordered, subject);
        model.forget_subject(subject);
        // Another subject's events learned between the forget and the refresh count too.
        model.refresh().unwrap();
        prop_assert_eq!(&model, &build(BOUND, &other_events));
        prop_assert_eq!(answers(&model), answers(&build(BOUND, &other_events)));
    }

    #[test]
    fn changes_made_while_a_refresh_computes_reach_the_next_one_exactly((stream, subject, seed) in stream_subject_and_seed()) {
        let ordered = shuffled(&stream, seed);
        let third = ordered.len() / 3;
        let mut model = build(BOUND, &ordered[..third]);
        for interaction in &ordered[third..2 * third] {
            model.learn(interaction);
        }
        // The plan's snapshot of the Gram rows is taken; learning and a forget go on
        // beside its computation (copy-on-write rows), then it is installed.
        let plan = model.begin_refresh();
        model.learn_batch(&ordered[2 * third..]);
        let held = !model.histories().held(subject).is_empty();
        model.forget_subject(subject);
        if let Some(plan) = plan {
            model.finish_refresh(plan.compute()).unwrap();
        }
        // The installed weights predate the forget: nothing is served until the next refresh.
        prop_assert_eq!(model.scorable(), !held);
        model.refresh().unwrap();
        let expected = build(BOUND, &without(&ordered, subject));
        prop_assert_eq!(&model, &expected);
        prop_assert_eq!(answers(&model), answers(&expected));
    }

    #[test]
    fn a_forgotten_subject_is_never_scored_before_the_refresh((stream, subject, _seed) in stream_subject_and_seed()) {
        let mut model = build(BOUND, &stream);
        let other = SubjectId((subject.0 + 1) % N_SUBJECTS);
        let mut scores = vec![0.0f32; N_ITEMS as usize];
        let mut scratch = discreet_model::sparse_ease::SparseEaseScratch::default();
        if model.forget_subject(subject).is_empty() {
            // Nothing was removed: the old weights are exact and may serve.
            prop_assert!(model.score_into(other, NOW, &mut scores, &mut scratch).is_ok());
        } else {
            prop_assert_eq!(model.score_into(other, NOW, &mut scores, &mut scratch), Err(ModelError::NotRefreshed));
            prop_assert_eq!(model.recommend(other, 5, NOW).unwrap_err(), ModelError::NotRefreshed);
        }
        model.refresh().unwrap();
        prop_assert!(model.score_into(other, NOW, &mut scores, &mut scratch).is_ok());
    }

    #[test]
    fn with_every_item_as_neighbour_sparse_ease_is_dense_ease(stream in stream()) {
        // One more subject holds every item, so every pair co-occurs and each item's
        // neighbourhood is the whole catalogue: then the local regressions are EASE's.
        let mut stream = stream;
        stream.extend((0..N_ITEMS).map(|item| Interaction { subject: SubjectId(N_SUBJECTS), item: ItemId(item), at: 0, kind: discreet_model::InteractionKind::Purchase, quantity: 1, context: Context::default() }));
        let dense = EaseModel::build(EaseConfig { regularisation: 2.0, held_kinds: KindSet::engagement(), max_contributed_items: 0, ..EaseConfig::default() }, &stream).unwrap();
        let sparse = SparseEaseModel::build(SparseEaseConfig { neighbours_per_item: N_ITEMS as usize, ..config(0) }, &stream).unwrap();
        for source in (0..N_ITEMS).map(ItemId) {
            for target in (0..N_ITEMS).map(ItemId) {
                let difference = (dense.weight(source, target) - sparse.weight(source, target) as f64).abs();
                prop_assert!(difference < 1e-5, "B[{}, {}] differs by {}", source.0, target.0, difference);
            }
        }
    }

    #[test]
    fn a_model_set_past_its_dense_limit_uses_sparse_ease_and_forgets_exactly((stream, subject, _seed) in stream_subject_and_seed()) {
        let mut forgotten = model_set(&stream);
        prop_assert!(forgotten.ease().is_none() && forgotten.sparse_ease().is_some());
        let events: Vec<Interaction> = stream.iter().filter(|interaction| interaction.subject == subject).copied().collect();
        let held = !forgotten.sparse_ease().unwrap().histories().held(subject).is_empty();
        forgotten.forget_subject(&format!("subject-{}", subject.0), &events).unwrap();
        prop_assert_eq!(forgotten.sparse_ease().unwrap().scorable(), !held);
        forgotten.refresh().unwrap();
        let expected = model_set(&without(&stream, subject));
        prop_assert_eq!(forgotten.sparse_ease().unwrap(), expected.sparse_ease().unwrap());
        for other in (0..N_SUBJECTS).map(SubjectId).filter(|other| *other != subject) {
            let lists = [&forgotten, &expected].map(|set| set.recommend(other, 5, NOW, &Context::default()));
            prop_assert_eq!(&lists[0], &lists[1]);
            for recommendation in &lists[0] {
                for contribution in &recommendation.because {
                    prop_assert!(forgotten.item_item().histories().holds(other, contribution.item));
                }
            }
        }
    }
}

/// Settings with a dense-EASE limit of 4 items, so the streams' 9 items pass it; no
/// trending in the blend (decayed sums differ in their last bits after an unlearn).
fn small_limit_config() -> ModelSetConfig {
    let mut config = ModelSetConfig::default()
        .counting(KindSet::engagement())
        .contributing(BOUND);
    config.ease_max_items = 4;
    config.sparse_ease.regularisation = 2.0;
    config.sparse_ease.neighbours_per_item = 3;
    config.blend.trending_weight = 0.0;
    config.popularity.reference_time = 100 * 86_400;
    config
}

/// A set whose interners map "subject-k" to `SubjectId(k)` and "item-k" to `ItemId(k)`.
fn model_set(stream: &[Interaction]) -> ModelSet {
    let mut model_set = ModelSet::new(small_limit_config()).unwrap();
    for subject in 0..N_SUBJECTS {
        model_set.subject(&format!("subject-{subject}"));
    }
    for item in 0..N_ITEMS {
        model_set.item(&format!("item-{item}"));
    }
    model_set.learn_all(stream).unwrap();
    model_set
}

#[test]
fn a_model_set_hands_dense_ease_over_to_sparse_ease_when_the_catalogue_passes_the_limit() {
    let mut model_set = ModelSet::new(small_limit_config()).unwrap();
    let subjects: Vec<SubjectId> = (0..3)
        .map(|subject| model_set.subject(&format!("subject-{subject}")))
        .collect();
    let purchase = |model_set: &mut ModelSet, subject: SubjectId, code: &str, day: i64| {
        let item = model_set.item(code);
        model_set
            .learn(&Interaction {
                subject,
                item,
                at: day * 86_400,
                kind: discreet_model::InteractionKind::Purchase,
                quantity: 1,
                context: Context::default(),
            })
            .unwrap();
    };
    for (subject, codes) in subjects.iter().zip([["a", "b"], ["a", "c"], ["b", "c"]]) {
        for (day, code) in codes.iter().enumerate() {
            purchase(&mut model_set, *subject, code, day as i64);
        }
    }
    model_set.refresh().unwrap();
    // Three items: within the limit, dense EASE.
    assert!(model_set.ease().is_some() && model_set.sparse_ease().is_none());
    for (day, code) in ["d", "e", "a"].iter().enumerate() {
        purchase(&mut model_set, subjects[0], code, 10 + day as i64);
    }
    purchase(&mut model_set, subjects[1], "d", 20);
    // The hand-over happens in the refresh's plan; its slow part runs off the set.
    let plan = model_set
        .begin_refresh()
        .expect("the new sparse model needs solving");
    assert!(model_set.ease().is_none());
    assert!(!model_set.sparse_ease().unwrap().scorable());
    let report = model_set.finish_refresh(plan.compute()).unwrap();
    assert!(
        report.refactorised,
        "the first sparse refresh solves every item"
    );
    let sparse_ease = model_set.sparse_ease().unwrap();
    assert!(sparse_ease.scorable() && sparse_ease.n_weights() > 0);
    assert_eq!(sparse_ease.gram_entry(ItemId(0), ItemId(3)), 2);
    // Subject 2 holds b and c; subjects 0 and 1 tie b/c to a and d.
    let recommendations = model_set.recommend(subjects[2], 3, 30 * 86_400, &Context::default());
    assert!(!recommendations[0].because.is_empty());
    for recommendation in &recommendations {
        for contribution in &recommendation.because {
            assert!(
                model_set
                    .item_item()
                    .histories()
                    .holds(subjects[2], contribution.item)
            );
        }
    }
}

#[test]
fn a_refresh_overtaken_by_another_is_refused_and_the_next_solves_everything() {
    let stream: Vec<Interaction> = (0..6u32)
        .map(|index| Interaction {
            subject: SubjectId(index % 3),
            item: ItemId(index % 4),
            at: index as i64 * 86_400,
            kind: discreet_model::InteractionKind::Purchase,
            quantity: 1,
            context: Context::default(),
        })
        .collect();
    let mut model = build(BOUND, &stream[..3]);
    for interaction in &stream[3..] {
        model.learn(interaction);
    }
    let stale = model.begin_refresh().unwrap().compute();
    // Learning goes on while the plan computes; the plan's snapshot is not touched.
    let extra = Interaction {
        subject: SubjectId(0),
        item: ItemId(5),
        at: 10 * 86_400,
        ..stream[0]
    };
    model.learn(&extra);
    model.refresh().unwrap();
    assert!(model.finish_refresh(stale).is_err());
    assert!(model.needs_refresh());
    let report = model.refresh().unwrap();
    assert!(report.full);
    let mut everything = stream.clone();
    everything.push(extra);
    assert_eq!(model, build(BOUND, &everything));
}

/// Guards the count of outstanding plans: with two plans out, the first finishing must not
/// let a third be partial, or the third (accepted) would miss the changes the second
/// (refused) took — a forget among them — and yet count as reflecting that removal.
#[test]
fn a_plan_made_while_another_is_out_solves_everything_even_after_the_first_finishes() {
    let stream: Vec<Interaction> = (0..12u32)
        .map(|index| Interaction {
            subject: SubjectId(index % 4),
            item: ItemId(index % 5),
            at: index as i64 * 86_400,
            kind: discreet_model::InteractionKind::Purchase,
            quantity: 1,
            context: Context::default(),
        })
        .collect();
    let mut model = build(BOUND, &stream[..8]);
    model.learn(&stream[8]);
    let first = model.begin_refresh().unwrap();
    // The forget's changes go to the second plan only.
    model.forget_subject(SubjectId(1));
    let second = model.begin_refresh().unwrap();
    assert!(model.finish_refresh(first.compute()).is_ok());
    model.learn(&stream[10]);
    let third = model.begin_refresh().unwrap();
    assert!(model.finish_refresh(second.compute()).is_err());
    let report = model.finish_refresh(third.compute()).unwrap();
    assert!(
        report.full,
        "a plan made while another was out must solve every column"
    );
    assert!(model.scorable());
    let expected: Vec<Interaction> = stream[..9]
        .iter()
        .chain(std::iter::once(&stream[10]))
        .filter(|interaction| interaction.subject != SubjectId(1))
        .copied()
        .collect();
    assert_eq!(model, build(BOUND, &expected));
}

#[test]
fn bad_sparse_settings_are_refused_naming_the_setting() {
    for bad in [
        SparseEaseConfig {
            regularisation: 0.0,
            ..SparseEaseConfig::default()
        },
        SparseEaseConfig {
            neighbours_per_item: 0,
            ..SparseEaseConfig::default()
        },
    ] {
        let error = SparseEaseModel::new(bad.clone()).unwrap_err();
        assert!(matches!(error, ModelError::BadConfig { .. }));
        let config = ModelSetConfig {
            sparse_ease: bad,
            ..ModelSetConfig::default()
        };
        assert!(ModelSet::new(config).is_err());
    }
}
