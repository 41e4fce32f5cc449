//! The content fingerprint of a policy: FNV-1a 64 over a canonical serialisation, so two
//! files that say the same thing (whatever their comments, layout or entry order) share
//! it and any change of meaning changes it.
//!
//! It is an identifier for "which policy was in force", never a security hash: FNV does
//! not resist someone crafting a collision, and nothing may rely on it for integrity
//! (the ledger's signatures do that).

use crate::policy::{Grant, Policy};

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64 bits.
pub fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(FNV_PRIME)
    })
}

/// `fnv1a64:` and 16 hex digits over the canonical form of `policy`.
pub(crate) fn fingerprint_of(policy: &Policy) -> String {
    let mut canonical = policy.clone();
    canonical.fingerprint.clear();
    canonical.origin.clear();
    // Entry order carries no meaning: sort every list by name. Struct fields serialise in
    // declaration order and maps are BTreeMaps, so the JSON text is canonical.
    canonical
        .categories
        .sort_by(|left, right| left.name.cmp(&right.name));
    canonical
        .purposes
        .sort_by(|left, right| left.name.cmp(&right.name));
    for purpose in &mut canonical.purposes {
        purpose.categories.sort();
        purpose.categories.dedup();
        purpose.data_subjects.sort();
        purpose.data_subjects.dedup();
        purpose.recipients.sort();
        purpose.recipients.dedup();
    }
    canonical
        .roles
        .sort_by(|left, right| left.name.cmp(&right.name));
    for role in &mut canonical.roles {
        sort_grant(&mut role.actions);
        sort_grant(&mut role.purposes);
        sort_grant(&mut role.categories);
    }
    canonical
        .recipients
        .sort_by(|left, right| left.name.cmp(&right.name));
    canonical.transfers.sort_by(|left, right| {
        (&left.recipient, &left.country).cmp(&(&right.recipient, &right.country))
    });
    canonical.security_measures.sort();
    canonical.recommendations.never.sort();
    // Serialising plain data to a Vec cannot fail; an empty text would still hash.
    let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
    format!("fnv1a64:{:016x}", fnv1a_64(&bytes))
}

fn sort_grant<T: Ord>(grant: &mut Grant<T>) {
    if let Grant::Only(names) = grant {
        names.sort();
        names.dedup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_64_matches_the_published_test_vectors() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
