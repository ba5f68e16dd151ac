//! `Mcp-Param-{Name}` headers of 2026-07-28 `tools/call` POSTs (SEP-2243): a tool may mark
//! properties of its `inputSchema` with `x-mcp-header: NAME`, and a client then mirrors those
//! arguments into headers so that intermediaries can route on them without reading bodies. A
//! gateway that reads the body must refuse a header that disagrees with it, since something in
//! front may have routed on the header while the call acts on the body.
//!
//! The rules, from the transport specification: only properties reached through plain
//! `properties` chains count, of type `string`, `integer` or `boolean`; names are HTTP tokens,
//! unique without regard to case. A tool whose annotations break these rules is one clients drop,
//! and its headers are not checked. An argument that is absent or `null` expects no header; one
//! that is present needs its header, with the same value (integers compared as numbers, values
//! wrapped as `=?base64?…?=` decoded first).

use hyper::header::HeaderMap;
use serde_json::{Map, Value};

use super::modern::decode;

/// The header prefix, lowercase as `HeaderMap` keeps names.
const PREFIX: &str = "mcp-param-";

/// One annotated property: the header's name and the path of keys to the argument.
#[derive(Debug, PartialEq)]
struct Annotation {
    name: String,
    path: Vec<String>,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    String,
    Integer,
    Boolean,
}

/// The annotations of `schema`, or `None` when any of them is invalid (the tool is one clients
/// drop, so nothing is expected of them).
fn annotations(schema: &Map<String, Value>) -> Option<Vec<Annotation>> {
    let mut found = Vec::new();
    collect(schema, &mut Vec::new(), &mut found)?;
    let mut names: Vec<String> = found.iter().map(|a| a.name.to_ascii_lowercase()).collect();
    names.sort();
    let unique = names.windows(2).all(|pair| pair[0] != pair[1]);
    unique.then_some(found)
}

fn collect(
    schema: &Map<String, Value>,
    path: &mut Vec<String>,
    found: &mut Vec<Annotation>,
) -> Option<()> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Some(());
    };
    for (key, property) in properties {
        let Some(property) = property.as_object() else {
            continue;
        };
        path.push(key.clone());
        if let Some(name) = property.get("x-mcp-header") {
            let name = name.as_str().filter(|n| is_token(n))?;
            let kind = match property.get("type").and_then(Value::as_str) {
                Some("string") => Kind::String,
                Some("integer") => Kind::Integer,
                Some("boolean") => Kind::Boolean,
                _ => return None,
            };
            found.push(Annotation {
                name: name.to_owned(),
                path: path.clone(),
                kind,
            });
        }
        collect(property, path, found)?;
        path.pop();
    }
    Some(())
}

