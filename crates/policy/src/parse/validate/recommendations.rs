//! `[recommendations]`: the shop's business rules for answered lists — items never to
//! answer (ids, or patterns with `*`) and at most so many items of one category per answer.
//! They name item ids, never personal data.

use crate::error::Problem;
use crate::policy::{MAX_ITEM_PATTERN_CHARS, MAX_PER_CATEGORY_LIMIT, RecommendationRules};

use super::super::shape::RawRecommendations;
use super::Validator;

impl Validator<'_> {
    pub(super) fn validate_recommendations(
        &mut self,
        raw: Option<&RawRecommendations>,
    ) -> RecommendationRules {
        let Some(raw) = raw else {
            return RecommendationRules::default();
        };
        let mut never = Vec::new();
        for entry in &raw.never {
            let pattern = entry.get_ref();
            let reason = if pattern.trim().is_empty() {
                Some("write an item id (e.g. `POST`) or a pattern (e.g. `gift_*`)")
            } else if pattern.chars().count() > MAX_ITEM_PATTERN_CHARS {
                Some("an entry is at most 128 characters")
            } else if pattern.chars().any(char::is_control) {
                Some("an entry holds no control characters")
            } else {
                None
            };
            match reason {
                Some(reason) => self.problems.push(Problem::BadItemPattern {
                    at: self.at(entry),
                    pattern: pattern.clone(),
                    reason,
                }),
                None if !never.contains(pattern) => never.push(pattern.clone()),
                None => {}
            }
        }
        let max_per_category = raw.max_per_category.as_ref().and_then(|limit| {
            let value = *limit.get_ref();
            match u32::try_from(value) {
                Ok(fits) if (1..=MAX_PER_CATEGORY_LIMIT).contains(&fits) => Some(fits),
                _ => {
                    self.problems.push(Problem::BadPerCategoryLimit {
                        at: crate::error::Location::of_offset(
                            self.origin,
                            self.text,
                            limit.span().start,
                        ),
                        value,
                        largest: MAX_PER_CATEGORY_LIMIT,
                    });
                    None
                }
            }
        });
        RecommendationRules {
            never,
            max_per_category,
        }
    }
}
