//! Output formats of `rivulet consume`, kcat's `-f` tokens:
//!
//! | token | is |
//! |---|---|
//! | `%t` `%p` `%o` | topic, partition, offset |
//! | `%k` `%s` | key, value (empty when null) |
//! | `%K` `%S` | key and value length in bytes (-1 when null) |
//! | `%T` | timestamp (ms since the epoch) |
//! | `%h` | headers as `k=v,k=v` |
//! | `%%` `\n` `\r` `\t` `\\` | literal `%`, newline, carriage return, tab, backslash |
//!
//! `--json` prints one object per record instead, and `--property` keys select
//! Kafka's console consumer output ([`KafkaFormat`]).

use std::io::Write;

use rivulet_client::ConsumerRecord;
use serde_json::{json, Map, Value};

/// One piece of a parsed format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Literal(String),
    Topic,
    Partition,
    Offset,
    Key,
    Value,
    KeyLen,
    ValueLen,
    Timestamp,
    Headers,
}

/// Parses a kcat-style format string.
pub fn parse(format: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut literal = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => {
                let next = chars.next().ok_or("format ends with a lone %")?;
                let token = match next {
                    't' => Token::Topic,
                    'p' => Token::Partition,
                    'o' => Token::Offset,
                    'k' => Token::Key,
                    's' => Token::Value,
                    'K' => Token::KeyLen,
                    'S' => Token::ValueLen,
                    'T' => Token::Timestamp,
                    'h' => Token::Headers,
                    '%' => {
                        literal.push('%');
                        continue;
                    }
                    other => {
                        return Err(format!(
                            "unknown format token %{other} (use %t %p %o %k %s %K %S %T %h)"
                        ))
                    }
                };
                if !literal.is_empty() {
                    tokens.push(Token::Literal(std::mem::take(&mut literal)));
                }
                tokens.push(token);
            }
            '\\' => match chars.next() {
                Some('n') => literal.push('\n'),
                Some('r') => literal.push('\r'),
                Some('t') => literal.push('\t'),
                Some('\\') => literal.push('\\'),
                Some(other) => {
                    literal.push('\\');
                    literal.push(other);
                }
                None => literal.push('\\'),
            },
            other => literal.push(other),
        }
    }
    if !literal.is_empty() {
        tokens.push(Token::Literal(literal));
    }
    Ok(tokens)
}

fn len(bytes: &Option<bytes::Bytes>) -> String {
    bytes
        .as_ref()
        .map_or("-1".to_string(), |b| b.len().to_string())
}

/// Writes `record` per `tokens`.
pub fn write(
    out: &mut impl Write,
    tokens: &[Token],
    record: &ConsumerRecord,
) -> std::io::Result<()> {
    for token in tokens {
        match token {
            Token::Literal(text) => out.write_all(text.as_bytes())?,
            Token::Topic => out.write_all(record.topic.as_bytes())?,
            Token::Partition => write!(out, "{}", record.partition)?,
            Token::Offset => write!(out, "{}", record.offset)?,
            Token::Key => out.write_all(record.key.as_deref().unwrap_or_default())?,
            Token::Value => out.write_all(record.value.as_deref().unwrap_or_default())?,
            Token::KeyLen => out.write_all(len(&record.key).as_bytes())?,
            Token::ValueLen => out.write_all(len(&record.value).as_bytes())?,
            Token::Timestamp => write!(out, "{}", record.timestamp)?,
            Token::Headers => {
                let headers: Vec<String> = record
                    .headers
                    .iter()
                    .map(|h| {
                        format!(
                            "{}={}",
                            h.key,
                            String::from_utf8_lossy(h.value.as_deref().unwrap_or_default())
                        )
                    })
                    .collect();
                out.write_all(headers.join(",").as_bytes())?;
            }
        }
    }
    Ok(())
}

