use super::*;

#[test]
fn role_names_round_trip() {
    for role in Role::ALL {
        assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        assert_eq!(role.to_string(), role.as_str());
    }
}

#[test]
fn role_parse_is_exact() {
    for bad in ["", "Admin", "ADMIN", " admin", "owner", "siloed-member"] {
        let err = bad.parse::<Role>().unwrap_err();
        assert_eq!(err.value, bad);
        let msg = err.to_string();
        assert!(msg.contains(&format!("{bad:?}")), "{msg}");
        for role in Role::ALL {
            assert!(msg.contains(role.as_str()), "{msg} lacks {role}");
        }
    }
}

#[test]
fn slug_rules() {
    let longest = "a".repeat(MAX_SLUG_LEN);
    for good in ["a", "0", "acme", "acme-corp-2", "-", longest.as_str()] {
        assert!(validate_slug(good).is_ok(), "{good:?} should be valid");
    }
    let too_long = "a".repeat(MAX_SLUG_LEN + 1);
    for bad in [
        "",
        "Acme",
        "acme corp",
        "acme_corp",
        "acme.corp",
        "ac/me",
        "äcme",
        "acme\n",
        too_long.as_str(),
    ] {
        match validate_slug(bad) {
            Err(StoreError::Invalid { value, .. }) => assert_eq!(value, bad),
            other => panic!("{bad:?}: expected Invalid, got {other:?}"),
        }
    }
}

#[test]
fn email_rules() {
    assert_eq!(
        normalize_email("  Alice@Example.COM ").unwrap(),
        "alice@example.com"
    );
    let too_long = format!("{}@example.com", "a".repeat(MAX_EMAIL_LEN));
    for bad in [
        "",
        "alice",
        "@example.com",
        "alice@",
        "a@b@c",
        "al ice@example.com",
        "alice@exa\tmple.com",
        too_long.as_str(),
    ] {
        match normalize_email(bad) {
            Err(StoreError::Invalid { value, .. }) => assert_eq!(value, bad),
            other => panic!("{bad:?}: expected Invalid, got {other:?}"),
        }
    }
}

#[test]
fn ids_display_as_stored_text() {
    let id = OrgId::new_random();
    let text = id.to_string();
    assert_eq!(text.len(), 36);
    assert_eq!(text, text.to_lowercase());
    assert_eq!(text.parse::<OrgId>().unwrap(), id);
}
