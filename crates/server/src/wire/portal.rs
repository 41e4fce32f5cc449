//! The privacy center's inputs: a session request (`POST /v1/portal/sessions`), the
//! `return_url` it links back to, the hosts links may name, and `serve --public-url`.

use super::*;

/// Longest `return_url` of a privacy-center session.
pub const MAX_RETURN_URL_CHARS: usize = 2_000;

/// A privacy-center session request, read and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortalBody {
    pub subject: String,
    pub return_url: String,
    pub locale: Option<String>,
}

/// Reads `{"subject": "...", "return_url": "https://...", "locale": "en"}` (the subject is
/// checked by the engine; the URL and locale here).
pub fn portal_request(body: &Value, locales: &[&str]) -> Result<PortalBody> {
    let Some(object) = body.as_object() else {
        return Err(Error::bad_input(
            "body",
            "must be an object {\"subject\": \"...\", \"return_url\": \"...\", \"locale\": \"...\"}",
        ));
    };
    let fields = Fields {
        object: known_fields(
            object,
            &["subject", "return_url", "locale"],
            "",
            "a privacy-center session field",
        )?,
        prefix: "",
    };
    let subject = fields.required_text("subject")?;
    let return_url = fields.required_text("return_url")?;
    check_return_url(&return_url)?;
    let locale = fields.text("locale")?;
    if let Some(locale) = &locale
        && !locales.contains(&locale.as_str())
    {
        return Err(Error::bad_input(
            "locale",
            format!(
                "is not a language of the privacy center; known: {}",
                locales.join(", ")
            ),
        ));
    }
    Ok(PortalBody {
        subject,
        return_url,
        locale,
    })
}

/// True for a host that names this machine (`localhost`, a `.localhost` name, a loopback
/// address), with or without a port.
pub fn is_local_host(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, port)| {
                if port.bytes().all(|byte| byte.is_ascii_digit()) {
                    host
                } else {
                    authority
                }
            }),
    };
    let host = host.to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// A host (and port) that may be written into a URL: letters, digits, `.-:[]`, 1 to 255.
pub fn is_url_authority(authority: &str) -> bool {
    !authority.is_empty()
        && authority.len() <= 255
        && authority
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b".-:[]".contains(&byte))
}

/// `localhost`, `127.0.0.1` or `[::1]`, with an optional port of 1 to 5 digits.
fn is_loopback_authority(authority: &str) -> bool {
    let (host, port) = match authority.strip_prefix("[::1]") {
        Some(port) => ("[::1]", port),
        None => authority.split_at(authority.find(':').unwrap_or(authority.len())),
    };
    let port_ok = port.is_empty()
        || port.strip_prefix(':').is_some_and(|digits| {
            (1..=5).contains(&digits.len()) && digits.bytes().all(|byte| byte.is_ascii_digit())
        });
    port_ok && ["localhost", "127.0.0.1", "[::1]"].contains(&host)
}

/// A page may link back to `url`: `https://HOST/...`, or `http://` on this machine, of
/// visible ASCII, with no user name or password in it.
pub fn check_return_url(url: &str) -> Result<()> {
    let refuse = |detail: &str| Err(Error::bad_input("return_url", detail.to_owned()));
    if url.chars().count() > MAX_RETURN_URL_CHARS {
        return refuse(&format!(
            "must be at most {MAX_RETURN_URL_CHARS} characters"
        ));
    }
    if !url
        .bytes()
        .all(|byte| (0x21..=0x7E).contains(&byte) && !b"\"<>\\^`{|}".contains(&byte))
    {
        return refuse("must be a URL of visible ASCII characters (percent-encode the rest)");
    }
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return refuse("must be an https URL (or http on localhost)");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return refuse("must not hold a user name or password");
    }
    if !is_url_authority(authority) {
        return refuse("must name a host");
    }
    if !https && !is_loopback_authority(authority) {
        return refuse("must be an https URL (or http on localhost)");
    }
    Ok(())
}

/// A server's public address for the privacy center's links: `https://HOST[:PORT]`, or
/// `http://` on localhost, with no path, user name or password (a trailing `/` is dropped).
pub fn public_url(text: &str) -> Result<String> {
    let trimmed = text.strip_suffix('/').unwrap_or(text);
    let refuse = || {
        Err(Error::bad_input(
            "public_url",
            "must be https://HOST[:PORT] (or http:// on localhost), without a path",
        ))
    };
    let (https, authority) = if let Some(rest) = trimmed.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = trimmed.strip_prefix("http://") {
        (false, rest)
    } else {
        return refuse();
    };
    if !is_url_authority(authority) || (!https && !is_loopback_authority(authority)) {
        return refuse();
    }
    Ok(trimmed.to_owned())
}
