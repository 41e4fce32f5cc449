//! The protocol's purchases and its temporal split. Purchases are rows with a customer,
//! quantity > 0, price > 0, an invoice not starting with `C` and a stock code starting
//! with a digit; interactions are binary. Train is everything before the cutoff; a
//! customer's test set is what they bought in the test period, had not bought in train,
//! and that exists in train. Settings are chosen on the validation split (train before the
//! month preceding the cutoff, test on that month), never on the test split. Ids are
//! interned from the train part only, so nothing of the test period leaks into a model.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use discreet_model::ids::Interner;
use discreet_model::{
    Catalogue, Context, CountryId, Interaction, InteractionKind, ItemId, ModelSet, ModelSetConfig,
    SubjectId, Subjects,
};

use crate::retail_csv::{RetailRow, unix_seconds};

/// One protocol purchase, names kept for interning per split.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Purchase<'a> {
    pub customer: &'a str,
    pub stock_code: &'a str,
    pub country: &'a str,
    /// Invoice time, Unix seconds.
    pub at: i64,
    pub hour_of_day: u8,
}

/// The rows the protocol counts as purchases, in file order.
pub fn purchases(rows: &[RetailRow]) -> Vec<Purchase<'_>> {
    rows.iter()
        .filter(|row| row.is_protocol_purchase())
        .filter_map(|row| {
            Some(Purchase {
                customer: row.customer.as_deref()?,
                stock_code: &row.stock_code,
                country: &row.country,
                at: row.at,
                hour_of_day: row.hour_of_day(),
            })
        })
        .collect()
}

/// The first day of the month before a `YYYY-MM-DD` cutoff, where the validation month
/// starts; `None` when the text is not of that form.
pub fn validation_start(cutoff_text: &str) -> Option<i64> {
    let mut parts = cutoff_text.split('-');
    let year = parts.next()?.parse::<i64>().ok()?;
    let month = parts.next()?.parse::<u32>().ok()?;
    let (year, month) = if month <= 1 {
        (year.checked_sub(1)?, 12)
    } else {
        (year, month - 1)
    };
    unix_seconds(year, month, 1, 0, 0, 0)
}

/// A time-based split with ids interned from its train part.
pub struct Split {
    /// Start of the test period; recommendations are asked for at this time.
    pub cutoff: i64,
    pub train: Vec<Interaction>,
    pub catalogue: Catalogue,
    pub subjects: Subjects,
    pub countries: Interner,
    /// Items each subject bought in train, ascending (indexed by subject id).
    pub held: Vec<Vec<ItemId>>,
    /// Subjects with a non-empty test set, with that set, by subject id.
    pub test: Vec<(SubjectId, HashSet<ItemId>)>,
}

/// The two splits of the protocol.
pub struct Splits {
    /// Train before the month preceding the cutoff, test on that month: for tuning.
    pub validation: Split,
    /// Train before the cutoff, test on everything from it: measured once.
    pub test: Split,
}

impl Splits {
    /// Splits `purchases` at `cutoff`, validating on the month from `validation_start`.
    pub fn new(purchases: &[Purchase], cutoff: i64, validation_start: i64) -> Splits {
        Splits {
            validation: Split::new(purchases, validation_start, cutoff),
            test: Split::new(purchases, cutoff, i64::MAX),
        }
    }
}

impl Split {
    /// Trains on purchases before `cutoff`; tests on those in `cutoff..test_end`.
    pub fn new(purchases: &[Purchase], cutoff: i64, test_end: i64) -> Split {
        let mut catalogue = Catalogue::default();
        let mut subjects = Subjects::default();
        let mut countries = Interner::default();
        let mut train = Vec::new();
        for purchase in purchases.iter().filter(|purchase| purchase.at < cutoff) {
            let subject = subjects.intern(purchase.customer);
            let item = catalogue.intern(purchase.stock_code);
            let country = CountryId(countries.intern(purchase.country).min(u16::MAX as u32) as u16);
            train.push(Interaction {
                subject,
                item,
                at: purchase.at,
                kind: InteractionKind::Purchase,
                quantity: 1,
                context: Context {
                    country: Some(country),
                    hour_of_day: Some(purchase.hour_of_day),
                    ..Context::default()
                },
            });
        }
        let mut held: Vec<Vec<ItemId>> = vec![Vec::new(); subjects.len()];
        for interaction in &train {
            held[interaction.subject.index()].push(interaction.item);
        }
        for items in &mut held {
            items.sort_unstable();
            items.dedup();
        }
        let mut test_sets: HashMap<SubjectId, HashSet<ItemId>> = HashMap::new();
        for purchase in purchases
            .iter()
            .filter(|purchase| purchase.at >= cutoff && purchase.at < test_end)
        {
            let (Some(subject), Some(item)) = (
                subjects.get(purchase.customer),
                catalogue.get(purchase.stock_code),
            ) else {
                continue;
            };
            if held[subject.index()].binary_search(&item).is_err() {
                test_sets.entry(subject).or_default().insert(item);
            }
        }
        let mut test: Vec<(SubjectId, HashSet<ItemId>)> = test_sets.into_iter().collect();
        test.sort_by_key(|(subject, _)| *subject);
        Split {
            cutoff,
            train,
            catalogue,
            subjects,
            countries,
            held,
            test,
        }
    }

    /// True when the subject bought the item in train.
    pub fn is_held(&self, subject: SubjectId, item: ItemId) -> bool {
        self.held
            .get(subject.index())
            .is_some_and(|items| items.binary_search(&item).is_ok())
    }

