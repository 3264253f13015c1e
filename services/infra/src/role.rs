//! What starting a role yields: the HTTP routes it serves (if any) and the background
//! tasks it runs. The binary merges the routes of the roles it runs into one listener and
//! waits for every task after shutdown.

use axum::Router;
use tokio::task::JoinHandle;

/// A started role.
pub struct RoleHandle {
    pub name: &'static str,
    pub router: Option<Router>,
    /// Tasks that end by themselves once shutdown is signalled.
    pub tasks: Vec<JoinHandle<()>>,
}

impl RoleHandle {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            router: None,
            tasks: Vec::new(),
        }
    }

    pub fn with_router(mut self, router: Router) -> Self {
        self.router = Some(router);
        self
    }

    pub fn with_task(mut self, task: JoinHandle<()>) -> Self {
        self.tasks.push(task);
        self
    }
}
