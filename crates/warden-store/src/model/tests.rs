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

#[test]
fn scopes_parse_and_display_canonically() {
    for (input, expected) in [
        ("", Scopes::NONE),
        ("mcp:read", Scopes::READ),
        ("mcp:read mcp:write", Scopes::READ_WRITE),
        ("mcp:write mcp:read", Scopes::READ_WRITE),
        ("  mcp:write   mcp:read mcp:write ", Scopes::READ_WRITE),
        ("mcp:write", Scopes::NONE.with(Scope::Write)),
    ] {
        assert_eq!(input.parse::<Scopes>(), Ok(expected), "{input:?}");
    }
    assert_eq!(Scopes::NONE.to_string(), "");
    assert_eq!(Scopes::READ.to_string(), "mcp:read");
    assert_eq!(Scopes::READ_WRITE.to_string(), "mcp:read mcp:write");
    assert_eq!(Scopes::NONE.with(Scope::Write).to_string(), "mcp:write");
    for scopes in [
        Scopes::NONE,
        Scopes::READ,
        Scopes::READ_WRITE,
        Scopes::NONE.with(Scope::Write),
    ] {
        assert_eq!(scopes.to_string().parse::<Scopes>(), Ok(scopes));
    }
    assert_eq!(
        [Scope::Write, Scope::Read].into_iter().collect::<Scopes>(),
        Scopes::READ_WRITE
    );
    assert_eq!(
        format!("{:?}", Scopes::READ_WRITE),
        "Scopes(\"mcp:read mcp:write\")"
    );
}

#[test]
fn unknown_scope_is_named_in_the_error() {
    for (input, unknown) in [
        ("mcp:admin", "mcp:admin"),
        ("mcp:read mcp:delete", "mcp:delete"),
        ("MCP:READ", "MCP:READ"),
        ("mcp:read\tmcp:write", "mcp:read\tmcp:write"),
        ("openid", "openid"),
        ("mcp:read,mcp:write", "mcp:read,mcp:write"),
    ] {
        let err = input.parse::<Scopes>().unwrap_err();
        assert_eq!(err.value, unknown, "{input:?}");
        let msg = err.to_string();
        assert!(msg.contains(&format!("{unknown:?}")), "{msg}");
        assert!(
            msg.contains("mcp:read") && msg.contains("mcp:write"),
            "{msg}"
        );
    }
}

#[test]
fn write_implies_read_only_through_the_checks() {
    let write_only = "mcp:write".parse::<Scopes>().unwrap();
    assert!(write_only.allows_write());
    assert!(write_only.allows_read());
    assert!(!write_only.contains(Scope::Read));

    assert!(Scopes::READ.allows_read());
    assert!(!Scopes::READ.allows_write());
    assert!(Scopes::READ_WRITE.allows_read() && Scopes::READ_WRITE.allows_write());
    assert!(!Scopes::NONE.allows_read() && !Scopes::NONE.allows_write());
    assert!(Scopes::NONE.is_empty() && !Scopes::READ.is_empty());
}

#[test]
fn token_hash_must_be_lowercase_hex_sha256_and_is_never_echoed() {
    let good = "0123456789abcdef".repeat(4);
    assert!(validate_token_hash(&good).is_ok());
    let raw = "wdn_at_Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4";
    for bad in [
        "",
        raw,
        &good[..63],
        &format!("{good}0"),
        &good.to_uppercase(),
        &format!("{}g", &good[..63]),
    ] {
        let err = validate_token_hash(bad).unwrap_err();
        let msg = err.to_string();
        assert!(bad.is_empty() || !msg.contains(bad), "{msg}");
        assert!(msg.contains("SHA-256"), "{msg}");
    }
}

#[test]
fn password_hash_must_look_like_phc_and_is_never_echoed() {
    for good in [
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
        "$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA",
    ] {
        assert!(validate_password_hash(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        "hunter2",
        "correct horse battery staple",
        "$argon2i$",
        "$argon2id$$$",
        "$Argon2$salt$hash",
        "$argon2id$v=19$salt hash$x",
    ] {
        let err = validate_password_hash(bad).unwrap_err();
        let msg = err.to_string();
        assert!(bad.is_empty() || !msg.contains(bad), "{msg}");
        assert!(msg.contains("never the password"), "{msg}");
    }
}

#[test]
fn display_prefix_is_short_and_printable() {
    assert!(validate_display_prefix("wdn_key_AbCd").is_ok());
    assert!(validate_display_prefix(&"x".repeat(MAX_DISPLAY_PREFIX_LEN)).is_ok());
    let whole_key = "wdn_key_Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4";
    for bad in ["", "wdn key", whole_key] {
        let msg = validate_display_prefix(bad).unwrap_err().to_string();
        assert!(bad.is_empty() || !msg.contains(bad), "{msg}");
    }
}
