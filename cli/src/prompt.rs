//! Questions for a person at a terminal (inquire). Callers check
//! [`crate::output::Output::is_interactive`] first; off a terminal a missing answer is a usage error.

use anyhow::Context;

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
