//! A deterministic synthetic shop, for figures at sizes no public file reaches: items with a
//! long-tailed (Zipf-like) popularity grouped in clusters, customers with a few taste
//! clusters (so co-occurrence carries signal a model can learn) and a heavy-tailed number of
//! baskets, baskets of several items viewed and bought together, a year of seasonal drift,
//! and a few heavy customers who buy thousands of distinct items. The same shape and seed
//! always give the same events. Events stream from an iterator in time order; the generator
//! holds a few counters, never the events. It only computes: no file, no vault, no clock
//! (the caller says when the year ends).

mod random;
#[cfg(test)]
mod tests;

use random::{SplitMix, mix, zipf_rank};

use crate::split::{Purchase, Splits};

/// The seed [`ShopShape::new`] uses.
pub const DEFAULT_SEED: u64 = 0x5eed_0f05_4009;
/// Seconds in a day.
const DAY: i64 = 86_400;
/// Items per cluster, about.
const ITEMS_PER_CLUSTER: u32 = 200;
/// Zipf exponent of popularity within a cluster.
const ITEM_EXPONENT: f64 = 1.1;
/// Zipf exponent of cluster popularity (when tastes and explorations pick a cluster).
const CLUSTER_EXPONENT: f64 = 0.8;
/// Share of a customer's baskets that explore a cluster outside their tastes.
const EXPLORATION: f64 = 0.15;
/// Countries customers live in, most in the first.
const COUNTRIES: [&str; 6] = [
    "United Kingdom",
    "United Kingdom",
    "United Kingdom",
    "Germany",
    "France",
    "Netherlands",
];

/// What a synthetic event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyntheticKind {
    View,
    Purchase,
}

/// One event of the synthetic shop; names come from [`ShopShape::customer_name`] and
/// [`ShopShape::item_name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyntheticEvent {
    /// Customer index, `0..customers`.
    pub customer: u32,
    /// Item index, `0..items`.
    pub item: u32,
    pub kind: SyntheticKind,
    /// Unix seconds, inside the shape's year.
    pub at: i64,
    /// Units bought (1 for a view).
    pub quantity: u32,
}

/// The size and seed of a synthetic shop, and the end of its year.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShopShape {
    pub items: u32,
    pub customers: u32,
    pub events: u64,
    pub seed: u64,
    /// The last event's time, Unix seconds (e.g. yesterday, so the whole year is inside
    /// every category's retention).
    pub end: i64,
    /// Days the events span, ending at `end`.
    pub span_days: u32,
}

impl ShopShape {
    /// A shop of this size over the year ending at `end`, with the default seed.
    pub fn new(items: u32, customers: u32, events: u64, end: i64) -> ShopShape {
        ShopShape {
            items: items.max(1),
            customers: customers.max(1),
            events,
            seed: DEFAULT_SEED,
            end,
            span_days: 365,
        }
    }

    /// The same shop at a tenth of its size (items, customers and events), same seed.
    pub fn tenth(&self) -> ShopShape {
        ShopShape {
            items: (self.items / 10).max(1),
            customers: (self.customers / 10).max(1),
            events: self.events / 10,
            ..*self
        }
    }

    /// The first second of the shop's year.
    pub fn start(&self) -> i64 {
        self.end - i64::from(self.span_days.max(1)) * DAY
    }

    /// How many heavy customers (customer indexes `0..heavy`) the shop has: one per
    /// 100,000 customers, at least one beside any ordinary customer.
    pub fn heavy_customers(&self) -> u32 {
        if self.customers < 2 {
            0
        } else {
            (self.customers / 100_000).max(1)
        }
    }

    /// Number of item clusters.
    pub fn clusters(&self) -> u32 {
        (self.items / ITEMS_PER_CLUSTER).clamp(1, 4_096)
    }

    /// The cluster an item belongs to.
    pub fn cluster_of(&self, item: u32) -> u32 {
        item % self.clusters()
    }

    /// A customer's name, as the shop would send it.
    pub fn customer_name(&self, customer: u32) -> String {
        format!("s-{customer}")
    }

    /// An item's name (its stock code).
    pub fn item_name(&self, item: u32) -> String {
        format!("{}", 100_000 + u64::from(item))
    }

