//! How many bytes a migration or seeder allocates, read from jemalloc's per-thread counter.
//!
//! The `tenancy` binary makes jemalloc its global allocator (see `main.rs`). An application binary
//! that keeps the system allocator simply gets no memory figures: [`JemallocMeter::detect`] checks
//! that allocations really go through jemalloc before the meter is used.

use tenancy_core::migrate::AllocationMeter;
use tikv_jemalloc_ctl::thread::{allocatedp, allocatedp_mib};

/// Reads jemalloc's `thread.allocatedp` counter.
pub struct JemallocMeter {
    counter: allocatedp_mib,
}

impl JemallocMeter {
    /// A meter, if jemalloc is the global allocator (a test allocation must show in its counter).
    pub fn detect() -> Option<Self> {
        let counter = allocatedp::mib().ok()?;
        let before = counter.read().ok()?.get();
        let probe = std::hint::black_box(vec![0u8; 64 * 1024]);
        let after = counter.read().ok()?.get();
        drop(probe);
        (after >= before + 64 * 1024).then_some(Self { counter })
    }
}

impl AllocationMeter for JemallocMeter {
    fn allocated_by_this_thread(&self) -> u64 {
        self.counter.read().map(|counter| counter.get()).unwrap_or(0)
    }
}
