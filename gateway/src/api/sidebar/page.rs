//! The sidebar's page: one small H5 page (`GET /sidebar/`) with its script and style sheet
//! (`/sidebar/app.js`, `/sidebar/app.css`), compiled into the binary from `page/` — no build
//! step, no framework. The page signs the rep in through [`super::signin`] when `/me` is 401,
//! finds the customer (`?external_userid=`, else WeCom's `getCurExternalContact` through the
//! JS-SDK) and shows the card with its actions, all through the `/sidebar/v1` API.
//!
//! Every answer carries a `Content-Security-Policy` that allows only this origin, except the two
//! things a page inside WeCom cannot do without: WeCom's JS-SDK scripts (loaded by the page only
//! inside WeCom) and avatars from WeChat's image hosts. `Cache-Control: no-cache` makes a
//! browser revalidate, so a new binary's page is seen at once.

use actix_web::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY as CONTENT_SECURITY_POLICY_HEADER, CONTENT_TYPE,
};
use actix_web::{web, HttpResponse, Route};

use super::SidebarRoute;

/// The page.
pub const INDEX_HTML: &str = include_str!("page/index.html");
/// Its script.
pub const APP_JS: &str = include_str!("page/app.js");
/// Its style sheet.
pub const APP_CSS: &str = include_str!("page/app.css");

/// The page's policy: this origin only, WeCom's JS-SDK hosts for scripts, WeChat's avatar hosts
/// for images; no plugins, no framing by other sites, forms and `<base>` to this origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; \
     script-src 'self' https://res.wx.qq.com https://open.work.weixin.qq.com; \
     img-src 'self' data: https://*.qlogo.cn https://*.qpic.cn; \
     style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; \
     form-action 'self'; frame-ancestors 'self'";

/// Registers the handler of `r` when it is one of this module's.
pub(super) fn register(cfg: &mut web::ServiceConfig, r: &SidebarRoute, route: Route) -> bool {
    match (r.method, r.path) {
        ("GET", "/sidebar/") => cfg.route(r.path, route.to(index)),
        ("GET", "/sidebar/app.js") => cfg.route(r.path, route.to(app_js)),
        ("GET", "/sidebar/app.css") => cfg.route(r.path, route.to(app_css)),
        _ => return false,
    };
    true
}

/// One of the page's files with the page's headers.
fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, content_type))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .insert_header((CONTENT_SECURITY_POLICY_HEADER, CONTENT_SECURITY_POLICY))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(body)
}

async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn app_css() -> HttpResponse {
    asset("text/css; charset=utf-8", APP_CSS)
}

#[cfg(test)]
mod tests {
    use actix_web::App;

    use super::*;
    use crate::api::sidebar::{Access, ROUTES};

    #[test]
    fn the_page_and_its_files_are_public_routes() {
        for path in ["/sidebar/", "/sidebar/app.js", "/sidebar/app.css"] {
            let r = ROUTES
                .iter()
                .find(|r| r.method == "GET" && r.path == path)
                .unwrap_or_else(|| panic!("{path} declared"));
            assert_eq!(r.access, Access::Public, "{path}");
        }
    }

    #[test]
    fn the_page_loads_only_its_own_files() {
        assert!(INDEX_HTML.contains(r#"src="/sidebar/app.js""#));
        assert!(INDEX_HTML.contains(r#"href="/sidebar/app.css""#));
        // No inline script or style: the policy would refuse them.
        assert!(!INDEX_HTML.contains("<script>"));
        assert!(!INDEX_HTML.contains("<style"));
        assert!(!INDEX_HTML.contains(" style="));
        assert!(!INDEX_HTML.contains(" onclick="));
        // Every control the page labels exists.
        for id in INDEX_HTML
            .split("for=\"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
        {
            assert!(
                INDEX_HTML.contains(&format!("id=\"{id}\"")),
                "<label for=\"{id}\"> without its control"
            );
        }
    }

    #[actix_web::test]
    async fn the_page_is_served_with_its_policy_and_no_cache() {
        let app = actix_web::test::init_service(App::new().configure(|cfg| {
            for r in ROUTES.iter().filter(|r| r.access == Access::Public) {
                let m = actix_web::http::Method::from_bytes(r.method.as_bytes()).unwrap();
                register(cfg, r, web::method(m));
            }
        }))
        .await;
        for (path, kind) in [
            ("/sidebar/", "text/html"),
            ("/sidebar/app.js", "text/javascript"),
            ("/sidebar/app.css", "text/css"),
        ] {
            let resp = actix_web::test::call_service(
                &app,
                actix_web::test::TestRequest::get().uri(path).to_request(),
            )
            .await;
            assert_eq!(resp.status(), 200, "{path}");
            let h = |name: actix_web::http::header::HeaderName| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            assert!(h(CONTENT_TYPE).starts_with(kind), "{path}");
            assert_eq!(h(CACHE_CONTROL), "no-cache", "{path}");
            let csp = h(actix_web::http::header::CONTENT_SECURITY_POLICY);
            assert!(csp.starts_with("default-src 'self';"), "{csp}");
            assert!(csp.contains("connect-src 'self'"), "{csp}");
        }
    }
}
