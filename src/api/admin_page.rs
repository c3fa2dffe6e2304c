//! The settings page at `/admin`: three files embedded in the binary, so the gateway serves its
//! own admin UI with no CDN, no build step and no request leaving it. The page holds no secret;
//! it reaches the admin API with the token the admin types in, so the assets need no auth.

use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

const INDEX: &str = include_str!("../admin/page/index.html");
const SCRIPT: &str = include_str!("../admin/page/app.js");
const STYLE: &str = include_str!("../admin/page/app.css");

/// Only this origin's script, style and API; no inline script or style, no framing, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One embedded file with what a browser needs to know about it.
struct Asset {
    body: &'static str,
    content_type: &'static str,
}

const ASSETS: [(&str, Asset); 3] = [
    (
        "index.html",
        Asset {
            body: INDEX,
            content_type: "text/html; charset=utf-8",
        },
    ),
    (
        "app.js",
        Asset {
            body: SCRIPT,
            content_type: "text/javascript; charset=utf-8",
        },
    ),
    (
        "app.css",
        Asset {
            body: STYLE,
            content_type: "text/css; charset=utf-8",
        },
    ),
];

/// Mounts `/admin`, `/admin/` and the page's assets.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(super::at("/admin").route(web::get().to(index)))
        .service(super::at("/admin/").route(web::get().to(index)))
        .service(super::at("/admin/index.html").route(web::get().to(index)))
        .service(super::at("/admin/app.js").route(web::get().to(script)))
        .service(super::at("/admin/app.css").route(web::get().to(style)));
}

async fn index(req: HttpRequest) -> HttpResponse {
    serve(&req, 0)
}

async fn script(req: HttpRequest) -> HttpResponse {
    serve(&req, 1)
}

async fn style(req: HttpRequest) -> HttpResponse {
    serve(&req, 2)
}

/// Each asset's strong ETag (its SHA-256), computed once.
fn etag(i: usize) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    &TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|(_, a)| format!("\"{}\"", &hex::encode(Sha256::digest(a.body.as_bytes()))[..32]))
            .collect()
    })[i]
}

/// The asset with its headers. `no-cache` (revalidate every time, answered 304 by ETag) rather
/// than a long max-age: the file names carry no version, and after an upgrade an on-call admin
/// must get the page that matches the API.
fn serve(req: &HttpRequest, i: usize) -> HttpResponse {
    let (_, asset) = &ASSETS[i];
    let tag = etag(i);
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut res = if fresh { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    res.insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::ETAG, tag))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"));
    if fresh {
        return res.finish();
    }
    res.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)))
        .body(asset.body)
}

#[cfg(test)]
mod tests {
    use actix_web::http::StatusCode;
    use actix_web::{test as web_test, App};

    use super::*;

    async fn get(path: &str, if_none_match: Option<&str>) -> (StatusCode, header::HeaderMap, String) {
        let app = web_test::init_service(App::new().configure(routes)).await;
        let mut req = web_test::TestRequest::get().uri(path);
        if let Some(tag) = if_none_match {
            req = req.insert_header((header::IF_NONE_MATCH, tag));
        }
        let res = web_test::call_service(&app, req.to_request()).await;
        let status = res.status();
        let headers = res.headers().clone();
        let body = String::from_utf8(web_test::read_body(res).await.to_vec()).unwrap();
        (status, headers, body)
    }

    fn header(headers: &header::HeaderMap, name: header::HeaderName) -> &str {
        headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    #[actix_web::test]
    async fn each_asset_is_served_with_its_type_a_strict_policy_and_revalidation() {
        for (path, ty, needle) in [
            ("/admin", "text/html; charset=utf-8", "<title>smsgate"),
            ("/admin/", "text/html; charset=utf-8", "<title>smsgate"),
            ("/admin/app.js", "text/javascript; charset=utf-8", "sessionStorage"),
            ("/admin/app.css", "text/css; charset=utf-8", ":focus-visible"),
        ] {
            let (status, headers, body) = get(path, None).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(header(&headers, header::CONTENT_TYPE), ty, "{path}");
            assert_eq!(header(&headers, header::CACHE_CONTROL), "no-cache", "{path}");
            assert_eq!(header(&headers, header::X_CONTENT_TYPE_OPTIONS), "nosniff", "{path}");
            let csp = header(&headers, header::CONTENT_SECURITY_POLICY);
            assert!(csp.starts_with("default-src 'self'"), "{path}: {csp}");
            assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{path}: {csp}");
            assert!(body.contains(needle), "{path}");
        }
    }

    #[actix_web::test]
    async fn a_current_etag_is_answered_not_modified_without_a_body() {
        let (_, headers, _) = get("/admin/app.js", None).await;
        let tag = header(&headers, header::ETAG).to_string();
        assert!(tag.starts_with('"') && tag.len() == 34, "{tag}");
        let (status, _, body) = get("/admin/app.js", Some(&tag)).await;
        assert_eq!((status, body.as_str()), (StatusCode::NOT_MODIFIED, ""));
        let (status, _, _) = get("/admin/app.js", Some("\"stale\"")).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[test]
    fn the_page_has_no_inline_script_style_or_outside_reference() {
        // The policy forbids inline code; the page must not rely on it, nor on any other host.
        assert!(!INDEX.contains("<style") && !INDEX.contains(" style=") && !INDEX.contains(" onclick="));
        for tag in INDEX.split("<script").skip(1) {
            let open = &tag[..tag.find('>').unwrap()];
            assert!(open.contains("src=\"/admin/"), "inline or outside script: <script{open}>");
            assert!(tag[tag.find('>').unwrap() + 1..].trim_start().starts_with("</script>"));
        }
        for text in [INDEX, SCRIPT, STYLE] {
            assert!(!text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"));
        }
    }

    #[test]
    fn the_token_never_goes_into_a_url_or_local_storage() {
        assert!(SCRIPT.contains("sessionStorage.setItem(TOKEN_KEY"));
        assert!(!SCRIPT.contains("localStorage"));
        assert!(!SCRIPT.contains("?token=") && !SCRIPT.contains("&token="));
        assert!(INDEX.contains("inputmode=\"numeric\" autocomplete=\"one-time-code\""));
    }
}
