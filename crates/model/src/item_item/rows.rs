//! Operations on one co-occurrence row — `(other item, count)` pairs, ascending by item,
//! no zeros — each one merge pass or one branch-free sweep. Rows are kept sorted and free
//! of zero counts by every operation here.

/// The items of `sorted` (ascending) that are not in `removed` (ascending), in one pass.
pub(crate) fn difference(sorted: &[u32], removed: &[u32]) -> Vec<u32> {
    let mut next = 0;
    sorted
        .iter()
        .copied()
        .filter(|&item| {
            while next < removed.len() && removed[next] < item {
                next += 1;
            }
            next >= removed.len() || removed[next] != item
        })
        .collect()
}

/// Adds one to the count of every item of `sorted_items` (ascending) except `skip`, in one
/// merge pass; `merged` is a reusable buffer.
pub(crate) fn add_sorted(
    row: &mut Vec<(u32, u32)>,
    sorted_items: &[u32],
    skip: u32,
    merged: &mut Vec<(u32, u32)>,
) {
    merged.clear();
    merged.reserve(row.len() + sorted_items.len());
    let mut existing = row.iter().peekable();
    for &item in sorted_items.iter().filter(|&&item| item != skip) {
        while let Some(&&(other, count)) = existing.peek() {
            if other >= item {
                break;
            }
            merged.push((other, count));
            existing.next();
        }
        match existing.peek() {
            Some(&&(other, count)) if other == item => {
                merged.push((other, count + 1));
                existing.next();
            }
            _ => merged.push((item, 1)),
        }
    }
    merged.extend(existing.copied());
    std::mem::swap(row, merged);
}

/// Subtracts one from the count of every entry whose item is a member, dropping zeros
/// (a row never holds its own item, so no skip is needed).
pub(crate) fn subtract_members(row: &mut Vec<(u32, u32)>, is_member: &[bool]) {
    // Branch-free compaction: a forgotten wholesaler touches millions of entries.
    let mut kept = 0;
    for index in 0..row.len() {
        let (item, count) = row[index];
        let count = count - u32::from(is_member[item as usize]);
        row[kept] = (item, count);
        kept += usize::from(count > 0);
    }
    row.truncate(kept);
}

/// Subtracts one from the count of every item of `sorted_items` (ascending) except `skip`,
/// dropping counts that reach zero; one merge pass over the row.
pub(crate) fn subtract_sorted(row: &mut Vec<(u32, u32)>, sorted_items: &[u32], skip: u32) {
    let mut next = 0;
    row.retain_mut(|(item, count)| {
        while next < sorted_items.len() && sorted_items[next] < *item {
            next += 1;
        }
        if next < sorted_items.len() && sorted_items[next] == *item && *item != skip {
            *count -= 1;
        }
        *count > 0
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_sorted_increments_matches_and_inserts_new_items_in_order() {
        let mut row = vec![(1, 2), (5, 4)];
        let mut buffer = Vec::new();
        add_sorted(&mut row, &[0, 1, 3, 5, 7], 3, &mut buffer);
        assert_eq!(row, vec![(0, 1), (1, 3), (5, 5), (7, 1)]);
    }

    #[test]
    fn difference_keeps_what_the_other_list_lacks() {
        assert_eq!(difference(&[1, 2, 4, 7, 9], &[0, 2, 7, 8]), vec![1, 4, 9]);
        assert_eq!(difference(&[], &[1]), Vec::<u32>::new());
    }

    #[test]
    fn subtract_sorted_decrements_matches_and_drops_zeros() {
        let mut row = vec![(1, 2), (3, 1), (5, 4), (9, 1)];
        subtract_sorted(&mut row, &[0, 1, 3, 5, 7], 5);
        assert_eq!(row, vec![(1, 1), (5, 4), (9, 1)]);
    }
}
