//! `discreet incident`: open an incident (GDPR Art. 33) and read its draft report at the
//! command line, through the same engine calls as `/v1/incidents`. The impact comes from
//! the ledger, verified first: a broken ledger is printed with the figures and makes the
//! command exit 4, never hidden behind a success.

use clap::{Args, Subcommand, ValueEnum};
use discreet_engine::{Caller, Engine, Incident, IncidentKind, IncidentRequest};
use discreet_server::wire::{INCIDENT_FIELDS, incident_json};
use discreet_vault::rfc3339;

use crate::CommandError;
use crate::store::{PostgresArgs, StoreArgs, engine_error};

/// Arguments of `incident`.
#[derive(Args, Debug)]
pub struct IncidentArgs {
    #[command(subcommand)]
    pub command: IncidentCommand,
}

/// What happened, as `--kind` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// An API key's secret leaked: what that key read (give --key-id).
    #[value(name = "key_compromised")]
    KeyCompromised,
    /// Every personal-data read by any key in --since..--until.
    #[value(name = "window")]
    Window,
    /// A copy of the data files taken at --since (add --kek-exposed if the KEK went too).
    #[value(name = "data_copy")]
    DataCopy,
}

impl From<KindArg> for IncidentKind {
    fn from(kind: KindArg) -> IncidentKind {
        match kind {
            KindArg::KeyCompromised => IncidentKind::KeyCompromised,
            KindArg::Window => IncidentKind::Window,
            KindArg::DataCopy => IncidentKind::DataCopy,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum IncidentCommand {
    /// Compute an incident's impact from the verified ledger, store it signed and print it
    /// with its 72-hour deadline; exit code 4 when the ledger did not verify.
    Create {
        #[arg(long, value_enum)]
        kind: KindArg,
        /// The leaked API key's id (key_compromised).
        #[arg(long)]
        key_id: Option<String>,
        /// Start of the window, RFC 3339 (key_compromised: the key's creation by default;
        /// data_copy: when the copy was taken).
        #[arg(long)]
        since: Option<String>,
        /// End of the window, RFC 3339 (now by default).
        #[arg(long)]
        until: Option<String>,
        /// When the shop became aware of the breach, RFC 3339 (now by default): the
        /// supervisory authority is to be notified within 72 hours of it.
        #[arg(long)]
        aware_at: Option<String>,
        /// The key-encryption key was copied too (data_copy): the copy is readable.
        #[arg(long)]
        kek_exposed: bool,
        /// What happened, in the officer's words (no personal data).
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        postgres: PostgresArgs,
        /// Print the incident as `POST /v1/incidents` answers it.
        #[arg(long)]
        json: bool,
    },
    /// List incidents, newest first.
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        postgres: PostgresArgs,
        /// Print `{"incidents": [...]}` as `GET /v1/incidents` answers it.
        #[arg(long)]
        json: bool,
    },
    /// Print an incident's Art. 33(3) draft notification (Markdown).
    Report {
        /// The incident's id (`inc_...`).
        id: String,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        postgres: PostgresArgs,
    },
}

pub fn run(args: IncidentArgs) -> Result<(), CommandError> {
    let caller = Caller::operator();
    match args.command {
        IncidentCommand::Create {
            kind,
            key_id,
            since,
            until,
            aware_at,
            kek_exposed,
            description,
            store,
            postgres,
            json,
        } => {
            let request = IncidentRequest {
                kind: kind.into(),
                key_id,
                since: since.as_deref().map(|at| time("--since", at)).transpose()?,
                until: until.as_deref().map(|at| time("--until", at)).transpose()?,
                aware_at: aware_at
                    .as_deref()
                    .map(|at| time("--aware-at", at))
                    .transpose()?,
                kek_exposed: kek_exposed.then_some(true),
                description,
            };
            let incident = with_engine(&store, &postgres, |engine| {
                engine.create_incident(&caller, request)
            })?;
            if json {
                println!("{}", pretty(&incident_json(&incident)));
            } else {
                print_created(&incident);
            }
            if !incident.ledger.ok {
                eprintln!(
                    "error: the ledger did not verify; the incident was computed from what it still holds (run `discreet audit verify`)"
                );
                return Err(CommandError::Verification);
            }
        }
        IncidentCommand::List {
            store,
            postgres,
            json,
        } => {
            let list = with_engine(&store, &postgres, |engine| engine.incidents(&caller))?;
            let incidents = &list.incidents;
            for id in &list.unreadable {
                eprintln!(
                    "incident {id} could not be read: its stored form is missing or was altered"
                );
            }
            if json {
                let incidents: Vec<_> = incidents.iter().map(incident_json).collect();
                println!(
                    "{}",
                    pretty(
                        &serde_json::json!({ "incidents": incidents, "unreadable": list.unreadable })
                    )
                );
            } else if incidents.is_empty() {
                println!("no incidents");
            } else {
                for incident in incidents {
                    println!(
                        "{}  {:<15}  created {}  notify by {}  {} subjects, {} records{}{}",
                        incident.id,
                        incident.kind.as_str(),
                        rfc3339(incident.created_at),
                        rfc3339(incident.notify_by),
                        incident.impact.subjects,
                        incident.impact.records,
                        if incident.ledger.ok {
                            ""
                        } else {
                            "  LEDGER BROKEN"
                        },
                        incident
                            .containment
                            .key_revoked_at
                            .map(|at| format!("  key revoked {}", rfc3339(at)))
                            .unwrap_or_default()
                    );
                }
            }
        }
        IncidentCommand::Report {
            id,
            store,
            postgres,
        } => {
            let report = with_engine(&store, &postgres, |engine| {
                engine.incident_report(&caller, &id)
            })?;
            print!("{report}");
        }
    }
    Ok(())
}

/// Opens the store, makes one engine call, and closes the store (the ledger flushed).
fn with_engine<T>(
    store: &StoreArgs,
    postgres: &PostgresArgs,
    call: impl FnOnce(&Engine) -> discreet_engine::Result<T>,
) -> Result<T, CommandError> {
    let engine = store.open_engine_on(postgres)?;
    let outcome = call(&engine);
    engine.shutdown();
    outcome.map_err(incident_error)
}

/// Engine errors, with a request field named as the flag that sets it.
fn incident_error(error: discreet_engine::Error) -> CommandError {
    match error {
        discreet_engine::Error::BadInput { field, detail }
            if INCIDENT_FIELDS.contains(&field.as_str()) =>
        {
            CommandError::BadInput(format!("--{} {detail}", field.replace('_', "-")))
        }
        discreet_engine::Error::NotFound {
            what: discreet_engine::Missing::ApiKey,
        } => CommandError::NotFound("--key-id names no API key of this store".into()),
        other => engine_error(other),
    }
}

/// An RFC 3339 time given to `flag`, in unix milliseconds.
fn time(flag: &str, text: &str) -> Result<i64, CommandError> {
    discreet_server::wire::parse_time(flag, text).map_err(|_| {
        CommandError::BadInput(format!(
            "{flag} must be an RFC 3339 time such as 2024-05-01T10:00:00Z, got `{text}`"
        ))
    })
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// The human summary of a new incident: what to notify by when, and what was exposed.
fn print_created(incident: &Incident) {
    let impact = &incident.impact;
    println!("incident {} ({})", incident.id, incident.kind.as_str());
    println!(
        "notify by: {} (aware at {}, + 72 h)",
        rfc3339(incident.notify_by),
        rfc3339(incident.aware_at)
    );
    println!(
        "subjects: {}{}",
        impact.subjects,
        if impact.approximate {
            " (upper bound: some older ledger entries carry no per-category counts)"
        } else {
            ""
        }
    );
    println!("records: {}", impact.records);
    for category in &impact.categories {
        println!(
            "  {}: {} subjects, {} records",
            category.category, category.subjects, category.records
        );
    }
    if impact.recommendation_reads > 0 {
        println!(
            "recommendation lists read: {} (derived from those categories, 0 records each)",
            impact.recommendation_reads
        );
    }
    if !impact.purposes.is_empty() {
        println!("purposes: {}", impact.purposes.join(", "));
    }
    if !impact.intelligible {
        println!("intelligible: no (sealed, the key-encryption key was not exposed)");
    }
    if incident.ledger.ok {
        println!("ledger: ok ({} entries verified)", incident.ledger.entries);
    } else {
        println!(
            "ledger: BROKEN ({}); the figures come from what it still holds and may be incomplete",
            incident.ledger.problem.as_deref().unwrap_or("chain broken")
        );
    }
    println!("report: discreet incident report {}", incident.id);
}