fn text(bytes: &Option<bytes::Bytes>) -> Value {
    match bytes {
        None => Value::Null,
        Some(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
    }
}

/// The record as one JSON line.
pub fn to_json(record: &ConsumerRecord) -> String {
    let headers: Map<String, Value> = record
        .headers
        .iter()
        .map(|h| (h.key.clone(), text(&h.value)))
        .collect();
    json!({
        "topic": &*record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": text(&record.key),
        "value": text(&record.value),
        "headers": headers,
    })
    .to_string()
}

/// Kafka's console consumer output (`DefaultMessageFormatter`), chosen with its
/// `--property` keys: `print.timestamp`, `print.partition`, `print.offset`,
/// `print.headers`, `print.key`, `print.value` (true/false) and `key.separator`
/// (tab), `line.separator` (newline), `headers.separator` (comma), `null.literal`
/// ("null"). Fields come in that order, each followed by the key separator, the
/// value by the line separator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaFormat {
    print_timestamp: bool,
    print_partition: bool,
    print_offset: bool,
    print_headers: bool,
    print_key: bool,
    print_value: bool,
    key_separator: String,
    line_separator: String,
    headers_separator: String,
    null_literal: String,
}

impl Default for KafkaFormat {
    fn default() -> Self {
        KafkaFormat {
            print_timestamp: false,
            print_partition: false,
            print_offset: false,
            print_headers: false,
            print_key: false,
            print_value: true,
            key_separator: "\t".into(),
            line_separator: "\n".into(),
            headers_separator: ",".into(),
            null_literal: "null".into(),
        }
    }
}

impl KafkaFormat {
    /// From `--property` pairs; a key the console consumer does not have is
    /// refused with what to use instead.
    pub fn from_properties(properties: &[(String, String)]) -> Result<KafkaFormat, String> {
        let mut format = KafkaFormat::default();
        let flag = |v: &str| v.trim().eq_ignore_ascii_case("true");
        for (key, value) in properties {
            match key.as_str() {
                "print.timestamp" => format.print_timestamp = flag(value),
                "print.partition" => format.print_partition = flag(value),
                "print.offset" => format.print_offset = flag(value),
                "print.headers" => format.print_headers = flag(value),
                "print.key" => format.print_key = flag(value),
                "print.value" => format.print_value = flag(value),
                "key.separator" => format.key_separator = value.clone(),
                "line.separator" => format.line_separator = value.clone(),
                "headers.separator" => format.headers_separator = value.clone(),
                "null.literal" => format.null_literal = value.clone(),
                other => return Err(unknown_consume_property(other)),
            }
        }
        Ok(format)
    }

    /// Writes `record` as Kafka's console consumer does.
    pub fn write(&self, out: &mut impl Write, record: &ConsumerRecord) -> std::io::Result<()> {
        let fields = [
            self.print_timestamp,
            self.print_partition,
            self.print_offset,
            self.print_headers,
            self.print_key,
        ];
        // After a field: the key separator if anything follows it, else the line's end.
        let separator = |after: usize| {
            if fields[after + 1..].iter().any(|f| *f) || self.print_value {
                &self.key_separator
            } else {
                &self.line_separator
            }
        };
        if self.print_timestamp {
            let kind = if record.log_append_time {
                "LogAppendTime"
            } else {
                "CreateTime"
            };
            write!(out, "{kind}:{}{}", record.timestamp, separator(0))?;
        }
        if self.print_partition {
            write!(out, "Partition:{}{}", record.partition, separator(1))?;
        }
        if self.print_offset {
            write!(out, "Offset:{}{}", record.offset, separator(2))?;
        }
        if self.print_headers {
            if record.headers.is_empty() {
                out.write_all(b"NO_HEADERS")?;
            }
            for (i, header) in record.headers.iter().enumerate() {
                if i > 0 {
                    out.write_all(self.headers_separator.as_bytes())?;
                }
                write!(out, "{}:", header.key)?;
                self.bytes(out, &header.value)?;
            }
            out.write_all(separator(3).as_bytes())?;
        }
        if self.print_key {
            self.bytes(out, &record.key)?;
            out.write_all(separator(4).as_bytes())?;
        }
        if self.print_value {
            self.bytes(out, &record.value)?;
            out.write_all(self.line_separator.as_bytes())?;
        }
        Ok(())
    }

