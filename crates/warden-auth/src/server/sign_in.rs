//! Sign-in for the web pages: by password or by a single-use link, behind per-account and
//! per-address limits, each opening a browser session; and the session's user and sign-out.

use chrono::{DateTime, Utc};
use warden_store::{StoreError, User, UserId};

use super::limits::Limit;
use super::{
    AuthServer, InternalError, LoginError, MAGIC_LINK_TTL, REAUTH_WINDOW, SESSION_IDLE,
    SESSION_TTL, at,
};
use crate::limiter::Verdict;
use crate::token::{self, RawToken, TokenKind};

/// Longest a sign-in gate stays shut when its holder died mid-attempt (the longest delay and
/// a password check fit well within it).
const GATE_FOR: std::time::Duration = std::time::Duration::from_secs(15);

impl AuthServer {
    fn login_keys(email: &str, addr: &str) -> [String; 2] {
        [
            format!("account:{}", email.trim().to_lowercase()),
            format!("addr:{addr}"),
        ]
    }

    /// Waits out the delay the counters call for, or refuses; refuses too when the counters
    /// cannot be read (fail closed: no store, no unlimited guessing).
    async fn wait_turn(&self, keys: &[String]) -> Result<(), LoginError> {
        let verdict = self
            .limit_check(Limit::SignIn, keys, Utc::now())
            .await
            .map_err(unavailable)?;
        match verdict {
            Verdict::Locked { retry_after } => Err(LoginError::Locked { retry_after }),
            Verdict::Proceed(delay) => {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Ok(())
            }
        }
    }

    /// Counts a failure; an error if it could not be counted (the attempt is then refused as
    /// unavailable, never let through uncounted).
    async fn login_failed(&self, keys: &[String], addr: &str) -> Result<(), LoginError> {
        let locked = self
            .limit_failure(Limit::SignIn, keys, Utc::now())
            .await
            .map_err(unavailable)?;
        for key in locked {
            tracing::warn!(target: "warden::security", key = %key, "sign-in lockout");
            let e = Self::login_event("lockout", "password", addr).denied(
                "rate_limit",
                "login.lockout",
                format!("too many failed attempts ({key})"),
            );
            self.record(e).await?;
        }
        Ok(())
    }

    /// Takes the account's sign-in gate: one password attempt per account is checked at a
    /// time, whichever instance it reaches, so a burst of parallel guesses cannot all pass
    /// the limit check before any of them is counted. `Err(Busy)` while another is checked;
    /// a gate whose holder died opens by itself after [`GATE_FOR`].
    async fn take_gate(&self, account: &str) -> Result<(String, String), LoginError> {
        let stored = self
            .stored_keys(&[account.to_string()])
            .await
            .map_err(unavailable)?;
        let name = format!("sign_in:{}", stored.concat());
        let holder = token::random_id("g").map_err(InternalError::from)?;
        let now = Utc::now().timestamp_millis();
        let until = now + GATE_FOR.as_millis() as i64;
        match self.store.take_lease(&name, &holder, now, until).await {
            Ok(true) => Ok((name, holder)),
            Ok(false) => Err(LoginError::Busy),
            Err(e) => Err(unavailable(e.into())),
        }
    }

    async fn open_gate(&self, (name, holder): (String, String)) {
        if let Err(e) = self.store.drop_lease(&name, &holder).await {
            tracing::warn!(error = %e, "could not open a sign-in gate; it opens by itself shortly");
        }
    }

    /// Password sign-in; on success, a new browser session.
    pub async fn login_password(
        &self,
        email: &str,
        password: &str,
        addr: &str,
    ) -> Result<(User, RawToken), LoginError> {
        let keys = Self::login_keys(email, addr);
        let gate = self.take_gate(&keys[0]).await?;
        let result = self
            .login_password_gated(&keys, email, password, addr)
            .await;
        self.open_gate(gate).await;
        result
    }

