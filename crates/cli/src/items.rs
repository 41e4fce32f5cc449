//! `discreet items import FILE` and `discreet items show ITEM`: the item catalogue from a
//! file (CSV or JSON Lines), with the same checks as `PUT /v1/items/{item}`; and the item
//! facts of a UCI Online Retail file (the most frequent description of each stock code as
//! its title, the median unit price as its price) for `discreet import` and the demo.
//! Categories: the retail data has none, and none are made up.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use discreet_engine::items::{MAX_ITEMS_PER_BATCH, check_item_input};
use discreet_engine::{Caller, Engine, ItemInput};
use discreet_eval::retail_csv::RetailRow;

use crate::CommandError;
use crate::store::{PostgresArgs, StoreArgs, engine_error, rebuild_with_progress};

/// The columns of an items CSV file, in this order (`categories` separated by `|`).
pub const ITEM_CSV_COLUMNS: [&str; 5] = ["item", "title", "categories", "price", "available"];

/// Arguments of `items`.
#[derive(Args, Debug)]
pub struct ItemsArgs {
    #[command(subcommand)]
    pub command: ItemsCommand,
}

/// What `items` does.
#[derive(Subcommand, Debug)]
pub enum ItemsCommand {
    /// Declare or replace items from a CSV (`item,title,categories,price,available`;
    /// categories separated by `|`) or JSON Lines file (one object a line with the fields
    /// of `POST /v1/items`); `.gz` is read too. A bad record stops the import before
    /// anything is stored, naming the line and field.
    Import {
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        postgres: PostgresArgs,
    },
    /// Print a declared item (JSON).
    Show {
        item: String,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        postgres: PostgresArgs,
    },
}

pub fn run(args: ItemsArgs) -> Result<(), CommandError> {
    match args.command {
        ItemsCommand::Import {
            file,
            store,
            postgres,
        } => {
            let items = read_items_file(&file)?;
            let engine = store.open_engine_on(&postgres)?;
            rebuild_with_progress(&engine)?;
            let stored = store_items(&engine, items)?;
            engine.shutdown();
            println!("declared {stored} items from {}", file.display());
            Ok(())
        }
        ItemsCommand::Show {
            item,
            store,
            postgres,
        } => {
            let engine = store.open_engine_on(&postgres)?;
            let view = engine
                .item(&Caller::operator(), &item)
                .map_err(engine_error)?;
            engine.shutdown();
            println!(
                "{}",
                serde_json::to_string_pretty(&view).unwrap_or_default()
            );
            Ok(())
        }
    }
}

/// Upserts checked items in batches of at most `MAX_ITEMS_PER_BATCH`; how many.
pub fn store_items(engine: &Engine, items: Vec<ItemInput>) -> Result<u64, CommandError> {
    let caller = Caller::operator();
    let mut stored = 0;
    for batch in items.chunks(MAX_ITEMS_PER_BATCH) {
        stored += engine
            .upsert_items(&caller, batch.to_vec())
            .map_err(engine_error)?;
    }
    Ok(stored)
}

/// Reads an items file: JSON Lines when its name (less `.gz`) ends in `.jsonl`, `.ndjson`
/// or `.json`, CSV otherwise. Every record is checked before any is returned.
pub fn read_items_file(path: &Path) -> Result<Vec<ItemInput>, CommandError> {
    let file = std::fs::File::open(path).map_err(|error| {
        CommandError::BadInput(format!("cannot open {}: {error}", path.display()))
    })?;
    let name = path.to_string_lossy().to_ascii_lowercase();
    let (input, name): (Box<dyn Read>, &str) = match name.strip_suffix(".gz") {
        Some(inner) => (Box::new(flate2::read::MultiGzDecoder::new(file)), inner),
        None => (Box::new(file), name.as_str()),
    };
    let origin = path.display().to_string();
    if [".jsonl", ".ndjson", ".json"]
        .iter()
        .any(|extension| name.ends_with(extension))
    {
        read_items_jsonl(input, &origin)
    } else {
        read_items_csv(input, &origin)
    }
}

