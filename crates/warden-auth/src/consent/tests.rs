use super::*;

fn params() -> AuthorizeParams {
    AuthorizeParams {
        response_type: Some("code".into()),
        client_id: Some("c1".into()),
        redirect_uri: Some("http://127.0.0.1:9/cb".into()),
        scope: Some("mcp:read".into()),
        state: Some("s".into()),
        code_challenge: Some("x".repeat(43)),
        code_challenge_method: Some("S256".into()),
        resource: None,
    }
}

#[test]
fn a_seal_verifies_only_the_parameters_it_was_made_for() {
    let key = [7u8; 32];
    let user = UserId::new_random();
    let p = params();
    let s = seal(&key, user, "csrf", &p).unwrap();
    assert!(verify(&key, user, "csrf", &p, &s));

    let mut wider = params();
    wider.scope = Some("mcp:read mcp:write".into());
    let mut added = params();
    added.resource = Some("http://127.0.0.1:9/mcp".into());
    let mut moved = params();
    moved.redirect_uri = Some("http://127.0.0.1:9/other".into());
    for (what, other) in [
        ("scope", wider),
        ("added field", added),
        ("redirect", moved),
    ] {
        assert!(!verify(&key, user, "csrf", &other, &s), "{what}");
    }
    assert!(
        !verify(&key, UserId::new_random(), "csrf", &p, &s),
        "another user"
    );
    assert!(!verify(&key, user, "other-csrf", &p, &s), "another page");
    assert!(!verify(&[8u8; 32], user, "csrf", &p, &s), "another key");
    assert!(!verify(&key, user, "csrf", &p, ""), "no seal");
    assert!(!verify(&key, user, "csrf", &p, "zz"), "not hex");
}
