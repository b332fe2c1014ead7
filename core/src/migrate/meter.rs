//! Measuring how many bytes one migration or seeder allocates, even while others run at once.
//!
//! Core does not pick the global allocator; the binary does. If it can read a per-thread "bytes
//! allocated so far" counter (jemalloc can), it hands an [`AllocationMeter`] to core, and
//! [`metered`] adds up what each poll of one future allocated on whichever thread polled it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Reads how many bytes the current thread has allocated since it started.
pub trait AllocationMeter: Send + Sync {
    /// Bytes allocated by this thread so far (only differences are used).
    fn allocated_by_this_thread(&self) -> u64;
}

/// Runs `future` and returns its output with the bytes it allocated, if a meter is given.
pub async fn metered<F: Future>(meter: Option<&dyn AllocationMeter>, future: F) -> (F::Output, Option<u64>) {
    match meter {
        None => (future.await, None),
        Some(meter) => {
            let mut allocated = 0;
            let output = Metered { inner: Box::pin(future), meter, allocated: &mut allocated }.await;
            (output, Some(allocated))
        }
    }
}

struct Metered<'a, F: Future> {
    inner: Pin<Box<F>>,
    meter: &'a dyn AllocationMeter,
    allocated: &'a mut u64,
}

impl<F: Future> Future for Metered<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Every field is Unpin (the inner future is boxed), so the wrapper can be unpinned.
        let this = self.get_mut();
        let before = this.meter.allocated_by_this_thread();
        let poll = this.inner.as_mut().poll(cx);
        *this.allocated += this.meter.allocated_by_this_thread().saturating_sub(before);
        poll
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    thread_local! { static FAKE: Cell<u64> = const { Cell::new(0) }; }

    struct FakeMeter;
    impl AllocationMeter for FakeMeter {
        fn allocated_by_this_thread(&self) -> u64 {
            FAKE.with(Cell::get)
        }
    }

    #[tokio::test]
    async fn counts_only_what_happens_inside_the_future() {
        FAKE.with(|c| c.set(100));
        let ((), allocated) = metered(Some(&FakeMeter), async {
            FAKE.with(|c| c.set(c.get() + 42));
            tokio::task::yield_now().await;
            FAKE.with(|c| c.set(c.get() + 8));
        })
        .await;
        FAKE.with(|c| c.set(c.get() + 1000));
        assert_eq!(allocated, Some(50));
        assert_eq!(metered(None, async { 1 }).await, (1, None));
    }
}
