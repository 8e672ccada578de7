//! The rulebook: every rule parameter of docs/rules.md as data. One TOML file per jurisdiction and one
//! per agreement under `rulebook/` at the project root, each value with its effective date and the
//! instrument it comes from. The files are compiled in; a ledger stores the rulebook it was
//! created with at genesis (so every node decides with the same values, whatever binary it runs
//! later), and `parameters_published` events override values from their effective date on.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{Hash32, Scheme};
use crate::jurisdiction::Jurisdiction;
use crate::params::check_parameter;
use crate::time::Date;

/// The rulebook files shipped with this build: (file name, text).
pub const BUILTIN_FILES: &[(&str, &str)] = &[
    ("CN.toml", include_str!("../../rulebook/CN.toml")),
    (
        "agreements/CN-DE.toml",
        include_str!("../../rulebook/agreements/CN-DE.toml"),
    ),
    (
        "agreements/CN-KR.toml",
        include_str!("../../rulebook/agreements/CN-KR.toml"),
    ),
    (
        "agreements/CN-DK.toml",
        include_str!("../../rulebook/agreements/CN-DK.toml"),
    ),
    (
        "agreements/CN-FI.toml",
        include_str!("../../rulebook/agreements/CN-FI.toml"),
    ),
    (
        "agreements/CN-CA.toml",
        include_str!("../../rulebook/agreements/CN-CA.toml"),
    ),
    (
        "agreements/CN-CH.toml",
        include_str!("../../rulebook/agreements/CN-CH.toml"),
    ),
    (
        "agreements/CN-NL.toml",
        include_str!("../../rulebook/agreements/CN-NL.toml"),
    ),
    (
        "agreements/CN-FR.toml",
        include_str!("../../rulebook/agreements/CN-FR.toml"),
    ),
    (
        "agreements/CN-ES.toml",
        include_str!("../../rulebook/agreements/CN-ES.toml"),
    ),
    (
        "agreements/CN-LU.toml",
        include_str!("../../rulebook/agreements/CN-LU.toml"),
    ),
    (
        "agreements/CN-JP.toml",
        include_str!("../../rulebook/agreements/CN-JP.toml"),
    ),
    (
        "agreements/CN-RS.toml",
        include_str!("../../rulebook/agreements/CN-RS.toml"),
    ),
    (
        "agreements/CN-KG.toml",
        include_str!("../../rulebook/agreements/CN-KG.toml"),
    ),
    (
        "agreements/EU-883.toml",
        include_str!("../../rulebook/agreements/EU-883.toml"),
    ),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rulebook {file}: {message}")]
pub struct RulebookError {
    pub file: String,
    pub message: String,
}

/// One parameter value of one jurisdiction, from its effective date on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleValue {
    pub jurisdiction: Jurisdiction,
    pub name: String,
    pub value: Value,
    pub effective: Date,
    pub source: String,
}

/// A social security agreement: what it exempts posted workers from, for how long, and whether
/// it totalizes periods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agreement {
    pub agreement: String,
    /// Country codes of the parties.
    pub parties: Vec<String>,
    /// Branches a certificate exempts from the receiving country's contributions.
    pub branches: Vec<Scheme>,
    /// Months of a posting exempt on an ordinary certificate (basis `posting`).
    pub max_months: u32,
    /// Months of a posting exempt in total with certificates of an extension basis.
    pub extended_max_months: u32,
    /// Certificate bases that extend a posting beyond `max_months`.
    pub extension_bases: Vec<crate::event::CertificateBasis>,
    /// True when the agreement adds periods together for entitlement (883/2004 style).
    pub totalization: bool,
    /// Under totalization, a country with fewer own months that gives no entitlement on its own
    /// pays nothing (883/2004 art. 57).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_pro_rata_months: Option<u32>,
    pub effective: Date,
    pub source: String,
}

impl Agreement {
    /// True when the agreement binds the countries of `a` and `b` (in either order).
    pub fn binds(&self, a: &Jurisdiction, b: &Jurisdiction) -> bool {
        let has = |c: &str| self.parties.iter().any(|p| p == c);
        a.country() != b.country() && has(a.country()) && has(b.country())
    }
}

