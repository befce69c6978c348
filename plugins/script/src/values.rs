//! Between Rhai values and source attributes: an attribute with one value is a string, one
//! with several an array of strings; back from a script, a string, a number or a bool is one
//! value, an array is several, and `()` is none.

use crate::Attributes;
use rhai::{Array, Dynamic, Map};

/// Attributes as a Rhai object map.
pub fn to_map(attributes: Attributes) -> Map {
    let mut map = Map::new();
    for (name, mut values) in attributes {
        let value = if values.len() == 1 {
            Dynamic::from(values.pop().unwrap_or_default())
        } else {
            Dynamic::from_array(values.into_iter().map(Dynamic::from).collect())
        };
        map.insert(name.into(), value);
    }
    map
}

/// A Rhai value as attribute values.
pub fn to_values(value: Dynamic) -> Result<Vec<String>, String> {
    if value.is_unit() {
        return Ok(Vec::new());
    }
    if value.is_array() {
        let array: Array = value.cast();
        let mut out = Vec::with_capacity(array.len());
        for v in array {
            if v.is_array() || v.is_map() {
                return Err(format!("a list may hold only text, got {}", v.type_name()));
            }
            if !v.is_unit() {
                out.push(scalar(v)?);
            }
        }
        return Ok(out);
    }
    Ok(vec![scalar(value)?])
}

fn scalar(v: Dynamic) -> Result<String, String> {
    if v.is_map() {
        return Err("a value may not be an object map".to_string());
    }
    if v.is_string() {
        return Ok(v.into_string().unwrap_or_default());
    }
    Ok(v.to_string())
}

/// A Rhai object map as attributes, in the map's (sorted) key order.
pub fn from_map(map: Map) -> Result<Attributes, String> {
    let mut out = Vec::with_capacity(map.len());
    for (name, value) in map {
        let values = to_values(value).map_err(|e| format!("key `{name}`: {e}"))?;
        out.push((name.to_string(), values));
    }
    Ok(out)
}

/// JSON as a Rhai value: objects become maps, arrays arrays, numbers ints or floats.
pub fn from_json(v: serde_json::Value) -> Dynamic {
    use serde_json::Value;
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => b.into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().unwrap_or(0.0).into(),
        },
        Value::String(s) => s.into(),
        Value::Array(a) => Dynamic::from_array(a.into_iter().map(from_json).collect()),
        Value::Object(o) => {
            let map: Map = o
                .into_iter()
                .map(|(k, v)| (k.into(), from_json(v)))
                .collect();
            Dynamic::from_map(map)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_is_a_string_several_an_array_and_back() {
        let attrs = vec![
            ("username".to_string(), vec!["alice".to_string()]),
            ("cards".to_string(), vec!["C1".into(), "C2".into()]),
            ("empty".to_string(), vec![]),
        ];
        let map = to_map(attrs);
        assert!(map["username"].is_string());
        assert_eq!(map["cards"].clone().cast::<Array>().len(), 2);
        let back = from_map(map).unwrap();
        assert_eq!(
            back,
            vec![
                (
                    "cards".to_string(),
                    vec!["C1".to_string(), "C2".to_string()]
                ),
                ("empty".to_string(), vec![]),
                ("username".to_string(), vec!["alice".to_string()]),
            ]
        );
    }

    #[test]
    fn numbers_and_bools_are_text_and_unit_is_nothing() {
        assert_eq!(to_values(Dynamic::from(42_i64)).unwrap(), ["42"]);
        assert_eq!(to_values(Dynamic::from(true)).unwrap(), ["true"]);
        assert!(to_values(Dynamic::UNIT).unwrap().is_empty());
        let nested = Dynamic::from_array(vec![Dynamic::from_array(vec![])]);
        assert!(to_values(nested).is_err());
    }
}