/// An HTTP token (RFC 9110 §5.6.2): what a header name may be.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Checks the `Mcp-Param-*` headers of a call of the tool with `schema` and `arguments`.
pub fn check(
    headers: &HeaderMap,
    schema: &Map<String, Value>,
    arguments: Option<&Value>,
) -> Result<(), String> {
    let Some(annotations) = annotations(schema) else {
        return Ok(());
    };
    for annotation in annotations {
        let header = format!("{PREFIX}{}", annotation.name.to_ascii_lowercase());
        let shown = format!("Mcp-Param-{}", annotation.name);
        let values: Vec<_> = headers.get_all(&header).iter().collect();
        if values.len() > 1 {
            return Err(format!("the {shown} header is given more than once"));
        }
        let argument = arguments
            .and_then(|arguments| {
                let mut path = annotation.path.iter();
                path.try_fold(arguments, |value, key| value.get(key))
            })
            .filter(|value| !value.is_null());
        let argument = match argument {
            Some(argument) => argument,
            None => continue,
        };
        let field = annotation.path.join(".");
        let Some(value) = values.first() else {
            return Err(format!("missing {shown} header for the argument {field}"));
        };
        let value = value
            .to_str()
            .ok()
            .and_then(decode)
            .ok_or_else(|| format!("the {shown} header is neither ASCII nor valid base64"))?;
        let agrees = match annotation.kind {
            Kind::String => argument.as_str() == Some(value.as_str()),
            Kind::Boolean => argument.as_bool().map(|b| b.to_string()) == Some(value.clone()),
            Kind::Integer => {
                let header = value.trim().parse::<f64>().ok();
                header.is_some() && argument.as_f64() == header
            }
        };
        if !agrees {
            return Err(format!(
                "{shown} {value:?} does not match the body's argument {field} {argument}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn region() -> Map<String, Value> {
        schema(json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "limits": {"type": "object", "properties": {
                "count": {"type": "integer", "x-mcp-header": "Count"},
                "dry": {"type": "boolean", "x-mcp-header": "Dry-Run"},
            }},
            "other": {"type": "string"},
        }}))
    }

    #[test]
    fn headers_that_mirror_the_arguments_pass() {
        let arguments = json!({"region": "eu-west", "limits": {"count": 42, "dry": true}});
        let good = headers(&[
            ("mcp-param-region", "eu-west"),
            ("mcp-param-count", "42"),
            ("mcp-param-dry-run", "true"),
        ]);
        assert_eq!(check(&good, &region(), Some(&arguments)), Ok(()));
        let encoded = headers(&[
            ("mcp-param-region", "=?base64?ZXUtd2VzdA==?="),
            ("mcp-param-count", "42.0"),
            ("mcp-param-dry-run", "true"),
        ]);
        assert_eq!(check(&encoded, &region(), Some(&arguments)), Ok(()));
    }

    #[test]
    fn absent_and_null_arguments_expect_no_header() {
        let arguments = json!({"region": null});
        assert_eq!(
            check(&HeaderMap::new(), &region(), Some(&arguments)),
            Ok(())
        );
        assert_eq!(check(&HeaderMap::new(), &region(), None), Ok(()));
    }

    #[test]
    fn each_disagreement_is_named() {
        let arguments = json!({"region": "eu-west", "limits": {"count": 42}});
        let cases: [(&[(&str, &str)], &str); 5] = [
            (
                &[("mcp-param-count", "42")],
                "missing Mcp-Param-Region header",
            ),
            (
                &[("mcp-param-region", "us-east"), ("mcp-param-count", "42")],
                "Mcp-Param-Region \"us-east\" does not match",
            ),
            (
                &[("mcp-param-region", "eu-west"), ("mcp-param-count", "43")],
                "Mcp-Param-Count \"43\" does not match the body's argument limits.count 42",
            ),
            (
                &[
                    ("mcp-param-region", "eu-west"),
                    ("mcp-param-region", "eu-west"),
                ],
                "more than once",
            ),
            (
                &[
                    ("mcp-param-region", "=?base64?!!!?="),
                    ("mcp-param-count", "42"),
                ],
                "neither ASCII nor valid base64",
            ),
        ];
        for (pairs, expected) in cases {
            let error = check(&headers(pairs), &region(), Some(&arguments)).unwrap_err();
            assert!(error.contains(expected), "{error} lacks {expected}");
        }
    }

    #[test]
    fn a_tool_with_invalid_annotations_is_not_checked() {
        let arguments = json!({"a": "x", "b": 1.5});
        for invalid in [
            json!({"properties": {"a": {"type": "string", "x-mcp-header": "Same"},
                                  "b": {"type": "string", "x-mcp-header": "same"}}}),
            json!({"properties": {"b": {"type": "number", "x-mcp-header": "B"}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": "not a token"}}}),
        ] {
            assert_eq!(annotations(&schema(invalid.clone())), None, "{invalid}");
            assert_eq!(
                check(&HeaderMap::new(), &schema(invalid), Some(&arguments)),
                Ok(())
            );
        }
    }
}