    /// The country a customer shops from.
    pub fn country_of(&self, customer: u32) -> &'static str {
        COUNTRIES[(mix(self.seed ^ 0xc0_u64.wrapping_mul(u64::from(customer) + 1))
            % COUNTRIES.len() as u64) as usize]
    }

    /// The events, in time order.
    pub fn stream(&self) -> ShopEvents {
        ShopEvents::new(*self)
    }

    /// The cutoff of the test period: the last 30 days are tested (or the last tenth of a
    /// shorter year).
    pub fn test_cutoff(&self) -> i64 {
        self.end - (i64::from(self.span_days) * DAY / 10).min(30 * DAY)
    }

    /// Where the validation month starts: as long before the test cutoff as the test
    /// period is long.
    pub fn validation_start(&self) -> i64 {
        self.test_cutoff() - (self.end - self.test_cutoff())
    }

    /// The customers' taste clusters (one to three), from a hash of the customer.
    fn tastes(&self, customer: u32) -> [u32; 3] {
        let mut rng = SplitMix::new(self.seed ^ mix(u64::from(customer).wrapping_add(0x7a57)));
        let clusters = self.clusters();
        let mut tastes = [0; 3];
        for taste in &mut tastes {
            *taste = zipf_rank(&mut rng, clusters, CLUSTER_EXPONENT);
        }
        // One to three distinct tastes: a draw of 0 or 1 repeats the first cluster.
        match rng.below(3) {
            0 => [tastes[0]; 3],
            1 => [tastes[0], tastes[1], tastes[0]],
            _ => tastes,
        }
    }

    /// A cluster's season: its peak (a fraction of the year) and how strongly it peaks.
    fn season_of(&self, cluster: u32) -> (f64, f64) {
        let hash = mix(self.seed ^ mix(u64::from(cluster).wrapping_add(0x5ea5)));
        let peak = (hash >> 11) as f64 / (1u64 << 53) as f64;
        // A quarter of the clusters are strongly seasonal (Christmas, summer...).
        let amplitude = if hash.is_multiple_of(4) { 0.9 } else { 0.15 };
        (peak, amplitude)
    }
}

/// Items a heavy customer buys in one basket, at least.
const HEAVY_BASKET_MIN: u64 = 20;
/// Events a heavy customer sends over the year, about (fewer in a small shop).
const HEAVY_EVENTS: u64 = 6_000;
/// A first guess of events per ordinary basket, replaced by the running mean.
const EVENTS_PER_BASKET_GUESS: f64 = 7.0;
/// How much busier the busiest time of year is than the quietest (time warp strength).
const VOLUME_SEASONALITY: f64 = 0.3;

/// The events of a [`ShopShape`], in time order; see the module doc for their structure.
pub struct ShopEvents {
    shape: ShopShape,
    rng: SplitMix,
    emitted: u64,
    basket: Vec<SyntheticEvent>,
    position: usize,
    heavy: u32,
    heavy_target: u64,
    heavy_emitted: u64,
    /// Ordinary customers seen so far (indexes `heavy..heavy + introduced`).
    introduced: u32,
    ordinary_emitted: u64,
    ordinary_baskets: u64,
}

impl ShopEvents {
    fn new(shape: ShopShape) -> ShopEvents {
        let shape = ShopShape {
            items: shape.items.max(1),
            customers: shape.customers.max(1),
            ..shape
        };
        let heavy = shape.heavy_customers();
        let heavy_target = (u64::from(heavy) * HEAVY_EVENTS).min(shape.events / 10);
        ShopEvents {
            shape,
            rng: SplitMix::new(shape.seed),
            emitted: 0,
            basket: Vec::with_capacity(64),
            position: 0,
            heavy,
            heavy_target,
            heavy_emitted: 0,
            introduced: 0,
            ordinary_emitted: 0,
            ordinary_baskets: 0,
        }
    }

