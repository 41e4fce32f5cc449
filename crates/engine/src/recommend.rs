//! Answers from the models: personal recommendations (only for the models' purpose, a role
//! that may use its data, a consenting subject with history — each read buffered for the
//! ledger), the contextual trending list otherwise, and similar items from aggregated
//! co-occurrence. Readers hold the models' read lock only while scoring.

use std::cell::RefCell;
use std::sync::RwLockReadGuard;

use discreet_model::{
    Context, ItemSelection, ModelSet, RecommendScratch, SubjectId as ModelSubject,
};
use discreet_policy::Action;
use discreet_vault::{LedgerDraft, now_millis};

use crate::access::Caller;
use crate::answers::{NotPersonal, Recommendations, RecommendedItem, SimilarItem};
use crate::engine::{Engine, read, write};
use crate::error::{Error, Missing, Result};
use crate::input::{EventContext, check_context, check_count, check_item, check_subject};
use crate::interactions::{hour_of_day, model_name, seconds, weather_of};
use crate::items::{ItemCatalogue, ItemFilter, check_filter};

thread_local! {
    static SCRATCH: RefCell<RecommendScratch> = RefCell::new(RecommendScratch::default());
}

impl Engine {
    /// Recommendations for a subject under `purpose`: personal when the purpose is the
    /// models' own, the caller may use it, and the subject's consent holds; otherwise the
    /// contextual trending list with the reason.
    pub fn recommend(
        &self,
        caller: &Caller,
        subject: &str,
        purpose: &str,
        n: usize,
        context: &EventContext,
    ) -> Result<Recommendations> {
        self.recommend_filtered(caller, subject, purpose, n, context, &ItemFilter::default())
    }

    /// `recommend` answering only items `filter` and the policy's rules allow, chosen
    /// before the top-n cut (personal and non-personal answers alike).
    pub fn recommend_filtered(
        &self,
        caller: &Caller,
        subject: &str,
        purpose: &str,
        n: usize,
        context: &EventContext,
        filter: &ItemFilter,
    ) -> Result<Recommendations> {
        let permit = self.authorize(caller, Action::Recommendations)?;
        check_subject("subject", subject)?;
        check_count(n)?;
        check_context("context", context)?;
        check_filter(filter)?;
        let purpose_rule = self.purpose(purpose)?;
        permit.purpose(purpose)?;
        self.check_ready()?;
        let now = now_millis();
        let categories = &self.inner.model_categories;
        let personal_purpose = self.inner.model_purpose.as_deref() == Some(purpose)
            && permit.all_categories(categories.iter().map(String::as_str))
            && categories
                .iter()
                .all(|category| purpose_rule.uses_category(category));
        let vault_subject = if personal_purpose {
            self.inner.vault.subject_id(subject)?
        } else {
            None
        };
        let models = read(&self.inner.models);
        let items = self.items_for(&models.set);
        let rules = self.inner.policy.recommendation_rules();
        let selection = items.selection(&models.set, filter, rules)?;
        let mut request_context = Context {
            weather: weather_of(context.weather.as_deref()),
            country: None,
            hour_of_day: Some(hour_of_day(now)),
        };
        if let Some(country) = &context.country {
            request_context.country = models.set.country_id(country);
        }
        let reason = match vault_subject {
            _ if !personal_purpose => NotPersonal::PurposeNotPersonal,
            None => NotPersonal::UnknownSubject,
            Some(id) if !models.consented.contains(&id) => NotPersonal::NoConsent,
            Some(id) => match models.set.subjects().get(&model_name(id)) {
                Some(model_subject)
                    if !models
                        .set
                        .item_item()
                        .histories()
                        .held(model_subject)
                        .is_empty() =>
                {
                    let answered = personal_items(
                        &models.set,
                        model_subject,
                        n,
                        now,
                        &request_context,
                        &selection,
                        &items,
                    );
                    drop(selection);
                    drop(items);
                    drop(models);
                    self.log_access(
                        LedgerDraft::new(now, &caller.key_id, "recommendations.read")
                            .subject(&self.inner.vault.subject_token(id))
                            .purpose(purpose)
                            .categories(categories.iter().map(String::as_str))
                            .detail(format!("items={}", answered.len())),
                    )?;
                    return Ok(Recommendations {
                        personalized: true,
                        reason: None,
                        items: answered,
                    });
                }
                _ => NotPersonal::NoHistory,
            },
        };
        let answered = models
            .set
            .popular_selected(&request_context, n, seconds(now), &selection)
            .into_iter()
            .filter_map(|scored| {
                Some(RecommendedItem {
                    item: models.set.catalogue().code(scored.item)?.to_owned(),
                    title: items.title_of(scored.item).map(str::to_owned),
                    score: scored.score,
                    because: Vec::new(),
                })
            })
            .collect();
        Ok(Recommendations {
            personalized: false,
            reason: Some(reason),
            items: answered,
        })
    }

