//! How `rivulet produce` turns a line into a record, with Kafka's console
//! producer `--property` keys (its `LineMessageReader`):
//!
//! | key | default | is |
//! |---|---|---|
//! | `parse.key` | false | the line holds a key before `key.separator` |
//! | `key.separator` | tab | between key and value |
//! | `parse.headers` | false | the line starts with headers before `headers.delimiter` |
//! | `headers.delimiter` | tab | between the headers and the rest |
//! | `headers.separator` | `,` | between headers |
//! | `headers.key.separator` | `:` | between a header's key and value |
//! | `null.marker` | none | a key, value or header value equal to it is null |
//! | `ignore.error` | false | a line without a separator is all value, not an error |
//!
//! kcat's `-K SEP` is `parse.key=true` with `key.separator=SEP` and
//! `ignore.error=true` (a line without SEP has no key).

use bytes::Bytes;

/// The parts of one line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedLine {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// The console producer's line format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineReader {
    parse_key: bool,
    key_separator: String,
    parse_headers: bool,
    headers_delimiter: String,
    headers_separator: String,
    headers_key_separator: String,
    null_marker: Option<String>,
    ignore_error: bool,
}

impl Default for LineReader {
    fn default() -> Self {
        LineReader {
            parse_key: false,
            key_separator: "\t".into(),
            parse_headers: false,
            headers_delimiter: "\t".into(),
            headers_separator: ",".into(),
            headers_key_separator: ":".into(),
            null_marker: None,
            ignore_error: false,
        }
    }
}

const KEYS: &[&str] = &[
    "parse.key",
    "key.separator",
    "parse.headers",
    "headers.delimiter",
    "headers.separator",
    "headers.key.separator",
    "null.marker",
    "ignore.error",
];

impl LineReader {
    /// From `--property` pairs and kcat's `-K`; refuses keys the console producer
    /// does not have, and separators that would make lines ambiguous (as Kafka).
    pub fn new(
        properties: &[(String, String)],
        kcat_key_separator: Option<&str>,
    ) -> Result<LineReader, String> {
        let mut reader = LineReader::default();
        if let Some(separator) = kcat_key_separator {
            reader.parse_key = true;
            reader.key_separator = separator.to_string();
            reader.ignore_error = true;
        }
        let flag = |v: &str| v.trim().eq_ignore_ascii_case("true");
        for (key, value) in properties {
            match key.as_str() {
                "parse.key" => reader.parse_key = flag(value),
                "key.separator" => reader.key_separator = value.clone(),
                "parse.headers" => reader.parse_headers = flag(value),
                "headers.delimiter" => reader.headers_delimiter = value.clone(),
                "headers.separator" => reader.headers_separator = value.clone(),
                "headers.key.separator" => reader.headers_key_separator = value.clone(),
                "null.marker" => reader.null_marker = Some(value.clone()),
                "ignore.error" => reader.ignore_error = flag(value),
                other => return Err(unknown_produce_property(other)),
            }
        }
        let separators = [
            ("key.separator", &reader.key_separator),
            ("headers.delimiter", &reader.headers_delimiter),
            ("headers.separator", &reader.headers_separator),
            ("headers.key.separator", &reader.headers_key_separator),
        ];
        for (name, separator) in separators {
            if separator.is_empty() {
                return Err(format!("--property {name} must not be empty"));
            }
            if reader.null_marker.as_ref() == Some(separator) {
                return Err(format!("null.marker and {name} may not be equal"));
            }
        }
        for (a, b) in [(1, 2), (1, 3), (2, 3)] {
            if separators[a].1 == separators[b].1 {
                return Err(format!(
                    "{} and {} may not be equal",
                    separators[a].0, separators[b].0
                ));
            }
        }
        Ok(reader)
    }

    /// Splits `line` (line `number`, for errors) into headers, key and value.
    pub fn parse(&self, line: &str, number: usize) -> Result<ParsedLine, String> {
        let mut rest = line;
        let mut parsed = ParsedLine::default();
        if self.parse_headers {
            if let Some(headers) = self.split(
                &mut rest,
                &self.headers_delimiter,
                "headers delimiter",
                line,
                number,
            )? {
                if self.null_marker.as_deref() != Some(headers) {
                    parsed.headers = self.headers(headers, number)?;
                }
            }
        }
        if self.parse_key {
            if let Some(key) = self.split(
                &mut rest,
                &self.key_separator,
                "key separator",
                line,
                number,
            )? {
                parsed.key = self.nullable(key);
            }
        }
        parsed.value = self.nullable(rest);
        Ok(parsed)
    }

