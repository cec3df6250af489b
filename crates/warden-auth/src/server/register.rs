//! Dynamic client registration (RFC 7591): accepted metadata becomes a stored OAuth client.

use chrono::Utc;
use warden_store::OAuthClient;

use super::AuthServer;
use crate::registration::{self, ClientMetadata, RegistrationError};

impl AuthServer {
    pub async fn register(&self, meta: &ClientMetadata) -> Result<OAuthClient, RegistrationError> {
        let accepted = registration::validate(meta)?;
        self.store
            .create_client(&accepted.name, &accepted.redirect_uris, Utc::now())
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot store a client registration");
                RegistrationError::InvalidMetadata(
                    "the registration could not be stored; try again".into(),
                )
            })
    }
}
