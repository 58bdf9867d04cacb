//! The sandbox bank's own web pages, styled unlike finX: the redirect bank's login and
//! approval pages, and the decoupled bank's "bank app". Mount [`router`] at the root of
//! the address in [`SandboxConfig::public_url`](crate::SandboxConfig::public_url); every
//! route is under `/sandbox-bank/`.
//!
//! These pages belong to a test bank: they take only the sandbox's made-up logins, keep no
//! cookies, and are not part of finX's own surface.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use minijinja::{Environment, context};

use crate::{AppError, BankPage, SandboxBank};

/// The sandbox bank's pages, for `bank`.
pub fn router(bank: Arc<SandboxBank>) -> Router {
    Router::new()
        .route(
            "/sandbox-bank/authorise/{id}",
            get(authorise_page).post(authorise_form),
        )
        .route("/sandbox-bank/app", get(app_page))
        .route("/sandbox-bank/app/{id}", axum::routing::post(app_form))
        .with_state(bank)
}

const LAYOUT: &str = r#"<!doctype html>
<html lang="de"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{ title }}</title>
<style>
body{margin:0;font-family:Georgia,"Times New Roman",serif;background:#f3efe9;color:#222}
header{background:#c4121a;color:#fff;padding:14px 24px;font-size:1.3em;letter-spacing:.04em}
header small{display:block;font-size:.6em;opacity:.85}
main{max-width:26em;margin:2em auto;background:#fff;padding:1.5em 2em;border-top:4px solid #c4121a;box-shadow:0 1px 4px #0003}
label{display:block;margin:.8em 0 .2em;font-weight:bold}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.5em;border:1px solid #999;font-size:1em}
button{margin-top:1.2em;padding:.6em 1.4em;font-size:1em;border:0;cursor:pointer}
.primary{background:#c4121a;color:#fff}.secondary{background:#ddd;color:#222}
.error{color:#c4121a;font-weight:bold}.hint{color:#555;font-size:.9em}
.phone{max-width:20em;border-radius:2em;border:10px solid #222;border-top-width:30px;border-bottom-width:40px}
li{margin:1em 0;padding-bottom:1em;border-bottom:1px solid #ddd;list-style:none}ul{padding:0}
</style></head><body><header>{{ bank }}<small>Sandbox-Bank · Online-Banking</small></header>
<main{% if phone %} class="phone"{% endif %}>{% block body %}{% endblock %}</main></body></html>"#;

const LOGIN: &str = r#"{% extends "layout.html" %}{% block body %}
<h1>Anmelden</h1>
<p class="hint">finX bittet um Zugriff auf Ihre Konten. Melden Sie sich an, um ihn freizugeben.</p>
{% if error %}<p class="error" id="bank-error" role="alert">{{ error }}</p>{% endif %}
<form method="post" id="bank-login">
<input type="hidden" name="action" value="login">
<label for="user">{{ user_label }}</label><input type="text" id="user" name="user" autocomplete="off" required>
<label for="pin">{{ secret_label }}</label><input type="password" id="pin" name="pin" autocomplete="off" required>
<button class="primary" type="submit" id="bank-submit">Anmelden</button>
</form>
<form method="post"><input type="hidden" name="action" value="cancel"><button class="secondary" type="submit" id="bank-cancel">Abbrechen</button></form>
{% endblock %}"#;

const TAN: &str = r#"{% extends "layout.html" %}{% block body %}
<h1>Zugriff freigeben</h1>
<p>Geben Sie die TAN aus Ihrer App ein, um finX den Zugriff auf Ihre Kontoinformationen zu erlauben. <span class="hint">(Sandbox: 123456)</span></p>
{% if error %}<p class="error" id="bank-error" role="alert">{{ error }}</p>{% endif %}
<form method="post" id="bank-tan">
<input type="hidden" name="action" value="tan">
<label for="tan">TAN</label><input type="text" id="tan" name="tan" inputmode="numeric" autocomplete="one-time-code" required>
<button class="primary" type="submit" id="bank-submit">Freigeben</button>
</form>
<form method="post"><input type="hidden" name="action" value="cancel"><button class="secondary" type="submit" id="bank-cancel">Abbrechen</button></form>
{% endblock %}"#;

const UNKNOWN: &str = r#"{% extends "layout.html" %}{% block body %}
<h1>Vorgang unbekannt</h1><p id="bank-error">Dieser Freigabevorgang ist abgeschlossen, abgelaufen oder unbekannt.</p>
{% endblock %}"#;

const APP: &str = r#"{% extends "layout.html" %}{% block body %}
<h1>Freigaben</h1>
{% if message %}<p class="error" role="alert" id="app-message">{{ message }}</p>{% endif %}
{% if approvals %}<ul>{% for a in approvals %}
<li id="approval-{{ a.id }}"><strong>{{ a.bank }}</strong><br>finX möchte auf die Konten von <b>{{ a.user }}</b> zugreifen.
<form method="post" action="/sandbox-bank/app/{{ a.id }}"><input type="hidden" name="action" value="approve">
<label for="tan-{{ a.id }}">TAN <span class="hint">(Sandbox: 123456)</span></label>
<input type="text" id="tan-{{ a.id }}" name="tan" inputmode="numeric" required>
<button class="primary approve" type="submit">Freigeben</button></form>
<form method="post" action="/sandbox-bank/app/{{ a.id }}"><input type="hidden" name="action" value="decline">
<button class="secondary decline" type="submit">Ablehnen</button></form></li>
{% endfor %}</ul>{% else %}<p id="app-empty">Keine offenen Freigaben.</p>{% endif %}
{% endblock %}"#;

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in [
            ("layout.html", LAYOUT),
            ("login.html", LOGIN),
            ("tan.html", TAN),
            ("unknown.html", UNKNOWN),
            ("app.html", APP),
        ] {
            // The templates are constants checked by a test; a broken one renders as an error page.
            let _ = env.add_template(name, source);
        }
        env
    })
}

fn html(status: StatusCode, template: &str, ctx: minijinja::Value) -> Response {
    let body = templates()
        .get_template(template)
        .and_then(|t| t.render(ctx))
        .unwrap_or_else(|e| format!("template error: {e}"));
    let mut res = (status, body).into_response();
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

fn show(page: BankPage) -> Response {
    match page {
        BankPage::Login {
            bank,
            user_label,
            secret_label,
            error,
        } => html(
            StatusCode::OK,
            "login.html",
            context! { title => "Anmelden", bank, user_label, secret_label, error },
        ),
        BankPage::Tan { bank, error } => html(
            StatusCode::OK,
            "tan.html",
            context! { title => "Freigabe", bank, error },
        ),
        // Back to finX: a plain GET of its return route.
        BankPage::Back(url) => Redirect::to(url.as_str()).into_response(),
        BankPage::Unknown => html(
            StatusCode::NOT_FOUND,
            "unknown.html",
            context! { title => "Unbekannt", bank => "Sandbox-Bank" },
        ),
    }
}

async fn authorise_page(State(bank): State<Arc<SandboxBank>>, Path(id): Path<String>) -> Response {
    show(bank.bank_page(&id))
}

async fn authorise_form(
    State(bank): State<Arc<SandboxBank>>,
    Path(id): Path<String>,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return show(bank.bank_page(&id));
    };
    let field = |k: &str| form.get(k).map_or("", String::as_str);
    let page = match field("action") {
        "login" => bank.bank_login(&id, field("user"), field("pin")).await,
        "tan" => bank.bank_tan(&id, field("tan")),
        "cancel" => bank.bank_cancel(&id),
        _ => bank.bank_page(&id),
    };
    show(page)
}

fn app(bank: &SandboxBank, message: Option<&str>) -> Response {
    let approvals: Vec<minijinja::Value> = bank
        .waiting_approvals()
        .into_iter()
        .map(|a| context! { id => a.id, bank => a.bank, user => a.user })
        .collect();
    html(
        StatusCode::OK,
        "app.html",
        context! { title => "Bank-App", bank => "Sandbox-Bank-App", phone => true, approvals, message },
    )
}

async fn app_page(State(bank): State<Arc<SandboxBank>>) -> Response {
    app(&bank, None)
}

async fn app_form(
    State(bank): State<Arc<SandboxBank>>,
    Path(id): Path<String>,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return app(&bank, Some("Ungültige Eingabe."));
    };
    let field = |k: &str| form.get(k).map_or("", String::as_str);
    let approve = field("action") == "approve";
    let message = match bank.decide(&id, approve, field("tan")) {
        Ok(()) if approve => "Freigegeben. Sie können zu finX zurückkehren.",
        Ok(()) => "Abgelehnt.",
        Err(AppError::WrongTan) => "Die TAN ist falsch.",
        Err(AppError::Unknown) => "Diese Freigabe wartet nicht mehr.",
    };
    app(&bank, Some(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_renders() {
        for page in ["login.html", "tan.html", "unknown.html", "app.html"] {
            let t = templates().get_template(page).expect(page);
            t.render(context! { title => "t", bank => "b", approvals => Vec::<i32>::new() })
                .expect(page);
        }
    }
}