/// Every value and agreement, in a canonical order (so its hash is stable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rulebook {
    pub values: Vec<RuleValue>,
    pub agreements: Vec<Agreement>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JurisdictionFile {
    jurisdiction: Jurisdiction,
    #[serde(default)]
    values: Vec<FileValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileValue {
    name: String,
    value: Value,
    effective: Date,
    source: String,
}

impl Rulebook {
    /// The rulebook compiled into this build.
    pub fn builtin() -> Rulebook {
        Rulebook::from_files(BUILTIN_FILES).expect("the built-in rulebook is valid (tested)")
    }

    /// Parses and checks rulebook files: a file under `agreements/` is one agreement, any other
    /// one jurisdiction's values.
    pub fn from_files(files: &[(&str, &str)]) -> Result<Rulebook, RulebookError> {
        let mut values = Vec::new();
        let mut agreements: Vec<Agreement> = Vec::new();
        for (file, text) in files {
            let fail = |message: String| RulebookError {
                file: file.to_string(),
                message,
            };
            if file.starts_with("agreements/") {
                let a: Agreement = toml::from_str(text).map_err(|e| fail(e.to_string()))?;
                check_agreement(&a).map_err(fail)?;
                if agreements.iter().any(|b| b.agreement == a.agreement) {
                    return Err(fail(format!("agreement {} defined twice", a.agreement)));
                }
                agreements.push(a);
            } else {
                let f: JurisdictionFile = toml::from_str(text).map_err(|e| fail(e.to_string()))?;
                for v in f.values {
                    check_parameter(&v.name, &v.value)
                        .map_err(|e| fail(format!("{} from {}: {e}", v.name, v.effective)))?;
                    if v.source.trim().is_empty() {
                        return Err(fail(format!(
                            "{} from {} names no source",
                            v.name, v.effective
                        )));
                    }
                    values.push(RuleValue {
                        jurisdiction: f.jurisdiction.clone(),
                        name: v.name,
                        value: v.value,
                        effective: v.effective,
                        source: v.source,
                    });
                }
            }
        }
        values.sort_by(|a, b| {
            (&a.jurisdiction, &a.name, a.effective).cmp(&(&b.jurisdiction, &b.name, b.effective))
        });
        for w in values.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            let same_wage_year =
                a.name != "average_wage" || a.value.get("year") == b.value.get("year");
            if a.jurisdiction == b.jurisdiction
                && a.name == b.name
                && a.effective == b.effective
                && same_wage_year
            {
                return Err(RulebookError {
                    file: a.jurisdiction.to_string(),
                    message: format!("{} has two values effective {}", a.name, a.effective),
                });
            }
        }
        agreements.sort_by(|a, b| a.agreement.cmp(&b.agreement));
        Ok(Rulebook { values, agreements })
    }

    /// Canonical bytes: what a ledger stores at genesis and what [`Rulebook::hash`] covers.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("rulebook serializes")
    }

    pub fn from_bytes(b: &[u8]) -> Result<Rulebook, String> {
        serde_json::from_slice(b).map_err(|e| format!("stored rulebook: {e}"))
    }

    pub fn hash(&self) -> Hash32 {
        let mut h = blake3::Hasher::new();
        h.update(b"portable-contribution-ledger/rulebook/v1\n");
        h.update(&self.to_bytes());
        Hash32(*h.finalize().as_bytes())
    }
}

fn check_agreement(a: &Agreement) -> Result<(), String> {
    let name = &a.agreement;
    let parties: BTreeSet<&String> = a.parties.iter().collect();
    if parties.len() < 2 || parties.len() != a.parties.len() {
        return Err(format!("{name}: needs two or more distinct parties"));
    }
    for p in &a.parties {
        if Jurisdiction::new(p.clone())
            .map(|j| j.is_province())
            .unwrap_or(true)
        {
            return Err(format!("{name}: party {p:?} is not a country code"));
        }
    }
    if a.branches.is_empty() {
        return Err(format!("{name}: exempts no branch"));
    }
    if a.extended_max_months < a.max_months {
        return Err(format!("{name}: extended_max_months is below max_months"));
    }
    if a.source.trim().is_empty() {
        return Err(format!("{name}: names no source"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rulebook_loads_and_names_every_source() {
        let r = Rulebook::builtin();
        assert!(r.values.iter().all(|v| !v.source.is_empty()));
        assert_eq!(
            r.agreements.len(),
            14,
            "13 Chinese agreements and EU 883/2004"
        );
        let de = r
            .agreements
            .iter()
            .find(|a| a.agreement == "CN-DE")
            .expect("CN-DE");
        assert_eq!((de.max_months, de.extended_max_months), (48, 96));
        assert_eq!(Rulebook::from_bytes(&r.to_bytes()).expect("round trip"), r);
    }

    #[test]
    fn a_bad_value_names_its_file_and_parameter() {
        let bad = "jurisdiction = \"CN-44\"\n[[values]]\nname = \"pooled_transfer_rate\"\nvalue = \"1200\"\neffective = \"2020-01-01\"\nsource = \"x\"\n";
        let e = Rulebook::from_files(&[("CN-44.toml", bad)]).unwrap_err();
        assert_eq!(e.file, "CN-44.toml");
        assert!(e.message.contains("pooled_transfer_rate"), "{e}");
    }

    #[test]
    fn no_chinese_agreement_exempts_injury_medical_or_maternity() {
        for a in Rulebook::builtin()
            .agreements
            .iter()
            .filter(|a| a.parties.iter().any(|p| p == "CN"))
        {
            for b in &a.branches {
                assert!(
                    matches!(b, Scheme::Pension | Scheme::Unemployment),
                    "{} exempts {b:?}",
                    a.agreement
                );
            }
        }
    }
}
