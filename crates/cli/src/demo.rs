//! `discreet demo`: a fresh store filled with the bundled Online Retail purchases (real
//! customers of a UK giftware shop, times shifted to the last year), a realistic mix of
//! consents, two API keys, and the server — then a tour of `curl` commands that show
//! personal recommendations with explanations and titles, a filtered call, a customer
//! without consent, an export and a forget with its signed receipt. The catalogue comes
//! from the bundled item titles and prices; a few items are marked out of stock (the
//! consenting customer's first recommendation among them) so the availability filter shows.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use discreet_engine::{AttributeInput, Caller, Engine, EventContext, ItemInput};
use discreet_eval::retail_csv::{RetailRow, read_retail_csv};
use discreet_policy::fnv1a_64;

use crate::CommandError;
use crate::store::{StoreArgs, engine_error};

/// The bundled purchases (see data/online-retail/SOURCE.md for origin and licence).
const BUNDLED_PURCHASES: &[u8] =
    include_bytes!("../../../data/online-retail/online_retail_purchases.csv.gz");
/// The bundled item titles and median prices (see data/online-retail/SOURCE.md).
const BUNDLED_ITEMS: &[u8] =
    include_bytes!("../../../data/online-retail/online_retail_items.csv.gz");
/// One item in this many (by a hash of its code) is out of stock in the demo.
const OUT_OF_STOCK_ONE_IN: u64 = 40;
/// Files a discreet data folder holds; the demo clears its folder only if it holds no other.
const DATA_FOLDER_FILES: [&str; 8] = [
    "vault.sqlite",
    "vault.sqlite-wal",
    "vault.sqlite-shm",
    "keystore.sqlite",
    "keystore.sqlite-journal",
    "keystore.sqlite-wal",
    "keystore.sqlite-shm",
    "LOCK",
];

/// Arguments of `demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// The demo's own data folder (emptied at start).
    #[arg(long, default_value = "discreet-demo")]
    pub data_dir: PathBuf,
    /// The demo's KEK file.
    #[arg(long, default_value = "discreet-demo.kek")]
    pub kek_file: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub http: crate::serve::HttpArgs,
}

