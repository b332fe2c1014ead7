//! Draws a [`Snapshot`] for `monitor watch`: a header of totals, connections against the budget,
//! the largest and the busiest tenants side by side, and the newest failures.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Gauge, List, ListItem, Paragraph, Row, Table};
use tenancy_core::command::format::{format_bytes, format_count, format_duration, plural};

use crate::snapshot::{Snapshot, TenantFigure};

/// Draws `snapshot`, refreshed every `interval_secs`.
pub fn draw(frame: &mut Frame, snapshot: &Snapshot, interval_secs: u64) {
    let [header, gauge, lists, failures, footer] =
        Layout::vertical([Constraint::Length(3), Constraint::Length(3), Constraint::Min(6), Constraint::Length(8), Constraint::Length(1)])
            .areas(frame.area());
    frame.render_widget(Paragraph::new(totals(snapshot)).block(Block::bordered().title(" tenancy monitor ")), header);

    let connections = snapshot.total_connections();
    let budget = u64::from(snapshot.connection_budget.max(1));
    let servers: Vec<String> = snapshot.connections.iter().map(|(server, n)| format!("{server} {n}")).collect();
    let label = format!(
        "{} connections to tenant databases ({}) · budget {} per process",
        format_count(connections),
        if servers.is_empty() { "not counted on this backend".to_owned() } else { servers.join(", ") },
        format_count(budget)
    );
    frame.render_widget(
        Gauge::default()
            .block(Block::bordered().title(" connections "))
            .gauge_style(Style::default().fg(if connections > budget { Color::Red } else { Color::Green }))
            .ratio((connections as f64 / budget as f64).min(1.0))
            .label(label),
        gauge,
    );

    let [largest, busiest] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(lists);
    frame.render_widget(figure_table(" largest ", &snapshot.largest, format_bytes), largest);
    frame.render_widget(figure_table(" most connections ", &snapshot.busiest, format_count), busiest);

    let mut items: Vec<ListItem> = snapshot
        .problems
        .iter()
        .map(|problem| ListItem::new(Line::from(problem.clone()).red()))
        .chain(snapshot.missing.iter().map(|name| ListItem::new(Line::from(format!("{name}: database missing")).red())))
        .chain(snapshot.failures.iter().map(|f| {
            ListItem::new(format!("{} {}: {} failed: {}", f.failed_at.format("%m-%d %H:%M"), f.tenant, f.migration, first_line(&f.error)))
        }))
        .collect();
    if items.is_empty() {
        items.push(ListItem::new("none"));
    }
    frame.render_widget(List::new(items).block(Block::bordered().title(" recent failures ")), failures);

    frame.render_widget(
        Line::from(format!(
            " refreshed {} (took {}) every {interval_secs}s · q quits · r refreshes now",
            snapshot.taken_at.format("%H:%M:%S"),
            format_duration(snapshot.took())
        ))
        .dim(),
        footer,
    );
}

fn totals(snapshot: &Snapshot) -> String {
    let statuses: Vec<String> = snapshot.tenants.iter().filter(|(_, n)| **n > 0).map(|(status, n)| format!("{n} {status}")).collect();
    format!(
        "{} ({}) · {} of data",
        plural(snapshot.tenant_count(), "tenant"),
        if statuses.is_empty() { "none".to_owned() } else { statuses.join(", ") },
        format_bytes(snapshot.total_bytes)
    )
}

fn figure_table<'a>(title: &'a str, figures: &'a [TenantFigure], format: fn(u64) -> String) -> Table<'a> {
    let rows = figures.iter().map(|f| Row::new([f.name.clone(), format(f.value)]));
    Table::new(rows, [Constraint::Fill(1), Constraint::Length(12)]).block(Block::bordered().title(title))
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use tenancy_core::TenantId;

    use super::*;
    use crate::snapshot::Failure;

    fn snapshot() -> Snapshot {
        let figure = |name: &str, value| TenantFigure { id: TenantId::new(), name: name.into(), value };
        Snapshot {
            taken_at: chrono::Utc.with_ymd_and_hms(2026, 12, 2, 19, 30, 5).single().expect("a valid time"),
            took_ms: 12.5,
            tenants: BTreeMap::from([("active", 3), ("creating", 0), ("inactive", 0), ("suspended", 1)]),
            total_bytes: 3 * 1024 * 1024,
            connections: BTreeMap::from([("main".to_owned(), 7)]),
            connection_budget: 40,
            largest: vec![figure("acme", 2 * 1024 * 1024), figure("globex", 512 * 1024)],
            busiest: vec![figure("globex", 5), figure("acme", 2)],
            missing: vec!["initech".into()],
            failures: vec![Failure {
                tenant: "umbrella".into(),
                migration: "app/m0003_add_index".into(),
                error: "duplicate column\nmore".into(),
                failed_at: chrono::Utc.with_ymd_and_hms(2026, 12, 2, 18, 0, 0).single().expect("a valid time"),
            }],
            problems: Vec::new(),
        }
    }

    fn rendered(snapshot: &Snapshot) -> String {
        let mut terminal = Terminal::new(TestBackend::new(100, 24)).expect("a test terminal");
        terminal.draw(|frame| draw(frame, snapshot, 2)).expect("drawn");
        let buffer = terminal.backend().buffer().clone();
        (0..buffer.area.height)
            .map(|y| (0..buffer.area.width).map(|x| buffer[(x, y)].symbol()).collect::<String>().trim_end().to_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn shows_totals_lists_connections_and_failures() {
        let screen = rendered(&snapshot());
        for expected in [
            "4 tenants (3 active, 1 suspended) · 3.0 MiB of data",
            "7 connections to tenant databases (main 7) · budget 40 per process",
            "acme",
            "2.0 MiB",
            "globex",
            "initech: database missing",
            "12-02 18:00 umbrella: app/m0003_add_index failed: duplicate column",
            "refreshed 19:30:05",
            "q quits",
        ] {
            assert!(screen.contains(expected), "{expected:?} is not on the screen:\n{screen}");
        }
        assert!(!screen.contains("more"), "only an error's first line is shown:\n{screen}");
    }

    #[test]
    fn an_empty_fleet_says_so() {
        let empty = Snapshot {
            largest: Vec::new(),
            busiest: Vec::new(),
            missing: Vec::new(),
            failures: Vec::new(),
            connections: BTreeMap::new(),
            total_bytes: 0,
            tenants: BTreeMap::new(),
            ..snapshot()
        };
        let screen = rendered(&empty);
        assert!(screen.contains("0 tenants (none) · 0 B of data"), "{screen}");
        assert!(screen.contains("not counted on this backend"), "{screen}");
        assert!(screen.contains("none"), "{screen}");
    }
}
