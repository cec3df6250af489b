//! Checking an ID token (OpenID Connect Core 1.0, 3.1.3.7) against the provider's JWKS.
//!
//! Only asymmetric signatures are accepted. `alg: none` and every HMAC algorithm are refused
//! before any key is looked at: an HMAC "key" taken from a JWKS would be public, so anyone
//! could sign with it. A key is picked by `kid`, must not be a symmetric (`oct`) key, and
//! must agree with the token's algorithm. Then `iss`, `aud`, `azp`, `exp`, `iat` and, for a
//! sign-in, `nonce`.

use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::token::secrets_equal;

/// Clock skew allowed on `exp` and `iat`.
pub const LEEWAY_SECS: i64 = 60;
/// An ID token issued longer ago than this is refused (it is used at once when it comes
/// back from the token endpoint).
pub const MAX_AGE_SECS: i64 = 10 * 60;

const ACCEPTED: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Why an ID token was refused: `rule` names the check for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Refused {
    pub rule: &'static str,
    pub reason: String,
}

fn refuse(rule: &'static str, reason: impl Into<String>) -> Refused {
    Refused {
        rule,
        reason: reason.into(),
    }
}

/// What a token must match.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// The nonce sent with the authorization request; `None` for a token from a refresh
    /// (which carries the first one, or none).
    pub nonce: Option<&'a str>,
    /// Unix seconds.
    pub now: i64,
}

/// Whether the token names a key this set lacks (the caller then refreshes the set once).
pub fn needs_key(token: &str, keys: &JwkSet) -> bool {
    match header(token) {
        Ok(h) => match h.get("kid").and_then(Value::as_str) {
            Some(kid) => keys.find(kid).is_none(),
            None => keys.keys.is_empty(),
        },
        Err(_) => false,
    }
}

/// The token's header as JSON, read before anything else so that `none` and HMAC are
/// refused by name.
fn header(token: &str) -> Result<Map<String, Value>, Refused> {
    let first = token
        .split('.')
        .next()
        .filter(|_| token.split('.').count() == 3)
        .ok_or_else(|| {
            refuse(
                "id_token.format",
                "the ID token is not a signed JWT (it must have three parts)",
            )
        })?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(first.trim_end_matches('='))
        .map_err(|_| refuse("id_token.format", "the ID token's header is not base64url"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(refuse(
            "id_token.format",
            "the ID token's header is not a JSON object",
        )),
    }
}

/// Checks `token`'s signature with `keys` and its claims against `expect`; returns the
/// claims.
pub fn verify(
    token: &str,
    keys: &JwkSet,
    expect: Expect<'_>,
) -> Result<Map<String, Value>, Refused> {
    let h = header(token)?;
    let alg_name = h.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg_name.eq_ignore_ascii_case("none") || alg_name.is_empty() {
        return Err(refuse(
            "id_token.alg_none",
            "the ID token is unsigned (alg none); only signed tokens are accepted",
        ));
    }
    if alg_name.starts_with("HS") {
        return Err(refuse(
            "id_token.alg_hmac",
            format!(
                "the ID token is signed with {alg_name}, a shared-secret algorithm; only the provider's public-key signatures are accepted"
            ),
        ));
    }
    let alg: Algorithm = alg_name
        .parse()
        .ok()
        .filter(|a| ACCEPTED.contains(a))
        .ok_or_else(|| {
            refuse(
                "id_token.alg",
                format!("the ID token's algorithm {alg_name} is not accepted"),
            )
        })?;
    let kid = h.get("kid").and_then(Value::as_str);
    let jwk = pick_key(keys, kid, alg)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| {
        refuse(
            "id_token.key",
            format!(
                "the provider's key {} cannot be used: {e}",
                kid.unwrap_or("(no kid)")
            ),
        )
    })?;

    // The library checks the signature (and that the key's family fits the algorithm);
    // every claim is checked below, by hand, with the messages a person can act on.
    let mut v = Validation::new(alg);
    v.algorithms = vec![alg];
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &v).map_err(|e| {
        refuse(
            "id_token.signature",
            format!("the ID token's signature does not verify with the provider's keys ({e})"),
        )
    })?;
    check_claims(&data.claims, expect)?;
    Ok(data.claims)
}

