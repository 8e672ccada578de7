//! The rule parameters that `parameters_published` may set (rules.md), with the shape each value
//! must have. The rules engine reads them by name; an unknown name is refused so a typo never
//! silently publishes nothing.

use serde_json::Value;

use crate::money::Money;

/// Every parameter name a jurisdiction may publish, with what its value must look like.
pub const KNOWN_PARAMETERS: &[(&str, Shape)] = &[
    ("average_wage", Shape::AverageWage),
    ("employer_pension_rate", Shape::Percent),
    ("employee_pension_rate", Shape::Percent),
    ("flexible_pension_rate", Shape::Percent),
    ("flexible_account_rate", Shape::Percent),
    ("pooled_transfer_rate", Shape::Percent),
    ("base_floor_percent", Shape::Percent),
    ("base_ceiling_percent", Shape::Percent),
    ("pilot_provinces", Shape::Codes),
    ("pilot_platforms", Shape::Codes),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `{"year": 2024, "monthly": "13900.00"}`
    AverageWage,
    /// A decimal string of a percentage, 0 to 100, e.g. `"16"` or `"8.5"`.
    Percent,
    /// A list of codes (jurisdictions or platform subject ids), e.g. `["CN-11", "CN-31"]`.
    Codes,
}

/// Checks one published parameter; the message names what to fix.
pub fn check_parameter(name: &str, value: &Value) -> Result<(), String> {
    let Some((_, shape)) = KNOWN_PARAMETERS.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = KNOWN_PARAMETERS.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "unknown parameter {name:?}; known: {}",
            names.join(", ")
        ));
    };
    match shape {
        Shape::AverageWage => {
            let obj = value
                .as_object()
                .ok_or("average_wage must be {\"year\": YYYY, \"monthly\": \"amount\"}")?;
            if obj.len() != 2 {
                return Err("average_wage takes exactly the fields year and monthly".into());
            }
            let year = obj
                .get("year")
                .and_then(Value::as_u64)
                .ok_or("average_wage.year must be a year number")?;
            if !(1951..=9999).contains(&year) {
                return Err(format!("average_wage.year {year} is out of range"));
            }
            let monthly = obj
                .get("monthly")
                .and_then(Value::as_str)
                .ok_or("average_wage.monthly must be an amount string")?;
            let m: Money = monthly
                .parse()
                .map_err(|e| format!("average_wage.monthly: {e}"))?;
            if m.minor() <= 0 {
                return Err("average_wage.monthly must be positive".into());
            }
            Ok(())
        }
        Shape::Percent => {
            let s = value.as_str().ok_or(format!(
                "{name} must be a percentage as a decimal string, e.g. \"16\""
            ))?;
            let m: Money = s.parse().map_err(|e| format!("{name}: {e}"))?;
            if !(0..=10_000).contains(&m.minor()) {
                return Err(format!("{name} must be between 0 and 100"));
            }
            Ok(())
        }
        Shape::Codes => {
            let list = value
                .as_array()
                .ok_or(format!("{name} must be a list of codes"))?;
            if list
                .iter()
                .any(|v| !v.as_str().is_some_and(|s| !s.is_empty() && s.len() <= 64))
            {
                return Err(format!(
                    "{name} must hold non-empty strings of at most 64 bytes"
                ));
            }
            Ok(())
        }
    }
}
