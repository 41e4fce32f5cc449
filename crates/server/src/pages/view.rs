//! What every page shares (`Frame`), and the engine's answers turned into rows to show, in
//! the page's language: dates, event kinds, legal bases, consent states, who acted.

use discreet_engine::{AccessEntry, EventType, ExportedEvent};

use super::locale::{Locale, Texts};

/// One link of the navigation.
pub struct NavLink {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// The parts of the page around its content.
pub struct Frame {
    pub t: &'static Texts,
    pub title: &'static str,
    /// The shop's legal name.
    pub controller: String,
    pub nav: Vec<NavLink>,
    /// Where "Back to the shop" goes (empty: no link).
    pub return_url: String,
    /// The session's form token (empty: no session, no sign-out form).
    pub csrf: String,
    pub sign_out: &'static str,
}

/// The privacy center's pages, in navigation order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PortalPage {
    Overview,
    Data,
    Consents,
    Download,
    Activity,
    Forget,
}

impl Frame {
    /// The frame of a privacy-center page of a live session.
    pub fn portal(
        locale: Locale,
        page: PortalPage,
        title: &'static str,
        controller: &str,
        return_url: &str,
        csrf: &str,
    ) -> Frame {
        let t = locale.texts();
        let links = [
            ("/portal/", t.nav_overview, PortalPage::Overview),
            ("/portal/data", t.nav_data, PortalPage::Data),
            ("/portal/consents", t.nav_consents, PortalPage::Consents),
            ("/portal/download", t.nav_download, PortalPage::Download),
            ("/portal/activity", t.nav_activity, PortalPage::Activity),
            ("/portal/forget", t.nav_forget, PortalPage::Forget),
        ];
        Frame {
            t,
            title,
            controller: controller.to_owned(),
            nav: links
                .into_iter()
                .map(|(href, label, of)| NavLink {
                    href,
                    label,
                    current: of == page,
                })
                .collect(),
            return_url: return_url.to_owned(),
            csrf: csrf.to_owned(),
            sign_out: "/portal/sign-out",
        }
    }

    /// The frame of a page without a live session (no navigation, no forms).
    pub fn bare(locale: Locale, title: &'static str, return_url: &str) -> Frame {
        Frame {
            t: locale.texts(),
            title,
            controller: String::new(),
            nav: Vec::new(),
            return_url: return_url.to_owned(),
            csrf: String::new(),
            sign_out: "/portal/sign-out",
        }
    }
}

/// An RFC 3339 time as the page's language writes it, to the minute, in UTC.
pub fn when(locale: Locale, rfc3339: &str) -> String {
    let Ok(at) =
        time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
    else {
        return rfc3339.to_owned();
    };
    let at = at.to_offset(time::UtcOffset::UTC);
    let (year, month, day) = (at.year(), u8::from(at.month()), at.day());
    let (hour, minute) = (at.hour(), at.minute());
    match locale {
        Locale::En => format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC"),
        Locale::De => format!("{day:02}.{month:02}.{year:04} {hour:02}:{minute:02} UTC"),
    }
}

/// What an event was, in words.
pub fn event_kind(t: &Texts, event_type: EventType) -> &'static str {
    match event_type {
        EventType::View => t.kind_view,
        EventType::Cart => t.kind_cart,
        EventType::Purchase => t.kind_purchase,
        EventType::Search => t.kind_search,
        EventType::Rating => t.kind_rating,
    }
}

/// A legal basis (`consent`, `contract`, …) in words.
pub fn legal_basis(t: &Texts, basis: &str) -> &'static str {
    match basis {
        "consent" => t.basis_consent,
        "contract" => t.basis_contract,
        "legal_obligation" => t.basis_legal_obligation,
        "vital_interests" => t.basis_vital_interests,
        "public_task" => t.basis_public_task,
        _ => t.basis_legitimate_interests,
    }
}

/// A consent state (`granted`, `withdrawn`, `never`) in words.
pub fn consent_state(t: &Texts, state: &str) -> &'static str {
    match state {
        "granted" => t.state_granted,
        "withdrawn" => t.state_withdrawn,
        _ => t.state_never,
    }
}

/// Who acted, as the ledger names them (`portal:…`, a key id, `cli`, `system`), in words.
pub fn actor(t: &Texts, actor: &str, session_id: &str) -> String {
    if let Some(session) = actor.strip_prefix("portal:") {
        if session == session_id {
            return t.actor_you.to_owned();
        }
        return format!("{} ({session})", t.actor_you);
    }
    match actor {
        "cli" => t.actor_operator.to_owned(),
        "system" | "retention" | "learner" => t.actor_system.to_owned(),
        key => format!("{} {key}", t.actor_shop_key),
    }
}

