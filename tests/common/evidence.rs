//! Evidence a run leaves: receipts checked against docs/receipt.schema.json, and Prometheus
//! textfile metrics parsed (asserting the format) into samples.

pub fn schema() -> jsonschema::Validator {
    let raw = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/receipt.schema.json"
    ))
    .unwrap();
    jsonschema::validator_for(&serde_json::from_slice(&raw).unwrap()).unwrap()
}

/// Reads the receipt at `p` and asserts it validates.
pub fn receipt(p: &std::path::Path) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    let errors: Vec<String> = schema().iter_errors(&v).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "receipt does not match the schema: {errors:#?}\n{v:#}"
    );
    v
}

/// Every sample of a Prometheus text file, as (name{labels}, value); asserts the format.
pub fn samples(p: &std::path::Path) -> Vec<(String, f64)> {
    let text = std::fs::read_to_string(p).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            assert!(
                rest.starts_with("HELP ") || rest.starts_with("TYPE "),
                "{line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("name and value");
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "{line}");
        }
        out.push((series.to_string(), value.parse().expect("a number")));
    }
    out
}

pub fn sample(s: &[(String, f64)], name: &str, command: &str) -> Option<f64> {
    s.iter()
        .find(|(k, _)| {
            k.starts_with(&format!("{name}{{")) && k.contains(&format!("command=\"{command}\""))
        })
        .map(|(_, v)| *v)
}
