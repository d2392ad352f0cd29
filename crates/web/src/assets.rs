//! The stylesheet and scripts, compiled into the binary. Each is served under a name that
//! carries a digest of its content (`seatmap.3f9a1c0b2d.js`), so browsers and caches may
//! keep it forever (`immutable`); a new build changes the name, never the content behind it.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

struct Asset {
    /// The logical name pages refer to (`app.css`).
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/app.css"),
    },
    Asset {
        name: "site.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/site.js"),
    },
    Asset {
        name: "seatmap.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/seatmap.js"),
    },
    Asset {
        name: "countdown.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/countdown.js"),
    },
    Asset {
        name: "stream.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/stream.js"),
    },
];

/// Each asset's hashed file name, computed once.
fn hashed() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = Sha256::digest(a.body);
                let hex: String = digest[..5].iter().map(|b| format!("{b:02x}")).collect();
                match a.name.rsplit_once('.') {
                    Some((stem, ext)) => format!("{stem}.{hex}.{ext}"),
                    None => format!("{}.{hex}", a.name),
                }
            })
            .collect()
    })
}

/// The URL of an asset by its logical name (`app.css` → `/assets/app.0a1b2c3d4e.css`).
pub fn url(name: &str) -> String {
    ASSETS
        .iter()
        .position(|a| a.name == name)
        .map(|i| format!("/assets/{}", hashed()[i]))
        .unwrap_or_else(|| format!("/assets/{name}"))
}

/// `GET /assets/{name}`: only the current hashed names exist.
pub async fn serve(Path(name): Path<String>) -> Response {
    let Some(i) = hashed().iter().position(|h| *h == name) else {
        return crate::pages::errors::not_found_page(None).into_response();
    };
    let a = &ASSETS[i];
    let mut res = (StatusCode::OK, a.body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{name}\"")) {
        h.insert(header::ETAG, etag);
    }
    res
}
