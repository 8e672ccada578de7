//! Jurisdictions: countries (ISO 3166-1 alpha-2, `DE`) and provinces (ISO 3166-2, `CN-44`).

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JurisdictionError(pub String);

/// A country or a subdivision of one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Jurisdiction(String);

impl Jurisdiction {
    pub fn new(s: impl Into<String>) -> Result<Self, JurisdictionError> {
        let s = s.into();
        let upper_alnum = |p: &str| {
            p.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        };
        let ok = match s.split_once('-') {
            None => s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase()),
            Some((c, sub)) => {
                c.len() == 2
                    && c.bytes().all(|b| b.is_ascii_uppercase())
                    && (1..=3).contains(&sub.len())
                    && upper_alnum(sub)
            }
        };
        if !ok {
            return Err(JurisdictionError(format!(
                "{s:?} is not a jurisdiction: expected a country (ISO 3166-1 alpha-2, e.g. \"DE\") \
                 or a province (ISO 3166-2, e.g. \"CN-44\")"
            )));
        }
        Ok(Self(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The country code: `CN` for `CN-44`, `DE` for `DE`.
    pub fn country(&self) -> &str {
        &self.0[..2]
    }
    pub fn is_province(&self) -> bool {
        self.0.len() > 2
    }
    /// True for a Chinese province (the places a pension relation can sit).
    pub fn is_chinese_province(&self) -> bool {
        self.is_province() && self.country() == "CN"
    }
    /// True when `self` is `other` or lies inside it (`CN-44` within `CN`).
    pub fn within(&self, other: &Jurisdiction) -> bool {
        self == other || (!other.is_province() && self.country() == other.as_str())
    }
}

impl fmt::Display for Jurisdiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::str::FromStr for Jurisdiction {
    type Err = JurisdictionError;
    fn from_str(s: &str) -> Result<Self, JurisdictionError> {
        Self::new(s)
    }
}
impl Serialize for Jurisdiction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
impl<'de> Deserialize<'de> for Jurisdiction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::new(String::deserialize(d)?).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_countries_and_provinces_only() {
        for ok in ["DE", "CN-44", "CN-11", "FR-IDF"] {
            assert!(Jurisdiction::new(ok).is_ok(), "{ok}");
        }
        for bad in ["de", "CN44", "CN-", "CN-4444", "D", "DEU", "CN-4 4", ""] {
            assert!(Jurisdiction::new(bad).is_err(), "{bad}");
        }
        let gd = Jurisdiction::new("CN-44").unwrap();
        assert!(gd.within(&Jurisdiction::new("CN").unwrap()));
        assert!(!gd.within(&Jurisdiction::new("DE").unwrap()));
        assert!(gd.is_chinese_province());
    }
}
