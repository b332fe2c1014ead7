//! Questions for a person at a terminal (inquire). Callers check
//! [`crate::output::Output::is_interactive`] first; off a terminal a missing answer is a usage error.

use anyhow::Context;
use tenancy_core::Tenant;

/// Asks for a line of text; `None` when the person pressed Esc.
pub fn text(question: &str, help: &str) -> anyhow::Result<Option<String>> {
    inquire::Text::new(question).with_help_message(help).prompt_skippable().context("failed to read the answer")
}

/// Asks a yes/no question whose default is no.
pub fn confirm(question: &str) -> anyhow::Result<bool> {
    match inquire::Confirm::new(question).with_default(false).prompt() {
        Ok(answer) => Ok(answer),
        Err(inquire::InquireError::OperationCanceled | inquire::InquireError::OperationInterrupted) => Ok(false),
        Err(err) => Err(err).context("failed to read the answer"),
    }
}

/// Lets a person choose tenants from `candidates` (space to select, enter to confirm).
pub fn pick_tenants(candidates: Vec<Tenant>) -> anyhow::Result<Vec<Tenant>> {
    let labelled: Vec<TenantChoice> = candidates.into_iter().map(TenantChoice).collect();
    match inquire::MultiSelect::new("Tenants:", labelled).with_help_message("space selects, enter confirms, type to filter").prompt() {
        Ok(chosen) => Ok(chosen.into_iter().map(|choice| choice.0).collect()),
        Err(inquire::InquireError::OperationCanceled | inquire::InquireError::OperationInterrupted) => Ok(Vec::new()),
        Err(err) => Err(err).context("failed to read the answer"),
    }
}

/// Asks which of `options` to take; returns its index, or `None` when the person pressed Esc.
pub fn pick_one(question: &str, options: Vec<String>) -> anyhow::Result<Option<usize>> {
    let numbered: Vec<Numbered> = options.into_iter().enumerate().map(|(index, label)| Numbered { index, label }).collect();
    match inquire::Select::new(question, numbered).with_help_message("arrows move, enter chooses, type to filter").prompt() {
        Ok(choice) => Ok(Some(choice.index)),
        Err(inquire::InquireError::OperationCanceled | inquire::InquireError::OperationInterrupted) => Ok(None),
        Err(err) => Err(err).context("failed to read the answer"),
    }
}

struct TenantChoice(Tenant);

impl std::fmt::Display for TenantChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.primary_domain() {
            Some(domain) => write!(f, "{} — {domain}", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

struct Numbered {
    index: usize,
    label: String,
}

impl std::fmt::Display for Numbered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}. {}", self.index, self.label)
    }
}