    /// Events emitted so far.
    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    fn next_basket(&mut self) {
        self.basket.clear();
        self.position = 0;
        let shape = self.shape;
        let progress = self.emitted as f64 / shape.events.max(1) as f64;
        // Busier at the ends of the year ending at `end` (the season before it), quieter
        // in the middle: time advances slowly where baskets are dense.
        let warped = progress
            - VOLUME_SEASONALITY * (std::f64::consts::TAU * progress).sin() / std::f64::consts::TAU;
        let span = (shape.end - shape.start()) as f64;
        let at = shape.start() + (span * warped.clamp(0.0, 1.0)) as i64;
        let heavy_basket = (self.heavy_emitted as f64) < self.heavy_target as f64 * progress;
        if heavy_basket {
            self.heavy_basket(at);
            self.heavy_emitted += self.basket.len() as u64;
        } else {
            self.ordinary_basket(at);
            self.ordinary_emitted += self.basket.len() as u64;
            self.ordinary_baskets += 1;
        }
        let left = shape.events - self.emitted;
        self.basket
            .truncate(usize::try_from(left).unwrap_or(usize::MAX));
        for (offset, event) in self.basket.iter_mut().enumerate() {
            event.at = (at + 45 * offset as i64).min(shape.end);
        }
        self.emitted += self.basket.len() as u64;
    }

    /// A reseller's basket: dozens of items from anywhere in the catalogue.
    fn heavy_basket(&mut self, at: i64) {
        let customer = self.rng.below(u64::from(self.heavy)) as u32;
        let n_items = HEAVY_BASKET_MIN + self.rng.below(41);
        for _ in 0..n_items {
            let item = self.rng.below(u64::from(self.shape.items)) as u32;
            if self.rng.unit() < 0.3 {
                self.push(customer, item, SyntheticKind::View, at, 1);
            }
            let quantity = 1 + self.rng.below(24) as u32;
            self.push(customer, item, SyntheticKind::Purchase, at, quantity);
        }
    }

    /// An ordinary customer's visit: a few items of one cluster (sometimes a second of
    /// their tastes) viewed, most of them bought, and a little browsing.
    fn ordinary_basket(&mut self, at: i64) {
        let shape = self.shape;
        let ordinary = shape.customers - self.heavy;
        let customer = self.heavy + self.ordinary_customer(ordinary);
        let tastes = shape.tastes(customer);
        let year_fraction = (at.rem_euclid(365 * DAY)) as f64 / (365 * DAY) as f64;
        let cluster = self.seasonal_cluster(&tastes, year_fraction);
        let mut n_bought = 1;
        while n_bought < 12 && self.rng.unit() < 0.7 {
            n_bought += 1;
        }
        let n_browsed = self.rng.below(3);
        for _ in 0..n_browsed {
            let item = self.item_of(cluster);
            self.push(customer, item, SyntheticKind::View, at, 1);
        }
        for _ in 0..n_bought {
            let cluster = if self.rng.unit() < 0.25 {
                tastes[self.rng.below(3) as usize]
            } else {
                cluster
            };
            let item = self.item_of(cluster);
            if self.rng.unit() < 0.6 {
                self.push(customer, item, SyntheticKind::View, at, 1);
            }
            let quantity = match self.rng.below(10) {
                0 => 6,
                1 => 12,
                draw => 1 + (draw % 3) as u32,
            };
            self.push(customer, item, SyntheticKind::Purchase, at, quantity);
        }
    }

    /// Which ordinary customer (`0..ordinary`) visits: a new one at the pace that brings in
    /// every customer by the end of the year, else a returning one, the earliest (most
    /// loyal) far more often than the latest, so baskets per customer are heavy-tailed.
    fn ordinary_customer(&mut self, ordinary: u32) -> u32 {
        let remaining_new = ordinary - self.introduced;
        if remaining_new > 0 {
            let mean = if self.ordinary_baskets == 0 {
                EVENTS_PER_BASKET_GUESS
            } else {
                self.ordinary_emitted as f64 / self.ordinary_baskets as f64
            };
            let heavy_left = self.heavy_target.saturating_sub(self.heavy_emitted);
            let events_left = self
                .shape
                .events
                .saturating_sub(self.emitted)
                .saturating_sub(heavy_left);
            // Paced to bring the last new customer in a little before the end, so that a
            // truncated last basket cannot leave one out.
            let baskets_left = (0.95 * events_left as f64 / mean).max(1.0);
            if self.introduced == 0 || self.rng.unit() < f64::from(remaining_new) / baskets_left {
                self.introduced += 1;
                return self.introduced - 1;
            }
        }
        let draw = self.rng.unit();
        ((f64::from(self.introduced) * draw * draw) as u32).min(self.introduced.max(1) - 1)
    }

