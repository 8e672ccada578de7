//! Text forms of the entitlement, coverage and indicators documents (the JSON is the contract;
//! this is for people reading a terminal).

use std::fmt::Write;

use serde_json::Value;

fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => "none".into(),
        other => other.to_string(),
    }
}

fn map_list(v: &Value, unit: &str) -> String {
    match v.as_object() {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, n)| format!("{k} {}{unit}", s(n)))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "none".into(),
    }
}

fn list(v: &Value) -> String {
    match v.as_array() {
        Some(a) if !a.is_empty() => a.iter().map(s).collect::<Vec<_>>().join(", "),
        _ => "none".into(),
    }
}

pub fn entitlement(d: &Value, log_size: u64) -> String {
    let mut o = String::new();
    let p = &d["pension"];
    let _ = writeln!(
        o,
        "Worker {}, as of {} (ledger of {log_size} events)",
        s(&d["worker"]),
        s(&d["as_of"])
    );
    let _ = writeln!(o, "Pension");
    let _ = writeln!(
        o,
        "  insured months       {} ({})",
        s(&p["insured_months"]),
        map_list(&p["months_by_jurisdiction"], "")
    );
    let _ = writeln!(
        o,
        "  temporary accounts   {}",
        map_list(&p["temporary_account_months"], " months")
    );
    let _ = writeln!(o, "  duplicate months     {}", list(&p["duplicate_months"]));
    let _ = writeln!(
        o,
        "  relation             {}",
        s(&p["relation_jurisdiction"])
    );
    let _ = writeln!(o, "  individual account   {}", s(&p["individual_account"]));
    match p["transfers"].as_array() {
        Some(ts) if !ts.is_empty() => {
            for t in ts {
                let _ = writeln!(
                    o,
                    "  transfer             {} {} -> {}: account {}, pooled fund {}",
                    s(&t["period"]),
                    s(&t["from"]),
                    s(&t["to"]),
                    s(&t["individual_account"]),
                    s(&t["pooled_fund"])
                );
            }
        }
        _ => {
            let _ = writeln!(o, "  transfers            none");
        }
    }
    let _ = writeln!(
        o,
        "  retirement           {} at {} years {} months",
        s(&p["retirement_month"]),
        s(&p["retirement_age"]["years"]),
        s(&p["retirement_age"]["months"])
    );
    let vested = p["vested"].as_bool().unwrap_or(false);
    let _ = writeln!(
        o,
        "  minimum              {} months: {}",
        s(&p["minimum_months"]),
        if vested {
            "met".to_string()
        } else {
            format!("short by {} months", s(&p["shortfall_months"]))
        }
    );
    let _ = writeln!(o, "  claim province       {}", s(&p["claim_jurisdiction"]));
    let ct = &p["claim_transfer"];
    if ct.is_null() {
        let _ = writeln!(o, "  at claim             nothing moves");
    } else {
        if !ct["from"].is_null() {
            let _ = writeln!(
                o,
                "  at claim             relation {} -> {}: account {}, pooled fund {}",
                s(&ct["from"]),
                s(&ct["to"]),
                s(&ct["individual_account"]),
                s(&ct["pooled_fund"])
            );
        }
        for t in ct["temporary_accounts"].as_array().into_iter().flatten() {
            let _ = writeln!(
                o,
                "  at claim             temporary account {} ({} months) -> {}: employer {}, employee {}",
                s(&t["jurisdiction"]),
                s(&t["months"]),
                s(&ct["to"]),
                s(&t["employer_amount"]),
                s(&t["employee_amount"])
            );
        }
    }
    let e = &p["estimated_monthly"];
    if e.is_null() {
        let _ = writeln!(
            o,
            "  estimated monthly    unknown (an average wage it needs is not published)"
        );
    } else {
        let _ = writeln!(
            o,
            "  estimated monthly    {} (basic {} + account {}, divisor {})",
            s(&e["total"]),
            s(&e["basic"]),
            s(&e["account"]),
            s(&e["divisor"])
        );
    }
    let postings = d["postings"].as_array().cloned().unwrap_or_default();
    if !postings.is_empty() {
        let _ = writeln!(o, "Postings");
        for ps in &postings {
            let _ = writeln!(
                o,
                "  {} to {}, {}..{}: {} months exempt ({}); double coverage: {}",
                s(&ps["agreement"]),
                s(&ps["receiving"]),
                s(&ps["from"]),
                s(&ps["to"]),
                s(&ps["exempt_months"]),
                list(&ps["branches"]),
                list(&ps["double_coverage_months"])
            );
        }
    }
    let foreign: Vec<String> = d["foreign"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k} {} months", s(&v["months"])))
                .collect()
        })
        .unwrap_or_default();
    if !foreign.is_empty() {
        let _ = writeln!(o, "Foreign periods: {}", foreign.join(", "));
    }
    for c in d["coordination"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "Totalization {} {}: {} own of {} months, pro-rata share {}{}",
            s(&c["agreement"]),
            s(&c["country"]),
            s(&c["own_months"]),
            s(&c["total_months"]),
            s(&c["pro_rata_share"]),
            if c["pays"].as_bool() == Some(false) {
                " (under the minimum: pays nothing)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(o, "Flags: {}", list(&d["flags"]));
    o
}

pub fn coverage(d: &Value) -> String {
    let mut o = String::new();
    let head = format!(
        "Worker {} at {} in {}",
        s(&d["worker"]),
        s(&d["at"]),
        s(&d["jurisdiction"])
    );
    if d["covered"].as_bool() == Some(true) {
        let _ = writeln!(
            o,
            "{head}: covered by {}; payer {}; insurer {}",
            s(&d["basis"]).replace('_', " "),
            s(&d["payer"]).replace('_', " "),
            s(&d["insurer"])
        );
        if !d["platform"].is_null() {
            let _ = writeln!(
                o,
                "  order {} for platform {}",
                s(&d["order"]),
                s(&d["platform"])
            );
        }
    } else {
        let _ = writeln!(
            o,
            "{head}: not covered (no contract, insured month or pilot order)"
        );
    }
    o
}

/// One line about a proven event: who declared what, where and when.
pub fn proven_event(kind: &ledger_core::event::EventKind) -> String {
    use ledger_core::event::EventKind as K;
    match kind {
        K::ContributionsDeclared(d) => {
            let lines: Vec<String> = d
                .lines
                .iter()
                .map(|l| {
                    format!(
                        "{} base {} employer {} employee {}",
                        l.scheme.as_str(),
                        l.base,
                        l.employer_amount,
                        l.employee_amount
                    )
                })
                .collect();
            format!(
                "contributions {} {} by {}{}: {}",
                d.period,
                d.jurisdiction,
                d.employer,
                if d.back_pay { " (back pay)" } else { "" },
                lines.join("; ")
            )
        }
        K::FlexibleContribution(f) => format!(
            "flexible {} {} {} base {} amount {}",
            f.period,
            f.jurisdiction,
            f.scheme.as_str(),
            f.base,
            f.amount
        ),
        K::ContractRegistered(c) => format!(
            "contract {} with {} in {} ({:?}) from {}",
            c.contract, c.employer, c.jurisdiction, c.form, c.start
        ),
        other => other.type_name().to_string(),
    }
}

pub fn indicators(d: &Value, log_size: u64) -> String {
    let mut o = String::new();
    let scope = match &d["jurisdiction"] {
        Value::Null => "the whole ledger".to_string(),
        j => s(j),
    };
    let _ = writeln!(
        o,
        "Coverage indicators for {} in {scope} (ledger of {log_size} events)",
        s(&d["period"])
    );
    let _ = writeln!(
        o,
        "Cells under {} workers are suppressed ({} suppressed)",
        s(&d["minimum_cell"]),
        s(&d["suppressed"])
    );
    let cells = d["cells"].as_array().cloned().unwrap_or_default();
    if cells.is_empty() {
        let _ = writeln!(o, "No registered workers in scope for this month.");
        return o;
    }
    let mut scheme = String::new();
    for c in &cells {
        if s(&c["scheme"]) != scheme {
            scheme = s(&c["scheme"]);
            let _ = writeln!(o, "{scheme}");
            let _ = writeln!(
                o,
                "  {:<14} {:<16} {:>9} {:>11} {:>9}",
                "dimension", "value", "insured", "population", "rate"
            );
        }
        if c["suppressed"].as_bool() == Some(true) {
            let _ = writeln!(
                o,
                "  {:<14} {:<16} {:>9} {:>11} {:>9}",
                s(&c["dimension"]),
                s(&c["value"]),
                "-",
                "-",
                "suppressed"
            );
        } else {
            let _ = writeln!(
                o,
                "  {:<14} {:<16} {:>9} {:>11} {:>9}",
                s(&c["dimension"]),
                s(&c["value"]),
                s(&c["insured"]),
                s(&c["population"]),
                s(&c["rate"])
            );
        }
    }
    o
}
