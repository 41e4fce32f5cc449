//! Interned ids: items and subjects are `u32` inside every model; strings exist only at
//! the edge, in the `Catalogue` and `Subjects` interners. Subject names are the shop's
//! customer ids, so `Subjects` can release a name (on forget) and reuse its id slot.

use std::collections::HashMap;

/// Dense id of a catalogue item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemId(pub u32);

/// Dense id of a subject (a customer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubjectId(pub u32);

impl ItemId {
    /// The id as a vector index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl SubjectId {
    /// The id as a vector index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A string interner handing out dense `u32` ids. A released id is never handed out again:
/// a late interaction still carrying a forgotten subject's id can then never attach to
/// somebody else.
#[derive(Clone, Debug, Default)]
pub struct Interner {
    ids_by_name: HashMap<Box<str>, u32>,
    names: Vec<Option<Box<str>>>,
}

impl Interner {
    /// The id of `name`, assigning a new one if it is unknown.
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids_by_name.get(name) {
            return id;
        }
        self.names.push(Some(name.into()));
        let id = (self.names.len() - 1) as u32;
        self.ids_by_name.insert(name.into(), id);
        id
    }

    /// The id of `name`, if known.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.ids_by_name.get(name).copied()
    }

    /// The name of `id`, if it is in use.
    pub fn name(&self, id: u32) -> Option<&str> {
        self.names.get(id as usize).and_then(|name| name.as_deref())
    }

    /// Forgets `name`; its id stays retired.
    pub fn release(&mut self, name: &str) -> Option<u32> {
        let id = self.ids_by_name.remove(name)?;
        self.names[id as usize] = None;
        Some(id)
    }

    /// Number of names in use.
    pub fn len(&self) -> usize {
        self.ids_by_name.len()
    }

    /// True when no name is in use.
    pub fn is_empty(&self) -> bool {
        self.ids_by_name.is_empty()
    }

    /// One past the largest id ever handed out (the size of an id-indexed vector).
    pub fn id_bound(&self) -> usize {
        self.names.len()
    }
}

/// The interned catalogue: item codes to `ItemId`. Items are never released.
#[derive(Clone, Debug, Default)]
pub struct Catalogue {
    interner: Interner,
}

impl Catalogue {
    /// The id of item `code`, adding it to the catalogue if new.
    pub fn intern(&mut self, code: &str) -> ItemId {
        ItemId(self.interner.intern(code))
    }
    /// The id of item `code`, if known.
    pub fn get(&self, code: &str) -> Option<ItemId> {
        self.interner.get(code).map(ItemId)
    }
    /// The code of `item`.
    pub fn code(&self, item: ItemId) -> Option<&str> {
        self.interner.name(item.0)
    }
    /// Number of items.
    pub fn len(&self) -> usize {
        self.interner.len()
    }
    /// True when the catalogue is empty.
    pub fn is_empty(&self) -> bool {
        self.interner.is_empty()
    }
}

/// The interned subjects: the shop's customer ids to `SubjectId`, releasable on forget.
#[derive(Clone, Debug, Default)]
pub struct Subjects {
    interner: Interner,
}

impl Subjects {
    /// The id of subject `name`, assigning one if new.
    pub fn intern(&mut self, name: &str) -> SubjectId {
        SubjectId(self.interner.intern(name))
    }
    /// The id of subject `name`, if known.
    pub fn get(&self, name: &str) -> Option<SubjectId> {
        self.interner.get(name).map(SubjectId)
    }
    /// The name of `subject`.
    pub fn name(&self, subject: SubjectId) -> Option<&str> {
        self.interner.name(subject.0)
    }
    /// Releases `name` after its subject was forgotten; returns its former id.
    pub fn release(&mut self, name: &str) -> Option<SubjectId> {
        self.interner.release(name).map(SubjectId)
    }
    /// Number of subjects.
    pub fn len(&self) -> usize {
        self.interner.len()
    }
    /// True when there are no subjects.
    pub fn is_empty(&self) -> bool {
        self.interner.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_subject_ids_are_never_reused_and_names_are_gone() {
        let mut subjects = Subjects::default();
        let first = subjects.intern("alice");
        let second = subjects.intern("bob");
        assert_ne!(first, second);
        assert_eq!(subjects.intern("alice"), first);
        assert_eq!(subjects.release("alice"), Some(first));
        assert_eq!(subjects.get("alice"), None);
        assert_eq!(subjects.name(first), None);
        // A late interaction carrying the released id must never attach to a new customer.
        let third = subjects.intern("carol");
        assert_ne!(third, first);
        assert_ne!(third, second);
        assert_eq!(subjects.name(first), None);
        assert_eq!(
            subjects.intern("alice"),
            SubjectId(3),
            "a returning customer starts afresh"
        );
        assert_eq!(subjects.len(), 3);
    }
}
