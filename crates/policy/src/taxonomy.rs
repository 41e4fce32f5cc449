//! The fideslang vocabulary a policy may use: data categories, data uses and data
//! subjects, with the parent-covers-child rule and "did you mean" suggestions.
//!
//! This is a subset of the public fideslang taxonomy (the names a retailer declares, plus
//! every ancestor of them), so that a misspelt name is rejected instead of silently
//! becoming a category nobody enforces. It must never invent names that fideslang does
//! not have: privacy teams map these names to other systems.

/// One name of the taxonomy with a short human description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaxonomyEntry {
    /// The dotted fideslang key, e.g. `user.contact.email`.
    pub name: &'static str,
    /// What the name means, in a sentence a privacy officer would write.
    pub description: &'static str,
}

const fn entry(name: &'static str, description: &'static str) -> TaxonomyEntry {
    TaxonomyEntry { name, description }
}

/// Fideslang data categories known to discreet (each listed with all of its parents).
pub const DATA_CATEGORIES: &[TaxonomyEntry] = &[
    entry(
        "system",
        "Data unique to, and under the control of, the system.",
    ),
    entry(
        "system.authentication",
        "Data used to manage access to the system.",
    ),
    entry("system.operations", "Data used for system operations."),
    entry(
        "user",
        "Data about the user, provided directly or derived from their use.",
    ),
    entry(
        "user.account",
        "Account creation or registration information.",
    ),
    entry("user.account.settings", "Account preferences and settings."),
    entry("user.account.username", "Username of the account."),
    entry(
        "user.authorization",
        "Scope of permissions and access to a system.",
    ),
    entry(
        "user.authorization.credentials",
        "Authentication credentials to a system.",
    ),
    entry(
        "user.authorization.password",
        "Password for system authentication.",
    ),
    entry("user.behavior", "Behavioural data about the subject."),
    entry(
        "user.behavior.browsing_history",
        "Content browsing history of the subject.",
    ),
    entry(
        "user.behavior.media_consumption",
        "Content consumption history of the subject.",
    ),
    entry(
        "user.behavior.purchase_history",
        "Purchase history of the subject.",
    ),
    entry(
        "user.behavior.search_history",
        "Search history of the subject.",
    ),
    entry("user.contact", "Contact data about the subject."),
    entry("user.contact.address", "Postal address of the subject."),
    entry(
        "user.contact.address.city",
        "City of the subject's address.",
    ),
    entry(
        "user.contact.address.country",
        "Country of the subject's address.",
    ),
    entry(
        "user.contact.address.postal_code",
        "Postal code of the subject's address.",
    ),
    entry(
        "user.contact.address.state",
        "State or region of the subject's address.",
    ),
    entry(
        "user.contact.address.street",
        "Street of the subject's address.",
    ),
    entry("user.contact.email", "Email address of the subject."),
    entry("user.contact.phone_number", "Phone number of the subject."),
    entry(
        "user.content",
        "Content related to, or created by, the subject.",
    ),
    entry(
        "user.content.private",
        "Private content created by the subject.",
    ),
    entry(
        "user.content.public",
        "Content the subject shared publicly (e.g. reviews).",
    ),
    entry("user.demographic", "Demographic data about the subject."),
    entry("user.demographic.age_range", "Age range of the subject."),
    entry(
        "user.demographic.date_of_birth",
        "Date of birth of the subject.",
    ),
    entry("user.demographic.gender", "Gender of the subject."),
    entry(
        "user.demographic.language",
        "Spoken or written language of the subject.",
    ),
    entry(
        "user.demographic.profile",
        "Profile or preference information about the subject.",
    ),
    entry(
        "user.device",
        "Data about the subject's device, configuration and settings.",
    ),
    entry("user.device.cookie_id", "Cookie identifier."),
    entry("user.device.device_id", "Device identifier."),
    entry(
        "user.device.ip_address",
        "IP address of the subject's connection.",
    ),
    entry("user.financial", "Payment data and financial history."),
    entry(
        "user.financial.bank_account",
        "Bank account of the subject.",
    ),
    entry("user.financial.credit_card", "Payment card of the subject."),
    entry("user.location", "Location of the subject."),
    entry("user.location.coarse", "Coarse location (more than 500 m)."),
    entry(
        "user.location.imprecise",
        "Imprecise location (more than 500 m); older name of user.location.coarse.",
    ),
    entry(
        "user.location.precise",
        "Precise location (less than 500 m).",
    ),
    entry("user.name", "Real name of the subject."),
    entry("user.name.first", "First name of the subject."),
    entry("user.name.last", "Last, or family, name of the subject."),
    entry("user.payment", "Payment data of the subject."),
    entry(
        "user.privacy_preferences",
        "Privacy preferences and consents set by the subject.",
    ),
    entry("user.settings", "Preferences and settings of the subject."),
    entry(
        "user.unique_id",
        "Identifier assigned to the subject through use of the system.",
    ),
];

