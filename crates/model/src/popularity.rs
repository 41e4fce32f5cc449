//! Contextual popularity: popular and trending items per context bucket (global, country,
//! hour of day, weather). Holds no per-subject state, so it is the answer for subjects
//! without consent. Trending is an exponentially decayed count whose decay is taken
//! relative to a fixed reference time — each event adds `2^((t - t_ref)/half_life)` — so an
//! event's contribution does not depend on when it was learned, and unlearning subtracts
//! exactly what learning added. Never reads a clock: `now` is passed in.

use crate::error::{ModelError, Result};
use crate::ids::ItemId;
use crate::interaction::{Context, Interaction, KindSet, SECONDS_PER_DAY, UnixSeconds, Weather};
use crate::ranking::{ScoredItem, top_n};
use crate::selection::{AnyItem, ItemSelection, select_top_n};

/// Largest |exponent| of an event weight (see `event_weight`).
const MAX_HALF_LIVES: f64 = 960.0;

/// Settings of the popularity model.
#[derive(Clone, Debug, PartialEq)]
pub struct PopularityConfig {
    /// Which interaction kinds count.
    pub counted_kinds: KindSet,
    /// Fixed time the decay is measured from; keep it within a few years of the data.
    pub reference_time: UnixSeconds,
    /// Half-life of an event's weight in "trending", in days.
    pub trend_half_life_days: f64,
    /// Weight of the country bucket next to the global one (normalised scores).
    pub country_weight: f32,
    /// Weight of the hour-of-day bucket.
    pub hour_weight: f32,
    /// Weight of the weather bucket.
    pub weather_weight: f32,
}

impl Default for PopularityConfig {
    fn default() -> Self {
        PopularityConfig {
            counted_kinds: KindSet::engagement(),
            // 2024-01-01T00:00:00Z.
            reference_time: 1_704_067_200,
            trend_half_life_days: 7.0,
            country_weight: 0.5,
            hour_weight: 0.2,
            weather_weight: 0.2,
        }
    }
}

/// Counts of one context bucket.
#[derive(Clone, Debug, Default, PartialEq)]
struct BucketCounts {
    decayed: Vec<f64>,
    events: Vec<u64>,
}

impl BucketCounts {
    fn add(&mut self, item: ItemId, weight: f64) {
        let index = item.index();
        if index >= self.events.len() {
            self.events.resize(index + 1, 0);
            self.decayed.resize(index + 1, 0.0);
        }
        self.events[index] += 1;
        self.decayed[index] += weight;
    }

    fn remove(&mut self, item: ItemId, weight: f64) -> bool {
        let index = item.index();
        match self.events.get_mut(index) {
            Some(count) if *count > 0 => {
                *count -= 1;
                // With no events left the sum is exactly zero, whatever the rounding.
                self.decayed[index] = if *count == 0 {
                    0.0
                } else {
                    self.decayed[index] - weight
                };
                true
            }
            _ => false,
        }
    }

    /// Adds `weight × decayed / max(decayed)` into `scores`.
    fn add_normalised_trend(&self, weight: f32, scores: &mut [f32]) {
        let largest = self
            .decayed
            .iter()
            .fold(0.0f64, |largest, value| largest.max(*value));
        if largest <= 0.0 || weight == 0.0 {
            return;
        }
        for (score, value) in scores.iter_mut().zip(&self.decayed) {
            *score += weight * (*value / largest) as f32;
        }
    }
}

/// Popular and trending items per context bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct PopularityModel {
    config: PopularityConfig,
    global: BucketCounts,
    by_country: Vec<BucketCounts>,
    by_hour: Vec<BucketCounts>,
    by_weather: Vec<BucketCounts>,
    item_bound: usize,
}

