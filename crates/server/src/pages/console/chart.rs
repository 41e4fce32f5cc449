//! The dashboard's charts, drawn here as inline SVG (no script, no style attribute: the
//! pages' Content-Security-Policy allows neither). Each chart has a text alternative, and
//! the dashboard shows the same figures as a table.

use std::fmt::Write;

use discreet_engine::Dashboard;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 28.0;
/// Line colours, each at least 4.5:1 against white.
const COLOURS: [&str; 5] = ["#1f5fbf", "#a4262c", "#1e6b3a", "#6b3fa0", "#8a5300"];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn x_of(index: usize, count: usize) -> f64 {
    let span = WIDTH - LEFT - RIGHT;
    LEFT + span * index as f64 / (count.max(2) - 1) as f64
}

fn y_of(fraction: f64) -> f64 {
    TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - fraction.clamp(0.0, 1.0))
}

/// The frame every chart shares: the opening tag with its accessible name, the axes and the
/// day labels (first, middle, last).
fn open(svg: &mut String, id: &str, title: &str, description: &str, dashboard: &Dashboard) {
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{id}-title {id}-desc" xmlns="http://www.w3.org/2000/svg"><title id="{id}-title">{}</title><desc id="{id}-desc">{}</desc>"#,
        escape(title),
        escape(description)
    );
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="#4a5566" stroke-width="1"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="#4a5566" stroke-width="1"/>"##,
        HEIGHT - BOTTOM,
        WIDTH - RIGHT,
        HEIGHT - BOTTOM,
        HEIGHT - BOTTOM
    );
    let count = dashboard.days.len();
    for (index, anchor) in [
        (0, "start"),
        (count / 2, "middle"),
        (count.saturating_sub(1), "end"),
    ] {
        if let Some(day) = dashboard.days.get(index) {
            let when = super::when_millis(day.day);
            let label = when.get(5..10).unwrap_or_default();
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{}" font-size="11" text-anchor="{anchor}" fill="#4a5566">{label}</text>"##,
                x_of(index, count),
                HEIGHT - 8.0
            );
        }
    }
}

fn y_label(svg: &mut String, fraction: f64, label: &str) {
    let y = y_of(fraction);
    let _ = write!(
        svg,
        r##"<text x="{}" y="{:.1}" font-size="11" text-anchor="end" fill="#4a5566">{}</text><line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#d5dbe4" stroke-width="1"/>"##,
        LEFT - 6.0,
        y + 4.0,
        escape(label),
        WIDTH - RIGHT
    );
}

