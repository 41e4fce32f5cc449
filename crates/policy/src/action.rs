//! The actions an API key's role may be granted: one per kind of API route.
//!
//! The names are part of the policy file format: never rename one, only add.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// Something a caller does through the API; a role lists the actions it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `POST /v1/events`: record what subjects did.
    Ingest,
    /// `PUT /v1/subjects/{subject}/attributes`: record what subjects declared.
    AttributesWrite,
    /// `GET /v1/subjects/{subject}/consents`.
    ConsentsRead,
    /// `PUT /v1/subjects/{subject}/consents/{purpose}`.
    ConsentsWrite,
    /// `GET /v1/subjects/{subject}/recommendations`: personal recommendations.
    Recommendations,
    /// `GET /v1/items/{item}/similar`: built from aggregates only.
    SimilarItems,
    /// `GET /v1/subjects/{subject}/export`: everything held about a subject.
    Export,
    /// `DELETE /v1/subjects/{subject}`: erase a subject.
    Forget,
    /// `GET /v1/audit` and `GET /v1/audit/verify`: the access ledger.
    AuditRead,
    /// `GET /v1/receipts/{id}`: erasure receipts.
    ReceiptsRead,
    /// `GET /v1/policy/records`: records of processing.
    RecordsRead,
    /// `GET /v1/policy`: the policy in force.
    PolicyRead,
    /// Create and revoke API keys.
    KeysManage,
    /// Non-personal figures: consent rates, counts, popularity.
    AggregatesRead,
    /// `PUT /v1/items/{item}`, `POST /v1/items`, `GET /v1/items/{item}`: the item catalogue.
    Catalogue,
    /// `POST /v1/portal/sessions`: send a logged-in customer to the privacy center.
    Portal,
    /// The console (`/console/`): sign in, the dashboard and the data map. Each other console
    /// page also needs the action of the route it stands for.
    Console,
    /// `POST /v1/incidents` and the rest of `/v1/incidents`: breach-impact reports.
    Incidents,
}

impl Action {
    /// Every action, in the order of the API routes.
    pub const ALL: [Action; 18] = [
        Action::Ingest,
        Action::AttributesWrite,
        Action::ConsentsRead,
        Action::ConsentsWrite,
        Action::Recommendations,
        Action::SimilarItems,
        Action::Export,
        Action::Forget,
        Action::AuditRead,
        Action::ReceiptsRead,
        Action::RecordsRead,
        Action::PolicyRead,
        Action::KeysManage,
        Action::AggregatesRead,
        Action::Catalogue,
        Action::Portal,
        Action::Console,
        Action::Incidents,
    ];

    /// The name used in the policy file.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Ingest => "ingest",
            Action::AttributesWrite => "attributes_write",
            Action::ConsentsRead => "consents_read",
            Action::ConsentsWrite => "consents_write",
            Action::Recommendations => "recommendations",
            Action::SimilarItems => "similar_items",
            Action::Export => "export",
            Action::Forget => "forget",
            Action::AuditRead => "audit_read",
            Action::ReceiptsRead => "receipts_read",
            Action::RecordsRead => "records_read",
            Action::PolicyRead => "policy_read",
            Action::KeysManage => "keys_manage",
            Action::AggregatesRead => "aggregates_read",
            Action::Catalogue => "catalogue",
            Action::Portal => "portal",
            Action::Console => "console",
            Action::Incidents => "incidents",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The name is not one of [`Action::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownActionName(pub String);

impl FromStr for Action {
    type Err = UnknownActionName;

    fn from_str(name: &str) -> Result<Action, UnknownActionName> {
        Action::ALL
            .into_iter()
            .find(|action| action.as_str() == name)
            .ok_or_else(|| UnknownActionName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for action in Action::ALL {
            assert_eq!(action.as_str().parse::<Action>(), Ok(action));
            assert_eq!(
                serde_json::to_value(action).unwrap(),
                serde_json::Value::String(action.as_str().to_owned())
            );
        }
        assert!("delete_everything".parse::<Action>().is_err());
    }
}
