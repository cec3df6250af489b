//! One audit trail, several signers: instances that share a state store each sign checkpoints
//! with their own key, and `warden audit verify` accepts exactly the registered keys. The
//! first instance registers its own key; another is refused at start until an administrator
//! registers it with the command the refusal prints.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Output;

use common::{Server, init_project, warden};

fn cli(file: &Path, args: &[&str]) -> Output {
    warden()
        .args(args)
        .args(["-p", file.to_str().unwrap()])
        .env("WARDEN_LOG", "warn")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[tokio::test]
async fn a_second_signer_is_refused_until_registered_and_verify_accepts_exactly_the_registered() {
    let (_dir, file, key) = init_project();
    // A second instance's project: the same state store and data, its own signing key.
    let second = file.with_file_name("second.yaml");
    let yaml = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &second,
        format!("{yaml}\naudit:\n  signing_key: .warden/second.key\n"),
    )
    .unwrap();

    // The first instance registers its own key and signs a checkpoint when it stops.
    let mut first = Server::start(&file);
    let mut s = Server::attach(first.url.clone())
        .with_bearer(&key)
        .session()
        .await;
    s.call("portfolio_report", serde_json::json!({})).await;
    first.stop();
    let list = stdout(&cli(&file, &["audit", "signer", "list"]));
    assert_eq!(list.lines().count(), 2, "one signer: {list}");
    assert!(list.contains("first instance"), "{list}");

    // The second is refused, with the command that registers it.
    let out = warden()
        .args([
            "serve",
            "-p",
            second.to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("not a registered signer"), "{err}");
    let command = err
        .split('`')
        .find(|p| p.starts_with("warden audit signer add --public-key "))
        .expect("the refusal names the command")
        .to_string();
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    // Run from the second instance's own project, it cannot endorse itself.
    let own = warden()
        .args(&args)
        .args(["-p", second.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!own.status.success());
    assert!(String::from_utf8_lossy(&own.stderr).contains("cannot endorse"));
    // From the first (registered) instance's project, it can.
    let added = warden()
        .args(&args)
        .args(["-p", file.to_str().unwrap()])
        .env("WARDEN_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );

    // The second instance vouches for the first in return (an operator's step, after
    // checking the key), so that verification from its own project reaches it too.
    let first =
        warden_store::audit::Signer::load(&file.parent().unwrap().join(".warden/audit.key"))
            .unwrap();
    let first_key = first.verifier().public_hex();
    let back = cli(
        &second,
        &["audit", "signer", "add", "--public-key", &first_key],
    );
    assert!(
        back.status.success(),
        "{}",
        String::from_utf8_lossy(&back.stderr)
    );

    // Now it starts, serves and signs; the trail verifies from either project.
    let mut other = Server::start(&second);
    let mut s = Server::attach(other.url.clone())
        .with_bearer(&key)
        .session()
        .await;
    s.call("portfolio_report", serde_json::json!({})).await;
    other.stop();
    for project in [&file, &second] {
        let v = cli(project, &["audit", "verify"]);
        assert!(
            v.status.success(),
            "{}{}",
            stdout(&v),
            String::from_utf8_lossy(&v.stderr)
        );
    }
    assert_eq!(
        stdout(&cli(&file, &["audit", "signer", "list"]))
            .lines()
            .count(),
        3
    );

    // An export carries the signers and endorsements: it verifies offline from either key.
    let out_dir = file.parent().unwrap().join("export");
    let exported = cli(
        &file,
        &["audit", "export", "--out", out_dir.to_str().unwrap()],
    );
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    let second_key =
        warden_store::audit::Signer::load(&file.parent().unwrap().join(".warden/second.key"))
            .unwrap()
            .verifier()
            .public_hex();
    for key in [&first_key, &second_key] {
        let v = warden()
            .args([
                "audit",
                "verify",
                "--export",
                out_dir.to_str().unwrap(),
                "--public-key",
                key,
            ])
            .output()
            .unwrap();
        assert!(
            v.status.success(),
            "{}{}",
            stdout(&v),
            String::from_utf8_lossy(&v.stderr)
        );
    }

    // A signer row written straight into the database, without a signing key to endorse it,
    // is not trusted: verify says so, and still passes for the real ones.
    {
        use sqlx::Connection;
        let db = file.parent().unwrap().join(".warden/state.db");
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        for sql in [
            "INSERT INTO audit_signers (key_id, public_key, added_at, added_by) VALUES ('00112233deadbeef', '1111111111111111111111111111111111111111111111111111111111111111', 0, 'attacker')",
            "INSERT INTO audit_endorsements (endorser, endorsee, signature) VALUES ('00112233deadbeef', '00112233deadbeef', 'ff')",
        ] {
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        }
        conn.close().await.unwrap();
    }
    let v = cli(&file, &["audit", "verify"]);
    assert!(v.status.success(), "{}", stdout(&v));
    assert!(
        stdout(&v).contains("00112233deadbeef") && stdout(&v).contains("not endorsed"),
        "{}",
        stdout(&v)
    );

    // An attacker key with its own (valid) endorsement of the first instance: a restart of
    // the first instance must not vouch for it in return.
    let attacker =
        warden_store::audit::Signer::load_or_create(&file.parent().unwrap().join("attacker.key"))
            .unwrap();
    let av = attacker.verifier();
    {
        use sqlx::Connection;
        let db = file.parent().unwrap().join(".warden/state.db");
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let first_id = first.verifier().key_id().to_string();
        let sig = attacker.sign(&warden_store::endorsement_message(&first_id, &first_key));
        sqlx::query("INSERT INTO audit_signers (key_id, public_key, added_at, added_by) VALUES ($1, $2, 0, 'attacker')")
            .bind(av.key_id())
            .bind(av.public_hex())
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO audit_endorsements (endorser, endorsee, signature) VALUES ($1, $2, $3)",
        )
        .bind(av.key_id())
        .bind(&first_id)
        .bind(sig)
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let mut again = Server::start(&file);
    again.stop();
    for project in [&file, &second] {
        let v = cli(project, &["audit", "verify"]);
        assert!(v.status.success(), "{}", stdout(&v));
        assert!(
            stdout(&v).contains(av.key_id()) && stdout(&v).contains("not endorsed"),
            "the attacker's key stays untrusted: {}",
            stdout(&v)
        );
    }

    // Take the second key off the list: its checkpoints no longer verify, by name.
    let second_id =
        warden_store::audit::Signer::load(&file.parent().unwrap().join(".warden/second.key"))
            .unwrap()
            .verifier()
            .key_id()
            .to_string();
    let removed = cli(&file, &["audit", "signer", "remove", &second_id]);
    assert!(removed.status.success());
    let v = cli(&file, &["audit", "verify"]);
    assert!(!v.status.success());
    assert!(stdout(&v).contains(&second_id), "{}", stdout(&v));
    let trail = common::audit_log(&file, &[]);
    for event in ["audit_signer_added", "audit_signer_removed"] {
        assert!(trail.iter().any(|e| e["event"] == event), "{event}");
    }
}