/// A data category's name in the page's language, for the categories a retailer declares;
/// others by the taxonomy's description.
pub fn category_label(locale: Locale, category: &str) -> String {
    let known: &[(&str, &str, &str)] = &[
        (
            "user.behavior.purchase_history",
            "What you bought",
            "Ihre Käufe",
        ),
        (
            "user.behavior.browsing_history",
            "What you looked at",
            "Was Sie angesehen haben",
        ),
        (
            "user.behavior.search_history",
            "What you searched for",
            "Wonach Sie gesucht haben",
        ),
        (
            "user.behavior",
            "What you did in the shop",
            "Was Sie im Shop getan haben",
        ),
        (
            "user.contact.email",
            "Your email address",
            "Ihre E-Mail-Adresse",
        ),
        (
            "user.contact.phone_number",
            "Your phone number",
            "Ihre Telefonnummer",
        ),
        (
            "user.contact.address.street",
            "Your street address",
            "Ihre Straße und Hausnummer",
        ),
        ("user.contact.address.city", "Your city", "Ihr Ort"),
        (
            "user.contact.address.postal_code",
            "Your postal code",
            "Ihre Postleitzahl",
        ),
        ("user.contact.address.country", "Your country", "Ihr Land"),
        ("user.contact", "Your contact details", "Ihre Kontaktdaten"),
        ("user.name.first", "Your first name", "Ihr Vorname"),
        ("user.name.last", "Your last name", "Ihr Nachname"),
        ("user.name", "Your name", "Ihr Name"),
        (
            "user.demographic.profile",
            "Your preferences",
            "Ihre Vorlieben",
        ),
        (
            "user.privacy_preferences",
            "Your privacy choices",
            "Ihre Datenschutz-Entscheidungen",
        ),
    ];
    if let Some((_, en, de)) = known.iter().find(|(name, _, _)| *name == category) {
        return match locale {
            Locale::En => (*en).to_owned(),
            Locale::De => (*de).to_owned(),
        };
    }
    discreet_policy::taxonomy::DATA_CATEGORIES
        .iter()
        .find(|entry| entry.name == category)
        .map_or_else(|| category.to_owned(), |entry| entry.description.to_owned())
}

/// One event, as the data page lists it.
pub struct EventRow {
    pub at: String,
    pub kind: &'static str,
    pub item: String,
    pub quantity: String,
    pub context: String,
}

impl EventRow {
    pub fn of(
        locale: Locale,
        event: &ExportedEvent,
        titles: &std::collections::HashMap<String, String>,
    ) -> EventRow {
        let t = locale.texts();
        let payload = &event.payload;
        let item = match (&payload.item, &payload.query) {
            (Some(item), _) => match titles.get(item) {
                Some(title) => format!("{title} ({item})"),
                None => item.clone(),
            },
            (None, Some(query)) => format!("“{query}”"),
            (None, None) => String::new(),
        };
        let quantity = match (payload.quantity, payload.value) {
            (Some(quantity), _) => quantity.to_string(),
            (None, Some(value)) => format!("{value}"),
            _ => String::new(),
        };
        let context = [
            payload.context.weather.as_deref(),
            payload.context.country.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
        EventRow {
            at: when(locale, &event.at),
            kind: event_kind(t, payload.event_type),
            item,
            quantity,
            context,
        }
    }
}

/// One ledger entry, as the activity page lists it.
pub struct ActivityRow {
    pub at: String,
    pub who: String,
    pub action: String,
    pub purpose: String,
    pub categories: String,
    pub outcome: String,
}

impl ActivityRow {
    pub fn of(locale: Locale, entry: &AccessEntry, session_id: &str) -> ActivityRow {
        let t = locale.texts();
        ActivityRow {
            at: when(locale, &entry.at),
            who: actor(t, &entry.actor, session_id),
            action: entry.action.clone(),
            purpose: entry.purpose.clone().unwrap_or_default(),
            categories: entry
                .categories
                .iter()
                .map(|category| category_label(locale, category))
                .collect::<Vec<_>>()
                .join(", "),
            outcome: entry.outcome.clone(),
        }
    }
}

/// Rows per page of the data and activity lists.
pub const ROWS_PER_PAGE: usize = 50;

/// The page `requested` (1-based, clamped) of `total` rows: (page, pages, first index, end).
pub fn paginate(requested: usize, total: usize) -> (usize, usize, usize, usize) {
    let pages = total.div_ceil(ROWS_PER_PAGE).max(1);
    let page = requested.clamp(1, pages);
    let first = (page - 1) * ROWS_PER_PAGE;
    (page, pages, first, (first + ROWS_PER_PAGE).min(total))
}