    /// One of the customer's tastes (or, sometimes, any cluster), favouring clusters in
    /// season at `year_fraction`.
    fn seasonal_cluster(&mut self, tastes: &[u32; 3], year_fraction: f64) -> u32 {
        let clusters = self.shape.clusters();
        let mut cluster = tastes[0];
        for _ in 0..4 {
            cluster = if self.rng.unit() < EXPLORATION {
                zipf_rank(&mut self.rng, clusters, CLUSTER_EXPONENT)
            } else {
                tastes[self.rng.below(3) as usize]
            };
            let (peak, amplitude) = self.shape.season_of(cluster);
            let in_season =
                1.0 + amplitude * (std::f64::consts::TAU * (year_fraction - peak)).cos();
            if self.rng.unit() * (1.0 + amplitude) < in_season {
                break;
            }
        }
        cluster
    }

    /// An item of `cluster`, the cluster's head far more often than its tail.
    fn item_of(&mut self, cluster: u32) -> u32 {
        let clusters = self.shape.clusters();
        let items = self.shape.items;
        // Items `cluster, cluster + clusters, ...` below `items`.
        let size = (items - 1 - cluster) / clusters + 1;
        let rank = zipf_rank(&mut self.rng, size, ITEM_EXPONENT);
        rank * clusters + cluster
    }

    fn push(&mut self, customer: u32, item: u32, kind: SyntheticKind, at: i64, quantity: u32) {
        self.basket.push(SyntheticEvent {
            customer,
            item,
            kind,
            at,
            quantity,
        });
    }
}

impl Iterator for ShopEvents {
    type Item = SyntheticEvent;

    fn next(&mut self) -> Option<SyntheticEvent> {
        loop {
            if let Some(event) = self.basket.get(self.position) {
                self.position += 1;
                return Some(*event);
            }
            if self.emitted >= self.shape.events {
                return None;
            }
            self.next_basket();
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.shape.events - self.emitted) as usize + self.basket.len() - self.position;
        (left, Some(left))
    }
}

/// A shop's purchases with their names, for the evaluation protocol: [`Purchase`] rows
/// borrow from it, and [`ShopPurchases::splits`] splits them in time as the protocol does.
pub struct ShopPurchases {
    pub shape: ShopShape,
    customers: Vec<String>,
    items: Vec<String>,
    /// (customer, item, at) of every purchase, in time order.
    rows: Vec<(u32, u32, i64)>,
}

impl ShopPurchases {
    /// Runs the shop's stream and keeps its purchases (views are not protocol purchases).
    pub fn collect(shape: &ShopShape) -> ShopPurchases {
        let rows = shape
            .stream()
            .filter(|event| event.kind == SyntheticKind::Purchase)
            .map(|event| (event.customer, event.item, event.at))
            .collect();
        ShopPurchases {
            shape: *shape,
            customers: (0..shape.customers)
                .map(|customer| shape.customer_name(customer))
                .collect(),
            items: (0..shape.items).map(|item| shape.item_name(item)).collect(),
            rows,
        }
    }

    /// The purchases as the protocol's rows, in time order.
    pub fn purchases(&self) -> Vec<Purchase<'_>> {
        self.rows
            .iter()
            .map(|&(customer, item, at)| Purchase {
                customer: &self.customers[customer as usize],
                stock_code: &self.items[item as usize],
                country: self.shape.country_of(customer),
                at,
                hour_of_day: (at.rem_euclid(DAY) / 3_600) as u8,
            })
            .collect()
    }

    /// The protocol's two splits: test on the shape's last 30 days, validate on the 30
    /// days before them.
    pub fn splits(&self) -> Splits {
        Splits::new(
            &self.purchases(),
            self.shape.test_cutoff(),
            self.shape.validation_start(),
        )
    }
}