/// Fideslang data uses known to discreet (each listed with all of its parents).
pub const DATA_USES: &[TaxonomyEntry] = &[
    entry(
        "analytics",
        "Analytics such as performance reporting and insights.",
    ),
    entry("analytics.reporting", "Analytics for general reporting."),
    entry(
        "analytics.reporting.campaign_insights",
        "Reporting on campaign insights.",
    ),
    entry(
        "analytics.reporting.content_performance",
        "Reporting on content performance.",
    ),
    entry(
        "analytics.reporting.system",
        "Reporting on system activity.",
    ),
    entry(
        "essential",
        "Operates the service, including legal obligations and support.",
    ),
    entry(
        "essential.fraud_detection",
        "Detects possible fraud or misuse.",
    ),
    entry(
        "essential.legal_obligation",
        "Meets a legal or compliance obligation.",
    ),
    entry(
        "essential.service",
        "Provides the service, without which it would not be possible.",
    ),
    entry(
        "essential.service.notifications",
        "Sends notifications about the service.",
    ),
    entry(
        "essential.service.notifications.email",
        "Sends email notifications about the service.",
    ),
    entry(
        "essential.service.operations",
        "Essential to the operation of the service.",
    ),
    entry(
        "essential.service.operations.support",
        "Provides customer support.",
    ),
    entry(
        "essential.service.payment_processing",
        "Processes payments.",
    ),
    entry("essential.service.security", "Secures the service."),
    entry(
        "functional",
        "Specific, necessary and legitimate functions.",
    ),
    entry("functional.service", "Functions of the service."),
    entry("functional.service.improve", "Improves the service."),
    entry("marketing", "Marketing, promotion, advertising and sales."),
    entry(
        "marketing.advertising",
        "Advertises or promotes the service.",
    ),
    entry(
        "marketing.advertising.first_party",
        "Advertising based on first-party data.",
    ),
    entry(
        "marketing.advertising.first_party.contextual",
        "Advertising based on the content being viewed.",
    ),
    entry(
        "marketing.advertising.first_party.targeted",
        "Advertising targeted with first-party data.",
    ),
    entry(
        "marketing.advertising.profiling",
        "Creates audience profiles for targeted advertising.",
    ),
    entry(
        "marketing.advertising.third_party",
        "Advertising with data joined with third parties.",
    ),
    entry(
        "marketing.advertising.third_party.targeted",
        "Advertising targeted with third-party data.",
    ),
    entry(
        "marketing.communications",
        "Messages that market to a customer.",
    ),
    entry("marketing.communications.email", "Sends marketing email."),
    entry("marketing.communications.sms", "Sends marketing SMS."),
    entry("personalize", "Personalizes the service."),
    entry(
        "personalize.content",
        "Personalizes the content of the service.",
    ),
    entry(
        "personalize.content.limited",
        "Personalizes content with limited, non-profiled data.",
    ),
    entry(
        "personalize.content.profiled",
        "Personalizes content using an existing profile.",
    ),
    entry(
        "personalize.content.profiling",
        "Builds a profile of the subject to personalize content.",
    ),
    entry("personalize.system", "Personalizes the system."),
    entry(
        "third_party_sharing",
        "Transfers data to third parties outside the service.",
    ),
    entry(
        "third_party_sharing.legal_obligation",
        "Shares data to meet a legal obligation.",
    ),
    entry("train_ai_system", "Trains an AI system or data model."),
];

/// Fideslang data subjects known to discreet.
pub const DATA_SUBJECTS: &[TaxonomyEntry] = &[
    entry(
        "anonymous_user",
        "An individual the system cannot identify.",
    ),
    entry(
        "customer",
        "An individual who buys goods or services from the organisation.",
    ),
    entry("employee", "An individual employed by the organisation."),
    entry("prospect", "An individual the organisation is selling to."),
    entry("visitor", "An individual visiting a location or site."),
];

/// Whether `parent` covers `child`: equal, or `child` lies under `parent` in the dotted
/// hierarchy (`user.contact` covers `user.contact.email` but not `user.contactless`).
pub fn covers(parent: &str, child: &str) -> bool {
    match child.strip_prefix(parent) {
        Some("") => true,
        Some(rest) => rest.starts_with('.') && !parent.is_empty(),
        None => false,
    }
}

/// The fideslang data category of this name, if discreet knows it.
pub fn data_category(name: &str) -> Option<&'static TaxonomyEntry> {
    DATA_CATEGORIES.iter().find(|entry| entry.name == name)
}

/// The fideslang data use of this name, if discreet knows it.
pub fn data_use(name: &str) -> Option<&'static TaxonomyEntry> {
    DATA_USES.iter().find(|entry| entry.name == name)
}

