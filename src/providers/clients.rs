//! The HTTP client adapters send with: one `reqwest::Client` per thread that sends.
//!
//! A client's pooled connection is a task on the runtime that opened it, and actix runs each
//! worker on a runtime of its own. With one client shared by every worker, a send that took a
//! connection another worker opened woke that worker to write the request and read the answer,
//! and was woken back by it: two cross-thread wake-ups, each a futex call and a context switch,
//! on about half the sends. With one client per thread, the send and its connection stay on the
//! thread that took the request.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Client, IntoUrl, Method, RequestBuilder};
use thread_local::ThreadLocal;

/// How each thread's client is built.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    pub pool_idle_timeout: Duration,
}

/// A `reqwest::Client` per thread, each built on first use from the same settings. Clones share
/// the clients.
#[derive(Clone)]
pub struct Clients {
    settings: Option<ClientSettings>,
    per_thread: Arc<ThreadLocal<Client>>,
}

impl Clients {
    /// Checks that `settings` build a client (the first is kept for the building thread).
    pub fn new(settings: ClientSettings) -> Result<Self, reqwest::Error> {
        let first = build(&settings)?;
        let per_thread = ThreadLocal::new();
        let _ = per_thread.get_or(|| first);
        Ok(Self {
            settings: Some(settings),
            per_thread: Arc::new(per_thread),
        })
    }

    /// reqwest's defaults, for tests and one-off tools.
    pub fn default_client() -> Self {
        Self {
            settings: None,
            per_thread: Arc::new(ThreadLocal::new()),
        }
    }

    /// This thread's client.
    pub fn current(&self) -> &Client {
        self.per_thread.get_or(|| match &self.settings {
            // The same settings built a client in `new`; should one fail now (it loads the same
            // roots), the defaults still send.
            Some(s) => build(s).unwrap_or_default(),
            None => Client::new(),
        })
    }

    pub fn get<U: IntoUrl>(&self, url: U) -> RequestBuilder {
        self.current().get(url)
    }

    pub fn post<U: IntoUrl>(&self, url: U) -> RequestBuilder {
        self.current().post(url)
    }

    pub fn request<U: IntoUrl>(&self, method: Method, url: U) -> RequestBuilder {
        self.current().request(method, url)
    }
}

fn build(s: &ClientSettings) -> Result<Client, reqwest::Error> {
    Client::builder()
        .connect_timeout(s.connect_timeout)
        .pool_idle_timeout(s.pool_idle_timeout)
        .user_agent(concat!("smsgate/", env!("CARGO_PKG_VERSION")))
        // The router decides what is tried again, and where. reqwest's own retry of refused
        // HTTP/2 streams would also copy every request's headers in case it retries.
        .retry(reqwest::retry::never().max_retries_per_request(0))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ClientSettings {
        ClientSettings {
            connect_timeout: Duration::from_secs(1),
            pool_idle_timeout: Duration::from_secs(90),
        }
    }

    /// Two clients are the same one when they share a connection pool; reqwest exposes no id,
    /// so compare the address each thread's `current` returns.
    #[test]
    fn each_thread_sends_with_its_own_client_and_keeps_it() {
        let clients = Clients::new(settings()).unwrap();
        let here = clients.current() as *const Client as usize;
        assert_eq!(here, clients.current() as *const Client as usize);
        let shared = clients.clone();
        let there = std::thread::spawn(move || {
            let a = shared.current() as *const Client as usize;
            let b = shared.current() as *const Client as usize;
            (a, b)
        })
        .join()
        .unwrap();
        assert_eq!(there.0, there.1, "a thread keeps its client");
        assert_ne!(here, there.0, "another thread has its own");
    }
}
