//! The JSON form of events as `ledger-client submit` reads and prints it (docs/events.md): the
//! event model's serde form with `type` and `signed_at`. Parsing also applies the checks of the
//! signed encoding, so a line that could not be signed is refused before anything is sent.

use crate::event::{EventBody, EventKind};
use crate::refusal::Refusal;
use crate::time::Instant;
use crate::wire;

/// Parses one JSON event as `ledger-client submit` reads it: the kind's fields with `type`, and
/// optionally `signed_at` (the client adds it when absent).
pub fn parse_json_event(text: &str) -> Result<(EventKind, Option<Instant>), String> {
    let mut value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let obj = value
        .as_object_mut()
        .ok_or("an event must be a JSON object")?;
    if !obj.contains_key("type") {
        return Err(
            "missing field `type` (the event kind, e.g. \"contributions_declared\")".into(),
        );
    }
    let signed_at = match obj.remove("signed_at") {
        None => None,
        Some(v) => {
            Some(serde_json::from_value::<Instant>(v).map_err(|e| format!("signed_at: {e}"))?)
        }
    };
    let kind: EventKind = serde_json::from_value(value).map_err(|e| e.to_string())?;
    check_signable(&kind, signed_at)?;
    Ok((kind, signed_at))
}

/// The node decodes what is signed with the checks of the signed encoding (e.g. free-text
/// fields), which JSON alone does not apply (e.g. a DEL character in a reason): refusing here
/// tells the user which line is wrong before anything is signed and sent.
fn check_signable(kind: &EventKind, signed_at: Option<Instant>) -> Result<(), String> {
    // Any time in range stands in for a `signed_at` the client adds later.
    let signed_at = match signed_at {
        Some(t) => t,
        None => Instant::from_unix_utc(0, 0).map_err(|e| e.to_string())?,
    };
    let body = EventBody {
        signed_at,
        kind: kind.clone(),
    };
    let encoded = wire::encode_body(&body);
    match wire::decode_event(&encoded.body, &encoded.lines) {
        // Size limits stay the node's to report, per event (an oversize batch is still built).
        Ok(_) | Err(Refusal::TooLarge(_)) => Ok(()),
        Err(r) => Err(r.to_string()),
    }
}

/// The JSON form of a body (the kind's fields, `type`, and `signed_at`).
pub fn to_json_event(body: &EventBody) -> serde_json::Value {
    let mut v = serde_json::to_value(&body.kind).expect("event kinds always serialize");
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "signed_at".into(),
            serde_json::Value::String(body.signed_at.to_string()),
        );
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Line, Replacement};

    #[test]
    fn json_event_parses_with_type_and_refuses_extra_fields() {
        let line = r#"{"type":"contributions_declared","employer":"91440300MA5G","jurisdiction":"CN-44","period":"2024-01","lines":[{"worker":"W-1","scheme":"pension","base":"5000.00","employer_amount":"800.00","employee_amount":"400.00"}]}"#;
        let (kind, signed_at) = parse_json_event(line).unwrap();
        assert!(signed_at.is_none());
        let EventKind::ContributionsDeclared(c) = &kind else {
            panic!("wrong kind")
        };
        assert_eq!(c.lines[0].base.minor(), 500_000);

        let extra = line.replace("\"period\"", "\"colour\":\"red\",\"period\"");
        let err = parse_json_event(&extra).unwrap_err();
        assert!(err.contains("colour"), "{err}");
        let missing = line.replace("\"period\":\"2024-01\",", "");
        let err = parse_json_event(&missing).unwrap_err();
        assert!(err.contains("period"), "{err}");
        let unknown = r#"{"type":"payroll_party","x":1}"#;
        assert!(parse_json_event(unknown)
            .unwrap_err()
            .contains("payroll_party"));
        let no_type = r#"{"worker":"W"}"#;
        assert!(parse_json_event(no_type).unwrap_err().contains("type"));
    }

    #[test]
    fn correction_replacement_follows_line_presence() {
        let t = "00".repeat(32);
        let line = format!(
            r#"{{"type":"correction","target":"{t}","line":0,"action":"replace","replacement":{{"worker":"W","scheme":"pension","base":"1.00","employer_amount":"0.16","employee_amount":"0.08"}},"reason":"typo"}}"#
        );
        let (kind, _) = parse_json_event(&line).unwrap();
        let EventKind::Correction(c) = kind else {
            panic!()
        };
        assert!(matches!(
            c.replacement,
            Some(Replacement::Line(Line::Contribution(_)))
        ));
        let ev = format!(
            r#"{{"type":"correction","target":"{t}","action":"replace","replacement":{{"type":"hukou_changed","worker":"W","hukou":"CN-44","effective":"2020-01-01"}},"reason":"typo"}}"#
        );
        let (kind, _) = parse_json_event(&ev).unwrap();
        let EventKind::Correction(c) = kind else {
            panic!()
        };
        assert!(matches!(c.replacement, Some(Replacement::Event(_))));
    }
}
