//! Purposes: a fideslang data use, a legal basis with what that basis requires (a
//! description for consent, the interest for legitimate interests), the categories used,
//! the data subjects and the recipients.

use crate::error::Problem;
use crate::parse::quoted_list;
use crate::parse::shape::{RawPurpose, Text};
use crate::policy::{LegalBasis, Purpose};
use crate::taxonomy::{self, covers};

use super::Validator;

impl Validator<'_> {
    pub(super) fn validate_purposes(
        &mut self,
        raw: &[RawPurpose],
        declared: &[&str],
        recipient_names: &[&str],
    ) -> Vec<Purpose> {
        self.check_unique(raw.iter().map(|purpose| &purpose.name), "purpose");
        raw.iter()
            .map(|purpose| self.validate_purpose(purpose, declared, recipient_names))
            .collect()
    }

    fn validate_purpose(
        &mut self,
        raw: &RawPurpose,
        declared: &[&str],
        recipient_names: &[&str],
    ) -> Purpose {
        self.check_name(&raw.name, "purpose");
        let name = raw.name.get_ref().clone();
        let used_by = format!("purpose `{name}`");

        let data_use = raw.data_use.get_ref();
        if taxonomy::data_use(data_use).is_none() {
            self.problems.push(Problem::UnknownDataUse {
                at: self.at(&raw.data_use),
                purpose: name.clone(),
                name: data_use.clone(),
                suggestion: taxonomy::suggest(
                    data_use,
                    taxonomy::DATA_USES.iter().map(|entry| entry.name),
                ),
            });
        }

        let description = self.optional_text(raw.description.as_ref());
        if raw.legal_basis == LegalBasis::Consent && description.is_none() {
            self.problems.push(Problem::ConsentWithoutDescription {
                at: self.at(&raw.name),
                purpose: name.clone(),
            });
        }
        let legitimate_interest = self.optional_text(raw.legitimate_interest.as_ref());
        if raw.legal_basis == LegalBasis::LegitimateInterests && legitimate_interest.is_none() {
            self.problems.push(Problem::LegitimateInterestUnstated {
                at: self.at(&raw.name),
                purpose: name.clone(),
            });
        }

        if raw.categories.is_empty() {
            self.problems.push(Problem::PurposeWithoutCategories {
                at: self.at(&raw.name),
                purpose: name.clone(),
            });
        }
        for category in &raw.categories {
            // A purpose may name a parent (`user.behavior`): it then uses the declared
            // children. It must overlap some declared category, or it names data the
            // policy keeps no rule for.
            if self.check_known_category(category, &used_by)
                && !declared.iter().any(|name| {
                    covers(name, category.get_ref()) || covers(category.get_ref(), name)
                })
            {
                self.problems.push(Problem::UndeclaredCategory {
                    at: self.at(category),
                    used_by: used_by.clone(),
                    name: category.get_ref().clone(),
                });
            }
        }

        if raw.data_subjects.is_empty() {
            self.problems.push(Problem::PurposeWithoutDataSubjects {
                at: self.at(&raw.name),
                purpose: name.clone(),
            });
        }
        let subject_names = taxonomy::DATA_SUBJECTS.iter().map(|entry| entry.name);
        for subject in &raw.data_subjects {
            if taxonomy::data_subject(subject.get_ref()).is_none() {
                self.problems.push(Problem::UnknownDataSubject {
                    at: self.at(subject),
                    purpose: name.clone(),
                    name: subject.get_ref().clone(),
                    suggestion: taxonomy::suggest(subject.get_ref(), subject_names.clone()),
                    expected: quoted_list(subject_names.clone()),
                });
            }
        }

        for recipient in &raw.recipients {
            self.check_recipient(recipient, &used_by, recipient_names);
        }
        if raw.sale_or_sharing && raw.recipients.is_empty() {
            self.problems.push(Problem::SaleOrSharingWithoutRecipient {
                at: self.at(&raw.name),
                purpose: name.clone(),
            });
        }

        Purpose {
            name,
            data_use: data_use.clone(),
            legal_basis: raw.legal_basis,
            description,
            legitimate_interest,
            categories: texts(&raw.categories),
            data_subjects: texts(&raw.data_subjects),
            recipients: texts(&raw.recipients),
            sale_or_sharing: raw.sale_or_sharing,
            aggregated_only: raw.aggregated_only,
        }
    }
}

fn texts(raw: &[Text]) -> Vec<String> {
    raw.iter().map(|text| text.get_ref().clone()).collect()
}