    /// Every model of a `ModelSet`, taught the train part.
    pub fn model_set(&self, config: ModelSetConfig) -> anyhow::Result<ModelSet> {
        let mut model_set = ModelSet::with_names(
            config,
            self.catalogue.clone(),
            self.subjects.clone(),
            self.countries.clone(),
        )?;
        model_set.learn_all(&self.train)?;
        Ok(model_set)
    }

    /// Writes `train.csv` (customer, item, at) and `test.csv` (customer, item) into
    /// `directory`, creating it, so other libraries can be measured on the same split.
    pub fn write_csv(&self, directory: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(directory)
            .with_context(|| format!("cannot create {}", directory.display()))?;
        let name_of_subject = |subject: SubjectId| self.subjects.name(subject).unwrap_or_default();
        let name_of_item = |item: ItemId| self.catalogue.code(item).unwrap_or_default();
        let mut train = String::from("customer,item,at\n");
        for interaction in &self.train {
            let _ = writeln!(
                train,
                "{},{},{}",
                name_of_subject(interaction.subject),
                name_of_item(interaction.item),
                interaction.at
            );
        }
        std::fs::write(directory.join("train.csv"), train).context("cannot write train.csv")?;
        let mut test = String::from("customer,item\n");
        for (subject, items) in &self.test {
            let mut items: Vec<&ItemId> = items.iter().collect();
            items.sort();
            for item in items {
                let _ = writeln!(
                    test,
                    "{},{}",
                    name_of_subject(*subject),
                    name_of_item(*item)
                );
            }
        }
        std::fs::write(directory.join("test.csv"), test).context("cannot write test.csv")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purchase<'a>(customer: &'a str, stock_code: &'a str, at: i64) -> Purchase<'a> {
        Purchase {
            customer,
            stock_code,
            country: "United Kingdom",
            at,
            hour_of_day: 9,
        }
    }

    fn test_items(split: &Split, customer: &str) -> Vec<String> {
        let Some(subject) = split.subjects.get(customer) else {
            return Vec::new();
        };
        let mut codes: Vec<String> = split
            .test
            .iter()
            .filter(|(tested, _)| *tested == subject)
            .flat_map(|(_, items)| items.iter())
            .map(|item| split.catalogue.code(*item).unwrap_or_default().to_string())
            .collect();
        codes.sort();
        codes
    }

    #[test]
    fn the_test_set_holds_only_new_items_that_exist_in_train() {
        let cutoff = 100;
        let purchases = [
            purchase("alice", "10001", 10),
            purchase("alice", "10002", 20),
            purchase("bob", "10003", 30),
            // On the cutoff: tested. Bought before: excluded; new to alice and in train: kept.
            purchase("alice", "10001", 100),
            purchase("alice", "10003", 100),
            purchase("alice", "10003", 150),
            // Not in train: excluded.
            purchase("alice", "19999", 120),
            // bob already holds 10003; 10002 is new to him.
            purchase("bob", "10003", 110),
            purchase("bob", "10002", 130),
            // No train history: no test set.
            purchase("carol", "10001", 140),
        ];
        let split = Split::new(&purchases, cutoff, i64::MAX);

        assert_eq!(split.train.len(), 3);
        assert_eq!(split.catalogue.len(), 3);
        assert_eq!(split.catalogue.get("19999"), None);
        assert_eq!(split.subjects.get("carol"), None);
        assert_eq!(test_items(&split, "alice"), ["10003"]);
        assert_eq!(test_items(&split, "bob"), ["10002"]);
        assert_eq!(split.test.len(), 2);
        let alice = split.subjects.get("alice").map(|subject| subject.index());
        assert_eq!(alice.map(|index| split.held[index].len()), Some(2));
    }

    #[test]
    fn the_test_period_ends_before_test_end_and_a_subject_with_nothing_new_is_not_tested() {
        let purchases = [
            purchase("alice", "10001", 10),
            purchase("bob", "10002", 20),
            purchase("alice", "10002", 60),
            purchase("bob", "10002", 70),
            // At the end of the validation month: belongs to the next period.
            purchase("bob", "10001", 90),
        ];
        let split = Split::new(&purchases, 50, 90);
        assert_eq!(test_items(&split, "alice"), ["10002"]);
        assert!(test_items(&split, "bob").is_empty());
        assert_eq!(split.test.len(), 1);
    }

    #[test]
    fn only_protocol_purchases_are_kept() {
        let row =
            |invoice: &str, stock_code: &str, quantity: i64, customer: Option<&str>| RetailRow {
                invoice: invoice.to_string(),
                stock_code: stock_code.to_string(),
                quantity,
                at: 3_600 * 8,
                unit_price: 1.5,
                customer: customer.map(str::to_string),
                country: "France".to_string(),
                description: String::new(),
            };
        let rows = [
            row("536365", "22633", 6, Some("17850")),
            row("C536379", "22633", 1, Some("17850")),
            row("536366", "POST", 1, Some("17850")),
            row("536367", "22633", 0, Some("17850")),
            row("536368", "22633", 2, None),
        ];
        let kept = purchases(&rows);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].customer, "17850");
        assert_eq!(kept[0].hour_of_day, 8);
    }

    #[test]
    fn the_validation_month_is_the_month_before_the_cutoff() {
        let start = crate::retail_csv::parse_shop_time;
        assert_eq!(validation_start("2011-11-01"), start("2011-10-01"));
        assert_eq!(validation_start("2011-01-15"), start("2010-12-01"));
        assert_eq!(validation_start("11/1/2011"), None);
        assert_eq!(validation_start("2011"), None);
        assert_eq!(validation_start("-9223372036854775808-01-01"), None);
    }
}
