//! Who is who: leads grouped into customers by their normalised identifiers, transitively
//! (union-find over leads and identifiers), with a decision per group. No I/O here.
//!
//! A group ("component") is every lead connected to another through an equal E.164 phone,
//! normalised email or Messenger PSID. Its decision:
//! - it holds two or more PSIDs: a **conflict**. A PSID is one Messenger account, so two of them
//!   joined through a shared phone or email are two people (a family phone, a shared inbox) as
//!   often as one; they are not merged. Each lead becomes a customer of its own, no identifier is
//!   recorded for them (which of them owns the shared phone is the operator's call), and each is
//!   listed in the report;
//! - its identifiers already belong to two or more customers (made by the service, or by an
//!   earlier backfill for some of its leads, before the original wrote the others): a conflict
//!   too, for the same reason (the operator merges customers, the backfill never does);
//! - they belong to exactly one such customer: the leads join that customer;
//! - otherwise a new customer, whose id is derived from the group's first lead, so that a rerun
//!   after a crash makes the same customer;
//! - a lead with no usable identifier at all becomes a customer of its own, flagged and listed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::identity::{
    IdentityKind, Region, normalize_email, normalize_phone, normalize_psid,
};

/// A lead as the planner sees it.
#[derive(Debug, Clone)]
pub struct PlanLead {
    /// Its id.
    pub id: Uuid,
    /// Its customer, if an earlier run (interrupted or not) linked it.
    pub customer_id: Option<Uuid>,
    /// `sms` or `messenger`.
    pub channel: String,
    /// The name given, if any.
    pub name: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Its normalised identifiers (indexes into [`Planner::identities`]).
    pub identities: Vec<u32>,
    /// The identifier replies go to on its channel (PSID or phone), for the conversation.
    pub external_id: Option<u32>,
    /// Why it has no usable identifier, when it has none.
    pub unusable: Option<String>,
}

/// A normalised identifier seen on leads.
#[derive(Debug, Clone)]
pub struct IdentityInfo {
    /// Its kind.
    pub kind: IdentityKind,
    /// Its normalised value.
    pub value: String,
    /// As typed on the first lead that had it.
    pub raw: String,
    /// That lead's (created_at, id): the earliest sighting.
    pub first: (DateTime<Utc>, Uuid),
    /// Customers the service created that already have it (normally none or one).
    pub owners: BTreeSet<Uuid>,
    /// When a lead first came through it (an SMS lead's phone, a Messenger lead's PSID): the
    /// channel proved it, so it is verified, as the service records what a channel proves. An
    /// identifier only ever typed (an email, a phone given on Messenger) stays unverified.
    pub verified: Option<DateTime<Utc>>,
}

/// Leads and identifiers, interned, ready to be grouped.
#[derive(Debug, Default)]
pub struct Planner {
    /// Every lead in the backfill's domain (unlinked, or linked by the backfill).
    pub leads: Vec<PlanLead>,
    /// Every identifier seen.
    pub identities: Vec<IdentityInfo>,
    index: HashMap<(IdentityKind, String), u32>,
}

/// What becomes of a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A new customer with this id.
    New(Uuid),
    /// The existing customer (made by the service) with this id.
    Existing(Uuid),
    /// Not merged: each lead its own customer; the reason is reported.
    Conflict(String),
    /// A single lead without a usable identifier; the reason is reported.
    NoIdentity(String),
}

/// A group of leads that are one customer (or a conflict).
#[derive(Debug, Clone)]
pub struct Component {
    /// Its leads (indexes into [`Planner::leads`]), in id order.
    pub leads: Vec<u32>,
    /// Its identifiers (indexes into [`Planner::identities`]), earliest sighting first.
    pub identities: Vec<u32>,
    /// What becomes of it.
    pub decision: Decision,
    /// When its earliest lead was created: components are written in this order, so that a
    /// batch reads Audit rows that lie together and writes rows whose ids are close.
    pub first_at: DateTime<Utc>,
}

impl Component {
    /// The first lead's id: orders components, and names the new customer.
    pub fn key(&self, planner: &Planner) -> Uuid {
        planner.leads[self.leads[0] as usize].id
    }
}

