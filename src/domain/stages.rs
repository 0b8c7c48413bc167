//! The states a lead, a quote and a job move through, and where an outgoing message goes, as
//! enums: a `match` over them is checked by the compiler. Each has the name the database stores
//! (`as_str`) and parses back from it, refusing a name it does not know.

use std::fmt;

/// A name read from storage or a form that is not one of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// Which enum was parsed (`LeadStage`, `Channel`, …).
    pub of: &'static str,
    /// The name that did not match.
    pub name: String,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} {:?}", self.of, self.name)
    }
}

impl std::error::Error for UnknownName {}

/// Defines an enum stored by name: `as_str`, `ALL`, `Display`, `FromStr` and
/// `TryFrom<String>` from one list of variants and names.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $name:ident as $db:literal {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in the order declared.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The name stored in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// What a person reads: the name with spaces.
            pub fn label(self) -> String {
                self.as_str().replace('_', " ")
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::domain::stages::UnknownName;
            fn from_str(name: &str) -> Result<Self, $crate::domain::stages::UnknownName> {
                match name {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::domain::stages::UnknownName { of: $db, name: name.to_owned() }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::domain::stages::UnknownName;
            fn try_from(name: String) -> Result<Self, $crate::domain::stages::UnknownName> {
                name.parse()
            }
        }
    };
}

pub(crate) use named_enum;

named_enum! {
    /// Where a lead is (the database's `LeadStage`), in the order a lead moves through them.
    Stage as "LeadStage" {
        /// Waiting for photos of the junk (the original's first stage; JunkQuote starts at
        /// clarifying).
        AwaitingPhotos = "awaiting_photos",
        /// Finding out what is to be hauled.
        Clarifying = "clarifying",
        /// Quoted; waiting for the address or a yes.
        Quoting = "quoting",
        /// The owner is asked to approve the quote.
        AwaitingOwner = "awaiting_owner",
        /// Pickup windows were offered.
        Scheduling = "scheduling",
        /// A pickup is booked.
        Booked = "booked",
        /// The pickup reminder was sent.
        Reminding = "reminding",
        /// Picked up, or finished otherwise.
        Done = "done",
    }
}

named_enum! {
    /// A job's status (the database's `JobStatus`); the steps of the day between booked and
    /// completed are [`Progress`](super::progress::Progress) events.
    JobStatus as "JobStatus" {
        /// Not yet confirmed.
        Tentative = "tentative",
        /// On the schedule.
        Booked = "booked",
        /// Done.
        Completed = "completed",
        /// Called off.
        Cancelled = "cancelled",
    }
}

named_enum! {
    /// A quote's status (the database's `QuoteStatus`).
    QuoteStatus as "QuoteStatus" {
        /// Written, not shown (the original's).
        Draft = "draft",
        /// Waiting for the owner.
        PendingApproval = "pending_approval",
        /// The owner approved it.
        Approved = "approved",
        /// The owner denied it.
        Denied = "denied",
        /// Shown to the customer without needing approval.
        Sent = "sent",
        /// The customer booked it.
        Accepted = "accepted",
    }
}

impl QuoteStatus {
    /// A quote as priced: it waits for the owner when it needs approval, else it is shown.
    pub fn priced(needs_approval: bool) -> QuoteStatus {
        if needs_approval {
            QuoteStatus::PendingApproval
        } else {
            QuoteStatus::Sent
        }
    }
}

named_enum! {
    /// Where an outbox message goes (`Outbox.channel`): a customer's channel, or the owner.
    /// Web chat is not here: its replies are read from the thread.
    OutboxChannel as "Outbox.channel" {
        /// A text message to the customer.
        Sms = "sms",
        /// A Messenger message to the customer.
        Messenger = "messenger",
        /// A text to the owner's phone.
        Owner = "owner",
    }
}

named_enum! {
    /// What an outbox message is (`Outbox.kind`); Messenger sends the two differently.
    OutboxKind as "Outbox.kind" {
        /// An answer to a customer's message (inside Messenger's 24-hour window).
        Reply = "reply",
        /// Unprompted: a reminder, the owner's decision (sent as a tagged update).
        Update = "update",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_and_unknown_names_are_refused() {
        for s in Stage::ALL {
            assert_eq!(s.as_str().parse::<Stage>(), Ok(*s));
        }
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>(), Ok(*s));
        }
        for s in QuoteStatus::ALL {
            assert_eq!(QuoteStatus::try_from(s.as_str().to_owned()), Ok(*s));
        }
        assert_eq!(Stage::ALL.len(), 8);
        assert_eq!(
            "Booked".parse::<Stage>(),
            Err(UnknownName {
                of: "LeadStage",
                name: "Booked".into()
            })
        );
        assert!("web".parse::<OutboxChannel>().is_err());
        assert_eq!(Stage::AwaitingOwner.label(), "awaiting owner");
    }
}
