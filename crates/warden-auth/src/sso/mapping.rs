//! A provider's mapping rules over a person's claims: for each organisation its rules name,
//! the first rule that holds gives the role; no rule holding means no membership there. A
//! rule that fails to evaluate refuses the whole sign-in (a policy error denies).

use serde_json::{Map, Value};
use warden_core::identity::Role;
use warden_core::project::LoginProvider;

use super::{SsoFailure, fail};

/// What the rules decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    /// (organisation slug, role, rule index) for each organisation a rule gave.
    pub grants: Vec<(String, Role, usize)>,
    /// Every organisation the provider's rules name: the ones the provider governs.
    pub governed: Vec<String>,
}

pub fn map_claims(p: &LoginProvider, claims: &Map<String, Value>) -> Result<Mapped, SsoFailure> {
    let claims = Value::Object(claims.clone());
    let mut grants: Vec<(String, Role, usize)> = Vec::new();
    let mut governed: Vec<String> = Vec::new();
    for rule in &p.map {
        if !governed.contains(&rule.org) {
            governed.push(rule.org.clone());
        }
        if grants.iter().any(|(org, _, _)| *org == rule.org) {
            continue;
        }
        match rule.when.holds_over("claims", &claims) {
            Ok(true) => grants.push((rule.org.clone(), rule.role, rule.index)),
            Ok(false) => {}
            Err(e) => {
                return Err(fail(
                    "sso.map_error",
                    format!(
                        "mapping rule map[{}] ({}) could not be evaluated: {e}",
                        rule.index, rule.when.source
                    ),
                ));
            }
        }
    }
    Ok(Mapped { grants, governed })
}
