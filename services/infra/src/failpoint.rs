//! Failpoints: places where the crash tests make a process die, with SIGKILL, at an exact
//! moment (say, after an order was produced to Kafka but before the outbox entry was
//! acknowledged). Set `LINKDROP_FAILPOINT=<name>[:<n>]` and the process kills itself the
//! `n`-th time (default the first) it reaches `hit(<name>)`. Unset, a hit is one relaxed
//! load and a comparison. Test-only: nothing in production sets it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The armed failpoint: its name and the hit that kills.
struct Armed {
    name: String,
    at_hit: u64,
    hits: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var("LINKDROP_FAILPOINT").ok()?;
            let (name, at_hit) = match spec.split_once(':') {
                Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1)),
                None => (spec, 1),
            };
            Some(Armed {
                name,
                at_hit,
                hits: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Marks the place `name`; kills this process with SIGKILL when it is the armed one.
pub fn hit(name: &str) {
    let Some(armed) = armed() else {
        return;
    };
    if armed.name != name || armed.hits.fetch_add(1, Ordering::SeqCst) + 1 != armed.at_hit {
        return;
    }
    eprintln!("linkdrop: failpoint {name} reached; killing this process (SIGKILL)");
    let pid = std::process::id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status();
    // The signal is on its way; nothing of this process may run past this point.
    loop {
        std::thread::park();
    }
}
