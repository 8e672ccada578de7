//! The rule parameters that `parameters_published` may set (docs/rules.md), with the shape each value
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
    ("pooled_transfer_since", Shape::Month),
    ("temporary_account_age_men", Shape::Count),
    ("temporary_account_age_women", Shape::Count),
    ("claim_province_months", Shape::Count),
    ("basic_pension_accrual_percent", Shape::Percent),
    ("retirement_schedule", Shape::RetirementSchedule),
    ("minimum_months", Shape::MinimumMonths),
    ("annuity_divisors", Shape::Divisors),
    ("indicator_minimum_cell", Shape::Count),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `{"year": 2024, "monthly": "13900.00"}`
    AverageWage,
    /// A decimal string of a percentage, 0 to 1000, e.g. `"16"` or `"8.5"`.
    Percent,
    /// A list of codes (jurisdictions or platform subject ids), e.g. `["CN-11", "CN-31"]`.
    Codes,
    /// A month, `"1998-01"`.
    Month,
    /// A whole number of years or months, 0 to 1200.
    Count,
    /// `{"men": {"original_age": 60, "first_affected": "1965-01", "step": 4, "max_delay": 36},
    /// "women_55": {..}, "women_50": {..}}`
    RetirementSchedule,
    /// `{"base": 180, "from_year": 2029, "step": 6, "steps": 10}`
    MinimumMonths,
    /// Months by completed age: `{"40": 233, ..., "70": 56}`
    Divisors,
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
    check_parameter_shape(name, *shape, value)
}

/// The largest count a parameter may hold (100 years in months).
const MAX_COUNT: u64 = 1200;

fn count(name: &str, v: &Value) -> Result<u64, String> {
    v.as_u64().filter(|n| *n <= MAX_COUNT).ok_or(format!(
        "{name} must be a whole number from 0 to {MAX_COUNT}"
    ))
}

/// An object with exactly the `fields`, in any order.
fn object<'a>(
    name: &str,
    v: &'a Value,
    fields: &[&str],
) -> Result<&'a serde_json::Map<String, Value>, String> {
    let obj = v.as_object().ok_or(format!(
        "{name} must be an object with the fields {}",
        fields.join(", ")
    ))?;
    if obj.len() != fields.len() || fields.iter().any(|f| !obj.contains_key(*f)) {
        return Err(format!(
            "{name} must have exactly the fields {}",
            fields.join(", ")
        ));
    }
    Ok(obj)
}

fn check_parameter_shape(name: &str, shape: Shape, value: &Value) -> Result<(), String> {
    match shape {
        Shape::AverageWage => average_wage_shape(value),
        Shape::Percent => percent_shape(name, value),
        Shape::Month => month_shape(name, value),
        Shape::RetirementSchedule => retirement_schedule_shape(name, value),
        Shape::MinimumMonths => minimum_months_shape(name, value),
        Shape::Divisors => divisors_shape(name, value),
        Shape::Codes => codes_shape(name, value),
        Shape::Count => count(name, value).map(|_| ()),
    }
}

fn average_wage_shape(value: &Value) -> Result<(), String> {
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

fn percent_shape(name: &str, value: &Value) -> Result<(), String> {
    let s = value.as_str().ok_or(format!(
        "{name} must be a percentage as a decimal string, e.g. \"16\""
    ))?;
    let m: Money = s.parse().map_err(|e| format!("{name}: {e}"))?;
    // Up to 1000%: base ceilings are 300% of the average wage.
    if !(0..=100_000).contains(&m.minor()) {
        return Err(format!("{name} must be between 0 and 1000"));
    }
    Ok(())
}

fn month_shape(name: &str, value: &Value) -> Result<(), String> {
    let s = value
        .as_str()
        .ok_or(format!("{name} must be a month string, e.g. \"1998-01\""))?;
    s.parse::<crate::time::Month>()
        .map_err(|e| format!("{name}: {e}"))?;
    Ok(())
}

fn retirement_schedule_shape(name: &str, value: &Value) -> Result<(), String> {
    let obj = object(name, value, &["men", "women_55", "women_50"])?;
    for (cat, v) in obj {
        let f = object(
            &format!("{name}.{cat}"),
            v,
            &["original_age", "first_affected", "step", "max_delay"],
        )?;
        for (k, v) in f {
            let path = format!("{name}.{cat}.{k}");
            if k == "first_affected" {
                check_parameter_shape(&path, Shape::Month, v)?;
            } else {
                count(&path, v)?;
            }
        }
        if count(name, &f["step"])? == 0 {
            return Err(format!("{name}.{cat}.step must be at least 1"));
        }
    }
    Ok(())
}

fn minimum_months_shape(name: &str, value: &Value) -> Result<(), String> {
    let obj = object(name, value, &["base", "from_year", "step", "steps"])?;
    for (k, v) in obj {
        let n = count(&format!("{name}.{k}"), v);
        if k == "from_year" {
            let y = v.as_u64().filter(|y| (1951..=9999).contains(y));
            y.ok_or(format!("{name}.from_year must be a year"))?;
        } else {
            n?;
        }
    }
    Ok(())
}

fn divisors_shape(name: &str, value: &Value) -> Result<(), String> {
    let obj = value.as_object().filter(|o| !o.is_empty()).ok_or(format!(
        "{name} must map completed ages to months, e.g. {{\"60\": 139}}"
    ))?;
    for (age, v) in obj {
        let a: u32 = age
            .parse()
            .map_err(|_| format!("{name}: {age:?} is not an age"))?;
        if !(16..=100).contains(&a) {
            return Err(format!("{name}: age {a} is out of range"));
        }
        if count(&format!("{name}.{age}"), v)? == 0 {
            return Err(format!("{name}.{age} must be at least 1 month"));
        }
    }
    Ok(())
}

fn codes_shape(name: &str, value: &Value) -> Result<(), String> {
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