fn bad_record(origin: &str, line: usize, error: discreet_engine::Error) -> CommandError {
    CommandError::BadInput(format!("{origin}:{line}: {error}"))
}

/// Reads JSON Lines items (blank lines are skipped).
pub fn read_items_jsonl(input: impl Read, origin: &str) -> Result<Vec<ItemInput>, CommandError> {
    let mut items = Vec::new();
    for (index, line) in BufReader::new(input).lines().enumerate() {
        let line_number = index + 1;
        let line = line.map_err(|error| {
            CommandError::BadInput(format!("{origin}:{line_number}: cannot be read: {error}"))
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&line).map_err(|error| {
            CommandError::BadInput(format!("{origin}:{line_number}: not JSON ({error})"))
        })?;
        let item = discreet_server::wire::item("", None, &value)
            .map_err(|error| bad_record(origin, line_number, error))?;
        check_item_input(&item).map_err(|error| bad_record(origin, line_number, error))?;
        items.push(item);
    }
    Ok(items)
}

/// Reads CSV items with the header `item,title,categories,price,available` (any order;
/// only `item` and `title` are required; an empty cell is an absent field).
pub fn read_items_csv(input: impl Read, origin: &str) -> Result<Vec<ItemInput>, CommandError> {
    let mut reader = csv::ReaderBuilder::new().from_reader(input);
    let headers = reader
        .headers()
        .map_err(|error| CommandError::BadInput(format!("{origin}:1: no header line ({error})")))?
        .clone();
    let column = |name: &str| headers.iter().position(|header| header.trim() == name);
    if let Some(unknown) = headers
        .iter()
        .find(|header| !ITEM_CSV_COLUMNS.contains(&header.trim()))
    {
        return Err(CommandError::BadInput(format!(
            "{origin}:1: the header has a column `{unknown}`; expected {}",
            ITEM_CSV_COLUMNS.join(",")
        )));
    }
    let (Some(item_column), Some(title_column)) = (column("item"), column("title")) else {
        return Err(CommandError::BadInput(format!(
            "{origin}:1: the header must name `item` and `title` (columns: {})",
            ITEM_CSV_COLUMNS.join(",")
        )));
    };
    let (categories_column, price_column, available_column) =
        (column("categories"), column("price"), column("available"));
    let mut items = Vec::new();
    for (index, record) in reader.records().enumerate() {
        // Line 1 is the header (records holding line breaks shift this; the position
        // the reader reports is used when it has one).
        let record = record.map_err(|error| {
            CommandError::BadInput(format!("{origin}:{}: not CSV ({error})", index + 2))
        })?;
        let line = record
            .position()
            .map_or(index + 2, |position| position.line() as usize);
        let cell = |column: Option<usize>| {
            column
                .and_then(|column| record.get(column))
                .map(str::trim)
                .filter(|cell| !cell.is_empty())
        };
        let bad = |field: &str, detail: &str| {
            bad_record(
                origin,
                line,
                discreet_engine::Error::bad_input(field, detail),
            )
        };
        let price = match cell(price_column) {
            None => None,
            Some(text) => Some(
                text.parse::<f64>()
                    .map_err(|_| bad("price", "must be a number"))?,
            ),
        };
        let available = match cell(available_column) {
            None | Some("true") => true,
            Some("false") => false,
            Some(_) => return Err(bad("available", "must be true or false")),
        };
        let item = ItemInput {
            item: record
                .get(item_column)
                .unwrap_or_default()
                .trim()
                .to_owned(),
            title: record
                .get(title_column)
                .unwrap_or_default()
                .trim()
                .to_owned(),
            categories: cell(categories_column)
                .map(|cell| {
                    cell.split('|')
                        .map(|category| category.trim().to_owned())
                        .collect()
                })
                .unwrap_or_default(),
            price,
            available,
        };
        check_item_input(&item).map_err(|error| bad_record(origin, line, error))?;
        items.push(item);
    }
    Ok(items)
}

/// The items of a retail file: per stock code, the description written most often (ties:
/// the first in text order) as the title, and the median unit price of its sold lines
/// (quantity and price above 0) as the price. Codes without a description, or whose
/// description the API would refuse, are left undeclared (no title).
pub fn item_facts(rows: &[RetailRow]) -> Vec<ItemInput> {
    let mut descriptions: HashMap<&str, HashMap<&str, u32>> = HashMap::new();
    let mut prices: HashMap<&str, Vec<f64>> = HashMap::new();
    for row in rows {
        if !row.description.is_empty() {
            *descriptions
                .entry(&row.stock_code)
                .or_default()
                .entry(&row.description)
                .or_default() += 1;
        }
        if row.quantity > 0 && row.unit_price > 0.0 {
            prices
                .entry(&row.stock_code)
                .or_default()
                .push(row.unit_price);
        }
    }
    let mut items: Vec<ItemInput> = descriptions
        .into_iter()
        .filter_map(|(code, counts)| {
            let title = counts
                .into_iter()
                .max_by(|left, right| left.1.cmp(&right.1).then(right.0.cmp(left.0)))?
                .0;
            let item = ItemInput {
                item: code.to_owned(),
                title: title.to_owned(),
                categories: Vec::new(),
                price: prices.get_mut(code).and_then(|prices| median(prices)),
                available: true,
            };
            check_item_input(&item).is_ok().then_some(item)
        })
        .collect();
    items.sort_by(|left, right| left.item.cmp(&right.item));
    items
}

/// The median (the mean of the two middle values for an even count).
fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(code: &str, description: &str, quantity: i64, price: f64) -> RetailRow {
        RetailRow {
            invoice: "536365".into(),
            stock_code: code.into(),
            quantity,
            at: 0,
            unit_price: price,
            customer: Some("17850".into()),
            country: "United Kingdom".into(),
            description: description.into(),
        }
    }

    #[test]
    fn the_most_frequent_description_and_the_median_price() {
        let rows = [
            row("85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 6, 2.55),
            row("85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 6, 2.95),
            row("85123A", "CREAM HANGING HEART T-LIGHT HOLDER", 6, 3.25),
            row("85123A", "", -6, 100.0),
            row("22423", "B CAKESTAND", 1, 10.0),
            row("22423", "A CAKESTAND", 1, 12.0),
            row("POST", "", 1, 18.0),
        ];
        let items = item_facts(&rows);
        assert_eq!(items.len(), 2, "POST has no description: undeclared");
        assert_eq!(items[0].item, "22423");
        assert_eq!(
            items[0].title, "A CAKESTAND",
            "ties go to the first in text order"
        );
        assert_eq!(items[0].price, Some(11.0));
        assert_eq!(items[1].title, "WHITE HANGING HEART T-LIGHT HOLDER");
        assert_eq!(items[1].price, Some(2.95));
    }

    #[test]
    fn csv_and_json_lines_name_the_bad_line() {
        let csv = "item,title,categories,price,available\n85123A,HEART,home/lighting|gifts,2.55,true\n22423,CAKESTAND,,,false\n";
        let items = read_items_csv(csv.as_bytes(), "items.csv").expect("good file");
        assert_eq!(items[0].categories, ["home/lighting", "gifts"]);
        assert_eq!((items[1].price, items[1].available), (None, false));
        let bad = "item,title,price\n85123A,HEART,2.55\n22423,,1\n";
        match read_items_csv(bad.as_bytes(), "items.csv") {
            Err(CommandError::BadInput(message)) => {
                assert!(message.starts_with("items.csv:3: title"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        let jsonl = "{\"item\": \"85123A\", \"title\": \"HEART\", \"price\": 2.55}\n\n{\"item\": \"22423\", \"title\": \"CAKESTAND\", \"price\": -1}\n";
        match read_items_jsonl(jsonl.as_bytes(), "items.jsonl") {
            Err(CommandError::BadInput(message)) => {
                assert!(message.starts_with("items.jsonl:3: price"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }
}
