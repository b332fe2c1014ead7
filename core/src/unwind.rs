//! Containing a panic in code tenancy runs on a user's behalf (a migration, a seeder, a
//! provisioning step, one tenant of a fleet run): the panic fails that piece of work with a
//! message, the work around it (undoing earlier steps, the other tenants) goes on, and nothing
//! unwinds through the caller.

use std::any::Any;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

/// Work that panicked instead of returning.
#[derive(Debug, Clone, thiserror::Error)]
#[error("panicked: {0}")]
pub struct Panicked(pub String);

/// Awaits `future`, turning a panic while it is polled into [`Panicked`].
///
/// The future is dropped after a panic and never polled again, and the state it shares with the
/// rest of tenancy survives one (every lock is poison-tolerant, leases and permits are guards that
/// release on unwind), which is why asserting unwind safety is sound here.
pub async fn contain<F: Future>(future: F) -> Result<F::Output, Panicked> {
    AssertUnwindSafe(future).catch_unwind().await.map_err(|payload| Panicked(message(payload.as_ref())))
}

fn message(payload: &(dyn Any + Send)) -> String {
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(text), _) => (*text).to_owned(),
        (_, Some(text)) => text.clone(),
        _ => "a panic with no message".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_an_error_with_its_message() {
        let panicked = contain(async { panic!("boom {}", 7) }).await.unwrap_err();
        assert_eq!(panicked.to_string(), "panicked: boom 7");
        assert_eq!(contain(async { 3 }).await.unwrap(), 3);
    }
}
