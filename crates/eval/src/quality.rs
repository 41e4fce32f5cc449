//! A model's quality on a split: every test customer gets a list (minus what they bought in
//! train), scored by NDCG@10, Recall@20 and coverage@10; and the rows of the results table,
//! each model rebuilt on all data before the cutoff with the chosen settings and measured
//! once. Nothing here chooses a setting: that is `tune`, on the validation split only.

use discreet_model::metrics::{coverage_at, ndcg_at, recall_at};
use discreet_model::{
    Context, EaseModel, ItemId, ItemItemModel, ModelSet, ModelSetConfig, PopularityConfig,
    PopularityModel, RecommendScratch, SparseEaseConfig, SparseEaseModel, SubjectId,
};

use crate::memory::{BuildCost, measured};
use crate::split::Split;

/// Recommendation list length needed by the metrics.
pub const LIST_LENGTH: usize = 20;

/// NDCG@10, Recall@20 and coverage@10 of one model on one split.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Quality {
    pub ndcg_at_10: f64,
    pub recall_at_20: f64,
    pub coverage_at_10: f64,
}

/// Runs `recommend` for every test subject (on up to four threads) and scores the lists.
/// The first error of `recommend` is returned instead of a figure over fewer customers.
pub fn evaluate<F>(split: &Split, recommend: F) -> anyhow::Result<Quality>
where
    F: Fn(SubjectId, &mut Vec<ItemId>) -> anyhow::Result<()> + Sync,
{
    let n_threads = std::thread::available_parallelism()
        .map(|count| count.get())
        .unwrap_or(1)
        .clamp(1, 4);
    let chunk_length = split.test.len().div_ceil(n_threads).max(1);
    type ThreadSums = anyhow::Result<(f64, f64, Vec<Vec<ItemId>>)>;
    let per_thread: Vec<ThreadSums> = std::thread::scope(|scope| {
        let handles: Vec<_> = split
            .test
            .chunks(chunk_length)
            .map(|chunk| {
                let recommend = &recommend;
                scope.spawn(move || -> ThreadSums {
                    let mut ndcg_sum = 0.0;
                    let mut recall_sum = 0.0;
                    let mut lists = Vec::with_capacity(chunk.len());
                    let mut ranked = Vec::with_capacity(LIST_LENGTH);
                    for (subject, relevant) in chunk {
                        ranked.clear();
                        recommend(*subject, &mut ranked)?;
                        ndcg_sum += ndcg_at(10, &ranked, relevant);
                        recall_sum += recall_at(20, &ranked, relevant);
                        lists.push(ranked.iter().take(10).copied().collect());
                    }
                    Ok((ndcg_sum, recall_sum, lists))
                })
            })
            .collect();
        handles
            .into_iter()
            // A worker that panicked is a bug: propagate it rather than report a metric
            // silently averaged over fewer customers.
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let per_thread = per_thread.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let n_subjects = split.test.len().max(1) as f64;
    let ndcg_sum: f64 = per_thread.iter().map(|(ndcg, _, _)| ndcg).sum();
    let recall_sum: f64 = per_thread.iter().map(|(_, recall, _)| recall).sum();
    let lists: Vec<&[ItemId]> = per_thread
        .iter()
        .flat_map(|(_, _, lists)| lists.iter().map(Vec::as_slice))
        .collect();
    Ok(Quality {
        ndcg_at_10: ndcg_sum / n_subjects,
        recall_at_20: recall_sum / n_subjects,
        coverage_at_10: coverage_at(10, lists, split.catalogue.len()),
    })
}

/// A global ranking (all items, best first) served to everyone minus what they hold.
pub fn evaluate_global_ranking(split: &Split, ranking: &[ItemId]) -> anyhow::Result<Quality> {
    evaluate(split, |subject, ranked| {
        ranked.extend(
            ranking
                .iter()
                .copied()
                .filter(|item| !split.is_held(subject, *item))
                .take(LIST_LENGTH),
        );
        Ok(())
    })
}

/// A popularity model taught the split's train part.
pub fn popularity_model(
    config: &PopularityConfig,
    split: &Split,
) -> anyhow::Result<PopularityModel> {
    let mut model = PopularityModel::new(config.clone())?;
    for interaction in &split.train {
        model.learn(interaction);
    }
    Ok(model)
}

/// Every item by all-time popularity, best first.
pub fn all_time_ranking(model: &PopularityModel, split: &Split) -> Vec<ItemId> {
    model
        .all_time_popular(split.catalogue.len())
        .into_iter()
        .map(|scored| scored.item)
        .collect()
}

/// Every item by trending score at the cutoff, best first.
pub fn trending_ranking(model: &PopularityModel, split: &Split) -> Vec<ItemId> {
    model
        .popular(&Context::default(), split.catalogue.len(), split.cutoff)
        .into_iter()
        .map(|scored| scored.item)
        .collect()
}

/// Item-item's personal lists at the cutoff.
pub fn evaluate_item_item(model: &ItemItemModel, split: &Split) -> anyhow::Result<Quality> {
    evaluate(split, |subject, ranked| {
        ranked.extend(
            model
                .recommend(subject, LIST_LENGTH, split.cutoff)
                .into_iter()
                .map(|recommendation| recommendation.item),
        );
        Ok(())
    })
}

/// EASE's personal lists at the cutoff; EASE must be refreshed (it is, right after a build).
pub fn evaluate_ease(model: &EaseModel, split: &Split) -> anyhow::Result<Quality> {
    evaluate(split, |subject, ranked| {
        let recommendations = model.recommend(subject, LIST_LENGTH, split.cutoff)?;
        ranked.extend(
            recommendations
                .into_iter()
                .map(|recommendation| recommendation.item),
        );
        Ok(())
    })
}

/// Sparse EASE's personal lists at the cutoff (refreshed, as it is right after a build).
pub fn evaluate_sparse_ease(model: &SparseEaseModel, split: &Split) -> anyhow::Result<Quality> {
    evaluate(split, |subject, ranked| {
        let recommendations = model.recommend(subject, LIST_LENGTH, split.cutoff)?;
        ranked.extend(
            recommendations
                .into_iter()
                .map(|recommendation| recommendation.item),
        );
        Ok(())
    })
}

/// Sparse EASE's settings as a set past its dense-EASE limit uses them, with EASE's kinds,
/// history weighting and contribution bound (λ and `k` are sparse EASE's own).
pub fn sparse_ease_config(settings: &ModelSetConfig) -> SparseEaseConfig {
    SparseEaseConfig {
        held_kinds: settings.ease.held_kinds,
        history_half_life_days: settings.ease.history_half_life_days,
        max_history_items: settings.ease.max_history_items,
        max_contributed_items: settings.ease.max_contributed_items,
        ..settings.sparse_ease.clone()
    }
}

/// The blend's personal lists at the cutoff, in the default context.
pub fn evaluate_model_set(model_set: &ModelSet, split: &Split) -> anyhow::Result<Quality> {
    evaluate(split, |subject, ranked| {
        let mut scratch = RecommendScratch::default();
        let recommendations = model_set.recommend_with(
            &mut scratch,
            subject,
            LIST_LENGTH,
            split.cutoff,
            &Context::default(),
        );
        ranked.extend(
            recommendations
                .into_iter()
                .map(|recommendation| recommendation.item),
        );
        Ok(())
    })
}

/// One row of the results table.
#[derive(Clone, Debug)]
pub struct ModelRow {
    pub name: &'static str,
    pub quality: Quality,
    pub build: BuildCost,
}

/// The models measured last, kept for the latency figures.
pub struct MeasuredModels {
    pub item_item: ItemItemModel,
    pub ease: EaseModel,
    pub model_set: ModelSet,
}

/// Builds every model with `settings` (e.g. those tuned on the validation month) on
/// `split`'s train part and measures each once on its test part: popularity, trending,
/// item-item, EASE, sparse EASE (forced on, past no limit), the blend with sparse EASE in
/// EASE's place, and the blend, in that order.
/// Builds and measures one model set with exactly `config` (e.g. what the engine serves),
/// its popularity reference time re-based to the split's cutoff as the engine re-bases it to
/// its start.
pub fn measure_model_set(
    split: &Split,
    name: &'static str,
    config: &ModelSetConfig,
) -> anyhow::Result<ModelRow> {
    let mut config = config.clone();
    config.popularity.reference_time = split.cutoff;
    let (model_set, build) = measured(|| split.model_set(config))?;
    Ok(ModelRow {
        name,
        quality: evaluate_model_set(&model_set, split)?,
        build,
    })
}

pub fn measure_models(
    split: &Split,
    settings: &ModelSetConfig,
) -> anyhow::Result<(Vec<ModelRow>, MeasuredModels)> {
    let popularity_config = PopularityConfig {
        reference_time: split.cutoff,
        ..settings.popularity.clone()
    };
    let mut rows = Vec::new();
    let (popularity, build) = measured(|| popularity_model(&popularity_config, split))?;
    rows.push(ModelRow {
        name: "popularity",
        quality: evaluate_global_ranking(split, &all_time_ranking(&popularity, split))?,
        build,
    });
    rows.push(ModelRow {
        name: "trending",
        quality: evaluate_global_ranking(split, &trending_ranking(&popularity, split))?,
        build,
    });
    drop(popularity);
    let (item_item, build) = measured(|| {
        Ok(ItemItemModel::build(
            settings.item_item.clone(),
            &split.train,
        ))
    })?;
    rows.push(ModelRow {
        name: "item-item",
        quality: evaluate_item_item(&item_item, split)?,
        build,
    });
    let (ease, build) = measured(|| Ok(EaseModel::build(settings.ease.clone(), &split.train)?))?;
    rows.push(ModelRow {
        name: "EASE",
        quality: evaluate_ease(&ease, split)?,
        build,
    });
    // The model for catalogues past dense EASE's limit, forced on this one.
    let (sparse_ease, build) = measured(|| {
        Ok(SparseEaseModel::build(
            sparse_ease_config(settings),
            &split.train,
        )?)
    })?;
    rows.push(ModelRow {
        name: "sparse EASE",
        quality: evaluate_sparse_ease(&sparse_ease, split)?,
        build,
    });
    drop(sparse_ease);
    let set_config = ModelSetConfig {
        popularity: popularity_config,
        ..settings.clone()
    };
    let forced_sparse = ModelSetConfig {
        ease_max_items: 0,
        sparse_ease: sparse_ease_config(settings),
        ..set_config.clone()
    };
    let (model_set, build) = measured(|| split.model_set(forced_sparse))?;
    rows.push(ModelRow {
        name: "blend, sparse EASE",
        quality: evaluate_model_set(&model_set, split)?,
        build,
    });
    drop(model_set);
    let (model_set, build) = measured(|| split.model_set(set_config))?;
    rows.push(ModelRow {
        name: "blend",
        quality: evaluate_model_set(&model_set, split)?,
        build,
    });
    Ok((
        rows,
        MeasuredModels {
            item_item,
            ease,
            model_set,
        },
    ))
}
