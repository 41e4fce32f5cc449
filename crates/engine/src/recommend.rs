//! Answers from the models: personal recommendations (only for the models' purpose, a role
//! that may use its data, a consenting subject with history — each read buffered for the
//! ledger), the contextual trending list otherwise, and similar items from aggregated
//! co-occurrence. Readers hold the models' read lock only while scoring.

use std::cell::RefCell;

use discreet_model::{Context, ModelSet, RecommendScratch, SubjectId as ModelSubject};
use discreet_policy::Action;
use discreet_vault::{LedgerDraft, now_millis};

use crate::access::Caller;
use crate::answers::{NotPersonal, Recommendations, RecommendedItem, SimilarItem};
use crate::engine::{Engine, read};
use crate::error::{Error, Missing, Result};
use crate::input::{EventContext, check_context, check_count, check_item, check_subject};
use crate::interactions::{hour_of_day, model_name, seconds, weather_of};

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
        let permit = self.authorize(caller, Action::Recommendations)?;
        check_subject("subject", subject)?;
        check_count(n)?;
        check_context("context", context)?;
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
                    let items =
                        personal_items(&models.set, model_subject, n, now, &request_context);
                    drop(models);
                    self.log_access(
                        LedgerDraft::new(now, &caller.key_id, "recommendations.read")
                            .subject(&self.inner.vault.subject_token(id))
                            .purpose(purpose)
                            .categories(categories.iter().map(String::as_str))
                            .detail(format!("items={}", items.len())),
                    )?;
                    return Ok(Recommendations {
                        personalized: true,
                        reason: None,
                        items,
                    });
                }
                _ => NotPersonal::NoHistory,
            },
        };
        let items = models
            .set
            .popular(&request_context, n, seconds(now))
            .into_iter()
            .filter_map(|scored| {
                Some(RecommendedItem {
                    item: models.set.catalogue().code(scored.item)?.to_owned(),
                    score: scored.score,
                    because: Vec::new(),
                })
            })
            .collect();
        Ok(Recommendations {
            personalized: false,
            reason: Some(reason),
            items,
        })
    }

    /// Items bought or viewed together with `item`, from aggregated co-occurrence only.
    pub fn similar(&self, caller: &Caller, item: &str, n: usize) -> Result<Vec<SimilarItem>> {
        self.authorize(caller, Action::SimilarItems)?;
        check_item("item", item)?;
        check_count(n)?;
        self.check_ready()?;
        let models = read(&self.inner.models);
        let Some(id) = models.set.catalogue().get(item) else {
            return Err(Error::NotFound {
                what: Missing::Item,
            });
        };
        Ok(models
            .set
            .similar(id, n)
            .into_iter()
            .filter_map(|scored| {
                Some(SimilarItem {
                    item: models.set.catalogue().code(scored.item)?.to_owned(),
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
) -> Vec<RecommendedItem> {
    let recommendations = SCRATCH.with(|scratch| {
        set.recommend_with(&mut scratch.borrow_mut(), subject, n, seconds(now), context)
    });
    recommendations
        .into_iter()
        .filter_map(|recommendation| {
            Some(RecommendedItem {
                item: set.catalogue().code(recommendation.item)?.to_owned(),
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
