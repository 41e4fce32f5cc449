//! Who answers for the data and who receives it: the controller, the recipients and the
//! transfers to third countries. A transfer must name a declared recipient.

use crate::parse::shape::{RawController, RawRecipient, RawTransfer};
use crate::policy::{Controller, Recipient, Transfer};

use super::Validator;

impl Validator<'_> {
    pub(super) fn validate_controller(&mut self, raw: &RawController) -> Controller {
        Controller {
            name: self.require_text(
                &raw.name,
                "controller.name",
                "the legal name of the organisation responsible",
            ),
            contact: self.require_text(
                &raw.contact,
                "controller.contact",
                "how to reach the controller about privacy, e.g. \"privacy@example.com\"",
            ),
            address: self.optional_text(raw.address.as_ref()),
            data_protection_officer: self.optional_text(raw.data_protection_officer.as_ref()),
        }
    }

    pub(super) fn validate_recipients(&mut self, raw: &[RawRecipient]) -> Vec<Recipient> {
        self.check_unique(raw.iter().map(|recipient| &recipient.name), "recipient");
        raw.iter()
            .map(|recipient| {
                self.check_name(&recipient.name, "recipient");
                Recipient {
                    name: recipient.name.get_ref().clone(),
                    kind: recipient.kind,
                    description: self.require_text(
                        &recipient.description,
                        "recipients.description",
                        "who the recipient is and what they receive",
                    ),
                    location: self.optional_text(recipient.location.as_ref()),
                }
            })
            .collect()
    }

    pub(super) fn validate_transfers(
        &mut self,
        raw: &[RawTransfer],
        recipient_names: &[&str],
    ) -> Vec<Transfer> {
        raw.iter()
            .map(|transfer| {
                self.check_recipient(&transfer.recipient, "a [[transfers]] entry", recipient_names);
                Transfer {
                    recipient: transfer.recipient.get_ref().clone(),
                    country: self.require_text(&transfer.country, "transfers.country", "the third country the data goes to"),
                    safeguard: self.require_text(
                        &transfer.safeguard,
                        "transfers.safeguard",
                        "what makes the transfer lawful, e.g. \"EU standard contractual clauses (2021/914)\"",
                    ),
                }
            })
            .collect()
    }
}