/// The consents a customer of the demo gives, decided by a hash of their id so that every
/// run gives the same mix: most grant personalization, some never answered, a few withdrew.
pub fn demo_consents(customer: &str) -> [(&'static str, Option<bool>); 2] {
    let draw = fnv1a_64(customer.as_bytes()) % 100;
    let personalization = match draw {
        0..=77 => Some(true),
        78..=94 => None,
        _ => Some(false),
    };
    let marketing = (fnv1a_64(format!("{customer}/marketing").as_bytes()) % 100) < 40;
    [
        ("personalization", personalization),
        ("marketing_email", marketing.then_some(true)),
    ]
}

pub fn run(args: DemoArgs) -> Result<(), CommandError> {
    crate::serve::init_tracing(false);
    // The demo's key store has its own folder beside its data folder, emptied with it.
    let keys_dir = PathBuf::from(format!("{}-keys", args.data_dir.display()));
    clear_demo_folder(&args.data_dir)?;
    clear_demo_folder(&keys_dir)?;
    let store = StoreArgs {
        data_dir: args.data_dir.clone(),
        kek_file: args.kek_file.clone(),
        keys_dir: Some(keys_dir),
        policy: None,
    };
    let engine = store.open_engine()?;
    engine
        .rebuild(&|_| {})
        .map_err(|error| CommandError::Failed(error.into()))?;

    let retail = bundled_purchases().map_err(CommandError::Failed)?;
    let purchases: Vec<&RetailRow> = retail
        .rows
        .iter()
        .filter(|row| row.is_protocol_purchase())
        .collect();
    let mut events_per_customer: BTreeMap<&str, usize> = BTreeMap::new();
    for row in &purchases {
        *events_per_customer
            .entry(row.customer.as_deref().unwrap_or_default())
            .or_default() += 1;
    }
    eprintln!(
        "demo: {} purchases of {} customers of a UK giftware shop (Online Retail, UCI, CC BY 4.0)",
        purchases.len(),
        events_per_customer.len()
    );

    record_consents(&engine, "c-", events_per_customer.keys().copied())?;
    let last = purchases.iter().map(|row| row.at).max().unwrap_or(0);
    let shift_seconds = (discreet_vault::now_millis() / 1_000 - 86_400 - last).max(0);
    let report = crate::import::ingest_rows(&engine, &purchases, shift_seconds, "c-", 10_000, 0)?;
    eprintln!(
        "demo: imported {} events in {:.1} s (times shifted forward by {} days)",
        report.events,
        report.seconds,
        shift_seconds / 86_400
    );

    // The tour's customers: the consenting one with the most purchases under 300 (so the
    // export stays readable), and one who never consented.
    let consenting = events_per_customer
        .iter()
        .filter(|(customer, count)| **count < 300 && demo_consents(customer)[0].1 == Some(true))
        .max_by_key(|(_, count)| **count)
        .map(|(customer, _)| format!("c-{customer}"))
        .unwrap_or_default();
    let without_consent = events_per_customer
        .iter()
        .filter(|(customer, count)| **count >= 20 && demo_consents(customer)[0].1.is_none())
        .map(|(customer, _)| format!("c-{customer}"))
        .next()
        .unwrap_or_default();
    let operator = Caller::operator();
    let out_of_stock = declare_demo_items(&engine, &consenting)?;
    engine
        .put_attributes(
            &operator,
            &consenting,
            &[
                attribute("email", &format!("{consenting}@example.com")),
                attribute("first_name", "Alex"),
                attribute("size", "M"),
            ],
        )
        .map_err(engine_error)?;
    let storefront = engine
        .create_api_key(&operator, "storefront", "demo storefront")
        .map_err(engine_error)?;
    let privacy = engine
        .create_api_key(&operator, "privacy", "demo privacy team")
        .map_err(engine_error)?;
    let storefront_secret = storefront.secret.as_str().to_owned();
    let storefront_caller = Caller::key(storefront.id.clone(), "storefront");
    let privacy_secret = privacy.secret.as_str().to_owned();
    engine.shutdown();
    drop(engine);

    // Start as a real deployment would: a fresh process state rebuilt from the vault.
    let engine = store.open_engine()?;
    crate::serve::serve_engine(engine, args.listen, &args.http, move |address, state| {
        let portal = portal_link(state, &storefront_caller, address, &consenting);
        print_tour(
            address,
            &portal,
            &storefront_secret,
            &privacy_secret,
            &consenting,
            &without_consent,
            &out_of_stock,
        );
    })
}

/// Declares the bundled items, with one in `OUT_OF_STOCK_ONE_IN` and `consenting`'s first
/// recommendation out of stock; returns that recommendation and its title.
fn declare_demo_items(engine: &Engine, consenting: &str) -> Result<(String, String), CommandError> {
    engine.settle();
    // No tour customer (a file without one): no item is singled out.
    let first = if consenting.is_empty() {
        String::new()
    } else {
        engine
            .recommend(
                &Caller::operator(),
                consenting,
                "personalization",
                1,
                &EventContext::default(),
            )
            .map_err(engine_error)?
            .items
            .into_iter()
            .next()
            .map(|item| item.item)
            .unwrap_or_default()
    };
    let mut items = bundled_items()?;
    let mut out_of_stock = (first.clone(), String::new());
    for item in &mut items {
        if item.item == first || fnv1a_64(item.item.as_bytes()).is_multiple_of(OUT_OF_STOCK_ONE_IN)
        {
            item.available = false;
        }
        if item.item == first {
            out_of_stock.1 = item.title.clone();
        }
    }
    let n_out = items.iter().filter(|item| !item.available).count();
    let declared = crate::items::store_items(engine, items)?;
    eprintln!(
        "demo: declared {declared} items with titles and prices, {n_out} of them out of stock"
    );
    Ok(out_of_stock)
}

/// The bundled item titles and prices, every item available.
pub fn bundled_items() -> Result<Vec<ItemInput>, CommandError> {
    crate::items::read_items_csv(
        flate2::read::MultiGzDecoder::new(BUNDLED_ITEMS),
        "the bundled items",
    )
}

/// The bundled Online Retail purchases.
pub fn bundled_purchases() -> anyhow::Result<discreet_eval::retail_csv::RetailFile> {
    read_retail_csv(flate2::read::MultiGzDecoder::new(BUNDLED_PURCHASES))
        .map_err(|error| error.context("reading the bundled purchases"))
}

pub fn record_consents<'a>(
    engine: &Engine,
    subject_prefix: &str,
    customers: impl Iterator<Item = &'a str>,
) -> Result<(), CommandError> {
    let customers: Vec<&str> = customers.collect();
    let bar = indicatif::ProgressBar::new(customers.len() as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "recording consents {bar:30} {pos}/{len} customers",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let operator = Caller::operator();
    for customer in customers {
        let subject = format!("{subject_prefix}{customer}");
        for (purpose, decision) in demo_consents(customer) {
            match decision {
                None => {}
                Some(granted) => {
                    engine
                        .set_consent(&operator, &subject, purpose, true, "checkout-banner-v3")
                        .map_err(engine_error)?;
                    if !granted {
                        engine
                            .set_consent(&operator, &subject, purpose, false, "account-settings")
                            .map_err(engine_error)?;
                    }
                }
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}

/// Empties the demo folder, refusing if it holds anything a data folder would not.
fn clear_demo_folder(folder: &PathBuf) -> Result<(), CommandError> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(CommandError::BadInput(format!(
                "cannot read {}: {error}",
                folder.display()
            )));
        }
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !DATA_FOLDER_FILES.contains(&name.as_str()) {
            return Err(CommandError::BadInput(format!(
                "{} holds {name}, which is not a discreet file; choose another --data-dir",
                folder.display()
            )));
        }
        files.push(entry.path());
    }
    if !files.is_empty() {
        eprintln!("demo: starting afresh in {}", folder.display());
    }
    for file in files {
        std::fs::remove_file(&file).map_err(|error| {
            CommandError::Failed(anyhow::anyhow!("cannot remove {}: {error}", file.display()))
        })?;
    }
    Ok(())
}

/// A privacy-center start URL for `customer`, minted as the shop's backend would (through
/// the same code as `POST /v1/portal/sessions`), or why there is none.
fn portal_link(
    state: &discreet_server::AppState,
    storefront: &Caller,
    address: SocketAddr,
    customer: &str,
) -> String {
    // A browser reaches a wildcard listener on this machine's loopback address.
    let host = if address.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), address.port()).to_string()
    } else {
        address.to_string()
    };
    let request = discreet_server::wire::PortalBody {
        subject: customer.to_owned(),
        return_url: format!("http://{host}/portal/"),
        locale: None,
    };
    match discreet_server::pages::open_session(state, storefront, request, &host) {
        Ok(answer) => answer["url"].as_str().unwrap_or_default().to_owned(),
        Err(_) => "(none: off localhost the privacy center needs https; mint one with POST /v1/portal/sessions behind TLS)".to_owned(),
    }
}