impl PopularityModel {
    /// An empty model.
    pub fn new(config: PopularityConfig) -> Result<PopularityModel> {
        if !(config.trend_half_life_days > 0.0 && config.trend_half_life_days.is_finite()) {
            return Err(ModelError::BadConfig {
                detail: format!(
                    "trend half-life must be a positive number of days, got {}",
                    config.trend_half_life_days
                ),
            });
        }
        Ok(PopularityModel {
            config,
            global: BucketCounts::default(),
            by_country: Vec::new(),
            by_hour: vec![BucketCounts::default(); 24],
            by_weather: vec![BucketCounts::default(); Weather::COUNT],
            item_bound: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PopularityConfig {
        &self.config
    }

    /// One past the largest item id counted.
    pub fn item_bound(&self) -> usize {
        self.item_bound
    }

    /// `2^((at - t_ref) / half_life)`, with the exponent held within ±960 so that a weight
    /// and a sum of up to 2^63 of them stay finite (an infinite sum would turn into NaN when
    /// a forget subtracts from it). Events further than that from the reference time all
    /// weigh the same; callers keep the reference time near their data.
    fn event_weight(&self, at: UnixSeconds) -> f64 {
        let half_lives = at.saturating_sub(self.config.reference_time) as f64
            / (self.config.trend_half_life_days * SECONDS_PER_DAY);
        half_lives.clamp(-MAX_HALF_LIVES, MAX_HALF_LIVES).exp2()
    }

    /// Counts one interaction.
    pub fn learn(&mut self, interaction: &Interaction) {
        if !self.config.counted_kinds.contains(interaction.kind) {
            return;
        }
        let weight = self.event_weight(interaction.at);
        let item = interaction.item;
        self.item_bound = self.item_bound.max(item.index() + 1);
        self.global.add(item, weight);
        let context = interaction.context;
        if let Some(country) = context.country {
            let index = country.0 as usize;
            if index >= self.by_country.len() {
                self.by_country
                    .resize_with(index + 1, BucketCounts::default);
            }
            self.by_country[index].add(item, weight);
        }
        if let Some(hour) = context.hour_of_day.filter(|hour| *hour < 24) {
            self.by_hour[hour as usize].add(item, weight);
        }
        if context.weather != Weather::Unknown {
            self.by_weather[context.weather.index()].add(item, weight);
        }
    }

    /// Removes one previously counted interaction (an error if it was never counted).
    pub fn unlearn(&mut self, interaction: &Interaction) -> Result<()> {
        if !self.config.counted_kinds.contains(interaction.kind) {
            return Ok(());
        }
        let not_learned = ModelError::NotLearned {
            subject: interaction.subject.0,
            item: interaction.item.0,
            at: interaction.at,
        };
        let weight = self.event_weight(interaction.at);
        let item = interaction.item;
        let context = interaction.context;
        // Check every bucket first so a bad unlearn changes nothing.
        let country_ok = context.country.is_none_or(|country| {
            self.by_country
                .get(country.0 as usize)
                .is_some_and(|bucket| {
                    bucket
                        .events
                        .get(item.index())
                        .is_some_and(|count| *count > 0)
                })
        });
        let hour_ok = context
            .hour_of_day
            .filter(|hour| *hour < 24)
            .is_none_or(|hour| {
                self.by_hour[hour as usize]
                    .events
                    .get(item.index())
                    .is_some_and(|count| *count > 0)
            });
        let weather_ok = context.weather == Weather::Unknown
            || self.by_weather[context.weather.index()]
                .events
                .get(item.index())
                .is_some_and(|count| *count > 0);
        if !country_ok || !hour_ok || !weather_ok || !self.global.remove(item, weight) {
            return Err(not_learned);
        }
        if let Some(country) = context.country {
            self.by_country[country.0 as usize].remove(item, weight);
        }
        if let Some(hour) = context.hour_of_day.filter(|hour| *hour < 24) {
            self.by_hour[hour as usize].remove(item, weight);
        }
        if context.weather != Weather::Unknown {
            self.by_weather[context.weather.index()].remove(item, weight);
        }
        Ok(())
    }

    /// Number of counted events of `item`, all time, all contexts.
    pub fn event_count(&self, item: ItemId) -> u64 {
        self.global.events.get(item.index()).copied().unwrap_or(0)
    }

    /// Adds the normalised trending score for `context` into `scores` (by item id): the
    /// global bucket plus the context's buckets, each divided by its largest value.
    pub fn trending_scores_into(&self, context: &Context, scores: &mut [f32]) {
        self.global.add_normalised_trend(1.0, scores);
        if let Some(bucket) = context
            .country
            .and_then(|country| self.by_country.get(country.0 as usize))
        {
            bucket.add_normalised_trend(self.config.country_weight, scores);
        }
        if let Some(hour) = context.hour_of_day.filter(|hour| *hour < 24) {
            self.by_hour[hour as usize].add_normalised_trend(self.config.hour_weight, scores);
        }
        if context.weather != Weather::Unknown {
            self.by_weather[context.weather.index()]
                .add_normalised_trend(self.config.weather_weight, scores);
        }
    }

    /// Trending items for `context`, best first; scores are decayed event counts as of
    /// `now` in the global bucket (the ranking also weighs the context's buckets).
    pub fn popular(&self, context: &Context, n: usize, now: UnixSeconds) -> Vec<ScoredItem> {
        self.popular_selected(context, n, now, &AnyItem)
    }

    /// `popular` answering only items `selection` allows (before the top-n cut).
    pub fn popular_selected(
        &self,
        context: &Context,
        n: usize,
        now: UnixSeconds,
        selection: &dyn ItemSelection,
    ) -> Vec<ScoredItem> {
        let mut scores = vec![0.0f32; self.item_bound];
        self.trending_scores_into(context, &mut scores);
        let now_factor = 1.0 / self.event_weight(now);
        select_top_n(
            &scores,
            n,
            |index| {
                self.global
                    .events
                    .get(index)
                    .is_none_or(|count| *count == 0)
            },
            selection,
        )
        .into_iter()
        .map(|scored| ScoredItem {
            item: scored.item,
            score: (self.global.decayed[scored.item.index()] * now_factor) as f32,
        })
        .collect()
    }

    /// All-time most counted items, best first (scores are event counts).
    pub fn all_time_popular(&self, n: usize) -> Vec<ScoredItem> {
        let scores: Vec<f32> = self
            .global
            .events
            .iter()
            .map(|count| *count as f32)
            .collect();
        top_n(&scores, n, |index| scores[index] <= 0.0)
    }

    /// Largest absolute difference between two models' decayed sums, in units of the weight
    /// of one event at the reference time; infinite if any event count differs. Float sums
    /// of weights `w` are exact up to about `1e-16 × Σ w`, so compare against that scale.
    pub fn largest_difference(&self, other: &PopularityModel) -> f64 {
        let mut worst = 0.0f64;
        let mut compare = |left: &BucketCounts, right: &BucketCounts| {
            let length = left.events.len().max(right.events.len());
            for index in 0..length {
                if left.events.get(index).copied().unwrap_or(0)
                    != right.events.get(index).copied().unwrap_or(0)
                {
                    worst = f64::INFINITY;
                }
                let difference = left.decayed.get(index).copied().unwrap_or(0.0)
                    - right.decayed.get(index).copied().unwrap_or(0.0);
                // NaN compares as no difference under `max`: count it as the worst there is.
                worst = if difference.is_nan() {
                    f64::INFINITY
                } else {
                    worst.max(difference.abs())
                };
            }
        };
        compare(&self.global, &other.global);
        let empty = BucketCounts::default();
        for index in 0..self.by_country.len().max(other.by_country.len()) {
            compare(
                self.by_country.get(index).unwrap_or(&empty),
                other.by_country.get(index).unwrap_or(&empty),
            );
        }
        for (left, right) in self.by_hour.iter().zip(&other.by_hour) {
            compare(left, right);
        }
        for (left, right) in self.by_weather.iter().zip(&other.by_weather) {
            compare(left, right);
        }
        worst
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SubjectId;
    use crate::interaction::{CountryId, InteractionKind};

    fn purchase(item: u32, at: UnixSeconds, country: u16) -> Interaction {
        Interaction {
            subject: SubjectId(0),
            item: ItemId(item),
            at,
            kind: InteractionKind::Purchase,
            quantity: 1,
            context: Context {
                country: Some(CountryId(country)),
                ..Context::default()
            },
        }
    }

    #[test]
    fn trending_prefers_recent_events_and_the_requests_country() {
        let day = 86_400;
        let config = PopularityConfig {
            reference_time: 100 * day,
            trend_half_life_days: 7.0,
            ..PopularityConfig::default()
        };
        let mut model = PopularityModel::new(config).unwrap();
        // Item 0: three old purchases in country 0. Item 1: one recent purchase in country 1.
        for at in [10 * day, 11 * day, 12 * day] {
            model.learn(&purchase(0, at, 0));
        }
        model.learn(&purchase(1, 99 * day, 1));
        let now = 100 * day;
        assert_eq!(
            model.popular(&Context::default(), 1, now)[0].item,
            ItemId(1)
        );
        assert_eq!(model.all_time_popular(1)[0].item, ItemId(0));
        // One recent event in item 2 in country 0 beats item 1 for a request from country 0.
        model.learn(&purchase(2, 98 * day, 0));
        let from_country_zero = Context {
            country: Some(CountryId(0)),
            ..Context::default()
        };
        assert_eq!(model.popular(&from_country_zero, 1, now)[0].item, ItemId(2));
        assert!(
            PopularityModel::new(PopularityConfig {
                trend_half_life_days: 0.0,
                ..PopularityConfig::default()
            })
            .is_err()
        );
    }
}
