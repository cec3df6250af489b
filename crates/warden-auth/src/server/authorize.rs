//! The authorization endpoint's rules: checking an authorization request, sealing the
//! consent page to the request it was shown for, and turning the user's consent into a
//! grant and a single-use code sent back to the client's redirect URI.

use chrono::Utc;
use warden_store::{ClientId, OAuthClient, Organization, Role, Scope, Scopes, StoreError, UserId};

use super::{AuthServer, AuthorizeError, InternalError, at};
use crate::pkce;
use crate::principal::{can_connect, can_write};
use crate::token::{self, TokenKind};

/// The parameters of `/authorize`, as received.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub resource: Option<String>,
}

impl AuthorizeParams {
    /// The parameters as name/value pairs, to carry through the login and consent forms.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut v = Vec::new();
        let mut push = |k: &'static str, val: &Option<String>| {
            if let Some(val) = val {
                v.push((k, val.clone()));
            }
        };
        push("response_type", &self.response_type);
        push("client_id", &self.client_id);
        push("redirect_uri", &self.redirect_uri);
        push("scope", &self.scope);
        push("state", &self.state);
        push("code_challenge", &self.code_challenge);
        push("code_challenge_method", &self.code_challenge_method);
        push("resource", &self.resource);
        v
    }
}

/// A validated authorization request.
#[derive(Debug, Clone)]
pub struct ValidAuthorize {
    pub client: OAuthClient,
    /// For a client identified by its metadata document: the document (the client is
    /// stored, under an id of Warden's, when the person approves it).
    pub document: Option<crate::cimd::DocumentClient>,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code_challenge: String,
    pub scopes: Scopes,
}

impl AuthServer {
    async fn consent_key(&self) -> Result<&[u8; 32], InternalError> {
        self.consent_key
            .get_or_try_init(|| self.store.server_key(crate::consent::KEY_NAME))
            .await
            .map_err(InternalError::from)
    }

    /// The seal binding a consent page for `user` (with CSRF token `csrf`) to `params`.
    pub async fn consent_seal(
        &self,
        user: UserId,
        csrf: &str,
        params: &AuthorizeParams,
    ) -> Result<String, InternalError> {
        crate::consent::seal(self.consent_key().await?, user, csrf, params)
            .ok_or_else(|| InternalError::Other("cannot key the consent seal".into()))
    }

    /// Whether a consent answer's parameters are the ones its page was shown for.
    pub async fn consent_seal_ok(
        &self,
        user: UserId,
        csrf: &str,
        params: &AuthorizeParams,
        presented: &str,
    ) -> Result<bool, InternalError> {
        Ok(crate::consent::verify(
            self.consent_key().await?,
            user,
            csrf,
            params,
            presented,
        ))
    }

