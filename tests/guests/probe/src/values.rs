//! The protocol's JSON encoding of typed values ("V") and parameters ("P").

use flowhost_sdk::{Column, Params, Value};
use serde_json::{Map, Value as Json, json};

/// `{"t": "<case>", "v": <payload>}`; `null` has no `v`, `bytes` is an array of numbers, `json`
/// is the document's text, every other text-carrying case a string.
pub fn encode_value(value: &Value) -> Json {
    let payload = match value {
        Value::Null => return json!({"t": "null"}),
        Value::Boolean(b) => json!(b),
        Value::Int(i) => json!(i),
        // NaN and infinities have no JSON form; they come out as null.
        Value::Float(f) => json!(f),
        Value::Bytes(b) => json!(b),
        other => json!(other.as_str().unwrap_or_default()),
    };
    json!({"t": value.kind(), "v": payload})
}

pub fn encode_row(row: &[Value]) -> Json {
    Json::Array(row.iter().map(encode_value).collect())
}

pub fn encode_columns(columns: &[Column]) -> Json {
    columns
        .iter()
        .map(|c| json!({"name": c.name, "type": c.type_name}))
        .collect()
}

pub fn decode_value(v: &Json) -> Result<Value, String> {
    let obj = v.as_object().ok_or_else(|| {
        format!("a value must be an object like {{\"t\":\"int\",\"v\":1}}, got {v}")
    })?;
    let t = obj
        .get("t")
        .and_then(Json::as_str)
        .ok_or_else(|| format!("value {v} has no string \"t\""))?;
    if t == "null" {
        return Ok(Value::Null);
    }
    let payload = obj
        .get("v")
        .ok_or_else(|| format!("value {v} has no \"v\""))?;
    let text = || {
        payload
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("a {t} value needs a string \"v\", got {payload}"))
    };
    Ok(match t {
        "boolean" => Value::Boolean(
            payload
                .as_bool()
                .ok_or_else(|| format!("a boolean value needs true or false, got {payload}"))?,
        ),
        "int" => Value::Int(
            payload
                .as_i64()
                .ok_or_else(|| format!("an int value needs an integer, got {payload}"))?,
        ),
        "float" => Value::Float(
            payload
                .as_f64()
                .ok_or_else(|| format!("a float value needs a number, got {payload}"))?,
        ),
        "bytes" => Value::Bytes(decode_bytes(payload)?),
        "decimal" => Value::Decimal(text()?),
        "text" => Value::Text(text()?),
        "uuid" => Value::Uuid(text()?),
        "date" => Value::Date(text()?),
        "time" => Value::Time(text()?),
        "timestamp" => Value::Timestamp(text()?),
        "timestamp-tz" => Value::TimestampTz(text()?),
        "json" => Value::Json(text()?),
        other => return Err(format!("unknown value type \"{other}\"")),
    })
}

fn decode_bytes(payload: &Json) -> Result<Vec<u8>, String> {
    let items = payload
        .as_array()
        .ok_or_else(|| format!("a bytes value needs an array of numbers, got {payload}"))?;
    items
        .iter()
        .map(|b| {
            b.as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .ok_or_else(|| format!("a byte must be 0-255, got {b}"))
        })
        .collect()
}

/// An array of V is positional, an object of name → V is named, absent (or null) is none.
pub fn decode_params(p: Option<&Json>) -> Result<Params, String> {
    match p {
        None | Some(Json::Null) => Ok(Params::new()),
        Some(Json::Array(items)) => {
            let mut params = Params::new();
            for item in items {
                params.add(decode_value(item)?);
            }
            Ok(params)
        }
        Some(Json::Object(map)) => decode_named(map),
        Some(other) => Err(format!("params must be an array or an object, got {other}")),
    }
}

fn decode_named(map: &Map<String, Json>) -> Result<Params, String> {
    let mut params = Params::new();
    for (name, v) in map {
        params.set(
            name.clone(),
            decode_value(v).map_err(|e| format!("{name}: {e}"))?,
        );
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_round_trips() {
        let values = [
            Value::Null,
            Value::Boolean(true),
            Value::Int(-5),
            Value::Float(1.5),
            Value::Decimal("4.20".into()),
            Value::Text("t".into()),
            Value::Bytes(vec![0, 255]),
            Value::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
            Value::Date("2024-01-31".into()),
            Value::Time("09:30:00".into()),
            Value::Timestamp("2024-01-31T09:30:00".into()),
            Value::TimestampTz("2024-01-31T09:30:00Z".into()),
            Value::Json("{\"a\":1}".into()),
        ];
        for v in values {
            assert_eq!(decode_value(&encode_value(&v)).unwrap(), v);
        }
        assert_eq!(encode_value(&Value::Null), json!({"t": "null"}));
        assert_eq!(
            encode_value(&Value::TimestampTz("x".into())),
            json!({"t": "timestamp-tz", "v": "x"})
        );
    }

    #[test]
    fn bad_values_are_explained() {
        assert!(decode_value(&json!({"t": "int", "v": "1"})).is_err());
        assert!(decode_value(&json!({"t": "bytes", "v": [256]})).is_err());
        assert!(decode_value(&json!({"t": "nope", "v": 1})).is_err());
        assert!(decode_value(&json!(1)).is_err());
    }

    #[test]
    fn params_positional_named_or_none() {
        assert!(decode_params(None).unwrap().is_empty());
        let p = decode_params(Some(&json!([{"t": "int", "v": 1}, {"t": "null"}]))).unwrap();
        assert_eq!(p, Params::new().push(1).push(Value::Null));
        let p = decode_params(Some(&json!({"id": {"t": "text", "v": "a"}}))).unwrap();
        assert_eq!(p, Params::new().bind("id", "a"));
        assert!(decode_params(Some(&json!("x"))).is_err());
    }
}