fn print_tour(
    address: SocketAddr,
    portal: &str,
    storefront: &str,
    privacy: &str,
    consenting: &str,
    without_consent: &str,
    out_of_stock: &(String, String),
) {
    let base = format!("http://{address}");
    let (out_item, out_title) = out_of_stock;
    let now = discreet_vault::rfc3339(discreet_vault::now_millis());
    let today = &now[..10];
    println!(
        r#"
discreet is serving the demo at {base}.

Privacy center — open this in a browser to be customer {consenting}: see what the shop
holds, download it, switch personalization off, forget yourself and get a signed receipt
(the link works once, within 10 minutes; the session then lasts 30 minutes):

  {portal}

Console — for the shop's privacy officers: open {base}/console/ and sign in with the
privacy key below (dashboard, data map, subject lookup, audit trail, incidents and their
breach-impact report):

  {privacy}

In another terminal:

  export STOREFRONT={storefront}
  export PRIVACY={privacy}

  # A new privacy-center link, as the shop's backend mints one for its logged-in customer
  # ("locale": "de" for German):
  curl -s -X POST -H "Authorization: Bearer $STOREFRONT" {base}/v1/portal/sessions \
    -d '{{"subject": "{consenting}", "return_url": "{base}/portal/", "locale": "en"}}'

  # Personal recommendations with their titles, each explained by the customer's own purchases:
  curl -s -H "Authorization: Bearer $STOREFRONT" '{base}/v1/subjects/{consenting}/recommendations?n=5'

  # Filters apply before the cut, so n items still come back: at most 2.00 GBP, not 84879:
  curl -s -H "Authorization: Bearer $STOREFRONT" '{base}/v1/subjects/{consenting}/recommendations?n=5&max_price=2&exclude=84879'

  # {out_item} ({out_title}) is out of stock, so it is left out above unless asked for:
  curl -s -H "Authorization: Bearer $STOREFRONT" '{base}/v1/subjects/{consenting}/recommendations?n=5&include_unavailable=true'
  curl -s -H "Authorization: Bearer $STOREFRONT" '{base}/v1/items/{out_item}'

  # A customer who never consented gets non-personal items, and says why:
  curl -s -H "Authorization: Bearer $STOREFRONT" '{base}/v1/subjects/{without_consent}/recommendations?n=5&context.country=France'

  # Items bought together (aggregates only):
  curl -s -H "Authorization: Bearer $STOREFRONT" '{base}/v1/items/85123A/similar?n=5'

  # Everything discreet holds about the customer (GDPR Art. 15 and 20):
  curl -s -H "Authorization: Bearer $PRIVACY" '{base}/v1/subjects/{consenting}/export'

  # Forget them everywhere, with a signed receipt; then the export is 404:
  curl -s -X DELETE -H "Authorization: Bearer $PRIVACY" '{base}/v1/subjects/{consenting}'
  curl -s -H "Authorization: Bearer $PRIVACY" '{base}/v1/subjects/{consenting}/export'

  # The key that verifies receipts, the ledger check, the API description:
  curl -s '{base}/v1/receipts/public-key'
  curl -s -H "Authorization: Bearer $PRIVACY" '{base}/v1/audit/verify'
  curl -s '{base}/openapi.json'

  # A breach: what the storefront key could have leaked since this morning, the 72-hour
  # clock, and the Art. 33(3) draft report:
  curl -s -X POST -H "Authorization: Bearer $PRIVACY" {base}/v1/incidents \
    -d '{{"kind": "window", "since": "{today}T00:00:00Z"}}'

Stop with Ctrl-C."#
    );
}

fn attribute(name: &str, value: &str) -> AttributeInput {
    AttributeInput {
        name: name.to_owned(),
        value: value.to_owned(),
    }
}
