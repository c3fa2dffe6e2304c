//! The HTTP protocol at the edge: the `Bearer` scheme in any case, and errors that actix raises
//! before a handler runs (extractors, oversize heads) in the API's JSON error shape.

use reqwest::Method;

use crate::helpers::{spawn_app, Backend, ADMIN_TOKEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_matched_in_any_case() {
    let app = spawn_app(Backend::Memory).await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let value = format!("{scheme} {ADMIN_TOKEN}");
        let r = app
            .request(Method::GET, "/v1/admin/attempts", None, None, &[("authorization", &value)])
            .await;
        assert_eq!(r.status, 200, "{scheme}: {}", r.body);
    }
    for value in [format!("Basic {ADMIN_TOKEN}"), format!("Bearer{ADMIN_TOKEN}"), "Bearer ".into()] {
        let r = app
            .request(Method::GET, "/v1/admin/attempts", None, None, &[("authorization", &value)])
            .await;
        assert_eq!((r.status, r.body["error"].as_str()), (401, Some("unauthorized")), "{value}");
    }
}