    fn bytes(&self, out: &mut impl Write, bytes: &Option<bytes::Bytes>) -> std::io::Result<()> {
        match bytes {
            Some(b) => out.write_all(b),
            None => out.write_all(self.null_literal.as_bytes()),
        }
    }
}

/// Why `key` is not a console consumer property, and what to use instead.
fn unknown_consume_property(key: &str) -> String {
    use rivulet_client::config_keys::{check_key, did_you_mean, ClientKind};
    const KEYS: &[&str] = &[
        "print.timestamp",
        "print.partition",
        "print.offset",
        "print.headers",
        "print.key",
        "print.value",
        "key.separator",
        "line.separator",
        "headers.separator",
        "null.literal",
    ];
    if check_key(ClientKind::Consumer, key).is_none() {
        return format!(
            "--property {key}: a consumer config, not an output property; use -X {key}=... (or --consumer-property)"
        );
    }
    if matches!(
        key,
        "parse.key" | "parse.headers" | "null.marker" | "ignore.error"
    ) {
        return format!(
            "--property {key}: a produce property; consume takes {}",
            KEYS.join(", ")
        );
    }
    match did_you_mean(key, KEYS.iter().copied()) {
        Some(near) => format!("--property {key}: unknown (did you mean {near}?)"),
        None => format!(
            "--property {key}: unknown; consume takes {}",
            KEYS.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kcat_tokens_and_escapes_parse() {
        let tokens = parse("%t/%p@%o: %k=%s (%S)\\n").unwrap();
        assert_eq!(tokens[0], Token::Topic);
        assert_eq!(tokens.last(), Some(&Token::Literal(")\n".into())));
        assert!(parse("%x").is_err());
        assert_eq!(parse("100%%").unwrap(), vec![Token::Literal("100%".into())]);
    }

    fn record(key: Option<&'static str>, value: Option<&'static str>) -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            timestamp: 1000,
            log_append_time: false,
            key: key.map(|k| bytes::Bytes::from_static(k.as_bytes())),
            value: value.map(|v| bytes::Bytes::from_static(v.as_bytes())),
            headers: Vec::new(),
            leader_epoch: 0,
        }
    }

    fn kafka(properties: &[(&str, &str)], record: &ConsumerRecord) -> String {
        let pairs: Vec<(String, String)> = properties
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut out = Vec::new();
        KafkaFormat::from_properties(&pairs)
            .unwrap()
            .write(&mut out, record)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn kafka_properties_print_as_the_console_consumer() {
        let r = record(Some("k"), Some("v"));
        assert_eq!(kafka(&[], &r), "v\n");
        assert_eq!(kafka(&[("print.key", "true")], &r), "k\tv\n");
        assert_eq!(
            kafka(
                &[
                    ("print.timestamp", "true"),
                    ("print.partition", "true"),
                    ("print.offset", "true"),
                    ("print.headers", "true"),
                    ("print.key", "true"),
                    ("key.separator", " | ")
                ],
                &r
            ),
            "CreateTime:1000 | Partition:2 | Offset:7 | NO_HEADERS | k | v\n"
        );
        assert_eq!(
            kafka(&[("print.key", "true"), ("print.value", "false")], &r),
            "k\n"
        );
        let nulls = record(None, None);
        assert_eq!(
            kafka(&[("print.key", "true"), ("null.literal", "NULL")], &nulls),
            "NULL\tNULL\n"
        );
    }

    #[test]
    fn unknown_consume_properties_say_what_to_use() {
        let refuse = |k: &str| KafkaFormat::from_properties(&[(k.into(), "x".into())]).unwrap_err();
        assert!(refuse("max.poll.records").contains("use -X max.poll.records"));
        assert!(refuse("print.kye").contains("did you mean print.key?"));
        assert!(refuse("parse.key").contains("a produce property"));
    }
}