    /// Validates `/authorize` parameters. Errors about the client or redirect URI are never
    /// sent to the redirect URI.
    pub async fn check_authorize(
        &self,
        p: &AuthorizeParams,
    ) -> Result<ValidAuthorize, AuthorizeError> {
        let client_id = p
            .client_id
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| AuthorizeError::NoRedirect("client_id is missing".into()))?;
        let (client, document) = if crate::cimd::is_document_url(client_id) {
            let (c, d) = self.document_client(client_id).await?;
            (c, Some(d))
        } else {
            let id: warden_store::ClientId = client_id.parse().map_err(|_| {
                AuthorizeError::NoRedirect(format!("unknown client_id '{client_id}'"))
            })?;
            let client = self
                .store
                .client(&id)
                .await?
                .filter(|c| c.revoked_at.is_none())
                .ok_or_else(|| {
                    AuthorizeError::NoRedirect(format!(
                        "unknown or revoked client_id '{client_id}'; the app must register again"
                    ))
                })?;
            (client, None)
        };
        let redirect_uri = match p.redirect_uri.as_deref() {
            Some(r) if client.redirect_uris.iter().any(|u| u == r) => r.to_string(),
            Some(r) => {
                return Err(AuthorizeError::NoRedirect(format!(
                    "redirect_uri '{r}' is not registered for this client (it must match exactly)"
                )));
            }
            None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
            None => {
                return Err(AuthorizeError::NoRedirect(
                    "redirect_uri is required for a client with several".into(),
                ));
            }
        };
        let fail = |code: &'static str, description: String| AuthorizeError::Redirect {
            redirect_uri: redirect_uri.clone(),
            state: p.state.clone(),
            code,
            description,
        };
        if p.response_type.as_deref() != Some("code") {
            return Err(fail(
                "unsupported_response_type",
                "only response_type=code is supported".into(),
            ));
        }
        let challenge = p.code_challenge.as_deref().ok_or_else(|| {
            fail(
                "invalid_request",
                "PKCE is required: send code_challenge with code_challenge_method=S256".into(),
            )
        })?;
        match p.code_challenge_method.as_deref() {
            Some("S256") => {}
            Some(other) => {
                return Err(fail(
                    "invalid_request",
                    format!("code_challenge_method '{other}' is not supported; use S256"),
                ));
            }
            None => {
                return Err(fail(
                    "invalid_request",
                    "code_challenge_method is required and must be S256 (plain is refused)".into(),
                ));
            }
        }
        if !pkce::is_valid_challenge(challenge) {
            return Err(fail(
                "invalid_request",
                "code_challenge must be 43 base64url characters (the SHA-256 of the verifier)"
                    .into(),
            ));
        }
        if let Some(resource) = &p.resource
            && resource.trim_end_matches('/') != self.resource
        {
            return Err(fail(
                "invalid_target",
                format!("resource must be {}", self.resource),
            ));
        }
        let scopes = match p.scope.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => Scopes::READ,
            Some(s) => s
                .parse::<Scopes>()
                .map_err(|e| fail("invalid_scope", e.to_string()))?,
        };
        Ok(ValidAuthorize {
            client,
            document,
            redirect_uri,
            state: p.state.clone(),
            code_challenge: challenge.to_string(),
            scopes,
        })
    }

    /// The client a metadata-document `client_id` names: its document fetched (or cached)
    /// and checked, under the id Warden gave it before, if any (a revoked one is refused),
    /// or a provisional id until the person approves it.
    async fn document_client(
        &self,
        url: &str,
    ) -> Result<(OAuthClient, crate::cimd::DocumentClient), AuthorizeError> {
        let Some(fetcher) = &self.documents else {
            return Err(AuthorizeError::NoRedirect(
                "this Warden does not accept client metadata documents; the app must register"
                    .into(),
            ));
        };
        let doc = fetcher.client(url).await.map_err(|e| {
            tracing::info!(target: "warden::security", client_id = %url, error = %e, "client metadata document refused");
            AuthorizeError::NoRedirect(e.0)
        })?;
        let known = self.store.client_by_document(url).await?;
        if known.as_ref().is_some_and(|c| c.revoked_at.is_some()) {
            return Err(AuthorizeError::NoRedirect(format!(
                "the app at {url} was revoked on this Warden"
            )));
        }
        let client = OAuthClient {
            id: known.map_or_else(ClientId::new_random, |c| c.id),
            name: doc.accepted.name.clone(),
            redirect_uris: doc.accepted.redirect_uris.clone(),
            created_at: Utc::now(),
            revoked_at: None,
        };
        Ok((client, doc))
    }

    /// Organisations in which `user` may connect an assistant.
    pub async fn connectable_orgs(
        &self,
        user: UserId,
    ) -> Result<Vec<(Organization, Role)>, StoreError> {
        Ok(self
            .store
            .orgs_of_user(user)
            .await?
            .into_iter()
            .filter(|(_, m)| can_connect(m.role))
            .map(|(o, m)| (o, m.role))
            .collect())
    }

    /// Whether `user` already lets `client` read without writing: a request for `mcp:write`
    /// from it is then a step-up (the app met a write tool), and the consent page says so.
    pub async fn is_step_up(&self, user: UserId, client: &ClientId) -> Result<bool, StoreError> {
        let held = self.store.active_scopes_of_client(user, client).await?;
        Ok(!held.is_empty() && held.iter().all(|s| !s.contains(Scope::Write)))
    }

    /// The person answered a new authorization of `client` (allowed or denied): the app's
    /// older grants refresh again as they are (see [`AuthServer::note_step_up`]).
    pub async fn step_up_answered(
        &self,
        user: UserId,
        client: &ClientId,
    ) -> Result<(), StoreError> {
        self.store.clear_step_up(user, client).await
    }

    /// The user allowed the request: records the grant (and the identity-provider sign-in
    /// it was approved in, if any) and returns the redirect URL with a fresh code. Write access is granted only if the client asked, the user ticked it,
    /// and the role can write.
    pub async fn approve(
        &self,
        user: UserId,
        org_slug: &str,
        req: &ValidAuthorize,
        allow_write: bool,
        identity: Option<&str>,
    ) -> Result<String, AuthorizeError> {
        let fail = |code: &'static str, description: String| AuthorizeError::Redirect {
            redirect_uri: req.redirect_uri.clone(),
            state: req.state.clone(),
            code,
            description,
        };
        let org = self
            .store
            .org_by_slug(org_slug)
            .await?
            .ok_or_else(|| fail("access_denied", "unknown organisation".into()))?;
        if identity.is_none() && !self.password_session_allowed(&org.slug) {
            return Err(fail(
                "access_denied",
                format!(
                    "{} signs its members in through its identity provider only; sign out, sign in with the provider, and connect again",
                    org.name
                ),
            ));
        }
        let membership = self.store.membership(org.id, user).await?.ok_or_else(|| {
            fail(
                "access_denied",
                "you are not a member of that organisation".into(),
            )
        })?;
        if !can_connect(membership.role) {
            return Err(fail(
                "access_denied",
                format!("the role {} cannot connect an assistant", membership.role),
            ));
        }
        // A client known by its document is stored (or brought up to date) now that a
        // person approves it, under the id its grants and tokens refer to.
        let client_id = match &req.document {
            Some(d) => {
                self.store
                    .upsert_document_client(
                        &d.url,
                        &d.accepted.name,
                        &d.accepted.redirect_uris,
                        Utc::now(),
                    )
                    .await?
                    .id
            }
            None => req.client.id,
        };
        let mut scopes = Scopes::READ;
        if allow_write && req.scopes.contains(Scope::Write) && can_write(membership.role) {
            scopes = scopes.with(Scope::Write);
        }
        let now = Utc::now();
        let grant = self
            .store
            .create_grant(
                org.id,
                user,
                &client_id,
                scopes,
                membership.role,
                &self.resource,
                now,
            )
            .await?;
        if let Some(identity) = identity {
            self.store.set_grant_identity(&grant.id, identity).await?;
        }
        self.step_up_answered(user, &client_id).await?;
        let code = token::generate(TokenKind::AuthorizationCode).map_err(InternalError::from)?;
        self.store
            .insert_code(
                code.hash().as_str(),
                &grant.id,
                &req.redirect_uri,
                &req.code_challenge,
                now,
                at(now, self.code_ttl),
            )
            .await?;
        Ok(self.redirect_with(
            &req.redirect_uri,
            &[
                ("code", code.expose()),
                ("state", req.state.as_deref().unwrap_or_default()),
            ],
            req.state.is_some(),
        ))
    }

    /// The redirect for a denial or an error, with `state` and `iss` (RFC 9207).
    pub fn redirect_error(
        &self,
        redirect_uri: &str,
        state: Option<&str>,
        code: &str,
        description: &str,
    ) -> String {
        self.redirect_with(
            redirect_uri,
            &[
                ("error", code),
                ("error_description", description),
                ("state", state.unwrap_or_default()),
            ],
            state.is_some(),
        )
    }

    fn redirect_with(
        &self,
        redirect_uri: &str,
        pairs: &[(&str, &str)],
        with_state: bool,
    ) -> String {
        let mut url = match url::Url::parse(redirect_uri) {
            Ok(u) => u,
            Err(_) => return redirect_uri.to_string(),
        };
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in pairs {
                if *k == "state" && !with_state {
                    continue;
                }
                q.append_pair(k, v);
            }
            q.append_pair("iss", &self.issuer);
        }
        url.to_string()
    }
}