    async fn login_password_gated(
        &self,
        keys: &[String; 2],
        email: &str,
        password: &str,
        addr: &str,
    ) -> Result<(User, RawToken), LoginError> {
        self.wait_turn(keys).await?;
        let user = self.store.user_by_email(email).await?;
        let hash = user.as_ref().and_then(|u| u.password_hash.as_deref());
        let ok = self.passwords.verify(password, hash).await;
        match user {
            Some(u) if ok && u.disabled_at.is_none() => {
                // Clears the account's counter, not the address's: one good password must
                // not wash out a spray of guesses from the same address.
                let [account, _] = keys;
                self.limit_clear(account).await;
                tracing::info!(target: "warden::security", user = %u.id, "sign-in succeeded");
                let session = self.new_session(u.id).await?;
                let e = Self::login_event("login_succeeded", "password", addr)
                    .user(u.id.to_string(), u.email.clone());
                self.record(e).await?;
                Ok((u, session))
            }
            known => {
                // Recorded even when the failure could not be counted; refused either way.
                let counted = self.login_failed(keys, addr).await;
                tracing::info!(target: "warden::security", "sign-in failed");
                // The typed email is kept only when it names an account: an unknown one may
                // be a password typed into the wrong field.
                let mut e = Self::login_event("login_failed", "password", addr).denied(
                    "authenticate",
                    "login.bad_credentials",
                    if known.is_some() {
                        "wrong password or disabled account"
                    } else {
                        "no such account"
                    },
                );
                if let Some(u) = known {
                    e = e.user(u.id.to_string(), u.email);
                }
                self.record(e).await?;
                counted?;
                Err(LoginError::BadCredentials)
            }
        }
    }

    pub(super) async fn new_session(&self, user: UserId) -> Result<RawToken, LoginError> {
        let session = token::generate(TokenKind::Session).map_err(InternalError::from)?;
        let now = Utc::now();
        self.store
            .create_session(session.hash().as_str(), user, now, at(now, SESSION_TTL))
            .await?;
        Ok(session)
    }

    /// The signed-in user behind a session cookie.
    pub async fn session_user(&self, raw: &str) -> Result<Option<User>, StoreError> {
        Ok(self.signed_in(raw).await?.map(|s| s.user))
    }

    /// The live session behind a session cookie, counted as used now: none when it is
    /// unknown, revoked, expired, idle for longer than [`SESSION_IDLE`], or its person is
    /// disabled.
    pub async fn signed_in(&self, raw: &str) -> Result<Option<SignedIn>, StoreError> {
        let raw = RawToken::from_client(raw);
        if raw.kind() != Some(TokenKind::Session) {
            return Ok(None);
        }
        let now = Utc::now();
        let idle_since = now - chrono::Duration::from_std(SESSION_IDLE).unwrap_or_default();
        let Some(s) = self
            .store
            .touch_session(raw.hash().as_str(), now, idle_since)
            .await?
        else {
            return Ok(None);
        };
        let user = self
            .store
            .user_by_id(s.user_id)
            .await?
            .filter(|u| u.disabled_at.is_none());
        Ok(user.map(|user| SignedIn {
            user,
            authenticated_at: s.authenticated_at,
            identity: s.identity_id,
        }))
    }

    /// The signed-in person proves their password again (a console action that needs a
    /// recent one). Behind the same gate and counters as sign-in, so it is no way around
    /// the lockout; recorded either way.
    pub async fn confirm_password(
        &self,
        raw_session: &str,
        password: &str,
        addr: &str,
    ) -> Result<SignedIn, LoginError> {
        let raw = RawToken::from_client(raw_session);
        let signed_in = match self.signed_in(raw_session).await? {
            Some(s) if raw.kind() == Some(TokenKind::Session) => s,
            _ => return Err(LoginError::BadCredentials),
        };
        let keys = Self::login_keys(&signed_in.user.email, addr);
        let gate = self.take_gate(&keys[0]).await?;
        let result = self
            .confirm_password_gated(&keys, &raw, signed_in, password, addr)
            .await;
        self.open_gate(gate).await;
        result
    }