fn pick_key<'k>(keys: &'k JwkSet, kid: Option<&str>, alg: Algorithm) -> Result<&'k Jwk, Refused> {
    let usable = |k: &&Jwk| {
        !matches!(k.algorithm, AlgorithmParameters::OctetKey(_))
            && !matches!(k.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature)
    };
    let jwk = match kid {
        Some(kid) => keys
            .keys
            .iter()
            .filter(usable)
            .find(|k| k.common.key_id.as_deref() == Some(kid)),
        None => {
            let mut candidates = keys.keys.iter().filter(usable);
            match (candidates.next(), candidates.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            }
        }
    }
    .ok_or_else(|| {
        refuse(
            "id_token.key",
            format!(
                "the ID token names key {}, which is not among the provider's public signing keys",
                kid.unwrap_or("(none)")
            ),
        )
    })?;
    if let Some(key_alg) = jwk.common.key_algorithm
        && !same_alg(key_alg, alg)
    {
        return Err(refuse(
            "id_token.alg",
            format!("the ID token says {alg:?} but its key is for {key_alg:?}"),
        ));
    }
    Ok(jwk)
}

fn same_alg(key: KeyAlgorithm, alg: Algorithm) -> bool {
    format!("{key:?}") == format!("{alg:?}")
}

fn check_claims(c: &Map<String, Value>, e: Expect<'_>) -> Result<(), Refused> {
    let iss = c.get("iss").and_then(Value::as_str).unwrap_or("");
    if iss != e.issuer {
        return Err(refuse(
            "id_token.iss",
            format!("the ID token was issued by '{iss}', not by {}", e.issuer),
        ));
    }
    let aud: Vec<&str> = match c.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !aud.contains(&e.client_id) {
        return Err(refuse(
            "id_token.aud",
            format!(
                "the ID token is for {aud:?}, not for this Warden (client id {})",
                e.client_id
            ),
        ));
    }
    let azp = c.get("azp").and_then(Value::as_str);
    if (aud.len() > 1 && azp.is_none()) || azp.is_some_and(|a| a != e.client_id) {
        return Err(refuse(
            "id_token.azp",
            format!(
                "the ID token was issued to party {}, not to this Warden",
                azp.unwrap_or("(none)")
            ),
        ));
    }
    let exp = c
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(|| refuse("id_token.exp", "the ID token has no expiry (exp)"))?;
    if exp + LEEWAY_SECS <= e.now {
        return Err(refuse(
            "id_token.exp",
            format!("the ID token expired {} seconds ago", e.now - exp),
        ));
    }
    let iat = c
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| refuse("id_token.iat", "the ID token has no issue time (iat)"))?;
    if iat > e.now + LEEWAY_SECS {
        return Err(refuse(
            "id_token.iat",
            "the ID token was issued in the future; check the clocks",
        ));
    }
    if iat < e.now - MAX_AGE_SECS - LEEWAY_SECS {
        return Err(refuse(
            "id_token.iat",
            format!(
                "the ID token was issued {} seconds ago; a fresh one is needed",
                e.now - iat
            ),
        ));
    }
    if c.get("sub")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(refuse(
            "id_token.sub",
            "the ID token names no subject (sub)",
        ));
    }
    if let Some(expected) = e.nonce {
        let got = c.get("nonce").and_then(Value::as_str).unwrap_or("");
        if !secrets_equal(got.as_bytes(), expected.as_bytes()) {
            return Err(refuse(
                "id_token.nonce",
                "the ID token's nonce is not the one this sign-in sent (a replayed or injected token)",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    fn key(kid: &str) -> (EncodingKey, Value) {
        let k = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let p = k.public_key().as_ref().to_vec();
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": b64(&p[1..33]), "y": b64(&p[33..65])});
        (
            EncodingKey::from_ec_der(k.to_pkcs8v1().unwrap().as_ref()),
            jwk,
        )
    }

    fn set(keys: &[Value]) -> JwkSet {
        serde_json::from_value(json!({ "keys": keys })).unwrap()
    }

    const NOW: i64 = 1_800_000_000;

    fn expect() -> Expect<'static> {
        Expect {
            issuer: "https://op.example",
            client_id: "w",
            nonce: Some("n1"),
            now: NOW,
        }
    }

    fn claims() -> Value {
        json!({"iss": "https://op.example", "aud": "w", "sub": "s", "iat": NOW, "exp": NOW + 60, "nonce": "n1"})
    }

    fn sign(k: &EncodingKey, kid: Option<&str>, c: &Value) -> String {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = kid.map(str::to_string);
        jsonwebtoken::encode(&h, c, k).unwrap()
    }

    #[test]
    fn a_good_token_passes_and_each_claim_is_checked() {
        let (k, jwk) = key("a");
        let keys = set(&[jwk]);
        assert!(verify(&sign(&k, Some("a"), &claims()), &keys, expect()).is_ok());
        // One key and no kid: that key.
        assert!(verify(&sign(&k, None, &claims()), &keys, expect()).is_ok());
        let rule = |c: Value| {
            verify(&sign(&k, Some("a"), &c), &keys, expect())
                .unwrap_err()
                .rule
        };
        let mut c = claims();
        c["aud"] = json!(["w", "other"]);
        assert_eq!(
            rule(c.clone()),
            "id_token.azp",
            "several audiences need azp"
        );
        c["azp"] = json!("w");
        assert!(verify(&sign(&k, Some("a"), &c), &keys, expect()).is_ok());
        c["azp"] = json!("other");
        assert_eq!(rule(c), "id_token.azp");
        let mut c = claims();
        c["iat"] = json!(NOW + 3600);
        assert_eq!(rule(c), "id_token.iat", "issued in the future");
        let mut c = claims();
        c["iat"] = json!(NOW - 3600);
        assert_eq!(rule(c), "id_token.iat", "too old");
        let mut c = claims();
        c.as_object_mut().unwrap().remove("exp");
        assert_eq!(rule(c), "id_token.exp");
        let mut c = claims();
        c.as_object_mut().unwrap().remove("nonce");
        assert_eq!(rule(c), "id_token.nonce", "a sign-in needs its nonce back");
        let mut c = claims();
        c["sub"] = json!("");
        assert_eq!(rule(c), "id_token.sub");
        // After a refresh there is no nonce to compare.
        let mut c = claims();
        c.as_object_mut().unwrap().remove("nonce");
        assert!(
            verify(
                &sign(&k, Some("a"), &c),
                &keys,
                Expect {
                    nonce: None,
                    ..expect()
                }
            )
            .is_ok()
        );
    }

    #[test]
    fn keys_are_picked_by_kid_and_symmetric_ones_never_used() {
        let (k, jwk) = key("a");
        let (_, other) = key("b");
        let keys = set(&[jwk.clone(), other]);
        let token = sign(&k, None, &claims());
        assert_eq!(
            verify(&token, &keys, expect()).unwrap_err().rule,
            "id_token.key",
            "no kid among several keys"
        );
        assert!(
            needs_key(&sign(&k, Some("c"), &claims()), &keys),
            "an unknown kid asks for a fresh key set"
        );
        assert!(!needs_key(&sign(&k, Some("a"), &claims()), &keys));
        // An `oct` key in the set, named by the token: never used, whatever the algorithm.
        let oct = json!({"kty": "oct", "kid": "h", "k": b64(b"public-secret")});
        let keys = set(&[jwk.clone(), oct]);
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("h".into());
        let hs = jsonwebtoken::encode(
            &h,
            &claims(),
            &EncodingKey::from_secret(b"public-secret").unwrap(),
        )
        .unwrap();
        assert_eq!(
            verify(&hs, &keys, expect()).unwrap_err().rule,
            "id_token.alg_hmac"
        );
        // A key whose JWK names another algorithm.
        let mut rs = jwk;
        rs["alg"] = json!("RS256");
        let keys = set(&[rs]);
        assert_eq!(
            verify(&sign(&k, Some("a"), &claims()), &keys, expect())
                .unwrap_err()
                .rule,
            "id_token.alg"
        );
        // Not a JWT at all.
        assert_eq!(
            verify("abc", &keys, expect()).unwrap_err().rule,
            "id_token.format"
        );
        let none = format!(
            "{}.{}.",
            b64(br#"{"alg":"None"}"#),
            b64(claims().to_string().as_bytes())
        );
        assert_eq!(
            verify(&none, &keys, expect()).unwrap_err().rule,
            "id_token.alg_none",
            "any case of none"
        );
    }
}