/// Consent rate per consent-based purpose, one line each, day by day (a gap where the rate
/// is not known).
pub fn consent_rates(dashboard: &Dashboard) -> String {
    let mut svg = String::new();
    let latest: Vec<String> = dashboard
        .consents
        .iter()
        .map(|series| match series.rates.last().copied().flatten() {
            Some(rate) => format!("{} {:.1} % today", series.purpose, rate * 100.0),
            None => format!("{} not known", series.purpose),
        })
        .collect();
    open(
        &mut svg,
        "consent-chart",
        "Consent rate per purpose, last 30 days",
        &format!(
            "Share of the customers held whose consent holds, at the end of each day: {}.",
            latest.join("; ")
        ),
        dashboard,
    );
    for (fraction, label) in [(0.0, "0 %"), (0.5, "50 %"), (1.0, "100 %")] {
        y_label(&mut svg, fraction, label);
    }
    let count = dashboard.days.len();
    for (number, series) in dashboard.consents.iter().enumerate() {
        let colour = COLOURS[number % COLOURS.len()];
        let mut run: Vec<(f64, f64)> = Vec::new();
        let flush = |run: &mut Vec<(f64, f64)>, svg: &mut String| {
            if run.len() == 1 {
                let (x, y) = run[0];
                let _ = write!(
                    svg,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{colour}"/>"#
                );
            } else if run.len() > 1 {
                let points: Vec<String> =
                    run.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                let _ = write!(
                    svg,
                    r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2.5"/>"#,
                    points.join(" ")
                );
            }
            run.clear();
        };
        for (index, rate) in series.rates.iter().enumerate() {
            match rate {
                Some(rate) => run.push((x_of(index, count), y_of(*rate))),
                None => flush(&mut run, &mut svg),
            }
        }
        flush(&mut run, &mut svg);
        let _ = write!(
            svg,
            r#"<rect x="{}" y="{}" width="10" height="10" fill="{colour}"/><text x="{}" y="{}" font-size="11" fill="{colour}">{}</text>"#,
            LEFT + 8.0 + 150.0 * number as f64,
            TOP - 20.0,
            LEFT + 22.0 + 150.0 * number as f64,
            TOP - 11.0,
            escape(&series.purpose)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Forgets and rights requests per day, as paired bars.
pub fn activity(dashboard: &Dashboard) -> String {
    let mut svg = String::new();
    let forgets: u64 = dashboard.days.iter().map(|day| day.forgets).sum();
    let requests: u64 = dashboard.days.iter().map(|day| day.rights_requests).sum();
    open(
        &mut svg,
        "activity-chart",
        "Forgets and access requests per day, last 30 days",
        &format!(
            "{forgets} customers forgotten and {requests} access requests in the last 30 days."
        ),
        dashboard,
    );
    let most = dashboard
        .days
        .iter()
        .map(|day| day.forgets.max(day.rights_requests))
        .max()
        .unwrap_or(0)
        .max(1);
    y_label(&mut svg, 0.0, "0");
    y_label(&mut svg, 1.0, &most.to_string());
    let count = dashboard.days.len();
    let slot = (WIDTH - LEFT - RIGHT) / count.max(1) as f64;
    let bar = (slot / 2.0 - 1.0).max(1.0);
    for (index, day) in dashboard.days.iter().enumerate() {
        let x = LEFT + slot * index as f64 + 1.0;
        for (offset, value, colour) in [
            (0.0, day.forgets, COLOURS[1]),
            (bar, day.rights_requests, COLOURS[0]),
        ] {
            if value == 0 {
                continue;
            }
            let top = y_of(value as f64 / most as f64);
            let _ = write!(
                svg,
                r#"<rect x="{:.1}" y="{top:.1}" width="{bar:.1}" height="{:.1}" fill="{colour}"/>"#,
                x + offset,
                HEIGHT - BOTTOM - top
            );
        }
    }
    for (number, (label, colour)) in [("forgets", COLOURS[1]), ("access requests", COLOURS[0])]
        .into_iter()
        .enumerate()
    {
        let _ = write!(
            svg,
            r#"<rect x="{}" y="{}" width="10" height="10" fill="{colour}"/><text x="{}" y="{}" font-size="11" fill="{colour}">{label}</text>"#,
            LEFT + 8.0 + 150.0 * number as f64,
            TOP - 20.0,
            LEFT + 22.0 + 150.0 * number as f64,
            TOP - 11.0
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use discreet_engine::{ConsentSeries, DayFigures};

    use super::*;

    fn dashboard(rates: Vec<Option<f64>>) -> Dashboard {
        Dashboard {
            at: 0,
            subjects_held: 3,
            modelled_subjects: 2,
            modelled_events: 5,
            consented_subjects: 2,
            days: (0..rates.len() as i64)
                .map(|index| DayFigures {
                    day: index * 86_400_000,
                    forgets: index as u64 % 2,
                    ..DayFigures::default()
                })
                .collect(),
            consents: vec![ConsentSeries {
                purpose: "personalization<&>".into(),
                granted_now: Some(2),
                rates,
            }],
            erasures_pending: 0,
            last_sweep_at: None,
            next_sweep_at: None,
            ledger_checked: None,
            entries_replayed: 10,
            complete: true,
        }
    }

    #[test]
    fn a_gap_in_the_rates_breaks_the_line_and_names_are_escaped() {
        let svg = consent_rates(&dashboard(vec![Some(0.5), Some(1.0), None, Some(0.0)]));
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 1);
        assert!(svg.contains("personalization&lt;&amp;&gt;"));
        assert!(!svg.contains("personalization<&>"));
        assert!(!svg.contains("style="));
        assert!(svg.contains("0.0 % today"));
    }

    #[test]
    fn bars_are_drawn_only_for_days_with_activity() {
        let svg = activity(&dashboard(vec![None; 4]));
        // Two legend squares, and one bar for each of the two days with a forget.
        assert_eq!(svg.matches("<rect").count(), 2 + 2);
        assert!(svg.contains("2 customers forgotten"));
    }
}