    /// The item catalogue with its dense table current for `set`'s item ids (the caller
    /// holds the models' read lock, so the ids cannot change meanwhile).
    /// A declaration that lands between the refresh and the read makes the table stale
    /// again (a new item would read as undeclared: available, in no category), so the
    /// check is repeated; a bounded number of times, so a flood of declarations can delay
    /// a reader by a few refreshes at most.
    pub(crate) fn items_for(&self, set: &ModelSet) -> RwLockReadGuard<'_, ItemCatalogue> {
        const REFRESH_ATTEMPTS: usize = 4;
        for _ in 0..REFRESH_ATTEMPTS {
            {
                let items = read(&self.inner.items);
                if items.is_current_for(set) {
                    return items;
                }
            }
            write(&self.inner.items).refresh_for(set, self.inner.policy.recommendation_rules());
        }
        read(&self.inner.items)
    }

    /// Items bought or viewed together with `item`, from aggregated co-occurrence only.
    pub fn similar(&self, caller: &Caller, item: &str, n: usize) -> Result<Vec<SimilarItem>> {
        self.similar_filtered(caller, item, n, &ItemFilter::default())
    }

    /// `similar` answering only items `filter` and the policy's rules allow.
    pub fn similar_filtered(
        &self,
        caller: &Caller,
        item: &str,
        n: usize,
        filter: &ItemFilter,
    ) -> Result<Vec<SimilarItem>> {
        self.authorize(caller, Action::SimilarItems)?;
        check_item("item", item)?;
        check_count(n)?;
        check_filter(filter)?;
        self.check_ready()?;
        let models = read(&self.inner.models);
        let items = self.items_for(&models.set);
        let selection = items.selection(
            &models.set,
            filter,
            self.inner.policy.recommendation_rules(),
        )?;
        let Some(id) = models.set.catalogue().get(item) else {
            return Err(Error::NotFound {
                what: Missing::Item,
            });
        };
        Ok(models
            .set
            .similar_selected(id, n, &selection)
            .into_iter()
            .filter_map(|scored| {
                Some(SimilarItem {
                    item: models.set.catalogue().code(scored.item)?.to_owned(),
                    title: items.title_of(scored.item).map(str::to_owned),
                    score: scored.score,
                })
            })
            .collect())
    }
}

/// A consenting subject's personal list, with the items of theirs that explain each entry.
pub(crate) fn personal_items(
    set: &ModelSet,
    subject: ModelSubject,
    n: usize,
    now: i64,
    context: &Context,
    selection: &dyn ItemSelection,
    items: &ItemCatalogue,
) -> Vec<RecommendedItem> {
    let recommendations = SCRATCH.with(|scratch| {
        set.recommend_selected(
            &mut scratch.borrow_mut(),
            subject,
            n,
            seconds(now),
            context,
            selection,
        )
    });
    recommendations
        .into_iter()
        .filter_map(|recommendation| {
            Some(RecommendedItem {
                item: set.catalogue().code(recommendation.item)?.to_owned(),
                title: items.title_of(recommendation.item).map(str::to_owned),
                score: recommendation.score,
                because: recommendation
                    .because
                    .iter()
                    .filter_map(|contribution| set.catalogue().code(contribution.item))
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}
