//! The frame every page shares: head, header with navigation and who is signed in, main
//! landmark, footer.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::assets;
use crate::session::Session;

/// A page being rendered.
#[derive(Debug)]
pub struct Page<'a> {
    pub title: String,
    pub session: &'a Session,
    /// Logical names of the scripts the page needs, besides `site.js`.
    pub scripts: &'a [&'a str],
    /// Seconds after which a browser without JavaScript reloads the page (live pages).
    pub refresh_without_js: Option<u32>,
    pub status: StatusCode,
}

impl<'a> Page<'a> {
    pub fn new(title: impl Into<String>, session: &'a Session) -> Self {
        Self {
            title: title.into(),
            session,
            scripts: &[],
            refresh_without_js: None,
            status: StatusCode::OK,
        }
    }

    pub fn scripts(mut self, scripts: &'a [&'a str]) -> Self {
        self.scripts = scripts;
        self
    }

    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn refresh_without_js(mut self, secs: u32) -> Self {
        self.refresh_without_js = Some(secs);
        self
    }

    /// The whole document around `main`.
    pub fn render(self, main: Markup) -> Response {
        let s = self.session;
        let doc = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (self.title) " · boxoffice" }
                    link rel="icon" href="data:,";
                    link rel="stylesheet" href=(assets::url("app.css"));
                    @if let Some(secs) = self.refresh_without_js {
                        noscript { meta http-equiv="refresh" content=(secs); }
                    }
                    script src=(assets::url("site.js")) defer {}
                    @for name in self.scripts {
                        script src=(assets::url(name)) defer {}
                    }
                }
                body {
                    a.skip href="#main" { "Skip to content" }
                    header.site-header {
                        a.brand href="/" { "boxoffice" }
                        nav aria-label="Main" {
                            ul {
                                li { a href="/" { "Find events" } }
                                li { a href="/tickets" { "My tickets" } }
                                @if s.is_organizer() {
                                    li { a href="/organizer" { "Organizer" } }
                                }
                            }
                        }
                        div.who {
                            @if let Some(who) = &s.who {
                                span { "Signed in as " strong { (who.sub.as_str()) } }
                                form method="post" action="/signout" {
                                    input type="hidden" name="csrf" value=(s.csrf());
                                    button.link type="submit" { "Sign out" }
                                }
                            } @else {
                                a href="/signin" { "Sign in" }
                            }
                        }
                    }
                    main #main tabindex="-1" { (main) }
                    footer.site-footer {
                        p {
                            "boxoffice — tickets sold once, for real. "
                            a href="/docs" { "API documentation" }
                        }
                    }
                }
            }
        };
        (self.status, doc).into_response()
    }
}

/// A status message people notice: `role="alert"` for problems, `status` otherwise.
pub fn notice(kind: Notice, text: &str) -> Markup {
    match kind {
        Notice::Error => html! { div.notice.error role="alert" { p { (text) } } },
        Notice::Info => html! { div.notice.info role="status" { p { (text) } } },
        Notice::Success => html! { div.notice.success role="status" { p { (text) } } },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Error,
    Info,
    Success,
}

/// JSON for a `data-` attribute or a `<script type="application/json">`, safe inside HTML.
pub fn json_script(id: &str, value: &serde_json::Value) -> Markup {
    let text = serde_json::to_string(value)
        .unwrap_or_else(|_| "null".into())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    html! { script type="application/json" id=(id) { (PreEscaped(text)) } }
}
