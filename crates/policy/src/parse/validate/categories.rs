//! The data kept and for how long: each declared category with its retention, then the
//! attributes and event types, each of which must map to a declared category that some
//! purpose uses.

use std::collections::BTreeMap;

use crate::error::Problem;
use crate::parse::shape::{RawCategory, Text};
use crate::policy::{CategoryRule, Purpose};
use crate::retention::Retention;
use crate::taxonomy::covers;

use super::Validator;

impl Validator<'_> {
    pub(super) fn validate_categories(&mut self, raw: &[RawCategory]) -> Vec<CategoryRule> {
        self.check_unique(raw.iter().map(|category| &category.name), "category");
        let mut rules = Vec::new();
        for category in raw {
            let known = self.check_known_category(&category.name, "a [[categories]] entry");
            let retention = match Retention::parse(category.retention.get_ref()) {
                Ok(retention) => Some(retention),
                Err(reason) => {
                    self.problems.push(Problem::BadRetention {
                        at: self.at(&category.retention),
                        category: category.name.get_ref().clone(),
                        reason,
                    });
                    None
                }
            };
            if let (true, Some(retention)) = (known, retention) {
                rules.push(CategoryRule {
                    name: category.name.get_ref().clone(),
                    retention,
                    retention_reason: self.optional_text(category.retention_reason.as_ref()),
                });
            }
        }
        rules
    }

    /// Attributes and event types: each name maps to a category that a declared category
    /// covers, since stored data needs a retention period.
    pub(super) fn validate_category_map(
        &mut self,
        raw: &BTreeMap<Text, Text>,
        kind: &'static str,
        declared: &[&str],
        purposes: &[Purpose],
    ) -> BTreeMap<String, String> {
        // Check in file order so problems come out in the order the author reads them.
        let mut entries: Vec<(&Text, &Text)> = raw.iter().collect();
        entries.sort_by_key(|(name, _)| name.span().start);
        for (name, category) in entries {
            self.check_name(name, kind);
            let used_by = format!("{kind} `{}`", name.get_ref());
            if !self.check_known_category(category, &used_by) {
                continue;
            }
            if !declared.iter().any(|name| covers(name, category.get_ref())) {
                self.problems.push(Problem::UndeclaredCategory {
                    at: self.at(category),
                    used_by,
                    name: category.get_ref().clone(),
                });
            } else if !purposes
                .iter()
                .any(|purpose| purpose.uses_category(category.get_ref()))
            {
                self.problems.push(Problem::CollectedWithoutPurpose {
                    at: self.at(category),
                    used_by,
                    category: category.get_ref().clone(),
                });
            }
        }
        raw.iter()
            .map(|(name, category)| (name.get_ref().clone(), category.get_ref().clone()))
            .collect()
    }
}
