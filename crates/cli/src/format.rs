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
//! `--json` prints one object per record instead.

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
}
