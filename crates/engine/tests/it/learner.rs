//! Readers never wait for learning: an ingest answers once its batch is durable, the
//! learner teaches the models in short steps, and a reader's call completes between them —
//! while a hostile customer's 10,000 distinct items are still being learned. Rebuilding
//! from the same events gives the same answers, past the bounded contribution too.

use std::sync::atomic::{AtomicBool, Ordering};

use discreet_engine::EventContext;

use crate::support::*;

const HOSTILE: &str = "hostile-9d2c";

/// Guards that a reader's call completes while a hostile batch is being learned (no timing
/// assertion: the reader counts the calls that started and ended while the learner still
/// had the batch pending, and at least one must have).
#[test]
fn a_reader_completes_while_a_hostile_batch_is_being_learned() {
    let shop = Shop::generate(5, 40, 60, "reader");
    let mut everyone = shop.customers.clone();
    everyone.push(HOSTILE.to_owned());
    let engine = engine_with(&everyone, &shop.events);
    let reader = shop.customers[0].clone();
    let hostile: Vec<Vec<_>> = (0..3)
        .map(|batch| {
            (0..10_000)
                .map(|item| {
                    event(
                        HOSTILE,
                        "view",
                        &format!("hostile-item-{batch}-{item}"),
                        days_ago(1.0) + item as i64,
                    )
                })
                .collect()
        })
        .collect();
    let finished = AtomicBool::new(false);
    let reads_during_learning = std::thread::scope(|scope| {
        let reads = scope.spawn(|| {
            let mut during = 0u32;
            while !finished.load(Ordering::SeqCst) {
                let pending_before = engine.figures().events_waiting_to_be_learned;
                let answer = engine
                    .recommend(
                        &storefront(),
                        &reader,
                        "personalization",
                        10,
                        &EventContext::default(),
                    )
                    .expect("a reader is answered");
                assert!(answer.personalized);
                let pending_after = engine.figures().events_waiting_to_be_learned;
                if pending_before > 0 && pending_after > 0 {
                    during += 1;
                }
            }
            during
        });
        for batch in &hostile {
            // Straight to the engine: the support helper would wait for the learner.
            engine.ingest(&storefront(), batch, None).expect("stored");
        }
        engine.settle();
        finished.store(true, Ordering::SeqCst);
        reads.join().expect("reader")
    });
    assert!(
        reads_during_learning > 0,
        "no read completed while the hostile batches were being learned"
    );
    assert_eq!(engine.figures().events_waiting_to_be_learned, 0);
    assert_eq!(engine.figures().learn_failures, 0);

    // What was learned incrementally, past the bound, equals a rebuild of the same events.
    let items: Vec<String> = shop.items.clone();
    let learned = answers(&engine, &everyone, &items);
    let engine = engine.reopen();
    let rebuilt = answers(&engine, &everyone, &items);
    assert_same_answers(
        "learned vs rebuilt after a hostile subject",
        &learned,
        &rebuilt,
    );
}
