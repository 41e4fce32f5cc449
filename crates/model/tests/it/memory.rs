//! What the models hold grows by at most the bounded contribution when one subject sends
//! thousands of distinct items. Measured with the test binary's allocator, counting the
//! bytes allocated and freed on the measuring thread (the learning here runs on it).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use discreet_model::{Context, Interaction, InteractionKind, ModelSet, ModelSetConfig};

/// The system allocator, counting live bytes per thread.
pub struct PerThreadCounter;

thread_local! {
    static LIVE_BYTES: Cell<i64> = const { Cell::new(0) };
}

fn count(delta: i64) {
    // `try_with`: a thread being torn down still frees memory, after its counter is gone.
    let _ = LIVE_BYTES.try_with(|live| live.set(live.get() + delta));
}

unsafe impl GlobalAlloc for PerThreadCounter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as i64);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        count(-(layout.size() as i64));
        unsafe { System.dealloc(pointer, layout) }
    }
    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as i64 - layout.size() as i64);
        unsafe { System.realloc(pointer, layout, new_size) }
    }
}

fn live_bytes() -> i64 {
    LIVE_BYTES.with(Cell::get)
}

fn purchase(set: &mut ModelSet, subject: &str, item: &str, at: i64) -> Interaction {
    Interaction {
        subject: set.subject(subject),
        item: set.item(item),
        at,
        kind: InteractionKind::Purchase,
        quantity: 1,
        context: Context::default(),
    }
}

/// The hostile subject of the "what fast means" table: one consenting subject sends 10,000
/// distinct items no one else holds, in one batch. The models' memory may grow by at most
/// 10 MiB (without the bound, EASE alone would grow by 10,000 slots: over a gigabyte).
#[test]
fn one_subject_sending_ten_thousand_distinct_items_grows_the_models_by_at_most_the_bound() {
    let config = ModelSetConfig::default();
    let bound = config.ease.max_contributed_items;
    let mut set = ModelSet::new(config).unwrap();
    // A shop of 1,500 items and 600 customers with baskets of 12.
    let mut shop = Vec::new();
    for customer in 0..600u32 {
        for line in 0..12u32 {
            let item = (customer * 7 + line * 131) % 1_500;
            let name = format!("customer-{customer}");
            shop.push(purchase(
                &mut set,
                &name,
                &format!("item-{item}"),
                86_400 + line as i64,
            ));
        }
    }
    set.learn_all(&shop).unwrap();
    let hostile: Vec<Interaction> = (0..10_000)
        .map(|item| {
            purchase(
                &mut set,
                "hostile",
                &format!("new-item-{item}"),
                90_000 + item as i64,
            )
        })
        .collect();

    let before = live_bytes();
    set.learn_batch(&hostile).unwrap();
    set.refresh().unwrap();
    let grown = live_bytes() - before;

    let ease = set.ease().expect("EASE is kept for this catalogue");
    assert!(ease.scorable());
    assert!(
        ease.dimension() <= 1_500 + bound,
        "at most {bound} new slots"
    );
    assert!(
        grown <= 10 * 1024 * 1024,
        "the models grew by {grown} bytes for one subject's 10,000 items"
    );
}
