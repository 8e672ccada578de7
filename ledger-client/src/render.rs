//! Text forms of the documents the commands print (the JSON is the contract; this is for people
//! reading a terminal): the entitlement, coverage and indicators documents the node computes, and
//! the client's own reports.

use std::fmt::Write;

use ledger_client::bench::BenchReport;
use ledger_client::bench_query::QueryReport;
use ledger_client::report::{
    ActDone, ActShown, Audit, EventRecord, ProofChecked, StatementWritten, Status, TrustWritten,
    Verified,
};
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
    pension_months(&mut o, p);
    pension_transfers(&mut o, p);
    pension_claim(&mut o, p);
    cross_border(&mut o, d);
    let _ = writeln!(o, "Flags: {}", list(&d["flags"]));
    o
}

/// Months, accounts and the relation.
fn pension_months(o: &mut String, p: &Value) {
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
}

fn pension_transfers(o: &mut String, p: &Value) {
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
}

/// Retirement, the minimum, the claim province and what moves at the claim, and the estimate.
fn pension_claim(o: &mut String, p: &Value) {
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
}

/// Postings, foreign periods and totalization under agreements.
fn cross_border(o: &mut String, d: &Value) {
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

// The text forms of the client's own documents (`ledger_client::report`).

pub fn event_record(e: &EventRecord) -> String {
    format!(
        "#{:<6} {}  {}  {}\n",
        e.index, e.appended_at, e.type_name, e.event
    )
}

pub fn statement_written(d: &StatementWritten) -> String {
    format!(
        "wrote {}: {} event(s) of worker {}, checkpoint of {} at {} events signed by {}\n",
        d.file.display(),
        d.events,
        d.worker,
        d.checkpoint.origin,
        d.checkpoint.size,
        d.signed_by.join(", ")
    )
}

/// `signers` are the checkpoint's signers as the trust file names them; `trusted` is how many
/// keys that file holds.
pub fn verified(
    d: &Verified,
    proven: &ledger_core::statement::Proven,
    signers: &[String],
    trusted: usize,
) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "VALID: statement of worker {} — all {} of their event(s) in ledger {} (checkpoint at {} events, root {}), signed by {} ({} of {} trusted keys, {} needed)",
        d.worker,
        d.events.len(),
        d.checkpoint.origin,
        d.checkpoint.size,
        &d.checkpoint.root[..16],
        signers.join(", "),
        signers.len(),
        trusted,
        d.quorum
    );
    for e in &proven.events {
        let _ = writeln!(
            o,
            "  #{:<6} {}  {}",
            e.index,
            e.appended_at,
            proven_event(&e.body.kind)
        );
    }
    if let Some(ent) = &d.entitlement {
        let _ = writeln!(o, "Recomputed from the proven events:");
        o.push_str(&entitlement(ent, d.checkpoint.size));
    }
    if let Some(why) = &d.entitlement_not_recomputed {
        let _ = writeln!(o, "Entitlement not recomputed: {why}");
    }
    o
}

pub fn proof_checked(d: &ProofChecked) -> String {
    let mut o = format!(
        "event {}\n  index {}, appended at {}\n  included in this checkpoint (proof verified):\n",
        d.event_id, d.index, d.appended_at
    );
    for l in d.checkpoint.lines() {
        let _ = writeln!(o, "    {l}");
    }
    o
}

pub fn audit(d: &Audit) -> String {
    let mut o = String::new();
    for n in &d.nodes {
        match &n.error {
            None => {
                let root = n.root.clone().unwrap_or_default();
                let _ = writeln!(
                    o,
                    "  {:<28} {:<10} size {:<8} root {}{}",
                    n.url,
                    n.name.clone().unwrap_or_default(),
                    n.size.unwrap_or(0),
                    &root[..16.min(root.len())],
                    if n.forks.is_empty() {
                        String::new()
                    } else {
                        format!("  HOLDS {} FORK NOTE(S)", n.forks.len())
                    }
                );
            }
            Some(e) => {
                let _ = writeln!(o, "  {:<28} unreachable or invalid: {e}", n.url);
            }
        }
    }
    for f in &d.forks {
        let _ = writeln!(o, "FORK between {} and {}: {}", f.a, f.b, f.why);
    }
    o.push_str(if d.agree {
        "all nodes agree: every checkpoint is consistent with every other\n"
    } else {
        "the nodes do NOT agree (see above)\n"
    });
    o
}