/// The fideslang data subject of this name, if discreet knows it.
pub fn data_subject(name: &str) -> Option<&'static TaxonomyEntry> {
    DATA_SUBJECTS.iter().find(|entry| entry.name == name)
}

/// The candidate closest to `wanted`, when it is close enough to be a likely typo.
pub fn suggest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let candidates_seen: Vec<&str> = candidates.into_iter().collect();
    let mut best: Option<(usize, &str)> = None;
    for &candidate in &candidates_seen {
        let distance = edit_distance(wanted, candidate);
        if best.is_none_or(|(best_distance, _)| distance < best_distance) {
            best = Some((distance, candidate));
        }
    }
    // A third of the length, at least 2: catches typos and singular/plural slips without
    // suggesting unrelated names for short inputs.
    let limit = (wanted.chars().count() / 3).max(2);
    if let Some((distance, candidate)) = best
        && distance <= limit
    {
        return Some(candidate.to_owned());
    }
    same_last_segment(wanted, &candidates_seen)
}

/// The one candidate whose last dotted segment is that of `wanted` (`user.search_history`
/// is `user.behavior.search_history` at the wrong depth); none when several share it.
fn same_last_segment(wanted: &str, candidates: &[&str]) -> Option<String> {
    let last_segment = |name: &str| name.rsplit('.').next().unwrap_or(name).to_owned();
    if !wanted.contains('.') {
        return None;
    }
    let wanted_last = last_segment(wanted);
    let mut matching = candidates
        .iter()
        .filter(|candidate| last_segment(candidate) == wanted_last);
    match (matching.next(), matching.next()) {
        (Some(only), None) => Some((*only).to_owned()),
        _ => None,
    }
}

/// Levenshtein distance over characters.
fn edit_distance(left: &str, right: &str) -> usize {
    let right_chars: Vec<char> = right.chars().collect();
    let mut previous_row: Vec<usize> = (0..=right_chars.len()).collect();
    let mut current_row = vec![0; right_chars.len() + 1];
    for (left_index, left_char) in left.chars().enumerate() {
        current_row[0] = left_index + 1;
        for (right_index, right_char) in right_chars.iter().enumerate() {
            let substitution = previous_row[right_index] + usize::from(left_char != *right_char);
            let deletion = previous_row[right_index + 1] + 1;
            let insertion = current_row[right_index] + 1;
            current_row[right_index + 1] = substitution.min(deletion).min(insertion);
        }
        std::mem::swap(&mut previous_row, &mut current_row);
    }
    previous_row[right_chars.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_covers_children_and_itself_only() {
        assert!(covers("user.contact", "user.contact.email"));
        assert!(covers("user.contact", "user.contact.address.city"));
        assert!(covers("user.contact", "user.contact"));
        assert!(covers("user", "user.behavior.purchase_history"));
        assert!(!covers("user.contact", "user.contactless"));
        assert!(!covers("user.contact.email", "user.contact"));
        assert!(!covers("user.behavior", "user.contact.email"));
        assert!(!covers("", "user"));
    }

    #[test]
    fn every_taxonomy_name_has_its_parents_listed() {
        for list in [DATA_CATEGORIES, DATA_USES] {
            for entry in list {
                if let Some((parent, _)) = entry.name.rsplit_once('.') {
                    assert!(
                        list.iter().any(|other| other.name == parent),
                        "{} has no parent {parent}",
                        entry.name
                    );
                }
            }
        }
    }

    #[test]
    fn taxonomy_names_are_unique() {
        for list in [DATA_CATEGORIES, DATA_USES, DATA_SUBJECTS] {
            let mut names: Vec<&str> = list.iter().map(|entry| entry.name).collect();
            names.sort_unstable();
            let count = names.len();
            names.dedup();
            assert_eq!(count, names.len());
        }
    }

    #[test]
    fn suggestions_catch_typos_but_not_unrelated_names() {
        let categories = DATA_CATEGORIES.iter().map(|entry| entry.name);
        assert_eq!(
            suggest("user.contact.emial", categories.clone()).as_deref(),
            Some("user.contact.email")
        );
        assert_eq!(
            suggest("user.behaviour.purchase_history", categories.clone()).as_deref(),
            Some("user.behavior.purchase_history")
        );
        assert_eq!(
            suggest("user.search_history", categories.clone()).as_deref(),
            Some("user.behavior.search_history")
        );
        assert_eq!(
            suggest("user.email", categories.clone()).as_deref(),
            Some("user.contact.email")
        );
        // When several names end the same way there is no guess.
        assert_eq!(
            suggest("user.foo.profile", ["a.profile", "b.profile"]),
            None
        );
        assert_eq!(suggest("shoe_size", categories), None);
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