    async fn confirm_password_gated(
        &self,
        keys: &[String; 2],
        raw: &RawToken,
        mut signed_in: SignedIn,
        password: &str,
        addr: &str,
    ) -> Result<SignedIn, LoginError> {
        self.wait_turn(keys).await?;
        let hash = signed_in.user.password_hash.as_deref();
        let ok = self.passwords.verify(password, hash).await;
        let user = &signed_in.user;
        if !ok {
            let counted = self.login_failed(keys, addr).await;
            let e = Self::login_event("reauth_failed", "password", addr)
                .user(user.id.to_string(), user.email.clone())
                .denied(
                    "authenticate",
                    "login.bad_credentials",
                    "wrong password when confirming a console action",
                );
            self.record(e).await?;
            counted?;
            return Err(LoginError::BadCredentials);
        }
        let [account, _] = keys;
        self.limit_clear(account).await;
        let now = Utc::now();
        if !self
            .store
            .reauthenticate_session(raw.hash().as_str(), now)
            .await?
        {
            return Err(LoginError::BadCredentials);
        }
        let e = Self::login_event("reauthenticated", "password", addr)
            .user(user.id.to_string(), user.email.clone());
        self.record(e).await?;
        signed_in.authenticated_at = now;
        Ok(signed_in)
    }

    /// Creates a single-use sign-in link token for `email`, if such a user exists. The
    /// caller sends it and always shows the same message, so the page does not reveal
    /// which emails have accounts.
    pub async fn magic_link(
        &self,
        email: &str,
        addr: &str,
    ) -> Result<Option<(User, RawToken)>, LoginError> {
        // Link requests have their own counters: they may slow or stop more link mail (no
        // flooding an inbox), but never lock the account out of password sign-in.
        let keys = vec![
            format!("link:{}", email.trim().to_lowercase()),
            format!("link-addr:{addr}"),
        ];
        self.wait_turn(&keys).await?;
        self.login_failed(&keys, addr).await?;
        let Some(user) = self
            .store
            .user_by_email(email)
            .await?
            .filter(|u| u.disabled_at.is_none())
        else {
            return Ok(None);
        };
        let link = token::generate(TokenKind::MagicLink).map_err(InternalError::from)?;
        let now = Utc::now();
        self.store
            .create_magic_link(link.hash().as_str(), user.id, now, at(now, MAGIC_LINK_TTL))
            .await?;
        self.store.purge_magic_links(now).await?;
        Ok(Some((user, link)))
    }

    /// Redeems a sign-in link (once) for a session.
    pub async fn redeem_magic_link(&self, raw: &str) -> Result<(User, RawToken), LoginError> {
        let raw = RawToken::from_client(raw);
        if raw.kind() != Some(TokenKind::MagicLink) {
            return Err(LoginError::BadLink);
        }
        let user_id = self
            .store
            .consume_magic_link(raw.hash().as_str(), Utc::now())
            .await?
            .ok_or(LoginError::BadLink)?;
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .filter(|u| u.disabled_at.is_none())
            .ok_or(LoginError::BadLink)?;
        self.limit_clear(&format!("account:{}", user.email.trim().to_lowercase()))
            .await;
        let session = self.new_session(user.id).await?;
        let e = Self::login_event("login_succeeded", "magic_link", "")
            .user(user.id.to_string(), user.email.clone());
        self.record(e).await?;
        Ok((user, session))
    }

    pub async fn logout(&self, raw_session: &str) -> Result<(), StoreError> {
        self.store
            .revoke_session(
                RawToken::from_client(raw_session).hash().as_str(),
                Utc::now(),
            )
            .await
            .map(|_| ())
    }
}

fn unavailable(e: InternalError) -> LoginError {
    tracing::error!(target: "warden::security", error = %e, "sign-in refused: the failure counters cannot be reached");
    LoginError::Unavailable
}

/// A live browser session: its person, and when they last proved their password.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: User,
    pub authenticated_at: DateTime<Utc>,
    /// The identity-provider sign-in that opened the session (a federated identity's id).
    pub identity: Option<String>,
}

/// Whether a password proved at `authenticated_at` is recent enough at `now` for an action
/// that needs one ([`REAUTH_WINDOW`]).
pub fn recently_authenticated(authenticated_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    chrono::Duration::from_std(REAUTH_WINDOW).is_ok_and(|w| now - authenticated_at < w)
}
