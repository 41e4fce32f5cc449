//! Reader for the two published UCI retail transaction files — Online Retail (`InvoiceNo`,
//! `UnitPrice`, `CustomerID`) and Online Retail II (`Invoice`, `Price`, `Customer ID`) — as
//! CSV, plain or gzipped. Columns are found by header name. A row with a bad value is
//! skipped and counted, never a panic. Shop times carry no time zone and are read as UTC.
//! Only reads; never writes or interprets rows beyond parsing them.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::{Context as _, bail};

/// One transaction line.
#[derive(Clone, Debug, PartialEq)]
pub struct RetailRow {
    pub invoice: String,
    pub stock_code: String,
    pub quantity: i64,
    /// Invoice time, seconds since the Unix epoch (the shop's local time read as UTC).
    pub at: i64,
    pub unit_price: f64,
    /// The customer id, normalised (`13085.0` → `13085`); `None` when empty.
    pub customer: Option<String>,
    pub country: String,
    /// The product name as the shop wrote it, trimmed (empty when the column is absent);
    /// the evaluation never reads it.
    pub description: String,
}

impl RetailRow {
    /// True for rows the evaluation protocol counts as purchases: a customer id, quantity
    /// > 0, price > 0, an invoice not starting with `C`, a stock code starting with a digit.
    pub fn is_protocol_purchase(&self) -> bool {
        self.customer.is_some()
            && self.quantity > 0
            && self.unit_price > 0.0
            && !self.invoice.starts_with('C')
            && self
                .stock_code
                .starts_with(|character: char| character.is_ascii_digit())
    }

    /// Hour of day (0..=23) of the invoice time.
    pub fn hour_of_day(&self) -> u8 {
        (self.at.rem_euclid(86_400) / 3_600) as u8
    }
}

/// Rows skipped while reading, by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SkippedRows {
    pub unreadable: usize,
    pub bad_quantity: usize,
    pub bad_date: usize,
    pub bad_price: usize,
}

impl SkippedRows {
    /// Total rows skipped.
    pub fn total(&self) -> usize {
        self.unreadable + self.bad_quantity + self.bad_date + self.bad_price
    }
}

/// The rows of a file and what was skipped.
#[derive(Debug)]
pub struct RetailFile {
    pub rows: Vec<RetailRow>,
    pub skipped: SkippedRows,
}

struct ColumnIndexes {
    invoice: usize,
    stock_code: usize,
    quantity: usize,
    invoice_date: usize,
    unit_price: usize,
    customer: usize,
    country: Option<usize>,
    description: Option<usize>,
}

fn find_column(headers: &csv::StringRecord, names: &[&str]) -> Option<usize> {
    headers.iter().position(|header| {
        let header = header.trim().trim_start_matches('\u{feff}');
        names.iter().any(|name| header.eq_ignore_ascii_case(name))
    })
}

fn column_indexes(headers: &csv::StringRecord) -> anyhow::Result<ColumnIndexes> {
    let required = |names: &[&str]| {
        find_column(headers, names).with_context(|| {
            format!("the file has no `{}` column; expected the UCI Online Retail or Online Retail II header", names.join("` or `"))
        })
    };
    Ok(ColumnIndexes {
        invoice: required(&["InvoiceNo", "Invoice"])?,
        stock_code: required(&["StockCode"])?,
        quantity: required(&["Quantity"])?,
        invoice_date: required(&["InvoiceDate"])?,
        unit_price: required(&["UnitPrice", "Price"])?,
        customer: required(&["CustomerID", "Customer ID"])?,
        country: find_column(headers, &["Country"]),
        description: find_column(headers, &["Description"]),
    })
}

/// Reads a UCI retail file (CSV; gzipped when the name ends in `.gz` or the content starts
/// with the gzip magic bytes).
pub fn read_retail_file(path: &Path) -> anyhow::Result<RetailFile> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut buffered = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 2];
    let n_read = buffered
        .read(&mut magic)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let input: Box<dyn Read> = if n_read == 2 && magic == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            1 << 20,
            file,
        )))
    } else {
        Box::new(BufReader::with_capacity(1 << 20, file))
    };
    read_retail_csv(input).with_context(|| format!("cannot read {}", path.display()))
}

/// Reads UCI retail CSV from any reader.
pub fn read_retail_csv(input: impl Read) -> anyhow::Result<RetailFile> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let headers = reader
        .headers()
        .context("the file has no header line")?
        .clone();
    let columns = column_indexes(&headers)?;
    let mut rows = Vec::new();
    let mut skipped = SkippedRows::default();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(error) if error.is_io_error() => bail!("reading failed: {error}"),
            Err(_) => {
                skipped.unreadable += 1;
                continue;
            }
        }
        let field = |index: usize| record.get(index).unwrap_or("").trim();
        let Ok(quantity) = field(columns.quantity).parse::<i64>() else {
            skipped.bad_quantity += 1;
            continue;
        };
        let Some(at) = parse_shop_time(field(columns.invoice_date)) else {
            skipped.bad_date += 1;
            continue;
        };
        let unit_price = match field(columns.unit_price).parse::<f64>() {
            Ok(price) if price.is_finite() => price,
            _ => {
                skipped.bad_price += 1;
                continue;
            }
        };
        let customer = normalise_customer_id(field(columns.customer));
        rows.push(RetailRow {
            invoice: field(columns.invoice).to_string(),
            stock_code: field(columns.stock_code).to_string(),
            quantity,
            at,
            unit_price,
            customer,
            country: columns
                .country
                .map(|index| field(index).to_string())
                .unwrap_or_default(),
            description: columns
                .description
                .map(|index| field(index).to_string())
                .unwrap_or_default(),
        });
    }
    Ok(RetailFile { rows, skipped })
}