    /// Takes the part of `rest` before `separator` off it.
    fn split<'a>(
        &self,
        rest: &mut &'a str,
        separator: &str,
        what: &str,
        line: &str,
        number: usize,
    ) -> Result<Option<&'a str>, String> {
        match rest.split_once(separator) {
            Some((before, after)) => {
                *rest = after;
                Ok(Some(before))
            }
            None if self.ignore_error => Ok(None),
            None => Err(format!(
                "no {what} found on line number {number}: '{line}' (add ignore.error=true to send such lines without it)"
            )),
        }
    }

    fn headers(&self, text: &str, number: usize) -> Result<Vec<(String, Option<Bytes>)>, String> {
        let mut headers = Vec::new();
        for pair in text.split(self.headers_separator.as_str()) {
            match pair.split_once(self.headers_key_separator.as_str()) {
                Some((key, _)) if self.null_marker.as_deref() == Some(key) => {
                    return Err(format!(
                        "header keys may not be the null marker '{key}' (line number {number})"
                    ))
                }
                Some((key, value)) => headers.push((key.to_string(), self.nullable(value))),
                None if self.ignore_error => headers.push((pair.to_string(), None)),
                None => {
                    return Err(format!(
                        "no header key separator found in pair '{pair}' on line number {number}"
                    ))
                }
            }
        }
        Ok(headers)
    }

    fn nullable(&self, text: &str) -> Option<Bytes> {
        match &self.null_marker {
            Some(marker) if marker == text => None,
            _ => Some(Bytes::from(text.to_string())),
        }
    }
}

/// Why `key` is not a console producer property, and what to use instead.
fn unknown_produce_property(key: &str) -> String {
    use rivulet_client::config_keys::{check_key, did_you_mean, ClientKind};
    if check_key(ClientKind::Producer, key).is_none() {
        return format!(
            "--property {key}: a producer config, not a line property; use -X {key}=... (or --producer-property)"
        );
    }
    if key == "null.literal" {
        return "--property null.literal: that is the console consumer's; the producer's is null.marker".into();
    }
    if key.starts_with("print.") || key == "line.separator" {
        return format!(
            "--property {key}: a consume property; produce takes {}",
            KEYS.join(", ")
        );
    }
    match did_you_mean(key, KEYS.iter().copied()) {
        Some(near) => format!("--property {key}: unknown (did you mean {near}?)"),
        None => format!(
            "--property {key}: unknown; produce takes {}",
            KEYS.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(properties: &[(&str, &str)]) -> LineReader {
        let pairs: Vec<(String, String)> = properties
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LineReader::new(&pairs, None).unwrap()
    }

    fn b(text: &str) -> Option<Bytes> {
        Some(Bytes::from(text.to_string()))
    }

    #[test]
    fn keys_and_headers_parse_as_the_console_producer() {
        let r = reader(&[("parse.key", "true"), ("key.separator", ":")]);
        let line = r.parse("k1:v:1", 1).unwrap();
        assert_eq!((line.key, line.value), (b("k1"), b("v:1")));
        assert_eq!(
            r.parse("novalue", 3).unwrap_err(),
            "no key separator found on line number 3: 'novalue' (add ignore.error=true to send such lines without it)"
        );
        let r = reader(&[
            ("parse.headers", "true"),
            ("parse.key", "true"),
            ("null.marker", "NULL"),
        ]);
        let line = r.parse("h1:a,h2:NULL\tNULL\tv", 1).unwrap();
        assert_eq!(
            line.headers,
            vec![("h1".into(), b("a")), ("h2".into(), None)]
        );
        assert_eq!((line.key, line.value), (None, b("v")));
    }

    #[test]
    fn kcat_key_separator_tolerates_lines_without_it() {
        let r = LineReader::new(&[], Some(":")).unwrap();
        let line = r.parse("nokey", 1).unwrap();
        assert_eq!((line.key, line.value), (None, b("nokey")));
    }

    #[test]
    fn ambiguous_separators_and_unknown_keys_are_refused() {
        let pairs = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert_eq!(
            LineReader::new(&pairs("null.marker", "\t"), None).unwrap_err(),
            "null.marker and key.separator may not be equal"
        );
        assert!(LineReader::new(&pairs("linger.ms", "5"), None)
            .unwrap_err()
            .contains("use -X linger.ms"));
        assert!(LineReader::new(&pairs("parse.kye", "true"), None)
            .unwrap_err()
            .contains("did you mean parse.key?"));
        assert!(LineReader::new(&pairs("null.literal", "x"), None)
            .unwrap_err()
            .contains("null.marker"));
    }
}