pub fn act_shown(d: &ActShown) -> String {
    let mut o = format!(
        "act        {}\nnonce      {}\nsigned at  {}\n",
        d.act, d.nonce, d.signed_at
    );
    for s in &d.signers {
        let _ = writeln!(o, "signed by  {s}");
    }
    o
}

pub fn act_done(d: &ActDone) -> String {
    let mut o = format!("{}\n", d.message);
    for m in &d.members {
        let _ = writeln!(
            o,
            "  {:<3} {:<7} {}  (raft {})",
            m.id,
            if m.voter { "voter" } else { "learner" },
            m.public_address,
            m.raft_address
        );
    }
    o
}

pub fn status(s: &Status) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "ledger    {} (genesis {})",
        s.ledger,
        &s.genesis_hash[..16.min(s.genesis_hash.len())]
    );
    let _ = writeln!(
        o,
        "node      {} ({}), version {}",
        s.node_id, s.jurisdiction, s.version
    );
    let _ = writeln!(o, "leader    {}", s.leader);
    let _ = writeln!(o, "log size  {} events", s.log_size);
    if s.raft.is_some() {
        let _ = writeln!(
            o,
            "commit    Raft log index {} (the log size counts ledger events only)",
            s.commit_index
        );
    }
    let _ = writeln!(o, "head      {}", s.head_hash);
    if let Some(c) = &s.checkpoint {
        let _ = writeln!(o, "checkpoint {} events, root {}", c.size, c.root);
    }
    if s.forks > 0 {
        let _ = writeln!(o, "ALARM     this node holds evidence of {} conflicting checkpoint(s): run `ledger-client audit`", s.forks);
    }
    if s.forks_dropped > 0 {
        let _ = writeln!(o, "ALARM     {} more conflicting note(s) seen beyond the evidence limits (counted, not kept)", s.forks_dropped);
    }
    if s.nodes.is_empty() {
        let _ = writeln!(o, "members   {}", s.members.join(", "));
        return o;
    }
    let _ = writeln!(
        o,
        "members   id  state      term  last log  applied  events  address"
    );
    for m in &s.nodes {
        let (Some(state), Some(term), Some(last), Some(applied), Some(size)) = (
            &m.state,
            m.term,
            m.last_log_index,
            m.applied_index,
            m.log_size,
        ) else {
            let _ = writeln!(o, "          {:<3} unreachable {}", m.id, m.address);
            continue;
        };
        let _ = writeln!(
            o,
            "          {:<3} {:<10} {:<5} {:<9} {:<8} {:<7} {}{}",
            m.id,
            state,
            term,
            last,
            applied,
            size,
            m.address,
            if m.voter { "" } else { " (learner)" }
        );
    }
    o
}

pub fn bench(r: &BenchReport) -> String {
    format!(
        "{} lines in {} declarations ({} refused) over {} requests in {:.2} s\n\
         throughput  {:.0} lines/s, {:.0} declarations/s\n\
         latency     p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (submit to receipt, {} declarations of {} lines per request, {} clients)\n\
         run id      {} ({} employers of {} workers; `bench --mode query --run-id` reads them)\n",
        r.lines,
        r.declarations,
        r.refused,
        r.requests,
        r.seconds,
        r.lines_per_second,
        r.events_per_second,
        r.latency_ms_p50,
        r.latency_ms_p99,
        r.latency_ms_max,
        r.batch,
        r.lines_per_declaration,
        r.concurrency,
        r.run_id,
        r.employers,
        r.lines_per_declaration
    )
}

pub fn trust_written(d: &TrustWritten) -> String {
    format!(
        "wrote {}: {} node keys of ledger {}, quorum {}\n",
        d.trust.display(),
        d.nodes,
        d.ledger,
        d.quorum
    )
}

pub fn bench_query(r: &QueryReport) -> String {
    let row = |name: &str, l: &ledger_client::bench_query::Latency| {
        format!(
            "{name:<12} {:>7} queries, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n",
            l.count, l.p50_ms, l.p99_ms, l.max_ms
        )
    };
    format!(
        "{} queries ({} failed) in {:.2} s: {:.0} queries/s from {} clients\n{}{}{}",
        r.queries,
        r.errors,
        r.seconds,
        r.queries_per_second,
        r.concurrency,
        row("entitlement", &r.entitlement),
        row("coverage", &r.coverage),
        row("events", &r.events)
    )
}
