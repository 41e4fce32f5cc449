//! Who may do what: the `Caller` every call names, and the checks of its role's actions,
//! purposes and data categories against the policy. Every refusal of the engine is written
//! here, in one form: "role `R` may not …".

use std::sync::LazyLock;

use discreet_policy::{Action, Grant, Purpose, Role};

use crate::engine::Engine;
use crate::error::{Error, Result};

/// The purpose under which subject-rights requests (export, forget) read data.
pub const RIGHTS_PURPOSE: &str = "subject_rights";

/// The role of a customer acting on their own data (in the privacy center): never in a
/// policy file, the same for every shop.
pub const DATA_SUBJECT_ROLE: &str = "data_subject";

/// What a customer may do with their own data: see it, download it, decide their consents
/// and forget it (GDPR Art. 7(3), 15, 17, 20) — and nothing about anyone else.
static DATA_SUBJECT: LazyLock<Role> = LazyLock::new(|| Role {
    name: DATA_SUBJECT_ROLE.to_owned(),
    description: "A customer in the privacy center: their own data only.".to_owned(),
    actions: Grant::Only(vec![
        Action::ConsentsRead,
        Action::ConsentsWrite,
        Action::Export,
        Action::Forget,
    ]),
    purposes: Grant::Only(vec![RIGHTS_PURPOSE.to_owned()]),
    categories: Grant::All,
});

/// Who is calling: an API key's id and its role (from the policy), or a customer bound to
/// their own data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// What the ledger names as the actor: a key id, `cli`, or `portal:<session id>`.
    pub key_id: String,
    pub role: String,
    /// The one subject a customer's own caller may name (`Caller::data_subject`); its role
    /// is then `DATA_SUBJECT_ROLE`, whatever the policy says.
    pub subject: Option<String>,
}

impl Caller {
    /// The caller of an API key of `role`.
    pub fn key(key_id: impl Into<String>, role: impl Into<String>) -> Caller {
        Caller {
            key_id: key_id.into(),
            role: role.into(),
            subject: None,
        }
    }

    /// The operator at the command line (role `admin` of the policy).
    pub fn operator() -> Caller {
        Caller::key("cli", "admin")
    }

    /// A customer acting on their own data through privacy-center session `session_id`:
    /// every call must name `subject`, and is on the ledger as `portal:<session id>`.
    pub fn data_subject(session_id: &str, subject: &str) -> Caller {
        Caller {
            key_id: format!("portal:{session_id}"),
            role: DATA_SUBJECT_ROLE.to_owned(),
            subject: Some(subject.to_owned()),
        }
    }
}

/// A role that may take the action it was checked for; it answers the finer questions.
pub(crate) struct Permit<'a> {
    pub role: &'a Role,
}

impl Permit<'_> {
    /// The role may use data for `purpose`.
    pub fn purpose(&self, purpose: &str) -> Result<()> {
        if self.role.allows_purpose(purpose) {
            Ok(())
        } else {
            Err(refusal(self.role, &format!("use data for `{purpose}`")))
        }
    }

    /// The role may write `category`; `field` names the part of the request that holds it.
    pub fn write(&self, category: &str, field: Option<&str>) -> Result<()> {
        self.category("write", category, field)
    }

    /// The role may read `category`.
    pub fn read(&self, category: &str) -> Result<()> {
        self.category("read", category, None)
    }

    /// True when the role may use every one of `categories`.
    pub fn all_categories<'c>(&self, mut categories: impl Iterator<Item = &'c str>) -> bool {
        categories.all(|category| self.role.allows_category(category))
    }

    fn category(&self, verb: &str, category: &str, field: Option<&str>) -> Result<()> {
        if self.role.allows_category(category) {
            return Ok(());
        }
        Err(refusal(
            self.role,
            &match field {
                Some(field) => format!("{verb} `{category}` ({field})"),
                None => format!("{verb} `{category}`"),
            },
        ))
    }
}

/// A caller bound to one subject names only that one (the name given is not repeated).
pub(crate) fn check_bound(caller: &Caller, subject: &str) -> Result<()> {
    match &caller.subject {
        Some(bound) if bound != subject => Err(Error::forbidden(
            "a customer's own session may act only on that customer's data".to_owned(),
        )),
        _ => Ok(()),
    }
}

/// "role `R` may not {what}".
fn refusal(role: &Role, what: &str) -> Error {
    Error::forbidden(format!("role `{}` may not {what}", role.name))
}

impl Engine {
    /// The role of `caller`, which must allow `action`.
    pub(crate) fn authorize(&self, caller: &Caller, action: Action) -> Result<Permit<'_>> {
        let role = match caller.subject {
            Some(_) => &*DATA_SUBJECT,
            None => self.inner.policy.role(&caller.role).ok_or_else(|| {
                Error::forbidden(format!("role `{}` is not in the policy", caller.role))
            })?,
        };
        if !role.allows_action(action) {
            return Err(refusal(role, action.as_str()));
        }
        Ok(Permit { role })
    }

    /// Checks only that the caller's role may take `action`: for callers that read a request
    /// body after this, so that a refused caller is told 403 before anything about its body.
    pub fn check_action(&self, caller: &Caller, action: Action) -> Result<()> {
        self.authorize(caller, action).map(|_| ())
    }

    /// `authorize`, for a call about `subject`: a caller bound to one subject may name only
    /// that one.
    pub(crate) fn authorize_for(
        &self,
        caller: &Caller,
        action: Action,
        subject: &str,
    ) -> Result<Permit<'_>> {
        let permit = self.authorize(caller, action)?;
        check_bound(caller, subject)?;
        Ok(permit)
    }

    /// Export and forget read every category of a subject's data under the subject-rights
    /// purpose: the role must allow the action and that purpose.
    pub(crate) fn authorize_rights(
        &self,
        caller: &Caller,
        action: Action,
        subject: &str,
    ) -> Result<Permit<'_>> {
        let permit = self.authorize_for(caller, action, subject)?;
        permit.purpose(RIGHTS_PURPOSE)?;
        Ok(permit)
    }

    /// A purpose the policy declares.
    pub(crate) fn purpose(&self, name: &str) -> Result<&Purpose> {
        let policy = &self.inner.policy;
        policy.purpose(name).ok_or_else(|| {
            not_declared(
                "purpose",
                policy
                    .purposes()
                    .iter()
                    .map(|purpose| purpose.name.as_str()),
            )
        })
    }
}

/// "is not a {what} of the policy; known: …" for the field named `what`. The name given is
/// not repeated: an unknown name may be anything a caller typed, personal data included.
pub(crate) fn not_declared<'a>(what: &str, known: impl Iterator<Item = &'a str>) -> Error {
    Error::bad_input(
        what,
        format!(
            "is not a {what} of the policy; known: {}",
            known.collect::<Vec<_>>().join(", ")
        ),
    )
}
