//! The `remote` server kind's fields: the URL it is reached at, and header templates whose
//! `${NAME}` references name the entry's secrets. Checked as the catalog is read; filled in only
//! when the pool connects, so no secret value is ever part of a definition.

use hyper::Uri;
use hyper::header::{HeaderName, HeaderValue};

use super::ServerDef;

/// Headers the transport sets itself; a template may not replace them.
const RESERVED_HEADERS: &[&str] = &[
    "accept",
    "connection",
    "content-length",
    "content-type",
    "host",
    "last-event-id",
    "mcp-method",
    "mcp-name",
    "mcp-protocol-version",
    "mcp-session-id",
    "transfer-encoding",
];

/// A template cut into its literal text and its secret references.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    Secret(&'a str),
}

/// Cuts `template` at each `${NAME}`; a `$` not followed by a well-formed reference is an error,
/// so a typo never reaches the server as literal text.
pub fn pieces(template: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        if at > 0 {
            pieces.push(Piece::Text(&rest[..at]));
        }
        let after = &rest[at + 1..];
        let Some(name) = after
            .strip_prefix('{')
            .and_then(|inner| inner.split_once('}'))
            .map(|(name, _)| name)
        else {
            return Err("a `$` must start a ${NAME} secret reference".into());
        };
        mcp_gateway_proto::validate_secret_name(name).map_err(|err| err.to_string())?;
        pieces.push(Piece::Secret(name));
        rest = &after[name.len() + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

/// `template` with every `${NAME}` replaced by `lookup(NAME)`.
pub fn fill<'a>(
    template: &'a str,
    lookup: impl Fn(&str) -> Option<&'a str>,
) -> Result<String, String> {
    let mut filled = String::new();
    for piece in pieces(template)? {
        match piece {
            Piece::Text(text) => filled.push_str(text),
            Piece::Secret(name) => {
                filled.push_str(lookup(name).ok_or_else(|| format!("no value for {name}"))?)
            }
        }
    }
    Ok(filled)
}

/// The URL's `scheme://host:port`, what `server ls` shows of a remote server: never its path or
/// query, which may carry a key.
pub fn origin(url: &str) -> String {
    match url.parse::<Uri>() {
        Ok(uri) => {
            let scheme = uri.scheme_str().unwrap_or("http");
            let port = uri
                .port_u16()
                .unwrap_or(if scheme == "https" { 443 } else { 80 });
            format!("{scheme}://{}:{port}", uri.host().unwrap_or_default())
        }
        Err(_) => String::new(),
    }
}

/// The checks of a remote entry: an http(s) URL without credentials, headers with valid names
/// that the transport does not set itself, and secret references to the entry's own secrets.
pub fn validate(def: &ServerDef) -> Result<(), String> {
    let Some(url) = &def.url else {
        return Err("a remote server needs a url".into());
    };
    let uri: Uri = url
        .parse()
        .map_err(|err| format!("url {url:?} is not a URL: {err}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(format!("url {url:?} must start with http:// or https://"));
    }
    let Some(authority) = uri.authority() else {
        return Err(format!("url {url:?} has no host"));
    };
    if authority.as_str().contains('@') {
        return Err("the url may not hold credentials; put them in a header from a secret".into());
    }
    for (name, template) in &def.headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("header {name:?} is not a valid header name"))?;
        if RESERVED_HEADERS.contains(&header.as_str()) {
            return Err(format!(
                "header {name} is set by mcp-gateway itself and cannot be given"
            ));
        }
        let pieces = pieces(template).map_err(|err| format!("header {name}: {err}"))?;
        for piece in &pieces {
            match piece {
                Piece::Secret(secret) if !def.secrets.iter().any(|s| s == secret) => {
                    return Err(format!(
                        "header {name} uses ${{{secret}}}, which is not one of the server's secrets"
                    ));
                }
                Piece::Text(text) if HeaderValue::from_str(text).is_err() => {
                    return Err(format!(
                        "header {name} holds characters a header value cannot carry"
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::kinds::check;

    fn remote(url: &str, headers: &[(&str, &str)], secrets: &[&str]) -> ServerDef {
        ServerDef {
            kind: super::super::ServerKind::Remote,
            url: Some(url.into()),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            secrets: secrets.iter().map(|s| (*s).into()).collect(),
            ..ServerDef::default()
        }
    }

    #[test]
    fn templates_are_cut_at_references() {
        assert_eq!(
            pieces("Bearer ${TOKEN}").unwrap(),
            [Piece::Text("Bearer "), Piece::Secret("TOKEN")]
        );
        assert_eq!(
            pieces("${A}-${B}").unwrap(),
            [Piece::Secret("A"), Piece::Text("-"), Piece::Secret("B")]
        );
        assert!(pieces("cost $5").is_err());
        assert!(pieces("${unclosed").is_err());
        assert!(pieces("${bad name}").is_err());
        let filled = fill("Bearer ${TOKEN}", |n| (n == "TOKEN").then_some("abc"));
        assert_eq!(filled.unwrap(), "Bearer abc");
        assert!(fill("${OTHER}", |_| None).is_err());
    }

    #[test]
    fn a_remote_entry_is_checked() {
        let ok = remote(
            "https://example.com/mcp",
            &[("Authorization", "Bearer ${TOKEN}")],
            &["TOKEN"],
        );
        assert_eq!(validate(&ok), Ok(()));
        let undeclared = remote("http://h/mcp", &[("X-Key", "${KEY}")], &[]);
        assert!(validate(&undeclared).unwrap_err().contains("not one of"));
        assert!(validate(&remote("ftp://h/", &[], &[])).is_err());
        assert!(validate(&remote("http://u:p@h/", &[], &[])).is_err());
        assert!(validate(&remote("not a url", &[], &[])).is_err());
        let reserved = remote("http://h/", &[("Mcp-Session-Id", "x")], &[]);
        assert!(
            validate(&reserved)
                .unwrap_err()
                .contains("set by mcp-gateway")
        );
    }

    #[test]
    fn each_kind_refuses_the_fields_it_gives_no_meaning() {
        let text = r#"
            kind = "remote"
            url = "http://127.0.0.1:8080/mcp"
            headers = { Authorization = "Bearer ${TOKEN}" }
            secrets = ["TOKEN"]
        "#;
        let def: ServerDef = toml::from_str(text).unwrap();
        assert_eq!(check(&def), Ok(()));
        let with_image: ServerDef = toml::from_str(&format!("{text}\nimage = \"x\"")).unwrap();
        assert_eq!(
            check(&with_image).unwrap_err(),
            "image has no meaning for a remote server"
        );
        let with_mounts: ServerDef = toml::from_str(&format!(
            "{text}\nmounts = [{{ source = \"/srv\", target = \"/srv\" }}]"
        ))
        .unwrap();
        assert!(check(&with_mounts).unwrap_err().contains("mounts"));
        let no_url: ServerDef = toml::from_str("kind = \"remote\"").unwrap();
        assert!(check(&no_url).unwrap_err().contains("needs a url"));
        let container: ServerDef = toml::from_str("image = \"i\"\nurl = \"http://h/\"").unwrap();
        assert_eq!(
            check(&container).unwrap_err(),
            "url has no meaning for a container server"
        );
        // A container entry is written as before: no `kind`.
        let plain: ServerDef = toml::from_str("image = \"i\"").unwrap();
        assert!(!toml::to_string(&plain).unwrap().contains("kind"));
    }

    #[test]
    fn the_origin_has_no_path() {
        assert_eq!(
            origin("https://example.com/mcp?key=1"),
            "https://example.com:443"
        );
        assert_eq!(origin("http://127.0.0.1:8080/mcp"), "http://127.0.0.1:8080");
    }
}
