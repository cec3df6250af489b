use chrono::TimeDelta;

use super::*;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
}

fn count(
    failures: u32,
    window_ends_at: DateTime<Utc>,
    locked_until: Option<DateTime<Utc>>,
) -> FailureCount {
    FailureCount {
        key: "account:x".into(),
        failures,
        window_ends_at,
        locked_until,
    }
}

/// The store's update, as `warden_store::Store::count_failure` writes it in SQL, so the
/// policy can be walked through here without a database (the store's tests hold the SQL to
/// the same rule on both backends).
fn fail(before: Option<FailureCount>, rule: &FailureRule) -> FailureCount {
    match before {
        Some(c) if c.is_live(rule.now) => {
            let failures = c.failures + 1;
            FailureCount {
                locked_until: if failures == rule.lockout_after {
                    Some(rule.locked_until)
                } else {
                    c.locked_until
                },
                failures,
                ..c
            }
        }
        _ => count(
            1,
            rule.window_ends_at,
            (rule.lockout_after <= 1).then_some(rule.locked_until),
        ),
    }
}

#[test]
fn delays_grow_then_lock_out() {
    let l = Limiter::new(LimiterConfig::default());
    let now = t0();
    assert_eq!(l.verdict(&[], now), Verdict::Proceed(Duration::ZERO));
    let expected_ms = [0, 0, 0, 500, 1000, 2000, 4000, 5000, 5000];
    let mut c = None;
    for (i, ms) in expected_ms.iter().enumerate() {
        let after = fail(c, &l.rule(now));
        assert!(!l.just_locked(&after), "failure {} must not lock", i + 1);
        assert_eq!(
            l.verdict(std::slice::from_ref(&after), now),
            Verdict::Proceed(Duration::from_millis(*ms)),
            "after failure {}",
            i + 1
        );
        c = Some(after);
    }
    let tenth = fail(c, &l.rule(now));
    assert!(l.just_locked(&tenth), "the tenth failure locks");
    assert_eq!(
        l.verdict(std::slice::from_ref(&tenth), now),
        Verdict::Locked {
            retry_after: Duration::from_secs(15 * 60)
        }
    );
    // An eleventh that slipped in concurrently does not lock again or extend the lock.
    let eleventh = fail(Some(tenth.clone()), &l.rule(now + TimeDelta::seconds(1)));
    assert!(!l.just_locked(&eleventh));
    assert_eq!(eleventh.locked_until, tenth.locked_until);
    // Still locked a second before the end; after it, the slate is clean.
    let end = now + TimeDelta::minutes(15);
    assert_eq!(
        l.verdict(std::slice::from_ref(&tenth), end - TimeDelta::seconds(1)),
        Verdict::Locked {
            retry_after: Duration::from_secs(1)
        }
    );
    assert_eq!(
        l.verdict(
            std::slice::from_ref(&tenth),
            end + TimeDelta::milliseconds(1)
        ),
        Verdict::Proceed(Duration::ZERO)
    );
    let again = fail(Some(tenth), &l.rule(end + TimeDelta::milliseconds(1)));
    assert_eq!(
        again.failures, 1,
        "a failure after the lockout starts a new window"
    );
    assert_eq!(again.locked_until, None);
}

#[test]
fn failures_older_than_the_window_do_not_count() {
    let l = Limiter::new(LimiterConfig::default());
    let now = t0();
    let mut c = None;
    for _ in 0..9 {
        c = Some(fail(c, &l.rule(now)));
    }
    let nine = c.unwrap_or_else(|| count(0, now, None));
    let end = now + TimeDelta::minutes(15);
    assert_eq!(
        l.verdict(std::slice::from_ref(&nine), end),
        Verdict::Proceed(Duration::from_secs(5)),
        "the window's last instant still counts"
    );
    let later = end + TimeDelta::milliseconds(1);
    assert_eq!(
        l.verdict(std::slice::from_ref(&nine), later),
        Verdict::Proceed(Duration::ZERO)
    );
    let tenth = fail(Some(nine), &l.rule(later));
    assert_eq!(tenth.failures, 1, "not the tenth: the window was over");
    assert!(!l.just_locked(&tenth));
}

#[test]
fn the_worst_key_decides() {
    let l = Limiter::new(LimiterConfig::default());
    let now = t0();
    let window = now + TimeDelta::minutes(10);
    let slow = count(5, window, None);
    let slower = count(7, window, None);
    assert_eq!(
        l.verdict(&[slow.clone(), slower.clone()], now),
        Verdict::Proceed(Duration::from_secs(4))
    );
    // A lock on either key (say, the address, while another account is tried) refuses.
    let locked = count(10, window, Some(now + TimeDelta::minutes(3)));
    let longer = count(10, window, Some(now + TimeDelta::minutes(9)));
    assert_eq!(
        l.verdict(&[slower, locked.clone()], now),
        Verdict::Locked {
            retry_after: Duration::from_secs(3 * 60)
        }
    );
    assert_eq!(
        l.verdict(&[locked, longer], now),
        Verdict::Locked {
            retry_after: Duration::from_secs(9 * 60)
        }
    );
    // A dead counter (window over, no lock) is no counter.
    let dead = count(9, now - TimeDelta::seconds(1), None);
    assert_eq!(
        l.verdict(&[dead, slow], now),
        Verdict::Proceed(Duration::from_secs(1))
    );
}

#[test]
fn the_token_endpoint_policy_is_its_own() {
    let l = Limiter::new(LimiterConfig {
        free_failures: 10,
        lockout_after: 50,
        ..LimiterConfig::default()
    });
    assert_eq!(l.delay(10), Duration::ZERO);
    assert_eq!(l.delay(11), Duration::from_millis(500));
    let rule = l.rule(t0());
    assert_eq!(rule.lockout_after, 50);
    assert_eq!(rule.window_ends_at, t0() + TimeDelta::minutes(15));
    assert_eq!(rule.locked_until, t0() + TimeDelta::minutes(15));
}

#[test]
fn stored_keys_keep_the_kind_and_hide_the_rest() {
    let secret = [7u8; 32];
    let k = stored_key(&secret, "account:ana@acme.example").unwrap_or_default();
    assert!(k.starts_with("account:"), "{k}");
    assert_eq!(k.len(), "account:".len() + 64);
    assert!(!k.contains("ana") && !k.contains("acme"), "{k}");
    assert_eq!(
        stored_key(&secret, "account:ana@acme.example").as_deref(),
        Some(k.as_str())
    );
    assert_ne!(
        stored_key(&[8u8; 32], "account:ana@acme.example").as_deref(),
        Some(k.as_str())
    );
    let a = stored_key(&secret, "addr:10.0.0.1").unwrap_or_default();
    assert!(a.starts_with("addr:") && !a.contains("10.0.0.1"), "{a}");
    assert_ne!(
        stored_key(&secret, "link:ana@acme.example").map(|l| l.replace("link:", "")),
        Some(k.replace("account:", "")),
        "the kind is part of what is hashed"
    );
}
