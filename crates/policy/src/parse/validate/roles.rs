//! API roles: what each role may do, for which purposes, on which categories. Every
//! grant list is either `"*"` or names that exist.

use crate::action::Action;
use crate::error::Problem;
use crate::parse::quoted_list;
use crate::parse::shape::{RawRole, Text};
use crate::policy::{Grant, Role};
use crate::taxonomy;

use super::Validator;

/// Marks "everything" in a role's grant lists.
const WILDCARD: &str = "*";

impl Validator<'_> {
    pub(super) fn validate_roles(&mut self, raw: &[RawRole], purpose_names: &[&str]) -> Vec<Role> {
        self.check_unique(raw.iter().map(|role| &role.name), "role");
        raw.iter()
            .map(|role| self.validate_role(role, purpose_names))
            .collect()
    }

    fn validate_role(&mut self, raw: &RawRole, purpose_names: &[&str]) -> Role {
        self.check_name(&raw.name, "role");
        let role_name = raw.name.get_ref().clone();
        let used_by = format!("role `{role_name}`");

        let actions = grant(&raw.actions, |spanned| {
            let parsed = spanned.get_ref().parse::<Action>().ok();
            if parsed.is_none() {
                let action_names = Action::ALL.iter().map(|action| action.as_str());
                self.problems.push(Problem::UnknownAction {
                    at: self.at(spanned),
                    role: role_name.clone(),
                    name: spanned.get_ref().clone(),
                    suggestion: taxonomy::suggest(spanned.get_ref(), action_names.clone()),
                    expected: quoted_list(action_names),
                });
            }
            parsed
        });
        let purposes = grant(&raw.purposes, |spanned| {
            let name = spanned.get_ref();
            if purpose_names.contains(&name.as_str()) {
                Some(name.clone())
            } else {
                self.problems.push(Problem::UnknownPurpose {
                    at: self.at(spanned),
                    role: role_name.clone(),
                    name: name.clone(),
                    suggestion: taxonomy::suggest(name, purpose_names.iter().copied()),
                });
                None
            }
        });
        let categories = grant(&raw.categories, |spanned| {
            self.check_known_category(spanned, &used_by)
                .then(|| spanned.get_ref().clone())
        });
        Role {
            name: role_name.clone(),
            description: self.require_text(
                &raw.description,
                "roles.description",
                "who holds keys of this role",
            ),
            actions,
            purposes,
            categories,
        }
    }
}

/// A grant list: `"*"` anywhere grants everything; otherwise each entry is checked.
fn grant<T>(raw: &[Text], mut check: impl FnMut(&Text) -> Option<T>) -> Grant<T> {
    if raw.iter().any(|entry| entry.get_ref() == WILDCARD) {
        return Grant::All;
    }
    Grant::Only(raw.iter().filter_map(&mut check).collect())
}