/// A stable id derived from a name: the same inputs give the same id on every run.
pub fn derived_id(kind: &str, key: &str) -> Uuid {
    let digest = Sha256::new()
        .chain_update(b"junkquote-backfill:")
        .chain_update(kind.as_bytes())
        .chain_update(b":")
        .chain_update(key.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// A lead's own customer (conflicts and leads without identity).
pub fn lead_customer_id(lead: Uuid) -> Uuid {
    derived_id("lead-customer", &lead.to_string())
}

/// The raw fields of a lead, as the original stored them.
#[derive(Debug, Clone)]
pub struct RawLead {
    /// Its id.
    pub id: Uuid,
    /// Its customer, if linked.
    pub customer_id: Option<Uuid>,
    /// `sms` or `messenger`.
    pub channel: String,
    /// Phone as typed.
    pub phone: Option<String>,
    /// Email as typed.
    pub email: Option<String>,
    /// Messenger PSID.
    pub psid: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// A lead's identifiers, normalised (pure; run on several threads for big batches).
pub fn normalise(
    raw: &RawLead,
    region: Region,
) -> (Vec<(IdentityKind, String, String)>, Option<String>) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    fn present(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }
    if let Some(phone) = present(&raw.phone) {
        match normalize_phone(phone, region) {
            Some(v) => found.push((IdentityKind::Phone, v, phone.to_owned())),
            None => {
                let digits = phone.chars().filter(char::is_ascii_digit).count();
                problems.push(format!("phone is not a valid number ({digits} digits)"));
            }
        }
    }
    if let Some(email) = present(&raw.email) {
        match normalize_email(email) {
            Some(v) => found.push((IdentityKind::Email, v, email.to_owned())),
            None => problems.push("email is not an address".to_owned()),
        }
    }
    if let Some(psid) = present(&raw.psid) {
        match normalize_psid(psid) {
            Some(v) => found.push((IdentityKind::Psid, v, psid.to_owned())),
            None => problems.push("Messenger id is malformed".to_owned()),
        }
    }
    let unusable = found.is_empty().then(|| {
        if problems.is_empty() {
            "no phone, email or Messenger id".to_owned()
        } else {
            problems.join("; ")
        }
    });
    (found, unusable)
}

impl Planner {
    /// Adds a lead with its normalised identifiers.
    pub fn add(
        &mut self,
        raw: RawLead,
        identities: Vec<(IdentityKind, String, String)>,
        unusable: Option<String>,
    ) {
        let mut ids = Vec::with_capacity(identities.len());
        let mut external = None;
        for (kind, value, typed) in identities {
            let sighting = (raw.created_at, raw.id);
            let next = u32::try_from(self.identities.len()).unwrap_or(u32::MAX);
            let index = *self.index.entry((kind, value.clone())).or_insert(next);
            if index == next {
                self.identities.push(IdentityInfo {
                    kind,
                    value,
                    raw: typed,
                    first: sighting,
                    owners: BTreeSet::new(),
                    verified: None,
                });
            } else {
                let info = &mut self.identities[index as usize];
                if sighting < info.first {
                    info.first = sighting;
                    info.raw = typed;
                }
            }
            let wanted = if raw.channel == "messenger" {
                IdentityKind::Psid
            } else {
                IdentityKind::Phone
            };
            if kind == wanted && external.is_none() {
                external = Some(index);
                let info = &mut self.identities[index as usize];
                info.verified = Some(match info.verified {
                    Some(at) => at.min(raw.created_at),
                    None => raw.created_at,
                });
            }
            ids.push(index);
        }
        self.leads.push(PlanLead {
            id: raw.id,
            customer_id: raw.customer_id,
            channel: raw.channel,
            name: raw.name,
            created_at: raw.created_at,
            identities: ids,
            external_id: external,
            unusable,
        });
    }

    /// The index of an identifier, if a lead has it.
    pub fn identity(&self, kind: IdentityKind, value: &str) -> Option<u32> {
        self.index.get(&(kind, value.to_owned())).copied()
    }

    /// Records that a customer made by the service has this identifier.
    pub fn add_owner(&mut self, kind: IdentityKind, value: &str, customer: Uuid) -> bool {
        match self.identity(kind, value) {
            Some(i) => self.identities[i as usize].owners.insert(customer),
            None => false,
        }
    }

    /// Groups the leads into components (transitively), each with its decision, oldest first.
    pub fn components(&self) -> Vec<Component> {
        let leads = self.leads.len();
        let mut parent: Vec<u32> = (0..(leads + self.identities.len()) as u32).collect();
        fn find(parent: &mut [u32], mut x: u32) -> u32 {
            while parent[x as usize] != x {
                let grand = parent[parent[x as usize] as usize];
                parent[x as usize] = grand;
                x = grand;
            }
            x
        }
        for (i, lead) in self.leads.iter().enumerate() {
            for &ident in &lead.identities {
                let a = find(&mut parent, i as u32);
                let b = find(&mut parent, leads as u32 + ident);
                if a != b {
                    // The smaller root wins: the same structure whatever the input order.
                    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
                    parent[hi as usize] = lo;
                }
            }
        }
        let mut groups: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for i in 0..leads as u32 {
            let root = find(&mut parent, i);
            groups.entry(root).or_default().push(i);
        }
        let mut out: Vec<Component> = groups
            .into_values()
            .map(|mut members| {
                members.sort_by_key(|&i| self.leads[i as usize].id);
                let mut identities: Vec<u32> = members
                    .iter()
                    .flat_map(|&i| self.leads[i as usize].identities.iter().copied())
                    .collect::<BTreeSet<u32>>()
                    .into_iter()
                    .collect();
                identities.sort_by(|&a, &b| {
                    let (a, b) = (&self.identities[a as usize], &self.identities[b as usize]);
                    (a.first, a.kind as u8, &a.value).cmp(&(b.first, b.kind as u8, &b.value))
                });
                let decision = self.decide(&members, &identities);
                let first_at = members
                    .iter()
                    .map(|&i| self.leads[i as usize].created_at)
                    .min()
                    .unwrap_or_default();
                Component {
                    leads: members,
                    identities,
                    decision,
                    first_at,
                }
            })
            .collect();
        out.sort_by_key(|c| (c.first_at, c.key(self)));
        out
    }

    /// The decision for a component's leads and identifiers, from what is known now.
    pub fn decide(&self, leads: &[u32], identities: &[u32]) -> Decision {
        let first = &self.leads[leads[0] as usize];
        if identities.is_empty() {
            return Decision::NoIdentity(
                first
                    .unusable
                    .clone()
                    .unwrap_or_else(|| "no phone, email or Messenger id".to_owned()),
            );
        }
        let psids = identities
            .iter()
            .filter(|&&i| self.identities[i as usize].kind == IdentityKind::Psid)
            .count();
        if psids > 1 {
            return Decision::Conflict(format!(
                "{psids} different Messenger ids are joined through a shared phone or email \
                 across {} leads; not merged, each lead is its own customer until the operator \
                 merges them",
                leads.len()
            ));
        }
        // The customers these leads already have: those the service made that hold one of the
        // identifiers, and the one an earlier backfill gave some of the leads (a lead the
        // original wrote since joins it rather than making a second customer). A lead an
        // earlier run made a customer of its own (a conflict) lends its customer to no one.
        let owners: BTreeSet<Uuid> = identities
            .iter()
            .flat_map(|&i| self.identities[i as usize].owners.iter().copied())
            .chain(leads.iter().filter_map(|&i| {
                let lead = &self.leads[i as usize];
                lead.customer_id.filter(|&c| c != lead_customer_id(lead.id))
            }))
            .collect();
        match owners.len() {
            0 => Decision::New(derived_id("customer", &first.id.to_string())),
            1 => Decision::Existing(owners.into_iter().next().unwrap_or_default()),
            n => Decision::Conflict(format!(
                "its leads' phone, email or Messenger id already belong to {n} different \
                 customers ({}); not merged, each lead is its own customer until the operator \
                 merges them",
                owners
                    .iter()
                    .map(Uuid::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead(
        n: u128,
        channel: &str,
        phone: Option<&str>,
        email: Option<&str>,
        psid: Option<&str>,
    ) -> RawLead {
        RawLead {
            id: Uuid::from_u128(n),
            customer_id: None,
            channel: channel.to_owned(),
            phone: phone.map(str::to_owned),
            email: email.map(str::to_owned),
            psid: psid.map(str::to_owned),
            name: None,
            created_at: DateTime::<Utc>::from_timestamp(1_700_000_000 + n as i64, 0)
                .unwrap_or_default(),
        }
    }

    fn plan(leads: Vec<RawLead>) -> (Planner, Vec<Component>) {
        let mut planner = Planner::default();
        for raw in leads {
            let (ids, unusable) = normalise(&raw, Region::US);
            planner.add(raw, ids, unusable);
        }
        let components = planner.components();
        (planner, components)
    }

    #[test]
    fn a_phone_an_email_and_both_link_three_leads_transitively() {
        let (_, components) = plan(vec![
            lead(1, "sms", Some("(404) 555-0123"), None, None),
            lead(
                2,
                "sms",
                Some("+1 404 555 0123"),
                Some(" Ann@Example.COM "),
                None,
            ),
            lead(3, "messenger", None, Some("ann@example.com"), Some("123")),
            lead(4, "sms", Some("404.555.0199"), None, None),
        ]);
        assert_eq!(components.len(), 2);
        assert_eq!(components[0].leads, vec![0, 1, 2]);
        assert!(matches!(components[0].decision, Decision::New(_)));
        assert_eq!(components[1].leads, vec![3]);
    }

    #[test]
    fn two_messenger_ids_joined_by_a_phone_are_a_conflict_not_a_merge() {
        let (_, components) = plan(vec![
            lead(1, "messenger", Some("4045550123"), None, Some("111")),
            lead(2, "messenger", Some("404-555-0123"), None, Some("222")),
        ]);
        assert_eq!(components.len(), 1);
        assert!(
            matches!(&components[0].decision, Decision::Conflict(r) if r.contains("2 different Messenger ids"))
        );
    }

    #[test]
    fn a_three_digit_phone_is_no_identity_with_its_reason() {
        let (_, components) = plan(vec![lead(1, "sms", Some("555"), None, None)]);
        assert_eq!(
            components[0].decision,
            Decision::NoIdentity("phone is not a valid number (3 digits)".into())
        );
    }

    #[test]
    fn identifiers_owned_by_two_existing_customers_are_a_conflict() {
        let mut planner = Planner::default();
        let raw = lead(1, "sms", Some("4045550123"), Some("a@b.co"), None);
        let (ids, unusable) = normalise(&raw, Region::US);
        planner.add(raw, ids, unusable);
        assert!(planner.add_owner(IdentityKind::Phone, "+14045550123", Uuid::from_u128(9)));
        assert_eq!(
            planner.components()[0].decision,
            Decision::Existing(Uuid::from_u128(9))
        );
        assert!(planner.add_owner(IdentityKind::Email, "a@b.co", Uuid::from_u128(8)));
        assert!(matches!(
            planner.components()[0].decision,
            Decision::Conflict(_)
        ));
    }

    #[test]
    fn a_lead_written_after_a_backfill_joins_the_customer_it_made() {
        let made = Uuid::from_u128(77);
        let mut earlier = lead(9, "sms", Some("4045550123"), None, None);
        earlier.customer_id = Some(made);
        // The new lead's id sorts first, so a fresh decision would name a new customer after it.
        let (_, components) = plan(vec![
            earlier.clone(),
            lead(1, "sms", Some("404-555-0123"), None, None),
        ]);
        assert_eq!(components[0].decision, Decision::Existing(made));

        let mut other = lead(8, "sms", None, Some("ann@example.com"), None);
        other.customer_id = Some(Uuid::from_u128(78));
        let (_, components) = plan(vec![
            earlier,
            other,
            lead(1, "sms", Some("4045550123"), Some("ann@example.com"), None),
        ]);
        assert!(
            matches!(&components[0].decision, Decision::Conflict(r) if r.contains("2 different customers"))
        );

        // The service made a customer for the email meanwhile: that and the backfill's
        // customer are two, not merged.
        let mut planner = Planner::default();
        for raw in [
            lead(9, "sms", Some("4045550123"), None, None),
            lead(1, "sms", Some("4045550123"), Some("ann@example.com"), None),
        ] {
            let (ids, unusable) = normalise(&raw, Region::US);
            let mut raw = raw;
            if raw.id == Uuid::from_u128(9) {
                raw.customer_id = Some(made);
            }
            planner.add(raw, ids, unusable);
        }
        assert!(planner.add_owner(IdentityKind::Email, "ann@example.com", Uuid::from_u128(5)));
        assert!(matches!(
            planner.components()[0].decision,
            Decision::Conflict(_)
        ));

        // A lead an earlier run made a customer of its own (a conflict) lends it to no one.
        let mut alone = lead(9, "sms", Some("4045550123"), None, None);
        alone.customer_id = Some(lead_customer_id(alone.id));
        let (_, components) = plan(vec![alone, lead(1, "sms", Some("4045550123"), None, None)]);
        assert!(matches!(components[0].decision, Decision::New(_)));
    }

    #[test]
    fn the_plan_does_not_depend_on_the_order_leads_are_read_in() {
        let leads = vec![
            lead(5, "sms", Some("4045550123"), None, None),
            lead(3, "sms", None, Some("x@y.co"), None),
            lead(4, "sms", Some("404 555 0123"), Some("X@Y.co"), None),
        ];
        let (p1, c1) = plan(leads.clone());
        let (p2, c2) = plan(leads.into_iter().rev().collect());
        let ids = |p: &Planner, c: &[Component]| -> Vec<(Decision, Vec<Uuid>)> {
            c.iter()
                .map(|c| {
                    (
                        c.decision.clone(),
                        c.leads.iter().map(|&i| p.leads[i as usize].id).collect(),
                    )
                })
                .collect()
        };
        assert_eq!(ids(&p1, &c1), ids(&p2, &c2));
    }
}