/// `13085.0` → `13085`; empty → `None`.
fn normalise_customer_id(raw: &str) -> Option<String> {
    if raw.is_empty() || raw.eq_ignore_ascii_case("nan") {
        return None;
    }
    let trimmed = raw.strip_suffix(".0").unwrap_or(raw);
    Some(trimmed.to_string())
}

/// Days from 1970-01-01 to the civil date (proleptic Gregorian; Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = month as i64;
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day as i64 - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Years a date may name: far wider than any shop's, narrow enough that the seconds
/// never overflow an `i64`.
const YEARS: std::ops::RangeInclusive<i64> = -1_000_000..=1_000_000;

/// Unix seconds of a civil date and time, checking ranges.
pub fn unix_seconds(
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
) -> Option<i64> {
    if !YEARS.contains(&year)
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + (hour * 3_600 + minute * 60 + second) as i64)
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DD HH:MM[:SS]` (also with `T`), or the spreadsheet export
/// form `M/D/YYYY H:MM[:SS]` into Unix seconds.
pub fn parse_shop_time(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, time) = match text.split_once([' ', 'T']) {
        Some((date, time)) => (date, time.trim()),
        None => (text, ""),
    };
    let (year, month, day) = if date.contains('-') {
        let mut parts = date.split('-');
        let year = parts.next()?.parse::<i64>().ok()?;
        let month = parts.next()?.parse::<u32>().ok()?;
        let day = parts.next()?.parse::<u32>().ok()?;
        if parts.next().is_some() {
            return None;
        }
        (year, month, day)
    } else if date.contains('/') {
        let mut parts = date.split('/');
        let month = parts.next()?.parse::<u32>().ok()?;
        let day = parts.next()?.parse::<u32>().ok()?;
        let year = parts.next()?.parse::<i64>().ok()?;
        if parts.next().is_some() {
            return None;
        }
        (year, month, day)
    } else {
        return None;
    };
    let (hour, minute, second) = if time.is_empty() {
        (0, 0, 0)
    } else {
        let time = time.trim_end_matches('Z');
        let mut parts = time.split(':');
        let hour = parts.next()?.parse::<u32>().ok()?;
        let minute = parts.next()?.parse::<u32>().ok()?;
        let second = match parts.next() {
            Some(second) => second.split('.').next()?.parse::<u32>().ok()?,
            None => 0,
        };
        (hour, minute, second)
    };
    unix_seconds(year, month, day, hour, minute, second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_convert_to_known_unix_seconds() {
        assert_eq!(parse_shop_time("1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse_shop_time("2011-11-01"), Some(1_320_105_600));
        assert_eq!(parse_shop_time("2010-12-01 08:26:00"), Some(1_291_191_960));
        assert_eq!(parse_shop_time("12/1/2010 8:26"), Some(1_291_191_960));
        assert_eq!(parse_shop_time("2012-02-29 00:00"), Some(1_330_473_600));
        assert_eq!(parse_shop_time("2011-02-29 00:00"), None);
        assert_eq!(parse_shop_time("yesterday"), None);
    }

    #[test]
    fn a_date_with_an_absurd_year_is_refused_not_overflowed() {
        assert_eq!(parse_shop_time("99999999999999-01-01"), None);
        assert_eq!(parse_shop_time("-9223372036854775808-01-01"), None);
        assert_eq!(parse_shop_time("1/1/9223372036854775807 10:00"), None);
        assert!(parse_shop_time("9999-12-31 23:59:59").is_some());
    }

    #[test]
    fn both_uci_headers_are_read_and_bad_rows_are_counted_not_fatal() {
        let first = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n\
                     536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n\
                     C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527,United Kingdom\n\
                     536366,22633,HAND WARMER,six,2010-12-01 08:28:00,1.85,17850,United Kingdom\n\
                     536367,22633,HAND WARMER,6,not a date,1.85,,United Kingdom\n";
        let file = read_retail_csv(first.as_bytes()).unwrap();
        assert_eq!(file.rows.len(), 2);
        assert_eq!(file.skipped.bad_quantity, 1);
        assert_eq!(file.skipped.bad_date, 1);
        assert!(file.rows[0].is_protocol_purchase());
        assert!(!file.rows[1].is_protocol_purchase());
        assert_eq!(file.rows[0].hour_of_day(), 8);

        let second = "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n\
                      489434,85048,15CM CHRISTMAS GLASS BALL,12,2009-12-01 07:45:00,6.95,13085.0,United Kingdom\n\
                      489435,22350,CAT BOWL,12,12/1/2009 7:46,2.55,,United Kingdom\n";
        let file = read_retail_csv(second.as_bytes()).unwrap();
        assert_eq!(file.rows.len(), 2);
        assert_eq!(file.rows[0].customer.as_deref(), Some("13085"));
        assert_eq!(file.rows[1].customer, None);
        assert!(!file.rows[1].is_protocol_purchase());
    }

    #[test]
    fn a_file_without_the_expected_columns_is_an_error_naming_the_column() {
        let error = read_retail_csv("a,b\n1,2\n".as_bytes()).unwrap_err();
        assert!(format!("{error:#}").contains("InvoiceNo"));
    }
}
