//! Identifiers: newtypes so a worker id can never be passed where an employer id is expected,
//! each checked once at the edge (non-empty, at most [`MAX_ID_BYTES`], printable, no white space
//! at the ends).

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// Longest identifier, in UTF-8 bytes (docs/events.md: "ids over 64 bytes" are refused).
pub const MAX_ID_BYTES: usize = 64;
/// Longest free-text field (reasons, descriptions), in UTF-8 bytes.
pub const MAX_TEXT_BYTES: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdError(pub String);

pub(crate) fn check_id(kind: &str, s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError(format!("{kind} id is empty")));
    }
    if s.len() > MAX_ID_BYTES {
        return Err(IdError(format!(
            "{kind} id {:?}… is {} bytes, over the limit of {MAX_ID_BYTES}",
            s.chars().take(16).collect::<String>(),
            s.len()
        )));
    }
    if s.chars().any(char::is_control) || s.trim() != s {
        return Err(IdError(format!(
            "{kind} id {s:?} has control characters or white space at its ends"
        )));
    }
    Ok(())
}

pub(crate) fn check_text(what: &str, s: &str) -> Result<(), IdError> {
    if s.len() > MAX_TEXT_BYTES {
        return Err(IdError(format!(
            "{what} is {} bytes, over the limit of {MAX_TEXT_BYTES}",
            s.len()
        )));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(IdError(format!("{what} has control characters")));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                check_id($what, &s)?;
                Ok(Self(s))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Self::new(String::deserialize(d)?).map_err(de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A worker (insured person): national id, or the registering agency's number.
    WorkerId, "worker"
);
id_type!(
    /// An employer or platform: e.g. the unified social credit code, or a platform's registered subject id.
    EmployerId, "employer"
);
id_type!(
    /// The subject a key is registered for: an employer, platform or worker id.
    SubjectId, "subject"
);
id_type!(ContractId, "contract");
id_type!(TransferId, "transfer");
id_type!(OrderId, "order");
id_type!(PermitNumber, "permit");
id_type!(SocialSecurityNumber, "social security");

/// An ed25519 public key (32 bytes), hex in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKeyBytes(pub [u8; 32]);

/// A 32-byte hash (event id, Merkle root), hex in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash32(pub [u8; 32]);

/// Author-chosen randomness that hides a batch line's hash from guessing (see events.proto).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Salt(pub [u8; 16]);

impl Salt {
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }
}

macro_rules! hex_bytes {
    ($t:ident, $n:literal, $what:literal) => {
        impl $t {
            pub fn from_hex(s: &str) -> Result<Self, String> {
                let v = hex::decode(s).map_err(|_| format!("{s:?} is not {} (hex)", $what))?;
                Self::from_slice(&v)
            }
            pub fn from_slice(v: &[u8]) -> Result<Self, String> {
                let arr: [u8; $n] = v
                    .try_into()
                    .map_err(|_| format!("{} must be {} bytes, got {}", $what, $n, v.len()))?;
                Ok($t(arr))
            }
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                if s.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Err(de::Error::custom(format!(
                        "{} must be lowercase hex",
                        $what
                    )));
                }
                Self::from_hex(&s).map_err(de::Error::custom)
            }
        }
    };
}
hex_bytes!(PublicKeyBytes, 32, "a public key");
hex_bytes!(Hash32, 32, "a 32-byte hash");
hex_bytes!(Salt, 16, "a line salt");
